"""Asking for a private key's passphrase: typed hidden, used once, never saved."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from screens.dialogs.dialog import Dialog


class PassphraseScreen(Dialog["str | None"]):
    """enter unlocks the key with what was typed; escape gives no passphrase (the key is skipped)."""

    AUTO_FOCUS = "#passphrase"

    BINDINGS = [Binding("escape", "skip", "Skip this key")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="passphrase"):
            yield Label("A passphrase is needed", id="dialog-title")
            yield Static(self.prompt, markup=False)
            yield Input(password=True, placeholder="passphrase", id="passphrase")
            yield Static("It is used for this connection only and never written anywhere.", classes="note")
            with Horizontal(id="dialog-buttons"):
                yield Button("Unlock (enter)", variant="primary", id="unlock")
                yield Button("Skip (escape)", id="skip")

    @on(Input.Submitted)
    @on(Button.Pressed, "#unlock")
    def unlock(self) -> None:
        self.answer(self.query_one("#passphrase", Input).value or None)

    @on(Button.Pressed, "#skip")
    def action_skip(self) -> None:
        self.answer(None)
