"""The state file: round trip, atomic 0600 saves, no secrets, load errors, migrations, the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wizard.engine.state as state_module
from wizard.errors import EXIT_BAD_INPUT, StateError, StateLockedError
from wizard.engine.model import Check
from wizard.engine.records import ChangeRecord, HistoryEntry, StepError, UndoRecord
from wizard.engine.redact import MASK
from wizard.engine.undo import restore_file_action
from wizard.balancers.reload_marker import pending_reload
from wizard.engine.state import (
    DONE,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUSES,
    State,
    StateStore,
    StepRecord,
    default_state_path,
    describe_holder,
    migrate,
    redact_state,
)

REPO = Path(__file__).resolve().parents[2]


def full_state() -> State:
    state = State(setup="wiki-prod", answers={"name": "wiki-prod", "public_url": "https://wiki.example.com",
                                              "nodes": [{"name": "node1", "address": "10.0.1.11"}]},
                  tool_version="0.1.0")
    state.runs.append({"started": "2025-01-01T00:00:00+00:00", "command": "apply"})
    pre = state.step("preflight")
    pre.set_status("verified", "both nodes reachable")
    pre.checks = [Check("ssh node1", "node1", True, "ok", "")]
    conn = state.step("connector")
    conn.started = "2025-01-01T00:01:00+00:00"
    conn.plan = {"step": "connector", "summary": "add the proxy attributes", "noop_reason": None, "checks": [],
                 "changes": [{"target": "node1", "kind": "file", "summary": "server.xml: the Connector",
                              "diff": '-  <Connector port="8090"/>\n+  <Connector port="8090" '
                                      'proxyName="wiki.example.com"/>',
                              "details": {"path": "/opt/atlassian/confluence/conf/server.xml"}}]}
    conn.set_status("planned", "add the proxy attributes")
    conn.changes = [ChangeRecord(target="node1", kind="file", summary="server.xml: the Connector",
                                 at="2025-01-01T00:01:30+00:00",
                                 extra={"path": "/opt/atlassian/confluence/conf/server.xml",
                                        "backup": "/opt/atlassian/confluence/conf/server.xml.bak-1"})]
    conn.undo = [UndoRecord(restore_file_action("node1", "/opt/atlassian/confluence/conf/server.xml",
                                                "/opt/atlassian/confluence/conf/server.xml.bak-1", b"a", b"b"),
                            recorded="2025-01-01T00:01:20+00:00")]
    conn.set_status("applied")
    conn.checks = [Check("proxyName set", "node1", False, "missing", "restart node1")]
    conn.error = StepError("check failed", "restart node1")
    conn.finished = "2025-01-01T00:02:00+00:00"
    return state


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "wiki-prod.state.json")


def run_python(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a small script in a fresh interpreter that imports this tree's ``wizard``."""
    script = f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True,
                          text=True, timeout=timeout)


# Round trip and the file on disk.

def test_round_trip_keeps_steps_plans_undo_and_checks(store: StateStore) -> None:
    state = full_state()
    store.save(state)
    loaded = store.load()
    assert loaded.to_dict() == state.to_dict()
    assert loaded.serial == 1 and loaded.schema_version == SCHEMA_VERSION
    conn = loaded.steps["connector"]
    assert conn.status == "applied" and conn.done
    assert conn.undo[0].action.data["backup"].endswith(".bak-1")
    assert conn.checks[0].passed is False
    assert [h.status for h in conn.history] == ["planned", "applied"]
    assert list(loaded.steps) == ["preflight", "connector"]


def test_serial_grows_by_one_per_save(store: StateStore) -> None:
    state = full_state()
    for expected in range(1, 6):
        store.save(state)
        assert state.serial == expected
        assert json.loads(store.path.read_text())["serial"] == expected
    # A state loaded and saved again carries on from the file's serial.
    again = store.load()
    store.save(again)
    assert store.load().serial == 6


def test_mode_is_0600_even_with_umask_zero_and_over_a_0644_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "deep" / "er" / "wiki.state.json")
    old_umask = os.umask(0)
    try:
        store.save(full_state())
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
        # Someone made it world-readable; the next save must not keep that mode.
        store.path.chmod(0o644)
        store.save(full_state())
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_the_containing_directory_is_created(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a" / "b" / "c" / "s.state.json")
    assert not store.exists()
    store.save(State(setup="s"))
    assert store.exists() and store.path.parent.is_dir()


def test_no_temp_file_is_left_after_a_save(store: StateStore) -> None:
    state = full_state()
    for _ in range(3):
        store.save(state)
    assert sorted(p.name for p in store.path.parent.iterdir()) == [store.path.name]


def test_the_saved_file_holds_no_secret(store: StateStore) -> None:
    state = full_state()
    step = state.step("connector")
    step.plan = {"diff": '-  <Connector port="8443"/>\n+  <Connector port="8443" keystorePass="s3cret"/>',
                 "password": "plain-pw"}
    step.plan = {"step": "connector", "summary": "keystore", "changes": [
        {"target": "node1", "kind": "file", "summary": "server.xml",
         "diff": '-  <Connector port="8443"/>\n+  <Connector port="8443" keystorePass="s3cret"/>',
         "details": {"password": "plain-pw"}}]}
    step.changes.append(ChangeRecord(kind="command", extra={"command": "PGPASSWORD=hunter2 psql -h db confluence"}))
    step.history.append(HistoryEntry(at="x", status="applied", summary="ran keytool -storepass kt-pw"))
    store.save(state)
    raw = store.path.read_text()
    for secret in ("s3cret", "hunter2", "plain-pw", "kt-pw"):
        assert secret not in raw
    loaded = store.load().steps["connector"]
    assert f'keystorePass="{MASK}"' in loaded.plan["changes"][0]["diff"]
    assert loaded.plan["changes"][0]["details"]["password"] == MASK
    assert loaded.changes[-1].extra["command"] == f"PGPASSWORD={MASK} psql -h db confluence"


def test_redact_state_masks_values_under_secret_names_and_keeps_the_rest() -> None:
    data = {"password": "x1", "keystorePass": 12345, "token": None, "passed": True,
            "nested": [{"SecretAccessKey": "abc", "name": "node1"}], "pair": ("a", "password=b")}
    assert redact_state(data) == {"password": MASK, "keystorePass": MASK, "token": None, "passed": True,
                                  "nested": [{"SecretAccessKey": MASK, "name": "node1"}],
                                  "pair": ["a", f"password={MASK}"]}


def test_save_leaves_the_serial_alone_when_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = StateStore(blocker / "s.state.json")
    state = State(setup="s", serial=4)
    with pytest.raises(StateError) as caught:
        store.save(state)
    assert state.serial == 4
    assert "Could not write the state file" in caught.value.message and caught.value.hint


def test_an_interrupted_save_keeps_the_old_file_and_removes_its_temp(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    state = full_state()
    store.save(state)
    before = store.path.read_bytes()

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(state_module.os, "replace", interrupted)
    state.step("restart").set_status("planned")
    with pytest.raises(KeyboardInterrupt):
        store.save(state)
    assert store.path.read_bytes() == before
    assert state.serial == 1
    assert sorted(p.name for p in store.path.parent.iterdir()) == [store.path.name]


def test_save_removes_only_its_own_stale_temp_files(store: StateStore) -> None:
    directory = store.path.parent
    directory.mkdir(parents=True, exist_ok=True)
    old = time.time() - state_module.STALE_TEMP_SECONDS - 5
    stale = directory / f".{store.path.name}.k1ll3d_x.tmp"
    fresh = directory / f".{store.path.name}.runn1ng_.tmp"
    other = directory / f".{store.path.name}.bak.abcdefgh.tmp"  # another file's temp
    for path in (stale, fresh, other):
        path.write_text("{torn")
    for path in (stale, other):
        os.utime(path, (old, old))
    store.save(State(setup="wiki-prod"))
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    assert store.load().serial == 1


def test_default_state_path_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path("wiki") == tmp_path / "confluence-lb-wizard" / "wiki.state.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path("wiki") == tmp_path / "home" / ".local" / "state" / "confluence-lb-wizard" / "wiki.state.json"


def test_load_or_new(store: StateStore) -> None:
    fresh = store.load_or_new("wiki-prod")
    assert fresh.setup == "wiki-prod" and fresh.serial == 0 and not store.exists()
    store.save(full_state())
    assert store.load_or_new("ignored").steps["connector"].status == "applied"


# Load errors.

def test_loading_a_missing_file_says_so(store: StateStore) -> None:
    with pytest.raises(StateError) as caught:
        store.load()
    assert f"There is no state file at {store.path}" in caught.value.message
    assert "--state" in caught.value.hint
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_loading_invalid_json_names_the_line(store: StateStore) -> None:
    store.path.write_text('{\n  "schema_version": 1,\n  "serial": \n')
    with pytest.raises(StateError) as caught:
        store.load()
    assert "is not valid JSON (line" in caught.value.message and str(store.path) in caught.value.message
    assert caught.value.hint


def test_loading_binary_garbage_is_a_state_error(store: StateStore) -> None:
    store.path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StateError, match="not UTF-8"):
        store.load()


def test_loading_without_schema_version(store: StateStore) -> None:
    store.path.write_text(json.dumps({"setup": "x", "steps": {}}))
    with pytest.raises(StateError) as caught:
        store.load()
    assert "has no schema_version" in caught.value.message
    assert "--state" in caught.value.hint


def test_loading_a_json_list_is_not_a_state(store: StateStore) -> None:
    store.path.write_text("[1, 2]")
    with pytest.raises(StateError, match="no schema_version"):
        store.load()


def test_loading_a_newer_schema_asks_for_an_upgrade(store: StateStore) -> None:
    store.path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "setup": "x"}))
    with pytest.raises(StateError) as caught:
        store.load()
    assert f"schema {SCHEMA_VERSION + 1}" in caught.value.message
    assert f"reads up to {SCHEMA_VERSION}" in caught.value.message
    assert "Upgrade confluence-lb-wizard" in caught.value.hint


@pytest.mark.parametrize("version", [0, -1, "1", True, None, 1.5])
def test_loading_an_invalid_schema_version(store: StateStore, version: object) -> None:
    store.path.write_text(json.dumps({"schema_version": version, "setup": "x"}))
    with pytest.raises(StateError, match="schema_version .* is not valid"):
        store.load()


def test_loading_an_unknown_status_names_it_and_the_step(store: StateStore) -> None:
    document = full_state().to_dict()
    document["steps"]["connector"]["status"] = "half-done"
    store.path.write_text(json.dumps(document))
    with pytest.raises(StateError) as caught:
        store.load()
    assert "unknown status 'half-done'" in caught.value.message
    assert "connector" in caught.value.message


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("setup"),
    lambda d: d.__setitem__("steps", ["not", "a", "mapping"]),
    lambda d: d.__setitem__("answers", "text"),
    lambda d: d.__setitem__("serial", "many"),
])
def test_loading_a_damaged_document_is_a_state_error(store: StateStore, damage) -> None:
    document = full_state().to_dict()
    damage(document)
    store.path.write_text(json.dumps(document))
    with pytest.raises(StateError) as caught:
        store.load()
    assert "not one this tool wrote" in caught.value.message
    assert caught.value.hint


# The records of a step: typed, each part checked when it is read back.

WRITTEN_BEFORE = REPO / "tests" / "fixtures" / "state" / "written-before-typed-records.json"


@pytest.mark.parametrize("name", sorted(json.loads(WRITTEN_BEFORE.read_text())))
def test_a_state_file_written_before_the_records_were_typed_loads_and_saves_the_same(
        store: StateStore, name: str) -> None:
    # Real state files (long texts cut short) of apply, rollback, a failed config test, a killed apply, a
    # drained roll, an ALB and the postgres base URL, as the untyped records wrote them.
    document = json.loads(WRITTEN_BEFORE.read_text())[name]
    store.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    store.path.write_text(json.dumps(document))
    store.path.chmod(0o600)
    loaded = store.load()
    assert loaded.to_dict() == document
    store.save(loaded)
    again = json.loads(store.path.read_text())
    assert {**again, "serial": document["serial"]} == redact_state(document)


def test_the_records_read_back_are_typed() -> None:
    documents = json.loads(WRITTEN_BEFORE.read_text())
    failed = State.from_dict(documents["apache-failed-config-test"]).steps["balancer"]
    assert isinstance(failed.error, StepError) and failed.error.undone and failed.error.interrupted is False
    assert [u.action.kind for u in failed.undo] == ["apache-reload", "restore-file"]
    assert all(isinstance(u.undone, str) for u in failed.undo) and failed.undo[0].answers == 0
    restart = State.from_dict(documents["apache-restart-left-drained-then-resumed"]).steps["restart"]
    # Drained by the roll that stopped, drained again by the one that resumed, restarted, put back.
    assert [(c.kind, c.target) for c in restart.changes] == [("drain", "node1"), ("drain", "node1"),
                                                             ("restart", "node1"), ("undrain", "node1")]
    assert all(isinstance(c, ChangeRecord) and c.at for c in restart.changes)
    finished = State.from_dict(documents["apache-killed-before-reload-then-finished"]).steps["balancer"]
    # Killed in its reload, finished by the next apply (same id), then a later apply of its own.
    first, second = sorted({c.reload_id for c in finished.changes if c.reload_id},
                           key=[c.reload_id for c in finished.changes].index)
    assert [(c.kind, c.reload_id) for c in finished.changes if c.reload_id] == [
        ("reload-pending", first), ("reload", first), ("reload", first), ("reloaded", first),
        ("reload-pending", second), ("reload", second), ("reloaded", second)]
    assert pending_reload(finished, "apache-reload") is None
    assert all(isinstance(c, Check) for c in finished.checks)
    alb = State.from_dict(documents["alb-built-and-rolled-back"]).steps["balancer"]
    assert alb.changes[0].kind is None and {"resource", "action", "name"} <= set(alb.changes[0].extra)


@pytest.mark.parametrize("damage, named", [
    (lambda s: s.pop("name"), "record of the step 'connector' has no valid name"),
    (lambda s: s.__setitem__("history", "planned"), "record of the step 'connector' has no valid history"),
    (lambda s: s["undo"][0].pop("target"), "undo record 1 of the connector step has no valid target"),
    (lambda s: s["undo"][0].__setitem__("kind", 7), "undo record 1 of the connector step has no valid kind"),
    (lambda s: s["undo"][0].__setitem__("data", "rm -rf /"), "undo record 1 of the connector step has no valid data"),
    (lambda s: s["undo"][0].__setitem__("undone", 1), "undo record 1 of the connector step has no valid undone"),
    (lambda s: s["undo"][0].__setitem__("answers", True), "undo record 1 of the connector step has no valid answers"),
    (lambda s: s["undo"][0].__setitem__("answers", 3), "undo record 1 of the connector step names answers"),
    (lambda s: s["undo"].append("rm -rf /"), "undo record 2 of the connector step is not a record"),
    (lambda s: s["changes"][0].__setitem__("kind", ["file"]), "change 1 of the connector step has no valid kind"),
    (lambda s: s["changes"].append(None), "change 2 of the connector step is not a record"),
    (lambda s: s["history"][1].__setitem__("status", "half-done"), "history entry 2 of the connector step"),
    (lambda s: s["history"][0].pop("at"), "history entry 1 of the connector step has no valid at"),
    (lambda s: s["checks"][0].__setitem__("passed", "no"), "check 1 of the connector step has no valid passed"),
    (lambda s: s["error"].__setitem__("undone", "everything"), "error of the connector step has no valid undone"),
    (lambda s: s.__setitem__("error", ["check failed"]), "record of the step 'connector' has no valid error"),
    (lambda s: s["plan"]["changes"][0].pop("target"), "plan of the connector step, change 1 has no valid target"),
    (lambda s: s["plan"].__setitem__("checks", [{"name": "x"}]), "plan of the connector step, check 1"),
    (lambda s: s.__setitem__("answers_seen", ["text"]), "answers 1 of the connector step is not a record"),
])
def test_a_damaged_record_is_refused_naming_it_and_the_key(store: StateStore, damage, named: str) -> None:
    # The state file is input like any other: a record that is not what this tool writes stops the load
    # with the record and the key named (and what to do), never a traceback later.
    document = full_state().to_dict()
    damage(document["steps"]["connector"])
    store.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    store.path.write_text(json.dumps(document))
    store.path.chmod(0o600)
    with pytest.raises(StateError) as caught:
        store.load()
    assert named in caught.value.message
    assert caught.value.hint and caught.value.exit_code == EXIT_BAD_INPUT


# Migrations.

V1_DOCUMENT = {"schema_version": 1, "serial": 7, "setup": "wiki-old", "created": "2024-05-01T00:00:00+00:00",
               "answers": {"name": "wiki-old"}, "runs": [],
               "steps": {"connector": {"name": "connector", "status": "applied", "summary": "done",
                                       "backup": "/opt/c/server.xml.bak"}}}


def test_a_v1_document_is_migrated(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def one_to_two(document: dict) -> dict:
        # Schema 2 moved a step's "backup" into its undo list.
        calls.append(document["schema_version"])
        steps = {}
        for name, record in document["steps"].items():
            record = dict(record)
            backup = record.pop("backup", None)
            if backup:
                record["undo"] = [{"kind": "restore-file", "target": "node1", "data": {"backup": backup}}]
            steps[name] = record
        return {**document, "steps": steps, "tool_version": "migrated"}

    monkeypatch.setattr(state_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(MIGRATIONS, 1, one_to_two)
    store.path.write_text(json.dumps(V1_DOCUMENT))
    loaded = store.load()
    assert calls == [1]
    assert loaded.schema_version == 2
    assert loaded.tool_version == "migrated"
    assert loaded.serial == 7 and loaded.setup == "wiki-old"
    [undo] = loaded.steps["connector"].undo
    assert (undo.action.kind, undo.action.target, undo.action.data) == ("restore-file", "node1",
                                                                         {"backup": "/opt/c/server.xml.bak"})
    # Saved again, it is a version-2 document with the next serial.
    store.save(loaded)
    on_disk = json.loads(store.path.read_text())
    assert on_disk["schema_version"] == 2 and on_disk["serial"] == 8
    assert "backup" not in on_disk["steps"]["connector"]


def test_migrate_does_not_change_the_callers_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: {**d, "added": True})
    original = json.loads(json.dumps(V1_DOCUMENT))
    migrated = migrate(original)
    assert migrated["schema_version"] == 2 and migrated["added"] is True
    assert original == V1_DOCUMENT


def test_a_missing_migration_step_is_a_state_error(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: d)
    monkeypatch.delitem(MIGRATIONS, 2, raising=False)
    store.path.write_text(json.dumps(V1_DOCUMENT))
    with pytest.raises(StateError) as caught:
        store.load()
    assert "No migration from state schema 2 to 3" in caught.value.message
    assert caught.value.hint


def test_a_migration_that_returns_nothing_is_a_state_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(MIGRATIONS, 1, lambda d: None)
    with pytest.raises(StateError, match="returned no document"):
        migrate(dict(V1_DOCUMENT))


# The lock.

HOLD_LOCK = """
    import sys
    from wizard.engine.state import StateStore
    store = StateStore(sys.argv[1])
    store.acquire("apply --answers wiki.yaml")
    print("locked", flush=True)
    sys.stdin.read()  # hold until killed or stdin closes
"""

TRY_LOCK = """
    import sys
    from wizard.errors import StateLockedError
    from wizard.engine.state import StateStore
    store = StateStore(sys.argv[1])
    try:
        store.acquire("status")
    except StateLockedError as exc:
        print(exc.for_admin())
        sys.exit(3)
    print("acquired")
    store.release()
"""


def test_a_second_process_is_refused_and_told_who_holds_the_lock(store: StateStore) -> None:
    store.acquire("apply --answers wiki.yaml")
    try:
        refused = run_python(TRY_LOCK, str(store.path))
        assert refused.returncode == 3, refused.stderr
        message = refused.stdout
        assert message.startswith("Another run is using this setup's state")
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert "running `apply --answers wiki.yaml`" in message
        assert "the lock frees itself when that process ends" in message
    finally:
        store.release()
    after = run_python(TRY_LOCK, str(store.path))
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.strip() == "acquired"


def test_the_lock_file_names_its_holder_and_is_emptied_on_release(store: StateStore) -> None:
    store.acquire("rollback")
    holder = json.loads(store.lock_path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["command"] == "rollback" and holder["since"]
    assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
    assert store.locked
    store.release()
    assert not store.locked
    assert store.lock_path.read_text() == ""
    store.release()  # releasing twice is harmless
    assert not store.locked


def test_a_stale_lock_of_a_killed_process_does_not_keep_the_state(store: StateStore) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + textwrap.dedent(HOLD_LOCK),
         str(store.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateLockedError, match=f"pid {holder.pid} on "):
            StateStore(store.path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # The dead holder never released: its record is still in the file...
    assert json.loads(store.lock_path.read_text())["pid"] == holder.pid
    # ...but the kernel dropped its lock, so this process gets it.
    store.acquire("apply")
    try:
        assert json.loads(store.lock_path.read_text())["pid"] == os.getpid()
    finally:
        store.release()


def test_acquire_twice_on_one_store_is_a_no_op_but_another_store_is_refused(store: StateStore) -> None:
    store.acquire()
    try:
        store.acquire()
        assert store.locked
        with pytest.raises(StateLockedError, match=f"pid {os.getpid()}"):
            StateStore(store.path).acquire()
    finally:
        store.release()
    with StateStore(store.path) as other:
        assert other.locked
    assert not other.locked


def test_a_lock_in_an_unusable_place_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="Could not open the lock file"):
        StateStore(blocker / "s.state.json").acquire()


def test_describe_holder() -> None:
    assert describe_holder({}) == "a process that did not say who it is"
    assert describe_holder({"pid": 42, "host": "lb1", "user": "ops", "since": "2025-01-01T00:00:00+00:00",
                            "command": "apply"}) == (
        "pid 42 on lb1, user ops, since 2025-01-01T00:00:00+00:00, running `apply`")
    assert describe_holder({"pid": 42}) == "pid 42 on ?"


def test_a_holder_record_followed_by_an_older_records_tail_is_still_read(store: StateStore) -> None:
    # Between the holder's write and its truncate, a reader may see the new record and old bytes after it.
    store.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, json.dumps({"pid": 7, "host": "h"}).encode() + b'", "command": "old"}')
        assert state_module._read_holder(fd) == {"pid": 7, "host": "h"}
    finally:
        os.close(fd)


# Step records.

def test_set_status_rejects_unknown_statuses() -> None:
    record = StepRecord(name="restart")
    with pytest.raises(ValueError, match="unknown step status 'done'"):
        record.set_status("done")
    assert record.status == "pending" and record.history == [] and record.updated is None


def test_set_status_appends_history() -> None:
    record = StepRecord(name="restart")
    record.set_status("planned", "restart node1 then node2")
    record.set_status("applied")
    record.set_status("failed", "node2 did not come back")
    assert [(h.status, h.summary) for h in record.history] == [
        ("planned", "restart node1 then node2"),
        ("applied", "restart node1 then node2"),
        ("failed", "node2 did not come back"),
    ]
    assert all(h.at for h in record.history)
    assert record.status == "failed" and record.updated == record.history[-1].at
    assert not record.done


def test_every_status_round_trips_and_done_means_applied_or_verified(store: StateStore) -> None:
    state = State(setup="s")
    for status in STATUSES:
        state.step(f"step-{status}").set_status(status)
    store.save(state)
    loaded = store.load()
    assert {name: rec.status for name, rec in loaded.steps.items()} == {f"step-{s}": s for s in STATUSES}
    assert {rec.status for rec in loaded.steps.values() if rec.done} == set(DONE)
