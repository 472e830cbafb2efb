"""Verify: the final tests, read-only, end to end (docs/reference.md, "What verify checks").

Two lists, for the two ways the step runs:

* In ``apply`` the step is the last gate: its plan carries *every* final test, the
  other steps' checks (node RUNNING, the Connector's attributes, the base URL, the
  balancer's own checks) and the end-to-end ones below, so one record in the state
  (and one section of the runbook) holds the whole result.
* In ``verify`` (``Runner.verify``) every step's checks run in turn anyway, so this
  step's ``verify`` adds only the end-to-end checks no other step makes, and nothing
  is checked twice: each node's Synchrony heartbeat, each node's Connector change in
  effect, sticky sessions, ``GET /`` staying on the public URL and the TLS
  certificate through the balancer; for an ALB also the requests through it that the
  Apache step makes through Apache (status, heartbeat, WebSocket, HTTP to HTTPS).

Requests "through the balancer" go to the balancer's own address with the public
URL's Host header and TLS name (see ``wizard.confluence.probes.Endpoint``).
"""

from __future__ import annotations

from wizard.answers_model import Answers, Node
from wizard.balancers.kind import kind_for
from wizard.confluence import checks
from wizard.confluence.nodes import NodeFacts, read_node_facts
from wizard.confluence.probes import Endpoint
from wizard.engine.model import BALANCER, WORKSTATION, Check, Plan
from wizard.engine.step import Context, Step
from wizard.errors import EXIT_CHECK_FAILED, WizardError

#: The steps whose own checks are part of the final tests: the nodes' first, then the balancer's.
NODE_STEPS = ("restart", "connector", "base-url")
BALANCER_STEPS = ("balancer",)
#: How a step not done yet is reported (the same words as ``Runner.verify``).
NOT_APPLIED = "not applied yet"


class VerifyStep(Step[list[Check]]):
    name = "verify"
    title = "Final tests"
    explanation = ("Checks the whole setup end to end, changing nothing: every node RUNNING with its Synchrony, the "
                   "Connector in effect, the base URL, and through the balancer the status page, the Synchrony "
                   "heartbeat, the WebSocket upgrade, sticky sessions, redirects, /balancer-manager closed and the "
                   "certificate; for an ALB also healthy targets, stickiness and the idle timeout.")
    read_only = True
    failed_checks_exit = EXIT_CHECK_FAILED

    def inspect(self, ctx: Context) -> list[Check]:
        """Every final test: the other steps' checks and this step's own.

        Until every other step is done the final tests have nothing to test: each step
        still to do is one failed check (as ``Runner.verify`` says it), and nothing is
        probed, so a ``plan`` of a setup not made yet stays quick.
        """
        missing = _not_done(ctx)
        if missing:
            return missing
        found: list[Check] = []
        for name in NODE_STEPS:
            found += _borrowed(ctx, name)
        facts = _node_facts(ctx)
        found += self._node_checks(ctx, facts)
        for name in BALANCER_STEPS:
            found += _borrowed(ctx, name)
        found += self._balancer_checks(ctx, facts)
        return found

    def plan(self, answers: Answers, facts: list[Check]) -> Plan:
        failed = [check for check in facts if not check.passed]
        if facts and all(check.seen.startswith(NOT_APPLIED) for check in facts):
            summary = f"the final tests run once every other step is done ({len(facts)} step(s) to do)"
        elif failed:
            summary = f"{len(failed)} of {len(facts)} check(s) failed"
        else:
            summary = f"{len(facts)} check(s) passed"
        return Plan(step=self.name, summary=summary, checks=list(facts),
                    noop_reason="The final tests only read; they change nothing.")

    def verify(self, ctx: Context) -> list[Check]:
        """The end-to-end checks no other step makes (``Runner.verify`` runs the others' itself)."""
        facts = _node_facts(ctx)
        return self._node_checks(ctx, facts) + self._balancer_checks(ctx, facts)

    # Nodes.

    def _node_checks(self, ctx: Context, facts: dict[str, NodeFacts | WizardError]) -> list[Check]:
        answers = ctx.answers

        def per_node(node: Node) -> list[Check]:
            fact = facts[node.name]
            if isinstance(fact, WizardError):
                return [Check(checks.NODE_SYNCHRONY, node.name, False, fact.message, fact.hint or "")]
            ctx.progress(self.name, node.name, "checking Synchrony and the running Connector")
            # A standalone Synchrony runs on machines of its own: the node's setenv.sh points at it
            # (the connector step's check) and the balancer's heartbeat check reaches it.
            found = ([] if answers.synchrony.mode == "standalone"
                     else [checks.node_synchrony(node, fact, answers.synchrony.mode)])
            in_effect = checks.connector_in_effect(node, fact, answers.public_url)
            if in_effect is not None:
                found.append(in_effect)
            return found

        return [check for node_checks in ctx.for_each_node(per_node) for check in node_checks]

    # Through the balancer.

    def _balancer_checks(self, ctx: Context, facts: dict[str, NodeFacts | WizardError]) -> list[Check]:
        answers = ctx.answers
        kind = kind_for(answers)
        ctx.progress(self.name, BALANCER, "checking through the balancer")
        try:
            endpoint = kind.endpoint(ctx)
        except WizardError as exc:
            return [Check("balancer address", BALANCER, False, exc.message, exc.hint or "")]
        node_addresses = [(node.address.lower(), fact.confluence_port) for node in answers.nodes
                          if isinstance(fact := facts[node.name], NodeFacts)]
        public = answers.public_url
        found = kind.through_checks(ctx, endpoint)
        found.append(checks.stickiness(endpoint, public, kind.sticky_cookie))
        found.append(checks.root_redirect(endpoint, public, node_addresses))
        if public.is_https:
            found.append(checks.tls_certificate(endpoint))
        return found


def _node_facts(ctx: Context) -> dict[str, NodeFacts | WizardError]:
    """Each node's files, read once for all the checks (a node that cannot be read says why)."""
    def read(node: Node) -> NodeFacts | WizardError:
        try:
            return read_node_facts(ctx.hosts.node(node), node, ctx.answers)
        except WizardError as exc:
            return exc

    return {node.name: fact for node, fact in zip(ctx.answers.nodes, ctx.for_each_node(read))}


def _not_done(ctx: Context) -> list[Check]:
    """A failed check for each earlier step this setup needs that is not applied yet."""
    from wizard.steps import available, get

    missing = []
    for name in available():
        if name == VerifyStep.name:
            break
        step = get(name)
        record = ctx.previous.get(name)
        if step.applies(ctx.answers) and not (record is not None and record.done):
            status = record.status if record is not None else "pending"
            missing.append(Check(step.title, WORKSTATION, False, f"{NOT_APPLIED} (status: {status})",
                                 f"Run `confluence-lb-wizard apply` to complete the setup ({name})."))
    return missing


def _borrowed(ctx: Context, name: str) -> list[Check]:
    """Another step's checks, as ``Runner.verify`` would run them (a failure to check is a failed check)."""
    from wizard.steps import get

    step = get(name)
    if not step.applies(ctx.answers):
        return []
    try:
        return step.verify(ctx)
    except WizardError as exc:
        return [Check(f"{step.title} checks", WORKSTATION, False, exc.message, exc.hint or "")]


def balancer_endpoint(ctx: Context) -> Endpoint:
    """Where the workstation reaches the balancer, asking for the public URL there.

    Always the balancer's own address (Apache's host, the ALB's DNS name) with the public
    name in the Host header and TLS: once DNS points the public name at the balancer this
    is exactly what a browser gets, and before the cut-over (or when the public name still
    points at an old server, or a name this machine cannot resolve) it still tests what
    the wizard built rather than whatever else answers for the name.
    """
    return kind_for(ctx.answers).endpoint(ctx)


STEP = VerifyStep()
