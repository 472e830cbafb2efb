"""A modal dialog that answers once, and keeps its buttons on screen.

Textual's ``dismiss`` pops whatever screen is on top. Two key presses or clicks queued
behind each other (enter, then a click on OK) would answer twice, and the second
would pop the screen beneath the dialog: the admin would land on an empty screen.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual import events
from textual.screen import ModalScreen
from textual.widget import Widget

ResultType = TypeVar("ResultType")

#: The dialog's share of the screen and its widest (``#dialog`` in wizard.tcss), and the columns
#: between its edge and the text: its border and padding, the view's border and scroll bar.
DIALOG_WIDTH_SHARE, DIALOG_MAX_WIDTH, DIALOG_CHROME_COLUMNS = 0.9, 110, 10
#: The dialog's share of the screen's height (``max-height`` of ``#dialog``).
DIALOG_HEIGHT_SHARE = 0.9
#: Rows a dialog needs around its scrolling part: its border and padding, the title and a note
#: (two lines at 80 columns), and the buttons below; the scroller keeps the rest, its border included.
DIALOG_CHROME_ROWS = 13


def fit_in_dialog(scroller: Widget, screen_height: int) -> None:
    """Let ``scroller`` grow only as far as keeps the dialog's buttons on a ``screen_height``-row
    screen (the dialog takes 90% of it): a long plan scrolls instead of pushing them off."""
    scroller.styles.max_height = max(3, int(screen_height * DIALOG_HEIGHT_SHARE) - DIALOG_CHROME_ROWS)


def prose_width(screen_width: int) -> int:
    """How wide prose may run in a dialog's view on a ``screen_width``-column screen."""
    dialog = min(int(screen_width * DIALOG_WIDTH_SHARE), DIALOG_MAX_WIDTH)
    return max(30, dialog - DIALOG_CHROME_COLUMNS)


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
