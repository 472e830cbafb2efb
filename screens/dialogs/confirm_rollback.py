"""Before a rollback: the undo actions it will perform, newest first, and how to do each by hand."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from screens.dialogs.dialog import Dialog
from wizard.engine.model import UndoAction
from wizard.engine.redact import redact


def undo_text(actions: list[UndoAction]) -> Text:
    text = Text()
    for action in actions:
        text.append(f"[{action.target}] ", style="bold magenta")
        text.append(redact(action.description) + "\n")
        if action.manual:
            text.append(f"    by hand: {redact(action.manual)}\n", style="dim")
    return text


class ConfirmRollbackScreen(Dialog[bool]):
    """y undoes the listed changes; n (or escape) leaves everything as it is."""

    AUTO_FOCUS = "#keep"
    SCROLLER = "#plan-text"

    BINDINGS = [Binding("y", "answer(True)", "Roll back"), Binding("n,escape", "answer(False)", "Keep")]

    def __init__(self, step: str, actions: list[UndoAction]) -> None:
        super().__init__()
        self.step = step
        self.actions = actions

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="rollback"):
            yield Label(f"Roll back {self.step}? These {len(self.actions)} change(s) will be undone:", markup=False,
                        id="dialog-title")
            with VerticalScroll(id="plan-text"):
                yield Static(undo_text(self.actions), id="undo-list")
            with Horizontal(id="dialog-buttons"):
                yield Button("Roll back (y)", variant="error", id="rollback")
                yield Button("Keep (n)", id="keep")

    def action_answer(self, answer: bool) -> None:
        self.answer(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.answer(event.button.id == "rollback")
