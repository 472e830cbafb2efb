"""The engine in a thread worker, and what the app does with what it reports.

The engine half of the app (``WizardApp`` builds on it): ``start_job`` runs ``Runner.apply``, ``verify`` or
``rollback`` in a thread worker; the runner's events come back as
``EngineReported`` messages, its end as ``RunFinished`` (or ``RunFailed``).
The handlers keep the session's model (progress, the step at work) and hand
the screens what to draw; redraws are gathered into one per frame so a burst
of events never stalls the UI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App

from screens.dialogs.error import ErrorScreen, as_admin_error
from screens.messages import EngineReported, RunFailed, RunFinished
from screens.pauses import hold_full_collections, release_full_collections
from wizard.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    WizardError,
)

if TYPE_CHECKING:
    from screens.bridge import ThreadBridge
    from screens.steps.setup import SetupScreen
    from wizard.engine.events import StepFailed
    from wizard.engine.model import Plan, UndoAction
    from wizard.session import Session

#: Seconds between two redraws of the checklist and the step while the engine reports.
REDRAW_EVERY = 0.05


class EngineApp(App[int]):
    """Engine jobs, in workers, reported to the screens; ``WizardApp`` adds the screens' routing
    and refines the four hooks below (an engine alone has no setup screen and no pages)."""

    session: Session | None
    bridge: ThreadBridge
    busy: bool
    quit_when_idle: bool
    summary_shown: bool
    _redraw_pending: bool = False
    #: A cancelled step already said so (one notice per cancel, not two).
    _cancel_noted: bool = False

    # The hooks the app built on this engine refines.

    def setup_screen(self) -> SetupScreen | None:
        """The setup screen in the stack, which logs the engine's events; none here."""
        return None

    def refresh_pages(self) -> None:
        """Show the session as it is now on every page; there are none here."""

    def action_summary(self) -> None:
        """Show the summary of the setup; there is no summary page here."""

    def fail(self, error: BaseException, *, title: str = "Something needs your attention",
             then_welcome: bool = False) -> None:
        """An error dialog with the next thing to try; never a traceback."""
        self.push_screen(ErrorScreen(as_admin_error(error), title=title))

    # Starting a job.

    def run_steps(self, names: list[str] | None) -> None:
        """Apply the named steps (each plan shown first), or every step not done, in order."""
        self.start_job("apply", names or [])

    def action_verify(self) -> None:
        self.start_job("verify", [])

    def rollback(self, name: str) -> None:
        self.start_job("rollback", [name])

    def start_job(self, kind: str, names: list[str]) -> None:
        if self.session is None:
            self.notify("Open a setup first.", severity="warning")
            return
        if self.busy:
            self.notify("A step is already running; cancel it with c, or wait.", severity="warning")
            return
        self.set_busy(True)
        self.session.job_started()  # before the thread starts: a quit from now on leaves the closing to it
        self.engine_worker(kind, tuple(names))

    @work(thread=True, exclusive=True, group="engine", exit_on_error=False)
    def engine_worker(self, kind: str, names: tuple[str, ...]) -> None:
        session = self.session
        assert session is not None
        runner = session.runner
        runner.ctx.cancel.clear()
        exit_status = EXIT_INTERRUPTED
        try:
            if kind == "apply":
                outcome = runner.apply(list(names) or None, confirm=self.confirm_plan)
            elif kind == "verify":
                outcome = runner.verify()
            else:
                outcome = runner.rollback(names[0], confirm=self.confirm_rollback)
            exit_status = outcome.exit_status
        except Exception as exc:  # a bug or an error outside any step: words for the admin, no traceback
            self.post_message(RunFailed(kind, as_admin_error(exc)))
            return
        finally:
            try:
                # If the app let the session go meanwhile (it quit), the lock, the run's record and
                # the connections are closed here, now that the step has stopped safely.
                if not session.job_finished(exit_status):
                    runner.ctx.cancel.clear()  # the next questions (reading a node) are not this run's
            except WizardError:
                pass  # the app is gone: nowhere to show it; the state file keeps what was done
        self.post_message(RunFinished(kind, names, outcome))

    # Questions from the worker.

    def confirm_plan(self, plan: Plan) -> bool:
        """From the worker: show the plan and wait for y or n."""
        from screens.dialogs.confirm_plan import ConfirmPlanScreen

        # Built here, in the worker: the plan's lines are rendered off the event loop.
        return bool(self.bridge.ask(ConfirmPlanScreen(plan, screen_width=self.size.width), False))

    def confirm_rollback(self, step: str, actions: list[UndoAction]) -> bool:
        from screens.dialogs.confirm_rollback import ConfirmRollbackScreen

        return bool(self.bridge.ask(ConfirmRollbackScreen(step, actions), False))

    def post_engine_event(self, event: Any) -> None:
        """The runner's event sink (called in the worker): post_message is thread-safe."""
        self.post_message(EngineReported(event))

    # What the engine reports.

    def on_engine_reported(self, message: EngineReported) -> None:
        from wizard.session import StepProgress
        from wizard.engine.events import (
            ChecksCompleted,
            ProgressReported,
            StepApplied,
            StepFailed,
            StepRolledBack,
            StepStarted,
        )

        session = self.session
        if session is None:
            return
        event = message.event
        if isinstance(event, StepStarted):
            session.running = event.step
            session.progress[event.step] = StepProgress(event.step)
        elif isinstance(event, ProgressReported):
            session.progress.setdefault(event.step, StepProgress(event.step)).report(event)
        elif isinstance(event, (StepApplied, ChecksCompleted, StepRolledBack)):
            if event.step in session.progress:
                session.progress[event.step].finish()
            if not isinstance(event, StepApplied):
                session.running = None
        elif isinstance(event, StepFailed):
            if event.step in session.progress:
                session.progress[event.step].finish(failed=True)
            session.running = None
            self.step_failed(event)
        screen = self.setup_screen()
        if screen is not None:
            screen.log_event(event)
            screen.follow(getattr(event, "step", None))
            if isinstance(event, (StepStarted, StepFailed, ChecksCompleted)):
                screen.step_changed()
            elif isinstance(event, ProgressReported):
                screen.step_progressed()
        self.redraw_soon()

    def redraw_soon(self) -> None:
        """One redraw of the checklists and the step for all the events of the next few frames."""
        if not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(REDRAW_EVERY, self._redraw)

    def _redraw(self) -> None:
        self._redraw_pending = False
        self.refresh_pages()

    def step_failed(self, event: StepFailed) -> None:
        session = self.session
        record = session.record(event.step) if session else None
        if record is not None and record.error is not None and record.error.interrupted:
            self.notify(f"{event.step}: cancelled; what it had changed was undone. Run it again to resume.",
                        severity="warning")
            self._cancel_noted = True  # the run's end says nothing more about it
            return
        message = event.message
        if event.undone:
            message += "\n\nUndone: " + "; ".join(event.undone)
        title = session.step(event.step).title if session else event.step
        self.push_screen(ErrorScreen(WizardError(message, event.hint), title=f"{title}: failed"))

    def set_busy(self, busy: bool) -> None:
        """A job starts or ends: the footer offers what fits, and full garbage collections wait
        for the end of the job (``screens.pauses``)."""
        self.busy = busy
        self.refresh_bindings()
        if busy:
            hold_full_collections()
        else:
            # After the screen has drawn the job's end: the held-back collection pauses nothing seen.
            self.call_after_refresh(release_full_collections)

    def on_run_finished(self, message: RunFinished) -> None:
        self.set_busy(False)
        outcome = message.outcome
        session = self.session
        screen = self.setup_screen()
        if session is not None:
            session.running = None
        text = outcome.message
        noted, self._cancel_noted = self._cancel_noted, False
        if message.kind == "apply" and message.steps and outcome.exit_status == EXIT_OK and session is not None:
            # The runner's own words are for a whole run ("every step is done"); here one step ran.
            text = "; ".join(f"{session.step(name).title}: done" for name in message.steps) + "."
        if screen is not None:
            screen.log_line(text)
        self.refresh_pages()
        if self.quit_when_idle:
            self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        if session is None:
            return
        if message.kind == "verify":
            from screens.steps.verify_results import VerifyResultsScreen

            self.push_screen(VerifyResultsScreen(outcome.checks, outcome.message))
            return
        if message.kind == "apply" and outcome.exit_status == EXIT_CHECK_FAILED:
            self.notify(outcome.message + " The failed checks say what to do.", severity="warning", timeout=10)
        elif outcome.exit_status != EXIT_STEP_FAILED and not noted:  # a failed step already has its dialog
            self.notify(text, severity="information" if outcome.exit_status == EXIT_OK else "warning")
        if message.kind == "apply" and outcome.exit_status == EXIT_OK and screen is not None:
            following = session.first_not_done()
            if following is not None:
                screen.select(following)
                screen.log_line(f"Next: {following}. Press enter to see its plan.")
            elif not self.summary_shown:
                self.summary_shown = True
                self.action_summary()

    def on_run_failed(self, message: RunFailed) -> None:
        self.set_busy(False)
        if self.session is not None:
            self.session.running = None
        self.refresh_pages()
        if self.quit_when_idle:
            self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        self.fail(message.error)

    def action_cancel(self) -> None:
        if self.session is not None and self.busy:
            self.session.runner.ctx.cancel.set()
            self.notify("Cancelling: the work stops at its next safe point; a step that was changing things "
                        "undoes what it changed.",
                        title="Cancel")
