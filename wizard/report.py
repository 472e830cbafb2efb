"""Plain-text rendering for the headless commands: plans, checks, the checklist.

Shared by ``plan``/``apply``/``verify``/``status`` and the prompt face, so the
admin sees the same words whichever way they run the wizard.
"""

from __future__ import annotations

import sys
from typing import TextIO

from wizard.events import (ChecksCompleted, Event, PlanReady, ProgressReported, StepApplied,
                           StepFailed, StepRolledBack, StepSkipped, StepStarted)
from wizard.model import Check, Plan
from wizard.redact import redact
from wizard.state import State

STATUS_MARKS = {"pending": "[ ]", "planned": "[~]", "applied": "[*]", "verified": "[x]",
                "failed": "[!]", "rolled-back": "[<]"}


def format_plan(plan: Plan) -> str:
    lines = [f"Plan for {plan.step}: {plan.summary}"]
    if plan.is_noop and plan.noop_reason:
        lines.append(f"  Nothing to change: {plan.noop_reason}")
    for change in plan.changes:
        lines.append(f"  - [{change.target}] {change.summary}")
        if change.diff:
            lines += ["      " + line for line in redact(change.diff).rstrip("\n").splitlines()]
    return "\n".join(lines)


def format_checks(checks: list[Check] | tuple[Check, ...]) -> str:
    if not checks:
        return "  (no checks)"
    width_name = max(len(c.name) for c in checks)
    width_target = max(len(c.target) for c in checks)
    lines = []
    for check in checks:
        mark = "PASS" if check.passed else "FAIL"
        lines.append(f"  {mark}  {check.target:<{width_target}}  {check.name:<{width_name}}  {redact(check.seen)}")
        if not check.passed and check.fix:
            lines.append(f"        {'':<{width_target}}  -> {redact(check.fix)}")
    return "\n".join(lines)


def format_status(state: State, step_names: list[str], state_file: str) -> str:
    lines = [f"Setup {state.setup}  (state: {state_file}, saved {state.serial} time(s))"]
    for name in step_names:
        record = state.steps.get(name)
        status = record.status if record else "pending"
        when = (record.updated or "") if record else ""
        summary = record.summary if record else ""
        lines.append(f"  {STATUS_MARKS[status]} {name:<10} {status:<12} {when:<26} {summary}")
    return "\n".join(lines)


class EventPrinter:
    """An event sink that writes what happens as plain lines."""

    def __init__(self, out: TextIO | None = None, *, show_plans: bool = True) -> None:
        self.out = out or sys.stdout
        self.show_plans = show_plans

    def __call__(self, event: Event) -> None:
        text = self.describe(event)
        if text:
            print(text, file=self.out, flush=True)

    def describe(self, event: Event) -> str:
        if isinstance(event, StepStarted):
            return f"\n== {event.title} ({event.step})"
        if isinstance(event, StepSkipped):
            return f"-- {event.step}: skipped, {event.reason}"
        if isinstance(event, PlanReady):
            return format_plan(event.plan) if self.show_plans else ""
        if isinstance(event, ProgressReported):
            pct = f" {event.fraction:.0%}" if event.fraction is not None else ""
            return f"   {event.target}: {event.message}{pct}"
        if isinstance(event, StepApplied):
            return f"   applied: {event.summary}"
        if isinstance(event, ChecksCompleted):
            verdict = "all passed" if event.passed else "SOME FAILED"
            return f"   checks ({verdict}):\n{format_checks(event.checks)}"
        if isinstance(event, StepFailed):
            text = f"!! {event.step} failed: {event.message}"
            if event.undone:
                text += "\n   undone: " + "; ".join(event.undone)
            if event.hint:
                text += f"\n   -> {event.hint}"
            return text
        if isinstance(event, StepRolledBack):
            undone = "; ".join(event.undone) or "nothing to undo"
            return f"<< {event.step} rolled back: {undone}"
        return ""
