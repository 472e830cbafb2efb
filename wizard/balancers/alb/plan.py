"""The plan: what to create or modify so AWS holds the desired balancer (pure).

Changes come in dependency order (security groups, target groups, the load
balancer, listeners, the rule), which is also the order ``apply`` makes them in
and, reversed, the order rollback takes them back in. When Synchrony no longer
goes direct, what this setup made for it comes last, also in dependency order:
the ``/synchrony/*`` rule, its target group, then the Synchrony port in the
nodes' group. Each change carries an ``Action`` (in memory only) with what
``apply`` needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wizard.balancers.alb import diff
from wizard.balancers.alb.desired import (
    RULE_PRIORITY,
    SYNCHRONY_PATH,
    Desired,
    IngressSpec,
    RuleSpec,
    TargetGroupSpec,
    TargetSpec,
    node_ingress_description,
)
from wizard.balancers.alb.facts import AlbFacts, RegisteredTarget, SecurityGroupFact, TargetGroupFact
from wizard.balancers.alb.names import (
    ROLE_LOAD_BALANCER,
    ROLE_NODE_INGRESS,
    ROLE_SECURITY_GROUP,
    ROLE_SYNCHRONY_RULE,
    ROLE_SYNCHRONY_TG,
)
from wizard.engine.model import BALANCER, Change, ResourceChange


@dataclass(frozen=True)
class Action:
    """What ``apply`` does for one change."""

    resource: str  # a names.ROLE_* word
    verb: str  # create | modify | authorize | register | delete | revoke
    name: str
    spec: Any = None
    differences: tuple[diff.Difference, ...] = ()
    #: register: the targets to add; and those of the same nodes on an old port, to remove.
    register: tuple[TargetSpec, ...] = ()
    deregister: tuple[RegisteredTarget, ...] = ()
    #: create rule: the priority it gets.
    priority: int | None = None
    #: modify, delete, revoke: what the resource was, for the undo.
    previous: dict[str, Any] = field(default_factory=dict)
    #: modify, register, delete: the existing resource's ARN.
    arn: str | None = None


def plan_changes(desired: Desired, facts: AlbFacts) -> list[Change]:
    """Every change needed, in dependency order; empty when AWS already matches."""
    changes: list[Change] = []
    names = desired.names
    group = facts.security_group
    if group is not None:
        diff.require_owned("security group", group.name, group.tags, names)
    if group is None:
        ports = list(dict.fromkeys(rule.port for rule in desired.balancer_ingress))
        changes.append(_change(
            Action(ROLE_SECURITY_GROUP, "create", names.security_group),
            f"create security group {names.security_group} in {desired.vpc_id} for the balancer "
            f"(TCP {', '.join(map(str, ports))} in from {describe_networks(desired.allowed_cidrs)})",
            vpc_id=desired.vpc_id, ingress_ports=ports, cidrs=list(desired.allowed_cidrs)))
    else:
        changes += _balancer_ingress_changes(desired, group)
    balancer_group = group.id if group else None
    nodes_group = facts.env.node_security_group
    for rule in diff.missing_node_ingress(desired, nodes_group, balancer_group):
        changes.append(_ingress_change(ROLE_NODE_INGRESS, desired.node_security_group or "", rule,
                                       f"allow {rule.purpose} port {rule.port} from the balancer's group into "
                                       f"the nodes' group {desired.node_security_group}"))
    for group_spec in desired.target_groups:
        changes += _target_group_changes(group_spec, facts, desired)
    changes += _load_balancer_changes(desired, facts, balancer_group)
    balancer = facts.load_balancer
    tg_arns = {key: (tg.arn if tg else None) for key, tg in facts.target_groups.items()}
    for spec in desired.listeners:
        current = balancer.listener(spec.port) if balancer else None
        if current is None:
            changes.append(_change(Action(spec.role, "create", f"{spec.protocol} {spec.port}", spec),
                                   f"create listener {spec.describe()} on {names.load_balancer}",
                                   port=spec.port, protocol=spec.protocol, default_action=spec.action,
                                   certificate_arn=spec.certificate_arn, ssl_policy=spec.ssl_policy))
            continue
        diff.require_owned_part(f"listener on port {spec.port}", current.tags, names)
        differences = diff.listener_differences(spec, current, tg_arns.get("confluence"))
        if differences:
            previous = {"Protocol": current.protocol, "Port": current.port,
                        "DefaultActions": list(current.default_actions)}
            if current.protocol == "HTTPS":
                previous["Certificates"] = [{"CertificateArn": arn} for arn in current.certificates[:1]]
                previous["SslPolicy"] = current.ssl_policy
            changes.append(_change(
                Action(spec.role, "modify", f"{spec.protocol} {spec.port}", spec, tuple(differences),
                       previous=previous, arn=current.arn),
                f"modify listener {spec.port} of {names.load_balancer}: {diff.describe_all(differences)}",
                port=spec.port, arn=current.arn, differences=[d.describe() for d in differences]))
    if desired.rule is not None:
        changes += _rule_changes(desired.rule, desired, facts, tg_arns.get("synchrony"))
    changes += _synchrony_cleanup(desired, facts)
    return changes


def _change(action: Action, summary: str, **details: Any) -> Change:
    return Change(target=BALANCER, kind="aws", summary=summary,
                  details=ResourceChange(resource=action.resource, action=action.verb, name=action.name, extra=details),
                  payload=action)


def describe_networks(cidrs: tuple[str, ...] | list[str]) -> str:
    """The allowed networks for a summary, anywhere said as such."""
    return ", ".join(f"{cidr} (anywhere)" if cidr in ("0.0.0.0/0", "::/0") else cidr for cidr in cidrs)


def _by_port(rules: list[IngressSpec]) -> dict[int, tuple[IngressSpec, ...]]:
    grouped: dict[int, list[IngressSpec]] = {}
    for rule in rules:
        grouped.setdefault(rule.port, []).append(rule)
    return {port: tuple(items) for port, items in grouped.items()}


def _balancer_ingress_changes(desired: Desired, group: SecurityGroupFact) -> list[Change]:
    """Per listener port: the allowed networks to let in, then this setup's rules no longer wanted to
    revoke (adding first, so a network being replaced never leaves the port closed for a moment)."""
    changes = []
    where = f"the balancer's group {group.name} ({group.id})"
    for port, rules in _by_port(diff.missing_balancer_ingress(desired, group)).items():
        cidrs = [rule.cidr or "" for rule in rules]
        changes.append(_change(Action(ROLE_SECURITY_GROUP, "authorize", group.id, rules),
                               f"allow TCP {port} from {describe_networks(cidrs)} into {where}",
                               group_id=group.id, port=port, cidrs=cidrs))
    for port, rules in _by_port(diff.stale_balancer_ingress(desired, group)).items():
        cidrs = [rule.cidr or "" for rule in rules]
        listened = port in {rule.port for rule in desired.balancer_ingress}
        why = ("not in balancer.alb.allowed_cidrs (or its default) any more" if listened
               else "no listener uses the port any more")
        changes.append(_change(Action(ROLE_SECURITY_GROUP, "revoke", group.id, rules),
                               f"revoke TCP {port} from {describe_networks(cidrs)} in {where}: a rule this setup "
                               f"made, {why} (rules it did not make stay)",
                               group_id=group.id, port=port, cidrs=cidrs))
    return changes


def _ingress_change(role: str, group_id: str, rule: IngressSpec, summary: str) -> Change:
    return _change(Action(role, "authorize", group_id, rule), summary, group_id=group_id, port=rule.port,
                   purpose=rule.purpose)


def _target_group_changes(spec: TargetGroupSpec, facts: AlbFacts, desired: Desired) -> list[Change]:
    current = facts.target_groups.get(spec.key)
    if current is None:
        members = ", ".join(t.describe() for t in spec.targets)
        return [_change(Action(spec.role, "create", spec.name, spec),
                        f"create target group {spec.name} ({spec.describe()}) with {members}",
                        port=spec.port, health_path=spec.health_path, target_type=spec.target_type,
                        targets=[t.describe() for t in spec.targets])]
    diff.require_owned("target group", current.name, current.tags, desired.names)
    changes = []
    differences = diff.target_group_differences(spec, current)
    if differences:
        previous = {"health": _health(current),
                    "attributes": {key: current.attributes.get(key, "") for key in spec.attributes}}
        changes.append(_change(Action(spec.role, "modify", spec.name, spec, tuple(differences), previous=previous,
                                      arn=current.arn),
                               f"modify target group {spec.name}: {diff.describe_all(differences)}",
                               arn=current.arn, differences=[d.describe() for d in differences]))
    missing = diff.missing_targets(spec, current)
    stale = diff.stale_targets(spec, current)
    if missing or stale:
        parts = []
        if missing:
            parts.append("register " + ", ".join(t.describe() for t in missing))
        if stale:
            parts.append("deregister " + ", ".join(f"{t.id}:{t.port} (old port)" for t in stale))
        changes.append(_change(Action(spec.role, "register", spec.name, spec, register=tuple(missing),
                                      deregister=tuple(stale), arn=current.arn),
                               f"{' and '.join(parts)} in target group {spec.name}", arn=current.arn,
                               register=[t.describe() for t in missing],
                               deregister=[f"{t.id}:{t.port}" for t in stale]))
    return changes


def _health(group: TargetGroupFact) -> dict[str, Any]:
    """A target group's health check as modify_target_group and create_target_group take it."""
    return {"HealthCheckProtocol": group.health_protocol, "HealthCheckPort": group.health_port,
            "HealthCheckPath": group.health_path, "HealthCheckIntervalSeconds": group.interval,
            "HealthCheckTimeoutSeconds": group.timeout, "HealthyThresholdCount": group.healthy_threshold,
            "Matcher": {"HttpCode": group.matcher}}


def _load_balancer_changes(desired: Desired, facts: AlbFacts, balancer_group: str | None) -> list[Change]:
    names = desired.names
    current = facts.load_balancer
    if current is None:
        return [_change(Action(ROLE_LOAD_BALANCER, "create", names.load_balancer),
                        f"create Application Load Balancer {names.load_balancer} ({desired.scheme}, subnets "
                        f"{', '.join(desired.subnets)}, security group {names.security_group}, idle timeout "
                        f"{desired.idle_timeout} s)",
                        scheme=desired.scheme, subnets=list(desired.subnets), idle_timeout=desired.idle_timeout)]
    diff.require_owned("load balancer", current.name, current.tags, names)
    differences = diff.load_balancer_differences(desired, current, balancer_group)
    if not differences:
        return []
    previous = {"subnets": list(current.subnets), "security_groups": list(current.security_groups),
                "idle_timeout": current.attributes.get("idle_timeout.timeout_seconds", "60")}
    return [_change(Action(ROLE_LOAD_BALANCER, "modify", names.load_balancer, differences=tuple(differences),
                           previous=previous, arn=current.arn),
                    f"modify load balancer {names.load_balancer}: {diff.describe_all(differences)}",
                    arn=current.arn, differences=[d.describe() for d in differences])]


def _rule_changes(spec: RuleSpec, desired: Desired, facts: AlbFacts, synchrony_arn: str | None) -> list[Change]:
    names = desired.names
    listener = facts.load_balancer.listener(spec.listener_port) if facts.load_balancer else None
    current = diff.find_rule(listener, spec)
    if current is None:
        priority = diff.free_priority(listener, RULE_PRIORITY)
        return [_change(Action(ROLE_SYNCHRONY_RULE, "create", spec.path, spec, priority=priority),
                        f"create rule {spec.path} on listener {spec.listener_port} of {names.load_balancer} "
                        f"forwarding to target group {names.synchrony_target_group} (priority {priority})",
                        port=spec.listener_port, path=spec.path, priority=priority)]
    diff.require_owned_part(f"rule {spec.path} on listener {spec.listener_port}", current.tags, names)
    differences = diff.rule_differences(spec, current, synchrony_arn)
    if not differences:
        return []
    previous = {"Conditions": list(current.conditions), "Actions": list(current.actions)}
    return [_change(Action(ROLE_SYNCHRONY_RULE, "modify", spec.path, spec, tuple(differences), previous=previous,
                           arn=current.arn),
                    f"modify rule {spec.path} on listener {spec.listener_port}: {diff.describe_all(differences)}",
                    arn=current.arn, differences=[d.describe() for d in differences])]


_INTERNAL_PROXY = "synchrony.mode is internal-proxy, so Synchrony is reached through Confluence's own port"


def _synchrony_cleanup(desired: Desired, facts: AlbFacts) -> list[Change]:
    """Take away, rule first, what this setup made for direct Synchrony routing once it is not wanted."""
    names = desired.names
    leftovers = diff.synchrony_leftovers(desired, facts)
    changes = []
    for port, rule in leftovers.rules:
        previous = {"port": port, "path": SYNCHRONY_PATH, "priority": rule.priority,
                    "conditions": list(rule.conditions), "actions": list(rule.actions), "tags": dict(rule.tags)}
        changes.append(_change(
            Action(ROLE_SYNCHRONY_RULE, "delete", SYNCHRONY_PATH, previous=previous, arn=rule.arn),
            f"delete rule {SYNCHRONY_PATH} on listener {port} of {names.load_balancer} (priority {rule.priority}, "
            f"{diff.describe_actions(rule.actions)}): {_INTERNAL_PROXY}, and this rule would keep sending "
            f"{SYNCHRONY_PATH} to Synchrony's own port", port=port, path=SYNCHRONY_PATH, arn=rule.arn,
            priority=rule.priority))
    group = leftovers.target_group
    if group is not None:
        targets = [_target_api(t) for t in group.targets if t.state != "draining"]
        previous = {"protocol": group.protocol, "port": group.port, "vpc_id": group.vpc_id,
                                    "target_type": group.target_type, "health": _health(group),
                                    "attributes": dict(group.attributes), "tags": dict(group.tags),
                                    "targets": targets}
        changes.append(_change(
            Action(ROLE_SYNCHRONY_TG, "delete", group.name, previous=previous, arn=group.arn),
            f"delete target group {group.name} ({group.protocol} {group.port}, {len(targets)} "
            f"target(s)): {_INTERNAL_PROXY}, and nothing routes to this group any more",
            arn=group.arn, port=group.port, targets=[f"{t['Id']}:{t['Port']}" for t in targets]))
    nodes_group = desired.node_security_group or ""
    for port, source in leftovers.ingress:
        spec = IngressSpec(port, "Synchrony", node_ingress_description(names.setup, "Synchrony"))
        changes.append(_change(
            Action(ROLE_NODE_INGRESS, "revoke", nodes_group, spec, previous={"source_group": source}),
            f"stop letting the balancer's group {source} reach Synchrony port {port} in the nodes' group "
            f"{nodes_group}: {_INTERNAL_PROXY}, and the balancer no longer needs port {port}",
            group_id=nodes_group, port=port, purpose="Synchrony", source_group=source))
    return changes


def _target_api(target: RegisteredTarget) -> dict[str, Any]:
    found: dict[str, Any] = {"Id": target.id, "Port": target.port}
    if target.availability_zone:
        found["AvailabilityZone"] = target.availability_zone
    return found


def noop_reason(desired: Desired, facts: AlbFacts) -> str:
    """Why there is nothing to do, with what is there."""
    balancer = facts.load_balancer
    groups = ", ".join(f"{spec.name} ({len(spec.targets)} target(s))" for spec in desired.target_groups)
    listeners = ", ".join(f"{spec.protocol} {spec.port}" for spec in desired.listeners)
    rule = f", rule {desired.rule.path}" if desired.rule else ""
    where = f" ({balancer.dns_name})" if balancer and balancer.dns_name else ""
    kept = diff.synchrony_leftovers(desired, facts).kept
    kept = (f" The target group {desired.names.synchrony_target_group} is no longer needed ({_INTERNAL_PROXY}) "
            f"but stays: {kept}; delete it once nothing uses it." if kept else "")
    return (f"The load balancer {desired.names.load_balancer}{where} already matches: target groups {groups}; "
            f"listeners {listeners}{rule}; idle timeout {desired.idle_timeout} s; security groups in place (listener "
            f"ports open to {describe_networks(desired.allowed_cidrs)}).{kept}")
