"""The messages workers post to the Textual face: small dataclasses named for what happened.

A worker runs in a thread and never touches a widget; it posts one of these
and a handler on the main thread updates the widgets (docs/architecture.md, "Workers post messages").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from wizard.engine.events import Event
    from wizard.engine.runner import Outcome
    from wizard.errors import WizardError


@dataclass
class EngineReported(Message):
    """The engine reported something while a step ran (StepStarted, PlanReady, ...)."""

    event: Event


@dataclass
class RunFinished(Message):
    """An engine job (apply, verify, rollback) ended with this outcome."""

    kind: str
    steps: tuple[str, ...]
    outcome: Outcome


@dataclass
class RunFailed(Message):
    """An engine job stopped on an error outside any step (the state is saved)."""

    kind: str
    error: WizardError


@dataclass
class LabStarted(Message):
    """The built-in lab is running and its answers are written."""

    lab: Any  # wizard.lab.cluster.Lab, imported only when a lab is opened


@dataclass
class LabFailed(Message):
    """The built-in lab could not start; nothing of it is left running."""

    error: WizardError


@dataclass
class NodeRead(Message):
    """What was read from one node's files (or why it could not be read)."""

    name: str
    summary: str
    ok: bool
    #: Which read of the node this is (the inventory shows only its newest); 0: not counted.
    serial: int = 0


@dataclass
class AwsListsRead(Message):
    """The VPCs, subnets, instances, certificates and security groups of a region."""

    lists: Any  # wizard.balancers.alb.choices.AwsLists


@dataclass
class AwsListsFailed(Message):
    """AWS could not be read; the error says why and what to try."""

    error: WizardError


@dataclass
class SetupsFound(Message):
    """The saved setups (with their progress) and an unfinished new one, read from the state folder."""

    setups: list[Any]  # wizard.session.SavedSetup
    draft: Any  # Path | None
