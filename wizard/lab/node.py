"""One simulated Confluence Data Center node of the lab: Confluence and Synchrony on loopback.

A ``LabNode`` owns an install folder with the stock ``conf/server.xml`` and
``bin/setenv.sh`` and serves two ports on 127.0.0.1 (``wizard.lab.serving``: HTTP on the
standard library's server, WebSockets on ``websockets``), each in its own thread:

* Confluence (the Connector's port): ``<ctx>/status``, the applinks manifest (reporting
  the lab's shared base URL), ``/`` redirecting the way Tomcat builds the redirect from
  the *running* Connector, ``<ctx>/index.action``, the General Configuration form that
  sets the base URL, and Confluence's internal Synchrony proxy (heartbeat and WebSocket);
* Synchrony (``-Dsynchrony.port``): ``/synchrony/heartbeat`` and the WebSocket
  ``/synchrony/v1/bayeux-sync1``, which echoes ``"<node>: <message>"``.

Every answer carries ``X-Node: <name>``. A restart is requested the way the wizard's
restart step does it on a lab node: ``touch <install>/restart-requested``. A watcher
thread sees the file and plays the restart as a real node goes through it: the old
Confluence winds down (``stopping_seconds``, answering STARTING), then nothing listens
on either port (``down_seconds``: connections refused), then Confluence answers 503
``{"state":"STARTING"}`` (``restart_seconds``) with the Connector re-read from
server.xml (so a Connector edit takes effect only then), then 200 RUNNING; Synchrony's
heartbeat comes back ``synchrony_lag_seconds`` after that. Every thread the node starts
is named ``clbw-lab-...`` and joined by ``stop()``, open connections (WebSockets
included) are closed, so nothing outlives it.

The tests build on the same class, with knobs for what they need: an install folder the
test writes itself (``managed_files=False``), pages that echo what the balancer forwarded
(``echo_pages``), a node that never comes back from a restart, a resting state other than
RUNNING (FIRST_RUN...), slow answers (``answer_delay``), a node without Synchrony, one
service stopped on its own (``stop_synchrony``, ``stop_confluence``), a Synchrony whose
heartbeat fails while its port is open (``synchrony_healthy``), a node held in
STARTING without a restart (``hold_starting``), the requests a node turned away while it
was not up (``unavailable_hits``), and a restart that leaves open WebSockets open
(``restart_keeps_websockets``).
"""

from __future__ import annotations

import html
import json
import secrets
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from wizard.confluence.serverxml import ServerXmlError, decode_server_xml, read_facts
from wizard.errors import WizardError
from wizard.lab.files import server_xml, setenv_sh
from wizard.lab.serving import LabHandler, LabHttpServer

#: The file whose appearance restarts a node (the lab's ``restart_command`` touches it).
TRIGGER_NAME = "restart-requested"
#: Every thread of the lab starts with this, so a test (or an admin) can tell they are all gone.
THREAD_PREFIX = "clbw-lab"
#: How often the watcher looks for the restart trigger.
WATCH_SECONDS = 0.05
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


# --------------------------------------------------------------------------- what the ports answer


class _NodeHandler(LabHandler):
    """What both services share: X-Node on every answer, the hit count, the echo, the WebSocket echo."""

    #: "confluence" or "synchrony" (the keys of ``LabNode.hits``).
    service = ""

    @property
    def node(self) -> LabNode:
        node: LabNode = self.server.owner
        return node

    def begin(self) -> str:
        """The request's path, once counted and delayed as the node's knobs say."""
        path = self.path_only()
        self.node.note_request(self.service, path)
        return path

    def send(self, status: int, body: bytes | str = b"", content_type: str = "text/plain;charset=UTF-8",
             headers: dict[str, str] | None = None) -> None:
        self.answer(status, body, content_type, {"X-Node": self.node.name, **(headers or {})})

    def unavailable(self, path: str, body: str, status: int = 503, content_type: str = "text/plain;charset=UTF-8",
                    retry_after: bool = True) -> None:
        """Turn the request away (the service is not up to serve it), counted in ``unavailable_hits``."""
        self.node.note_unavailable(self.service, path)
        self.send(status, body, content_type, {"Retry-After": "5"} if retry_after else None)

    def echo(self, received: int | None = None) -> None:
        """200 with JSON describing the request: what the balancer forwarded, for a test to look at.

        ``/clbw-slow?SECONDS`` answers ``late`` after that long (a balancer's read timeout is
        tested with it); a POST says how many bytes of body arrived."""
        path, _, query = self.path.partition("?")
        if path == "/clbw-slow":
            try:
                delay = min(float(query or 0), 60.0)
            except ValueError:
                delay = 0.0
            self.node._stopping.wait(delay)
            self.send(200, "late", "text/plain")
            return
        body: dict[str, str | int | None] = {"node": self.node.name, "service": self.service, "path": path,
                                             "query": query,
                "host": self.headers.get("Host"), "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                "x_forwarded_for": self.headers.get("X-Forwarded-For"), "cookie": self.headers.get("Cookie")}
        if received is not None:
            body["received"] = received
        self.send(200, json.dumps(body), "application/json")

    def websocket_echo(self) -> None:
        if not self.wants_websocket():
            # What Synchrony's Jetty answers a plain GET on its WebSocket path.
            self.send(400, 'Can "Upgrade" only to "WebSocket".')
            return
        name = self.node.name
        self.node.note_request(self.service, "websocket")
        self.serve_websocket(lambda text: f"{name}: {text}", {"X-Node": name})


class SynchronyHandler(_NodeHandler):
    """The node's Synchrony: heartbeat and the WebSocket echo."""

    service = "synchrony"

    def do_GET(self) -> None:
        path = self.begin()
        if path == "/synchrony/heartbeat":
            if self.node.synchrony_healthy:
                self.send(200, "OK")
            else:
                self.unavailable(path, "Synchrony is not healthy.")
        elif path == f"/synchrony{WEBSOCKET_PATH}":
            self.websocket_echo()
        elif self.node.echo_pages:
            self.echo()
        else:
            self.send(404, "Not Found")

    do_HEAD = do_GET


class ConfluenceHandler(_NodeHandler):
    """The node's Confluence, as far as a balancer set-up can see it."""

    service = "confluence"

    def do_GET(self) -> None:
        node = self.node
        ctx = node.context_path
        path = self.begin()
        state = node.state
        if path == f"{ctx}/status":
            answer = json.dumps({"state": state})
            if state in (node.resting_state, "RUNNING"):
                self.send(200, answer, "application/json;charset=UTF-8")
            else:
                self.unavailable(path, answer, node.starting_status, "application/json;charset=UTF-8",
                                 retry_after=False)
        elif path.startswith(f"{ctx}/synchrony-proxy/") and not (node.synchrony_up and node.synchrony_healthy):
            # Confluence's proxy has no working Synchrony behind it (stopped, not back yet after a
            # restart, or failing).
            self.unavailable(path, "Synchrony is not running.")
        elif path == f"{ctx}/synchrony-proxy/heartbeat":
            self.send(200, "OK")
        elif path == f"{ctx}/synchrony-proxy{WEBSOCKET_PATH}":
            self.websocket_echo()
        elif state != "RUNNING":
            # A starting Confluence answers its pages with 503 until it is up.
            self.unavailable(path, "Confluence is starting up.")
        elif node.echo_pages:
            self.echo()
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
        path = self.begin()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if node.echo_pages and "generalconfig" not in path:
            self.echo(received=length)
            return
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


@dataclass
class Restart:
    """One restart the node went through: monotonic times of the trigger and of RUNNING again."""

    requested: float
    #: When Confluence answered RUNNING again (None: not yet, or it never did).
    running_again: float | None = None
    #: Over: up again with Synchrony, given up (server.xml unusable), or cut short by ``stop()``.
    finished: bool = False


class Phase(Enum):
    """Where a node is in its life: up (or stopped by hand), or one of the stages of a restart."""

    UP = "up"
    STOPPING = "stopping"
    DOWN = "down"
    STARTING = "starting"


class LabNode:
    """One simulated node. ``start()`` it, ``stop()`` it; the lab (or a test's fixture) does both.

    ``confluence_port`` and ``synchrony_port`` are free ports chosen when the node first
    starts (0 until then, unless given) and kept for the node's life, so a port that was
    stopped comes back on the same number.

    ``managed_files`` (the lab): ``start`` writes the stock install files and every (re)start
    loads the Connector from server.xml. False (a test that writes the install folder
    itself): the node writes nothing there but reads the trigger, and keeps the Connector
    it was given (``set_running_connector``). The other knobs are attributes a test may also
    change on a running node.
    """

    def __init__(self, name: str, install_dir: Path, database: LabDatabase | None = None, *,
                 context_path: str = "", confluence_port: int = 0, synchrony_port: int = 0,
                 thread_prefix: str = THREAD_PREFIX, managed_files: bool = True,
                 stopping_seconds: float = 0.1, down_seconds: float = 0.3, restart_seconds: float = 0.6,
                 synchrony_lag_seconds: float = 0.3, starting_status: int = 503,
                 never_comes_back: bool = False, resting_state: str = "RUNNING", synchrony_runs: bool = True,
                 answer_delay: float = 0.0, echo_pages: bool = False,
                 restart_keeps_websockets: bool = False, synchrony_healthy: bool = True) -> None:
        self.name = name
        #: Names the node's threads (``<prefix>-<node>-...``), so its lab can tell its own apart.
        self.thread_prefix = thread_prefix
        self.install_dir = Path(install_dir)
        self.database = database if database is not None else LabDatabase()
        self.context_path = context_path.rstrip("/")
        self.confluence_port = confluence_port
        self.synchrony_port = synchrony_port
        self.managed_files = managed_files
        #: A restart: how long the old Confluence winds down (still answering, STARTING) ...
        self.stopping_seconds = stopping_seconds
        #: ... then how long nothing listens (connections refused) ...
        self.down_seconds = down_seconds
        #: ... then how long the new one answers STARTING before RUNNING ...
        self.restart_seconds = restart_seconds
        #: ... and how much later than RUNNING Synchrony's heartbeat comes back.
        self.synchrony_lag_seconds = synchrony_lag_seconds
        #: The HTTP status of a STARTING ``/status`` answer.
        self.starting_status = starting_status
        #: A restart stays STARTING until ``come_back()``.
        self.never_comes_back = never_comes_back
        #: What ``/status`` says when the node is up (FIRST_RUN: a node that was never set up).
        self.resting_state = resting_state
        #: Whether (re)starts bring Synchrony up (False: its port refuses connections).
        self.synchrony_runs = synchrony_runs
        #: False: Synchrony's port stays open but its heartbeat answers 503 (a Synchrony that runs
        #: but fails), so only a balancer's health check takes it out, not a refused connection.
        self.synchrony_healthy = synchrony_healthy
        #: Seconds every answer waits first (a slow or overloaded node).
        self.answer_delay = answer_delay
        #: Pages (anything but /status, the heartbeats and the WebSockets) answer JSON describing the request.
        self.echo_pages = echo_pages
        #: A restart closes the ports but leaves the WebSockets already open going (they end at
        #: ``stop()``). A real restart ends them too; a benchmark that measures what a balancer's
        #: drain prevents leaves out what no drain can prevent.
        self.restart_keeps_websockets = restart_keeps_websockets
        #: Requests seen, by ``"<service> <path>"`` (``"<service> websocket"`` for an accepted WebSocket).
        self.hits: Counter[str] = Counter()
        #: The part of ``hits`` turned away because the service was not up to serve them: /status
        #: saying STARTING, a page answered 503 while Confluence starts, Confluence's Synchrony
        #: proxy with no Synchrony behind it. (A port that is closed refuses connections: those
        #: never reach the node and are not counted anywhere.)
        self.unavailable_hits: Counter[str] = Counter()
        #: Every restart the node went through (or is going through), oldest first.
        self.restart_log: list[Restart] = []
        #: Why the last restart could not load the Connector (Confluence then stays down), or "".
        self.last_error = ""
        self._connector = Connector()
        self._confluence: LabHttpServer | None = None
        self._synchrony: LabHttpServer | None = None
        #: Servers whose port a restart closed while their WebSockets went on (``restart_keeps_websockets``).
        self._lingering: list[LabHttpServer] = []
        #: ``hold_starting`` is in force.
        self._held_starting = False
        self._threads: dict[str, threading.Thread] = {}
        self._phase = Phase.UP
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
        """What ``/status`` says: ``resting_state`` (RUNNING), STARTING (a restart requested or under
        way) or STOPPED (Confluence not served, e.g. after a restart that could not load server.xml)."""
        with self._lock:
            if self._phase is not Phase.UP or self._held_starting:
                return "STARTING"
            if self._confluence is None:
                return "STOPPED"
            # The trigger file counts at once: the restart step asks for /status right after
            # its command returns, possibly before the watcher has looked.
            if self.trigger_path.exists():
                return "STARTING"
            return self.resting_state

    @property
    def synchrony_up(self) -> bool:
        """Whether Synchrony is served (its heartbeat answers)."""
        with self._lock:
            return self._synchrony is not None

    @property
    def restarts(self) -> int:
        """How many restarts the node has begun (through the trigger file), finished or not."""
        with self._restarted:
            return len(self.restart_log)

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

    def note_unavailable(self, service: str, path: str) -> None:
        """Count a request the node turned away (``unavailable_hits``)."""
        with self._lock:
            self.unavailable_hits[f"{service} {path}"] += 1

    def note_request(self, service: str, path: str) -> None:
        """Count a request (``hits``) and make it wait ``answer_delay``."""
        with self._lock:
            self.hits[f"{service} {path}"] += 1
        if self.answer_delay > 0:
            self._stopping.wait(self.answer_delay)

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
        real node does after its machine restarts. Without ``managed_files`` no file is written.
        """
        self._stopping.clear()
        self.install_dir.mkdir(parents=True, exist_ok=True)
        self.start_confluence()
        self.start_synchrony()  # its port is chosen (and kept) even when Synchrony is not to run
        if self.managed_files:
            if reinstall or not self.server_xml_path.is_file():
                self.install()
            self.trigger_path.unlink(missing_ok=True)
            self.set_running_connector(self.load_connector())
        if not self.synchrony_runs:
            self.stop_synchrony()
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

    def stop_confluence(self, *, keep_websockets: bool = False) -> None:
        """Stop answering on the Confluence port (connections are refused), and close the open
        connections (``keep_websockets``: all but the WebSockets); idempotent."""
        with self._lock:
            server, self._confluence = self._confluence, None
        self._close("confluence", server, keep_websockets=keep_websockets)

    def start_synchrony(self) -> None:
        """Serve the Synchrony port (again); idempotent."""
        with self._lock:
            if self._synchrony is None:
                self._synchrony = self._serve("synchrony", self.synchrony_port, SynchronyHandler)
                self.synchrony_port = self._synchrony.port

    def stop_synchrony(self, *, keep_websockets: bool = False) -> None:
        """Stop answering on the Synchrony port (connections are refused), as a Synchrony that
        died or was stopped on its own while Confluence runs; closes the open connections
        (``keep_websockets``: all but the WebSockets); idempotent."""
        with self._lock:
            server, self._synchrony = self._synchrony, None
        self._close("synchrony", server, keep_websockets=keep_websockets)

    def _serve(self, service: str, port: int, handler: type[LabHandler]) -> LabHttpServer:
        label = f"{self.thread_prefix}-{self.name}-{service}"
        try:
            server = LabHttpServer(port, handler, label=label, owner=self)
        except OSError as exc:
            raise WizardError(f"The lab's {self.name} could not listen on 127.0.0.1:{port} for {service}: "
                              f"{exc.strerror}.",
                              "Another program took the port; stop the lab and start it again.") from exc
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=label,
                                  daemon=True)
        self._threads[service] = thread
        thread.start()
        return server

    def _close(self, service: str, server: LabHttpServer | None, *, keep_websockets: bool = False) -> None:
        if server is not None:
            server.close_all(except_websockets=keep_websockets)
            if keep_websockets and server.open_websockets:
                with self._lock:
                    self._lingering.append(server)
        thread = self._threads.pop(service, None)
        if thread is not None:
            thread.join(timeout=5)

    def restart(self, *, timeout: float = 30.0) -> None:
        """Restart the way the wizard does (the trigger file) and wait until the node is up again,
        Synchrony included (or the restart gave up: see ``last_error``)."""
        with self._restarted:
            before = len(self.restart_log)
            self.trigger_path.touch()
            # A restart already under way may finish first; ours is done once the trigger is gone too.
            done = self._restarted.wait_for(
                lambda: self._stopping.is_set() or (len(self.restart_log) > before and self.restart_log[-1].finished
                                                    and not self.trigger_path.exists()),
                timeout=timeout)
        if not done:
            raise WizardError(f"The lab's {self.name} did not restart within {timeout:.0f} s.")

    def hold_starting(self) -> None:
        """Answer as a Confluence that is still starting, without a restart (the ports stay open):
        /status says STARTING (``starting_status``), pages answer 503, and Synchrony is stopped
        (Confluence starts it once RUNNING), until ``come_back()``."""
        with self._lock:
            self._held_starting = True
        self.stop_synchrony()

    def come_back(self) -> None:
        """End ``never_comes_back`` (a restart waiting in STARTING goes on to RUNNING) and
        ``hold_starting`` (RUNNING at once, Synchrony with it)."""
        self.never_comes_back = False
        with self._lock:
            held, self._held_starting = self._held_starting, False
        if held and self.synchrony_runs:
            self.start_synchrony()

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            if self.trigger_path.exists():
                self._restart_now()

    def _restart_now(self) -> None:
        record = Restart(requested=time.monotonic())
        with self._restarted:
            self.restart_log.append(record)
        self._set_phase(Phase.STOPPING)
        self.trigger_path.unlink(missing_ok=True)
        try:
            self._go_through_restart(record)
        finally:
            self._set_phase(Phase.UP)
            with self._restarted:
                record.finished = True
                self._restarted.notify_all()

    def _go_through_restart(self, record: Restart) -> None:
        """The stages of a restart; each wait ends early when the node is stopped."""
        if self._stopping.wait(self.stopping_seconds):
            return
        self._set_phase(Phase.DOWN)
        keep = self.restart_keeps_websockets
        self.stop_confluence(keep_websockets=keep)
        self.stop_synchrony(keep_websockets=keep)  # Confluence starts and stops its Synchrony
        if self._stopping.wait(self.down_seconds):
            return
        if self.managed_files:
            try:
                connector = self.load_connector()
            except WizardError as exc:
                # Tomcat does not come up with a server.xml it cannot use: the ports stay quiet.
                self.last_error = exc.message
                return
            self.set_running_connector(connector)
        self.last_error = ""
        self._set_phase(Phase.STARTING)
        self.start_confluence()  # a restart brings a stopped Confluence back too
        if self._stopping.wait(self.restart_seconds):
            return
        while self.never_comes_back:
            if self._stopping.wait(WATCH_SECONDS):
                return
        self._set_phase(Phase.UP)
        record.running_again = time.monotonic()
        if self._stopping.wait(self.synchrony_lag_seconds):
            return
        if self.synchrony_runs:
            self.start_synchrony()

    def _set_phase(self, phase: Phase) -> None:
        with self._lock:
            self._phase = phase

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
        with self._lock:
            lingering, self._lingering = self._lingering, []
        for server in lingering:
            server.close_all()
        if self.managed_files:
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

