"""Balancer: the balancer of the setup's kind (``wizard.balancers``).

One public step name (``balancer``) for very different pieces of work; this module only
chooses the kind (``wizard.balancers.kind.kind_for``) and hands every call to it, so each
kind keeps its own package and its own imports (boto3 loads only for an ALB). Undo records
are undone with the answers they were made with (the runner passes them), so a setup whose
kind changed still undoes what the old kind made.
"""

from __future__ import annotations

from typing import Any

from wizard.answers_model import Answers
from wizard.balancers.kind import kind_for
from wizard.engine.model import Check, Plan, UndoAction
from wizard.engine.step import Context, Journal, Step


def implementation(answers: Answers) -> Step:
    """The step that does the work for this setup's balancer kind."""
    return kind_for(answers)


class BalancerStep(Step[Any]):  # the facts are the kind's own
    name = "balancer"
    title = "The load balancer"
    explanation = ("Configures the balancer in front of the nodes: Apache httpd (a vhost with the "
                   "Confluence and Synchrony balancers, sticky sessions and WebSockets) or an AWS "
                   "Application Load Balancer (target groups, listeners, the /synchrony/* rule).")

    def inspect(self, ctx: Context) -> Any:
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


STEP = BalancerStep()
