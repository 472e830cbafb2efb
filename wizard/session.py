"""Finding, opening and describing a setup, shared by the Textual app and the prompts.

A session is one open setup seen from a face: its runner, its checklist rows and
each step's progress, as plain data (the faces draw them). It sits above the
engine because it lists the steps (``wizard.steps``), which the engine never imports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.steps import all_steps, available

if TYPE_CHECKING:
    from wizard.answers_model import Answers
    from wizard.engine.events import ProgressReported
    from wizard.engine.runner import Runner
    from wizard.engine.state import State, StepRecord
    from wizard.engine.step import Step


#: The checklist's row before the steps: the answers the steps work from.
ANSWERS = "answers"


@dataclass(frozen=True)
class Row:
    """One line of the checklist."""

    name: str
    title: str
    status: str
    updated: str | None = None


@dataclass
class StepProgress:
    """Where one step's work is: per target the last message, and the furthest fraction."""

    step: str
    messages: dict[str, str] = field(default_factory=dict)
    fraction: float = 0.0
    last_target: str | None = None
    finished: bool = False
    failed: bool = False

    def report(self, event: ProgressReported) -> None:
        self.messages[event.target] = event.message
        self.last_target = event.target
        if event.fraction is not None:
            self.fraction = max(self.fraction, min(1.0, event.fraction))

    def finish(self, *, failed: bool = False) -> None:
        self.finished = True
        self.failed = failed
        if not failed:
            self.fraction = 1.0


@dataclass
class SavedSetup:
    path: Path
    setup: str
    done: int
    total: int
    updated: str | None


def saved_setups(folder: Path | None = None) -> list[SavedSetup]:
    """The setups with a state file in the default folder, with their progress."""
    from wizard.engine.state import StateStore, default_state_path

    folder = folder or default_state_path("x").parent
    found = []
    for path in sorted(folder.glob("*.state.json")) if folder.is_dir() else []:
        try:
            state = StateStore(path).load()
        except Exception:  # an unreadable file is listed by `status`, not here
            continue
        names = available()
        done = sum(1 for name in names if name in state.steps and state.steps[name].done)
        updated = max((r.updated for r in state.steps.values() if r.updated), default=None)
        found.append(SavedSetup(path, state.setup, done, len(names), updated))
    return found


def answers_from_file(path: str | Path) -> Answers:
    from wizard.answers import load_answers_file, validate

    return validate(load_answers_file(path), source=str(path))


def answers_from_state(path: Path) -> tuple[State, Answers]:
    from wizard.answers import validate
    from wizard.engine.state import StateStore

    state = StateStore(path).load()
    return state, validate(state.answers, source=str(path))


def mark_interactive(runner: Runner) -> None:
    """Tell the steps a person is there: the guided base-url step then waits for the admin
    to change the base URL instead of failing at once."""
    if hasattr(runner.ctx, "interactive"):
        runner.ctx.interactive = True


def pending_rows() -> list[Row]:
    """The checklist of a setup whose answers are still being written."""
    return [Row(ANSWERS, "Answers", "incomplete")] + [Row(step.name, step.title, "pending") for step in all_steps()]


@dataclass
class Session:
    """One open setup: its runner (which holds the state's lock), its files, and its progress."""

    runner: Runner
    answers_path: Path | None = None
    #: Per step, the progress reported during this session (for the step view's bars).
    progress: dict[str, StepProgress] = field(default_factory=dict)
    #: The step the engine is working on now, if any.
    running: str | None = None
    #: A job's thread works with the runner (set and cleared under ``job_lock``).
    job_running: bool = False
    #: The app let the session go while a job ran: the job's thread closes the runner when done.
    close_when_done: bool = False
    job_lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Close the runner (the lock, the run's record, the connections), or, while a job's
        thread still works with it, leave that to the thread (``job_finished``)."""
        with self.job_lock:
            if self.job_running:
                self.close_when_done = True
                return
        self.runner.close(self.runner.exit_status)

    def job_started(self) -> None:
        with self.job_lock:
            self.job_running = True

    def job_finished(self, exit_status: int) -> bool:
        """From the job's thread when it ends; closes the runner if the app already let go
        (True then)."""
        with self.job_lock:
            self.job_running = False
            closing = self.close_when_done
        if closing:
            self.runner.close(exit_status)
        return closing

    @property
    def answers(self) -> Answers:
        return self.runner.answers

    @property
    def state(self) -> State:
        assert self.runner.state is not None, "the session's runner is open"
        return self.runner.state

    @property
    def state_path(self) -> Path:
        return self.runner.store.path

    def steps(self) -> list[Step]:
        """The steps of this setup, in order (a step with no work for these answers is left out)."""
        return [step for step in all_steps() if step.applies(self.answers)]

    def step(self, name: str) -> Step:
        return next(step for step in all_steps() if step.name == name)

    def record(self, name: str) -> StepRecord | None:
        return self.state.steps.get(name)

    def status(self, name: str) -> str:
        record = self.record(name)
        return record.status if record else "pending"

    def first_not_done(self) -> str | None:
        for step in self.steps():
            record = self.record(step.name)
            if not (record and record.done):
                return step.name
        return None

    def not_done_before(self, name: str) -> list[str]:
        """The steps before ``name`` that are not done yet (running it now skips the usual order)."""
        earlier = []
        for step in self.steps():
            if step.name == name:
                break
            record = self.record(step.name)
            if not (record and record.done):
                earlier.append(step.name)
        return earlier

    def rows(self) -> list[Row]:
        rows = [Row(ANSWERS, "Answers", "complete")]
        for step in self.steps():
            record = self.record(step.name)
            status = "running" if step.name == self.running else (record.status if record else "pending")
            rows.append(Row(step.name, step.title, status, record.updated if record else None))
        return rows

    def rollbackable(self) -> list[str]:
        """The steps with something a rollback would touch, newest step first."""
        names = []
        for step in reversed(self.steps()):
            record = self.record(step.name)
            if record is not None and record.status not in ("pending", "rolled-back"):
                names.append(step.name)
        return names

    def answers_summary(self) -> list[tuple[str, Any]]:
        """The answers as label/value pairs, for the Answers row of the checklist."""
        answers = self.answers
        balancer = answers.balancer
        pairs: list[tuple[str, Any]] = [("Setup", answers.name), ("Public URL", answers.public_url.url),
                                        ("Synchrony", f"{answers.synchrony.mode}, port {answers.synchrony.port}"),
                                        ("Restart", answers.restart), ("Base URL", answers.base_url.method)]
        for node in answers.nodes:
            reach = "this machine" if node.access.transport == "local" else (
                f"ssh {node.access.user + '@' if node.access.user else ''}{node.access.host or node.address}")
            pairs.append((f"Node {node.name}", f"{node.address}, {node.install_dir}, reached on {reach}"))
        if balancer.kind == "apache" and balancer.apache is not None:
            apache = balancer.apache
            where = "this machine" if apache.access.transport == "local" else f"ssh {apache.access.host}"
            pairs.append(("Balancer", f"Apache httpd on {where}, {apache.config_path or 'default vhost path'}"))
        elif balancer.kind in ("nginx", "haproxy") and balancer.host_options is not None:
            served = balancer.host_options
            where = "this machine" if served.access.transport == "local" else f"ssh {served.access.host}"
            pairs.append(("Balancer", f"{'nginx' if balancer.kind == 'nginx' else 'HAProxy'} on {where}, "
                                      f"{served.config_path}"))
        elif balancer.alb is not None:
            alb = balancer.alb
            pairs.append(("Balancer", (f"AWS ALB {alb.name or answers.name} in {alb.region}, {alb.vpc_id}, "
                                       f"subnets {', '.join(alb.subnet_ids)}")))
        pairs.append(("State file", str(self.state_path)))
        if self.answers_path is not None:
            pairs.append(("Answers file", str(self.answers_path)))
        return pairs
