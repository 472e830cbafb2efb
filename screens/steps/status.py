"""How the checklist and the progress lines look: Rich text for the session's plain rows and progress.

The data (``Row``, ``StepProgress``) is ``wizard.session``'s, which the prompt
face uses too; only the drawing is here.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from screens.steps.words import STATUS_ICONS, local_time, short_title
from wizard.session import Row, StepProgress

_STATUS_STYLES = {"verified": "green", "applied": "green", "complete": "green", "failed": "red",
                  "planned": "yellow", "running": "bold cyan", "rolled-back": "magenta", "incomplete": "yellow"}


def row_text(row: Row) -> Text:
    """A checklist line: the status glyph and short title, then the status and its time."""
    style = _STATUS_STYLES.get(row.status, "")
    text = Text()
    text.append(f"{STATUS_ICONS.get(row.status, '?')} ", style=style)
    text.append(short_title(row.name, row.title), style="bold")
    when = local_time(row.updated)
    text.append(f"\n  {row.status}{'  ' + when if when else ''}", style=style or "dim")
    return text


#: A target's line while the step is still working on it, and after.
_ACTIVE, _DONE, _FAILED, _WAITING = "▶", "✔", "✘", "·"


def progress_table(progress: StepProgress) -> Table:
    """One line per target: a mark (working, waiting, done, failed), the target, its last message."""
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column(width=1, no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for target, message in progress.messages.items():
        if progress.finished:
            failed_here = progress.failed and target == progress.last_target
            mark = Text(_FAILED if failed_here else _DONE, style="red" if failed_here else "green")
        elif target == progress.last_target:
            mark = Text(_ACTIVE, style="bold cyan")
        else:
            mark = Text(_WAITING, style="dim")
        table.add_row(mark, Text(target, style="bold"), Text(message))
    return table
