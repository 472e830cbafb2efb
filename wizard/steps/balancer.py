"""Balancer: the balancer of the setup's kind (``wizard.balancers``).

One public step name (``balancer``) for very different pieces of work; this module only
chooses the kind (``wizard.balancers.kind.kind_for``) and hands every call to it, so each
kind keeps its own package and its own imports (boto3 loads only for an ALB). Undo records
are undone with the answers they were made with (the runner passes them), so a setup whose
kind changed still undoes what the old kind made.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from wizard.answers_model import Answers, Node
from wizard.balancers.kind import kind_for
from wizard.confluence import checks
from wizard.confluence.nodes import read_node_facts
from wizard.engine.model import BALANCER, Check, Plan, UndoAction
from wizard.engine.step import Context, Journal, Step
from wizard.errors import WizardError


def implementation(answers: Answers) -> Step[Any]:
    """The step that does the work for this setup's balancer kind."""
    return kind_for(answers)


class BalancerStep(Step[Any]):  # the facts are the kind's own
    name = "balancer"
    title = "The load balancer"
    explanation = ("Configures the balancer in front of the nodes: Apache httpd (a vhost with the "
                   "Confluence and Synchrony balancers, sticky sessions and WebSockets) or an AWS "
                   "Application Load Balancer (target groups, listeners, the /synchrony/* rule).")

    def inspect(self, ctx: Context) -> Any:
        refuse_nodes_without_synchrony(ctx)
        return implementation(ctx.answers).inspect(ctx)

    def plan(self, answers: Answers, facts: Any) -> Plan:
        return implementation(answers).plan(answers, facts)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        return implementation(ctx.answers).apply(ctx, plan, journal)

    def verify(self, ctx: Context) -> list[Check]:
        return implementation(ctx.answers).verify(ctx)

    def undo(self, ctx: Context, action: UndoAction) -> None:
        implementation(ctx.answers).undo(ctx, action)

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        return implementation(answers).undo_paths(answers, target)

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        return implementation(answers).vet_undo(answers, action, label)


def synchrony_heartbeats(ctx: Context) -> list[Check]:
    """Synchrony's heartbeat where the balancer will send the editor: each node's own Synchrony in
    direct mode, each machine of the standalone cluster in standalone mode (else nothing)."""
    if ctx.answers.synchrony.mode == "standalone":
        from wizard.steps.preflight import standalone_synchrony_checks

        return standalone_synchrony_checks(ctx)
    if ctx.answers.synchrony.mode != "direct":
        return []

    def probe(node: Node) -> Check:
        try:
            facts = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
        except WizardError as exc:
            return Check(checks.NODE_SYNCHRONY, node.name, False, exc.message, exc.hint or "")
        return checks.node_synchrony(node, facts, "direct")

    return ctx.for_each_node(probe)


#: How long a node restarted a moment ago may take for its Synchrony to answer: Confluence's
#: managed Synchrony starts after Confluence itself answers RUNNING.
SYNCHRONY_GRACE_SECONDS = 120.0
#: A restart this recent counts as "a moment ago".
RECENT_RESTART_SECONDS = 900.0
POLL_SECONDS = 1.0


def refuse_nodes_without_synchrony(ctx: Context) -> None:
    """Direct mode points users at each node's own Synchrony, standalone mode at the Synchrony
    machines: refuse, before anything changes, when one does not answer its heartbeat (whatever
    ``--only`` chose). A node the restart step restarted a moment ago gets time for its Synchrony
    to start; any other node, and any standalone machine (the wizard never restarts those), is
    refused at once."""
    mode = ctx.answers.synchrony.mode
    if mode not in ("direct", "standalone"):
        return
    failed = [check for check in synchrony_heartbeats(ctx) if not check.passed]
    if failed and mode == "standalone":
        names = ", ".join(check.target for check in failed)
        raise WizardError(
            f"synchrony.mode is standalone, but Synchrony does not answer its heartbeat on the machine(s) {names} "
            f"({'; '.join(check.seen for check in failed)}): the balancer would send the editor to a Synchrony "
            "that is not there. Nothing was changed.", failed[0].fix)
    deadline = time.monotonic() + SYNCHRONY_GRACE_SECONDS
    while failed and {check.target for check in failed} <= _recently_restarted(ctx) \
            and time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.progress("balancer", BALANCER, "waiting for Synchrony to start on "
                     + ", ".join(check.target for check in failed))
        time.sleep(POLL_SECONDS)
        failed = [check for check in synchrony_heartbeats(ctx) if not check.passed]
    if failed:
        names = ", ".join(check.target for check in failed)
        raise WizardError(
            f"synchrony.mode is direct, but Synchrony does not answer its heartbeat on {names} "
            f"({'; '.join(check.seen for check in failed)}): the balancer would send the editor to a node "
            "without Synchrony. Nothing was changed.",
            failed[0].fix + " Or, if these nodes run no Synchrony, use synchrony.mode standalone (with "
            "synchrony.nodes) or internal-proxy.")


def _recently_restarted(ctx: Context) -> set[str]:
    """The nodes whose restart the state recorded in the last ``RECENT_RESTART_SECONDS``."""
    record = ctx.previous.get("restart")
    now = datetime.now(timezone.utc)
    recent: set[str] = set()
    for change in record.changes if record is not None else []:
        if change.kind != "restart" or change.at is None or change.target is None:
            continue
        try:
            at = datetime.fromisoformat(change.at)
        except ValueError:
            continue
        if at.tzinfo is not None and (now - at).total_seconds() < RECENT_RESTART_SECONDS:
            recent.add(change.target)
    return recent


STEP = BalancerStep()
