"""Every change of a step, shown before it is made: the plan with coloured per-target diffs.

The dialog is built where the engine asks (its worker thread), so the plan's lines are
rendered there, off the event loop (``screens.steps.plan_view``).
"""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static

from screens.dialogs.dialog import Dialog, prose_width
from screens.steps.format import plan_parts
from screens.steps.plan_view import PlanView, render_parts
from wizard.engine.model import Plan


class ConfirmPlanScreen(Dialog[bool]):
    """The plan of one step; y applies it, n (or escape) changes nothing."""

    AUTO_FOCUS = "#cancel"
    SCROLLER = "#plan-body"

    BINDINGS = [Binding("y", "answer(True)", "Apply"),
                Binding("n,escape", "answer(False)", "Don't apply"),
                Binding("j,down", "scroll(0, 1)", "Scroll", show=False),
                Binding("k,up", "scroll(0, -1)", "Scroll", show=False),
                Binding("l,right", "scroll(4, 0)", "Scroll", show=False),
                Binding("h,left", "scroll(-4, 0)", "Scroll", show=False)]

    def __init__(self, plan: Plan, *, title: str = "", screen_width: int = 100) -> None:
        super().__init__()
        self.plan = plan
        self.title_text = title or f"Apply these changes? ({plan.step})"
        self._parts = plan_parts(plan)
        # Wrapped for the screen as it is now; a resize to another width wraps the prose again.
        self._width = prose_width(screen_width)
        self.plan_lines = render_parts(self._parts, self._width)

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
        # (Dialog.on_resize fits the view's height.) Prose is wrapped again for a new width.
        width = prose_width(event.size.width)
        if width != self._width:
            self._width = width
            for view in self.query("#plan-body").results(PlanView):
                view.update(render_parts(self._parts, width))

    def action_answer(self, answer: bool) -> None:
        self.answer(answer)

    def action_scroll(self, columns: int, lines: int) -> None:
        self.query_one("#plan-body", PlanView).scroll_relative(x=columns, y=lines, animate=False)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.answer(event.button.id == "apply")
