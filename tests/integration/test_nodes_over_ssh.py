"""The connector and restart steps end to end over REAL sshd, against simulated Confluence nodes.

Every node is a directory under /tmp (0755, so the non-root test user can reach it)
holding an install: conf/server.xml copied from tests/fixtures/serverxml with the
Connector moved to the port of the node's simulated Confluence (the lab's ``LabNode``), and
bin/setenv.sh.
The wizard reaches the nodes over SSH (sshd on 127.0.0.1, from the ssh_testbed
fixtures); every node has address 127.0.0.1 and its own confluence_port. The
restart command is ``touch <install>/restart-requested``, which the simulated node
notices: it goes down for a moment, answers STARTING, then RUNNING.

Most tests drive ``wizard.engine.runner.Runner`` directly; a few run the installed command
(``apply --answers F --only connector --yes``) as an admin would.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from wizard.engine import runner as runner_module
from wizard.answers import validate
from wizard.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_STEP_FAILED
from wizard.engine.events import ProgressReported
from wizard.engine.runner import Outcome, Runner
from wizard.transport.ssh import SSHHost
from wizard.engine.state import StateStore
from wizard.steps import restart as restart_module

# No agent, no ~/.ssh of the machine, no ssh config (tests/conftest.py).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("isolated_ssh_client")]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
BIN = Path(sys.executable).parent / "confluence-lb-wizard"
PUBLIC_URL = "https://wiki.example.com"
WANTED = {"proxyName": "wiki.example.com", "proxyPort": "443", "scheme": "https", "secure": "true"}
BOM = b"\xef\xbb\xbf"
SECRET = "s3cret"  # plain-and-ssl.xml: keystorePass="s3cret&amp;more"


# --------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch):
    """The restart step polls /status every 2 s; the simulated nodes come back in under a second."""
    monkeypatch.setattr(restart_module, "POLL_SECONDS", 0.05)




@pytest.fixture
def start_sshd(sshd_factory):
    """Another sshd (stopped when the test ends)."""
    return lambda: sshd_factory()


@pytest.fixture
def shared_dir():
    """A folder every test user can reach (pytest's tmp_path is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="clbw-nodes-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- the nodes


@dataclass
class NodeDir:
    name: str
    install: Path
    fixture: str
    lab_node: Any  # wizard.lab.node.LabNode
    original: bytes

    @property
    def server_xml(self) -> Path:
        return self.install / "conf" / "server.xml"

    @property
    def trigger(self) -> Path:
        return self.install / "restart-requested"

    @property
    def port(self) -> int:
        return self.lab_node.confluence_port

    def read(self) -> bytes:
        return self.server_xml.read_bytes()

    def backups(self) -> list[Path]:
        return sorted((self.install / "conf").glob("server.xml.*.clbw-backup"))

    def temp_leftovers(self) -> list[str]:
        return [p.name for p in (self.install / "conf").iterdir() if p.name.endswith(".clbw-tmp")]


def make_node(root: Path, name: str, fixture: str, start_node: Callable, **knobs: Any) -> NodeDir:
    install = root / name
    for folder in (install, install / "conf", install / "bin"):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    lab_node = start_node(name, install, **knobs)
    data = (FIXTURES / fixture).read_bytes()
    data = data.replace(b'port="8090"', f'port="{lab_node.confluence_port}"'.encode())
    data = data.replace(b"port='8090'", f"port='{lab_node.confluence_port}'".encode())
    assert str(lab_node.confluence_port).encode() in data, f"{fixture} has no Connector on 8090 to move"
    server_xml = install / "conf" / "server.xml"
    server_xml.write_bytes(data)
    server_xml.chmod(0o644)
    shutil.copyfile(FIXTURES / "setenv.sh", install / "bin" / "setenv.sh")
    (install / "bin" / "setenv.sh").chmod(0o755)
    return NodeDir(name=name, install=install, fixture=fixture, lab_node=lab_node, original=data)


def ssh_access(bed, server, *, known_hosts: Path | None = None, **overrides: Any) -> dict:
    """An answers-file access block reaching ``server`` with the testbed's client key."""
    access = {"transport": "ssh", "host": "127.0.0.1", "port": server.port, "user": bed.login_user,
              "key_file": str(bed.client_key),
              "known_hosts": str(known_hosts or bed.known_hosts(server))}
    access.update(overrides)
    return access


def answers_for(nodes: list[NodeDir], accesses: list[dict], tmp: Path, *, name: str = "ssh-nodes",
                restart_commands: dict[str, str] | None = None, **top: Any) -> dict:
    apache_dir = tmp / "apache"
    apache_dir.mkdir(exist_ok=True)
    commands = restart_commands or {}
    return {
        "version": 1, "name": name, "public_url": PUBLIC_URL,
        "nodes": [{"name": node.name, "address": "127.0.0.1", "confluence_port": node.port,
                   "synchrony_port": node.lab_node.synchrony_port,  # direct mode asks its heartbeat
                   "install_dir": str(node.install),
                   "restart_command": commands.get(node.name, f"touch {node.trigger}"),
                   "access": access}
                  for node, access in zip(nodes, accesses)],
        "balancer": {"kind": "apache", "apache": {
            "access": {"transport": "local"}, "config_path": str(apache_dir / "confluence-lb.conf"),
            "tls": {"certificate_file": str(apache_dir / "wiki.crt"), "key_file": str(apache_dir / "wiki.key")}}},
        **top,
    }


@dataclass
class Run:
    outcome: Outcome
    events: list


def apply(raw: dict, state: Path, names: list[str], confirm: Callable | None = None) -> Run:
    events: list = []
    runner = Runner(validate(raw), StateStore(state), events=events.append, command="test")
    with runner:
        outcome = runner.apply(names, confirm=confirm or (lambda plan: True))
    return Run(outcome, events)


def rollback(raw: dict, state: Path, name: str) -> Outcome:
    runner = Runner(validate(raw), StateStore(state), command="test rollback")
    with runner:
        return runner.rollback(name)


def plan(raw: dict, state: Path, names: list[str]):
    runner = Runner(validate(raw), StateStore(state), command="test plan")
    with runner:
        return runner.plan(names)


def step_record(state: Path, name: str) -> dict:
    return json.loads(state.read_text())["steps"][name]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- checks on files


def active_connector(data: bytes, port: int) -> dict[str, str]:
    """The attributes Tomcat reads on the active Connector on ``port`` (ElementTree, an
    independent parser: comments are skipped, a duplicate attribute is a parse error)."""
    root = ET.fromstring(data)
    found = [dict(c.attrib) for c in root.iter("Connector") if c.get("port") == str(port)]
    assert len(found) == 1, f"{len(found)} active Connectors on port {port}"
    return found[0]


def assert_only_the_connector_tag_changed(before: bytes, after: bytes, port: int) -> None:
    """Every byte outside the start tag of the Connector on ``port`` is as it was."""
    assert before != after
    prefix = 0
    limit = min(len(before), len(after))
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    tag_start = before.rfind(b"<Connector", 0, prefix + 1)
    assert tag_start >= 0, "the first changed byte is not inside a Connector tag"
    tag_end = before.index(b">", tag_start) + 1
    assert len(before) - suffix <= tag_end, "bytes after the Connector tag changed"
    tag = before[tag_start:tag_end].decode("utf-8")
    assert f'port="{port}"' in tag or f"port='{port}'" in tag, f"another tag changed: {tag}"
    assert before.startswith(BOM) == after.startswith(BOM), "the BOM was added or lost"
    if b"\r\n" in before:
        assert after.count(b"\n") == after.count(b"\r\n"), "a bare LF crept into a CRLF file"


def assert_connector_set(node: NodeDir) -> None:
    attributes = active_connector(node.read(), node.port)
    for name, value in WANTED.items():
        assert attributes.get(name) == value, (node.fixture, name, attributes)


def file_identity(path: Path) -> tuple:
    info = os.stat(path)
    return (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def wait_for_next_second() -> None:
    """Until the wall clock's second changes (the state's timestamps have 1 s resolution)."""
    start = datetime.now(UTC).replace(microsecond=0)
    while datetime.now(UTC).replace(microsecond=0) == start:
        time.sleep(0.01)


class FastClock:
    """Stands in for the ``time`` module inside wizard.steps.restart: its clock runs
    ``factor`` times faster, so a 10 s restart_timeout (the minimum) passes in 10/factor s."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def monotonic(self) -> float:
        return time.monotonic() * self.factor

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# --------------------------------------------------------------------------- the CLI


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg-state")}  # HOME etc. from isolated_ssh_client
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


# =========================================================================== connector

FIXTURE_SETS = {
    "stock-crlf-bom": ("confluence-7-stock.xml", "crlf.xml", "utf8-bom.xml"),
    "quotes-oldproxy-ssl": ("single-quotes.xml", "old-proxy-name.xml", "plain-and-ssl.xml"),
}


@pytest.fixture
def three_nodes(shared_dir, lab_node_factory, request) -> list[NodeDir]:
    fixtures = FIXTURE_SETS[request.param]
    return [make_node(shared_dir, f"node{i}", fixture, lab_node_factory)
            for i, fixture in enumerate(fixtures, start=1)]


@pytest.mark.parametrize("three_nodes", list(FIXTURE_SETS), indirect=True)
def test_connector_on_three_nodes_edits_only_the_tag_and_records_undo(
        three_nodes, ssh_testbed, sshd, tmp_path):
    nodes = three_nodes
    user = ssh_testbed.plain_user()
    # Owners and modes the edit must keep (the wizard logs in as root here).
    os.chown(nodes[0].server_xml, user.pw_uid, user.pw_gid)
    nodes[0].server_xml.chmod(0o640)
    nodes[1].server_xml.chmod(0o600)
    os.chown(nodes[2].server_xml, user.pw_uid, 0)
    identities = {node.name: file_identity(node.server_xml) for node in nodes}
    known_hosts = ssh_testbed.known_hosts(sshd)
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd, known_hosts=known_hosts)] * 3, tmp_path)
    state = tmp_path / "state" / "ssh-nodes.state.json"

    run = apply(raw, state, ["connector"])

    assert run.outcome.exit_status == EXIT_OK, run.outcome.message
    for node in nodes:
        after = node.read()
        assert_connector_set(node)
        assert_only_the_connector_tag_changed(node.original, after, node.port)
        assert file_identity(node.server_xml) == identities[node.name], node.name
        assert node.temp_leftovers() == []
        [backup] = node.backups()
        assert backup.read_bytes() == node.original
        assert file_identity(backup) == identities[node.name]

    record = step_record(state, "connector")
    assert record["status"] == "verified"
    assert record["checks"] and all(check["passed"] for check in record["checks"])
    assert {check["target"] for check in record["checks"]} == {"node1", "node2", "node3"}
    by_target = {entry["target"]: entry for entry in record["undo"]}
    assert sorted(by_target) == ["node1", "node2", "node3"] and len(record["undo"]) == 3
    changes = {change["target"]: change for change in record["changes"]}
    for node in nodes:
        undo = by_target[node.name]
        [backup] = node.backups()
        assert undo["kind"] == "restore-file" and undo["undone"] is None
        assert undo["data"]["path"] == str(node.server_xml)
        assert undo["data"]["backup"] == str(backup)
        assert undo["data"]["sha256_before"] == sha(node.original)
        assert undo["data"]["sha256_after"] == sha(node.read())
        assert str(backup) in undo["manual"]
        change = changes[node.name]
        assert change["kind"] == "file" and change["path"] == str(node.server_xml)
        assert change["backup"] == str(backup)
        assert (change["sha256_before"], change["sha256_after"]) == (sha(node.original), sha(node.read()))
        planned = next(c for c in record["plan"]["changes"] if c["target"] == node.name)
        assert "proxyName" in planned["diff"] and planned["details"]["path"] == str(node.server_xml)
    text = state.read_text()
    assert SECRET not in text and "s3cret&amp;more" not in text
    assert "MY_CERTIFICATE_PASSWORD" not in text  # the stock files' placeholder, masked too
    assert oct(state.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("three_nodes", ["quotes-oldproxy-ssl"], indirect=True)
def test_second_connector_apply_is_a_noop_with_a_reason_and_touches_nothing(
        three_nodes, ssh_testbed, sshd, tmp_path):
    nodes = three_nodes
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd)] * 3, tmp_path)
    state = tmp_path / "state.json"
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK
    before = {node.name: (os.stat(node.server_xml).st_mtime_ns, node.read(), node.backups())
              for node in nodes}
    time.sleep(0.05)  # an unwanted rewrite would show in mtime_ns

    again = apply(raw, state, ["connector"])

    assert again.outcome.exit_status == EXIT_OK, again.outcome.message
    record = step_record(state, "connector")
    assert record["plan"]["changes"] == []
    reason = record["plan"]["noop_reason"]
    assert reason.startswith("Every Connector already has")
    assert 'proxyName="wiki.example.com"' in reason and "node3" in reason
    assert record["status"] == "verified"
    assert len(record["undo"]) == 3  # the first apply's, and no new ones
    for node in nodes:
        assert (os.stat(node.server_xml).st_mtime_ns, node.read(), node.backups()) == before[node.name]


@pytest.mark.parametrize("three_nodes", ["stock-crlf-bom"], indirect=True)
def test_rollback_connector_puts_back_the_original_bytes(three_nodes, ssh_testbed, sshd, tmp_path):
    nodes = three_nodes
    user = ssh_testbed.plain_user()
    os.chown(nodes[1].server_xml, user.pw_uid, user.pw_gid)
    nodes[1].server_xml.chmod(0o640)
    identities = {node.name: file_identity(node.server_xml) for node in nodes}
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd)] * 3, tmp_path)
    state = tmp_path / "state.json"
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK
    assert all(node.read() != node.original for node in nodes)

    outcome = rollback(raw, state, "connector")

    assert outcome.exit_status == EXIT_OK, outcome.message
    for node in nodes:
        assert node.read() == node.original, node.name
        assert file_identity(node.server_xml) == identities[node.name]
        assert node.temp_leftovers() == []
    record = step_record(state, "connector")
    assert record["status"] == "rolled-back"
    assert all(entry["undone"] for entry in record["undo"])


def test_cli_apply_only_connector_over_two_sshd(ssh_testbed, sshd, start_sshd, shared_dir,
                                                lab_node_factory, tmp_path):
    """Nodes behind two different sshd instances, through the installed command."""
    other = start_sshd()
    nodes = [make_node(shared_dir, "node1", "confluence-8-stock.xml", lab_node_factory),
             make_node(shared_dir, "node2", "one-attribute-per-line.xml", lab_node_factory),
             make_node(shared_dir, "node3", "plain-and-ssl.xml", lab_node_factory)]
    accesses = [ssh_access(ssh_testbed, sshd), ssh_access(ssh_testbed, other),
                ssh_access(ssh_testbed, other)]
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(answers_for(nodes, accesses, tmp_path, name="two-sshd")))
    state = tmp_path / "s" / "two-sshd.state.json"

    done = run_cli("apply", "--answers", str(answers), "--state", str(state), "--only", "connector",
                   "--yes", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    for node in nodes:
        assert_connector_set(node)
        assert_only_the_connector_tag_changed(node.original, node.read(), node.port)
        assert len(node.backups()) == 1
    assert "PASS" in done.stdout and "FAIL" not in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert f"Accepted publickey for {ssh_testbed.login_user}" in other.log()
    status = json.loads(run_cli("status", "--state", str(state), "--json", cwd=tmp_path).stdout)
    assert {s["name"]: s["status"] for s in status["steps"]}["connector"] == "verified"
    mtimes = [os.stat(node.server_xml).st_mtime_ns for node in nodes]

    again = run_cli("apply", "--answers", str(answers), "--state", str(state), "--only", "connector",
                    "--yes", cwd=tmp_path)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to change" in again.stdout and "Every Connector already has" in again.stdout
    assert [os.stat(node.server_xml).st_mtime_ns for node in nodes] == mtimes
    assert all(len(node.backups()) == 1 for node in nodes)


# --------------------------------------------------------------------------- refused connections


@pytest.fixture
def two_nodes(shared_dir, lab_node_factory) -> list[NodeDir]:
    return [make_node(shared_dir, "node1", "confluence-7-stock.xml", lab_node_factory),
            make_node(shared_dir, "node2", "plain-and-ssl.xml", lab_node_factory)]


def assert_untouched(nodes: list[NodeDir]) -> None:
    for node in nodes:
        assert node.read() == node.original, node.name
        assert node.backups() == [], node.name
        assert node.temp_leftovers() == [], node.name


def test_unknown_host_key_fails_with_exit_2_and_changes_nothing(two_nodes, ssh_testbed, sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    raw = answers_for(two_nodes, [ssh_access(ssh_testbed, sshd, known_hosts=empty)] * 2, tmp_path)
    state = tmp_path / "state.json"

    run = apply(raw, state, ["connector"])

    assert run.outcome.exit_status == EXIT_BAD_INPUT == 2
    message = run.outcome.message
    assert sshd.fingerprint("ed25519") in message and "SHA256:" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message
    assert "Nothing was sent to it" in message
    assert_untouched(two_nodes)
    assert empty.read_text() == ""  # nothing trusted behind the admin's back
    record = step_record(state, "connector")
    assert record["status"] == "failed" and record["undo"] == []
    assert "SHA256:" in record["error"]["message"] and "ssh-keyscan" in record["error"]["hint"]


def test_unknown_host_key_through_the_command(two_nodes, ssh_testbed, sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(answers_for(
        two_nodes, [ssh_access(ssh_testbed, sshd, known_hosts=empty)] * 2, tmp_path)))
    state = tmp_path / "s" / "state.json"

    done = run_cli("apply", "--answers", str(answers), "--state", str(state), "--only", "connector",
                   "--yes", cwd=tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert sshd.fingerprint("ed25519") in output and "SHA256:" in output
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1" in output
    assert_untouched(two_nodes)
    assert step_record(state, "connector")["status"] == "failed"


def test_changed_host_key_is_refused_and_nothing_changes(two_nodes, ssh_testbed, sshd, tmp_path):
    impostor = ssh_testbed.make_key(tmp_path / "impostor")
    blob = Path(f"{impostor}.pub").read_text().split()[1]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {blob}\n")
    raw = answers_for(two_nodes, [ssh_access(ssh_testbed, sshd, known_hosts=known_hosts)] * 2, tmp_path)
    state = tmp_path / "state.json"

    run = apply(raw, state, ["connector"])

    assert run.outcome.exit_status == EXIT_BAD_INPUT
    assert "CHANGED" in run.outcome.message and "man-in-the-middle" in run.outcome.message
    assert sshd.fingerprint("ed25519") in run.outcome.message
    assert "ssh-keygen -R" in run.outcome.message
    assert_untouched(two_nodes)
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} ssh-ed25519 {blob}\n"
    assert step_record(state, "connector")["status"] == "failed"


def test_refused_key_is_a_clear_failure_and_nothing_changes(two_nodes, ssh_testbed, sshd, tmp_path):
    stranger = ssh_testbed.make_key(tmp_path / "not_authorized")
    raw = answers_for(two_nodes, [ssh_access(ssh_testbed, sshd, key_file=str(stranger))] * 2, tmp_path)
    state = tmp_path / "state.json"

    run = apply(raw, state, ["connector"])

    assert run.outcome.exit_status == EXIT_STEP_FAILED
    message = run.outcome.message
    assert f"refused the login as `{ssh_testbed.login_user}`" in message
    assert str(stranger) in message and "ssh-copy-id" in message
    assert_untouched(two_nodes)
    record = step_record(state, "connector")
    assert record["status"] == "failed" and "refused the login" in record["error"]["message"]


# --------------------------------------------------------------------------- failures half-way


def test_permission_denied_names_the_path_and_sudo_and_leaves_every_file_original(
        shared_dir, lab_node_factory, ssh_testbed, sshd, tmp_path):
    user = ssh_testbed.plain_user()
    nodes = [make_node(shared_dir, f"node{i}", "confluence-7-stock.xml", lab_node_factory)
             for i in (1, 2, 3)]
    for node in (nodes[0], nodes[2]):  # the plain user's own installs
        for path in (node.install, node.install / "conf", node.server_xml):
            os.chown(path, user.pw_uid, user.pw_gid)
    locked = nodes[1]  # root's install: readable, not writable by the plain user
    assert file_identity(locked.server_xml) == (0o644, 0, 0)
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd, user=user.pw_name)] * 3, tmp_path)
    state = tmp_path / "state.json"

    run = apply(raw, state, ["connector"])

    assert run.outcome.exit_status == EXIT_STEP_FAILED
    message = run.outcome.message
    assert str(locked.server_xml) in message and "permission denied" in message
    assert "sudo" in message
    for node in nodes:  # nothing half-changed: node1 and node3 were put back
        assert node.read() == node.original, node.name
        assert node.temp_leftovers() == []
    assert file_identity(nodes[0].server_xml) == (0o644, user.pw_uid, user.pw_gid)
    record = step_record(state, "connector")
    assert record["status"] == "failed"
    assert str(locked.server_xml) in record["error"]["message"]
    assert "sudo" in record["error"]["hint"]
    undone = " ".join(record["error"]["undone"])
    assert str(nodes[0].server_xml) in undone and str(nodes[2].server_xml) in undone


def test_a_file_changed_between_plan_and_apply_is_refused_and_keeps_the_other_edit(
        shared_dir, lab_node_factory, ssh_testbed, sshd, tmp_path):
    nodes = [make_node(shared_dir, f"node{i}", "confluence-7-stock.xml", lab_node_factory)
             for i in (1, 2, 3)]
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd)] * 3, tmp_path)
    state = tmp_path / "state.json"
    other_edit = b"\n<!-- maxThreads raised by the other admin -->\n"

    def edit_over_the_side(plan) -> bool:
        assert len(plan.changes) == 3
        with open(nodes[1].server_xml, "ab") as handle:
            handle.write(other_edit)
        return True

    run = apply(raw, state, ["connector"], confirm=edit_over_the_side)

    assert run.outcome.exit_status == EXIT_STEP_FAILED
    assert "changed after the plan was made" in run.outcome.message
    assert str(nodes[1].server_xml) in run.outcome.message
    assert nodes[1].read() == nodes[1].original + other_edit
    assert nodes[0].read() == nodes[0].original and nodes[2].read() == nodes[2].original
    record = step_record(state, "connector")
    assert record["status"] == "failed"
    assert "changed after the plan was made" in record["error"]["message"]
    assert not [entry for entry in record["undo"] if not entry["undone"]]


@pytest.mark.parametrize("when", ["before-node2", "between-writes"])
def test_sshd_killed_in_the_middle_of_an_apply(when, shared_dir, lab_node_factory, ssh_testbed,
                                               sshd, start_sshd, tmp_path, monkeypatch):
    """node1 behind one sshd, node2 behind another that dies after node1's file was written."""
    doomed = start_sshd()
    nodes = [make_node(shared_dir, "node1", "confluence-7-stock.xml", lab_node_factory),
             make_node(shared_dir, "node2", "crlf.xml", lab_node_factory)]
    raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd), ssh_access(ssh_testbed, doomed)], tmp_path)
    state = tmp_path / "state.json"
    confirm = None
    if when == "before-node2":
        def confirm(plan) -> bool:
            doomed.kill_hard()  # node2 is unreachable by the time apply starts
            return True
    else:
        # Writes fan out in parallel: hold node2's write until node1's is done, then kill
        # node2's sshd. node2 has already checked its file and taken its backup by then.
        original_write = SSHHost.write_atomic
        node1_written = threading.Event()
        seen: list[str] = []

        def write_atomic(self, path, data, **kwargs):
            seen.append(self.label)
            if self.label == "node2" and not node1_written.is_set():
                assert node1_written.wait(20), "node1's write never happened"
            try:
                return original_write(self, path, data, **kwargs)
            finally:
                if self.label == "node1" and not node1_written.is_set():
                    assert nodes[0].read() != nodes[0].original  # node1 really was written
                    doomed.kill_hard()
                    node1_written.set()

        monkeypatch.setattr(SSHHost, "write_atomic", write_atomic)

    started = time.monotonic()
    run = apply(raw, state, ["connector"], confirm=confirm)

    assert time.monotonic() - started < 30
    assert run.outcome.exit_status == EXIT_STEP_FAILED
    assert "node2" in run.outcome.message
    assert nodes[0].read() == nodes[0].original, "node1 was not restored"
    assert nodes[1].read() == nodes[1].original, "node2 was half-changed"
    assert nodes[0].temp_leftovers() == [] and nodes[1].temp_leftovers() == []
    record = step_record(state, "connector")
    assert record["status"] == "failed"
    assert "node2" in record["error"]["message"]
    undone = record["error"]["undone"]
    assert any(str(nodes[0].server_xml) in line for line in undone), undone
    node1_undo = [e for e in record["undo"] if e["target"] == "node1"]
    assert node1_undo and all(e["undone"] for e in node1_undo)
    # What could not be undone (node2 is unreachable) is named with the command to do it by hand.
    for entry in record["undo"]:
        if entry["target"] == "node2" and not entry["undone"]:
            assert entry["manual"] in (record["error"]["hint"] or "")


# =========================================================================== restart


@pytest.fixture
def restart_cluster(shared_dir, lab_node_factory, ssh_testbed, sshd, tmp_path):
    def build(count: int = 3, knobs: dict[str, dict] | None = None, **answer_options):
        options = knobs or {}
        nodes = [make_node(shared_dir, f"node{i}", "confluence-7-stock.xml", lab_node_factory,
                           **options.get(f"node{i}", {}))
                 for i in range(1, count + 1)]
        raw = answers_for(nodes, [ssh_access(ssh_testbed, sshd)] * count, tmp_path, **answer_options)
        return nodes, raw, tmp_path / "state" / "restart.state.json"
    return build


def restart_changes(state: Path) -> list[str]:
    return [change["target"] for change in step_record(state, "restart")["changes"]
            if change["kind"] == "restart"]


def test_rolling_restart_over_ssh_one_node_at_a_time(restart_cluster):
    nodes, raw, state = restart_cluster(3)

    run = apply(raw, state, ["preflight", "connector", "restart"])

    assert run.outcome.exit_status == EXIT_OK, run.outcome.message
    assert [node.lab_node.restarts for node in nodes] == [1, 1, 1]
    logs = [node.lab_node.restart_log[0] for node in nodes]
    for earlier, later in itertools.pairwise(logs):
        assert earlier.running_again is not None
        # The next restart was requested only once the previous node answered RUNNING again.
        assert earlier.requested < earlier.running_again < later.requested
    assert all(not node.trigger.exists() for node in nodes)
    assert restart_changes(state) == ["node1", "node2", "node3"]
    record = step_record(state, "restart")
    assert record["status"] == "verified"
    assert [c["details"]["order"] for c in record["plan"]["changes"]] == [1, 2, 3]
    assert all(check["passed"] for check in record["checks"])
    assert all(node.read() != node.original for node in nodes)

    again = apply(raw, state, ["restart"])

    assert again.outcome.exit_status == EXIT_OK, again.outcome.message
    assert [node.lab_node.restarts for node in nodes] == [1, 1, 1]
    reason = step_record(state, "restart")["plan"]["noop_reason"]
    assert "restarted after the last Connector change" in reason
    assert restart_changes(state) == ["node1", "node2", "node3"]

    # Another Connector change (here: its rollback) needs the nodes restarted again. The
    # state's timestamps have a resolution of one second; the same-second case is
    # test_restart_is_needed_after_a_connector_rollback_in_the_same_second.
    wait_for_next_second()
    assert rollback(raw, state, "connector").exit_status == EXIT_OK
    assert all(node.read() == node.original for node in nodes)
    [restart_plan] = plan(raw, state, ["restart"])
    assert [change.target for change in restart_plan.changes] == ["node1", "node2", "node3"]

    third = apply(raw, state, ["restart"])

    assert third.outcome.exit_status == EXIT_OK, third.outcome.message
    assert [node.lab_node.restarts for node in nodes] == [2, 2, 2]
    assert restart_changes(state) == ["node1", "node2", "node3"] * 2


def test_restart_is_needed_after_a_connector_rollback_in_the_same_second(restart_cluster, monkeypatch):
    """A Connector change recorded at the very time of a node's restart (times are ordered as
    strings; they once had one-second resolution) counts as not yet in effect."""
    nodes, raw, state = restart_cluster(1)
    assert apply(raw, state, ["connector", "restart"]).outcome.exit_status == EXIT_OK
    assert nodes[0].lab_node.restarts == 1
    [restarted_at] = [c["at"] for c in step_record(state, "restart")["changes"]]
    # The rollback finishes within the second the restart was recorded in (as a script
    # running `apply --only restart` then `rollback connector` easily does).
    monkeypatch.setattr(runner_module, "now_iso", lambda: restarted_at)
    assert rollback(raw, state, "connector").exit_status == EXIT_OK
    assert nodes[0].read() == nodes[0].original  # server.xml changed on disk after the restart

    [restart_plan] = plan(raw, state, ["restart"])

    assert [change.target for change in restart_plan.changes] == ["node1"], (
        "the Connector rollback is not in effect yet, but the plan says: "
        + (restart_plan.noop_reason or restart_plan.summary))


def test_restart_stops_at_the_node_that_never_comes_back(restart_cluster, monkeypatch):
    monkeypatch.setattr(restart_module, "time", FastClock(5))  # restart_timeout 10 s -> 2 s
    # node2 answers STARTING with HTTP 200 (as Jira documents /status): the wizard names the state it read.
    stuck = {"never_comes_back": True, "starting_status": 200}
    nodes, raw, state = restart_cluster(3, {"node2": stuck}, restart_timeout=10)
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    started = time.monotonic()
    run = apply(raw, state, ["restart"])

    assert time.monotonic() - started < 8
    assert run.outcome.exit_status == EXIT_STEP_FAILED
    message = run.outcome.message
    assert "node2 did not answer RUNNING within 10 s" in message
    assert "already restarted: node1" in message and "state STARTING" in message
    assert [node.lab_node.restarts for node in nodes] == [1, 1, 0]  # node3 was NOT restarted
    record = step_record(state, "restart")
    assert record["status"] == "failed" and "node2" in record["error"]["message"]
    assert restart_changes(state) == ["node1"]

    # Once node2 is back, the roll resumes with node2 and node3 only.
    nodes[1].lab_node.come_back()
    [resumed] = plan(raw, state, ["restart"])
    assert [change.target for change in resumed.changes] == ["node2", "node3"]
    assert "node1 already restarted" in resumed.summary


def test_rolling_restart_waits_for_a_restart_that_begins_after_the_command_returns(restart_cluster):
    """Init scripts and service managers often return before the node has even stopped: the
    step must see each node go down and come back before it restarts the next one."""
    nodes, raw, state = restart_cluster(3, {f"node{i}": {"restart_seconds": 0.5} for i in (1, 2, 3)})
    raw = copy.deepcopy(raw)
    for entry, node in zip(raw["nodes"], nodes):
        entry["restart_command"] = f"(sleep 0.7; touch {node.trigger}) </dev/null >/dev/null 2>&1 &"
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    run = apply(raw, state, ["restart"])

    assert run.outcome.exit_status == EXIT_OK, run.outcome.message
    assert [node.lab_node.restarts for node in nodes] == [1, 1, 1]
    logs = [node.lab_node.restart_log[0] for node in nodes]
    for earlier, later in itertools.pairwise(logs):
        # Never two nodes down at once: the next restart began only after the previous
        # node answered RUNNING again.
        assert earlier.running_again is not None
        assert earlier.requested < earlier.running_again < later.requested
    assert restart_changes(state) == ["node1", "node2", "node3"]


def test_restart_command_that_returns_only_once_the_node_is_back_is_accepted(restart_cluster):
    """The node went down and came back while its command ran: seen, so no wait for a second fall."""
    nodes, raw, state = restart_cluster(2, {"node1": {"restart_seconds": 0.3}, "node2": {"restart_seconds": 0.3}})
    raw = copy.deepcopy(raw)
    for entry, node in zip(raw["nodes"], nodes):
        entry["restart_command"] = f"touch {node.trigger}; sleep 1.2"
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    run = apply(raw, state, ["restart"])

    assert run.outcome.exit_status == EXIT_OK, run.outcome.message
    assert [node.lab_node.restarts for node in nodes] == [1, 1]
    first, second = (node.lab_node.restart_log[0] for node in nodes)
    assert first.running_again is not None and first.running_again < second.requested


def test_restart_command_that_never_takes_the_node_down_stops_the_roll(restart_cluster, monkeypatch):
    monkeypatch.setattr(restart_module, "time", FastClock(5))  # restart_timeout 10 s -> 2 s
    nodes, raw, state = restart_cluster(2, restart_timeout=10, restart_commands={"node1": "true"})
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    started = time.monotonic()
    run = apply(raw, state, ["restart"])

    assert time.monotonic() - started < 8
    assert run.outcome.exit_status == EXIT_STEP_FAILED
    message = run.outcome.message
    assert "node1 kept answering RUNNING for 10 s after `true` returned" in message
    assert "does not seem to restart Confluence" in message and "No node was restarted" in message
    record = step_record(state, "restart")
    assert record["status"] == "failed" and "restart_command" in record["error"]["hint"]
    assert [node.lab_node.restarts for node in nodes] == [0, 0]  # node2 was not touched either
    assert restart_changes(state) == []


def test_manual_restart_waits_for_running(restart_cluster):
    nodes, raw, state = restart_cluster(2, restart="manual")
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK
    by_name = {f"node{index}": node for index, node in enumerate(nodes, start=1)}
    shown: list = []
    told: list[str] = []

    def admin(event) -> None:
        # The admin restarts a node by hand when the wizard says it is waiting for that node.
        if isinstance(event, ProgressReported) and "waiting for you to restart it" in event.message:
            told.append(event.target)
            by_name[event.target].trigger.touch()

    def confirm(plan) -> bool:
        shown.extend(plan.changes)
        return True

    runner = Runner(validate(raw), StateStore(state), events=admin, command="test")
    with runner:
        outcome = runner.apply(["restart"], confirm=confirm)

    assert outcome.exit_status == EXIT_OK, outcome.message
    assert told == ["node1", "node2"]  # one at a time, in order
    assert [change.kind for change in shown] == ["manual", "manual"]
    assert all("you restart it" in change.summary for change in shown)
    assert [node.lab_node.restarts for node in nodes] == [1, 1]
    # The wizard saw each node leave RUNNING and waited for it to answer RUNNING again.
    assert all(node.lab_node.restart_log[0].running_again is not None for node in nodes)
    assert restart_changes(state) == ["node1", "node2"]
    assert step_record(state, "restart")["status"] == "verified"


def test_manual_restart_not_done_by_the_admin_is_not_recorded_as_done(restart_cluster, monkeypatch):
    """A node that was never restarted answers RUNNING at once: with `apply --yes` (or an admin
    who confirms and does nothing) no restart may be recorded, or the next `apply --only restart`
    would take the Connector change as in effect."""
    monkeypatch.setattr(restart_module, "time", FastClock(20))
    nodes, raw, state = restart_cluster(2, restart="manual", restart_timeout=10)
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    run = apply(raw, state, ["restart"], confirm=lambda plan: True)  # as `apply --yes` does

    assert [node.lab_node.restarts for node in nodes] == [0, 0]
    recorded = restart_changes(state)
    assert recorded == [] or run.outcome.exit_status != EXIT_OK, (
        f"the state records restarts of {recorded}, which never restarted: "
        + step_record(state, "restart")["summary"])


def test_failing_restart_command_fails_the_step_with_its_stderr(restart_cluster):
    failing = "echo 'Failed to restart confluence.service: Unit confluence.service not found.' >&2; exit 1"
    nodes, raw, state = restart_cluster(3, restart_commands={"node2": failing})
    assert apply(raw, state, ["connector"]).outcome.exit_status == EXIT_OK

    run = apply(raw, state, ["restart"])

    assert run.outcome.exit_status == EXIT_STEP_FAILED
    message = run.outcome.message
    assert "Unit confluence.service not found" in message
    assert "node2" in message and "exited 1" in message
    assert "Already restarted: node1" in message
    assert [node.lab_node.restarts for node in nodes] == [1, 0, 0]
    record = step_record(state, "restart")
    assert record["status"] == "failed"
    assert "Unit confluence.service not found" in record["error"]["message"]
    assert restart_changes(state) == ["node1"]
