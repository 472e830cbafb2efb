"""The Textual wizard: the app factory and the routing between screens.

Built through ``create_app`` so tests, the lab and the command line start it
the same way. The app is the controller: it opens a setup (a ``Runner`` that
holds the state's lock), runs engine jobs in a thread worker
(``screens.engine``), and hands what the engine reports to the screens. A
worker never touches a widget: it posts messages (``screens.messages``) and the
handlers pass them on to the screens, which own their widgets (Textual's worker
guide; docs/architecture.md).

Only what the first screen needs is imported up front (the welcome screen
appears about as fast as a bare Textual app); every other screen, the engine
and the answers' checks load when they are first used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App
from textual.binding import Binding

from screens.bridge import ModalPrompts, ThreadBridge
from screens.dialogs.error import ErrorScreen, as_admin_error
from screens.engine import EngineApp
from screens.messages import LabFailed, LabStarted
from screens.pauses import freeze_startup_objects, release_full_collections
from screens.welcome import Choice, WelcomeScreen
from wizard.errors import EXIT_INTERRUPTED, EXIT_OK, WizardError

if TYPE_CHECKING:
    from screens.steps.setup import SetupScreen
    from wizard.answers.draft import Draft
    from wizard.answers_model import Answers
    from wizard.session import Session
    from wizard.session import Row

COMMAND = "confluence-lb-wizard (Textual)"


def wizard_commands() -> Any:
    """The command palette's provider, loaded when the palette first opens."""
    from screens.commands import WizardCommands

    return WizardCommands


class WizardApp(EngineApp):
    """The checklist, the steps and their plans, the engine in a worker, every answer asked in a dialog."""

    TITLE = "confluence-lb-wizard"
    CSS_PATH = "wizard.tcss"
    COMMANDS = App.COMMANDS | {wizard_commands}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True, show=False)]

    def __init__(self, *, state_path: Path | None = None, answers_file: Path | None = None,
                 answers: Answers | None = None, lab: Any = None) -> None:
        super().__init__()
        self.initial_state_path = state_path
        self.initial_answers_file = answers_file
        self.initial_answers = answers
        self.session: Session | None = None
        #: An engine job is running in the worker.
        self.busy = False
        #: The lab the wizard works on, if any (``owns_lab``: started here, stopped on exit).
        self.lab = lab
        self.owns_lab = False
        #: A lab is being started from the welcome screen (a second choice waits for it).
        self.lab_starting = False
        self.exported: list[Path] = []
        self.quit_when_idle = False
        self.summary_shown = False
        self.bridge = ThreadBridge(self, cancelled=self._cancelled)
        #: SSH's questions (a key's passphrase, an unknown host key), handed to every runner and
        #: node reading of this app; wizard.transport.ssh itself loads only when a machine is reached.
        self.prompts = ModalPrompts(self.bridge)

    # Starting and stopping.

    def on_mount(self) -> None:
        from screens.preferences import load_theme
        from wizard.engine.state import default_state_path

        theme = load_theme()
        if theme in self.available_themes:
            self.theme = theme

        if self.initial_answers is not None:
            state = self.initial_state_path or default_state_path(self.initial_answers.name)
            self.open_setup(self.initial_answers, state)
        elif self.initial_answers_file is not None:
            self.open_answers_file(self.initial_answers_file, self.initial_state_path)
        elif self.initial_state_path is not None and self.initial_state_path.exists():
            self.open_state(self.initial_state_path)
        else:
            self.show_welcome()
        # What exists once the first screen is drawn lives as long as the app (screens.pauses).
        self.call_after_refresh(freeze_startup_objects)

    def watch_theme(self, theme: str) -> None:
        """Light or dark (d, or the palette): remembered for the next start."""
        from screens.preferences import save_theme

        save_theme(theme)

    def on_unmount(self) -> None:
        self.close_session()
        release_full_collections()  # quit during a job: Python collects as usual again
        if self.lab is not None and self.owns_lab:
            self.lab.stop()

    def close_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        # A worker still waiting (for a confirmation, a node) sees this and stops.
        session.runner.ctx.cancel.set()
        try:
            # While a step still works in its thread, it stops at its next safe point and undoes
            # what it changed with the state lock still held; that thread closes the runner then.
            session.close()
        except WizardError as error:
            self.notify(error.for_admin(), severity="error")

    def _cancelled(self) -> bool:
        """Whether the run a question belongs to was cancelled (reading a node in the
        inventory is not a run: its questions wait for their answer)."""
        session = self.session  # read once: the UI thread may close it meanwhile
        return self.busy and session is not None and session.runner.ctx.cancel.is_set()

    # Where the admin is.

    def show_welcome(self) -> None:
        self.pop_to_base()
        self.push_screen(WelcomeScreen())

    def pop_to_base(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def fail(self, error: BaseException, *, title: str = "Something needs your attention",
             then_welcome: bool = False) -> None:
        """An error dialog with the next thing to try; never a traceback."""
        callback = (lambda _: self.show_welcome()) if then_welcome else None
        self.push_screen(ErrorScreen(as_admin_error(error), title=title), callback)

    def setup_title(self) -> str:
        """What the title bar says on every page of a setup."""
        if self.session is None:
            return ""
        return f"{self.session.answers.name} · {self.session.answers.public_url.url}"

    def checklist_rows(self) -> list[Row]:
        from wizard.session import pending_rows

        return self.session.rows() if self.session is not None else pending_rows()

    def setup_screen(self) -> SetupScreen | None:
        from screens.steps.setup import SetupScreen

        return next((s for s in self.screen_stack if isinstance(s, SetupScreen)), None)

    def refresh_pages(self) -> None:
        """Every page in the stack shows the session as it is now (checklist, step, summary)."""
        from screens.page import Page

        for screen in self.screen_stack:
            if isinstance(screen, Page):
                screen.refresh_page()

    # Opening a setup.

    def start_from_welcome(self, choice: Choice) -> None:
        from screens.answers.inventory import InventoryScreen
        from wizard.answers.draft import Draft, draft_path, set_earlier_draft_aside
        from wizard.answers.forms import NEW_SETUP

        if choice.kind == "new":
            self.note_earlier_draft(set_earlier_draft_aside())
            self.push_screen(InventoryScreen(Draft(NEW_SETUP, draft_path())))
        elif choice.kind == "draft" and choice.path is not None:
            try:
                self.push_screen(InventoryScreen(Draft.load(choice.path)))
            except WizardError as error:
                self.fail(error)
        elif choice.kind == "resume" and choice.path is not None:
            self.open_state(choice.path)
        elif choice.kind == "lab":
            if self.lab is not None and self.lab.running and self.lab.balancer == choice.balancer:
                # The lab this wizard was opened on: back to it (a second one cannot share its folder).
                self.open_answers_file(Path(self.lab.answers_path), Path(self.lab.state_path))
                return
            if self.lab_starting:
                self.notify("The lab is starting; it opens in a moment.", title="Lab")
                return
            self.lab_starting = True
            self.notify("Starting the lab: simulated nodes on this machine…", title="Lab")
            self.start_lab(choice.balancer)

    def open_answers_file(self, path: Path, state_path: Path | None = None) -> None:
        """A complete answers file opens the steps; a partial one opens the inventory to finish it."""
        from wizard.answers import find_problems, load_answers_file, merge, validate
        from wizard.engine.state import default_state_path

        try:
            raw = load_answers_file(path)
        except WizardError as error:
            self.fail(error, then_welcome=not isinstance(self.screen, WelcomeScreen))
            return
        problems = find_problems(raw)
        if problems:
            from screens.answers.inventory import InventoryScreen
            from wizard.answers.draft import Draft, draft_path, set_earlier_draft_aside
            from wizard.answers.forms import NEW_SETUP

            if not isinstance(self.screen, WelcomeScreen):
                self.show_welcome()
            # What the file gives becomes the defaults; the contract's defaults show for the rest.
            self.note_earlier_draft(set_earlier_draft_aside())
            draft = Draft(merge(NEW_SETUP, raw), draft_path())
            try:
                draft.save()
            except OSError as exc:
                self.notify(f"Could not save the answers so far in {draft_path()}: {exc.strerror or exc}",
                            severity="error", timeout=8)
            self.push_screen(InventoryScreen(draft))
            self.notify(f"{path} has {len(problems)} answer(s) to give or correct; they are marked.",
                        title="Partial answers", severity="warning", timeout=8)
            return
        answers = validate(raw, source=str(path))
        self.open_setup(answers, state_path or default_state_path(answers.name), answers_path=path)

    def note_earlier_draft(self, kept: Path | None) -> None:
        if kept is not None:
            self.notify(f"Your earlier unfinished setup is kept in {kept}.", title="Draft", timeout=8)

    def open_state(self, path: Path) -> None:
        from wizard.session import answers_from_state

        try:
            _, answers = answers_from_state(path)
        except WizardError as error:
            self.fail(error, then_welcome=not isinstance(self.screen, WelcomeScreen))
            return
        self.open_setup(answers, path)

    def open_setup(self, answers: Answers, state_path: Path, *, answers_path: Path | None = None) -> None:
        """Take the state's lock and show the steps, on the first one not done."""
        from screens.steps.setup import SetupScreen
        from wizard.engine.runner import Runner
        from wizard.engine.state import StateStore
        from wizard.session import Session, mark_interactive

        self.close_session()
        runner = Runner(answers, StateStore(state_path), events=self.post_engine_event,
                        prompts=self.prompts, command=COMMAND)
        try:
            runner.open()
        except WizardError as error:
            self.fail(error, then_welcome=not isinstance(self.screen, WelcomeScreen))
            return
        mark_interactive(runner)
        self.session = session = Session(runner, answers_path)
        self.summary_shown = session.first_not_done() is None
        self.exported = []
        self.pop_to_base()
        screen = SetupScreen()
        self.push_screen(screen)
        first = session.first_not_done()
        screen.log_line(f"Opened {answers.name}; the state is saved in {state_path} after every change.")
        if self.lab is not None and Path(self.lab.state_path) == state_path:
            if self.lab.resumed:
                screen.log_line("The lab came back as you left it: the same nodes, ports, files and progress.")
            elif self.lab.resume_note:
                screen.log_line(f"The last lab could not come back ({self.lab.resume_note}); this one is new.")
        screen.log_line(f"Press enter to run {first} (its plan is shown before anything changes)." if first
                        else "Every step is done: v verifies again, e exports the runbook.")

    def finish_draft(self, draft: Draft) -> None:
        """The inventory is complete: save the answers beside the state and open the steps."""
        from wizard.answers import answers_to_yaml, validate
        from wizard.answers.draft import answers_path_for, write_private
        from wizard.engine.state import default_state_path

        try:
            answers = validate(draft.final(), source="the inventory")
        except WizardError as error:
            self.fail(error)
            return
        if draft.editing and self.session is not None:
            state_path = self.session.state_path
        else:
            state_path = self.initial_state_path or default_state_path(answers.name)
        answers_path = answers_path_for(state_path, answers.name)
        if not draft.editing and (state_path.exists() or answers_path.exists()):
            # Its steps were done (or its answers given) for other machines: never take them over.
            self.fail(WizardError(f"A setup named {answers.name!r} already exists "
                                  f"({state_path if state_path.exists() else answers_path}).",
                                  "Give this setup another name, or resume that one from the welcome screen."))
            return
        try:
            write_private(answers_path, answers_to_yaml(answers))
        except OSError as error:
            self.fail(WizardError(f"Could not save the answers in {answers_path}: {error.strerror or error}.",
                                  "Check that the folder exists and that you may write to it."))
            return
        draft.discard()  # it became the answers
        self.open_setup(answers, state_path, answers_path=answers_path)
        self.notify(f"Answers saved in {answers_path} (usable with `apply --answers`).", title="Answers")

    def action_edit_answers(self) -> None:
        """The inventory on the setup's answers; saving them reopens the setup with the new ones."""
        import yaml

        from screens.answers.inventory import InventoryScreen
        from wizard.answers import answers_to_yaml
        from wizard.answers.draft import Draft, edit_draft_path

        if self.session is None or self.busy:
            self.notify("Wait for the work in progress to end (or cancel it with c).", severity="warning")
            return
        name = self.session.answers.name
        path = edit_draft_path(self.session.state_path, name)
        if path.exists():
            try:
                draft = Draft.load(path, editing=name)
            except WizardError as error:
                self.fail(error)
                return
            self.notify(f"Going on with the changes you had not saved yet ({path}).", title="Answers", timeout=8)
        else:
            draft = Draft(yaml.safe_load(answers_to_yaml(self.session.answers)), path, editing=name)
        self.push_screen(InventoryScreen(draft))

    # The lab.

    @work(thread=True, exclusive=True, group="lab", exit_on_error=False)
    def start_lab(self, balancer: str) -> None:
        try:
            from wizard.lab.cluster import Lab, default_lab_root

            # The lab of `confluence-lb-wizard lab`: it comes back where the admin left it.
            lab = Lab(default_lab_root(balancer), balancer=balancer, resume=True).start()
        except Exception as exc:  # Lab.start stops whatever it started before raising
            self.post_message(LabFailed(as_admin_error(exc)))
            return
        self.post_message(LabStarted(lab))

    def on_lab_started(self, message: LabStarted) -> None:
        self.lab_starting = False
        if not isinstance(self.screen, WelcomeScreen):
            # The admin went on meanwhile (a new setup, a dialog): what they opened is not torn
            # down for the lab, and the lab is not kept running unseen.
            self.stop_lab_in_background(message.lab)
            self.notify("You went on while the lab started, so it was stopped; choose it again on the "
                        "welcome screen to open it.", title="Lab")
            return
        if self.lab is not None and self.owns_lab:
            self.stop_lab_in_background(self.lab)  # the other balancer's lab, no longer shown
        self.lab, self.owns_lab = message.lab, True
        self.open_answers_file(Path(message.lab.answers_path), Path(message.lab.state_path))

    @work(thread=True, group="lab-stop", exit_on_error=False)
    def stop_lab_in_background(self, lab: Any) -> None:
        lab.stop()  # joins threads and waits for Apache: not on the event loop

    def on_lab_failed(self, message: LabFailed) -> None:
        self.lab_starting = False
        self.fail(message.error, title="The lab could not start")

    def action_lab_base_url(self) -> None:
        """Play the admin of the guided base-url step: save the public URL in the lab's Confluence."""
        if self.lab is None or self.session is None:
            return
        self.lab_base_url_worker(self.session.answers.public_url.url)

    @work(thread=True, group="lab", exit_on_error=False)
    def lab_base_url_worker(self, url: str) -> None:
        try:
            value = self.lab.set_base_url_as_admin(url)
        except Exception as exc:  # shown as words in a dialog, whatever it is
            self.call_from_thread(self.fail, exc)
            return
        self.call_from_thread(self.notify, f"The lab's base URL is now {value}.", title="Lab")

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification is plain text: paths and host names may hold brackets that markup
        would swallow (or fail on)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    # Actions every screen may offer.

    async def action_quit(self) -> None:
        """Quit; while a step runs, stop it safely first (a second q quits at once)."""
        if self.busy and not self.quit_when_idle:
            self.quit_when_idle = True
            self.action_cancel()
            self.notify("Quitting once the step has stopped safely; press q again to quit at once.")
            return
        code = EXIT_INTERRUPTED if self.busy else EXIT_OK
        running = self.session.running if self.session is not None and self.busy else None
        # The step's thread still finishes its safe stop (and its undo) before the process ends.
        self.exit(code, return_code=code, message=(
            f"Stopping {running} safely: what it changed is being undone, and the state file says so. "
            "Run the same command again to resume." if running else None))

    def action_export(self) -> None:
        """The runbook in Markdown and HTML, beside the state file."""
        from wizard.runbook import build_runbook, write_runbook

        if self.session is None:
            return
        if self.busy:
            # The step's thread is writing the record the runbook is made from.
            self.notify("Export the runbook once the step has finished: it records what the step did.",
                        severity="warning")
            return
        session = self.session
        base = session.state_path.parent / f"{session.answers.name}.runbook"
        written = []
        try:
            for fmt in ("md", "html"):
                written.append(write_runbook(build_runbook(session.state, fmt), f"{base}.{fmt}"))
        except WizardError as error:
            self.fail(error)
            return
        self.exported = written
        self.notify("Runbook written to " + " and ".join(str(p) for p in written), title="Runbook", timeout=8)
        self.refresh_pages()

    def action_summary(self) -> None:
        from screens.steps.summary import SummaryScreen

        if self.session is not None and not any(isinstance(s, SummaryScreen) for s in self.screen_stack):
            self.push_screen(SummaryScreen())

    # No traceback for the admin, even for a bug in the face itself.

    def _fatal_error(self) -> None:
        """Textual would print a traceback on exit; the admin gets a sentence and where the details are."""
        import traceback

        from rich.text import Text

        details = "".join(traceback.format_exception(*sys.exc_info())) if sys.exc_info()[0] else repr(self._exception)
        where = write_crash_report(details)
        if self._exit:
            # The admin already quit: a screen torn down half-built is no news for them.
            self._close_messages_no_wait()
            return
        self.bell()
        self._exit_renderables.append(Text(
            f"confluence-lb-wizard stopped on an unexpected problem: {self._exception!r}.\n"
            "The state is saved after every change: start the wizard again and it resumes.\n"
            + (f"Details for a bug report: {where}" if where else "")))
        self._close_messages_no_wait()


def write_crash_report(details: str) -> Path | None:
    """Where a bug's details go (never on the admin's screen)."""
    from wizard.answers.draft import write_private
    from wizard.engine.state import default_state_path

    path = default_state_path("x").parent / "crash-report.txt"
    try:
        write_private(path, details)
    except OSError:
        return None
    return path


def create_app(*, state: str | Path | None = None, answers_file: str | Path | None = None,
               lab: Any = None) -> WizardApp:
    """The app, ready to run (tests, the lab and the command line build it here).

    ``answers_file``: open these answers (a partial file opens the inventory to finish
    it); ``state``: the state file (default: the setup's own under $XDG_STATE_HOME);
    ``lab``: the running ``wizard.lab.cluster.Lab`` the answers describe, for its palette command.
    """
    return WizardApp(state_path=Path(state).expanduser() if state else None,
                     answers_file=Path(answers_file).expanduser() if answers_file else None, lab=lab)


NO_TERMINAL = ("confluence-lb-wizard opens a full-screen wizard, which needs a terminal, and there is none here.\n"
               "  -> Without one, run `confluence-lb-wizard apply --answers FILE --yes` "
               "(review the changes first with `plan --answers FILE`).")


def run_app(state: str | None = None) -> int:
    """Run the full-screen wizard; the exit status for the command line."""
    from wizard.errors import EXIT_BAD_INPUT

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(NO_TERMINAL, file=sys.stderr)
        return EXIT_BAD_INPUT
    app = create_app(state=state)
    app.run()
    return app.return_code or 0
