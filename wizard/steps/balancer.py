"""Balancer: the Apache httpd configuration or the AWS Application Load Balancer.

One contract step name (``balancer``) for two very different pieces of work;
this module only chooses by ``balancer.kind`` and hands every call to the
implementation, so each kind keeps its own module (``balancer_apache``,
``balancer_alb``) and its own imports (boto3 loads only for an ALB).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from wizard.answers_model import Answers
from wizard.engine.model import Check, Plan, UndoAction
from wizard.engine.step import Context, Journal, Step

_IMPLEMENTATIONS = {"apache": "wizard.balancers.apache.step", "alb": "wizard.balancers.alb.step"}


def implementation(answers: Answers) -> Step:
    """The step that does the work for this setup's balancer kind."""
    return import_module(_IMPLEMENTATIONS[answers.balancer.kind]).STEP


class BalancerStep(Step):
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
