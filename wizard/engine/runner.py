"""Driving the steps: inspect -> plan -> confirm -> record undo -> apply -> verify -> save.

One ``Runner`` serves every face. It holds the state file's lock for the whole
run, saves the state after every change of status and before every change to a
machine (through the step's ``Journal``), and turns every expected failure into
a ``failed`` step with its reason and what was undone.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from wizard import __version__
from wizard.answers_model import Answers
from wizard.engine.catalogue import resolve
from wizard.engine.events import (
    ChecksCompleted,
    EventSink,
    PlanReady,
    StepApplied,
    StepFailed,
    StepRolledBack,
    StepSkipped,
    StepStarted,
    ignore_events,
)
from wizard.engine.model import WORKSTATION, Check, Plan, UndoAction
from wizard.engine.records import ChangeRecord, HistoryEntry, StepError, UndoRecord, record_label
from wizard.engine.shared_save import SharedSave
from wizard.engine.state import State, StateStore, StepRecord, now_iso
from wizard.engine.step import Context, Journal, Step
from wizard.engine.undo import LegacyCommandError, UndoRecordError
from wizard.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    Interrupted,
    StateError,
    WizardError,
)
from wizard.transport.pool import HostFactory, HostPool, default_host_factory
from wizard.transport.prompts import NO_PROMPTS, Prompts

Confirm = Callable[[Plan], bool]
ConfirmRollback = Callable[[str, list[UndoAction]], bool]


@dataclass
class Outcome:
    """How a run ended, for the face to report and the command to exit with."""

    exit_status: int
    message: str
    checks: list[Check] = field(default_factory=list)


def _yes(_: Any, *__: Any) -> bool:
    return True


class Pending(NamedTuple):
    """One undo record still to perform: its record in the state, the checked action (or why it is
    refused), and the context it is performed in (the answers it was made with)."""

    entry: UndoRecord
    action: UndoAction | UndoRecordError
    ctx: Context


class Runner:
    """Runs steps for one setup against its state file."""

    def __init__(self, answers: Answers, store: StateStore, *, events: EventSink = ignore_events,
                 host_factory: HostFactory = default_host_factory, prompts: Prompts = NO_PROMPTS,
                 command: str = "", read_only: bool = False) -> None:
        self.answers = answers
        #: A read-only runner (``plan``, ``verify`` without a state file) neither
        #: locks nor writes the state.
        self.read_only = read_only
        self.store = store
        self.events = events
        self.host_factory = host_factory
        #: The face's answerer for SSH's questions (a passphrase, an unknown host key).
        self.prompts = prompts
        self.command = command
        self.state: State | None = None
        self.hosts: HostPool | None = None
        self.context: Context | None = None
        self._run: dict[str, Any] | None = None
        #: The exit status of the last apply/rollback/verify, recorded in the run on close.
        self.exit_status = EXIT_OK
        # The nodes of a step save at the same time; they share writes (wizard.engine.shared_save).
        self._shared_save = SharedSave(self._write_state)
        #: Undo records made with other answers than today's: their contexts and host pools.
        self._undo_contexts: dict[str, Context] = {}
        self._extra_pools: list[HostPool] = []

    # Session: lock, load, record the run; always closed by ``close``.

    def open(self) -> State:
        """Take the lock and load (or start) the state; checks it belongs to this setup."""
        if not self.read_only:
            self.store.acquire(self.command)
        try:
            return self._open()
        except BaseException:
            # Whatever stopped the opening (a state file that cannot be read or written), the
            # lock goes with it: a second try in the same process must not find it held.
            self.store.release()
            self.state = self.hosts = self.context = self._run = None
            raise

    def _open(self) -> State:
        state = self.store.load_or_new(self.answers.name)
        if state.setup != self.answers.name:
            raise StateError(
                f"The state file {self.store.path} belongs to the setup {state.setup!r}, "
                f"not {self.answers.name!r}.",
                "Pass the state file of this setup with --state, or use the setup's own name in the answers.")
        state.answers = self.answers.to_dict()
        state.tool_version = __version__
        self._run = {"command": self.command, "user": _user(), "host": socket.gethostname(),
                     "started": now_iso(), "finished": None, "exit_status": None}
        state.runs.append(self._run)
        self.state = state
        self.hosts = HostPool(self.answers, self.host_factory, prompts=self.prompts)
        self.context = Context(answers=self.answers, hosts=self.hosts, events=self.events,
                               previous=state.steps)
        self.save()
        return state

    def close(self, exit_status: int) -> None:
        try:
            if self.state is not None and self._run is not None:
                self._run["finished"] = now_iso()
                self._run["exit_status"] = exit_status
                self.save()
        finally:
            if self.hosts is not None:
                self.hosts.close()
            for pool in self._extra_pools:
                pool.close()
            self.store.release()

    def __enter__(self) -> Runner:
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            status = self.exit_status
        elif isinstance(exc, KeyboardInterrupt):
            status = EXIT_INTERRUPTED
        else:
            status = getattr(exc, "exit_code", EXIT_STEP_FAILED)
        self.close(status)

    def save(self) -> None:
        """The state on disk, with everything recorded so far (safe from many threads at once)."""
        assert self.state is not None
        if not self.read_only:
            self._shared_save.save()

    def _write_state(self) -> None:
        assert self.state is not None
        self.store.save(self.state)

    @property
    def ctx(self) -> Context:
        assert self.context is not None, "Runner.open() first"
        return self.context

    # Planning (read-only).

    def plan(self, names: list[str] | None = None) -> list[Plan]:
        """Inspect and plan the steps; changes nothing anywhere (not even the state)."""
        plans = []
        for step in resolve(names):
            if not step.applies(self.answers):
                continue
            self.events(StepStarted(step.name, step.title))
            plan = step.plan(self.answers, step.inspect(self.ctx))
            self.events(PlanReady(step.name, plan))
            plans.append(plan)
        return plans

    # Applying.

    def apply(self, names: list[str] | None = None, *, confirm: Confirm = _yes) -> Outcome:
        """Run the steps in order. Without ``names`` it resumes at the first step not done."""
        return self._remember(self._apply(names, confirm))

    def _remember(self, outcome: Outcome) -> Outcome:
        self.exit_status = outcome.exit_status
        return outcome

    def _apply(self, names: list[str] | None, confirm: Confirm) -> Outcome:
        assert self.state is not None
        checks: list[Check] = []
        for step in resolve(names):
            if not step.applies(self.answers):
                continue
            record = self.state.step(step.name)
            if not names and record.done:
                self.events(StepSkipped(step.name, f"already {record.status} at {record.updated}"))
                continue
            if self.ctx.cancel.is_set():
                # Cancelled between two steps: the next one was not touched, so it is not failed.
                return Outcome(EXIT_INTERRUPTED, f"Cancelled before {step.title}; nothing of it was done.", checks)
            outcome = self.run_step(step, confirm=confirm)
            checks += outcome.checks
            if outcome.exit_status != EXIT_OK:
                outcome.checks = checks
                return outcome
        return Outcome(EXIT_OK, "Every step is done and its checks passed.", checks)

    def run_step(self, step: Step[Any], *, confirm: Confirm = _yes) -> Outcome:
        """One step, start to finish, with the state saved at every turn."""
        assert self.state is not None
        record = self.state.step(step.name)
        ctx = self.ctx
        self.events(StepStarted(step.name, step.title))
        record.started, record.finished, record.error = now_iso(), None, None
        try:
            ctx.check_cancelled()
            plan = step.plan(self.answers, step.inspect(ctx))
            record.plan = plan.to_dict()
            record.set_status("planned", plan.summary)
            self.save()
            self.events(PlanReady(step.name, plan))
            if step.read_only:
                return self._finish_checks(step, record, plan.checks, gate=True)
            if not plan.is_noop:
                if not confirm(plan):
                    record.history.append(HistoryEntry(at=now_iso(), status="planned",
                                                       summary="The admin declined the plan; nothing was changed."))
                    self.save()
                    return Outcome(EXIT_INTERRUPTED, f"{step.title}: not applied; nothing was changed. "
                                   "Run it again to see the plan and resume.")
                ctx.check_cancelled()
                summary = step.apply(ctx, plan, self._journal(record))
            else:
                summary = plan.noop_reason or plan.summary
            record.set_status("applied", summary)
            self.save()
            self.events(StepApplied(step.name, summary))
            return self._finish_checks(step, record, step.verify(ctx), gate=False)
        except (WizardError, KeyboardInterrupt) as exc:
            return self._fail(step, record, exc)

    def _journal(self, record: StepRecord) -> Journal:
        def record_undo(action: UndoAction) -> None:
            record.undo.append(UndoRecord(action, recorded=now_iso(), undone=None,
                                          answers=self._answers_index(record)))

        def record_change(change: dict[str, Any]) -> None:
            made = ChangeRecord.of(change)
            made.at = made.at or now_iso()
            record.changes.append(made)

        # The journal saves after each record: the undo is on disk before the change is made.
        return Journal(record_undo, record_change, persist=self.save)

    def _answers_index(self, record: StepRecord) -> int:
        """Where this run's answers are in the record's ``answers_seen`` (added when new)."""
        answers = self.answers.to_dict()
        for index, seen in enumerate(record.answers_seen):
            if seen == answers:
                return index
        record.answers_seen.append(answers)
        return len(record.answers_seen) - 1

    def _undo_context(self, record: StepRecord, entry: UndoRecord, label: str) -> Context:
        """The context an undo record is checked and performed in: the answers it was made with
        (and hosts reached as those answers say), or today's for a record from before they were kept."""
        index = entry.answers
        if index is None:
            return self.ctx
        if not 0 <= index < len(record.answers_seen):
            raise UndoRecordError(f"The state file's {label} names answers it does not hold; rollback refused "
                                  "and nothing was undone.", "The state file was edited by hand or damaged.")
        snapshot = record.answers_seen[index]
        if snapshot == self.answers.to_dict():
            return self.ctx
        key = repr(sorted(snapshot.items()))
        if key not in self._undo_contexts:
            from wizard.answers import (
                validate,  # the answers layer, loaded only for such a record
            )

            try:
                answers = validate(snapshot, source=f"the answers {label} was made with")
            except WizardError as exc:
                raise UndoRecordError(f"The state file's {label} was made with answers that no longer pass the "
                                      f"checks: {exc.message}", "The state file was edited by hand or damaged; "
                                      "undo that change by hand.") from exc
            hosts = HostPool(answers, self.host_factory)
            self._extra_pools.append(hosts)
            self._undo_contexts[key] = Context(answers=answers, hosts=hosts, events=self.events,
                                               previous=self.ctx.previous, cancel=self.ctx.cancel)
        return self._undo_contexts[key]

    def _finish_checks(self, step: Step[Any], record: StepRecord, checks: list[Check], *, gate: bool) -> Outcome:
        record.checks = list(checks)
        record.finished = now_iso()
        self.events(ChecksCompleted(step.name, tuple(checks)))
        failed = [check for check in checks if not check.passed]
        if not failed:
            record.set_status("verified", record.summary if not gate else
                              f"{len(checks)} check(s) passed")
            self.save()
            return Outcome(EXIT_OK, f"{step.title}: done.", checks)
        names = ", ".join(f"{c.name} ({c.target})" for c in failed)
        if gate:
            error = StepError(f"{len(failed)} check(s) failed: {names}",
                              "Fix what each failed check says, then run the step again.")
            record.error = error
            record.set_status("failed", error.message)
            self.save()
            self.events(StepFailed(step.name, error.message, error.hint))
            return Outcome(step.failed_checks_exit, f"{step.title}: {error.message}", checks)
        record.summary = f"applied, but {len(failed)} check(s) failed: {names}"
        self.save()
        return Outcome(EXIT_CHECK_FAILED, f"{step.title}: {record.summary}", checks)

    def _fail(self, step: Step[Any], record: StepRecord, exc: BaseException) -> Outcome:
        interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
        if isinstance(exc, WizardError):
            message, hint = exc.message, exc.hint
            exit_status = EXIT_INTERRUPTED if interrupted else (
                exc.exit_code if exc.exit_code in (EXIT_BAD_INPUT, EXIT_INTERRUPTED) else EXIT_STEP_FAILED)
        else:
            message, hint, exit_status = "Interrupted by the admin.", None, EXIT_INTERRUPTED
        # Only what this attempt (or an unfinished earlier one) did: a balancer that a
        # previous run built and verified stays up when a later re-apply fails.
        undone, undo_errors = self._undo_pending(step, record, since=_last_settled(record))
        if undo_errors:
            hint = ("Some changes could not be undone automatically: "
                    + "; ".join(undo_errors) + (f" {hint}" if hint else ""))
        record.error = StepError(message, hint, undone, interrupted=interrupted)
        record.finished = now_iso()
        record.set_status("failed", message.splitlines()[0] if message else "failed")
        self.save()
        self.events(StepFailed(step.name, message, hint, tuple(undone)))
        return Outcome(exit_status, f"{step.title} failed: {message}" + (f"\n  -> {hint}" if hint else ""))

    def _pending(self, step: Step[Any], record: StepRecord, *, since: str | None = None) -> list[Pending]:
        """The step's not-yet-undone records (recorded after ``since``, if given), newest first,
        each checked against the setup: the action to perform, or why it is refused."""
        pending: list[Pending] = []
        for number in range(len(record.undo), 0, -1):
            entry = record.undo[number - 1]
            if entry.undone or (since is not None and (entry.recorded or "") <= since):
                continue
            label = record_label(step.name, number)
            try:
                ctx = self._undo_context(record, entry, label)
                action = step.vet_undo(ctx.answers, entry.untrusted_action(), label)
            except UndoRecordError as exc:
                pending.append(Pending(entry, exc, self.ctx))
                continue
            pending.append(Pending(entry, action, ctx))
        return pending

    def _undo_pending(self, step: Step[Any], record: StepRecord, *,
                      since: str | None = None) -> tuple[list[str], list[str]]:
        """Perform the step's not-yet-undone actions (recorded after ``since``, if given),
        newest first, saving after each. A record refused by the checks is not performed."""
        return self._perform(step, self._pending(step, record, since=since))

    def _perform(self, step: Step[Any], pending: list[Pending]) -> tuple[list[str], list[str]]:
        undone: list[str] = []
        errors: list[str] = []
        for entry, action, ctx in pending:
            if isinstance(action, UndoRecordError):
                errors.append(f"{action.message} ({action.hint})" if action.hint else action.message)
                continue
            try:
                step.undo(ctx, action)
            except WizardError as exc:
                errors.append(f"{action.description} ({exc.message}; by hand: {action.manual})")
                continue
            entry.undone = now_iso()
            undone.append(action.description)
            self.save()
        return undone, errors

    # Rolling back.

    def rollback(self, name: str | None = None, *, confirm: ConfirmRollback = _yes) -> Outcome:
        """Undo applied steps newest first, or only the step ``name``."""
        return self._remember(self._rollback(name, confirm))

    def _rollback(self, name: str | None, confirm: ConfirmRollback) -> Outcome:
        assert self.state is not None
        steps = resolve([name] if name else None)
        touched = [s for s in reversed(steps) if self._rollbackable(self.state.steps.get(s.name))]
        if not touched:
            return Outcome(EXIT_OK, "Nothing to roll back: no step has changes recorded.")
        for step in touched:
            record = self.state.step(step.name)
            pending = self._pending(step, record)
            # A record that points outside the setup (or cannot be read) means the state file was
            # edited: nothing of the step is undone on its word. An old `run` record alone is only
            # skipped (never run), and the admin is told what it said.
            refused = [a for _, a, _ in pending
                       if isinstance(a, UndoRecordError) and not isinstance(a, LegacyCommandError)]
            if refused:
                message = f"Rolling back {step.title} refused; nothing was undone: " + " ".join(
                    e.message for e in refused)
                hint = refused[0].hint or ""
                self.events(StepFailed(step.name, message, hint, ()))
                return Outcome(EXIT_STEP_FAILED, message + (f"\n  -> {hint}" if hint else ""))
            shown = [a if isinstance(a, UndoAction) else
                     UndoAction(kind="refused", target=entry.action.target,
                                description=f"NOT performed: {a.message}", manual=a.hint or "")
                     for entry, a, _ in pending]
            if shown and not confirm(step.name, shown):
                return Outcome(EXIT_INTERRUPTED, "Rollback declined; nothing more was undone.")
            undone, errors = self._perform(step, pending)
            if errors:
                error = StepError("Rollback could not undo everything.", "; ".join(errors), undone)
                record.error = error
                record.set_status("failed", "rollback incomplete")
                self.save()
                self.events(StepFailed(step.name, error.message, error.hint, tuple(undone)))
                return Outcome(EXIT_STEP_FAILED, f"Rolling back {step.title} failed: " + "; ".join(errors))
            record.set_status("rolled-back", f"undone: {len(undone)} change(s)" if undone else "nothing to undo")
            record.checks = []
            self.save()
            self.events(StepRolledBack(step.name, tuple(undone)))
        notes = [s.rollback_note for s in touched if s.rollback_note and self.state.steps[s.name].undo]
        notes += [w for s in touched if (w := s.rollback_warning(self.state.steps[s.name]))]
        return Outcome(EXIT_OK, f"Rolled back: {', '.join(s.name for s in touched)}."
                       + "".join(f"\n  -> {note}" for note in notes))

    @staticmethod
    def _rollbackable(record: StepRecord | None) -> bool:
        if record is None or record.status in ("pending", "rolled-back"):
            return False
        return True

    # Verifying (read-only on the machines; results go into the state).

    def verify(self, names: list[str] | None = None) -> Outcome:
        """Every step's checks (read-only on the machines); results go into the state."""
        return self._remember(self._verify(names))

    def _verify(self, names: list[str] | None) -> Outcome:
        assert self.state is not None
        every: list[Check] = []
        # With a setup under way, a step not applied yet is a failed check of its own
        # (its checks would only repeat that it is missing); with no state at all every
        # step is checked against the machines as they are.
        started = any(record.status != "pending" for record in self.state.steps.values())
        for step in resolve(names):
            if not step.applies(self.answers):
                continue
            existing = self.state.steps.get(step.name)
            # A read-only step (preflight, the final tests) has nothing to apply: it is checked.
            if started and not names and not step.read_only and not (existing and existing.done):
                status = existing.status if existing else "pending"
                missing = Check(step.title, WORKSTATION, False, f"not applied yet (status: {status})",
                                f"Run `confluence-lb-wizard apply` to complete the setup ({step.name}).")
                self.events(ChecksCompleted(step.name, (missing,)))
                every.append(missing)
                continue
            self.events(StepStarted(step.name, step.title))
            try:
                checks = step.verify(self.ctx)
            except WizardError as exc:
                checks = [Check(f"{step.title} checks", WORKSTATION, False, exc.message,
                                exc.hint or "")]
            record = self.state.step(step.name)
            record.checks = list(checks)
            if record.done:
                passed = all(c.passed for c in checks)
                record.set_status("verified" if passed else "applied", record.summary)
            self.save()
            self.events(ChecksCompleted(step.name, tuple(checks)))
            every += checks
        failed = [c for c in every if not c.passed]
        if failed:
            return Outcome(EXIT_CHECK_FAILED, f"{len(failed)} of {len(every)} check(s) failed.", every)
        return Outcome(EXIT_OK, f"All {len(every)} check(s) passed.", every)


def _last_settled(record: StepRecord) -> str | None:
    """When the step last finished (applied or verified), or None if it never did."""
    times = [event.at for event in record.history if event.status in ("applied", "verified")]
    return max(times, default=None)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # containers without a passwd entry still run the wizard
        return ""
