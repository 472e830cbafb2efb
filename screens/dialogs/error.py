"""The error dialog: what happened and the next thing to try, never a traceback."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from screens.dialogs.dialog import Dialog
from wizard.errors import WizardError

BUG_HINT = ("The state is saved after every change, so nothing is lost: quit, start the wizard again and "
            "it resumes. If it happens again, report it with this message.")


def as_admin_error(exc: BaseException) -> WizardError:
    """Any exception as something an admin can read: a WizardError as is, anything else
    (a bug) by its type and message only, with what to do next."""
    if isinstance(exc, WizardError):
        return exc
    return WizardError(f"The wizard hit an unexpected problem: {type(exc).__name__}: {exc}", BUG_HINT)


class ErrorScreen(Dialog[None]):
    """An error for the admin: the message and the next thing to try."""

    AUTO_FOCUS = "#ok"
    # A long message (a failed step's undo list) scrolls; the button stays on screen.
    SCROLLER = "#dialog-body"

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, error: WizardError, *, title: str = "Something needs your attention") -> None:
        super().__init__()
        self.error = error
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="error"):
            yield Label(self.title_text, id="dialog-title", markup=False)
            with VerticalScroll(id="dialog-body"):
                yield Static(self.error.message, id="error-message", markup=False)
                if self.error.hint:
                    yield Static(f"Next: {self.error.hint}", id="error-hint", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("OK (enter)", variant="primary", id="ok")

    def action_close(self) -> None:
        self.answer(None)

    @on(Button.Pressed, "#ok")
    def pressed(self) -> None:
        self.answer(None)
