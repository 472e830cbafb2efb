"""The balancer's checks for ``verify``: each setting the seeds and the Quick Start ask for.

Built from the same facts and comparisons as the plan, so a check fails
exactly when ``apply`` would change something, plus the targets' health with
AWS's reason code and the likely cause.
"""

from __future__ import annotations

from wizard.balancers.alb import diff
from wizard.balancers.alb.desired import (
    IDLE_TIMEOUT_FLOOR,
    IDLE_TIMEOUT_KEY,
    STICKINESS,
    Desired,
    TargetGroupSpec,
)
from wizard.balancers.alb.facts import AlbFacts, SecurityGroupFact, TargetGroupFact
from wizard.balancers.alb.health import target_checks
from wizard.engine.model import BALANCER, Check
from wizard.transport.aws import AwsError

FIX = "Run `apply --only balancer` to put it right."


def balancer_checks(desired: Desired, facts: AlbFacts) -> list[Check]:
    checks: list[Check] = []
    checks += _security_group_checks(desired, facts)
    for spec in desired.target_groups:
        group = facts.target_groups.get(spec.key)
        name = f"{spec.label} target group"
        if group is None:
            checks.append(Check(name, BALANCER, False, f"{spec.name} does not exist", FIX))
            continue
        checks.append(_settings_check(name, spec, group))
        sticky = {k: group.attributes.get(k) for k in STICKINESS}
        checks.append(Check(f"{spec.label} stickiness", BALANCER, sticky == STICKINESS,
                            f"{spec.name}: " + ", ".join(f"{k}={v}" for k, v in sticky.items()),
                            "" if sticky == STICKINESS else
                            f"Without lb_cookie stickiness users are logged out at random. {FIX}"))
        checks += target_checks(spec, group.targets)
    checks += _balancer_checks(desired, facts)
    return checks


def _settings_check(name: str, spec: TargetGroupSpec, group: TargetGroupFact) -> Check:
    try:
        differences = diff.health_differences(diff.target_group_differences(spec, group))
    except AwsError as exc:  # a protocol or target type AWS cannot change in place
        return Check(name, BALANCER, False, exc.message, exc.hint or FIX)
    seen = (f"{group.name}: {group.protocol} {group.port}, health {group.health_protocol} {group.health_path} every "
            f"{group.interval} s (timeout {group.timeout} s, healthy after {group.healthy_threshold}, "
            f"codes {group.matcher})")
    return Check(name, BALANCER, not differences, seen,
                 f"Should be: {diff.describe_all(differences)}. {FIX}" if differences else "")


def _security_group_checks(desired: Desired, facts: AlbFacts) -> list[Check]:
    group = facts.security_group
    if group is None or not desired.names.owns(group.tags):
        return [Check("balancer security group", BALANCER, False,
                      f"{desired.names.security_group} does not exist in {desired.vpc_id}", FIX)]
    checks = [_balancer_ingress_check(desired, group)]
    if desired.node_security_group:
        missing_nodes = diff.missing_node_ingress(desired, facts.env.node_security_group, group.id)
        wanted = ", ".join(f"{rule.port} ({rule.purpose})" for rule in desired.node_ingress)
        checks.append(Check(
            "nodes' security group", BALANCER, not missing_nodes,
            f"{desired.node_security_group} lets the balancer reach "
            + (", ".join(f"{r.port}" for r in desired.node_ingress if r not in missing_nodes) or "no node port"),
            f"The balancer cannot reach TCP {', '.join(str(r.port) for r in missing_nodes)} on the nodes, so "
            f"their targets stay unhealthy (it needs {wanted}). {FIX}" if missing_nodes else ""))
    return checks


def _balancer_ingress_check(desired: Desired, group: SecurityGroupFact) -> Check:
    """The listener ports admit exactly the allowed networks, as far as this setup's rules go.

    Passes when every (port, network) pair is admitted and no rule this setup made admits anything
    else. Rules the admin added to the group by hand (without the wizard's description) are shown,
    not failed: apply never touches them, so failing on them would leave a check no run can fix;
    the admin sees who else they let in and removes them if that was not meant.
    """
    missing = diff.missing_balancer_ingress(desired, group)
    stale = diff.stale_balancer_ingress(desired, group)
    foreign = diff.foreign_balancer_ingress(desired, group)
    admitted: dict[int, list[str]] = {}
    for rule in desired.balancer_ingress:
        admitted.setdefault(rule.port, [])
        if rule not in missing:
            admitted[rule.port].append(rule.cidr or "")
    seen = f"{group.name} ({group.id}): " + "; ".join(
        f"TCP {port} from {', '.join(cidrs) or 'none of the allowed networks'}" for port, cidrs in admitted.items())
    if foreign:
        seen += ("; also rules not made by this setup (left alone): "
                 + ", ".join(f"TCP {port} from {source}" for port, source in foreign))
    problems = []
    if missing:
        problems.append("it does not let in " + ", ".join(f"TCP {r.port} from {r.cidr}" for r in missing))
    if stale:
        problems.append("rules this setup made still let in " + ", ".join(f"TCP {r.port} from {r.cidr}" for r in stale)
                        + ", which balancer.alb.allowed_cidrs no longer lists")
    fix = (f"The listener ports must admit exactly {', '.join(desired.allowed_cidrs)}: {'; '.join(problems)}. {FIX}"
           if problems else "")
    return Check("balancer security group", BALANCER, not problems, seen, fix)


def _balancer_checks(desired: Desired, facts: AlbFacts) -> list[Check]:
    balancer = facts.load_balancer
    name = desired.names.load_balancer
    if balancer is None or not desired.names.owns(balancer.tags):
        return [Check("Application Load Balancer", BALANCER, False, f"{name} does not exist in {desired.region}", FIX)]
    active = balancer.state == "active"
    checks = [Check("Application Load Balancer", BALANCER, active,
                    f"{name} is {balancer.state} ({balancer.dns_name})",
                    "" if active else "AWS needs a few minutes to make a balancer active; check again soon, or "
                                      "look at it in the EC2 console.")]
    timeout = balancer.attributes.get(IDLE_TIMEOUT_KEY, "60")
    # The floor holds whatever the answers say: under 300 s the editor's WebSockets drop.
    floor = max(IDLE_TIMEOUT_FLOOR, desired.idle_timeout)
    long_enough = timeout.isdigit() and int(timeout) >= floor
    fix = f"Under {floor} s the balancer drops idle editor WebSockets. {FIX}"
    if desired.idle_timeout < IDLE_TIMEOUT_FLOOR:
        fix = (f"Under {IDLE_TIMEOUT_FLOOR} s the balancer drops idle editor WebSockets: set "
               f"balancer.alb.idle_timeout to {IDLE_TIMEOUT_FLOOR} or more (it says {desired.idle_timeout}), "
               f"then {FIX[0].lower()}{FIX[1:]}")
    checks.append(Check("idle timeout", BALANCER, long_enough, f"{timeout} s", "" if long_enough else fix))
    confluence = facts.target_groups.get("confluence")
    for spec in desired.listeners:
        label = f"{spec.protocol} listener {spec.port}"
        listener = balancer.listener(spec.port)
        if listener is None:
            checks.append(Check(label, BALANCER, False, f"no listener on port {spec.port}", FIX))
            continue
        differences = diff.listener_differences(spec, listener, confluence.arn if confluence else None)
        seen = f"{listener.protocol} {listener.port}: {diff.describe_actions(listener.default_actions)}"
        if listener.protocol == "HTTPS":
            seen += f", certificate {', '.join(listener.certificates) or '(none)'}, policy {listener.ssl_policy}"
        checks.append(Check(label, BALANCER, not differences, seen,
                            f"Should be: {diff.describe_all(differences)}. {FIX}" if differences else ""))
    if desired.rule is not None:
        rule_spec = desired.rule
        synchrony = facts.target_groups.get("synchrony")
        rule = diff.find_rule(balancer.listener(rule_spec.listener_port), rule_spec)
        label = f"{rule_spec.path} rule"
        if rule is None:
            checks.append(Check(label, BALANCER, False, f"no {rule_spec.path} rule on listener "
                                f"{rule_spec.listener_port}", f"Without it the editor cannot reach Synchrony. {FIX}"))
        else:
            differences = diff.rule_differences(rule_spec, rule, synchrony.arn if synchrony else None)
            checks.append(Check(label, BALANCER, not differences,
                                f"priority {rule.priority}: {diff.describe_actions(rule.actions)}",
                                f"Should be: {diff.describe_all(differences)}. {FIX}" if differences else ""))
    return checks
