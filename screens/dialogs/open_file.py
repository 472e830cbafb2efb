"""Asking for the path of an answers file (a partial one is fine: the inventory asks for the rest)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from screens.dialogs.dialog import Dialog


class OpenFileScreen(Dialog["Path | None"]):
    """enter opens the file typed; escape goes back to the welcome."""

    AUTO_FOCUS = "#answers-path"
    BINDINGS = [Binding("escape", "cancel", "Back")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Open an answers file", id="dialog-title")
            yield Static("YAML or JSON, as in README's 'The answers file'. A partial file is fine: what it gives "
                         "becomes the defaults, and the wizard asks for the rest.", markup=False)
            yield Input(placeholder="path/to/answers.yaml", id="answers-path")
            yield Static("", id="open-problem", classes="problem", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Open (enter)", variant="primary", id="open")
                yield Button("Back (esc)", id="back")

    @on(Input.Submitted, "#answers-path")
    @on(Button.Pressed, "#open")
    def open_file(self) -> None:
        text = self.query_one("#answers-path", Input).value.strip()
        if not text:
            self.query_one("#open-problem", Static).update("Type the path of an answers file first.")
            return
        self.answer(Path(text).expanduser())

    @on(Button.Pressed, "#back")
    def action_cancel(self) -> None:
        self.answer(None)
