"""A modal dialog that answers once.

Textual's ``dismiss`` pops whatever screen is on top. Two key presses or clicks queued
behind each other (enter, then a click on OK) would answer twice, and the second
would pop the screen beneath the dialog: the admin would land on an empty screen.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual import events
from textual.screen import ModalScreen

from screens.plan_view import fit_in_dialog

ResultType = TypeVar("ResultType")


class Dialog(ModalScreen[ResultType]):
    #: The part that scrolls on a short screen, so the buttons below it stay in view.
    SCROLLER: ClassVar[str | None] = None
    _answered = False

    def on_mount(self) -> None:
        self._fit(self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, screen_height: int) -> None:
        if self.SCROLLER is not None:
            for scroller in self.query(self.SCROLLER):  # none while the dialog is still being built
                fit_in_dialog(scroller, screen_height)

    def answer(self, result: ResultType | None) -> None:
        """Close with ``result``; nothing when already answered or no longer on top."""
        if self._answered or not self.is_active:
            return
        self._answered = True
        self.dismiss(result)
