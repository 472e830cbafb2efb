"""Draining a node through the balancer's file, in a REAL nginx 1.22 and a REAL HAProxy 2.6 without
admin_socket, for the rolling restart (wizard/balancers/file_drain.py).

Open-source nginx has no runtime API, and HAProxy's needs admin_socket; without one the kind drains a
node by rewriting its one file (nginx: the node ``down`` in every upstream; HAProxy: its servers
``disabled``), testing it and reloading gracefully. The balancer step is applied first (the bed of
test_nginx_haproxy_balancer.py); what users see is checked with
real requests: a drained node gets no new request, whether the user's ROUTEID cookie names it
or not, for Confluence, Synchrony's heartbeat and its WebSocket, and gets them again after
``undrain``. Then a whole rolling restart under traffic: no request reaches a node while it
restarts, and none fails.
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from wizard.answers import validate
from wizard.balancers.file_drain import DrainRefusedError
from wizard.balancers.kind import kind_for
from wizard.balancers.served import drained_named as drained_in
from wizard.engine.step import Context
from wizard.errors import EXIT_OK, StepFailedError
from wizard.transport.pool import HostPool

from test_nginx_haproxy_balancer import make_bed  # noqa: F401 (the bed's fixture, used by being here)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["nginx", "haproxy"])
def bed(make_bed, request):  # noqa: F811 (the fixture)
    bed = make_bed(request.param)
    bed.raw["balancer"][request.param].pop("admin_socket", None)  # HAProxy: no runtime API, the file drains
    assert bed.apply().exit_status == EXIT_OK
    return bed


def answered_by(bed, path: str, *, cookie: str | None = None, rounds: int = 8) -> set[str]:
    """The nodes that answered ``path``, each request a new connection (with the ROUTEID ``cookie``)."""
    seen = set()
    for _ in range(rounds):
        with bed.client() as client:
            if cookie:
                client.cookies.set("ROUTEID", cookie)
            seen.add(client.get(bed.base + path).headers["x-node"])
    return seen


def test_a_drained_node_gets_no_new_request_sticky_or_not_and_comes_back_after_undrain(bed) -> None:
    answers = validate(bed.raw)
    step = kind_for(answers)
    applied = bed.server.config_path.read_bytes()
    backups = set(bed.server.config_path.parent.glob(f"{bed.server.config_path.name}.*-backup"))
    with HostPool(answers) as hosts:
        ctx = Context(answers, hosts)
        node1 = answers.node("node1")
        before = bed.processes()
        step.drain(ctx, node1)
        assert bed.processes() != before  # reloaded: a new generation of workers serves
        text = bed.server.config_path.read_text()
        assert drained_in(text) == {"node1"}
        node1_port = bed.nodes[0].confluence_port
        if bed.kind == "nginx":
            assert f"127.0.0.1:{node1_port} max_fails=1 fail_timeout=10s down;" in text
        else:
            assert re.search(rf"server node1 127[.]0[.]0[.]1:{node1_port} .* disabled$", text, re.MULTILINE), text
        assert answered_by(bed, "/display/X", cookie="node1") == {"node2"}
        assert answered_by(bed, "/synchrony/heartbeat", cookie="node1") == {"node2"}
        assert answered_by(bed, "/status") == {"node2"}
        assert bed.websocket(cookie="ROUTEID=node1").startswith("node2: ")
        # A second drain changes nothing and does not reload.
        drained = bed.server.config_path.read_bytes()
        processes = bed.processes()
        step.drain(ctx, node1)
        assert bed.server.config_path.read_bytes() == drained and bed.processes() == processes

        step.undrain(ctx, node1)
    assert bed.server.config_path.read_bytes() == applied  # byte for byte what the balancer step wrote
    # No backup per drain: the undo of a drain is its undrain (the bytes read are put back on a failure).
    assert set(bed.server.config_path.parent.glob(f"{bed.server.config_path.name}.*-backup")) == backups
    assert answered_by(bed, "/display/X", cookie="node1") == {"node1"}
    assert answered_by(bed, "/status", rounds=10) == {"node1", "node2"}
    with bed.runner() as runner:
        plans = runner.plan(["balancer"])
    assert all(plan.noop_reason for plan in plans), plans


def test_a_file_edited_by_hand_is_not_rewritten_to_drain(bed) -> None:
    answers = validate(bed.raw)
    edited = bed.server.config_path.read_text() + "# mine\n"
    bed.server.config_path.write_text(edited)
    with HostPool(answers) as hosts, pytest.raises(DrainRefusedError, match="not what the balancer step writes"):
        kind_for(answers).drain(Context(answers, hosts), answers.node("node1"))
    assert bed.server.config_path.read_text() == edited


def test_a_drain_refused_by_the_server_s_test_leaves_the_old_file_serving(bed) -> None:
    before = bed.server.config_path.read_bytes()
    processes = bed.processes()
    bed.raw["balancer"][bed.kind]["configtest_command"] = "false"
    answers = validate(bed.raw)
    with HostPool(answers) as hosts, pytest.raises(StepFailedError, match="previous file is back"):
        kind_for(answers).drain(Context(answers, hosts), answers.node("node1"))
    assert bed.server.config_path.read_bytes() == before and bed.processes() == processes
    assert answered_by(bed, "/display/X", cookie="node1") == {"node1"}


class Traffic:
    """New users (no cookie) and sticky users of each node, through nginx, until stopped: when each
    request was sent, its status and the node that answered."""

    def __init__(self, bed) -> None:
        self.bed = bed
        self.seen: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user, args=(cookie,), daemon=True)
                         for cookie in (None, "node1", "node2")]

    def _user(self, cookie: str | None) -> None:
        with self.bed.client() as client:
            while not self._stop.is_set():
                if cookie:
                    client.cookies.set("ROUTEID", cookie)
                else:
                    client.cookies.clear()
                sent = time.monotonic()
                try:
                    try:
                        answer = client.get(self.bed.base + "/display/X")
                    except httpx.RemoteProtocolError:
                        # A graceful reload closes idle keep-alive connections; a browser whose reused
                        # connection closes before any answer sends the request again (RFC 9112, 9.3.1).
                        answer = client.get(self.bed.base + "/display/X")
                    status, node = answer.status_code, answer.headers.get("x-node", "")
                except httpx.HTTPError as exc:
                    status, node = -1, type(exc).__name__
                self.seen.append((sent, status, node))
                self._stop.wait(0.03)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def test_the_rolling_restart_drains_each_node_through_the_file_and_no_request_fails(
        bed, monkeypatch: pytest.MonkeyPatch) -> None:
    said = "down in every upstream" if bed.kind == "nginx" else "start in maintenance (disabled)"
    roll_under_traffic(bed, said, monkeypatch)


def test_the_rolling_restart_behind_haproxy_s_runtime_api_moves_no_user_onto_a_restarting_node(
        make_bed, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 (the fixture)
    """With admin_socket the drain is the runtime API's maintenance state (no reload): sticky users of the
    node leave it too, so none of them meets its 503 STARTING answers while it restarts."""
    bed = make_bed("haproxy")
    assert bed.apply().exit_status == EXIT_OK
    roll_under_traffic(bed, "runtime API sets the node's servers to maintenance", monkeypatch)


def roll_under_traffic(bed, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``restart --node node1 --node node2`` under new and sticky users' traffic: each node drained (the
    plan says ``said``), restarted and put back in turn; no request reaches a node while it restarts, none
    fails, and the balancer's file ends as the balancer step wrote it."""
    from wizard.steps import restart as restart_module
    from wizard.steps.restart import RestartStep

    monkeypatch.setattr(restart_module, "POLL_SECONDS", 0.1)
    bed.raw["restart_drain"], bed.raw["restart_timeout"] = 1, 20
    for raw, node in zip(bed.raw["nodes"], bed.nodes):
        raw["restart_command"] = node.restart_command
    applied = bed.server.config_path.read_bytes()
    plans = []
    with Traffic(bed) as traffic:
        time.sleep(0.5)  # every kind of user answered before the roll
        with bed.runner() as runner:
            outcome = runner.run_step(RestartStep(only=("node1", "node2")),
                                      confirm=lambda plan: plans.append(plan) or True)
        time.sleep(0.5)
    assert outcome.exit_status == EXIT_OK, outcome.message
    (plan,) = plans
    assert all(change.details.drain for change in plan.changes), plan.changes
    assert said in plan.changes[0].summary, plan.changes[0].summary
    record = json.loads(bed.state.read_text())["steps"]["restart"]
    assert [(c["kind"], c["target"]) for c in record["changes"]] == [
        ("drain", "node1"), ("restart", "node1"), ("undrain", "node1"),
        ("drain", "node2"), ("restart", "node2"), ("undrain", "node2")]
    for node in bed.nodes:
        (restart,) = node.restart_log
        assert restart.running_again is not None
        during = [seen for seen in traffic.seen if restart.requested <= seen[0] <= restart.running_again]
        assert during, f"no request was sent while {node.name} restarted"
        assert all(seen[2] != node.name for seen in during), during
    failed = [seen for seen in traffic.seen if seen[1] != 200]
    assert not failed, failed[:5]
    assert {seen[2] for seen in traffic.seen} == {"node1", "node2"}
    assert bed.server.config_path.read_bytes() == applied  # every node back
