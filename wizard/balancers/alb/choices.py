"""The lists the ALB form offers, read from AWS: VPCs, subnets, instances, certificates, security groups.

Read through ``wizard.transport.aws`` (the same session, retries and error wording as the
ALB step), in a thread worker; boto3 loads only here. The admin picks from
these lists instead of typing IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Item:
    """One thing to pick: its ID (what the answers hold), how it is shown, and its VPC."""

    id: str
    label: str
    vpc_id: str | None = None
    address: str | None = None  # an instance's private IP, to match it with a node


@dataclass(frozen=True)
class AwsLists:
    region: str
    vpcs: tuple[Item, ...]
    subnets: tuple[Item, ...]
    instances: tuple[Item, ...]
    certificates: tuple[Item, ...]
    security_groups: tuple[Item, ...]

    def in_vpc(self, items: tuple[Item, ...], vpc_id: str | None) -> list[Item]:
        return [item for item in items if vpc_id is None or item.vpc_id == vpc_id]


def _name(tags: list[dict[str, str]] | None) -> str:
    return next((tag["Value"] for tag in tags or [] if tag.get("Key") == "Name"), "")


def _label(ident: str, *details: str) -> str:
    shown = [d for d in details if d]
    return f"{ident}  ({', '.join(shown)})" if shown else ident


def read_lists(region: str, profile: str | None = None) -> AwsLists:
    """Everything the form lists, for one region; an AwsError (worded for the admin) when AWS says no."""
    from wizard.transport.aws import connect

    aws = connect(region, profile)
    vpcs = tuple(Item(v["VpcId"], _label(v["VpcId"], _name(v.get("Tags")), v.get("CidrBlock", ""),
                                         "default" if v.get("IsDefault") else ""), v["VpcId"])
                 for page in aws.pages("ec2", "describe_vpcs") for v in page.get("Vpcs", []))
    subnets = tuple(Item(s["SubnetId"], _label(s["SubnetId"], s.get("AvailabilityZone", ""), s.get("CidrBlock", ""),
                                               _name(s.get("Tags"))), s.get("VpcId"))
                    for page in aws.pages("ec2", "describe_subnets") for s in page.get("Subnets", []))
    instances = tuple(_instance(i) for page in aws.pages("ec2", "describe_instances")
                      for reservation in page.get("Reservations", []) for i in reservation.get("Instances", [])
                      if i.get("State", {}).get("Name") not in ("terminated", "shutting-down"))
    groups = tuple(Item(g["GroupId"], _label(g["GroupId"], g.get("GroupName", "")), g.get("VpcId"))
                   for page in aws.pages("ec2", "describe_security_groups") for g in page.get("SecurityGroups", []))
    certificates = tuple(Item(c["CertificateArn"], _label(c.get("DomainName", ""), c["CertificateArn"].rsplit("/", 1)[-1]))
                         for page in aws.pages("acm", "list_certificates", CertificateStatuses=["ISSUED"])
                         for c in page.get("CertificateSummaryList", []))
    return AwsLists(region, vpcs, subnets, instances, certificates, groups)


def _instance(data: dict[str, Any]) -> Item:
    ip = data.get("PrivateIpAddress")
    state = data.get("State", {}).get("Name", "")
    return Item(data["InstanceId"], _label(data["InstanceId"], _name(data.get("Tags")), ip or "", state),
                data.get("VpcId"), ip)
