"""The shape every step has: inspect -> plan -> apply -> verify, and undo.

Modelled on certbot's installers (record the undo before acting) and pyinfra's
operations (read facts, then plan; "nothing to do" is a normal answer with a
reason). ``plan`` is pure so it can be tested from plain data.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, TypeVar

from wizard.answers_model import Answers, Node
from wizard.engine.events import EventSink, ProgressReported, ignore_events
from wizard.engine.model import Check, Plan, UndoAction
from wizard.engine.state import StepRecord
from wizard.errors import Interrupted
from wizard.transport.pool import HostPool

T = TypeVar("T")

# Parallel fan-out over nodes: enough for a large cluster, small enough not to
# trip sshd's MaxStartups on a shared bastion.
MAX_PARALLEL_NODES = 8


@dataclass
class Context:
    """What a step may use while it runs: the answers, the machines, a way to report."""

    answers: Answers
    hosts: HostPool
    events: EventSink = ignore_events
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Read-only view of earlier steps' records (e.g. verify reads connector's plan).
    previous: dict[str, StepRecord] = field(default_factory=dict)
    #: Someone is watching and can act while a step waits (the Textual face sets it). Headless
    #: runs leave it False: a step that needs the admin to do something reports it and fails
    #: instead of waiting for ever.
    interactive: bool = False

    def progress(self, step: str, target: str, message: str, fraction: float | None = None) -> None:
        self.events(ProgressReported(step, target, message, fraction))

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("Cancelled by the admin; the state is saved.",
                              "Run the step again to resume.")

    def for_each_node(self, work: Callable[[Node], T]) -> list[T]:
        """Run ``work`` for every node in parallel; results in node order.

        The first exception (in node order) is raised after every node has
        finished, so no node is left half-way because another one failed.
        """
        nodes = self.answers.nodes
        if len(nodes) == 1:
            return [work(nodes[0])]
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_NODES, len(nodes)),
                                thread_name_prefix="node") as pool:
            futures = [pool.submit(work, node) for node in nodes]
            outcomes: list[T] = []
            first_error: BaseException | None = None
            for future in futures:
                try:
                    outcomes.append(future.result())
                except BaseException as exc:  # collected, then re-raised below
                    first_error = first_error or exc
            if first_error is not None:
                raise first_error
            return outcomes


class Journal:
    """What a step's apply writes to: the undo (saved before acting) and the changes made."""

    def __init__(self, record_undo: Callable[[UndoAction], None],
                 record_change: Callable[[dict[str, Any]], None],
                 persist: Callable[[], None] | None = None) -> None:
        """``record_undo`` and ``record_change`` keep a record (one caller at a time); ``persist``,
        when given, puts everything recorded so far on disk and may be called from many threads
        at once (the runner's group commit, ``wizard.engine.shared_save``)."""
        self._record_undo = record_undo
        self._record_change = record_change
        self._persist = persist
        self._lock = threading.Lock()

    def undo(self, action: UndoAction) -> None:
        """Record how to take a change back. Call this BEFORE making the change:
        it returns only once the state file holding it is on disk."""
        with self._lock:
            self._record_undo(action)
        self._save()

    def changed(self, **change: Any) -> None:
        """Record a change that was made (path, backup, resource id, ...)."""
        with self._lock:
            self._record_change(dict(change))
        self._save()

    def _save(self) -> None:
        # Outside the lock: nodes recording at the same moment then share one write of the
        # state. Held across the save, the lock queued them for one write (two fsyncs) each.
        if self._persist is not None:
            self._persist()


#: What a step reads in ``inspect`` and plans from (a step's own dataclass, or a list of checks).
FactsT = TypeVar("FactsT")


class Step(ABC, Generic[FactsT]):
    """One step of the setup, generic over its facts. Subclasses set the class attributes and the methods."""

    #: The contract's step name ("preflight", "connector", ...).
    name: ClassVar[str]
    #: What the checklist shows.
    title: ClassVar[str]
    #: One or two sentences for the admin: what this step does and why.
    explanation: ClassVar[str]
    #: A read-only step changes nothing; its failing checks fail the step.
    read_only: ClassVar[bool] = False
    #: What the admin must still do after this step's changes are rolled back, if anything.
    rollback_note: ClassVar[str] = ""

    def rollback_warning(self, record: StepRecord) -> str:
        """What rollback must tell the admin about this step's record although it undoes nothing
        there (a restart's node left drained by a stopped roll), or ""."""
        return ""
    #: The exit status when a read-only step's checks fail: preflight stops a run before
    #: anything changes (1, a step failed); the final tests report a setup that does not
    #: work (3, a verification check failed).
    failed_checks_exit: ClassVar[int] = 1

    def applies(self, answers: Answers) -> bool:
        """Whether this step has work for these answers at all."""
        return True

    @abstractmethod
    def inspect(self, ctx: Context) -> FactsT:
        """Read what is there now. Read-only; raises WizardError when it cannot."""

    @abstractmethod
    def plan(self, answers: Answers, facts: FactsT) -> Plan:
        """Pure: the changes to make, or a no-op plan with its reason."""

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        """Make the plan's changes, recording each undo first. Returns a summary."""
        return plan.summary

    @abstractmethod
    def verify(self, ctx: Context) -> list[Check]:
        """Read-only checks that the step's result is in place."""

    def undo(self, ctx: Context, action: UndoAction) -> None:
        """Perform one recorded undo action, as ``vet_undo`` returned it (the generic kinds
        live in ``wizard.engine.undo``)."""
        from wizard.engine.undo import perform

        perform(ctx, action)

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        """The files on ``target`` this step may change, so the only ones its undo records may
        restore or remove. None by default: a step that writes files says which."""
        return frozenset()

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """Check a record read back from the state file against the setup, and return the action
        to perform, its description and manual command rebuilt from the checked data; raise
        ``wizard.engine.undo.UndoRecordError`` (naming ``label`` and the fix by hand) for one this step
        never records or that points outside the setup. Steps with kinds of their own extend it."""
        from wizard.engine.undo import vet

        return vet(self, answers, action, label)
