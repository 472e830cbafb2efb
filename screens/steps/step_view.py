"""The selected step: what it does, where it stands, its plan, its progress, its checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from screens.steps.format import checks_table, checks_verdict
from screens.steps.progress import ProgressPanel
from screens.steps.words import local_time, short_title
from wizard.engine.model import Plan
from wizard.engine.redact import redact
from wizard.engine.step import Step
from wizard.session import Session

#: What the admin can do from a step, shown under it.
KEYS_HINT = ("enter run this step · a run every step not done · v verify · u roll back · i answers · "
             "d light/dark · c cancel while a step runs · ctrl+p every command")


def answers_renderable(session: Session) -> RenderableType:
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in session.answers_summary():
        table.add_row(Text(label), Text(str(value)))
    return Group(Text("What the steps work from. Press enter (or i) to change the answers.", style="italic"),
                 table)


def record_renderable(session: Session, step: Step) -> RenderableType:
    """The step's status, its last plan (what it changes, per target), and its error if it failed."""
    record = session.record(step.name)
    parts: list[RenderableType] = []
    status = "running" if session.running == step.name else (record.status if record else "pending")
    when = local_time(record.updated) if record else ""
    parts.append(Text.assemble(("Status: ", "bold"), status, (f"  at {when}" if when else "", "dim")))
    if record and record.summary:
        parts.append(Text(redact(record.summary)))
    earlier = session.not_done_before(step.name)
    if earlier and not (record and record.done):
        parts.append(Text(f"Not done before it: {', '.join(short_title(n) for n in earlier)} "
                          "(the usual order runs them first).", style="yellow"))
    if record and record.error:
        error = record.error
        parts.append(Text(f"\n✘ {redact(error.message)}", style="bold red"))
        if error.undone:
            parts.append(Text("Undone: " + "; ".join(error.undone), style="dim"))
        if error.hint:
            parts.append(Text(f"Next: {error.hint}", style="yellow"))
    if record and record.plan and not step.read_only:
        plan = Plan.from_dict(record.plan)
        parts.append(Text("\nPlan: " + plan.summary, style="bold"))
        for change in plan.changes:
            parts.append(Text(f"  [{change.target}] {redact(change.summary)}"))
        if plan.is_noop and plan.noop_reason:
            parts.append(Text(f"  nothing to change: {plan.noop_reason}", style="italic"))
    return Group(*parts)


class StepView(VerticalScroll):
    """The right-hand side of the setup screen for the step (or the answers) highlighted."""

    DEFAULT_CSS = """
    StepView { height: 1fr; border: round $panel; padding: 0 1; }
    StepView #step-title { text-style: bold; color: $accent; }
    StepView #step-explanation { margin-bottom: 1; }
    StepView #step-checks { margin-top: 1; height: auto; }
    StepView #step-hint { color: $text-muted; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="step-title", markup=False)
        yield Static("", id="step-explanation", markup=False)
        yield Static("", id="step-body")
        yield ProgressPanel(id="progress")
        yield Static("", id="step-checks")
        yield Static(KEYS_HINT, id="step-hint", markup=False)

    def on_mount(self) -> None:
        # What each part shows now, by a cheap key: a part whose key did not change is not redrawn,
        # so the engine's bursts of news cost the UI little.
        self._shown: dict[str, object] = {}

    def _set(self, part: str, key: object, content: Callable[[], Any]) -> None:
        if self._shown.get(part, ...) == key:
            return
        self._shown[part] = key
        self.query_one(f"#{part}", Static).update(content())

    def show_answers(self, session: Session) -> None:
        self._set("step-title", "answers", lambda: "Answers")
        self._set("step-explanation", "answers", lambda: "The cluster, the public URL and the balancer, as "
                  "given in the inventory or the answers file.")
        self._set("step-body", ("answers", session.answers_summary()), lambda: answers_renderable(session))
        self.query_one(ProgressPanel).show(None)
        self._set("step-checks", None, lambda: "")
        self._set("step-hint", "answers", lambda: "enter or i change the answers · a run every step not done")

    def show_step(self, session: Session, step: Step) -> None:
        record = session.record(step.name)
        self._set("step-title", step.name, lambda: step.title)
        self._set("step-explanation", step.name, lambda: step.explanation)
        self._set("step-body", (step.name, record.updated if record else None, session.running,
                                tuple(session.not_done_before(step.name))),
                  lambda: record_renderable(session, step))
        self.query_one(ProgressPanel).show(session.progress.get(step.name))
        checks_key = (step.name, record.updated if record else None, len(record.checks) if record else 0)
        self._set("step-checks", checks_key, lambda: self._checks(record))
        self._set("step-hint", "step", lambda: KEYS_HINT)

    @staticmethod
    def _checks(record: Any) -> RenderableType:
        checks = list(record.checks) if record and record.checks else []
        return Group(checks_verdict(checks), checks_table(checks)) if checks else ""
