"""The summary: every step with its outcome, the checks' verdict, and the runbook export."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from screens.page import Page
from screens.steps.format import checks_verdict
from screens.steps.words import STATUS_ICONS, local_time, short_title
from wizard.engine.model import Check
from wizard.engine.redact import redact


class SummaryScreen(Page):
    """What was done, and the runbook another admin can follow by hand."""

    AUTO_FOCUS = "#export"

    BINDINGS = [Binding("e", "export", "Export runbook"), Binding("v", "verify", "Verify now"),
                Binding("escape", "back", "Back"), Binding("q", "quit", "Quit")]

    def compose_page(self) -> ComposeResult:
        with VerticalScroll(id="summary"):
            yield Static("", id="summary-body")
            yield Static("", id="summary-export", markup=False)
            with Horizontal(id="summary-buttons"):
                yield Button("Export runbook (e)", variant="primary", id="export")
                yield Button("Back to the steps (escape)", id="back")

    def on_mount(self) -> None:
        self.refresh_summary()

    def refresh_summary(self) -> None:
        session = self.wizard.session
        if session is None or not self.query("#summary-body"):
            return  # resumed before its widgets exist; on_mount draws it
        table = Table(box=None, show_header=True, header_style="bold", padding=(0, 1), expand=True)
        table.add_column("", width=1, no_wrap=True)
        table.add_column("Step", no_wrap=True)
        table.add_column("Status", no_wrap=True)
        table.add_column("At", no_wrap=True)
        table.add_column("What was done", ratio=1)
        checks: list[Check] = []
        for step in session.steps():
            record = session.record(step.name)
            status = record.status if record else "pending"
            table.add_row(STATUS_ICONS.get(status, "?"), short_title(step.name, step.title), status,
                          local_time(record.updated) if record else "",
                          Text(redact(record.summary if record else "")))
            if record:
                checks += record.checks
        done = session.first_not_done() is None
        headline = (Text(f"{session.answers.name}: every step is done.", style="bold green") if done
                    else Text(f"{session.answers.name}: some steps are not done yet.", style="bold yellow"))
        self.query_one("#summary-body", Static).update(
            Group(headline, Text(f"Public URL {session.answers.public_url.url}"), Text(""), table, Text(""),
                  Text.assemble(("Checks: ", "bold"), checks_verdict(checks))))
        exported = self.wizard.exported
        self.query_one("#summary-export", Static).update(
            "Runbook written to:\n  " + "\n  ".join(map(str, exported)) if exported else
            "The runbook (Markdown and HTML) lists every change with its diff, how to undo it by hand, "
            "and the checks: press e to write it beside the state file.")

    def refresh_page(self) -> None:
        self.refresh_checklist()
        self.refresh_summary()

    def on_screen_resume(self) -> None:
        self.refresh_page()

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        self.wizard.action_export()
        self.refresh_summary()

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss(None)

    def action_verify(self) -> None:
        self.dismiss(None)
        self.wizard.action_verify()

    async def action_quit(self) -> None:
        await self.wizard.action_quit()
