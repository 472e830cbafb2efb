"""A simulated Confluence node for the tests: ``GET <ctx>/status`` and file-triggered restarts.

Stdlib only. One ``FakeConfluence`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (a free
port) in a daemon thread. It answers ``GET <context_path>/status`` with 200
``{"state":"RUNNING"}``, and simulates restarts the way the tests trigger them:
the node's restart command is something like ``touch <install>/restart-requested``
(it works over SSH and locally alike). When the server sees that file, checked by
a watcher thread every few milliseconds and again at the start of every request,
it deletes it, counts a restart and answers ``{"state":"STARTING"}`` for
``restart_delay`` seconds, then RUNNING again. It also answers ``GET /synchrony/heartbeat``
with ``OK``: a node whose Synchrony runs, on the same port (the answers give
``synchrony_port`` = the fake's port), as direct mode asks before it points users at it.

Options:
- ``never_comes_back=True``: after a restart it stays STARTING (``come_back()`` ends that);
- ``down=True``: nothing listens on the port (connection refused);
- ``starting_status``: the HTTP status of a STARTING answer (200 as Confluence sends it; 503
  to simulate a proxy in front of a starting node).

Every restart is logged with monotonic timestamps (``restart_log``: when the trigger was
seen, when RUNNING was first answered again), so a test can prove that restarts were
rolling: the next node's trigger appeared only after the previous one answered RUNNING.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TRIGGER_NAME = "restart-requested"


@dataclass
class Restart:
    """One simulated restart: monotonic times of the trigger and of the first RUNNING after it."""

    requested: float
    running_again: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeConfluence


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet test output

    def do_GET(self) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        if path == "/synchrony/heartbeat":
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path != f"{fake.context_path}/status":
            self._send(404, {"error": "not found", "path": path})
            return
        status, body = fake._answer_status()
        self._send(status, body)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeConfluence:
    """One simulated Confluence node. ``start()`` it (the factory fixture does), ``stop()`` it."""

    def __init__(self, trigger: str | os.PathLike[str] | None = None, *, context_path: str = "",
                 restart_delay: float = 0.3, never_comes_back: bool = False, down: bool = False,
                 starting_status: int = 200, state: str = "RUNNING", name: str = "") -> None:
        self.trigger = Path(trigger) if trigger is not None else None
        self.context_path = context_path.rstrip("/")
        self.restart_delay = restart_delay
        self.never_comes_back = never_comes_back
        self.down = down
        self.starting_status = starting_status
        self.resting_state = state
        self.name = name
        self.port = 0
        self.requests = 0
        self.restart_log: list[Restart] = []
        self._lock = threading.Lock()
        self._starting_until: float | None = None  # monotonic; inf while never coming back
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # Life cycle.

    def start(self) -> FakeConfluence:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        if self.down:
            server.server_close()  # the port was free a moment ago; nothing listens there now
            return self
        self._server = server
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                   name=f"fake-confluence-{self.port}", daemon=True)
        serving.start()
        self._threads.append(serving)
        if self.trigger is not None:
            watcher = threading.Thread(target=self._watch, name=f"fake-confluence-watch-{self.port}",
                                       daemon=True)
            watcher.start()
            self._threads.append(watcher)
        return self

    def stop(self) -> None:
        """Stop answering (idempotent): connections to the port are refused from now on."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.context_path}/status"

    # What the tests look at.

    @property
    def restarts(self) -> int:
        with self._lock:
            return len(self.restart_log)

    @property
    def state(self) -> str:
        with self._lock:
            self._check_trigger_locked()
            return self._state_locked()

    def come_back(self) -> None:
        """End a ``never_comes_back`` restart: RUNNING from the next request on."""
        with self._lock:
            self.never_comes_back = False
            self._starting_until = time.monotonic()

    def restart_now(self) -> None:
        """Simulate a restart the admin did by hand on the node (as the trigger file does)."""
        with self._lock:
            self._begin_restart_locked()

    # Inside.

    def _watch(self) -> None:
        while not self._stopping.wait(0.01):
            with self._lock:
                self._check_trigger_locked()

    def _check_trigger_locked(self) -> None:
        if self.trigger is None:
            return
        try:
            os.remove(self.trigger)
        except FileNotFoundError:
            return
        except OSError:
            return  # not ours to remove (should not happen as root); try again later
        self._begin_restart_locked()

    def _begin_restart_locked(self) -> None:
        now = time.monotonic()
        self.restart_log.append(Restart(requested=now))
        self._starting_until = float("inf") if self.never_comes_back else now + self.restart_delay

    def _state_locked(self) -> str:
        if self._starting_until is None:
            return self.resting_state
        if time.monotonic() < self._starting_until:
            return "STARTING"
        return self.resting_state

    def _answer_status(self) -> tuple[int, dict]:
        with self._lock:
            self.requests += 1
            self._check_trigger_locked()
            state = self._state_locked()
            if state == "RUNNING" and self.restart_log and self.restart_log[-1].running_again is None:
                self.restart_log[-1].running_again = time.monotonic()
        return (self.starting_status if state == "STARTING" else 200), {"state": state}

    def __repr__(self) -> str:
        return (f"FakeConfluence({self.name or '?'} port={self.port} restarts={self.restarts} "
                f"trigger={self.trigger})")
