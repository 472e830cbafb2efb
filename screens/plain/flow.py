"""The plain-prompt face (``--plain``): the same flow as the Textual app, as line prompts with questionary.

Welcome (resume a saved setup, start a new one, open an answers file), the
inventory (``screens.plain.answers``), then the checklist with the same
actions: run the next step (its plan printed and confirmed first), run every
step not done, verify now, roll back a step, export the runbook, quit. The
state is saved after every change, so quitting (or Ctrl-C) loses nothing.
Without a terminal it says so and points to ``apply --answers``.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from screens.plain.answers import Asker, ask_new, complete
from wizard.answers.draft import Draft, answers_path_for, draft_path, write_private
from wizard.answers.forms import NEW_SETUP
from wizard.session import Session, answers_from_state, mark_interactive, saved_setups
from wizard.answers import (
    answers_to_yaml,
    find_problems,
    load_answers_file,
    merge,
    validate,
)
from wizard.answers_model import Answers
from wizard.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HostKeyError,
    WizardError,
)
from wizard.engine.model import Plan, UndoAction
from wizard.engine.runner import Outcome, Runner
from wizard.engine.state import StateStore, default_state_path
from wizard.report import EventPrinter, format_checks, format_status

COMMAND = "confluence-lb-wizard --plain"
NO_TERMINAL = ("confluence-lb-wizard --plain needs a terminal to ask its questions, and there is none here.\n"
               "  -> Without one, run `confluence-lb-wizard apply --answers FILE --yes` "
               "(review the changes first with `plan --answers FILE`).")


def run_prompts(state: str | None = None, *, input: Any = None, output: Any = None) -> int:
    """The whole flow; the exit status of the command (0 done or quit, 130 interrupted, 2 bad input)."""
    if input is None and not sys.stdin.isatty():
        print(NO_TERMINAL, file=sys.stderr)
        return EXIT_BAD_INPUT
    asker = Asker(input, output)
    try:
        opened = choose_setup(asker, Path(state).expanduser() if state else None)
        if opened is None:
            return EXIT_OK
        answers, state_path, answers_path = opened
        return PromptSession(asker, answers, state_path, answers_path).run()
    except KeyboardInterrupt:
        asker.say("\nInterrupted; everything done so far is saved. Run the same command to resume.")
        return EXIT_INTERRUPTED
    except WizardError as error:
        asker.say(f"\n{error.for_admin()}")
        return error.exit_code


# Which setup.

def choose_setup(asker: Asker, state: Path | None) -> tuple[Answers, Path, Path | None] | None:
    """The welcome: (answers, state file, answers file), or None when the admin leaves."""
    if state is not None and state.exists():
        _, answers = answers_from_state(state)
        return answers, state, None
    choices: list[tuple[str, Any]] = []
    if draft_path().exists():
        choices.append(("Continue the new setup you started", "draft"))
    choices.append(("Start a new setup: describe the nodes and the balancer", "new"))
    for setup in saved_setups():
        choices.append((f"Resume {setup.setup}: {setup.done} of {setup.total} steps done", setup.path))
    choices += [("Open an answers file (a partial one is fine)", "file"), ("Quit", "quit")]
    picked = asker.select("What would you like to do?", choices,
                          default=next((value for _, value in choices if isinstance(value, Path)), None))
    if picked == "quit":
        return None
    if isinstance(picked, Path):
        _, answers = answers_from_state(picked)
        return answers, picked, None
    if picked == "file":
        path = Path(asker.text("Answers file (YAML):")).expanduser()
        raw = load_answers_file(path)
        if not find_problems(raw):
            answers = validate(raw, source=str(path))
            return answers, state or default_state_path(answers.name), path
        asker.say(f"{path} is partial; the missing or wrong answers are asked now.")
        draft = Draft(merge(NEW_SETUP, raw), draft_path())
        complete(asker, draft)
    elif picked == "draft":
        draft = Draft.load(draft_path())
        complete(asker, draft)
    else:
        draft = Draft(NEW_SETUP, draft_path())
        ask_new(asker, draft)
    return save_answers(asker, draft, state)


def save_answers(asker: Asker, draft: Draft, state: Path | None) -> tuple[Answers, Path, Path]:
    """The finished inventory, saved as an answers file beside the state (usable with ``apply``)."""
    answers = validate(draft.final(), source="the answers given")
    state_path = state or default_state_path(answers.name)
    path = answers_path_for(state_path, answers.name)
    write_private(path, answers_to_yaml(answers))
    draft.discard()
    asker.say(f"\nAnswers saved in {path} (usable with `confluence-lb-wizard apply --answers {path}`).")
    return answers, state_path, path


# The setup.

class PromptSession:
    """The checklist and its actions, over one runner (which holds the state's lock)."""

    def __init__(self, asker: Asker, answers: Answers, state_path: Path, answers_path: Path | None) -> None:
        self.asker = asker
        self.runner = Runner(answers, StateStore(state_path), events=EventPrinter(asker.out),
                             prompts=AskerPrompts(asker), command=COMMAND)
        self.answers_path = answers_path

    def run(self) -> int:
        with self.runner:
            mark_interactive(self.runner)
            return self.menu(Session(self.runner, self.answers_path))

    def menu(self, session: Session) -> int:
        say = self.asker.say
        while True:
            say("\n" + format_status(session.state, [s.name for s in session.steps()], str(session.state_path)))
            following = session.first_not_done()
            choices: list[tuple[str, Any]] = []
            if following:
                choices.append((f"Run the next step: {session.step(following).title}", ("apply", following)))
                choices.append(("Run every step not done, in order", ("apply", None)))
            choices += [("Run one step…", ("pick", None)), ("Verify now (read-only)", ("verify", None)),
                        ("Roll back a step…", ("rollback", None)), ("Export the runbook", ("export", None)),
                        ("Quit (everything is saved)", ("quit", None))]
            kind, name = self.asker.select("What next?", choices, default=choices[0][1])
            if kind == "quit":
                return self.runner.exit_status if self.runner.exit_status != EXIT_INTERRUPTED else EXIT_OK
            if kind == "pick":
                kind, name = "apply", self.asker.select("Which step?", [(s.title, s.name) for s in session.steps()],
                                                        default=following)
            if kind == "apply":
                self.report(self.runner.apply([name] if name else None, confirm=self.confirm_plan))
                if session.first_not_done() is None:
                    self.summary(session)
            elif kind == "verify":
                outcome = self.runner.verify()
                say(f"\n{format_checks(outcome.checks)}\n\n{outcome.message}")
            elif kind == "rollback":
                names = session.rollbackable()
                if not names:
                    say("Nothing to roll back: no step has changes recorded.")
                    continue
                step = self.asker.select("Roll back which step?", [(session.step(n).title, n) for n in names])
                self.report(self.runner.rollback(step, confirm=self.confirm_rollback))
            elif kind == "export":
                self.export(session)

    def report(self, outcome: Outcome) -> None:
        self.asker.say(f"\n{outcome.message}")
        failed = [check for check in outcome.checks if not check.passed]
        if failed:
            self.asker.say(format_checks(failed))

    def summary(self, session: Session) -> None:
        self.asker.say(f"\nEvery step of {session.answers.name} is done; {session.answers.public_url.url} "
                       "is behind the balancer.")
        if self.asker.confirm("Export the runbook (Markdown and HTML) now?", default=True):
            self.export(session)

    def export(self, session: Session) -> None:
        from wizard.runbook import build_runbook, write_runbook

        base = session.state_path.parent / f"{session.answers.name}.runbook"
        try:
            for fmt in ("md", "html"):
                written = write_runbook(build_runbook(session.state, fmt), f"{base}.{fmt}")
                self.asker.say(f"Runbook written to {written}")
        except WizardError as error:  # back to the menu: the setup itself is fine
            self.asker.say(f"\n{error.for_admin()}")

    # The questions the engine asks (the plan was printed by the event printer just before).

    def confirm_plan(self, plan: Plan) -> bool:
        return self.asker.confirm(f"Apply the {plan.step} changes above?", default=False)

    def confirm_rollback(self, step: str, actions: list[UndoAction]) -> bool:
        self.asker.say(f"\nRolling back {step} will:")
        for action in actions:
            self.asker.say(f"  - [{action.target}] {action.description}\n      by hand: {action.manual}")
        return self.asker.confirm(f"Undo these {len(actions)} change(s) of {step}?", default=False)


class AskerPrompts:
    """SSH's questions (``wizard.transport.prompts.Prompts``) asked as line prompts."""

    can_ask = True

    def __init__(self, asker: Asker) -> None:
        self.asker = asker
        # Nodes are reached in parallel: one SSH question at a time.
        self._asking = threading.Lock()

    def passphrase(self, prompt: str) -> str | None:
        """The passphrase typed (hidden), or None when the admin gives none."""
        with self._asking:
            return self.asker.password(f"{prompt}:") or None

    def trust_host_key(self, error: HostKeyError) -> bool:
        """Show the unknown key's fingerprint and ask whether to trust it; a changed key never."""
        with self._asking:
            self.asker.say(f"\n{error.message}")
            if error.changed:
                return False  # never replaced here: the old entry has to be removed on purpose
            # True makes wizard.transport.ssh add the key to that host's known_hosts file.
            return self.asker.confirm(f"Trust this {error.key_type} key ({error.fingerprint}) and add it to "
                                      "known_hosts?", default=False)
