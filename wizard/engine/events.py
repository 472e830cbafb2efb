"""What the engine tells a face while it works: small dataclasses named for what happened.

The runner calls an ``EventSink`` with these; the headless face prints them,
the prompt face prints them, and the Textual face posts them as messages from
its worker thread. None of them holds a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

from wizard.engine.model import Check, Plan


@dataclass(frozen=True)
class StepStarted:
    step: str
    title: str


@dataclass(frozen=True)
class StepSkipped:
    step: str
    reason: str


@dataclass(frozen=True)
class PlanReady:
    step: str
    plan: Plan


@dataclass(frozen=True)
class ProgressReported:
    step: str
    target: str
    message: str
    fraction: float | None = None  # 0..1 when the work can say how far it is


@dataclass(frozen=True)
class StepApplied:
    step: str
    summary: str


@dataclass(frozen=True)
class ChecksCompleted:
    step: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass(frozen=True)
class StepFailed:
    step: str
    message: str
    hint: str | None = None
    undone: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StepRolledBack:
    step: str
    undone: tuple[str, ...]


Event = Union[StepStarted, StepSkipped, PlanReady, ProgressReported, StepApplied,
              ChecksCompleted, StepFailed, StepRolledBack]
EventSink = Callable[[Event], None]


def ignore_events(event: Event) -> None:
    """An event sink for callers that do not listen."""
