"""The step engine end to end on local hosts: plan, confirm, undo first, apply,
verify, fail and undo, resume, --only, rollback, locking.

The engine is exercised with a small real step that edits one file per node
through ``wizard.engine.files.replace_file`` on the local transport (real files, real
atomic writes); only the step itself is written for the test.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from wizard import steps as registry
from wizard.answers import validate
from wizard.answers_model import Answers, Node
from wizard.engine.events import PlanReady, StepFailed
from wizard.engine.files import replace_file
from wizard.engine.model import Change, Check, FileChange, Plan
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore
from wizard.engine.step import Context, Journal, Step
from wizard.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    HostError,
    StateError,
    StateLockedError,
)
from wizard.transport.hosts import LocalHost

MARK = b"proxyName=wiki.example.com\n"


class MarkStep(Step):
    """Appends a line to <install_dir>/conf/marker.txt on every node."""

    name = "connector"
    title = "Mark the nodes"
    explanation = "test step"

    def __init__(self) -> None:
        self.fail_on: str | None = None  # node name whose write fails
        self.interrupt_on: str | None = None
        self.on_write = None  # callable(path) run just before each write

    def path(self, node: Node) -> str:
        return os.path.join(node.install_dir, "conf", "marker.txt")

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        # The only file this step writes, so the only one its undo records may touch.
        return frozenset(self.path(n) for n in answers.nodes if n.name == target)

    def inspect(self, ctx: Context) -> dict[str, bytes]:
        return {node.name: ctx.hosts.node(node).read_bytes(self.path(node)) for node in ctx.answers.nodes}

    def plan(self, answers: Answers, facts: dict[str, bytes]) -> Plan:
        changes = []
        for node in answers.nodes:
            before = facts[node.name]
            if MARK in before:
                continue
            changes.append(Change(target=node.name, kind="file", summary=f"mark {self.path(node)}",
                                  diff=f"+{MARK.decode().strip()}", details=FileChange(path=self.path(node)),
                                  payload=(before, before + MARK)))
        if not changes:
            return Plan(self.name, "every node is marked", noop_reason="every node already carries the mark")
        return Plan(self.name, f"mark {len(changes)} node(s)", changes)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        for change in plan.changes:  # in order, so a failure leaves earlier nodes changed
            if change.target == self.fail_on:
                raise HostError(f"Could not write on {change.target}.", "Fix the disk.")
            if change.target == self.interrupt_on:
                raise KeyboardInterrupt
            before, after = change.payload
            path = change.details.path
            if self.on_write:
                self.on_write(path)
            replace_file(ctx.hosts.node(change.target), change.target, path,
                         planned_from=before, new=after, journal=journal, summary=change.summary)
        return f"marked {len(plan.changes)} node(s)"

    def verify(self, ctx: Context) -> list[Check]:
        return [Check("marked", node.name, MARK in ctx.hosts.node(node).read_bytes(self.path(node)),
                      "mark present" if MARK in ctx.hosts.node(node).read_bytes(self.path(node)) else "no mark",
                      "run apply --only connector") for node in ctx.answers.nodes]


@pytest.fixture
def step(monkeypatch: pytest.MonkeyPatch) -> MarkStep:
    instance = MarkStep()
    # The engine under test runs exactly two steps: the real preflight and this one.
    monkeypatch.setattr(registry, "_MODULES", {"preflight": "wizard.steps.preflight", "connector": instance})
    return instance


@pytest.fixture
def cluster(tmp_path: Path) -> dict:
    nodes = []
    originals = {}
    for index, name in enumerate(("node1", "node2"), start=1):
        install = tmp_path / name
        (install / "conf").mkdir(parents=True)
        (install / "bin").mkdir()
        (install / "bin" / "start-confluence.sh").write_text("#!/bin/sh\n")
        (install / "conf" / "server.xml").write_text("<Server/>")
        marker = install / "conf" / "marker.txt"
        marker.write_bytes(b"# original\r\nkeep=me\r\n")
        os.chmod(marker, 0o640)
        originals[name] = marker.read_bytes()
        nodes.append({"name": name, "address": f"127.0.0.{index}", "install_dir": str(install),
                      "access": {"transport": "local"}})
    (tmp_path / "apache").mkdir()
    raw = {"name": "engine-test", "public_url": "http://wiki.example.com", "nodes": nodes,
           "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                     "config_path": str(tmp_path / "apache" / "lb.conf")}}}
    return {"answers": validate(raw), "tmp": tmp_path, "originals": originals,
            "state": tmp_path / "state" / "engine.state.json"}


def runner_for(cluster: dict, events=None) -> Runner:
    return Runner(cluster["answers"], StateStore(cluster["state"]), events=events or (lambda e: None),
                  command="test")


def marker(cluster: dict, node: str) -> bytes:
    return (cluster["tmp"] / node / "conf" / "marker.txt").read_bytes()


def test_apply_runs_every_step_and_records_undo_before_each_write(cluster, step) -> None:
    seen_undo_before_write = []

    def check_state_on_disk(path: str) -> None:
        # At the moment of the write, the state file on disk must already hold its undo.
        data = json.loads(cluster["state"].read_text())
        paths = [u["data"]["path"] for u in data["steps"]["connector"]["undo"]]
        seen_undo_before_write.append(path in paths)

    original_write = LocalHost.write_atomic

    def spying_write(self, path, data, **kw):
        check_state_on_disk(path)
        return original_write(self, path, data, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalHost, "write_atomic", spying_write)
        with runner_for(cluster) as runner:
            outcome = runner.apply()
    assert outcome.exit_status == EXIT_OK
    assert seen_undo_before_write == [True, True]
    for node in ("node1", "node2"):
        assert marker(cluster, node) == cluster["originals"][node] + MARK
        assert os.stat(cluster["tmp"] / node / "conf" / "marker.txt").st_mode & 0o777 == 0o640
    state = StateStore(cluster["state"]).load()
    assert state.steps["preflight"].status == "verified"
    assert state.steps["connector"].status == "verified"
    assert len(state.steps["connector"].changes) == 2
    backups = [c.extra["backup"] for c in state.steps["connector"].changes]
    assert all(Path(b).read_bytes() == cluster["originals"][n] for b, n in zip(backups, ("node1", "node2")))
    assert state.runs[-1]["exit_status"] == EXIT_OK and state.runs[-1]["command"] == "test"
    assert os.stat(cluster["state"]).st_mode & 0o777 == 0o600


def test_second_apply_skips_done_steps_and_only_reruns_as_noop(cluster, step) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
    stamp = os.stat(cluster["tmp"] / "node1" / "conf" / "marker.txt").st_mtime_ns
    plans: list[Plan] = []
    events = lambda e: plans.append(e.plan) if isinstance(e, PlanReady) else None  # noqa: E731
    with runner_for(cluster, events) as runner:
        assert runner.apply().exit_status == EXIT_OK
        assert plans == []  # both steps were done: nothing even planned
        assert runner.apply(["connector"]).exit_status == EXIT_OK
    assert len(plans) == 1 and plans[0].is_noop
    assert "already carries the mark" in plans[0].noop_reason
    assert os.stat(cluster["tmp"] / "node1" / "conf" / "marker.txt").st_mtime_ns == stamp


def test_failure_on_one_node_undoes_the_others_and_records_why(cluster, step) -> None:
    step.fail_on = "node2"
    failures = []
    with runner_for(cluster, lambda e: failures.append(e) if isinstance(e, StepFailed) else None) as runner:
        outcome = runner.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "Could not write on node2" in outcome.message
    assert marker(cluster, "node1") == cluster["originals"]["node1"]  # byte-identical, CRLF kept
    assert marker(cluster, "node2") == cluster["originals"]["node2"]
    record = StateStore(cluster["state"]).load().steps["connector"]
    assert record.status == "failed"
    assert record.error.message == "Could not write on node2."
    assert len(record.error.undone) == 1 and "marker.txt" in record.error.undone[0]
    assert all(entry.undone for entry in record.undo)
    assert failures and failures[0].undone


def test_resume_starts_at_the_failed_step(cluster, step) -> None:
    step.fail_on = "node2"
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_STEP_FAILED
    step.fail_on = None
    started = []
    with runner_for(cluster, lambda e: started.append(getattr(e, "step", None))) as runner:
        assert runner.apply().exit_status == EXIT_OK
    assert "preflight" not in [s for s in started if s]  or started.count("preflight") == 1
    state = StateStore(cluster["state"]).load()
    assert state.steps["connector"].status == "verified"
    assert [r["exit_status"] for r in state.runs] == [EXIT_STEP_FAILED, EXIT_OK]
    assert marker(cluster, "node2") == cluster["originals"]["node2"] + MARK


def test_file_changed_between_plan_and_apply_is_refused(cluster, step) -> None:
    path = cluster["tmp"] / "node1" / "conf" / "marker.txt"

    def someone_edits(plan: Plan) -> bool:
        path.write_bytes(b"edited by someone else\n")
        return True

    with runner_for(cluster) as runner:
        outcome = runner.apply(confirm=someone_edits)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "changed after the plan was made" in outcome.message
    assert path.read_bytes() == b"edited by someone else\n"
    assert marker(cluster, "node2") == cluster["originals"]["node2"]


def test_a_rewrite_without_backup_refuses_a_file_changed_since_it_was_read(tmp_path) -> None:
    """The drains' write: atomic, no backup beside the file, and nothing written over someone else's edit."""
    from wizard.engine.files import rewrite_unchanged
    from wizard.errors import ChangedSincePlanError
    from wizard.transport.hosts import LocalHost

    path = tmp_path / "balancer.conf"
    path.write_bytes(b"read\n")
    rewrite_unchanged(LocalHost(), str(path), read=b"read\n", new=b"new\n")
    assert path.read_bytes() == b"new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["balancer.conf"]
    with pytest.raises(ChangedSincePlanError, match="changed after the wizard read it"):
        rewrite_unchanged(LocalHost(), str(path), read=b"read\n", new=b"newer\n")
    assert path.read_bytes() == b"new\n"
    path.unlink()
    with pytest.raises(ChangedSincePlanError):
        rewrite_unchanged(LocalHost(), str(path), read=b"new\n", new=b"newer\n")
    assert not path.exists()


def test_declined_plan_changes_nothing_and_is_resumable(cluster, step) -> None:
    with runner_for(cluster) as runner:
        outcome = runner.apply(confirm=lambda plan: False)
    assert outcome.exit_status == EXIT_INTERRUPTED
    assert marker(cluster, "node1") == cluster["originals"]["node1"]
    assert StateStore(cluster["state"]).load().steps["connector"].status == "planned"


def test_interrupt_during_apply_undoes_the_step_and_exits_130(cluster, step) -> None:
    step.interrupt_on = "node2"
    with runner_for(cluster) as runner:
        outcome = runner.apply()
    assert outcome.exit_status == EXIT_INTERRUPTED
    assert marker(cluster, "node1") == cluster["originals"]["node1"]
    record = StateStore(cluster["state"]).load().steps["connector"]
    assert record.status == "failed" and record.error.interrupted is True


def test_rollback_restores_byte_identical_files_newest_step_first(cluster, step) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
    order = []
    with runner_for(cluster, lambda e: order.append(e.step) if type(e).__name__ == "StepRolledBack" else None) as runner:
        outcome = runner.rollback()
    assert outcome.exit_status == EXIT_OK
    assert order == ["connector", "preflight"]
    for node in ("node1", "node2"):
        assert marker(cluster, node) == cluster["originals"][node]
    state = StateStore(cluster["state"]).load()
    assert state.steps["connector"].status == "rolled-back"
    with runner_for(cluster) as runner:
        assert "Nothing to roll back" in runner.rollback().message


def test_rollback_of_one_step_leaves_the_others(cluster, step) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
        assert runner.rollback("connector").exit_status == EXIT_OK
    state = StateStore(cluster["state"]).load()
    assert state.steps["connector"].status == "rolled-back"
    assert state.steps["preflight"].status == "verified"
    with runner_for(cluster) as runner:  # a later apply resumes at the rolled-back step
        assert runner.apply().exit_status == EXIT_OK
    assert marker(cluster, "node1") == cluster["originals"]["node1"] + MARK


def test_rollback_refuses_to_overwrite_a_later_edit(cluster, step) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
    path = cluster["tmp"] / "node2" / "conf" / "marker.txt"
    path.write_bytes(b"hand edit after the wizard\n")
    with runner_for(cluster) as runner:
        outcome = runner.rollback("connector")
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "changed by someone else" in outcome.message and "cp -p" in outcome.message
    assert path.read_bytes() == b"hand edit after the wizard\n"
    assert marker(cluster, "node1") == cluster["originals"]["node1"]


def test_verify_failure_keeps_step_applied_and_exits_3(cluster, step, monkeypatch) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
    (cluster["tmp"] / "node1" / "conf" / "marker.txt").write_bytes(b"lost the mark\n")
    with runner_for(cluster) as runner:
        outcome = runner.verify()
    assert outcome.exit_status == EXIT_CHECK_FAILED
    failed = [c for c in outcome.checks if not c.passed]
    assert [(c.name, c.target) for c in failed] == [("marked", "node1")]
    assert StateStore(cluster["state"]).load().steps["connector"].status == "applied"


def test_preflight_failure_stops_before_any_change(cluster, step) -> None:
    (cluster["tmp"] / "node2" / "conf" / "server.xml").unlink()
    with runner_for(cluster) as runner:
        outcome = runner.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED
    failed = [c for c in outcome.checks if not c.passed]
    assert [(c.name, c.target) for c in failed] == [("server.xml readable", "node2")]
    assert failed[0].fix
    assert marker(cluster, "node1") == cluster["originals"]["node1"]
    state = StateStore(cluster["state"]).load()
    assert state.steps["preflight"].status == "failed"
    assert "connector" not in state.steps


def test_a_second_run_is_refused_while_the_first_holds_the_lock(cluster, step) -> None:
    with runner_for(cluster):
        with pytest.raises(StateLockedError) as caught:
            runner_for(cluster).open()
    assert f"pid {os.getpid()}" in caught.value.message
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_state_of_another_setup_is_refused(cluster, step) -> None:
    with runner_for(cluster) as runner:
        runner.apply(["preflight"])
    other = validate({**cluster["answers"].to_dict(), "name": "other-setup"})
    with pytest.raises(StateError, match="belongs to the setup 'engine-test'"):
        Runner(other, StateStore(cluster["state"])).open()


def test_plan_is_read_only(cluster, step) -> None:
    with Runner(cluster["answers"], StateStore(cluster["state"]), read_only=True) as runner:
        plans = runner.plan()
    assert [p.step for p in plans] == ["preflight", "connector"]
    assert len(plans[1].changes) == 2 and plans[1].changes[0].diff
    assert not cluster["state"].exists()
    assert marker(cluster, "node1") == cluster["originals"]["node1"]


def test_nodes_fan_out_in_parallel(cluster) -> None:
    threads = set()
    barrier = threading.Barrier(2, timeout=5)

    def work(node):
        threads.add(threading.current_thread().name)
        barrier.wait()  # both nodes must be in flight at once, or this times out
        return node.name

    from wizard.transport.pool import HostPool
    ctx = Context(answers=cluster["answers"], hosts=HostPool(cluster["answers"]))
    assert ctx.for_each_node(work) == ["node1", "node2"]
    assert len(threads) == 2


def test_the_faces_prompts_reach_every_host_the_runner_builds(cluster, step, scripted_prompts) -> None:
    prompts = scripted_prompts()
    given: list[tuple[str, object]] = []

    def factory(label, access, default_host, host_prompts):
        given.append((label, host_prompts))
        return LocalHost(label)

    with Runner(cluster["answers"], StateStore(cluster["state"]), host_factory=factory,
                prompts=prompts, command="test") as runner:
        assert runner.apply().exit_status == EXIT_OK
    assert sorted(label for label, _ in given) == ["balancer", "node1", "node2"]
    assert all(host_prompts is prompts for _, host_prompts in given)


def test_a_failed_reapply_keeps_what_an_earlier_successful_run_made(cluster, step) -> None:
    with runner_for(cluster) as runner:
        assert runner.apply().exit_status == EXIT_OK
    # Someone strips the mark from node2 only; a re-apply plans node2 and fails there.
    (cluster["tmp"] / "node2" / "conf" / "marker.txt").write_bytes(cluster["originals"]["node2"])
    step.fail_on = "node2"
    with runner_for(cluster) as runner:
        outcome = runner.apply(["connector"])
    assert outcome.exit_status == EXIT_STEP_FAILED
    # node1's change from the first, successful run is not undone by the failed re-apply.
    assert marker(cluster, "node1") == cluster["originals"]["node1"] + MARK
    record = StateStore(cluster["state"]).load().steps["connector"]
    assert record.status == "failed" and record.error.undone == []
    assert not any(entry.undone for entry in record.undo)
    # A rollback still takes everything back.
    step.fail_on = None
    with runner_for(cluster) as runner:
        assert runner.rollback("connector").exit_status == EXIT_OK
    assert marker(cluster, "node1") == cluster["originals"]["node1"]


def test_a_state_that_cannot_be_saved_while_opening_leaves_the_lock_free(cluster, step, monkeypatch) -> None:
    original = StateStore.save
    calls = []

    def failing_once(self, state):
        calls.append(1)
        if len(calls) == 1:
            raise StateError("Could not save the state file: No space left on device.", "Free disk space.")
        return original(self, state)

    monkeypatch.setattr(StateStore, "save", failing_once)
    runner = runner_for(cluster)
    with pytest.raises(StateError, match="No space left"):
        runner.open()
    # The same process tries again once the disk has room: the lock is not held by its first try.
    with runner_for(cluster) as again:
        assert again.apply(["preflight"]).exit_status == EXIT_OK


def test_a_cancel_between_two_steps_leaves_the_next_step_untouched(cluster, step, monkeypatch) -> None:
    preflight = registry.get("preflight")
    original_plan = preflight.plan
    with runner_for(cluster) as runner:
        def plan_then_cancel(answers, facts):
            # The admin cancels while preflight finishes (its checks have no cancel points).
            runner.ctx.cancel.set()
            return original_plan(answers, facts)

        monkeypatch.setattr(preflight, "plan", plan_then_cancel)
        outcome = runner.apply(None)
    assert outcome.exit_status == EXIT_INTERRUPTED and "Cancelled before Mark the nodes" in outcome.message
    state = StateStore(cluster["state"]).load()
    assert state.steps["preflight"].status == "verified"
    assert "connector" not in state.steps or state.steps["connector"].status == "pending"


class ParallelMarkStep(MarkStep):
    """MarkStep with every node written at once, as the node steps do (``Context.for_each_node``)."""

    def __init__(self, nodes: int) -> None:
        super().__init__()
        self.together = threading.Barrier(nodes, timeout=10)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        by_node = {change.target: change for change in plan.changes}

        def write(node: Node) -> None:
            change = by_node[node.name]
            self.together.wait()  # every node records its undo at the same moment
            before, after = change.payload
            replace_file(ctx.hosts.node(node), node.name, change.details.path, planned_from=before,
                         new=after, journal=journal, summary=change.summary)

        ctx.for_each_node(write)
        return f"marked {len(plan.changes)} node(s)"


def test_nodes_recording_at_the_same_moment_share_state_writes_and_each_undo_is_saved_first(
        cluster, monkeypatch) -> None:
    """The group commit (wizard/engine/shared_save.py) reaches the journal: a node's record waits
    for one write that covers every node that recorded meanwhile, not for one write per node."""
    raw = cluster["answers"].to_dict()
    count = 6
    for index in range(3, count + 1):
        install = cluster["tmp"] / f"node{index}"
        (install / "conf").mkdir(parents=True)
        (install / "conf" / "marker.txt").write_bytes(b"keep=me\n")
        raw["nodes"].append({**raw["nodes"][0], "name": f"node{index}", "address": f"127.0.0.{index}",
                             "install_dir": str(install)})
    answers = validate(raw)
    step = ParallelMarkStep(count)
    monkeypatch.setattr(registry, "_MODULES", {"preflight": "wizard.steps.preflight", "connector": step})
    writes: list[float] = []
    save = StateStore.save

    def slow_save(self, state) -> None:
        writes.append(0)
        threading.Event().wait(0.05)  # a disk whose fsyncs take a while, as a busy one does
        save(self, state)

    undo_on_disk: list[bool] = []
    original_write = LocalHost.write_atomic

    def spying_write(self, path, data, **kw):
        paths = [u["data"]["path"] for u in json.loads(cluster["state"].read_text())["steps"]["connector"]["undo"]]
        undo_on_disk.append(path in paths)
        return original_write(self, path, data, **kw)

    monkeypatch.setattr(StateStore, "save", slow_save)
    monkeypatch.setattr(LocalHost, "write_atomic", spying_write)
    with Runner(answers, StateStore(cluster["state"]), command="test") as runner:
        before = len(writes)
        outcome = runner.apply(["connector"])
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert undo_on_disk == [True] * count
    state = StateStore(cluster["state"]).load().steps["connector"]
    assert len(state.undo) == count and len(state.changes) == count
    # Twelve records (an undo and a change per node); one write each would be twelve writes, plus
    # the step's own saves around them. Shared, the nodes' undo records take about two writes.
    assert len(writes) - before < 2 * count, len(writes) - before
