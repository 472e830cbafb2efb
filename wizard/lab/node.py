"""One simulated Confluence Data Center node of the lab: Confluence and Synchrony on loopback.

Stdlib only (``http.server``), so the lab needs nothing the product does not already
depend on. A ``LabNode`` owns an install folder with the stock ``conf/server.xml`` and
``bin/setenv.sh`` and runs two HTTP servers on 127.0.0.1, each in its own thread:

* Confluence (the Connector's port): ``<ctx>/status``, the applinks manifest (reporting
  the lab's shared base URL), ``/`` redirecting the way Tomcat builds the redirect from
  the *running* Connector, ``<ctx>/index.action``, the General Configuration form that
  sets the base URL, and Confluence's internal Synchrony proxy (heartbeat and WebSocket);
* Synchrony (``-Dsynchrony.port``): ``/synchrony/heartbeat`` and the WebSocket
  ``/synchrony/v1/bayeux-sync1``, which echoes ``"<node>: <message>"``.

Every answer carries ``X-Node: <name>``. A restart is requested the way the wizard's
restart step does it on a lab node: ``touch <install>/restart-requested``. A watcher
thread sees the file, answers STARTING for ``restart_seconds``, re-reads the Connector
from server.xml (so a Connector edit takes effect only then, as on a real node) and
counts the restart. Every thread the node starts is named ``clbw-lab-...`` and joined by
``stop()``, open connections (WebSockets included) are closed, so nothing outlives it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import secrets
import shlex
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from wizard.errors import WizardError
from wizard.lab.files import server_xml, setenv_sh
from wizard.confluence.serverxml import ServerXmlError, decode_server_xml, read_facts

#: The file whose appearance restarts a node (the lab's ``restart_command`` touches it).
TRIGGER_NAME = "restart-requested"
#: Every thread of the lab starts with this, so a test (or an admin) can tell they are all gone.
THREAD_PREFIX = "clbw-lab"
#: How often the watcher looks for the restart trigger.
WATCH_SECONDS = 0.05
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEBSOCKET_PATH = "/v1/bayeux-sync1"
#: What the simulated nodes say they are (the applinks manifest).
CONFLUENCE_VERSION = "8.5.4"
CONFLUENCE_BUILD = "8804"


class LabDatabase:
    """What the nodes of a cluster share through Confluence's database: the base URL.

    Thread-safe: the nodes' request threads read it while the General Configuration
    form (or the lab) sets it.
    """

    def __init__(self, base_url: str = "", *, server_id: str = "",
                 on_change: Callable[[], None] | None = None) -> None:
        self._base_url = base_url
        self._lock = threading.Lock()
        #: The server id every node's manifest reports (one cluster, one id).
        self.server_id = server_id or "-".join(secrets.token_hex(2).upper() for _ in range(4))
        #: Called after every change of the base URL (the lab records it, so a resumed lab keeps it).
        self.on_change = on_change

    @property
    def base_url(self) -> str:
        with self._lock:
            return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        with self._lock:
            # Confluence stores the base URL without a trailing slash.
            self._base_url = value.rstrip("/")
        if self.on_change is not None:
            self.on_change()


# --------------------------------------------------------------------------- servers


class LabHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that can close every open connection when it stops.

    ``ThreadingHTTPServer.shutdown`` only stops accepting; a WebSocket or an idle
    keep-alive connection would keep its thread alive for ever. Connections are
    tracked here so ``close_all`` can shut their sockets down and join their threads.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], *, label: str, node: LabNode) -> None:
        self.label = label
        self.node = node
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the address's name; on loopback that is
        # only a delay (seconds on a machine with a slow resolver).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name=f"{self.label}-connection", daemon=True)
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # the client hung up, or close_all shut the socket: nothing to report
        finally:
            self.shutdown_request(request)
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a lab client that disconnects mid-answer is not worth a traceback on the admin's screen."""

    def close_all(self) -> None:
        """Stop accepting, close every open connection and join its thread."""
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            open_connections = list(self._connections.items())
        for _, sock in open_connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in open_connections:
            thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    """What both services share: X-Node on every answer, the WebSocket echo, quiet logs."""

    server: LabHttpServer
    protocol_version = "HTTP/1.1"
    #: An idle keep-alive connection is closed after this long (a WebSocket has no timeout).
    timeout = 60
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the wizard's screen is no place for an access log

    @property
    def node(self) -> LabNode:
        return self.server.node

    def send(self, status: int, body: bytes | str = b"", content_type: str = "text/plain;charset=UTF-8",
             headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("X-Node", self.node.name)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def path_only(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def websocket_echo(self) -> None:
        if self.headers.get("Upgrade", "").lower() != "websocket":
            # What Synchrony's Jetty answers a plain GET on its WebSocket path.
            self.send(400, 'Can "Upgrade" only to "WebSocket".')
            return
        accept_websocket(self, self.node.name)
        self.connection.settimeout(None)  # an editor's WebSocket may idle; stop() closes it
        echo_websocket(self, self.node.name)


# A minimal RFC 6455 server (the lab's nodes and the tests' simulated ones): the handshake,
# then text frames echoed with the node's name.


def accept_websocket(handler: BaseHTTPRequestHandler, node_name: str) -> None:
    """Answer a WebSocket upgrade request with ``101 Switching Protocols`` (and ``X-Node``).

    The connection is the WebSocket's from here: the handler will not read another request on it.
    """
    key = handler.headers.get("Sec-WebSocket-Key", "")
    accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("X-Node", node_name)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True


def echo_websocket(handler: BaseHTTPRequestHandler, node_name: str) -> None:
    """Echo every text or binary frame as the text ``"<node_name>: <message>"``, answer pings,
    until the client closes (or hangs up): a test can tell which node holds the WebSocket."""
    while True:
        frame = read_frame(handler.rfile)
        if frame is None:
            return
        opcode, payload = frame
        if opcode == 0x8:  # close: answer it and stop
            write_frame(handler.wfile, 0x8, payload[:2])
            return
        if opcode == 0x9:  # ping
            write_frame(handler.wfile, 0xA, payload)
        elif opcode in (0x1, 0x2):
            text = payload.decode("utf-8", "replace")
            write_frame(handler.wfile, 0x1, f"{node_name}: {text}".encode())


def read_frame(rfile: BinaryIO) -> tuple[int, bytes] | None:
    """One frame from the client: (opcode, unmasked payload); None when the connection ended mid-frame."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    masked = bool(head[1] & 0x80)
    if length == 126:
        length = struct.unpack("!H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", rfile.read(8))[0]
    mask = rfile.read(4) if masked else b"\0\0\0\0"
    data = rfile.read(length)
    if len(data) < length:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def write_frame(wfile: BinaryIO, opcode: int, payload: bytes) -> None:
    """One unfragmented, unmasked frame (a server never masks), flushed at once."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    wfile.write(head + payload)
    wfile.flush()


class SynchronyHandler(_Handler):
    """The node's Synchrony: heartbeat and the WebSocket echo."""

    def do_GET(self) -> None:
        path = self.path_only()
        if path == "/synchrony/heartbeat":
            self.send(200, "OK")
        elif path == f"/synchrony{WEBSOCKET_PATH}":
            self.websocket_echo()
        else:
            self.send(404, "Not Found")

    do_HEAD = do_GET


class ConfluenceHandler(_Handler):
    """The node's Confluence, as far as a balancer set-up can see it."""

    def do_GET(self) -> None:
        node = self.node
        ctx = node.context_path
        path = self.path_only()
        if path == f"{ctx}/status":
            self.send(200, json.dumps({"state": node.state}), "application/json;charset=UTF-8")
        elif path == f"{ctx}/synchrony-proxy/heartbeat":
            self.send(200, "OK")
        elif path == f"{ctx}/synchrony-proxy{WEBSOCKET_PATH}":
            self.websocket_echo()
        elif node.state != "RUNNING":
            # A starting Confluence answers its pages with 503 until it is up.
            self.send(503, "Confluence is starting up.", "text/plain;charset=UTF-8", {"Retry-After": "5"})
        elif path == f"{ctx}/rest/applinks/1.0/manifest":
            self.send(200, node.manifest_xml(), "application/xml;charset=UTF-8")
        elif path in ("/", f"{ctx}/", ctx or "/"):
            self.send(302, "", headers={"Location": node.root_redirect(self.headers.get("Host")),
                                        **self.session_cookie()})
        elif path == f"{ctx}/index.action":
            self.send(200, node.dashboard_html(), "text/html;charset=UTF-8", self.session_cookie())
        elif path in (f"{ctx}/admin/editgeneralconfig.action", f"{ctx}/admin/viewgeneralconfig.action"):
            self.send(200, node.general_configuration_html(), "text/html;charset=UTF-8", self.session_cookie())
        else:
            self.send(404, node.page("Page not found", f"<p>Nothing at {html.escape(path)} in the lab.</p>"),
                      "text/html;charset=UTF-8")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        node = self.node
        path = self.path_only()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if path not in (f"{node.context_path}/admin/editgeneralconfig.action",
                        f"{node.context_path}/admin/doeditgeneralconfig.action"):
            self.send(405 if path.endswith(".action") else 404, "Not allowed here.")
            return
        value = (parse_qs(body).get("baseUrl") or [""])[0].strip()
        if not value.lower().startswith(("http://", "https://")):
            # Confluence refuses a base URL that is not an http(s) URL, and keeps the old one.
            self.send(400, node.general_configuration_html(
                error=f"The Server Base URL must start with http:// or https:// (you gave {value!r})."),
                "text/html;charset=UTF-8")
            return
        node.database.base_url = value
        self.send(200, node.general_configuration_html(saved=True), "text/html;charset=UTF-8",
                  self.session_cookie())

    def session_cookie(self) -> dict[str, str]:
        """A JSESSIONID on a first visit, with the node's route as Tomcat's jvmRoute adds it."""
        if "JSESSIONID=" in (self.headers.get("Cookie") or ""):
            return {}
        session = f"{secrets.token_hex(16).upper()}.{self.node.name}"
        return {"Set-Cookie": f"JSESSIONID={session}; Path={self.node.context_path or '/'}; HttpOnly"}


# --------------------------------------------------------------------------- the node


@dataclass
class Connector:
    """The Connector attributes that shape Confluence's redirects, as loaded at a (re)start."""

    proxy_name: str | None = None
    proxy_port: int | None = None
    scheme: str | None = None
    secure: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"proxyName": self.proxy_name, "proxyPort": self.proxy_port, "scheme": self.scheme,
                "secure": self.secure}


class LabNode:
    """One simulated node. ``start()`` it, ``stop()`` it; the lab does both.

    ``confluence_port`` and ``synchrony_port`` are free ports chosen when the node first
    starts (0 until then, unless given) and kept for the node's life, so a port that was
    stopped comes back on the same number.
    """

    def __init__(self, name: str, install_dir: Path, database: LabDatabase, *, context_path: str = "",
                 confluence_port: int = 0, synchrony_port: int = 0, restart_seconds: float = 1.0,
                 thread_prefix: str = THREAD_PREFIX) -> None:
        self.name = name
        #: Names the node's threads (``<prefix>-<node>-...``), so its lab can tell its own apart.
        self.thread_prefix = thread_prefix
        self.install_dir = Path(install_dir)
        self.database = database
        self.context_path = context_path.rstrip("/")
        self.confluence_port = confluence_port
        self.synchrony_port = synchrony_port
        #: How long a restart answers STARTING.
        self.restart_seconds = restart_seconds
        #: How many restarts the node has done (through the trigger file).
        self.restarts = 0
        #: Why the last restart could not load the Connector (Confluence then stays down), or "".
        self.last_error = ""
        self._connector = Connector()
        self._confluence: LabHttpServer | None = None
        self._synchrony: LabHttpServer | None = None
        self._threads: dict[str, threading.Thread] = {}
        self._starting = False
        self._stopping = threading.Event()
        self._restarted = threading.Condition()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"LabNode({self.name} confluence={self.confluence_port} synchrony={self.synchrony_port})"

    # Files.

    @property
    def server_xml_path(self) -> Path:
        return self.install_dir / "conf" / "server.xml"

    @property
    def setenv_path(self) -> Path:
        return self.install_dir / "bin" / "setenv.sh"

    @property
    def trigger_path(self) -> Path:
        return self.install_dir / TRIGGER_NAME

    @property
    def restart_command(self) -> str:
        """What the answers give the wizard to restart this node (a plain command, so any transport runs it)."""
        return f"touch {shlex.quote(str(self.trigger_path))}"

    @property
    def url(self) -> str:
        """The node's own Confluence address (a freshly installed node's base URL)."""
        return f"http://127.0.0.1:{self.confluence_port}{self.context_path}"

    @property
    def synchrony_url(self) -> str:
        return f"http://127.0.0.1:{self.synchrony_port}/synchrony"

    def install(self) -> None:
        """Write the stock install files for the node's ports (chosen first, by ``start``)."""
        for folder in ("conf", "bin", "logs"):
            (self.install_dir / folder).mkdir(parents=True, exist_ok=True)
        self.server_xml_path.write_text(server_xml(self.confluence_port, self.context_path), encoding="utf-8")
        self.setenv_path.write_text(setenv_sh(self.synchrony_port), encoding="utf-8")
        self.setenv_path.chmod(0o755)

    # State.

    @property
    def state(self) -> str:
        """RUNNING, STARTING (a restart requested or under way) or STOPPED."""
        with self._lock:
            if self._confluence is None:
                return "STOPPED"
            # The trigger file counts at once: the restart step asks for /status right after
            # its command returns, possibly before the watcher has looked.
            if self._starting or self.trigger_path.exists():
                return "STARTING"
            return "RUNNING"

    @property
    def running_connector(self) -> dict[str, Any]:
        """The Connector attributes loaded at the last (re)start: proxyName, proxyPort, scheme, secure."""
        with self._lock:
            return self._connector.as_dict()

    def set_running_connector(self, connector: Connector) -> None:
        """Make the node run with ``connector`` whatever server.xml says (the lab's faults use it)."""
        with self._lock:
            self._connector = connector

    def load_connector(self) -> Connector:
        """The Connector on this node's port as server.xml says now; WizardError when Tomcat would not start."""
        try:
            text, _ = decode_server_xml(self.server_xml_path.read_bytes())
            facts = read_facts(text)
        except OSError as exc:
            raise WizardError(f"{self.name}: cannot read {self.server_xml_path}: {exc.strerror}.") from exc
        except ServerXmlError as exc:
            raise WizardError(f"{self.name}: {self.server_xml_path}: {exc.message}") from exc
        found = [c for c in facts.connectors if c.port == self.confluence_port]
        if not found:
            raise WizardError(f"{self.name}: {self.server_xml_path} has no active Connector on port "
                              f"{self.confluence_port}.")
        connector = found[0]
        return Connector(proxy_name=connector.proxy_name, proxy_port=connector.proxy_port,
                         scheme=connector.scheme, secure=connector.secure)

    # What the Confluence port answers.

    def root_redirect(self, host_header: str | None) -> str:
        """``Location`` of ``GET /``, built as Tomcat builds it from the running Connector."""
        with self._lock:
            connector = self._connector
        scheme = (connector.scheme or "http").lower()
        default = 443 if scheme == "https" else 80
        if connector.proxy_name:
            host = connector.proxy_name
            # Without proxyPort Tomcat reports the Connector's own port.
            port = connector.proxy_port or self.confluence_port
        else:
            host, port = _split_host(host_header or f"127.0.0.1:{self.confluence_port}", default)
        netloc = host if port == default else f"{host}:{port}"
        return f"{scheme}://{netloc}{self.context_path}/index.action"

    def manifest_xml(self) -> str:
        """The applinks manifest, with the shared base URL in ``url``."""
        base = html.escape(self.database.base_url)
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            "<manifest>"
            f"<id>{self.database.server_id}</id>"
            "<name>Confluence</name>"
            "<typeId>confluence</typeId>"
            f"<version>{CONFLUENCE_VERSION}</version>"
            f"<buildNumber>{CONFLUENCE_BUILD}</buildNumber>"
            "<applinksVersion>9.1.6</applinksVersion>"
            "<inboundAuthenticationTypes>com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"
            "</inboundAuthenticationTypes>"
            "<outboundAuthenticationTypes>com.atlassian.applinks.api.auth.types.OAuthAuthenticationProvider"
            "</outboundAuthenticationTypes>"
            "<publicSignup>false</publicSignup>"
            f"<url>{base}</url>"
            f"<iconUrl>{base}/images/logo/confluence_16.png</iconUrl>"
            f"<iconUri>{base}/images/logo/confluence_16.png</iconUri>"
            "</manifest>")

    def page(self, title: str, body: str) -> str:
        return (f"<!DOCTYPE html><html><head><title>{html.escape(title)} - Confluence lab</title></head>"
                f"<body><h1>{html.escape(title)}</h1>{body}"
                f"<p><small>Simulated Confluence node <b>{html.escape(self.name)}</b> of the "
                "confluence-lb-wizard lab.</small></p></body></html>")

    def dashboard_html(self) -> str:
        return self.page(f"Dashboard ({self.name})",
                         f"<p>You reached node <b>{html.escape(self.name)}</b>.</p>"
                         f"<p>Server Base URL: <code>{html.escape(self.database.base_url)}</code></p>"
                         f'<p><a href="{self.context_path}/admin/editgeneralconfig.action">'
                         "General Configuration</a></p>")

    def general_configuration_html(self, *, saved: bool = False, error: str = "") -> str:
        notice = "<p><b>Saved.</b> Every node now reports this base URL.</p>" if saved else ""
        if error:
            notice = f'<p style="color:#b00"><b>{html.escape(error)}</b></p>'
        return self.page(
            "General Configuration",
            notice + f'<form method="post" action="{self.context_path}/admin/editgeneralconfig.action">'
            '<label for="baseUrl">Server Base URL</label> '
            f'<input type="text" id="baseUrl" name="baseUrl" size="60" value="{html.escape(self.database.base_url)}">'
            ' <input type="submit" value="Save"></form>'
            "<p>Include the context path, if Confluence has one. Every node shares this setting.</p>")

    # Life cycle.

    def start(self, *, reinstall: bool = True) -> LabNode:
        """Servers on their ports, the install files, the Connector read from server.xml, and the
        restart watcher.

        ``reinstall`` (a new lab): stock install files for the ports, since files an earlier lab
        left in the folder name ports that are gone. Otherwise (a resumed lab, on the ports it
        had) the files are kept as the wizard left them, and the node boots with them, as a
        real node does after its machine restarts.
        """
        self._stopping.clear()
        self.install_dir.mkdir(parents=True, exist_ok=True)
        self.start_confluence()
        self.start_synchrony()
        if reinstall or not self.server_xml_path.is_file():
            self.install()
        self.trigger_path.unlink(missing_ok=True)
        self.set_running_connector(self.load_connector())
        watcher = threading.Thread(target=self._watch, name=f"{self.thread_prefix}-{self.name}-restart-watcher",
                                   daemon=True)
        self._threads["watcher"] = watcher
        watcher.start()
        return self

    def start_confluence(self) -> None:
        """Serve the Confluence port (again); idempotent."""
        with self._lock:
            if self._confluence is None:
                self._confluence = self._serve("confluence", self.confluence_port, ConfluenceHandler)
                self.confluence_port = self._confluence.port

    def stop_confluence(self) -> None:
        """Stop answering on the Confluence port (connections are refused); idempotent."""
        with self._lock:
            server, self._confluence = self._confluence, None
        self._close("confluence", server)

    def start_synchrony(self) -> None:
        """Serve the Synchrony port (again); idempotent."""
        with self._lock:
            if self._synchrony is None:
                self._synchrony = self._serve("synchrony", self.synchrony_port, SynchronyHandler)
                self.synchrony_port = self._synchrony.port

    def stop_synchrony(self) -> None:
        """Stop answering on the Synchrony port; idempotent."""
        with self._lock:
            server, self._synchrony = self._synchrony, None
        self._close("synchrony", server)

    def _serve(self, service: str, port: int, handler: type[BaseHTTPRequestHandler]) -> LabHttpServer:
        label = f"{self.thread_prefix}-{self.name}-{service}"
        try:
            server = LabHttpServer(port, handler, label=label, node=self)
        except OSError as exc:
            raise WizardError(f"The lab's {self.name} could not listen on 127.0.0.1:{port} for {service}: "
                              f"{exc.strerror}.",
                              "Another program took the port; stop the lab and start it again.") from exc
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=label,
                                  daemon=True)
        self._threads[service] = thread
        thread.start()
        return server

    def _close(self, service: str, server: LabHttpServer | None) -> None:
        if server is not None:
            server.close_all()
        thread = self._threads.pop(service, None)
        if thread is not None:
            thread.join(timeout=5)

    def restart(self, *, timeout: float = 30.0) -> None:
        """Restart the way the wizard does (the trigger file) and wait until the node is up again."""
        with self._restarted:
            before = self.restarts
            self.trigger_path.touch()
            # A restart already under way may finish first; ours is done once the trigger is gone too.
            done = self._restarted.wait_for(
                lambda: self._stopping.is_set() or (self.restarts > before and not self.trigger_path.exists()),
                timeout=timeout)
        if not done:
            raise WizardError(f"The lab's {self.name} did not restart within {timeout:.0f} s.")

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            if self.trigger_path.exists():
                self._restart_now()

    def _restart_now(self) -> None:
        with self._lock:
            self._starting = True
        self.trigger_path.unlink(missing_ok=True)
        try:
            if self._stopping.wait(self.restart_seconds):
                return  # the lab is stopping: no restart to finish
            try:
                connector = self.load_connector()
            except WizardError as exc:
                # Tomcat does not come up with a server.xml it cannot use: the port goes quiet.
                self.last_error = exc.message
                self.stop_confluence()
            else:
                self.last_error = ""
                self.set_running_connector(connector)
                self.start_confluence()  # a restart brings a stopped Confluence back too
            with self._restarted:
                self.restarts += 1
                self._restarted.notify_all()
        finally:
            with self._lock:
                self._starting = False

    def stop(self) -> None:
        """Everything down: both ports closed, every thread joined; idempotent."""
        self._stopping.set()
        with self._restarted:
            self._restarted.notify_all()
        watcher = self._threads.pop("watcher", None)
        if watcher is not None:
            watcher.join(timeout=5)
        self.stop_confluence()
        self.stop_synchrony()
        self.trigger_path.unlink(missing_ok=True)


def _split_host(host_header: str, default_port: int) -> tuple[str, int]:
    """``Host`` header -> (host, port), the port defaulting to the scheme's."""
    text = host_header.strip()
    if text.startswith("["):  # [::1]:8090
        host, _, rest = text.partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        host += "]"
    else:
        host, _, port_text = text.partition(":")
    return host, int(port_text) if port_text.isdigit() else default_port

