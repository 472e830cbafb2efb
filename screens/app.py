"""The Textual wizard: a checklist always in view, the selected step's details,
and the engine running in a thread worker.

Built through ``create_app`` so tests and the lab can start it. The worker
never touches a widget: it posts ``EngineEvent`` messages, and the handlers
here own the widgets (Textual's worker guide; DESIGN.md, style 2).
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (Button, Footer, Header, Input, Label, ListItem, ListView, OptionList,
                             RichLog, Static)
from textual.widgets.option_list import Option

from wizard.answers_model import Answers
from wizard.errors import EXIT_OK, WizardError
from wizard.events import Event, StepFailed
from wizard.model import Plan
from wizard.report import EventPrinter, STATUS_MARKS, format_checks, format_plan
from wizard.runbook import build_runbook, write_runbook
from wizard.runner import Outcome, Runner
from wizard.state import StateStore, default_state_path
from wizard.steps import all_steps

from screens.session import SavedSetup, answers_from_file, answers_from_state, saved_setups


class EngineEvent(Message):
    """Something the engine reported from the worker thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunFinished(Message):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class ErrorRaised(Message):
    def __init__(self, error: WizardError) -> None:
        super().__init__()
        self.error = error


class ErrorScreen(ModalScreen[None]):
    """An error for the admin: what happened and the next thing to try. Never a traceback."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, error: WizardError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label("Something needs your attention", id="dialog-title")
            yield Static(self.error.message, id="error-message")
            if self.error.hint:
                yield Static(f"Next: {self.error.hint}", id="error-hint")
            yield Button("OK", variant="primary", id="ok")

    @on(Button.Pressed, "#ok")
    def close(self) -> None:
        self.dismiss(None)


class ConfirmPlanScreen(ModalScreen[bool]):
    """Every change of a step, shown before it is made."""

    BINDINGS = [Binding("y", "answer(True)", "Apply"), Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Apply these changes? ({self.plan.step})", id="dialog-title")
            with VerticalScroll(id="plan-text"):
                yield Static(format_plan(self.plan), markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply (y)", variant="warning", id="apply")
                yield Button("Cancel (n)", id="cancel")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply")


class WelcomeScreen(Screen[tuple[Answers, Path] | None]):
    """Start a setup from an answers file, or resume a saved one."""

    BINDINGS = [Binding("escape", "app.quit", "Quit")]

    def __init__(self, setups: list[SavedSetup]) -> None:
        super().__init__()
        self.setups = setups

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="welcome"):
            yield Static("Put Confluence Data Center and Synchrony behind a load balancer, one checked, "
                         "undoable step at a time. Every change is shown before it is made.",
                         id="welcome-text")
            if self.setups:
                yield Label("Resume a saved setup")
                yield OptionList(*[Option(f"{s.setup}  ({s.done}/{s.total} steps done, {s.updated or 'not started'})",
                                          id=str(index)) for index, s in enumerate(self.setups)],
                                 id="saved")
            yield Label("Start from an answers file (see README: 'The answers file')")
            yield Input(placeholder="path/to/answers.yaml", id="answers-path")
            yield Button("Open", variant="primary", id="open")
            yield Static("", id="welcome-error")
        yield Footer()

    @on(OptionList.OptionSelected, "#saved")
    def resume(self, event: OptionList.OptionSelected) -> None:
        chosen = self.setups[int(event.option.id or 0)]
        try:
            _, answers = answers_from_state(chosen.path)
        except WizardError as error:
            self.app.push_screen(ErrorScreen(error))
            return
        self.dismiss((answers, chosen.path))

    @on(Input.Submitted, "#answers-path")
    @on(Button.Pressed, "#open")
    def open_answers(self) -> None:
        path = self.query_one("#answers-path", Input).value.strip()
        if not path:
            self.query_one("#welcome-error", Static).update("Type the path of an answers file first.")
            return
        try:
            answers = answers_from_file(path)
        except WizardError as error:
            self.app.push_screen(ErrorScreen(error))
            return
        self.dismiss((answers, default_state_path(answers.name)))


class WizardApp(App[int]):
    """The checklist on the left, the selected step on the right, a live log below."""

    TITLE = "confluence-lb-wizard"
    CSS = """
    #checklist { width: 34; border: round $accent; }
    #main { padding: 0 1; }
    #step-detail { height: auto; max-height: 60%; border: round $panel; padding: 0 1; }
    #log { border: round $panel; }
    #welcome { padding: 1 2; }
    #welcome > Label { margin-top: 1; text-style: bold; }
    #saved { height: auto; max-height: 10; }
    #welcome-error { color: $error; }
    ModalScreen { align: center middle; }
    #dialog { width: 90%; max-width: 110; height: auto; max-height: 90%; border: thick $accent;
              background: $surface; padding: 1 2; }
    #dialog.error { border: thick $error; }
    #dialog-title { text-style: bold; margin-bottom: 1; }
    #plan-text { height: auto; max-height: 30; }
    #dialog-buttons { height: auto; margin-top: 1; }
    #error-hint { margin-top: 1; color: $warning; }
    """
    BINDINGS = [
        Binding("a", "apply", "Apply next step"),
        Binding("v", "verify", "Verify"),
        Binding("e", "export", "Export runbook"),
        Binding("c", "cancel", "Cancel work"),
        Binding("d", "toggle_dark", "Light/dark"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, *, state_path: Path | None = None, answers: Answers | None = None) -> None:
        super().__init__()
        self.initial_state_path = state_path
        self.initial_answers = answers
        self.runner: Runner | None = None
        self.cancel_flag = threading.Event()
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield ListView(*[ListItem(Label(step.title, id=f"label-{step.name}"), id=f"item-{step.name}")
                             for step in all_steps()], id="checklist")
            with Vertical(id="main"):
                yield Static("Open a setup to begin.", id="step-detail", markup=False)
                yield RichLog(id="log", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.initial_answers is not None and self.initial_state_path is not None:
            self.open_setup(self.initial_answers, self.initial_state_path)
        elif self.initial_state_path is not None:
            try:
                _, answers = answers_from_state(self.initial_state_path)
            except WizardError as error:
                self.push_screen(ErrorScreen(error), lambda _: self.show_welcome())
                return
            self.open_setup(answers, self.initial_state_path)
        else:
            self.show_welcome()

    def show_welcome(self) -> None:
        def chosen(result: tuple[Answers, Path] | None) -> None:
            if result is not None:
                self.open_setup(*result)

        self.push_screen(WelcomeScreen(saved_setups()), chosen)

    def open_setup(self, answers: Answers, state_path: Path) -> None:
        runner = Runner(answers, StateStore(state_path), events=self.forward_event,
                        command="confluence-lb-wizard (Textual)")
        try:
            runner.open()
        except WizardError as error:
            self.push_screen(ErrorScreen(error))
            return
        self.runner = runner
        self.sub_title = f"{answers.name}  ·  {answers.public_url.url}"
        self.refresh_checklist()
        first = self.first_step_not_done()
        self.query_one("#log", RichLog).write(
            f"Opened {answers.name} (state {state_path}). Press a to run the next step"
            + (f" ({first})." if first else "; every step is done."))
        self.show_step(first or all_steps()[-1].name)

    def on_unmount(self) -> None:
        if self.runner is not None:
            # A worker waiting for a confirmation (or polling a node) sees this and stops.
            self.runner.ctx.cancel.set()
            self.workers.cancel_group(self, "engine")
            self.runner.close(self.runner.exit_status)

    # The checklist.

    def first_step_not_done(self) -> str | None:
        assert self.runner is not None and self.runner.state is not None
        for step in all_steps():
            record = self.runner.state.steps.get(step.name)
            if not (record and record.done):
                return step.name
        return None

    def refresh_checklist(self) -> None:
        if self.runner is None or self.runner.state is None:
            return
        for step in all_steps():
            record = self.runner.state.steps.get(step.name)
            status = record.status if record else "pending"
            when = (record.updated or "")[11:16] if record else ""
            self.query_one(f"#label-{step.name}", Label).update(
                f"{STATUS_MARKS[status]} {step.title}\n    {status} {when}")

    def show_step(self, name: str) -> None:
        step = next(s for s in all_steps() if s.name == name)
        lines = [step.title, "", step.explanation, ""]
        if self.runner is not None and self.runner.state is not None:
            record = self.runner.state.steps.get(name)
            if record:
                lines.append(f"Status: {record.status}  {record.updated or ''}")
                if record.summary:
                    lines.append(record.summary)
                if record.error:
                    lines += ["", f"Error: {record.error.get('message')}", f"Next: {record.error.get('hint') or ''}"]
                if record.checks:
                    from wizard.model import Check
                    lines += ["", format_checks([Check.from_dict(c) for c in record.checks])]
        self.query_one("#step-detail", Static).update("\n".join(lines))

    @on(ListView.Highlighted, "#checklist")
    def step_highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None and event.item.id:
            self.show_step(event.item.id.removeprefix("item-"))

    # Engine events arrive here from the worker thread.

    def forward_event(self, event: Event) -> None:
        self.post_message(EngineEvent(event))  # post_message is thread-safe

    def on_engine_event(self, message: EngineEvent) -> None:
        text = EventPrinter().describe(message.event)
        if text:
            self.query_one("#log", RichLog).write(text.strip("\n"))
        self.refresh_checklist()
        step = getattr(message.event, "step", None)
        if step:
            self.show_step(step)
        if isinstance(message.event, StepFailed) and message.event.hint:
            self.notify(message.event.hint, title=f"{step} failed", severity="error", timeout=10)

    def on_run_finished(self, message: RunFinished) -> None:
        self.busy = False
        self.refresh_checklist()
        outcome = message.outcome
        self.query_one("#log", RichLog).write(outcome.message)
        self.notify(outcome.message, severity="information" if outcome.exit_status == EXIT_OK else "warning")

    def on_error_raised(self, message: ErrorRaised) -> None:
        self.busy = False
        self.push_screen(ErrorScreen(message.error))

    # Actions.

    def action_apply(self) -> None:
        if self.runner is None or self.busy:
            return
        self.busy = True
        self.cancel_flag.clear()
        self.run_engine("apply")

    def action_verify(self) -> None:
        if self.runner is None or self.busy:
            return
        self.busy = True
        self.run_engine("verify")

    def action_cancel(self) -> None:
        if self.runner is not None and self.busy:
            self.runner.ctx.cancel.set()
            self.notify("Cancelling after the current operation…")

    def action_export(self) -> None:
        if self.runner is None or self.runner.state is None:
            return
        base = self.runner.store.path.with_suffix("")
        try:
            for fmt in ("md", "html"):
                write_runbook(build_runbook(self.runner.state, fmt), f"{base}.runbook.{fmt}")
        except WizardError as error:
            self.push_screen(ErrorScreen(error))
            return
        self.notify(f"Runbook written to {base}.runbook.md and .html", title="Runbook")

    @work(thread=True, exclusive=True, group="engine")
    def run_engine(self, what: str) -> None:
        assert self.runner is not None
        self.runner.ctx.cancel.clear()
        try:
            outcome = self.runner.apply(confirm=self.confirm_from_thread) if what == "apply" else self.runner.verify()
        except WizardError as error:
            self.post_message(ErrorRaised(error))
            return
        self.post_message(RunFinished(outcome))

    def confirm_from_thread(self, plan: Plan) -> bool:
        """Ask the admin from the worker thread; wait without blocking the UI."""
        answered = threading.Event()
        answer = {"ok": False}

        def record(result: bool | None) -> None:
            answer["ok"] = bool(result)
            answered.set()

        self.call_from_thread(self.push_screen, ConfirmPlanScreen(plan), record)
        while not answered.wait(0.1):
            if self.runner is not None and self.runner.ctx.cancel.is_set():
                return False
        return answer["ok"]


def create_app(*, state: str | Path | None = None, answers_file: str | None = None) -> WizardApp:
    """The app, ready to run (tests and the lab build it here too)."""
    answers = answers_from_file(answers_file) if answers_file else None
    state_path = Path(state).expanduser() if state else (default_state_path(answers.name) if answers else None)
    return WizardApp(state_path=state_path, answers=answers)


def run_app(state: str | None = None) -> int:
    app = create_app(state=state)
    app.run()
    return app.return_code or 0
