"""Verify results: every check, failed ones first, each failure with what to do about it."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from screens.page import Page
from screens.steps.format import checks_table, checks_verdict
from wizard.engine.model import Check


class VerifyResultsScreen(Page):
    """The checks of the last verification; escape goes back to the steps."""

    AUTO_FOCUS = "#results"

    BINDINGS = [Binding("escape", "back", "Back"), Binding("v", "verify", "Verify again"),
                Binding("e", "export", "Runbook"), Binding("s", "summary", "Summary"),
                Binding("q", "quit", "Quit")]

    def __init__(self, checks: list[Check], message: str) -> None:
        super().__init__()
        self.checks = checks
        self.message = message

    def compose_page(self) -> ComposeResult:
        failed = [c for c in self.checks if not c.passed]
        passed = [c for c in self.checks if c.passed]
        with VerticalScroll(id="results"):
            yield Static(Group(Text("Verification (read-only; nothing was changed)", style="bold"),
                               checks_verdict(self.checks)), id="results-verdict")
            if failed:
                yield Static(Group(Text("\nFailed: what was seen, and what to do", style="bold red"),
                                   checks_table(failed)), id="results-failed")
            if passed:
                yield Static(Group(Text("\nPassed", style="bold green"), checks_table(passed)),
                             id="results-passed")

    def action_back(self) -> None:
        self.dismiss(None)

    def action_verify(self) -> None:
        self.dismiss(None)
        self.wizard.action_verify()

    def action_export(self) -> None:
        self.wizard.action_export()

    def action_summary(self) -> None:
        self.dismiss(None)
        self.wizard.action_summary()

    async def action_quit(self) -> None:
        await self.wizard.action_quit()
