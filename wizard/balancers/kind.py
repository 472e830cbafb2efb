"""The one shape every balancer kind has, and where each kind lives.

A kind is the ``balancer`` step for that kind of balancer (inspect, a pure plan, apply with
the undo recorded first, its own checks, undo of its own records) plus what the shared
parts of the wizard ask of any balancer: where the workstation reaches it, which cookie keeps
a user on one node, and which of the shared through-the-balancer checks its own checks do not
already make. Kinds are found by name (``KINDS``), so no kind imports another and boto3 loads
only for an ALB.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

from wizard.answers_model import Answers, Node
from wizard.confluence import checks
from wizard.confluence.probes import Endpoint
from wizard.engine.model import Check
from wizard.engine.step import Context, FactsT, Step
from wizard.errors import WizardError

#: Each kind of ``balancer.kind`` and the module holding its ``STEP``.
KINDS: dict[str, str] = {
    "apache": "wizard.balancers.apache.step",
    "alb": "wizard.balancers.alb.step",
    "nginx": "wizard.balancers.nginx.step",
    "haproxy": "wizard.balancers.haproxy.step",
}


@dataclass(frozen=True)
class DrainSupport:
    """Whether this setup's balancer can drain a node for the rolling restart, and what that means.

    A kind (or a setup of a kind) that cannot drain is told apart before the roll starts, so its
    plan says "no drain" and why, instead of stopping at the first node.
    """

    can_drain: bool
    #: What a drain does (when it can), or why it cannot, in a few words for the restart's plan.
    summary: str
    #: When it cannot: what the admin does to get drained restarts ("" when there is no way).
    remedy: str = ""
    #: The drain returns only once the requests under way are done (an ALB's deregistration
    #: delay): the roll then adds no ``restart_drain`` wait of its own.
    waits_for_requests: bool = False


class BalancerKind(Step[FactsT]):
    """The ``balancer`` step of one kind of balancer."""

    name = "balancer"
    #: The answers' ``balancer.kind`` this class implements.
    kind: ClassVar[str]
    #: The cookie the balancer sets to keep a user on one node (verify checks that it does).
    sticky_cookie: ClassVar[str]
    #: Whether ``drain``/``undrain`` work for this kind (``drain_support`` may narrow it for one setup).
    #: A kind that cannot drain says so here, and the rolling restart then restarts its nodes
    #: without draining them, saying so in its plan.
    can_drain: ClassVar[bool] = False
    #: What draining a node means for this kind, in a few words for the restart's plan
    #: ("Apache sends it no new request, sticky or not; requests under way finish").
    drain_summary: ClassVar[str] = "this kind of balancer cannot drain a node: it keeps sending it users"
    #: For a kind that cannot drain: what the admin does to get drained restarts ("" when nothing).
    drain_remedy: ClassVar[str] = ""

    @abstractmethod
    def endpoint(self, ctx: Context) -> Endpoint:
        """Where the workstation reaches the balancer, asking for the public URL there (its own
        address with the public name in the Host header and TLS), or ``WizardError`` saying why not."""

    def drain_support(self, answers: Answers) -> DrainSupport:
        """Whether these answers' balancer can drain a node, and what a drain does or why it cannot.

        By default the kind's ``can_drain`` and ``drain_summary``; a kind whose drain needs an
        answer (HAProxy's ``admin_socket``) says so here."""
        return DrainSupport(self.can_drain, self.drain_summary, "" if self.can_drain else self.drain_remedy)

    def describe_drain(self, answers: Answers, node: Node) -> str:
        """What draining ``node`` does, one clause of the restart's plan ("drain it (...)")."""
        return f"drain it ({self.drain_support(answers).summary})"

    def describe_undrain(self, answers: Answers, node: Node) -> str:
        """What putting ``node`` back does, one clause of the restart's plan."""
        return "put it back in the balancer"

    def drain(self, ctx: Context, node: Node) -> None:
        """Stop sending ``node`` new requests (sticky users included) while requests under way
        finish; returns once the balancer runs that way, or raises ``WizardError`` with the balancer
        still sending the node its users. Calling it for a node already drained changes nothing.

        The rolling restart records the drain in its state before calling this, so a roll
        interrupted anywhere finds the node drained and calls ``undrain`` for it.
        """
        raise WizardError(f"A {self.kind} balancer cannot drain a node.",
                          "The rolling restart restarts its nodes without draining them.")

    def undrain(self, ctx: Context, node: Node) -> None:
        """Send ``node`` users again, as the balancer step configured it; returns once the balancer
        runs that way. Calling it for a node that is not drained changes nothing."""
        raise WizardError(f"A {self.kind} balancer cannot drain a node, so none is drained.",
                          "Nothing to undo.")

    def through_checks(self, ctx: Context, endpoint: Endpoint) -> list[Check]:
        """The shared checks through the balancer that this kind's own checks do not make: by
        default Confluence's status, Synchrony's heartbeat and WebSocket, and HTTP to HTTPS."""
        answers = ctx.answers
        public = answers.public_url
        found = [checks.balancer_status(endpoint, public), checks.balancer_heartbeat(endpoint, answers),
                 checks.balancer_websocket(endpoint, answers)]
        if public.is_https:
            found.append(checks.https_redirect(endpoint, public))
        return found


def kind_for(answers: Answers) -> BalancerKind[Any]:
    """The balancer step of this setup's kind."""
    step = import_module(KINDS[answers.balancer.kind]).STEP
    assert isinstance(step, BalancerKind), f"{KINDS[answers.balancer.kind]}.STEP is not a BalancerKind"
    return step
