"""What the wizard calls the AWS resources of a setup, and the tags that mark them as its own.

Names are unique where AWS makes them unique (load balancers and target groups
per account and region, security groups per VPC), so a resource can be found
again by name even when the process died between creating it and recording
its ARN. The tags say which setup made it: nothing without this setup's tag is
ever modified or deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wizard.answers_model import Answers

TOOL = "confluence-lb-wizard"
TAG_SETUP = f"{TOOL}:setup"
TAG_MANAGED = f"{TOOL}:managed"
TAG_ROLE = f"{TOOL}:role"

#: AWS's limit for load balancer and target group names.
MAX_NAME = 32

# Roles, stored in the TAG_ROLE tag and used as the plan's resource words.
ROLE_SECURITY_GROUP = "balancer-security-group"
ROLE_CONFLUENCE_TG = "confluence-target-group"
ROLE_SYNCHRONY_TG = "synchrony-target-group"
ROLE_LOAD_BALANCER = "load-balancer"
ROLE_HTTPS_LISTENER = "https-listener"
ROLE_HTTP_LISTENER = "http-listener"
ROLE_SYNCHRONY_RULE = "synchrony-rule"
ROLE_NODE_INGRESS = "node-ingress"


def target_group_name(base: str, suffix: str) -> str:
    """``<base>-<suffix>``, cut to 32 characters the same way every time.

    A cut name keeps a short hash of the whole base, so two long setup names
    that share their first characters still get different target groups.
    """
    name = f"{base}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(base.encode()).hexdigest()[:4]
    room = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{base[:room].rstrip('-')}-{digest}-{suffix}"


@dataclass(frozen=True)
class Names:
    """The names of one setup's resources."""

    setup: str
    load_balancer: str
    confluence_target_group: str
    synchrony_target_group: str
    security_group: str

    @classmethod
    def of(cls, answers: Answers) -> Names:
        alb = answers.balancer.alb
        base = (alb.name if alb and alb.name else None) or answers.name
        return cls(setup=answers.name, load_balancer=base,
                   confluence_target_group=target_group_name(base, "confluence"),
                   synchrony_target_group=target_group_name(base, "synchrony"),
                   security_group=f"{base}-alb")

    def tags(self, role: str, name: str) -> list[dict[str, str]]:
        """The tags every resource of this setup carries, in AWS's Key/Value form."""
        return [{"Key": TAG_SETUP, "Value": self.setup}, {"Key": TAG_MANAGED, "Value": "true"},
                {"Key": TAG_ROLE, "Value": role}, {"Key": "Name", "Value": name}]

    def owns(self, tags: Mapping[str, str]) -> bool:
        """Whether a resource with these tags was made by this setup."""
        return tags.get(TAG_SETUP) == self.setup and tags.get(TAG_MANAGED) == "true"

    def tag_specification(self, resource_type: str, role: str, name: str) -> list[dict[str, object]]:
        """EC2's TagSpecifications form, so a resource is tagged in the call that creates it."""
        return [{"ResourceType": resource_type, "Tags": self.tags(role, name)}]


def tag_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    """AWS's [{Key, Value}] as a plain mapping."""
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags or ()}


def describe_ownership(tags: Mapping[str, str], setup: str) -> str:
    """Why a resource is not this setup's, for an error message."""
    other = tags.get(TAG_SETUP)
    if other and other != setup:
        return f"it belongs to the setup {other!r} (tag {TAG_SETUP}={other})"
    return f"it does not carry the tag {TAG_SETUP}={setup}, so the wizard did not make it"
