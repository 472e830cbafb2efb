"""Every change of a step, shown before it is made: the plan with coloured per-target diffs.

The dialog is built where the engine asks (its worker thread), so the plan's lines are
rendered there, off the event loop (``screens.plan_view``).
"""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from screens.format import plan_renderable
from screens.plan_view import PROSE_WIDTH, PlanView, fit_in_dialog, render_strips
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
        # As wide as the widest diff line: long lines scroll sideways instead of wrapping.
        widest = max((len(line) + 2 for change in plan.changes for line in change.diff.splitlines()), default=0)
        self.plan_lines = render_strips(plan_renderable(plan), max(PROSE_WIDTH, widest))

    def compose(self) -> ComposeResult:
        targets = sorted({change.target for change in self.plan.changes})
        with Vertical(id="dialog", classes="plan"):
            yield Label(self.title_text, id="dialog-title", markup=False)
            yield Static(f"{len(self.plan.changes)} change(s) on {', '.join(targets) or 'nothing'}. "
                         "Nothing is changed until you press y.", id="plan-note", markup=False)
            yield PlanView(self.plan_lines, id="plan-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Apply (y)", variant="warning", id="apply")
                yield Button("Don't apply (n)", id="cancel")

    def on_resize(self, event: events.Resize) -> None:
        fit_in_dialog(self.query_one("#plan-body", PlanView), event.size.height)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_scroll(self, columns: int, lines: int) -> None:
        self.query_one("#plan-body", PlanView).scroll_relative(x=columns, y=lines, animate=False)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "apply")
