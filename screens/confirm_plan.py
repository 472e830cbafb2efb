"""Every change of a step, shown before it is made: the plan with coloured per-target diffs."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from screens.format import plan_renderable
from wizard.model import Plan


class ConfirmPlanScreen(ModalScreen[bool]):
    """The plan of one step; y applies it, n (or escape) changes nothing."""

    AUTO_FOCUS = "#cancel"

    BINDINGS = [Binding("y", "answer(True)", "Apply"),
                Binding("n,escape", "answer(False)", "Don't apply"),
                Binding("j,down", "scroll(0, 1)", "Scroll", show=False),
                Binding("k,up", "scroll(0, -1)", "Scroll", show=False),
                Binding("l,right", "scroll(4, 0)", "Scroll", show=False),
                Binding("h,left", "scroll(-4, 0)", "Scroll", show=False)]

    def __init__(self, plan: Plan, *, title: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.title_text = title or f"Apply these changes? ({plan.step})"

    def compose(self) -> ComposeResult:
        targets = sorted({change.target for change in self.plan.changes})
        with Vertical(id="dialog", classes="plan"):
            yield Label(self.title_text, id="dialog-title", markup=False)
            yield Static(f"{len(self.plan.changes)} change(s) on {', '.join(targets) or 'nothing'}. "
                         "Nothing is changed until you press y.", id="plan-note", markup=False)
            with ScrollableContainer(id="plan-text"):
                body = Static(plan_renderable(self.plan), id="plan-body")
                # As wide as the widest diff line: long lines scroll sideways instead of wrapping.
                body.styles.min_width = max((len(line) + 2 for change in self.plan.changes
                                             for line in change.diff.splitlines()), default=0)
                yield body
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply (y)", variant="warning", id="apply")
                yield Button("Don't apply (n)", id="cancel")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_scroll(self, columns: int, lines: int) -> None:
        self.query_one("#plan-text", ScrollableContainer).scroll_relative(x=columns, y=lines, animate=False)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply")
