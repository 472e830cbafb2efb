"""Waiting for the balancer and its targets, and saying why a target is not healthy.

AWS reports each target's state with a reason code; the admin needs the likely
cause behind it (a closed port, a wrong health path, a node that is down), so
every unhealthy target is shown with both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wizard.balancers.alb import timing
from wizard.balancers.alb.desired import TargetGroupSpec
from wizard.balancers.alb.facts import RegisteredTarget
from wizard.balancers.alb.read import target_fact
from wizard.engine.model import Check
from wizard.transport.aws import Aws, AwsError

Report = Callable[[str, float | None], None]

#: AWS's reason codes (TargetHealth.Reason) and what usually lies behind them.
#: {port} and {path} are the target's port and the group's health-check path.
LIKELY_CAUSES = {
    "Elb.RegistrationInProgress": "the target is still being registered; wait a minute and check again",
    "Elb.InitialHealthChecking": "the first health checks are still running; wait a minute and check again",
    "Target.ResponseCodeMismatch": ("wrong health path, or the node is not ready: {path} did not answer 200 "
                                    "(302: the path or the context path is wrong; 503: Confluence is starting "
                                    "or in maintenance; 404: nothing is served there)"),
    "Target.Timeout": ("port closed: the nodes' security group (or a firewall on the node) does not let the "
                       "balancer reach port {port}, or the node is down"),
    "Target.FailedHealthChecks": ("node down or port closed: nothing answered on port {port} (is Confluence or "
                                  "Synchrony running, and listening on that port?)"),
    "Target.NotRegistered": "the node is not registered in this target group: run `apply --only balancer`",
    "Target.NotInUse": ("no listener or rule sends traffic to this group yet, or the node's availability zone "
                        "is not one of the balancer's subnets' zones"),
    "Target.DeregistrationInProgress": "the target is being deregistered",
    "Target.InvalidState": "the instance is stopped or terminated: start it",
    "Target.IpUnusable": "the IP address cannot be a target (it belongs to a load balancer or is not usable)",
    "Target.HealthCheckDisabled": "health checks are disabled on the target group",
    "Elb.InternalError": "an AWS-side error; wait and check again",
}


def likely_cause(reason: str, port: int, path: str) -> str:
    text = LIKELY_CAUSES.get(reason, "see the target group's Targets tab in the EC2 console")
    return text.format(port=port, path=path)


def describe_target(target: RegisteredTarget) -> str:
    text = f"{target.id}:{target.port} {target.state}"
    if target.reason:
        text += f" ({target.reason}{': ' + target.description if target.description else ''})"
    return text


def target_checks(spec: TargetGroupSpec, targets: tuple[RegisteredTarget, ...]) -> list[Check]:
    """One check per node: is its target in this group healthy, and if not, probably why."""
    by_key = {(t.id, t.port): t for t in targets}
    checks = []
    for wanted in spec.targets:
        name = f"{spec.label} target healthy"
        found = by_key.get((wanted.id, wanted.port))
        if found is None:
            checks.append(Check(name, wanted.node, False, f"{wanted.id}:{wanted.port} is not in {spec.name}",
                                likely_cause("Target.NotRegistered", wanted.port, spec.health_path)))
            continue
        healthy = found.state == "healthy"
        checks.append(Check(name, wanted.node, healthy, f"{spec.name}: {describe_target(found)}",
                            "" if healthy else
                            f"Likely cause: {likely_cause(found.reason, wanted.port, spec.health_path)}."))
    return checks


def read_health(aws: Aws, arn: str) -> tuple[RegisteredTarget, ...]:
    response = aws.call("elbv2", "describe_target_health", TargetGroupArn=arn)
    return tuple(target_fact(item) for item in response.get("TargetHealthDescriptions", []))


@dataclass(frozen=True)
class WaitResult:
    done: bool
    message: str


def wait_active(aws: Aws, arn: str, name: str, report: Report,
                check_cancelled: Callable[[], None] = lambda: None) -> WaitResult:
    """Until the balancer is active; AwsError if AWS says it failed."""
    deadline = timing.now() + timing.ACTIVE_TIMEOUT
    while True:
        check_cancelled()
        found = aws.call("elbv2", "describe_load_balancers", LoadBalancerArns=[arn])["LoadBalancers"]
        state = found[0].get("State", {}) if found else {"Code": "deleted"}
        code = state.get("Code", "")
        if code == "active":
            report(f"{name} is active", 1.0)
            return WaitResult(True, f"{name} is active")
        if code in ("failed", "deleted"):
            raise AwsError(f"AWS reports the load balancer {name} as {code}"
                           f"{': ' + state['Reason'] if state.get('Reason') else ''}.",
                           "Look at the balancer in the EC2 console; roll back the balancer step and apply it again.")
        if timing.now() >= deadline:
            return WaitResult(False, f"{name} was still {code} after {timing.ACTIVE_TIMEOUT:.0f} s; AWS usually "
                                     "needs a few minutes: `verify` shows when it is active")
        report(f"{name} is {code}; waiting until it is active", None)
        timing.sleep(timing.POLL_SECONDS)


def wait_healthy(aws: Aws, groups: list[tuple[TargetGroupSpec, str]], report: Report,
                 check_cancelled: Callable[[], None] = lambda: None) -> WaitResult:
    """Until every node's target in every group is healthy, reporting how many are."""
    wanted = sum(len(spec.targets) for spec, _ in groups)
    deadline = timing.now() + timing.HEALTHY_TIMEOUT
    while True:
        check_cancelled()
        failing: list[Check] = []
        for spec, arn in groups:
            failing += [c for c in target_checks(spec, read_health(aws, arn)) if not c.passed]
        healthy = wanted - len(failing)
        if not failing:
            report(f"all {wanted} target(s) healthy", 1.0)
            return WaitResult(True, f"all {wanted} target(s) healthy")
        waiting = "; ".join(f"{c.target}: {c.seen}" for c in failing)
        if timing.now() >= deadline:
            causes = "; ".join(f"{c.target} {c.name.split()[0]}: {c.fix}" for c in failing)
            return WaitResult(False, f"{healthy} of {wanted} target(s) healthy after "
                                     f"{timing.HEALTHY_TIMEOUT:.0f} s ({waiting}). {causes}")
        report(f"{healthy} of {wanted} target(s) healthy; waiting for {waiting}", healthy / wanted if wanted else None)
        timing.sleep(timing.POLL_SECONDS)
