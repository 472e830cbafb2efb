"""A modal dialog that answers once.

Textual's ``dismiss`` pops whatever screen is on top. Two key presses or clicks queued
behind each other (enter, then a click on OK) would answer twice, and the second
would pop the screen beneath the dialog: the admin would land on an empty screen.
"""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen

ResultType = TypeVar("ResultType")


class Dialog(ModalScreen[ResultType]):
    _answered = False

    def answer(self, result: ResultType | None) -> None:
        """Close with ``result``; nothing when already answered or no longer on top."""
        if self._answered or not self.is_active:
            return
        self._answered = True
        self.dismiss(result)
