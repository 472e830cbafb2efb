"""The setup screen: the checklist, the selected step, and the live log of what the engine does.

Jump to a step with the arrows; enter runs it (its plan is shown first), ``a``
runs every step not done in order. The engine itself runs in the app's thread
worker; this screen only draws what it reports.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import ListView, RichLog

from screens.checklist import ANSWERS, Checklist
from screens.page import Page
from screens.step_view import StepView
from wizard.engine.events import Event, PlanReady
from wizard.report import EventPrinter


class SetupScreen(Page):
    """Keyboard first: every action is a key in the footer, and in the command palette."""

    BINDINGS = [
        Binding("enter", "run_selected", "Run", priority=True),
        Binding("a", "run_all", "Run all"),
        Binding("v", "verify", "Verify"),
        Binding("u", "rollback_selected", "Roll back"),
        Binding("e", "export", "Runbook"),
        Binding("s", "summary", "Summary"),
        # Shown in the step's hint and the palette: the footer must fit in 80 columns.
        Binding("i", "edit_answers", "Answers", show=False),
        Binding("c", "cancel", "Cancel"),
        # Only in the lab, while the guided base-url step waits for the admin.
        Binding("b", "lab_base_url", "Lab: set base URL"),
        Binding("d", "toggle_theme", "Theme", show=False),
        Binding("q", "quit", "Quit"),
    ]

    AUTO_FOCUS = "#checklist"

    def __init__(self) -> None:
        super().__init__()
        # The plans' diffs are shown in the dialog before anything is applied; the log keeps a line.
        self._printer = EventPrinter(show_plans=False)
        # Lines logged before the log widget exists (the app opens a setup, then this screen mounts).
        self._backlog: list[str] | None = []
        self._lab_hint_given = False

    def compose_page(self) -> ComposeResult:
        yield StepView(id="step-view")
        yield RichLog(id="log", wrap=True, markup=False, max_lines=2000, min_width=20)

    def on_mount(self) -> None:
        # Resume lands on the first step not done; with every step done, on the last one.
        session = self.wizard.session
        steps = session.steps() if session else []
        target = (session.first_not_done() if session else None) or (steps[-1].name if steps else ANSWERS)
        self.query_one(Checklist).select(target)
        self.show(target)
        # Written once the log has its width, so the lines wrap to it.
        self.call_after_refresh(self._flush_backlog)

    def _flush_backlog(self) -> None:
        backlog, self._backlog = self._backlog or [], None
        for line in backlog:
            self.log_line(line)

    # What is shown.

    @property
    def checklist(self) -> Checklist | None:
        """The checklist, or None while the screen is still being built (or taken down): the app
        may hand this screen news at any time, and news for a screen without widgets is dropped."""
        found = self.query(Checklist)
        return found.first() if found else None

    @property
    def selected(self) -> str:
        checklist = self.checklist
        return (checklist.selected_name if checklist else None) or ANSWERS

    def show(self, name: str) -> None:
        session = self.wizard.session
        views = self.query(StepView)
        if session is None or not views:
            return
        view = views.first()
        if name == ANSWERS:
            view.show_answers(session)
        else:
            view.show_step(session, session.step(name))

    def refresh_page(self) -> None:
        self.refresh_checklist()
        self.show(self.selected)

    def select(self, name: str) -> None:
        if self.checklist is not None:
            self.checklist.select(name)

    def log_line(self, text: str) -> None:
        if self._backlog is not None:
            self._backlog.append(text)
            return
        for log in self.query("#log").results(RichLog):
            log.write(text)

    def log_event(self, event: Event) -> None:
        """An engine event, as the headless command prints it, in the live log."""
        if isinstance(event, PlanReady):
            plan = event.plan
            self.log_line(f"Plan for {plan.step}: {plan.noop_reason or plan.summary}"
                          + (f" ({len(plan.changes)} change(s), shown before they are made)" if plan.changes else ""))
            return
        text = self._printer.describe(event)
        if text:
            self.log_line(text.strip("\n"))

    def step_changed(self) -> None:
        """A step started or ended: the footer offers what fits now (the lab's base-URL key)."""
        self.refresh_bindings()
        self._lab_hint_given = False

    def step_progressed(self) -> None:
        """Under the base-url step's first words on what to do, how the lab can do it for you."""
        if self.lab_waits_for_base_url and not self._lab_hint_given:
            self._lab_hint_given = True
            self.log_line("In the lab you can play the admin: press b, and the lab sets the base URL in its "
                          "General Configuration (or open the page named above in a browser).")

    def follow(self, step: str | None) -> None:
        """The step the engine works on is the one in view (redrawn with the next refresh)."""
        checklist = self.checklist
        if checklist is not None and step and step in checklist.rows and self.selected != step:
            checklist.select(step)

    @on(ListView.Highlighted, "#checklist")
    def highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None and event.item.id:
            self.show(event.item.id.removeprefix("item-"))

    # Actions: the app does the work; these pick the step.

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the engine works only Cancel is offered; otherwise everything but Cancel.
        busy = self.wizard.busy
        if action == "cancel":
            return busy
        if action == "lab_base_url":
            return self.lab_waits_for_base_url
        if action in ("run_selected", "run_all", "verify", "rollback_selected", "edit_answers"):
            return not busy
        return True

    @property
    def lab_waits_for_base_url(self) -> bool:
        """The lab can play the admin now: the guided base-url step runs on it."""
        session = self.wizard.session
        return (self.wizard.lab is not None and session is not None and session.running == "base-url"
                and session.answers.base_url.method == "guided")

    def action_lab_base_url(self) -> None:
        self.wizard.action_lab_base_url()

    def action_run_selected(self) -> None:
        if self.selected == ANSWERS:
            self.wizard.action_edit_answers()
        else:
            self.wizard.run_steps([self.selected])

    def action_run_all(self) -> None:
        self.wizard.run_steps(None)

    def action_verify(self) -> None:
        self.wizard.action_verify()

    def action_rollback_selected(self) -> None:
        if self.selected == ANSWERS:
            self.notify("Choose a step in the checklist to roll it back.", severity="warning")
            return
        self.wizard.rollback(self.selected)

    def action_export(self) -> None:
        self.wizard.action_export()

    def action_summary(self) -> None:
        self.wizard.action_summary()

    def action_edit_answers(self) -> None:
        self.wizard.action_edit_answers()

    def action_cancel(self) -> None:
        self.wizard.action_cancel()

    def action_toggle_theme(self) -> None:
        self.wizard.action_toggle_dark()

    async def action_quit(self) -> None:
        await self.wizard.action_quit()
