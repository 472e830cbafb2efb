"""What the checklist and the progress lines show, as plain data (no UI library).

The Textual widgets draw these; the session model and the prompt face use them
without loading Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from screens.words import ANSWERS, STATUS_ICONS, local_time, short_title

__all__ = ["ANSWERS", "Row", "StepProgress"]
from wizard.engine.events import ProgressReported

_STATUS_STYLES = {"verified": "green", "applied": "green", "complete": "green", "failed": "red",
                  "planned": "yellow", "running": "bold cyan", "rolled-back": "magenta", "incomplete": "yellow"}


@dataclass(frozen=True)
class Row:
    """One line of the checklist."""

    name: str
    title: str
    status: str
    updated: str | None = None

    def render(self) -> Text:
        style = _STATUS_STYLES.get(self.status, "")
        text = Text()
        text.append(f"{STATUS_ICONS.get(self.status, '?')} ", style=style)
        text.append(short_title(self.name, self.title), style="bold")
        when = local_time(self.updated)
        text.append(f"\n  {self.status}{'  ' + when if when else ''}", style=style or "dim")
        return text


#: A target's line while the step is still working on it, and after.
_ACTIVE, _DONE, _FAILED, _WAITING = "▶", "✔", "✘", "·"


@dataclass
class StepProgress:
    """Where one step's work is: per target the last message, and the furthest fraction."""

    step: str
    messages: dict[str, str] = field(default_factory=dict)
    fraction: float = 0.0
    last_target: str | None = None
    finished: bool = False
    failed: bool = False

    def report(self, event: ProgressReported) -> None:
        self.messages[event.target] = event.message
        self.last_target = event.target
        if event.fraction is not None:
            self.fraction = max(self.fraction, min(1.0, event.fraction))

    def finish(self, *, failed: bool = False) -> None:
        self.finished = True
        self.failed = failed
        if not failed:
            self.fraction = 1.0

    def table(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(width=1, no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for target, message in self.messages.items():
            if self.finished:
                mark = Text(_FAILED if self.failed and target == self.last_target else _DONE,
                            style="red" if self.failed and target == self.last_target else "green")
            elif target == self.last_target:
                mark = Text(_ACTIVE, style="bold cyan")
            else:
                mark = Text(_WAITING, style="dim")
            table.add_row(mark, Text(target, style="bold"), Text(message))
        return table
