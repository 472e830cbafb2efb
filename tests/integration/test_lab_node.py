"""One simulated node (wizard/lab/node.py) on its own: a restart as a real node goes through it,
the knobs the tests use for faults, and the WebSocket served by ``websockets``."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from wizard.lab.node import LabNode

pytestmark = pytest.mark.integration

WS_PATH = "/synchrony/v1/bayeux-sync1"


def status(node: LabNode) -> str:
    """``"<HTTP status> <state>"`` of /status, or ``"refused"`` (a connection the going-down node
    reset counts as refused: it is the same moment)."""
    try:
        answer = httpx.get(f"{node.url}/status", timeout=2)
    except httpx.TransportError:
        return "refused"
    return f"{answer.status_code} {answer.json()['state']}"


def heartbeat(node: LabNode) -> str:
    try:
        return str(httpx.get(f"{node.synchrony_url}/heartbeat", timeout=2).status_code)
    except httpx.TransportError:
        return "refused"


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def in_order(expected: list, seen: list) -> bool:
    """``expected`` is a subsequence of ``seen`` (each one found after the one before)."""
    rest = iter(seen)
    return all(any(item == sample for sample in rest) for item in expected)


def test_a_restart_goes_down_then_starting_then_running_and_synchrony_comes_back_last(
        tmp_path: Path, lab_node_factory) -> None:
    node = lab_node_factory("node1", tmp_path / "node1", stopping_seconds=0.3, down_seconds=0.6,
                            restart_seconds=0.6, synchrony_lag_seconds=0.6)
    assert (status(node), heartbeat(node)) == ("200 RUNNING", "200")
    node.trigger_path.touch()
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not (seen and seen[-1] == ("200 RUNNING", "200")):
        now = (status(node), heartbeat(node))
        if not seen or seen[-1] != now:
            seen.append(now)
        time.sleep(0.03)
    # The old Confluence winds down (its Synchrony still up), nothing listens, the new one starts,
    # is RUNNING, and its Synchrony answers last.
    phases = [("503 STARTING", "200"), ("refused", "refused"), ("503 STARTING", "refused"),
              ("200 RUNNING", "refused"), ("200 RUNNING", "200")]
    # /status and the heartbeat are read one after the other, so a sample taken as the old node
    # closes its ports may mix two phases (STARTING, then a refused heartbeat): every sample is one
    # of the phases, and the phases come in this order.
    assert set(seen) <= set(phases) and in_order(phases, seen), seen
    [restart] = node.restart_log
    assert node.restarts == 1 and restart.running_again is not None and restart.requested < restart.running_again
    assert not node.trigger_path.exists()


def test_a_node_that_never_comes_back_stays_starting_until_it_is_told(tmp_path: Path, lab_node_factory) -> None:
    node = lab_node_factory("node1", tmp_path / "node1", never_comes_back=True, restart_seconds=0.1,
                            down_seconds=0.1)
    node.trigger_path.touch()
    time.sleep(1.0)
    assert status(node) == "503 STARTING" and node.restart_log[0].running_again is None
    node.come_back()
    node.restart(timeout=10)  # a second restart, done once the node is up again
    assert status(node) == "200 RUNNING" and node.restarts == 2
    assert node.restart_log[0].running_again is not None


def test_the_fault_knobs(tmp_path: Path, lab_node_factory) -> None:
    first_run = lab_node_factory("node1", resting_state="FIRST_RUN", synchrony_runs=False)
    assert status(first_run) == "200 FIRST_RUN"
    assert httpx.get(f"{first_run.url}/index.action", timeout=2).status_code == 503  # pages wait for RUNNING
    assert refused(first_run.synchrony_port) and not first_run.synchrony_up
    assert httpx.get(f"{first_run.url}/synchrony-proxy/heartbeat", timeout=2).status_code == 503

    slow = lab_node_factory("node2", answer_delay=0.5, echo_pages=True)
    started = time.monotonic()
    page = httpx.get(f"{slow.url}/display/DOC/Home?x=1", headers={"X-Forwarded-Proto": "https"}, timeout=5)
    assert time.monotonic() - started >= 0.5
    assert page.json() == {"node": "node2", "service": "confluence", "path": "/display/DOC/Home", "query": "x=1",
                           "host": f"127.0.0.1:{slow.confluence_port}", "x_forwarded_proto": "https", "x_forwarded_for": None,
                           "cookie": None}
    assert slow.hits["confluence /display/DOC/Home"] == 1

    # A test's node writes nothing in its install folder.
    quiet = lab_node_factory("node3", tmp_path / "node3")
    assert list((tmp_path / "node3").iterdir()) == [] and quiet.state == "RUNNING"


def test_the_balancer_tests_faults_a_starting_node_a_failing_or_stopped_synchrony(lab_node_factory) -> None:
    node = lab_node_factory("node1", echo_pages=True)
    # Held in STARTING without a restart: the ports stay open, Confluence turns requests away.
    node.hold_starting()
    assert status(node) == "503 STARTING" and not refused(node.confluence_port)
    assert httpx.get(f"{node.url}/display/X", timeout=2).status_code == 503
    assert heartbeat(node) == "refused"  # Confluence starts its Synchrony once RUNNING
    assert node.unavailable_hits == Counter({"confluence /status": 1, "confluence /display/X": 1})
    node.come_back()
    assert (status(node), heartbeat(node)) == ("200 RUNNING", "200") and node.restarts == 0
    assert httpx.get(f"{node.url}/display/X", timeout=2).json()["node"] == "node1"
    assert node.hits["confluence /display/X"] == 2 and node.unavailable_hits["confluence /display/X"] == 1

    # A Synchrony that runs but fails: its port answers, its heartbeat (and Confluence's proxy) 503.
    node.synchrony_healthy = False
    assert heartbeat(node) == "503" and not refused(node.synchrony_port)
    assert httpx.get(f"{node.url}/synchrony-proxy/heartbeat", timeout=2).status_code == 503
    assert node.unavailable_hits["synchrony /synchrony/heartbeat"] == 1
    node.synchrony_healthy = True

    # Synchrony stopped on its own: refused, Confluence runs on.
    node.stop_synchrony()
    assert heartbeat(node) == "refused" and status(node) == "200 RUNNING"


def test_a_restart_ends_the_open_websockets_unless_the_node_keeps_them(tmp_path: Path, lab_node_factory) -> None:
    closing = lab_node_factory("node1", tmp_path / "node1", down_seconds=0.2)
    keeping = lab_node_factory("node2", tmp_path / "node2", down_seconds=0.2, restart_keeps_websockets=True)
    with contextlib.ExitStack() as stack:
        sockets = {}
        for node in (closing, keeping):
            websocket = stack.enter_context(connect(f"ws://127.0.0.1:{node.synchrony_port}{WS_PATH}", open_timeout=5))
            websocket.send("before")
            assert websocket.recv(timeout=5) == f"{node.name}: before"
            sockets[node.name] = websocket
            node.restart(timeout=10)
        with pytest.raises(ConnectionClosed):
            sockets["node1"].send("after")
            sockets["node1"].recv(timeout=5)
        sockets["node2"].send("after")  # served through the restart, by the server the restart retired
        assert sockets["node2"].recv(timeout=5) == "node2: after"
        with connect(f"ws://127.0.0.1:{keeping.synchrony_port}{WS_PATH}", open_timeout=5) as fresh:
            fresh.send("new")  # the restarted Synchrony serves new WebSockets beside the kept one
            assert fresh.recv(timeout=5) == "node2: new"
        keeping.stop()  # ends the kept WebSocket too, and joins its thread
        with pytest.raises(ConnectionClosed):
            sockets["node2"].recv(timeout=5)
    assert not [t.name for t in threading.enumerate() if t.name.startswith(f"{keeping.thread_prefix}-node2-")]


def test_the_websocket_is_served_by_websockets(lab_node_factory) -> None:
    node = lab_node_factory("node1")
    with connect(f"ws://127.0.0.1:{node.synchrony_port}{WS_PATH}", open_timeout=5, close_timeout=2) as websocket:
        websocket.send(["frag", "mented"])  # one message in two frames
        assert websocket.recv(timeout=5) == "node1: fragmented"
        websocket.send(b"bytes")
        assert websocket.recv(timeout=5) == "node1: bytes"
        assert websocket.ping().wait(5)
        websocket.send("x" * 200_000)
        assert websocket.recv(timeout=5) == "node1: " + "x" * 200_000
    assert node.hits["synchrony websocket"] == 1
    # An upgrade without a key is refused by websockets' handshake, with the reason.
    refused_upgrade = httpx.get(f"{node.synchrony_url}/v1/bayeux-sync1", timeout=2,
                                headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert refused_upgrade.status_code == 400 and "Sec-WebSocket-Key" in refused_upgrade.text
