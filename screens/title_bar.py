"""The line at the top of every screen: the wizard's name and the setup in hand.

A plain docked Static rather than Textual's Header: the Header redraws its title
from watchers scheduled on the screen, and a screen removed while one is pending
(quitting as a screen appears) ends in an error instead of a quiet exit.
"""

from __future__ import annotations

from textual.widgets import Static


class TitleBar(Static):
    """``confluence-lb-wizard — wiki-prod · https://wiki.example.com``."""

    DEFAULT_CSS = """
    TitleBar { dock: top; height: 1; width: 100%; background: $panel; color: $foreground;
               text-style: bold; content-align: center middle; }
    """

    def __init__(self, subtitle: str = "") -> None:
        super().__init__(markup=False)
        self.subtitle = subtitle

    def on_mount(self) -> None:
        self.update(f"{self.app.title} — {self.subtitle}" if self.subtitle else self.app.title)
