"""Taking the ALB work back: the undo actions ``apply`` records, and performing them.

An undo is recorded before its change is made, when a new resource has no ARN
yet. So every undo finds its resource again by what makes it unique (a target
group or balancer by name in the region, a security group by name in the VPC,
a listener by its balancer and port, the rule by its listener and path, an
ingress rule by group, port, source and the wizard's description), and acts
only on what carries this setup's tag. A resource already gone is fine: the
undo of a create that never happened does nothing.

Rollback performs the undos newest first, which is the reverse of the
dependency order ``apply`` creates in: the rule, the listeners, the balancer
(waiting until it is deleted), then the target groups, the ingress rules and
the balancer's security group (each retried while AWS still holds it).

What ``apply`` deletes (what direct Synchrony routing left once the mode is
internal-proxy) is recreated as it was: the target group with its settings and
targets, the ``/synchrony/*`` rule forwarding to the group found again by name,
the nodes' rule with the wizard's description; each only if it is not there.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from wizard.balancers.alb import diff, read, timing
from wizard.balancers.alb.desired import (
    Desired,
    normal_cidr,
    ListenerSpec,
    RuleSpec,
    TargetGroupSpec,
)
from wizard.balancers.alb.names import TAG_MANAGED, TAG_SETUP
from wizard.engine.model import BALANCER, UndoAction
from wizard.transport.aws import Aws, AwsError

DELETE = "aws-delete"
REVOKE = "aws-revoke"
RESTORE = "aws-restore"
TARGETS = "aws-targets"
#: Make again what apply deleted (the undo of a delete or a revoke).
RECREATE = "aws-recreate"
KINDS = (DELETE, REVOKE, RESTORE, TARGETS, RECREATE)

Report = Callable[[str], None]


def _base(desired: Desired, resource: str, name: str, **data: Any) -> dict[str, Any]:
    return {"resource": resource, "name": name, "region": desired.region, "setup": desired.names.setup, **data}


def _q(text: object) -> str:
    return shlex.quote(str(text))


def _lb_arn_cmd(region: str, name: str) -> str:
    return (f"$(aws elbv2 describe-load-balancers --region {region} --names {_q(name)} "
            "--query 'LoadBalancers[0].LoadBalancerArn' --output text)")


def _tg_arn_cmd(region: str, name: str) -> str:
    return (f"$(aws elbv2 describe-target-groups --region {region} --names {_q(name)} "
            "--query 'TargetGroups[0].TargetGroupArn' --output text)")


def _listener_arn_cmd(region: str, balancer: str, port: int) -> str:
    return (f"$(aws elbv2 describe-listeners --region {region} --load-balancer-arn {_lb_arn_cmd(region, balancer)} "
            f"--query 'Listeners[?Port==`{port}`].ListenerArn' --output text)")


# --- The actions apply records -----------------------------------------------------------

def delete_security_group(desired: Desired) -> UndoAction:
    name, region = desired.names.security_group, desired.region
    return UndoAction(
        kind=DELETE, target=BALANCER,
        description=f"Delete the balancer's security group {name}, which the wizard created.",
        manual=(f"aws ec2 delete-security-group --region {region} --group-id $(aws ec2 describe-security-groups "
                f"--region {region} --filters Name=vpc-id,Values={desired.vpc_id} Name=group-name,Values={_q(name)} "
                "--query 'SecurityGroups[0].GroupId' --output text)"),
        data=_base(desired, "security-group", name, vpc_id=desired.vpc_id))


def delete_target_group(desired: Desired, spec: TargetGroupSpec) -> UndoAction:
    return UndoAction(
        kind=DELETE, target=BALANCER,
        description=f"Delete the target group {spec.name}, which the wizard created.",
        manual=(f"aws elbv2 delete-target-group --region {desired.region} "
                f"--target-group-arn {_tg_arn_cmd(desired.region, spec.name)}"),
        data=_base(desired, "target-group", spec.name))


def delete_load_balancer(desired: Desired) -> UndoAction:
    name, region = desired.names.load_balancer, desired.region
    return UndoAction(
        kind=DELETE, target=BALANCER,
        description=f"Delete the load balancer {name} (and its listeners and rules), which the wizard created.",
        manual=f"aws elbv2 delete-load-balancer --region {region} --load-balancer-arn {_lb_arn_cmd(region, name)}",
        data=_base(desired, "load-balancer", name))


def delete_listener(desired: Desired, spec: ListenerSpec) -> UndoAction:
    balancer, region = desired.names.load_balancer, desired.region
    return UndoAction(
        kind=DELETE, target=BALANCER,
        description=f"Delete the {spec.protocol} listener on port {spec.port} of {balancer}, which the wizard created.",
        manual=(f"aws elbv2 delete-listener --region {region} "
                f"--listener-arn {_listener_arn_cmd(region, balancer, spec.port)}"),
        data=_base(desired, "listener", f"{spec.protocol} {spec.port}", load_balancer=balancer, port=spec.port))


def delete_rule(desired: Desired, spec: RuleSpec) -> UndoAction:
    balancer, region = desired.names.load_balancer, desired.region
    return UndoAction(
        kind=DELETE, target=BALANCER,
        description=f"Delete the rule {spec.path} on listener {spec.listener_port} of {balancer}, which the "
                    "wizard created.",
        manual=(f"aws elbv2 delete-rule --region {region} --rule-arn $(aws elbv2 describe-rules --region {region} "
                f"--listener-arn {_listener_arn_cmd(region, balancer, spec.listener_port)} "
                f"--query \"Rules[?Conditions[?Field=='path-pattern']].RuleArn\" --output text)"),
        data=_base(desired, "rule", spec.path, load_balancer=balancer, port=spec.listener_port, path=spec.path))


def _permission(port: int, description: str, cidr: str | None, source_group: str | None) -> dict[str, Any]:
    """One ingress rule as the EC2 API (and the CLI's --ip-permissions) takes it."""
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if cidr and ":" in cidr:
        permission["Ipv6Ranges"] = [{"CidrIpv6": cidr, "Description": description}]
    elif cidr:
        permission["IpRanges"] = [{"CidrIp": cidr, "Description": description}]
    else:
        permission["UserIdGroupPairs"] = [{"GroupId": source_group, "Description": description}]
    return permission


def revoke_ingress(desired: Desired, group_id: str, port: int, description: str, *,
                   cidr: str | None = None, source_group: str | None = None) -> UndoAction:
    if cidr and ":" in cidr:  # the CLI's --cidr takes IPv4 only
        source = f"--ip-permissions {_q(json.dumps([_permission(port, description, cidr, None)]))}"
    else:
        source = (f"--protocol tcp --port {port} --cidr {_q(cidr)}" if cidr
                  else f"--protocol tcp --port {port} --source-group {_q(source_group)}")
    return UndoAction(
        kind=REVOKE, target=BALANCER,
        description=f"Remove the rule the wizard added to {group_id}: TCP {port} from {cidr or source_group}.",
        manual=f"aws ec2 revoke-security-group-ingress --region {desired.region} --group-id {_q(group_id)} {source}",
        data=_base(desired, "security-group-ingress", group_id, group_id=group_id, port=port, cidr=cidr,
                   source_group=source_group, rule_description=description))


def restore(desired: Desired, resource: str, name: str, previous: Mapping[str, Any], manual: str,
            **where: Any) -> UndoAction:
    return UndoAction(
        kind=RESTORE, target=BALANCER,
        description=f"Put the {resource} {name} back as it was before the wizard modified it.",
        manual=manual, data=_base(desired, resource, name, previous=dict(previous), **where))


def undo_targets(desired: Desired, spec: TargetGroupSpec, registered: list[dict[str, Any]],
                 deregistered: list[dict[str, Any]]) -> UndoAction:
    shown = ", ".join(f"{t['Id']}:{t['Port']}" for t in registered)
    arn = _tg_arn_cmd(desired.region, spec.name)
    manual = [f"aws elbv2 deregister-targets --region {desired.region} --target-group-arn {arn} --targets "
              + " ".join(f"Id={t['Id']},Port={t['Port']}" for t in registered)] if registered else []
    if deregistered:
        manual.append(f"aws elbv2 register-targets --region {desired.region} --target-group-arn {arn} --targets "
                      + " ".join(f"Id={t['Id']},Port={t['Port']}" for t in deregistered))
    return UndoAction(
        kind=TARGETS, target=BALANCER,
        description=f"Take back the target changes in {spec.name}" + (f" (deregister {shown})" if shown else "") + ".",
        manual=" && ".join(manual),
        data=_base(desired, "targets", spec.name, registered=registered, deregistered=deregistered))


def recreate_rule(desired: Desired, previous: Mapping[str, Any]) -> UndoAction:
    """Put back a deleted rule: its conditions, actions (forwarding to its groups, found by name) and priority."""
    balancer, region = desired.names.load_balancer, desired.region
    port, path, priority = int(previous["port"]), previous["path"], int(previous["priority"])
    conditions = clean_conditions(previous["conditions"])
    tags = _tag_list(previous["tags"])
    groups = sorted(diff.target_group_name_of(arn) for arn in diff.forward_targets(previous["actions"]))
    actions = (f"Type=forward,TargetGroupArn={_tg_arn_cmd(region, groups[0])}" if len(groups) == 1
               else _q(json.dumps(previous["actions"])))
    return UndoAction(
        kind=RECREATE, target=BALANCER,
        description=f"Create the rule {path} on listener {port} of {balancer} again (priority {priority}, "
                    f"forwarding to {', '.join(groups) or 'its previous actions'}), as it was before the wizard "
                    "deleted it.",
        manual=(f"aws elbv2 create-rule --region {region} --listener-arn {_listener_arn_cmd(region, balancer, port)} "
                f"--priority {priority} --conditions {_q(json.dumps(conditions))} --actions {actions} "
                f"--tags {_tags_cli(tags)}"),
        data=_base(desired, "rule", path, load_balancer=balancer, port=port, path=path, priority=priority,
                   conditions=conditions, actions=list(previous["actions"]), tags=tags))


def recreate_target_group(desired: Desired, name: str, previous: Mapping[str, Any]) -> UndoAction:
    """Put back a deleted target group with its protocol, port, health check, attributes, tags and targets."""
    region, health = desired.region, previous["health"]
    tags = _tag_list(previous["tags"])
    arn = _tg_arn_cmd(region, name)
    attributes = {k: v for k, v in previous["attributes"].items() if v != ""}
    manual = [f"aws elbv2 create-target-group --region {region} --name {_q(name)} --protocol {previous['protocol']} "
              f"--port {previous['port']} --vpc-id {previous['vpc_id']} --target-type {previous['target_type']} "
              f"--health-check-protocol {health['HealthCheckProtocol']} --health-check-port "
              f"{health['HealthCheckPort']} --health-check-path {_q(health['HealthCheckPath'])} "
              f"--health-check-interval-seconds {health['HealthCheckIntervalSeconds']} "
              f"--health-check-timeout-seconds {health['HealthCheckTimeoutSeconds']} "
              f"--healthy-threshold-count {health['HealthyThresholdCount']} "
              f"--matcher HttpCode={_q(health['Matcher']['HttpCode'])} --tags {_tags_cli(tags)}"]
    if attributes:
        manual.append(f"aws elbv2 modify-target-group-attributes --region {region} --target-group-arn {arn} "
                      "--attributes " + " ".join(_q(f"Key={k},Value={v}") for k, v in sorted(attributes.items())))
    if previous["targets"]:
        manual.append(f"aws elbv2 register-targets --region {region} --target-group-arn {arn} --targets "
                      + " ".join(_q(",".join(f"{k}={v}" for k, v in t.items())) for t in previous["targets"]))
    return UndoAction(
        kind=RECREATE, target=BALANCER,
        description=f"Create the target group {name} again ({previous['protocol']} {previous['port']}, "
                    f"{len(previous['targets'])} target(s)), as it was before the wizard deleted it.",
        manual=" && ".join(manual),
        data=_base(desired, "target-group", name, protocol=previous["protocol"], port=int(previous["port"]),
                   vpc_id=previous["vpc_id"], target_type=previous["target_type"], health=dict(health),
                   attributes=attributes, targets=list(previous["targets"]), tags=tags))


def authorize_ingress(desired: Desired, group_id: str, port: int, description: str, source_group: str | None,
                      tags: list[dict[str, str]], *, cidr: str | None = None) -> UndoAction:
    """Put back a rule the wizard revoked: TCP ``port`` from ``source_group`` (the nodes' group) or
    from the network ``cidr`` (the balancer's group), with the wizard's description."""
    permission = _permission(port, description, cidr, source_group)
    return UndoAction(
        kind=RECREATE, target=BALANCER,
        description=f"Let {cidr or source_group} reach TCP {port} in {group_id} again, as before the wizard "
                    "removed it.",
        manual=(f"aws ec2 authorize-security-group-ingress --region {desired.region} --group-id {_q(group_id)} "
                f"--ip-permissions {_q(json.dumps([permission]))}"),
        data=_base(desired, "security-group-ingress", group_id, group_id=group_id, port=port, cidr=cidr,
                   source_group=source_group, rule_description=description, tags=tags))


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    # AWS's own tags (aws:...) cannot be set by anyone else.
    return [{"Key": key, "Value": value} for key, value in tags.items() if not key.startswith("aws:")]


def _tags_cli(tags: list[dict[str, str]]) -> str:
    return " ".join(_q(f"Key={t['Key']},Value={t['Value']}") for t in tags)


# --- Performing them ---------------------------------------------------------------------

def perform(aws: Aws, action: UndoAction, report: Report) -> None:
    """Carry out one ALB undo; a resource already gone (or never made) is fine."""
    data = action.data
    handler = _HANDLERS.get((action.kind, str(data.get("resource"))))
    if handler is None:
        raise AwsError(f"This version does not know how to undo a {action.kind} of a {data.get('resource')}.",
                       f"Undo it by hand: {action.manual}")
    handler(aws, data, report)


def _owned(tags: Mapping[str, str], data: Mapping[str, Any]) -> bool:
    return tags.get(TAG_SETUP) == data["setup"] and tags.get(TAG_MANAGED) == "true"


def _retrying(what: str, codes: tuple[str, ...], call: Callable[[], None], report: Report) -> None:
    """Run ``call`` until AWS stops answering ``codes`` (still in use) or the time is up."""
    deadline = timing.now() + timing.DELETE_TIMEOUT
    while True:
        try:
            call()
            return
        except AwsError as exc:
            if exc.code not in codes:
                raise
            if timing.now() >= deadline:
                raise AwsError(f"AWS still holds {what} after {timing.DELETE_TIMEOUT:.0f} s ({exc.code}).",
                               "Wait a few minutes for AWS to release it, then run the rollback again.",
                               code=exc.code) from exc
            report(f"{what} is still in use; waiting for AWS to release it")
            timing.sleep(timing.POLL_SECONDS)


def _delete_security_group(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group = read.read_balancer_group(aws, data["vpc_id"], data["name"])
    if group is None or not _owned(group.tags, data):
        return
    report(f"deleting security group {group.name} ({group.id})")

    def delete() -> None:
        try:
            aws.call("ec2", "delete_security_group", GroupId=group.id)
        except AwsError as exc:
            if exc.code != "InvalidGroup.NotFound":
                raise

    # A deleted balancer's network interfaces keep its group in use for a few minutes.
    _retrying(f"the security group {group.name}", ("DependencyViolation", "InvalidGroup.InUse"), delete, report)


def _delete_target_group(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group = read.read_target_group(aws, data["name"])
    if group is None or not _owned(group.tags, data):
        return
    report(f"deleting target group {group.name}")

    def delete() -> None:
        _call_unless_gone(aws, "elbv2", "delete_target_group", ("TargetGroupNotFound",), TargetGroupArn=group.arn)

    _retrying(f"the target group {group.name}", ("ResourceInUse", "ResourceInUseException"), delete, report)


def _call_unless_gone(aws: Aws, service: str, operation: str, gone: tuple[str, ...], **params: Any) -> bool:
    """One call on a resource that may be gone already (deleted by hand, or by an earlier try):
    False then, True when the call was made. AWS spells the codes with or without "Exception"."""
    try:
        aws.call(service, operation, **params)
    except AwsError as exc:
        if exc.code not in {*gone, *(f"{code}Exception" for code in gone)}:
            raise
        return False
    return True


def _find_balancer(aws: Aws, data: Mapping[str, Any], key: str = "name") -> Any:
    balancer = read.read_load_balancer(aws, data[key])
    if balancer is None or not _owned(balancer.tags, data):
        return None
    return balancer


def _delete_load_balancer(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    balancer = _find_balancer(aws, data)
    if balancer is None:
        return
    report(f"deleting load balancer {balancer.name}")
    if _call_unless_gone(aws, "elbv2", "delete_load_balancer", ("LoadBalancerNotFound",),
                         LoadBalancerArn=balancer.arn):
        _wait_deleted(aws, balancer.arn, balancer.name, report)


def _wait_deleted(aws: Aws, arn: str, name: str, report: Report) -> None:
    from botocore.exceptions import WaiterError

    report(f"waiting until {name} is deleted")
    delay = max(timing.POLL_SECONDS, 0.01)
    waiter = aws.client("elbv2").get_waiter("load_balancers_deleted")
    try:
        waiter.wait(LoadBalancerArns=[arn],
                    WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timing.DELETE_TIMEOUT / delay))})
    except WaiterError as exc:
        raise AwsError(f"The load balancer {name} was not deleted within {timing.DELETE_TIMEOUT:.0f} s ({exc}).",
                       "Look at it in the EC2 console; run the rollback again once it is gone.") from exc


def _find_listener(aws: Aws, data: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """(balancer, listener) for the listener on ``data``'s port, when this setup made it."""
    balancer = _find_balancer(aws, data, "load_balancer")
    listener = balancer.listener(int(data["port"])) if balancer else None
    if listener is None or not _owned(listener.tags, data):
        return None
    return balancer, listener


def _delete_listener(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    found = _find_listener(aws, data)
    if found is None:
        return
    balancer, listener = found
    report(f"deleting listener {listener.protocol} {listener.port} of {balancer.name}")
    _call_unless_gone(aws, "elbv2", "delete_listener", ("ListenerNotFound",), ListenerArn=listener.arn)


def _find_rule(aws: Aws, data: Mapping[str, Any]) -> Any:
    balancer = _find_balancer(aws, data, "load_balancer")
    listener = balancer.listener(int(data["port"])) if balancer else None
    if listener is None:
        return None
    rule = next((r for r in listener.rules if not r.is_default and data["path"] in r.paths), None)
    return rule if rule is not None and _owned(rule.tags, data) else None


def _delete_rule(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    rule = _find_rule(aws, data)
    if rule is None:
        return
    report(f"deleting rule {data['path']} on listener {data['port']}")
    _call_unless_gone(aws, "elbv2", "delete_rule", ("RuleNotFound",), RuleArn=rule.arn)


def _revoke(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    """Remove the ingress rule only when it still carries the wizard's description for this setup."""
    group_id = data["group_id"]
    try:
        found = aws.call("ec2", "describe_security_groups", GroupIds=[group_id])["SecurityGroups"]
    except AwsError as exc:
        if exc.code != "InvalidGroup.NotFound":
            raise
        return
    if not found:
        return
    described = found[0]
    port, cidr, source = int(data["port"]), data.get("cidr"), data.get("source_group")
    wanted = data["rule_description"]
    found = False
    for item in described.get("IpPermissions", []):
        if item.get("IpProtocol") != "tcp" or item.get("FromPort") != port or item.get("ToPort") != port:
            continue
        if cidr and any(normal_cidr(str(r.get("CidrIp") or r.get("CidrIpv6"))) == cidr
                        and r.get("Description") == wanted
                        for r in [*item.get("IpRanges", []), *item.get("Ipv6Ranges", [])]):
            found = True
        if source and any(g.get("GroupId") == source and g.get("Description") == wanted
                          for g in item.get("UserIdGroupPairs", [])):
            found = True
    if not found:
        return
    # The description goes along: AWS ignores it when matching, moto needs it.
    report(f"removing TCP {port} from {cidr or source} on {group_id}")
    _call_unless_gone(aws, "ec2", "revoke_security_group_ingress",
                      ("InvalidPermission.NotFound", "InvalidGroup.NotFound"), GroupId=group_id,
                      IpPermissions=[_permission(port, wanted, cidr, source)])


def _restore_target_group(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group = read.read_target_group(aws, data["name"])
    if group is None or not _owned(group.tags, data):
        return
    previous = data["previous"]
    report(f"restoring target group {group.name}")
    aws.call("elbv2", "modify_target_group", TargetGroupArn=group.arn, **previous["health"])
    attributes = [{"Key": k, "Value": v} for k, v in previous.get("attributes", {}).items() if v != ""]
    if attributes:
        aws.call("elbv2", "modify_target_group_attributes", TargetGroupArn=group.arn, Attributes=attributes)


def _restore_load_balancer(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    balancer = _find_balancer(aws, data)
    if balancer is None:
        return
    previous = data["previous"]
    report(f"restoring load balancer {balancer.name}")
    if set(previous["subnets"]) != set(balancer.subnets):
        aws.call("elbv2", "set_subnets", LoadBalancerArn=balancer.arn, Subnets=list(previous["subnets"]))
    if set(previous["security_groups"]) != set(balancer.security_groups) and previous["security_groups"]:
        aws.call("elbv2", "set_security_groups", LoadBalancerArn=balancer.arn,
                 SecurityGroups=list(previous["security_groups"]))
    aws.call("elbv2", "modify_load_balancer_attributes", LoadBalancerArn=balancer.arn,
             Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": str(previous["idle_timeout"])}])


def _restore_listener(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    found = _find_listener(aws, data)
    if found is None:
        return
    balancer, listener = found
    report(f"restoring listener {listener.port} of {balancer.name}")
    previous = dict(data["previous"])
    aws.call("elbv2", "modify_listener", ListenerArn=listener.arn, **previous)


def _restore_rule(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    rule = _find_rule(aws, data)
    if rule is None:
        return
    previous = data["previous"]
    report(f"restoring rule {data['path']} on listener {data['port']}")
    aws.call("elbv2", "modify_rule", RuleArn=rule.arn, Conditions=clean_conditions(previous["Conditions"]),
             Actions=previous["Actions"])


def clean_conditions(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions as describe_rules returns them, in the one spelling modify_rule takes."""
    cleaned = []
    for condition in conditions:
        item = dict(condition)
        if any(key.endswith("Config") for key in item):
            item.pop("Values", None)
        cleaned.append(item)
    return cleaned


def _undo_targets(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group = read.read_target_group(aws, data["name"])
    if group is None or not _owned(group.tags, data):
        return
    present = {(t.id, t.port) for t in group.targets}
    registered = [t for t in data["registered"] if (t["Id"], t["Port"]) in present]
    if registered:
        report(f"deregistering {len(registered)} target(s) from {group.name}")
        aws.call("elbv2", "deregister_targets", TargetGroupArn=group.arn, Targets=registered)
    if data["deregistered"]:
        report(f"registering {len(data['deregistered'])} target(s) back in {group.name}")
        aws.call("elbv2", "register_targets", TargetGroupArn=group.arn, Targets=list(data["deregistered"]))


def _owned_target_group(aws: Aws, data: Mapping[str, Any], name: str) -> Any:
    """The target group ``name``, or None; AwsError when someone else's group now has the name."""
    group = read.read_target_group(aws, name)
    if group is not None and not _owned(group.tags, data):
        raise AwsError(f"A target group named {name} exists, but this setup did not make it, so the wizard "
                       "neither changes it nor points its rule at it.",
                       "Rename or remove that target group, then run the rollback again.")
    return group


def _recreate_target_group(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group = _owned_target_group(aws, data, data["name"])
    if group is None:
        report(f"creating target group {data['name']} again")
        created = aws.call("elbv2", "create_target_group", Name=data["name"], Protocol=data["protocol"],
                           Port=int(data["port"]), VpcId=data["vpc_id"], TargetType=data["target_type"],
                           HealthCheckEnabled=True, **data["health"], Tags=list(data["tags"]))
        arn = created["TargetGroups"][0]["TargetGroupArn"]
    else:
        arn = group.arn
    # Again on a group that exists: a rollback stopped halfway goes on where it stopped.
    if data["attributes"]:
        aws.call("elbv2", "modify_target_group_attributes", TargetGroupArn=arn,
                 Attributes=[{"Key": k, "Value": v} for k, v in data["attributes"].items()])
    if data["targets"]:
        aws.call("elbv2", "register_targets", TargetGroupArn=arn, Targets=list(data["targets"]))


def _recreate_rule(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    balancer = _find_balancer(aws, data, "load_balancer")
    listener = balancer.listener(int(data["port"])) if balancer else None
    if listener is None:
        report(f"listener {data['port']} of {data['load_balancer']} is gone; no rule {data['path']} to put back")
        return
    if any(not rule.is_default and data["path"] in rule.paths for rule in listener.rules):
        return
    arns = {}
    for old in diff.forward_targets(data["actions"]):
        name = diff.target_group_name_of(old)
        group = _owned_target_group(aws, data, name)
        if group is None:
            raise AwsError(f"The rule {data['path']} forwarded to the target group {name}, which does not exist.",
                           "Run the rollback again: it creates the target group before the rule.")
        arns[old] = group.arn
    report(f"creating rule {data['path']} on listener {data['port']} again (priority {data['priority']})")
    aws.call("elbv2", "create_rule", ListenerArn=listener.arn, Priority=int(data["priority"]),
             Conditions=list(data["conditions"]), Actions=_forwarding_to(data["actions"], arns),
             Tags=list(data["tags"]))


def _forwarding_to(actions: list[dict[str, Any]], arns: Mapping[str, str]) -> list[dict[str, Any]]:
    """The actions with each target group's old ARN replaced by the one it has now."""
    rewritten: list[dict[str, Any]] = json.loads(json.dumps(actions))
    for action in rewritten:
        if action.get("TargetGroupArn"):
            action["TargetGroupArn"] = arns[action["TargetGroupArn"]]
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []) or []:
            group["TargetGroupArn"] = arns[group["TargetGroupArn"]]
    return rewritten


def _authorize(aws: Aws, data: Mapping[str, Any], report: Report) -> None:
    group_id, port = data["group_id"], int(data["port"])
    cidr, source = data.get("cidr"), data.get("source_group")
    report(f"letting {cidr or source} reach TCP {port} in {group_id} again")
    try:
        aws.call("ec2", "authorize_security_group_ingress", GroupId=group_id,
                 IpPermissions=[_permission(port, data["rule_description"], cidr, source)],
                 TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": list(data["tags"])}])
    except AwsError as exc:
        # Already there (the revoke never happened, or someone put it back): as wanted.
        if exc.code not in ("InvalidPermission.Duplicate", "InvalidGroup.NotFound"):
            raise


_HANDLERS: dict[tuple[str, str], Callable[[Aws, Mapping[str, Any], Report], None]] = {
    (DELETE, "security-group"): _delete_security_group,
    (DELETE, "target-group"): _delete_target_group,
    (DELETE, "load-balancer"): _delete_load_balancer,
    (DELETE, "listener"): _delete_listener,
    (DELETE, "rule"): _delete_rule,
    (REVOKE, "security-group-ingress"): _revoke,
    (RESTORE, "target-group"): _restore_target_group,
    (RESTORE, "load-balancer"): _restore_load_balancer,
    (RESTORE, "listener"): _restore_listener,
    (RESTORE, "rule"): _restore_rule,
    (TARGETS, "targets"): _undo_targets,
    (RECREATE, "target-group"): _recreate_target_group,
    (RECREATE, "rule"): _recreate_rule,
    (RECREATE, "security-group-ingress"): _authorize,
}
