"""Plain-text rendering for the headless commands: plans, checks, the checklist.

Shared by ``plan``/``apply``/``verify``/``status`` and the prompt face, so the
admin sees the same words whichever way they run the wizard.

Everything these functions return or print is masked by ``wizard.engine.redact``: a
plan's summaries carry the commands it will run (a reload command with a token,
a restart through sshpass) and its diffs carry the files (an LDAP bind password
in a vhost), and a terminal is scrolled back, logged and screen-shared. Only
what is shown is masked; the plan itself, which is what gets executed, is not
touched.
"""

from __future__ import annotations

import sys
from typing import TextIO

from wizard.engine.events import (ChecksCompleted, Event, PlanReady, ProgressReported, StepApplied,
                           StepFailed, StepRolledBack, StepSkipped, StepStarted)
from wizard.engine.model import Check, Plan
from wizard.engine.redact import redact
from wizard.engine.state import State

STATUS_MARKS = {"pending": "[ ]", "planned": "[~]", "applied": "[*]", "verified": "[x]",
                "failed": "[!]", "rolled-back": "[<]"}


def format_plan(plan: Plan) -> str:
    """A plan as the terminal shows it: every change with its diff, secrets masked."""
    lines = [f"Plan for {plan.step}: {redact(plan.summary)}"]
    if plan.is_noop and plan.noop_reason:
        lines.append(f"  Nothing to change: {redact(plan.noop_reason)}")
    for change in plan.changes:
        lines.append(f"  - [{change.target}] {redact(change.summary)}")
        if change.diff:
            # Masked before it is indented: a directive's rule reads a diff line from its marker.
            lines += ["      " + line for line in redact(change.diff).rstrip("\n").splitlines()]
    return redact("\n".join(lines))


def format_checks(checks: list[Check] | tuple[Check, ...]) -> str:
    """Check results as aligned lines (what was seen and the fix of a failure), secrets masked."""
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
    return redact("\n".join(lines))


def format_status(state: State, step_names: list[str], state_file: str) -> str:
    """The checklist: every step with its status, when it changed and its summary."""
    lines = [f"Setup {state.setup}  (state: {state_file}, saved {state.serial} time(s))"]
    for name in step_names:
        record = state.steps.get(name)
        status = record.status if record else "pending"
        when = (record.updated or "") if record else ""
        summary = record.summary if record else ""
        lines.append(f"  {STATUS_MARKS[status]} {name:<10} {status:<12} {when:<26} {summary}")
    return redact("\n".join(lines))


class EventPrinter:
    """An event sink that writes what happens as plain lines, secrets masked.

    Progress messages, failures and what was undone can quote a command or a
    server's answer, so every line goes through ``redact`` on its way out.
    """

    def __init__(self, out: TextIO | None = None, *, show_plans: bool = True) -> None:
        self.out = out or sys.stdout
        self.show_plans = show_plans

    def __call__(self, event: Event) -> None:
        text = self.describe(event)
        if text:
            print(redact(text), file=self.out, flush=True)

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
