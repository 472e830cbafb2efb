"""Long coloured text (a plan's diffs), rendered once and then drawn only where it is seen.

A plan can hold hundreds of diff lines (a whole Apache vhost for each change). Drawn as
one ``Static``, Textual renders every line on the event loop to measure its height each
time the dialog is laid out, which stalled the UI for a tenth of a second while a step
ran. ``render_strips`` renders the lines once, wherever the dialog is built (the engine's
worker thread builds it), and ``PlanView`` draws only the visible lines of each frame,
the way Textual's own ``RichLog`` does.
"""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip


def render_parts(parts: list[Text], width: int) -> list[Strip]:
    """Prose wrapped at ``width``; a ``no_wrap`` part (a diff) as wide as its widest line, so
    the view scrolls sideways rather than break a line of a file in two."""
    strips: list[Strip] = []
    for part in parts:
        widest = max((cell_len(line) for line in part.plain.splitlines()), default=0) if part.no_wrap else 0
        strips += render_strips(part, max(width, widest + 1))
    return strips


def render_strips(renderable: RenderableType, width: int) -> list[Strip]:
    """``renderable`` as lines of styled segments, ``width`` cells wide at most (no padding)."""
    console = Console(width=width, file=io.StringIO(), color_system="truecolor", force_terminal=True,
                      legacy_windows=False, emoji=False, highlight=False)
    lines = console.render_lines(renderable, console.options.update_width(width), pad=False)
    return [Strip(line) for line in lines]


class PlanView(ScrollView, can_focus=True):
    """Pre-rendered lines in a scrollable view; the arrows scroll it both ways."""

    DEFAULT_CSS = """
    PlanView { height: auto; }
    """

    def __init__(self, strips: list[Strip], *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.strips = strips
        # Known before the first layout (which asks a ScrollView its height), without watchers.
        self.set_reactive(ScrollView.virtual_size,
                          Size(max((strip.cell_length for strip in strips), default=0), len(strips)))

    def update(self, strips: list[Strip]) -> None:
        """Show other lines (the same plan, wrapped for a new width)."""
        self.strips = strips
        self.virtual_size = Size(max((strip.cell_length for strip in strips), default=0), len(strips))
        self.refresh()

    @property
    def text(self) -> str:
        """Everything the view holds as plain text, scrolled out of view or not."""
        return "\n".join(strip.text.rstrip() for strip in self.strips)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self.strips):
            return Strip.blank(width, self.rich_style)
        return self.strips[index].crop_extend(scroll_x, scroll_x + width, self.rich_style).apply_style(
            self.rich_style)
