"""The selected step: what it does, where it stands, its plan, its progress, its checks."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from screens.format import checks_table, checks_verdict
from screens.words import local_time, short_title
from screens.progress import ProgressPanel
from screens.session import Session
from wizard.model import Check, Plan
from wizard.redact import redact
from wizard.steps.base import Step

#: What the admin can do from a step, shown under it.
KEYS_HINT = ("enter run this step · a run every step not done · v verify · u roll back · i answers · "
             "d light/dark · c cancel while a step runs · ctrl+p every command")


def answers_renderable(session: Session) -> RenderableType:
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in session.answers_summary():
        table.add_row(label, Text(str(value)))
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
        parts.append(Text(f"\n✘ {redact(str(record.error.get('message') or ''))}", style="bold red"))
        if record.error.get("undone"):
            parts.append(Text("Undone: " + "; ".join(map(str, record.error["undone"])), style="dim"))
        if record.error.get("hint"):
            parts.append(Text(f"Next: {record.error['hint']}", style="yellow"))
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

    def show_answers(self, session: Session) -> None:
        self.query_one("#step-title", Static).update("Answers")
        self.query_one("#step-explanation", Static).update(
            "The cluster, the public URL and the balancer, as given in the inventory or the answers file.")
        self.query_one("#step-body", Static).update(answers_renderable(session))
        self.query_one(ProgressPanel).show(None)
        self.query_one("#step-checks", Static).update("")
        self.query_one("#step-hint", Static).update("enter or i change the answers · a run every step not done")

    def show_step(self, session: Session, step: Step) -> None:
        record = session.record(step.name)
        self.query_one("#step-title", Static).update(step.title)
        self.query_one("#step-explanation", Static).update(step.explanation)
        self.query_one("#step-body", Static).update(record_renderable(session, step))
        self.query_one(ProgressPanel).show(session.progress.get(step.name))
        checks = [Check.from_dict(c) for c in record.checks] if record and record.checks else []
        self.query_one("#step-checks", Static).update(
            Group(checks_verdict(checks), checks_table(checks)) if checks else "")
        self.query_one("#step-hint", Static).update(KEYS_HINT)
