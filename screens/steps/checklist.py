"""The checklist sidebar: every step with its status and when it last changed, always in view."""

from __future__ import annotations

from textual.widgets import ListItem, ListView, Static

from screens.steps.status import row_text
from wizard.session import Row


class Checklist(ListView):
    """The rows, the answers first; highlighting a row shows it, enter runs it (on the setup screen)."""

    def __init__(self, rows: list[Row], *, id: str = "checklist") -> None:
        self.rows = {row.name: row for row in rows}
        super().__init__(*[ListItem(Static(row_text(row), id=f"label-{row.name}"), id=f"item-{row.name}")
                           for row in rows], id=id)

    def show(self, rows: list[Row]) -> None:
        """Update every row's status and time (rows not on the list are ignored)."""
        for row in rows:
            if row.name in self.rows and self.rows[row.name] != row:
                self.rows[row.name] = row
                self.query_one(f"#label-{row.name}", Static).update(row_text(row))

    @property
    def selected_name(self) -> str | None:
        item = self.highlighted_child
        return item.id.removeprefix("item-") if item is not None and item.id else None

    def select(self, name: str) -> None:
        for index, item in enumerate(self.children):
            if item.id == f"item-{name}":
                self.index = index
                return
