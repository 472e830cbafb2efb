"""Progress while a step works: one bar for the step and one line per target (node, balancer).

``wizard.session.StepProgress`` is the plain model the app keeps from
``ProgressReported`` events; ``ProgressPanel`` draws it. A step reports a fraction when it can say
how far its work is; the bar keeps the furthest one so it never runs backwards.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from screens.steps.status import progress_table
from wizard.session import StepProgress


class ProgressPanel(Vertical):
    """The step's bar and its per-target lines; hidden when the step has reported no progress."""

    DEFAULT_CSS = """
    ProgressPanel { height: auto; display: none; margin-top: 1; }
    ProgressPanel.shown { display: block; }
    ProgressPanel ProgressBar { width: 100%; }
    ProgressPanel #progress-targets { height: auto; }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=100, show_eta=False, id="progress-bar")
        yield Static("", id="progress-targets")

    _drawn: object = None

    def show(self, progress: StepProgress | None) -> None:
        self.set_class(progress is not None and bool(progress.messages or progress.finished), "shown")
        if progress is None:
            return
        # Redrawn only when something moved (the engine's news come in bursts).
        key = (progress.step, tuple(progress.messages.items()), progress.fraction, progress.last_target,
               progress.finished, progress.failed)
        if key == self._drawn:
            return
        self._drawn = key
        self.query_one("#progress-bar", ProgressBar).update(progress=round(progress.fraction * 100))
        self.query_one("#progress-targets", Static).update(progress_table(progress))
