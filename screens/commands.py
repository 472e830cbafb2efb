"""The command palette (ctrl+p): export the runbook, verify now, roll back a step, switch the theme."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from screens.steps.words import short_title

if TYPE_CHECKING:
    from screens.app import WizardApp

Command = tuple[str, Callable[[], object], str]


def wizard_commands(app: WizardApp) -> list[Command]:
    """What the palette offers now (a roll back only for the steps with something to undo)."""
    commands: list[Command] = []
    session = app.session
    if session is not None:
        commands += [
            ("Export runbook", app.action_export,
             "Write the runbook (Markdown and HTML) beside the state file"),
            ("Verify now", app.action_verify, "Run every step's checks again; changes nothing"),
            ("Run every step not done", partial(app.run_steps, None), "Plan, confirm and apply in order"),
            ("Show the summary", app.action_summary, "Every step's outcome and the runbook export"),
            ("Change the answers", app.action_edit_answers, "The inventory and the balancer forms"),
        ]
        for name in session.rollbackable():
            commands.append((f"Roll back {short_title(name)}", partial(app.rollback, name),
                             f"Undo what {session.step(name).title.lower()} changed (listed before it is done)"))
        for step in session.steps():
            commands.append((f"Run step: {short_title(step.name)}", partial(app.run_steps, [step.name]),
                             step.title))
    if app.busy:
        commands.append(("Cancel the work in progress", app.action_cancel,
                         "The step stops at the next safe point and undoes what it changed"))
    if app.lab is not None:
        commands.append(("Lab: change the base URL as the admin would", app.action_lab_base_url,
                         "Saves the public URL in the lab's General Configuration (what the guided step asks)"))
    commands.append(("Toggle dark mode", app.action_toggle_dark, "Switch between the light and the dark theme"))
    return commands


class WizardCommands(Provider):
    """The wizard's own commands, next to Textual's (theme, keys, quit)."""

    def _commands(self) -> list[Command]:
        return wizard_commands(cast("WizardApp", self.app))

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
