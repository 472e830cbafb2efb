"""Draining a node on the ALB for a rolling restart: its targets deregistered, then registered again.

An ALB has no drain flag. A deregistered target goes ``draining``: the balancer sends it no
new request, sticky users included (their ``AWSALB`` cookie names a target that is no longer
in the group, so they are balanced anew), and lets the requests under way finish for the
group's deregistration delay (``deregistration_delay.timeout_seconds``, which the balancer
step sets from ``restart_drain``); then AWS drops it from the group. So a drain deregisters
the node's target from each target group of this setup that holds the node (Confluence's,
and Synchrony's in direct mode; in standalone mode Synchrony's group holds the Synchrony
machines, not the node) and returns once AWS no longer lists it: that wait IS the wait for
the requests under way, so the roll adds none of its own. An undrain registers it again
and returns once AWS reports it ``healthy`` in every group; the Confluence group's health
check (200 from ``<context>/status``, which answers 503 while Confluence is STARTING) only
says so of a node that is RUNNING, which ``starting_check`` makes verify hold to.

The target groups are found by name and must carry this setup's tags, as plan and apply
find them; the node's target is the one ``desired`` registers for it. Both waits are
bounded (``timing.DRAIN_MARGIN`` past the delay; ``timing.UNDRAIN_TIMEOUT``). A drain that
fails registers again what it deregistered, so the balancer still sends the node its users
(what ``BalancerKind.drain`` promises); a failed undrain leaves the node out and says why.

What moto's server (the tests' AWS) does not model: a deregistered target leaves the group
at once (never ``draining``), a registered one is ``healthy`` at once (never ``initial``),
and no health check is ever made. The tests fake those states through a client hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wizard.answers_model import Answers
from wizard.balancers.alb import timing
from wizard.balancers.alb.desired import (
    DEREGISTRATION_DELAY_KEY,
    Desired,
    TargetGroupSpec,
    TargetSpec,
    build_desired,
)
from wizard.balancers.alb.facts import AlbFacts, RegisteredTarget, TargetGroupFact
from wizard.balancers.alb.health import describe_target, likely_cause, read_health
from wizard.balancers.alb.names import Names
from wizard.engine.model import BALANCER, Check
from wizard.errors import Interrupted, WizardError
from wizard.transport.aws import Aws, AwsError

Report = Callable[[str], None]

#: What drain and undrain do, for the restart's plan.
SUMMARY = ("the ALB deregisters its targets: no new request goes to it, sticky users included, and the "
           "requests under way get the target groups' deregistration delay (restart_drain) to finish")
#: Target states AWS never leaves on its own: waiting for "healthy" is pointless.
NEVER_HEALTHY = frozenset({"Target.NotInUse", "Target.InvalidState", "Target.IpUnusable"})
#: What /status answers while Confluence is STARTING: the Confluence group must not count it as healthy.
STARTING_STATUS = 503
STARTING_CHECK = "Confluence health check refuses a STARTING node"
_APPLY = "Run `confluence-lb-wizard apply --only balancer` to put the balancer right, then run the restart again."


@dataclass(frozen=True)
class Membership:
    """One of a node's targets: which target group of this setup holds it, and as which target."""

    spec: TargetGroupSpec
    group: TargetGroupFact
    target: TargetSpec

    def describe(self) -> str:
        return f"{self.target.id}:{self.target.port} in {self.group.name}"

    def seen(self, targets: tuple[RegisteredTarget, ...]) -> RegisteredTarget | None:
        """The target as AWS lists it now, or None when AWS no longer holds it (deregistered)."""
        return next((t for t in targets if t.id == self.target.id and t.port == self.target.port
                     and not (t.state == "unused" and t.reason == "Target.NotRegistered")), None)


def group_names(answers: Answers) -> list[str]:
    """The target groups that hold a Confluence node of this setup (pure: for the plan)."""
    names = Names.of(answers)
    found = [names.confluence_target_group]
    if answers.synchrony.mode == "direct":
        found.append(names.synchrony_target_group)
    return found


def drain_timeout(seconds: float) -> float:
    """How long a drain waits for AWS, the deregistration delay being ``seconds``."""
    return seconds + timing.DRAIN_MARGIN


def describe_drain(answers: Answers, node: str) -> str:
    """The restart plan's words for draining ``node`` on the ALB."""
    groups = group_names(answers)
    return (f"deregister {node} from the target group{'s' if len(groups) > 1 else ''} {' and '.join(groups)} and wait "
            f"up to {drain_timeout(answers.restart_drain):.0f} s for AWS to finish: no new request goes to it, "
            f"sticky users included, and the requests under way get {answers.restart_drain} s (the groups' "
            "deregistration delay)")


def describe_undrain(answers: Answers, node: str) -> str:
    """The restart plan's words for putting ``node`` back on the ALB."""
    return (f"register {node} again in {' and '.join(group_names(answers))} and wait up to "
            f"{timing.UNDRAIN_TIMEOUT:.0f} s until AWS reports it healthy there (the Confluence group's health "
            "check passes only for a node answering RUNNING)")


def memberships(answers: Answers, facts: AlbFacts, node: str) -> list[Membership]:
    """The node's target in each target group of this setup that holds it; AwsError when a
    group is missing or is not this setup's (the balancer step was not applied, or was undone)."""
    desired = build_desired(answers, facts)
    names = desired.names
    found = []
    for spec in desired.target_groups:
        if spec.key == "synchrony" and answers.synchrony.mode != "direct":
            continue  # standalone: the group holds the Synchrony machines, which a node's restart leaves alone
        group = facts.target_groups.get(spec.key)
        if group is None or not names.owns(group.tags):
            why = "does not exist" if group is None else "does not carry this setup's tags"
            raise AwsError(f"The target group {spec.name} {why}, so the wizard cannot take {node} out of the "
                           "balancer or put it back. Nothing was changed.", _APPLY)
        target = next((t for t in spec.targets if t.node == node), None)
        if target is None:
            raise AwsError(f"{node} is not one of the nodes of the target group {spec.name}. Nothing was changed.",
                           "Name nodes as nodes[].name spells them.")
        found.append(Membership(spec, group, target))
    return found


def _delay(group: TargetGroupFact) -> int | None:
    value = group.attributes.get(DEREGISTRATION_DELAY_KEY, "")
    return int(value) if str(value).isdigit() else None


def drain(aws: Aws, answers: Answers, facts: AlbFacts, node: str, report: Report,
          check_cancelled: Callable[[], None] = lambda: None) -> None:
    """Deregister ``node`` from this setup's target groups and return once AWS has let go of it.

    Refused, with nothing changed, when a group's deregistration delay is not ``restart_drain``
    (the balancer step was not applied with these answers). A drain that fails or times out
    registers again what it deregistered and raises. A node already deregistered changes nothing.
    """
    items = memberships(answers, facts, node)
    for item in items:
        if _delay(item.group) != answers.restart_drain:
            raise AwsError(
                f"The target group {item.group.name} lets a drained node finish its requests for "
                f"{item.group.attributes.get(DEREGISTRATION_DELAY_KEY, '(unknown)')} s, not restart_drain "
                f"({answers.restart_drain} s): the balancer step was not applied with these answers, so the wait "
                f"the plan promised would not hold. {node} was not drained; nothing was changed.", _APPLY)
    deregistered: list[Membership] = []
    try:
        for item in items:
            current = item.seen(item.group.targets)
            if current is None or current.state == "draining":
                continue  # already on its way out (a resumed roll): nothing to ask again
            report(f"deregistering {node} ({item.describe()})")
            aws.call("elbv2", "deregister_targets", TargetGroupArn=item.group.arn,
                     Targets=[{"Id": item.target.id, "Port": item.target.port}])
            deregistered.append(item)
        _wait_deregistered(aws, items, node, drain_timeout(answers.restart_drain), report, check_cancelled)
    except WizardError as exc:
        # Cancelled or failed: the restart records the drain as failed, so the node must be back.
        put_back = _register_again(aws, deregistered)
        message = f"{exc.message} {put_back}".strip()
        if isinstance(exc, Interrupted):
            raise Interrupted(message, exc.hint) from exc
        raise AwsError(message, exc.hint, code=getattr(exc, "code", ""), action=getattr(exc, "action", "")) from exc


def _register_again(aws: Aws, items: list[Membership]) -> str:
    """After a failed drain: what it deregistered registered again; says how that went."""
    if not items:
        return ""
    failed = []
    for item in items:
        try:
            aws.call("elbv2", "register_targets", TargetGroupArn=item.group.arn, Targets=[item.target.api()])
        except AwsError as exc:
            failed.append(f"{item.describe()} ({exc.message})")
    if failed:
        return ("It could NOT be registered again: " + "; ".join(failed) + ": the balancer sends it no users there "
                "until `confluence-lb-wizard apply --only balancer` (or the next restart) registers it.")
    return ("It was registered again (" + ", ".join(i.describe() for i in items) + "): AWS sends it users once its "
            "health checks pass.")


def _wait_deregistered(aws: Aws, items: list[Membership], node: str, timeout: float, report: Report,
                       check_cancelled: Callable[[], None]) -> None:
    """Until AWS no longer lists the node's targets (draining ends); AwsError after ``timeout``."""
    deadline = timing.now() + timeout
    while True:
        check_cancelled()
        pending = [(item, found) for item in items
                   if (found := item.seen(read_health(aws, item.group.arn))) is not None]
        if not pending:
            return
        shown = "; ".join(f"{describe_target(found)} in {item.group.name}" for item, found in pending)
        if timing.now() >= deadline:
            raise AwsError(
                f"AWS had not let go of {node} {timeout:.0f} s after its deregistration ({shown}).",
                "Look at the target groups in the EC2 console (Targets tab): a target stays draining while its "
                "deregistration delay runs. Run the restart again once it is gone; it drains the node again.")
        report(f"{node}: waiting for AWS to finish draining it ({shown})")
        timing.sleep(timing.POLL_SECONDS)


def undrain(aws: Aws, answers: Answers, facts: AlbFacts, node: str, report: Report,
            check_cancelled: Callable[[], None] = lambda: None) -> None:
    """Register ``node`` again in this setup's target groups and return once AWS reports it healthy
    in each; AwsError (naming the node, its state and the likely cause) when it does not become so."""
    items = memberships(answers, facts, node)
    for item in items:
        current = item.seen(item.group.targets)
        if current is not None and current.state != "draining":
            continue  # registered already (a resumed roll): only the wait is left
        report(f"registering {node} again ({item.describe()})")
        aws.call("elbv2", "register_targets", TargetGroupArn=item.group.arn, Targets=[item.target.api()])
    _wait_healthy(aws, items, node, report, check_cancelled)


def _wait_healthy(aws: Aws, items: list[Membership], node: str, report: Report,
                  check_cancelled: Callable[[], None]) -> None:
    deadline = timing.now() + timing.UNDRAIN_TIMEOUT
    while True:
        check_cancelled()
        waiting: list[tuple[Membership, RegisteredTarget | None]] = []
        for item in items:
            found = item.seen(read_health(aws, item.group.arn))
            if found is None or found.state != "healthy":
                waiting.append((item, found))
        if not waiting:
            return
        shown = "; ".join(f"{describe_target(found)} in {item.group.name}" if found is not None
                          else f"{item.describe()}: not registered" for item, found in waiting)
        stuck = [(item, found) for item, found in waiting
                 if found is None or (found.state == "unused" and found.reason in NEVER_HEALTHY)]
        if stuck or timing.now() >= deadline:
            item, found = (stuck or waiting)[0]
            reason = found.reason if found is not None else "Target.NotRegistered"
            when = "" if stuck else f" after {timing.UNDRAIN_TIMEOUT:.0f} s"
            raise AwsError(
                f"{node} is not healthy in the balancer{when} ({shown}): AWS sends it no users.",
                f"Likely cause: {likely_cause(reason, item.target.port, item.spec.health_path)}.")
        report(f"{node}: waiting for AWS to report it healthy ({shown})")
        timing.sleep(timing.POLL_SECONDS)


# --- verify -------------------------------------------------------------------------------

def starting_accepted(matcher: str, path: str, status_path: str) -> str:
    """Why a health check with these success codes and path would count a STARTING Confluence
    node as healthy (and so send it users mid-restart), or "" when it would not."""
    if path != status_path:
        return (f"it checks {path or '(no path)'}, not {status_path}, which is what answers "
                f"{STARTING_STATUS} while Confluence is STARTING")
    for part in (matcher or "").split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return f"its success codes {matcher!r} cannot be read"
        if int(low) <= STARTING_STATUS <= int(high or low):
            return f"its success codes {matcher} include {STARTING_STATUS}, what {status_path} answers while " \
                   "Confluence is STARTING"
    return ""


def drain_checks(desired: Desired, facts: AlbFacts) -> list[Check]:
    """What a drained restart relies on: each group's deregistration delay is ``restart_drain``,
    and the Confluence group's health check does not take a STARTING node as healthy."""
    found = []
    for spec in desired.target_groups:
        group = facts.target_groups.get(spec.key)
        if group is None:
            continue  # the balancer checks say it is missing
        wanted = spec.attributes[DEREGISTRATION_DELAY_KEY]
        current = group.attributes.get(DEREGISTRATION_DELAY_KEY)
        ok = current == wanted
        found.append(Check(f"{spec.label} deregistration delay", BALANCER, ok,
                           f"{group.name}: {current if current is not None else '(unknown)'} s",
                           "" if ok else f"A node drained for a restart keeps its requests under way for the "
                                         f"group's deregistration delay, which should be restart_drain ({wanted} s). "
                                         "Run `apply --only balancer` to put it right."))
        if spec.key == "confluence":
            why = starting_accepted(group.matcher, group.health_path, spec.health_path)
            found.append(Check(STARTING_CHECK, BALANCER, not why,
                               f"{group.name}: {group.health_path or '(no path)'} must answer {group.matcher}",
                               "" if not why else
                               f"The balancer would count a node in the middle of its restart as healthy and send it "
                               f"users: {why}. Run `apply --only balancer` to set it to {spec.health_path} "
                               f"answering {spec.matcher}."))
    return found

