"""The plain-prompt face (``--plain``): the same flow as line prompts, with questionary."""

from __future__ import annotations

import sys
from pathlib import Path

from wizard.errors import EXIT_BAD_INPUT, EXIT_OK
from wizard.report import EventPrinter, format_checks
from wizard.runner import Runner
from wizard.state import StateStore, default_state_path

from screens.session import answers_from_file, answers_from_state, saved_setups


def run_prompts(state: str | None = None, *, input=None, output=None) -> int:  # noqa: A002
    """Ask which setup, then plan, confirm and apply each step not yet done."""
    if input is None and not sys.stdin.isatty():
        print("confluence-lb-wizard --plain needs a terminal to ask its questions.\n"
              "  -> Without one, run `confluence-lb-wizard apply --answers FILE --yes`.", file=sys.stderr)
        return EXIT_BAD_INPUT
    import questionary

    kwargs = {"input": input, "output": output} if input is not None else {}

    if state:
        state_path = Path(state).expanduser()
        _, answers = answers_from_state(state_path)
    else:
        choices = [questionary.Choice(f"Resume {s.setup} ({s.done}/{s.total} steps done)", value=s.path)
                   for s in saved_setups()]
        choices.append(questionary.Choice("Start a setup from an answers file", value="new"))
        picked = questionary.select("What would you like to do?", choices=choices, **kwargs).unsafe_ask()
        if picked == "new":
            file = questionary.path("Answers file (YAML):", **kwargs).unsafe_ask()
            answers = answers_from_file(file)
            state_path = default_state_path(answers.name)
        else:
            state_path = picked
            _, answers = answers_from_state(state_path)

    def confirm(plan) -> bool:
        return questionary.confirm(f"Apply the {plan.step} changes above?", default=False,
                                   **kwargs).unsafe_ask()

    runner = Runner(answers, StateStore(state_path), events=EventPrinter(),
                    command="confluence-lb-wizard --plain")
    with runner:
        outcome = runner.apply(confirm=confirm)
    print(f"\n{outcome.message}")
    if outcome.checks and outcome.exit_status != EXIT_OK:
        print(format_checks(outcome.checks))
    print(f"State: {state_path}")
    return outcome.exit_status
