"""Asking the admin from a worker thread, and the SSH questions that need it.

The engine runs in a thread worker; when it needs an answer (apply this plan?
trust this host key? the key's passphrase?) the question is a modal pushed on
the event loop with ``call_from_thread``, and the worker waits on a
``threading.Event`` for the answer. The UI never blocks; cancelling the run
ends the wait with the safe answer (no, refuse, skip).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual.screen import ModalScreen

from screens.dialogs.dialog import Dialog
from wizard.errors import HostKeyError

if TYPE_CHECKING:
    from textual.app import App

T = TypeVar("T")

#: How often a waiting worker looks at the cancel flag.
POLL_SECONDS = 0.1


class ThreadBridge:
    """Pushes modals for a worker thread and hands back the admin's answer."""

    def __init__(self, app: App[Any], cancelled: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.cancelled = cancelled
        # Nodes are reached in parallel; their questions come one at a time.
        self._one_at_a_time = threading.Lock()

    def ask(self, screen: ModalScreen[Any], default: T) -> T:
        """Show ``screen`` and wait for its result; ``default`` when cancelled or closing.

        Call from a worker thread only: on the event loop's own thread the wait
        would freeze the UI, so there it answers ``default`` at once.
        """
        if threading.get_ident() == self.app._thread_id:
            return default
        with self._one_at_a_time:
            answered = threading.Event()
            box: list[Any] = [default]

            def record(result: Any) -> None:
                box[0] = default if result is None else result
                answered.set()

            try:
                self.app.call_from_thread(self.app.push_screen, screen, record)
            except RuntimeError:  # the app is closing: nobody is there to answer
                return default
            while not answered.wait(POLL_SECONDS):
                if self.cancelled() or not self.app.is_running:
                    self._close(screen)
                    return default
            return box[0]

    def _close(self, screen: ModalScreen[Any]) -> None:
        """Take down a question nobody will answer any more (the run was cancelled)."""
        def close() -> None:
            # Only from the top: under another screen (the palette) it stays, and whatever the
            # admin answers there later is not asked for any more.
            if isinstance(screen, Dialog):
                screen.answer(None)
            elif screen.is_active:
                screen.dismiss(None)
        try:
            self.app.call_from_thread(close)
        except RuntimeError:
            pass


class ModalPrompts:
    """SSH's questions (``wizard.transport.prompts.Prompts``) asked through modals from the worker."""

    can_ask = True

    def __init__(self, bridge: ThreadBridge) -> None:
        self.bridge = bridge

    def passphrase(self, prompt: str) -> str | None:
        """The passphrase typed in the dialog, or None when the admin cancels."""
        from screens.dialogs.passphrase import PassphraseScreen

        return self.bridge.ask(PassphraseScreen(prompt), None)

    def trust_host_key(self, error: HostKeyError) -> bool:
        """The admin's verdict on the unknown key shown with its fingerprint (refused when cancelled)."""
        from screens.dialogs.host_key import HostKeyScreen

        # True makes wizard.transport.ssh add the key to that host's known_hosts file.
        return bool(self.bridge.ask(HostKeyScreen(error), False))
