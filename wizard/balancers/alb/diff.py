"""How an existing resource differs from what it should be (pure; shared by plan and verify).

Each function returns the differences that ``apply`` can fix in place; what AWS
cannot change on an existing resource (a target group's protocol, a balancer's
scheme) is an AwsError saying so, because fixing it means replacing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wizard.balancers.alb.desired import (
    CURRENT_SSL_POLICY_PREFIX,
    SSL_POLICY,
    IDLE_TIMEOUT_KEY,
    SYNCHRONY_PATH,
    Desired,
    IngressSpec,
    ListenerSpec,
    RuleSpec,
    TargetGroupSpec,
    TargetSpec,
    ingress_marker,
    node_ingress_description,
    redirect_config,
)
from wizard.balancers.alb.facts import (
    AlbFacts,
    ListenerFact,
    LoadBalancerFact,
    RegisteredTarget,
    RuleFact,
    SecurityGroupFact,
    TargetGroupFact,
)
from wizard.balancers.alb.names import Names, describe_ownership
from wizard.transport.aws import AwsError

_REPLACE_HINT = ("Roll the balancer step back (`rollback balancer`) so the wizard can make it again, or "
                 "change it by hand.")


@dataclass(frozen=True)
class Difference:
    """One setting that is not as it should be."""

    field: str
    current: Any
    wanted: Any

    def describe(self) -> str:
        return f"{self.field} {_show(self.current)} -> {_show(self.wanted)}"


def _show(value: Any) -> str:
    if value in (None, "", (), []):
        return "(none)"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in sorted(value, key=str))
    return str(value)


def describe_all(differences: Iterable[Difference]) -> str:
    return "; ".join(d.describe() for d in differences)


def require_owned(kind: str, name: str, tags: Mapping[str, str], names: Names) -> None:
    """AwsError unless this setup made the resource: the wizard never touches anything else."""
    if not names.owns(tags):
        raise AwsError(f"A {kind} named {name} already exists, but {describe_ownership(tags, names.setup)}; "
                       "the wizard leaves it alone.",
                       f"Choose another balancer.alb.name (the wizard names its {kind} after it), or remove "
                       f"the existing {kind} if it is no longer used.")


def require_owned_part(what: str, tags: Mapping[str, str], names: Names) -> None:
    """The same for a listener or rule found on this setup's own balancer (added there by hand)."""
    if not names.owns(tags):
        raise AwsError(f"The {what} of the load balancer {names.load_balancer} was not made by the wizard "
                       f"({describe_ownership(tags, names.setup)}); the wizard leaves it alone.",
                       f"Remove the {what} so the wizard can make its own, or roll the balancer step back "
                       "(`rollback balancer`) and apply it again.")


# --- Security groups ---------------------------------------------------------------------

def missing_balancer_ingress(desired: Desired, group: SecurityGroupFact | None) -> list[IngressSpec]:
    """The (listener port, allowed network) pairs the balancer's own group does not yet let in.

    A pair some rule already admits is there, whoever made that rule: AWS would refuse the
    same rule twice, and the admin's own rule is never touched.
    """
    if group is None:
        return list(desired.balancer_ingress)
    return [rule for rule in desired.balancer_ingress if not group.allows(rule.port, cidr=rule.cidr)]


def stale_balancer_ingress(desired: Desired, group: SecurityGroupFact | None) -> list[IngressSpec]:
    """The rules of the balancer's group that this setup made (its description marks them) and that
    no longer match a listener port and an allowed network: to be revoked. The admin's own rules,
    without that description, are never among them."""
    if group is None:
        return []
    wanted = {(rule.port, rule.cidr) for rule in desired.balancer_ingress}
    marker = ingress_marker(desired.names.setup)
    stale: dict[tuple[int, str], IngressSpec] = {}
    for permission in group.ingress:
        port = permission.single_tcp_port
        if port is None:
            continue
        for source, description in permission.descriptions:
            if source in permission.cidrs and description.startswith(marker) and (port, source) not in wanted:
                purpose = description[len(marker):].removesuffix(" from users") or "users"
                stale.setdefault((port, source), IngressSpec(port, purpose, description, source))
    order = list(dict.fromkeys(rule.port for rule in desired.balancer_ingress))
    return [stale[key] for key in sorted(stale, key=lambda key: (
        order.index(key[0]) if key[0] in order else len(order), key[0], ":" in key[1], key[1]))]


def foreign_balancer_ingress(desired: Desired, group: SecurityGroupFact | None) -> list[tuple[int, str]]:
    """(port, source) of the rules on a listener port that this setup did not make (the admin's own):
    left alone by apply, and shown by verify."""
    if group is None:
        return []
    ports = {rule.port for rule in desired.balancer_ingress}
    marker = ingress_marker(desired.names.setup)
    found = []
    for permission in group.ingress:
        if permission.protocol not in ("tcp", "6", "-1"):
            continue
        covered = sorted(port for port in ports if permission.protocol == "-1"
                         or permission.from_port <= port <= permission.to_port)
        ours = {source for source, description in permission.descriptions if description.startswith(marker)}
        for source in (*permission.cidrs, *permission.groups):
            if source not in ours:
                found += [(port, source) for port in covered]
    return sorted(set(found))


def missing_node_ingress(desired: Desired, nodes_group: SecurityGroupFact | None,
                         balancer_group: str | None) -> list[IngressSpec]:
    """The node ports the nodes' group does not yet open to the balancer's group."""
    if not desired.node_ingress:
        return []
    if nodes_group is None or balancer_group is None:
        return list(desired.node_ingress)
    return [rule for rule in desired.node_ingress if not nodes_group.allows(rule.port, group=balancer_group)]


# --- Target groups -----------------------------------------------------------------------

def target_group_differences(spec: TargetGroupSpec, fact: TargetGroupFact) -> list[Difference]:
    """Health check and stickiness settings that differ (both can be modified in place)."""
    for label, current, wanted in (("protocol", fact.protocol, spec.protocol),
                                   ("VPC", fact.vpc_id, spec.vpc_id),
                                   ("target type", fact.target_type, spec.target_type)):
        if current != wanted:
            raise AwsError(f"The target group {fact.name} has {label} {current}, but this setup needs "
                           f"{wanted}; AWS cannot change that on an existing target group.", _REPLACE_HINT)
    found = [("health check protocol", fact.health_protocol, "HTTP"),
             ("health check port", fact.health_port, "traffic-port"),
             ("health check path", fact.health_path, spec.health_path),
             ("health check interval", fact.interval, spec.interval),
             ("health check timeout", fact.timeout, spec.timeout),
             ("healthy threshold", fact.healthy_threshold, spec.healthy_threshold),
             ("success codes", fact.matcher, spec.matcher)]
    differences = [Difference(f, c, w) for f, c, w in found if c != w]
    differences += [Difference(key, fact.attributes.get(key), value)
                    for key, value in spec.attributes.items() if fact.attributes.get(key) != value]
    return differences


def health_differences(differences: Iterable[Difference]) -> list[Difference]:
    """The health-check ones (attribute keys, like ``stickiness.enabled``, hold a dot)."""
    return [d for d in differences if "." not in d.field]


def missing_targets(spec: TargetGroupSpec, fact: TargetGroupFact | None) -> list[TargetSpec]:
    registered = {(t.id, t.port) for t in fact.targets} if fact else set()
    return [t for t in spec.targets if (t.id, t.port) not in registered]


def stale_targets(spec: TargetGroupSpec, fact: TargetGroupFact | None) -> list[RegisteredTarget]:
    """Targets of this setup's nodes registered on a port the node no longer serves.

    Targets that are not one of the nodes are left alone: an admin may have added
    them on purpose.
    """
    if fact is None:
        return []
    wanted = {(t.id, t.port) for t in spec.targets}
    ids = {t.id for t in spec.targets}
    return [t for t in fact.targets if t.id in ids and (t.id, t.port) not in wanted
            and t.state != "draining"]


# --- The load balancer -------------------------------------------------------------------

def load_balancer_differences(desired: Desired, fact: LoadBalancerFact,
                              security_group: str | None) -> list[Difference]:
    """Subnets, security groups and idle timeout that differ (all changeable in place)."""
    for label, current, wanted in (("type", fact.type, "application"), ("scheme", fact.scheme, desired.scheme),
                                   ("VPC", fact.vpc_id, desired.vpc_id)):
        if current != wanted:
            raise AwsError(f"The load balancer {fact.name} has {label} {current}, but this setup needs "
                           f"{wanted}; AWS cannot change that on an existing load balancer.", _REPLACE_HINT)
    differences = []
    if set(fact.subnets) != set(desired.subnets):
        differences.append(Difference("subnets", tuple(sorted(fact.subnets)), desired.subnets))
    wanted_groups = (security_group,) if security_group else ("(the balancer's new group)",)
    if set(fact.security_groups) != set(wanted_groups):
        differences.append(Difference("security groups", tuple(sorted(fact.security_groups)), wanted_groups))
    current_timeout = fact.attributes.get(IDLE_TIMEOUT_KEY, "60")
    if current_timeout != str(desired.idle_timeout):
        differences.append(Difference("idle timeout", f"{current_timeout} s", f"{desired.idle_timeout} s"))
    return differences


# --- Listeners and the rule --------------------------------------------------------------

def forward_targets(actions: Iterable[Mapping[str, Any]]) -> set[str]:
    """The target groups a list of actions forwards to (either spelling AWS returns)."""
    arns: set[str] = set()
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            arns.add(str(action["TargetGroupArn"]))
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []) or []:
            arns.add(str(group["TargetGroupArn"]))
    return arns


def describe_actions(actions: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for action in actions:
        kind = action.get("Type")
        if kind == "forward":
            parts.append("forward to " + ", ".join(sorted(target_group_name_of(a)
                                                          for a in forward_targets([action]))))
        elif kind == "redirect":
            config = action.get("RedirectConfig", {})
            parts.append(f"redirect {config.get('StatusCode')} to {config.get('Protocol')}:{config.get('Port')} "
                         f"{config.get('Host')}{config.get('Path')}?{config.get('Query')}")
        else:
            parts.append(str(kind))
    return "; ".join(parts) or "(none)"


def target_group_name_of(arn: str) -> str:
    """The name inside a target group's ARN (``...:targetgroup/<name>/<id>``)."""
    parts = arn.split("/")
    return parts[1] if len(parts) > 2 else arn


def listener_differences(spec: ListenerSpec, fact: ListenerFact,
                         confluence_arn: str | None) -> list[Difference]:
    differences = []
    if fact.protocol != spec.protocol:
        differences.append(Difference("protocol", fact.protocol, spec.protocol))
    if spec.protocol == "HTTPS":
        current_cert = fact.certificates[0] if fact.certificates else None
        if current_cert != spec.certificate_arn:
            differences.append(Difference("certificate", current_cert, spec.certificate_arn))
        # For the default protocols any current TLS 1.3 policy will do; others ask for their own policy.
        default = spec.ssl_policy == SSL_POLICY
        if (not (fact.ssl_policy or "").startswith(CURRENT_SSL_POLICY_PREFIX) if default
                else fact.ssl_policy != spec.ssl_policy):
            differences.append(Difference("TLS policy", fact.ssl_policy, spec.ssl_policy))
    if spec.action == "redirect":
        wanted = redirect_config(spec.redirect_port or 443)
        current = next((a.get("RedirectConfig") for a in fact.default_actions if a.get("Type") == "redirect"), None)
        if len(fact.default_actions) != 1 or not current or any(current.get(k) != v for k, v in wanted.items()):
            differences.append(Difference("default action", describe_actions(fact.default_actions),
                                          describe_actions(spec.default_actions(None))))
    else:
        if len(fact.default_actions) != 1 or confluence_arn is None or \
                forward_targets(fact.default_actions) != {confluence_arn}:
            differences.append(Difference("default action", describe_actions(fact.default_actions),
                                          "forward to the Confluence target group"))
    return differences


def find_rule(listener: ListenerFact | None, spec: RuleSpec) -> RuleFact | None:
    if listener is None:
        return None
    return next((rule for rule in listener.rules if not rule.is_default and spec.path in rule.paths), None)


def rule_differences(spec: RuleSpec, fact: RuleFact, synchrony_arn: str | None) -> list[Difference]:
    differences = []
    if synchrony_arn is None or len(fact.actions) != 1 or forward_targets(fact.actions) != {synchrony_arn}:
        differences.append(Difference("action", describe_actions(fact.actions),
                                      "forward to the Synchrony target group"))
    if fact.paths != (spec.path,) or len(fact.conditions) != 1:
        differences.append(Difference("conditions", fact.paths, (spec.path,)))
    return differences


def free_priority(listener: ListenerFact | None, start: int) -> int:
    taken = {int(rule.priority) for rule in (listener.rules if listener else ()) if rule.priority.isdigit()}
    priority = start
    while priority in taken:
        priority += 1
    return priority


# --- What direct Synchrony routing left behind ----------------------------------------------

@dataclass(frozen=True)
class SynchronyLeftovers:
    """What this setup made for direct Synchrony routing and no longer needs (internal-proxy).

    Only resources carrying this setup's tags, and only the nodes' rules with the
    wizard's own description, are listed: anything else is the admin's.
    """

    #: (listener port, rule) for each ``/synchrony/*`` rule the setup made.
    rules: tuple[tuple[int, RuleFact], ...] = ()
    target_group: TargetGroupFact | None = None
    #: Why the Synchrony target group stays although the setup made it (something else uses it).
    kept: str = ""
    #: (port, balancer's group) of each Synchrony rule the wizard added to the nodes' group.
    ingress: tuple[tuple[int, str], ...] = ()


def synchrony_leftovers(desired: Desired, facts: AlbFacts) -> SynchronyLeftovers:
    """The Synchrony rule, target group and node port that ``direct`` made and ``internal-proxy`` does not want."""
    if desired.rule is not None:
        return SynchronyLeftovers()
    names = desired.names
    balancer = facts.load_balancer
    listeners = balancer.listeners if balancer and names.owns(balancer.tags) else ()
    rules = tuple((listener.port, rule) for listener in listeners for rule in listener.rules
                  if not rule.is_default and SYNCHRONY_PATH in rule.paths and names.owns(rule.tags))
    group, kept = facts.target_groups.get("synchrony"), ""
    if group is not None and not names.owns(group.tags):
        group = None
    if group is not None:
        kept = _still_used(group, balancer, {rule.arn for _, rule in rules})
        group = None if kept else group
    ingress: tuple[tuple[int, str], ...] = ()
    nodes, source = facts.env.node_security_group, facts.security_group
    if desired.node_security_group and nodes is not None and source is not None:
        mine = (source.id, node_ingress_description(names.setup, "Synchrony"))
        needed = {rule.port for rule in desired.node_ingress}
        ingress = tuple(sorted({(p.from_port, source.id) for p in nodes.ingress
                                if p.protocol == "tcp" and p.from_port == p.to_port and mine in p.descriptions
                                and p.from_port not in needed}))
    return SynchronyLeftovers(rules=rules, target_group=group, kept=kept, ingress=ingress)


def _still_used(group: TargetGroupFact, balancer: LoadBalancerFact | None, leaving: set[str]) -> str:
    """Who else forwards to the group (so deleting it would fail, or break them), or ""."""
    users = [arn for arn in group.load_balancers if balancer is None or arn != balancer.arn]
    for listener in balancer.listeners if balancer else ():
        if group.arn in forward_targets(listener.default_actions):
            users.append(f"the default action of listener {listener.port}")
        users += [f"the rule {', '.join(rule.paths) or rule.priority} on listener {listener.port}"
                  for rule in listener.rules
                  if not rule.is_default and rule.arn not in leaving and group.arn in forward_targets(rule.actions)]
    return f"still used by {', '.join(users)}" if users else ""
