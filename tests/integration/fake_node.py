"""A simulated Confluence Data Center node for the balancer tests: Confluence and Synchrony, with WebSockets.

Stdlib only, plus the lab's WebSocket handshake and frames (``wizard.lab.node``). One
``FakeNode`` runs two ``ThreadingHTTPServer``s on 127.0.0.1 (free ports), each in a
daemon thread:

* Confluence, on ``confluence_port``: ``GET <ctx>/status`` answers ``{"state":"RUNNING"}``;
  ``<ctx>/synchrony-proxy/heartbeat`` answers ``OK`` and
  ``<ctx>/synchrony-proxy/v1/bayeux-sync1`` is a WebSocket echo (Confluence's internal
  Synchrony proxy); any other path answers JSON describing the request.
* Synchrony, on ``synchrony_port``: ``GET /synchrony/heartbeat`` answers ``OK``;
  ``/synchrony/v1/bayeux-sync1`` is a WebSocket echo; any other path answers JSON.

Every answer says which node gave it: an ``X-Node`` header, and the node's name in the
body (the JSON's ``node``, ``OK`` bodies excepted; WebSocket replies are
``"<node>: <message>"``). The JSON also carries what the balancer sent (``host``,
``x_forwarded_proto``, ``path``, ``query``), so tests can check what Apache forwards.
HTTP/1.1 keep-alive is supported, as Apache reuses its backend connections.

A restart, for the rolling-restart tests: ``GET <ctx>/__restart`` on the Confluence port
(what a node's ``restart_command`` curls) answers at once, then the node answers 503
``{"state":"STARTING"}`` on every Confluence path for ``down_seconds`` (for ever with
``stay_down``), then RUNNING, and its Synchrony answers 503 until ``synchrony_lag`` seconds
later. ``synchrony_up = False`` alone is a node whose Synchrony is down while Confluence runs.
Every request the node served with a 2xx is counted in ``hits`` (``"<service> <path>"``), and
requests it got while not serving in ``refused_hits``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import ThreadingHTTPServer

from wizard.lab.serving import LabHandler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        #: The open connections, closed by ``FakeNode.stop_service``.
        self.connections: set[socket.socket] = set()

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.discard(request)
    node: FakeNode
    service: str  # "confluence" | "synchrony"


class _Handler(LabHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        node = self.server.node
        path, _, query = self.path.partition("?")
        if self.server.service in node.stopped:
            self.close_connection = True  # dropped unanswered, as by a process that died
            return
        routes = node.routes(self.server.service)
        kind = routes.get(path)
        if self.server.service == "confluence" and path == f"{node.context_path}/__restart":
            node.restart()
            self._send(200, b"restarting", "text/plain")
            return
        if not node.serving(self.server.service):
            node.count(self.server.service, path, served=False)
            body = json.dumps({"state": "STARTING"}).encode() if self.server.service == "confluence" else b"down"
            self._send(503, body, "application/json")
            return
        node.count(self.server.service, path)
        if kind == "status":
            self._send(200, json.dumps({"state": node.state}).encode(), "application/json;charset=UTF-8")
        elif kind == "heartbeat":
            self._send(200, b"OK", "text/plain")
        elif kind == "websocket" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
        else:
            body = {"node": node.name, "service": self.server.service, "path": path, "query": query,
                    "host": self.headers.get("Host"),
                    "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                    "cookie": self.headers.get("Cookie")}
            self._send(200, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("X-Node", self.server.node.name)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _websocket(self) -> None:
        # The lab's own WebSocket serving (the websockets library's protocol), echoing as the lab does.
        node = self.server.node
        node.count(self.server.service, "websocket")
        self.serve_websocket(lambda text: f"{node.name}: {text}", {"X-Node": node.name})


class FakeNode:
    """One simulated node (Confluence + Synchrony). ``start()`` it, ``stop()`` it."""

    def __init__(self, name: str, *, context_path: str = "", state: str = "RUNNING") -> None:
        self.name = name
        self.context_path = context_path.rstrip("/")
        self.state = state
        self.confluence_port = 0
        self.synchrony_port = 0
        self.hits: dict[str, int] = {}
        self.refused_hits: dict[str, int] = {}
        self.synchrony_up = True
        self.down_seconds = 1.5
        self.synchrony_lag = 1.0
        self.stay_down = False
        self.stopped: set[str] = set()
        #: When each restart began (time.monotonic()).
        self.restarts: list[float] = []
        self._lock = threading.Lock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def routes(self, service: str) -> dict[str, str]:
        if service == "synchrony":
            return {"/synchrony/heartbeat": "heartbeat", "/synchrony/v1/bayeux-sync1": "websocket"}
        ctx = self.context_path
        return {f"{ctx}/status": "status", f"{ctx}/synchrony-proxy/heartbeat": "heartbeat",
                f"{ctx}/synchrony-proxy/v1/bayeux-sync1": "websocket"}

    def count(self, service: str, path: str, served: bool = True) -> None:
        with self._lock:
            key = f"{service} {path}"
            hits = self.hits if served else self.refused_hits
            hits[key] = hits.get(key, 0) + 1

    def serving(self, service: str) -> bool:
        return self.state == "RUNNING" and (service == "confluence" or self.synchrony_up)

    def restart(self) -> None:
        """Go STARTING (Synchrony down) now, RUNNING after ``down_seconds``, Synchrony ``synchrony_lag`` later."""
        self.restarts.append(time.monotonic())
        self.state, self.synchrony_up = "STARTING", False

        def come_back() -> None:
            time.sleep(self.down_seconds)
            if self.stay_down:
                return
            self.state = "RUNNING"
            time.sleep(self.synchrony_lag)
            self.synchrony_up = True

        threading.Thread(target=come_back, name=f"fake-{self.name}-restart", daemon=True).start()

    def start(self) -> FakeNode:
        for service in ("confluence", "synchrony"):
            server = _Server(("127.0.0.1", 0), _Handler)
            server.node, server.service = self, service
            setattr(self, f"{service}_port", server.server_address[1])
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"fake-{self.name}-{service}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop_service(self, service: str) -> None:
        """Close one service's port (connections refused), the other one serving on; connections
        already open (Apache keeps its backend connections) are dropped at their next request."""
        self.stopped.add(service)
        for server in [s for s in self._servers if s.service == service]:
            server.shutdown()
            server.server_close()
            for connection in list(server.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._servers.remove(server)

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __repr__(self) -> str:
        return f"FakeNode({self.name} confluence={self.confluence_port} synchrony={self.synchrony_port})"
