"""Balancer, kind alb: the AWS Application Load Balancer of seeds 000 and 001, through boto3.

inspect reads the nodes' ports and what AWS holds (``wizard.balancers.alb.read``); plan
compares it with what the seeds and the Quick Start ask for
(``wizard.balancers.alb.desired``, ``wizard.balancers.alb.plan``); apply re-reads, makes sure
nothing moved since the plan, then creates only what is missing and fixes
what differs, recording each undo before its call (``wizard.balancers.alb.apply``), and
waits for the balancer and its targets; verify checks every setting and the
targets' health; undo deletes or restores only what this setup made
(``wizard.balancers.alb.undo``). For the rolling restart, drain and undrain deregister a
node's targets and register them again (``wizard.balancers.alb.drain``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from wizard.answers_model import AlbOptions, Answers, Node
from wizard.balancers.alb import drain as alb_drain
from wizard.balancers.alb import undo as alb_undo
from wizard.balancers.alb.apply import Executor, Report
from wizard.balancers.alb.checks import balancer_checks
from wizard.balancers.alb.desired import Desired, build_desired, ingress_marker
from wizard.balancers.alb.facts import AlbFacts, NodePorts
from wizard.balancers.alb.health import wait_active, wait_healthy
from wizard.balancers.alb.plan import noop_reason, plan_changes
from wizard.balancers.alb.read import read_facts
from wizard.balancers.kind import BalancerKind, DrainSupport
from wizard.confluence.checks import public_host_header
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.probes import Endpoint
from wizard.engine.model import BALANCER, Check, Plan, ResourceChange, UndoAction
from wizard.engine.step import Context, Journal
from wizard.errors import ChangedSincePlanError, WizardError
from wizard.transport.aws import Aws, AwsError, connect


def options(answers: Answers) -> AlbOptions:
    alb = answers.balancer.alb
    if alb is None:
        raise WizardError("The answers have no balancer.alb section.", "Add balancer.alb to the answers file.")
    return alb


class AlbBalancerStep(BalancerKind[AlbFacts]):
    kind = "alb"
    sticky_cookie = "AWSALB"
    title = "AWS Application Load Balancer"
    explanation = ("Builds the Application Load Balancer of Atlassian's guide and Quick Start: a security group "
                   "for it, the nodes' group opened to it, sticky Confluence and Synchrony target groups with "
                   "every node, HTTPS with your certificate, HTTP redirecting to HTTPS, the /synchrony/* rule, "
                   "and a 300 s idle timeout. Everything is tagged with this setup's name.")
    rollback_note = ("The load balancer and everything the wizard made for it are deleted; if DNS already "
                     "points at it, point it elsewhere.")
    can_drain = True
    drain_summary = alb_drain.SUMMARY

    def endpoint(self, ctx: Context) -> Endpoint:
        options_ = options(ctx.answers)
        balancer = self.inspect(ctx).load_balancer
        if balancer is None or not balancer.dns_name:
            raise WizardError("The Application Load Balancer does not exist yet, so nothing can be checked "
                              "through it.", "Run `confluence-lb-wizard apply --only balancer` first.")
        tls = options_.certificate_arn is not None
        public = ctx.answers.public_url
        return Endpoint("https" if tls else "http", balancer.dns_name, 443 if tls else 80,
                        public_host_header(public), public.host, (80,) if tls else ())

    def session(self, answers: Answers) -> Aws:
        alb = options(answers)
        return connect(alb.region, alb.profile)

    def inspect(self, ctx: Context) -> AlbFacts:
        return self._read(ctx, self.session(ctx.answers))

    def _read(self, ctx: Context, aws: Aws) -> AlbFacts:
        nodes = tuple(ctx.for_each_node(lambda node: _node_ports(ctx, node)))
        ctx.progress(self.name, BALANCER, f"reading AWS in {aws.region}")
        return read_facts(aws, ctx.answers, nodes)

    def plan(self, answers: Answers, facts: AlbFacts) -> Plan:
        desired = build_desired(answers, facts)
        changes = plan_changes(desired, facts)
        note = _unmanaged_nodes_note(desired)
        if not changes:
            return Plan(self.name, f"the load balancer {desired.names.load_balancer} is in place",
                        noop_reason=noop_reason(desired, facts) + note + f" Settings: {desired.settings_note}.")
        actions_planned = [c.details.action for c in changes if isinstance(c.details, ResourceChange)]
        counted = {verb: sum(1 for action in actions_planned if action in actions)
                   for verb, actions in (("create", ("create",)), ("modify", ("modify",)),
                                         ("add", ("authorize", "register")),
                                         ("remove", ("delete", "revoke")))}
        counts = ", ".join(f"{count} to {verb}" for verb, count in counted.items() if count)
        summary = (f"load balancer {desired.names.load_balancer} in {desired.region}: {counts} "
                   f"(account {facts.env.account}, as {facts.env.caller_arn}){note}. Settings: {desired.settings_note}")
        return Plan(self.name, summary, changes)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        aws = self.session(ctx.answers)
        facts = self._read(ctx, aws)
        fresh = self.plan(ctx.answers, facts)
        if [c.summary for c in fresh.changes] != [c.summary for c in plan.changes]:
            raise ChangedSincePlanError(
                "What AWS holds changed since the plan was shown, so nothing was changed.",
                "Run the step again to see the plan for what is there now.")
        desired = build_desired(ctx.answers, facts)

        def report(message: str, fraction: float | None = None) -> None:
            ctx.progress(self.name, BALANCER, message, fraction)

        executor = Executor(aws, desired, facts, journal, report, ctx.check_cancelled)
        executor.run(fresh.changes)
        return f"{len(fresh.changes)} change(s) made; " + self._wait(aws, desired, executor, report, ctx)

    def _wait(self, aws: Aws, desired: Desired, executor: Executor, report: Report, ctx: Context) -> str:
        """Until the balancer is active and its targets healthy; a timeout is reported, not fatal:
        the balancer is right, and verify shows each target's state and likely cause."""
        if executor.load_balancer is None:
            return "no load balancer to wait for"
        active = wait_active(aws, executor.load_balancer, desired.names.load_balancer, report, ctx.check_cancelled)
        if not active.done:
            return active.message
        groups = [(spec, executor.target_groups[spec.key]) for spec in desired.target_groups]
        healthy = wait_healthy(aws, groups, report, ctx.check_cancelled)
        return f"{active.message}; {healthy.message}"

    def verify(self, ctx: Context) -> list[Check]:
        try:
            facts = self.inspect(ctx)
            desired = build_desired(ctx.answers, facts)
        except WizardError as exc:
            return [Check("AWS load balancer", BALANCER, False, exc.message, exc.hint or "")]
        return balancer_checks(desired, facts) + alb_drain.drain_checks(desired, facts)

    # Draining, for the rolling restart (``wizard.balancers.alb.drain``).

    def drain_support(self, answers: Answers) -> DrainSupport:
        # The drain returns once AWS let go of the node: that is the wait for the requests under way.
        return DrainSupport(True, self.drain_summary, waits_for_requests=True)

    def describe_drain(self, answers: Answers, node: Node) -> str:
        return alb_drain.describe_drain(answers, node.name)

    def describe_undrain(self, answers: Answers, node: Node) -> str:
        return alb_drain.describe_undrain(answers, node.name)

    def drain(self, ctx: Context, node: Node) -> None:
        """Deregister ``node``'s targets from this setup's target groups; returns once AWS let go of them."""
        aws = self.session(ctx.answers)
        alb_drain.drain(aws, ctx.answers, self._read(ctx, aws), node.name, self._reporter(ctx, node),
                        ctx.check_cancelled)

    def undrain(self, ctx: Context, node: Node) -> None:
        """Register ``node``'s targets again; returns once AWS reports them healthy."""
        aws = self.session(ctx.answers)
        alb_drain.undrain(aws, ctx.answers, self._read(ctx, aws), node.name, self._reporter(ctx, node),
                          ctx.check_cancelled)

    def _reporter(self, ctx: Context, node: Node) -> alb_drain.Report:
        def report(message: str) -> None:
            ctx.progress("restart", node.name, message)

        return report

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """An AWS record acts only in the answers' region, on resources tagged for this setup (which
        ``alb_undo.perform`` checks again); its description is rebuilt from its data."""
        if action.kind not in alb_undo.KINDS:
            return super().vet_undo(answers, action, label)
        from wizard.engine.undo import UndoRecordError, check_target

        check_target(answers, action, label)
        alb, data = answers.balancer.alb, action.data
        if alb is None or data.get("region") != alb.region or data.get("setup") != answers.name:
            raise UndoRecordError(
                f"The state file's {label} ({action.kind}) is for the region {data.get('region')!r} and the setup "
                f"{data.get('setup')!r}, not these answers' ({alb.region if alb else 'no ALB'}, {answers.name!r}); "
                "rollback refused and nothing was undone.",
                "The state file was edited by hand or does not belong to these answers: check the resources in "
                "the AWS console and undo by hand what needs it.")
        if data.get("resource") == "security-group-ingress":
            _vet_ingress(answers, action, label)
        return UndoAction(kind=action.kind, target=BALANCER, description=_describe_undo(action.kind, data),
                          manual=action.manual, data=dict(data))

    def undo(self, ctx: Context, action: UndoAction) -> None:
        if action.kind not in alb_undo.KINDS:
            super().undo(ctx, action)
            return
        alb = ctx.answers.balancer.alb
        if alb is None:
            raise WizardError("The answers have no balancer.alb section, so the ALB cannot be undone.",
                              "Roll back with the answers of the setup that applied it.")
        aws = connect(alb.region, alb.profile)

        def report(message: str) -> None:
            ctx.progress(self.name, BALANCER, message)

        try:
            alb_undo.perform(aws, action, report)
        except AwsError as exc:
            raise AwsError(exc.message, (exc.hint or "") + f" By hand: {action.manual}",
                           code=exc.code, action=exc.action) from exc


def _vet_ingress(answers: Answers, action: UndoAction, label: str) -> None:
    """A security group rule record acts on one TCP port from one network or group, and only on a rule
    whose description is this setup's: a hand-edited record cannot revoke (or add) the admin's rules."""
    from wizard.engine.undo import UndoRecordError

    data = action.data
    port, cidr, source = data.get("port"), data.get("cidr"), data.get("source_group")
    problem = ""
    if not isinstance(data.get("group_id"), str) or not re.fullmatch(r"sg-[0-9a-f]+", data["group_id"]):
        problem = f"its group {data.get('group_id')!r} is not a security group id"
    elif isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problem = f"its port {port!r} is not a port number"
    elif (cidr is None) == (source is None):
        problem = "it names neither one network nor one source group"
    elif cidr is not None and not _is_written_network(cidr):
        problem = f"its network {cidr!r} is not a network in the form the wizard writes"
    elif source is not None and (not isinstance(source, str) or not re.fullmatch(r"sg-[0-9a-f]+", source)):
        problem = f"its source {source!r} is not a security group id"
    elif not str(data.get("rule_description", "")).startswith(ingress_marker(answers.name)):
        problem = (f"the rule it acts on is described {data.get('rule_description')!r}, not as one of this "
                   f"setup's ({ingress_marker(answers.name)}...)")
    if problem:
        raise UndoRecordError(
            f"The state file's {label} ({action.kind}) is a security group rule record rollback will not perform: "
            f"{problem}; rollback refused and nothing was undone.",
            "The state file was edited by hand: check the security group's rules in the AWS console and undo by "
            "hand what needs it.")


def _is_written_network(cidr: object) -> bool:
    """A network exactly as the wizard writes it (``10.0.0.0/8``, ``2001:db8::/32``)."""
    try:
        return isinstance(cidr, str) and "/" in cidr and str(ipaddress.ip_network(cidr)) == cidr
    except ValueError:
        return False


def _describe_undo(kind: str, data: dict[str, Any]) -> str:
    """What an AWS undo record does, in words rebuilt from its data (never the file's own text)."""
    resource, name = str(data.get("resource", "?")), str(data.get("name", "?"))
    try:
        if kind == alb_undo.DELETE:
            if resource == "security-group":
                return f"Delete the balancer's security group {name}, which the wizard created."
            if resource == "target-group":
                return f"Delete the target group {name}, which the wizard created."
            if resource == "load-balancer":
                return f"Delete the load balancer {name} (and its listeners and rules), which the wizard created."
            if resource == "listener":
                return (f"Delete the {name.split()[0]} listener on port {int(data['port'])} of "
                        f"{data['load_balancer']}, which the wizard created.")
            if resource == "rule":
                return (f"Delete the rule {data['path']} on listener {int(data['port'])} of {data['load_balancer']}, "
                        "which the wizard created.")
        if kind == alb_undo.REVOKE:
            return (f"Remove the rule the wizard added to {data['group_id']}: TCP {int(data['port'])} from "
                    f"{data.get('cidr') or data.get('source_group')}.")
        if kind == alb_undo.RESTORE:
            return f"Put the {resource} {name} back as it was before the wizard modified it."
        if kind == alb_undo.TARGETS:
            shown = ", ".join(f"{t['Id']}:{t['Port']}" for t in data.get("registered") or [])
            return f"Take back the target changes in {name}" + (f" (deregister {shown})" if shown else "") + "."
        if kind == alb_undo.RECREATE and resource == "rule":
            return (f"Create the rule {data['path']} on listener {int(data['port'])} of {data['load_balancer']} "
                    f"again (priority {int(data['priority'])}), as it was before the wizard deleted it.")
        if kind == alb_undo.RECREATE and resource == "target-group":
            return (f"Create the target group {name} again ({data['protocol']} {int(data['port'])}, "
                    f"{len(data['targets'])} target(s)), as it was before the wizard deleted it.")
        if kind == alb_undo.RECREATE and resource == "security-group-ingress":
            return (f"Let {data.get('cidr') or data['source_group']} reach TCP {int(data['port'])} in "
                    f"{data['group_id']} again, as before the wizard removed it.")
        if kind == alb_undo.RECREATE:
            return f"Create the {resource} {name} again, as it was before the wizard deleted it."
    except (KeyError, TypeError, ValueError):
        pass
    return f"Undo the wizard's change ({kind}) of the {resource} {name} (only what carries this setup's tag)."


def _node_ports(ctx: Context, node: Node) -> NodePorts:
    facts = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
    return NodePorts(node=node.name, address=node.address, instance_id=node.instance_id,
                     confluence_port=facts.confluence_port, synchrony_port=facts.synchrony_port,
                     context_path=facts.context_path)


def _unmanaged_nodes_note(desired: Desired) -> str:
    if desired.node_security_group:
        return ""
    ports = sorted({t.port for spec in desired.target_groups for t in spec.targets})
    return (f". The nodes' security group is not managed (no balancer.alb.node_security_group_id): it must let "
            f"the balancer's group {desired.names.security_group} reach TCP {', '.join(map(str, ports))}")


STEP = AlbBalancerStep()
