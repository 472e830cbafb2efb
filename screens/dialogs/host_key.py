"""An unknown SSH host key, shown with its fingerprint for the admin to accept or refuse."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from screens.dialogs.dialog import Dialog
from wizard.errors import HostKeyError


class HostKeyScreen(Dialog[bool]):
    """a accepts the key (it is added to known_hosts); r (or escape) refuses it and nothing is sent."""

    AUTO_FOCUS = "#refuse"

    BINDINGS = [Binding("a", "answer(True)", "Accept"), Binding("r,escape", "answer(False)", "Refuse")]

    def __init__(self, error: HostKeyError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        error = self.error
        where = error.host if error.port == 22 else f"{error.host}:{error.port}"
        with Vertical(id="dialog", classes="hostkey"):
            if error.changed:
                yield Label(f"The host key of {where} has CHANGED", id="dialog-title", markup=False)
                yield Static("This may be an attack, or the machine was reinstalled. The wizard does not "
                             "replace a known key; nothing was sent to the host.", markup=False)
            else:
                yield Label(f"Unknown host key for {where}", id="dialog-title", markup=False)
                yield Static("The wizard has never seen this machine's key. Compare the fingerprint with the "
                             "one the machine shows (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on it) before "
                             "accepting.", markup=False)
            yield Static(f"Key type     {error.key_type}\nFingerprint  {error.fingerprint}",
                         id="fingerprint", markup=False)
            if error.hint:
                yield Static(error.hint, id="error-hint", markup=False)
            with Horizontal(id="dialog-buttons"):
                if not error.changed:
                    yield Button("Accept (a)", variant="warning", id="accept")
                yield Button("Refuse (r)", variant="primary", id="refuse")

    def action_answer(self, answer: bool) -> None:
        # A changed key cannot be accepted here: wizard.transport.ssh refuses to replace it anyway.
        self.answer(answer and not self.error.changed)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "accept")
