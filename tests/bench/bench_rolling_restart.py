"""A drained rolling restart under load: a dozen users through a REAL Apache while `restart` rolls three nodes.

Starts a self-contained Apache (tests/integration/apache.py) and three of the lab's
simulated nodes (``wizard.lab.node.LabNode``), applies the balancer step, then runs
the restart step (``RestartStep`` through the ``Runner``, as the ``restart`` verb does)
while twelve sessions keep working: each has its own cookies, asks for a page and
Synchrony's heartbeat every 0.1 s, and keeps a Synchrony WebSocket open, sending a
message every 0.3 s. A node's restart (its ``restart_command`` is the lab's: it touches
the node's restart trigger) goes as the lab plays it: the old Confluence winds down for
1 s (503 STARTING, its port open), nothing listens for 0.5 s (connections refused), the
new one answers 503 STARTING for 1 s, then RUNNING, its Synchrony 1 s later. Without the
drain, users get the 503s of the winding down until Apache's health check (every 5 s) or
the refused port takes the node out; from then on they are moved. The WebSockets
already open stay open through it (``restart_keeps_websockets``): a real restart ends
those on the restarting node whatever the balancer does, and the bench measures what
the drain prevents.

Prints: requests, failed requests (5xx, refused, timeouts; a request on a keep-alive
connection that a graceful reload closed is sent again, as browsers do, and counted
apart), sessions moved although their node was not the one restarting, WebSocket drops
on nodes that were not restarting, each node's restarts, and the roll's wall time.

Without arguments it runs the roll twice, with the drain and then without it (the Apache
kind made to say it cannot drain, for the bench only: each node restarts under its users),
and prints the share of failed requests of each and their difference: the failures the
drain prevents. ``--drain`` or ``--no-drain`` runs one of the two.

Standalone: ``python tests/bench/bench_rolling_restart.py [--drain | --no-drain]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
STOCK = TESTS / "fixtures" / "serverxml" / "confluence-7-stock.xml"
SERVER_NAME = "wiki.example.com"
SESSIONS = 12
NODES = 3
DRAIN_SECONDS = 2


def load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Roll:
    """Which node the roll is working on (from the restart step's progress events)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.lock = threading.Lock()

    def event(self, event: Any) -> None:
        if getattr(event, "step", None) == "restart" and str(getattr(event, "target", "")).startswith("node"):
            with self.lock:
                self.current = event.target


class Session(threading.Thread):
    def __init__(self, index: int, base: str, ws_base: str, roll: Roll, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"session-{index}")
        self.index, self.base, self.ws_base, self.roll, self.stop = index, base, ws_base, roll, stop
        self.requests = self.failed = self.retried = self.needless_moves = self.moves = 0
        self.ws_drops_live = self.ws_drops = 0
        self.ws_errors: list[str] = []
        self.failures: list[str] = []
        self.client = httpx.Client(headers={"Host": SERVER_NAME}, timeout=5)

    def get(self, path: str) -> None:
        self.requests += 1
        try:
            try:
                answer = self.client.get(self.base + path)
            except httpx.RemoteProtocolError:
                self.retried += 1  # a keep-alive connection a graceful reload closed: sent again
                answer = self.client.get(self.base + path)
            if answer.status_code >= 500 or answer.status_code != 200:
                self.failed += 1
                self.failures.append(f"{path}: HTTP {answer.status_code}")
        except httpx.HTTPError as exc:
            self.failed += 1
            self.failures.append(f"{path}: {type(exc).__name__}")

    def websocket(self) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())
        while not self.stop.is_set():
            node = None
            try:
                with connect(self.ws_base + "/synchrony/v1/bayeux-sync1", open_timeout=5,
                             additional_headers={"Cookie": cookie}) as socket:
                    while not self.stop.is_set():
                        socket.send("edit")
                        reply = str(socket.recv(timeout=5))
                        node = reply.split(":", 1)[0]
                        time.sleep(0.3)
            except Exception as exc:  # noqa: BLE001 (any end of the socket is a drop)
                if self.stop.is_set():
                    return
                self.ws_errors.append(repr(exc)[:120])
                self.ws_drops += 1
                if node is not None and node != self.roll.current:
                    self.ws_drops_live += 1
                time.sleep(0.2)
            cookie = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items())

    def run(self) -> None:
        self.get("/display/X")
        self.get("/synchrony/heartbeat")
        threading.Thread(target=self.websocket, daemon=True).start()
        while not self.stop.is_set():
            before = self.client.cookies.get("ROUTEID")
            current = self.roll.current
            self.get("/display/X")
            self.get("/synchrony/heartbeat")
            after = self.client.cookies.get("ROUTEID")
            if before and after and after != before:
                self.moves += 1
                # The roll may have moved on to the next node while the request was under way.
                if before[1:] not in (current, self.roll.current):
                    self.needless_moves += 1
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--drain", action="store_true", help="only the roll with the drain")
    which.add_argument("--no-drain", action="store_true", help="bench only: only the roll without draining")
    args = parser.parse_args()
    modes = [True] if args.drain else [False] if args.no_drain else [True, False]
    shares = [one_roll(drain) for drain in modes]
    if len(shares) == 2:
        print(f"failed requests with the drain: {shares[0]:.2%}, without: {shares[1]:.2%} "
              f"(the drain prevents {shares[1] - shares[0]:.2%} of requests failing)")
    return 0


def one_roll(drain: bool) -> float:
    """One roll under load; prints its figures and returns the share of failed requests."""
    no_drain = not drain

    apache_helpers = load("clbw_bench_apache", TESTS / "integration" / "apache.py")
    from wizard.answers import validate
    from wizard.balancers.apache import reload as apache_reload
    from wizard.balancers.apache.step import ApacheBalancerStep
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore
    from wizard.lab.node import LabNode
    from wizard.steps.restart import RestartStep

    apache_reload.RELOAD_SETTLE_SECONDS = 0.2
    ApacheBalancerStep.can_drain = drain
    tmp = Path(tempfile.mkdtemp(prefix="clbw-bench-roll-"))
    apache = apache_helpers.ApacheServer.create()
    nodes: list[LabNode] = []
    try:
        for index in range(1, NODES + 1):
            # The bench writes the install folders (the Confluence 7 fixture's server.xml).
            nodes.append(LabNode(f"node{index}", tmp / f"node{index}", managed_files=False, stopping_seconds=1.0,
                                 down_seconds=0.5, restart_seconds=1.0, synchrony_lag_seconds=1.0,
                                 echo_pages=True, restart_keeps_websockets=True).start())
        raw_nodes = []
        for node in nodes:
            install = node.install_dir
            (install / "conf").mkdir(parents=True)
            (install / "bin").mkdir()
            (install / "conf" / "server.xml").write_text(
                STOCK.read_text().replace('port="8090"', f'port="{node.confluence_port}"'))
            (install / "bin" / "setenv.sh").write_text(
                f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n')
            raw_nodes.append({"name": node.name, "address": "127.0.0.1", "install_dir": str(install),
                              "confluence_port": node.confluence_port, "access": {"transport": "local"},
                              "restart_command": node.restart_command})
        raw = {"version": 1, "name": "bench-roll", "public_url": f"http://{SERVER_NAME}",
               "synchrony": {"mode": "direct"}, "nodes": raw_nodes, "restart_drain": DRAIN_SECONDS,
               "restart_timeout": 60,
               "balancer": {"kind": "apache", "apache": {
                   "access": {"transport": "local"}, "config_path": str(apache.config_path),
                   "server_name": SERVER_NAME, "listen_port": apache.port,
                   "configtest_command": apache.configtest_command, "reload_command": apache.reload_command}}}
        apache.start()
        answers = validate(raw)
        state = StateStore(tmp / "state.json")
        with Runner(answers, state, command="bench") as runner:
            applied = runner.apply(["balancer"])
            assert applied.exit_status == 0, applied.message
        time.sleep(1.0)

        roll, stop = Roll(), threading.Event()
        base, ws_base = f"http://127.0.0.1:{apache.port}", f"ws://127.0.0.1:{apache.port}"
        sessions = [Session(i, base, ws_base, roll, stop) for i in range(SESSIONS)]
        for session in sessions:
            session.start()
        time.sleep(1.5)
        started = time.monotonic()
        with Runner(answers, state, events=roll.event, command="bench") as runner:
            outcome = runner.run_step(RestartStep())
        wall = time.monotonic() - started
        with roll.lock:
            roll.current = None
        time.sleep(1.5)
        stop.set()
        for session in sessions:
            session.join(10)
        requests = sum(s.requests for s in sessions)
        failed = sum(s.failed for s in sessions)
        print(f"rolling restart of {NODES} nodes under {SESSIONS} sessions, drain "
              f"{'OFF (bench flag)' if no_drain else f'on ({DRAIN_SECONDS} s)'}: exit {outcome.exit_status}")
        print(f"  requests:                          {requests}")
        print(f"  failed requests:                   {failed} ({failed / max(requests, 1):.2%})")
        print(f"  resent after a reload closed keep-alive: {sum(s.retried for s in sessions)}")
        print(f"  sessions moved (all):              {sum(s.moves for s in sessions)}")
        print(f"  sessions moved, node not restarting: {sum(s.needless_moves for s in sessions)}")
        print(f"  WebSocket drops (all):             {sum(s.ws_drops for s in sessions)}")
        print(f"  WebSocket drops on live nodes:     {sum(s.ws_drops_live for s in sessions)}")
        print(f"  restarts per node:                 {[n.restarts for n in nodes]}")
        print(f"  roll wall time:                    {wall:.1f} s")
        print(f"  first WebSocket errors: {[e for s in sessions for e in s.ws_errors][:3]}")
        examples = [f for s in sessions for f in s.failures][:5]
        if examples:
            print(f"  first failures: {examples}")
        return failed / max(requests, 1)
    finally:
        for node in nodes:
            node.stop()
        apache.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
