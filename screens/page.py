"""The frame every screen of a setup shares: the checklist on the left, the page on the right."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from screens.steps.checklist import Checklist
from screens.title_bar import TitleBar
from wizard.answers.draft import Draft
from wizard.session import Row, pending_rows

if TYPE_CHECKING:
    from screens.app import WizardApp


class Page(Screen[None]):
    """A screen with the checklist in view; subclasses yield their content from ``compose_page``."""

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)

    def compose(self) -> ComposeResult:
        yield TitleBar(self.wizard.setup_title())
        with Horizontal(id="frame"):
            yield Checklist(self.checklist_rows())
            with Vertical(id="page"):
                yield from self.compose_page()
        yield Footer(compact=True)

    def compose_page(self) -> ComposeResult:
        yield from ()

    def checklist_rows(self) -> list[Row]:
        return self.wizard.checklist_rows()

    def refresh_page(self) -> None:
        """Show the session as it is now (the app calls this after the engine reports)."""
        self.refresh_checklist()

    def refresh_checklist(self) -> None:
        # A screen is resumed as it is pushed, before its widgets exist: nothing to refresh yet.
        for checklist in self.query(Checklist):
            checklist.show(self.checklist_rows())

    def on_screen_resume(self) -> None:
        self.refresh_checklist()


class DraftPage(Page):
    """A page of the inventory: it edits a ``Draft`` and saves it shortly after every change,
    so quitting at any moment loses nothing."""

    #: Seconds of quiet before a change is written (one write per pause, not per key).
    SAVE_DELAY = 0.3

    def __init__(self, draft: Draft) -> None:
        super().__init__()
        self.draft = draft
        self._save_timer: Timer | None = None

    def checklist_rows(self) -> list[Row]:
        if self.draft.editing and self.wizard.session is not None:
            return self.wizard.checklist_rows()
        return pending_rows()

    def draft_changed(self) -> None:
        if self._save_timer is not None:
            self._save_timer.stop()
        self._save_timer = self.set_timer(self.SAVE_DELAY, self.save_draft)

    def save_draft(self) -> None:
        self._save_timer = None
        try:
            self.draft.save()
        except OSError as exc:
            self.notify(f"Could not save the answers typed so far: {exc.strerror or exc}",
                        severity="error", timeout=8)

    def on_screen_suspend(self) -> None:
        self.save_draft()

    def on_unmount(self) -> None:
        if self._save_timer is not None:
            self.save_draft()
