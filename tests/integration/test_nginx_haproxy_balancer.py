"""The balancer step, kinds nginx and haproxy, against REAL nginx 1.22 and HAProxy 2.6 in front of simulated nodes.

Each test starts its own self-contained server (the lab's: ``wizard.lab.proxies``; nginx
``-c main.conf -p ROOT``, HAProxy ``-W -f main.cfg -f sites/``) on free ports and two
simulated nodes (the lab's simulated node, wizard/lab/node.py: Confluence /status, Synchrony
heartbeat, WebSocket echoes, every answer naming its node). The nodes' install folders
hold a server.xml and a bin/setenv.sh with their ports, so the wizard reads the ports as
on a real node. Every claim is proved with real requests through the server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from wizard.answers import validate
from wizard.balancers.kind import kind_for
from wizard.balancers.served import serving_processes
from wizard.engine.runner import Outcome, Runner
from wizard.engine.state import StateStore
from wizard.engine.step import Context
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED
from wizard.lab.processes import free_port
from wizard.lab.proxies import LabHaproxy, LabNginx, LabProxy
from wizard.transport.hosts import LocalHost
from wizard.transport.pool import HostPool

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
SERVER_NAME = "wiki.example.com"
KINDS = ("nginx", "haproxy")
PROGRAMS = {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy"}


def ensure_installed(kind: str) -> str:
    """The server binary, installing the Debian package when it is missing and we may."""
    program = PROGRAMS[kind]
    if os.path.exists(program):
        return program
    if not (os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.fail(f"{kind} is not installed and cannot be installed here: apt-get install -y {kind}, then run "
                    "the tests again.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", kind]):
        subprocess.run(command, check=False, env=env, capture_output=True, timeout=600)
    if not os.path.exists(program):
        pytest.fail(f"{program} is still missing after apt-get install {kind}.")
    return program


@dataclass
class Bed:
    """A started server, simulated nodes with install folders, and the answers that tie them."""

    kind: str
    server: LabProxy
    nodes: list[Any]
    tmp: Path
    raw: dict
    http_port: int | None = None
    events: list = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.tmp / "state" / "balancer.state.json"

    @property
    def tls(self) -> bool:
        return self.raw["public_url"].startswith("https")

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server.port}"

    def runner(self) -> Runner:
        return Runner(validate(self.raw), StateStore(self.state), events=self.events.append, command="test")

    def apply(self, confirm: Callable | None = None) -> Outcome:
        with self.runner() as runner:
            return runner.apply(["balancer"], confirm=confirm or (lambda plan: True))

    def rollback(self) -> Outcome:
        with self.runner() as runner:
            return runner.rollback("balancer")

    def record(self) -> dict:
        return json.loads(self.state.read_text())["steps"]["balancer"]

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(verify=False, headers={"Host": SERVER_NAME}, timeout=10, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        with self.client(**options) as client:
            return client.get(self.base + path)

    def websocket(self, path: str = "/synchrony/v1/bayeux-sync1", message: str = "hello",
                  cookie: str | None = None) -> str:
        extra: dict[str, Any] = {"ssl": insecure()} if self.tls else {}
        headers = {"Cookie": cookie} if cookie else None
        scheme = "wss" if self.tls else "ws"
        with connect(f"{scheme}://127.0.0.1:{self.server.port}{path}", open_timeout=20,
                     additional_headers=headers, **extra) as socket:
            socket.send(message)
            return str(socket.recv(timeout=10))

    def processes(self) -> frozenset[int]:
        return serving_processes(LocalHost(), str(self.server.pid_file))

    def serves_old_config(self) -> bool:
        try:
            with self.client() as client:
                answer = client.get(f"http://127.0.0.1:{self.server.port}/status")
        except httpx.HTTPError:
            return False
        return (answer.status_code == 200 and answer.headers.get("x-node") == "node1"
                and "ROUTEID" not in answer.headers.get("set-cookie", ""))

    def old_config(self) -> bytes:
        """What an admin had before: one node, no balancer, no stickiness (their own file)."""
        port, node = self.server.port, self.nodes[0].confluence_port
        if self.kind == "nginx":
            return (f"server {{\n    listen {port};\n    server_name {SERVER_NAME};\n"
                    f"    location / {{ proxy_pass http://127.0.0.1:{node}; }}\n}}\n").encode()
        return (f"frontend old\n    mode http\n    bind :{port}\n    default_backend old\n\n"
                f"backend old\n    mode http\n    server n1 127.0.0.1:{node}\n").encode()

    def start_on_old_config(self) -> bytes:
        """Start the server (made with ``start=False``) on ``old_config`` at config_path; those bytes."""
        old = self.old_config()
        self.server.sites_dir.mkdir(parents=True, exist_ok=True)
        self.server.config_path.write_bytes(old)
        self.server.start()
        return old

    def broken_file(self) -> Path:
        """A colleague's file of the same folder that the server's test refuses."""
        if self.kind == "nginx":
            path = self.server.sites_dir / "zz-colleague.conf"
            path.write_text("this_is_not_a_directive on;\n")
        else:
            path = self.server.sites_dir / "zz-colleague.cfg"
            path.write_text("frontend colleague\n    this-is-not-a-keyword on\n")
        return path


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def self_signed(folder: Path, name: str = SERVER_NAME) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def make_bed(tmp_path: Path, lab_node_factory) -> Any:
    started: list[LabProxy] = []

    def make(kind: str, *, tls: bool = False, context: str = "", mode: str = "direct", start: bool = True,
             **options: Any) -> Bed:
        binary = ensure_installed(kind)
        server = (LabNginx if kind == "nginx" else LabHaproxy)(tmp_path / kind, binary=binary)
        started.append(server)
        nodes, raw_nodes = [], []
        stock = (FIXTURES / ("context-path-wiki.xml" if context == "/wiki" else "confluence-7-stock.xml")).read_text()
        for index in (1, 2):
            node = lab_node_factory(f"node{index}", context_path=context, echo_pages=True)
            install = tmp_path / node.name
            (install / "conf").mkdir(parents=True)
            (install / "bin").mkdir()
            (install / "conf" / "server.xml").write_text(
                stock.replace('port="8090"', f'port="{node.confluence_port}"'))
            (install / "bin" / "setenv.sh").write_text(
                f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n')
            nodes.append(node)
            raw_nodes.append({"name": node.name, "address": "127.0.0.1", "install_dir": str(install),
                              "confluence_port": node.confluence_port, "access": {"transport": "local"}})
        section: dict[str, Any] = {
            "access": {"transport": "local"}, "config_path": str(server.config_path), "server_name": SERVER_NAME,
            "listen_port": server.port, "configtest_command": server.configtest_command,
            "reload_command": server.reload_command}
        if kind == "haproxy":
            section["admin_socket"] = str(server.admin_socket)
        http_port = None
        if tls:
            cert, key = self_signed(tmp_path / "tls")
            if kind == "haproxy":
                pem = tmp_path / "tls" / f"{SERVER_NAME}.pem"  # one PEM: certificate and key
                pem.write_bytes(cert.read_bytes() + key.read_bytes())
                section["tls"] = {"certificate_file": str(pem), "key_file": str(pem)}
            else:
                section["tls"] = {"certificate_file": str(cert), "key_file": str(key)}
            http_port = free_port()
            section["http_port"] = http_port
        section.update(options)
        raw = {"version": 1, "name": "proxy-lab",
               "public_url": f"{'https' if tls else 'http'}://{SERVER_NAME}{context}",
               "synchrony": {"mode": mode}, "nodes": raw_nodes, "balancer": {"kind": kind, kind: section}}
        bed = Bed(kind, server, nodes, tmp_path, raw, http_port)
        if start:
            server.start()
        return bed

    yield make
    for server in started:
        server.stop()


def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --------------------------------------------------------------------------- the happy paths


@pytest.mark.parametrize("kind", KINDS)
def test_apply_serves_confluence_and_synchrony_and_a_second_apply_changes_nothing(make_bed, kind: str) -> None:
    bed = make_bed(kind)
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert outcome.checks and all(check.passed for check in outcome.checks), outcome.checks
    text = bed.server.config_path.read_text()
    assert text.startswith("# Managed by confluence-lb-wizard for the setup proxy-lab.")
    for node in bed.nodes:  # the ports were read from server.xml and setenv.sh
        assert f"127.0.0.1:{node.confluence_port}" in text and f"127.0.0.1:{node.synchrony_port}" in text

    status = bed.get("/status")
    assert status.status_code == 200 and status.json() == {"state": "RUNNING"}
    heartbeat = bed.get("/synchrony/heartbeat")
    assert heartbeat.status_code == 200 and heartbeat.text == "OK"
    page = bed.get("/display/DOC/Home?focusedCommentId=1").json()
    assert page["service"] == "confluence" and page["host"] == SERVER_NAME
    assert page["x_forwarded_proto"] == "http" and page["query"] == "focusedCommentId=1"
    assert re.fullmatch(r"node[12]: hello", bed.websocket())
    record = bed.record()
    assert record["status"] == "verified"
    assert [c["kind"] for c in record["changes"]] == ["reload-pending", "file", "reload", "reloaded"]
    assert [u["kind"] for u in record["undo"]] == [f"{kind}-reload", "remove-file"]

    written, processes = bed.server.config_path.read_bytes(), bed.processes()
    mtime = bed.server.config_path.stat().st_mtime_ns
    again = bed.apply()
    assert again.exit_status == EXIT_OK and all(check.passed for check in again.checks), again.checks
    assert bed.server.config_path.read_bytes() == written
    assert bed.server.config_path.stat().st_mtime_ns == mtime
    assert bed.processes() == processes  # not reloaded
    plan = bed.record()["plan"]
    assert plan["changes"] == [] and "already holds what the wizard would write" in plan["noop_reason"]


@pytest.mark.parametrize("kind", KINDS)
def test_sticky_sessions_keep_a_user_and_their_synchrony_on_one_node(make_bed, kind: str) -> None:
    bed = make_bed(kind)
    assert bed.apply().exit_status == EXIT_OK
    seen = set()
    for _ in range(10):  # without cookies both nodes are used
        with bed.client() as fresh:
            seen.add(fresh.get(bed.base + "/status").headers["x-node"])
    assert seen == {"node1", "node2"}
    with bed.client() as browser:  # a cookie jar
        first = browser.get(bed.base + "/status")
        route = browser.cookies.get("ROUTEID")
        assert route in ("node1", "node2") and first.headers["x-node"] == route
        assert {browser.get(bed.base + "/status").headers["x-node"] for _ in range(20)} == {route}
        assert {browser.get(bed.base + "/synchrony/heartbeat").headers["x-node"] for _ in range(5)} == {route}
    # The session's Synchrony WebSocket runs on its Confluence node, whichever that is.
    for node in ("node1", "node2"):
        assert bed.websocket(message="edit", cookie=f"ROUTEID={node}") == f"{node}: edit"
    cookie = bed.get("/status").headers["set-cookie"]
    assert "ROUTEID=" in cookie and "HttpOnly" in cookie and "Secure" not in cookie


@pytest.mark.parametrize("kind", KINDS)
def test_tls_and_the_301_to_https_keeping_path_and_query(make_bed, kind: str) -> None:
    bed = make_bed(kind, tls=True)
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert any("redirects to HTTPS" in check.name and check.passed for check in outcome.checks), outcome.checks
    status = bed.get("/status")
    assert status.status_code == 200 and status.json()["state"] == "RUNNING"
    assert "Secure" in status.headers["set-cookie"] and "ROUTEID=node" in status.headers["set-cookie"]
    assert bed.get("/anything").json()["x_forwarded_proto"] == "https"
    assert re.fullmatch(r"node[12]: over tls", bed.websocket(message="over tls"))
    with bed.client() as client:
        moved = client.get(f"http://127.0.0.1:{bed.http_port}/display/DOC/Page+One?a=1&b=%2F")
    assert moved.status_code == 301
    assert moved.headers["location"] == f"https://{SERVER_NAME}/display/DOC/Page+One?a=1&b=%2F"


@pytest.mark.parametrize("kind", KINDS)
def test_internal_proxy_mode_under_a_context_path(make_bed, kind: str) -> None:
    bed = make_bed(kind, context="/wiki", mode="internal-proxy")
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert bed.get("/wiki/status").json() == {"state": "RUNNING"}
    assert bed.get("/wiki/synchrony-proxy/heartbeat").text == "OK"
    assert re.fullmatch(r"node[12]: proxied", bed.websocket("/wiki/synchrony-proxy/v1/bayeux-sync1", "proxied"))
    root = bed.get("/")
    assert root.status_code == 302 and root.headers["location"].endswith("/wiki/")


@pytest.mark.parametrize("kind", KINDS)
def test_a_synchrony_failover_never_moves_the_confluence_session(make_bed, kind: str) -> None:
    """Direct mode: a user's Synchrony requests go to the node their ROUTEID names; when that node's Synchrony
    is down (its Confluence up, as right after a restart) another node's Synchrony answers, and the answer
    sets no cookie: ROUTEID still names the user's node, and their next page stays on it (their session and
    the XSRF token with it)."""
    from wizard.confluence.checks import SYNCHRONY_KEEPS_SESSION

    bed = make_bed(kind)
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK
    (check,) = [c for c in outcome.checks if c.name == SYNCHRONY_KEEPS_SESSION]  # verify's proof of it
    assert check.passed and check.seen == "a Synchrony failover leaves ROUTEID alone", check
    with bed.client() as browser:
        browser.cookies.set("ROUTEID", "node1")
        synchrony = [browser.get(bed.base + "/synchrony/heartbeat") for _ in range(3)]
        assert {answer.headers["x-node"] for answer in synchrony} == {"node1"}  # Synchrony follows the node
        bed.nodes[0].stop_synchrony()
        for _ in range(4):
            answer = browser.get(bed.base + "/synchrony/heartbeat")
            assert (answer.status_code, answer.headers["x-node"]) == (200, "node2")
            assert "ROUTEID" not in answer.headers.get("set-cookie", ""), answer.headers
        assert browser.cookies.get("ROUTEID") == "node1"
        assert {browser.get(bed.base + "/display/X").headers["x-node"] for _ in range(4)} == {"node1"}
        assert bed.websocket(cookie="ROUTEID=node1").startswith("node2: ")


# --------------------------------------------------------------------------- failures leave the server serving


@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_config_is_refused_and_the_old_one_keeps_serving(make_bed, kind: str) -> None:
    bed = make_bed(kind, start=False)
    old = bed.start_on_old_config()
    assert eventually(bed.serves_old_config)
    processes = bed.processes()
    broken: list[Path] = []

    def confirm(plan) -> bool:
        broken.append(bed.broken_file())  # a colleague saves a broken file between the plan and the apply
        return True

    outcome = bed.apply(confirm)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "NOT reloaded" in outcome.message and "zz-colleague" in outcome.message, outcome.message
    assert bed.server.config_path.read_bytes() == old
    assert bed.processes() == processes and bed.serves_old_config()
    record = bed.record()
    assert record["status"] == "failed" and not any(c.get("kind") == "reload" for c in record["changes"])
    broken[0].unlink()


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_puts_back_the_old_file_byte_for_byte_and_it_serves(make_bed, kind: str) -> None:
    bed = make_bed(kind, start=False)
    old = bed.start_on_old_config()
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert "replace a file the wizard did not write" in bed.record()["plan"]["changes"][0]["summary"]
    assert "ROUTEID" in bed.get("/status").headers.get("set-cookie", "")
    rolled = bed.rollback()
    assert rolled.exit_status == EXIT_OK, rolled.message
    assert bed.server.config_path.read_bytes() == old
    assert eventually(bed.serves_old_config)
    record = bed.record()
    assert record["status"] == "rolled-back" and all(entry["undone"] for entry in record["undo"])


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_of_a_created_file_removes_it(make_bed, kind: str) -> None:
    bed = make_bed(kind)
    assert bed.apply().exit_status == EXIT_OK
    assert bed.rollback().exit_status == EXIT_OK
    assert not bed.server.config_path.exists()
    assert eventually(lambda: httpx.get(f"http://127.0.0.1:{bed.server.spare_port}/").status_code == 200)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_the_server_does_not_load_is_refused_before_anything_changes(make_bed, kind: str) -> None:
    bed = make_bed(kind)
    elsewhere = bed.tmp / "elsewhere" / f"confluence-lb{bed.server.suffix}"
    elsewhere.parent.mkdir()
    bed.raw["balancer"][kind]["config_path"] = str(elsewhere)
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert f"would not read {elsewhere}" in outcome.message, outcome.message
    assert not elsewhere.exists()


# --------------------------------------------------------------------------- HAProxy only


def test_haproxy_stats_page_only_for_stats_allow(make_bed) -> None:
    bed = make_bed("haproxy", stats_allow=["127.0.0.1"])
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    page = bed.get("/haproxy-stats")
    assert page.status_code == 200 and "Statistics Report" in page.text and "x-node" not in page.headers
    # Without stats_allow there is no stats page anywhere.
    del bed.raw["balancer"]["haproxy"]["stats_allow"]
    assert bed.apply().exit_status == EXIT_OK
    assert "stats enable" not in bed.server.config_path.read_text()
    closed = bed.get("/haproxy-stats")
    assert "Statistics Report" not in closed.text and closed.headers.get("x-node") in ("node1", "node2")


def test_haproxy_drains_and_readies_a_node_through_the_runtime_api(make_bed) -> None:
    bed = make_bed("haproxy")
    assert bed.apply().exit_status == EXIT_OK
    answers = validate(bed.raw)
    step = kind_for(answers)
    with HostPool(answers) as hosts:
        ctx = Context(answers, hosts)
        step.drain(ctx, ctx.answers.node("node1"))
        states = step.states(ctx)  # type: ignore[attr-defined]
        assert {state.split()[0] for (_, server), state in states.items() if server == "node1"} == {"MAINT"}, states
        newcomers = set()
        for _ in range(8):
            with bed.client() as fresh:
                newcomers.add(fresh.get(bed.base + "/status").headers["x-node"])
        assert newcomers == {"node2"}
        # A user whose cookie names the drained node goes elsewhere too (maintenance, not drain: the node
        # is about to restart, and a user sent to it then would get its 503 STARTING answers).
        with bed.client() as old_user:
            old_user.cookies.set("ROUTEID", "node1")
            assert {old_user.get(bed.base + "/status").headers["x-node"] for _ in range(4)} == {"node2"}
        step.undrain(ctx, ctx.answers.node("node1"))
        assert all(state.startswith("UP") for state in step.states(ctx).values())  # type: ignore[attr-defined]
    seen = set()
    for _ in range(8):
        with bed.client() as fresh:
            seen.add(fresh.get(bed.base + "/status").headers["x-node"])
    assert seen == {"node1", "node2"}


@pytest.mark.parametrize("kind", KINDS)
def test_preflight_finds_the_program_its_version_and_features(make_bed, kind: str) -> None:
    bed = make_bed(kind, tls=True)
    bed.raw["restart"] = "manual"  # the simulated nodes have no restart command; preflight looks for one
    with bed.runner() as runner:
        outcome = runner.apply(["preflight"], confirm=lambda plan: True)
    balancer = {check.name: check for check in outcome.checks if check.target == "balancer"}
    assert outcome.exit_status == EXIT_OK, outcome.message
    product = "nginx" if kind == "nginx" else "HAProxy"
    assert balancer[f"{product} version"].passed and ("1.22" in balancer[f"{product} version"].seen
                                                      or "2.6" in balancer[f"{product} version"].seen)
    assert any("TLS" in name and check.passed for name, check in balancer.items()), balancer
    bed.raw["balancer"][kind]["configtest_command"] = f"/nonexistent/{kind} -t"
    with bed.runner() as runner:
        refused = runner.apply(["preflight"], confirm=lambda plan: True)
    assert refused.exit_status != EXIT_OK
    assert any(c.name == f"{kind} program" and not c.passed for c in refused.checks), refused.checks


# --------------------------------------------------------------------------- a rolling restart without a drain


def test_a_balancer_that_cannot_drain_is_planned_no_drain_and_the_roll_still_goes_one_node_at_a_time(
        make_bed, monkeypatch: pytest.MonkeyPatch) -> None:
    """A balancer that cannot drain a node (every kind the wizard writes can: here HAProxy is told it
    cannot, as a kind without a drain would say): the restart plans "no drain" up front (why, what users
    see, how to get drains), records and attempts no drain, and still restarts one node at a time, each
    waited for until RUNNING and its Synchrony answers, behind a real HAProxy. (The drains themselves:
    test_file_drain.py and the runtime API test above.)"""
    from wizard.balancers.haproxy.step import HaproxyBalancerStep
    from wizard.balancers.kind import DrainSupport

    kind = "haproxy"
    monkeypatch.setattr(HaproxyBalancerStep, "drain_support", lambda self, answers: DrainSupport(
        False, "this balancer cannot drain a node here", "put a balancer that drains in front"))

    def no_drain(self, ctx, node):  # type: ignore[no-untyped-def]
        raise AssertionError("a balancer that cannot drain was asked to drain")

    monkeypatch.setattr(HaproxyBalancerStep, "drain", no_drain)
    monkeypatch.setattr(HaproxyBalancerStep, "undrain", no_drain)
    from wizard.steps import restart as restart_module
    from wizard.steps.restart import RestartStep

    monkeypatch.setattr(restart_module, "POLL_SECONDS", 0.1)
    bed = make_bed(kind)
    bed.raw["balancer"][kind].pop("admin_socket", None)
    bed.raw["restart_drain"], bed.raw["restart_timeout"] = 1, 20
    for raw, node in zip(bed.raw["nodes"], bed.nodes):
        raw["restart_command"] = node.restart_command
        node.synchrony_lag_seconds = 0.6  # the roll must wait for it before the next node
    assert bed.apply().exit_status == EXIT_OK
    answers = validate(bed.raw)
    assert kind_for(answers).drain_support(answers).can_drain is False

    plans = []
    with bed.runner() as runner:
        outcome = runner.run_step(RestartStep(), confirm=lambda plan: plans.append(plan) or True)
    assert outcome.exit_status == EXIT_OK, outcome.message
    (plan,) = plans
    assert "NO DRAIN" in plan.summary and "requests fail" in plan.summary, plan.summary
    assert all(change.summary.startswith("NO DRAIN") and not change.details.drain for change in plan.changes)
    assert "this balancer cannot drain a node here" in plan.summary and \
        "To drain instead: put a balancer that drains in front" in plan.summary, plan.summary
    record = json.loads(bed.state.read_text())["steps"]["restart"]
    assert [(c["kind"], c["target"]) for c in record["changes"]] == [("restart", "node1"), ("restart", "node2")]
    first, second = (node.restart_log for node in bed.nodes)
    assert len(first) == len(second) == 1
    # One at a time: node2 was asked to restart only after node1 answered RUNNING and its
    # Synchrony was back (it comes back synchrony_lag_seconds after RUNNING).
    assert first[0].running_again is not None
    assert second[0].requested >= first[0].running_again + 0.6, (first, second)
    assert bed.get("/status").status_code == 200


# --------------------------------------------------------------------------- a standalone Synchrony cluster


@pytest.mark.parametrize("kind", KINDS)
def test_standalone_synchrony_cluster_is_served_from_its_machines_and_never_moves_routeid(
        make_bed, lab_node_factory, kind: str) -> None:
    """synchrony.mode standalone: /synchrony (heartbeat, HTTP, the WebSocket) reaches the cluster's
    machines, never the nodes' own Synchrony (stopped here, so only the machines can answer); a
    Synchrony answer sets no ROUTEID and a page request keeps its node; verify's through-the-balancer
    checks pass; a second apply changes nothing; rollback puts the admin's file back byte for byte."""
    bed = make_bed(kind, start=False)
    machines = [lab_node_factory(f"sync{i}", echo_pages=True) for i in (1, 2)]
    bed.raw["synchrony"] = {"mode": "standalone", "nodes": [
        {"name": "sync1", "address": "127.0.0.1", "port": machines[0].synchrony_port},
        {"name": "sync2", "address": "localhost", "port": machines[1].synchrony_port}]}
    for node in bed.nodes:
        node.stop_synchrony()
    old = bed.start_on_old_config()
    assert eventually(bed.serves_old_config)

    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, (outcome.message, [c for c in outcome.checks if not c.passed])
    assert outcome.checks and all(check.passed for check in outcome.checks), outcome.checks
    assert any(c.name.endswith("(/synchrony/heartbeat)") for c in outcome.checks), outcome.checks
    assert any(c.name.endswith("(/synchrony/v1/bayeux-sync1)") for c in outcome.checks), outcome.checks
    text = bed.server.config_path.read_text()
    for node in bed.nodes:  # no route to a node's Synchrony port
        assert f":{node.synchrony_port}" not in text

    heartbeats = [bed.get("/synchrony/heartbeat") for _ in range(6)]
    assert {answer.text for answer in heartbeats} == {"OK"}
    assert {answer.headers["x-node"] for answer in heartbeats} == {"sync1", "sync2"}
    assert all("set-cookie" not in answer.headers for answer in heartbeats)
    assert re.fullmatch(r"sync[12]: hello", bed.websocket())
    assert re.fullmatch(r"sync[12]: edit", bed.websocket(message="edit", cookie="ROUTEID=node1"))
    assert not any(key.startswith("synchrony") for node in bed.nodes for key in node.hits)
    assert any(key.startswith("synchrony") for machine in machines for key in machine.hits)

    with bed.client() as browser:  # a cookie jar
        first = browser.get(bed.base + "/status")
        route = browser.cookies.get("ROUTEID")
        assert route in ("node1", "node2") and first.headers["x-node"] == route
        for _ in range(4):
            synchrony = browser.get(bed.base + "/synchrony/heartbeat")
            assert synchrony.headers["x-node"] in ("sync1", "sync2") and "set-cookie" not in synchrony.headers
            assert browser.cookies.get("ROUTEID") == route
        assert {browser.get(bed.base + "/status").headers["x-node"] for _ in range(10)} == {route}
    # A Synchrony request whose ROUTEID names no node is not "corrected" either.
    with bed.client() as stale:
        stale.cookies.set("ROUTEID", "gone")
        answer = stale.get(bed.base + "/synchrony/heartbeat")
        assert answer.headers["x-node"] in ("sync1", "sync2") and "set-cookie" not in answer.headers

    if kind == "haproxy":
        # Active checks see the machines on their heartbeat; a node's drain leaves them serving.
        answers = validate(bed.raw)
        step = kind_for(answers)
        with HostPool(answers) as hosts:
            ctx = Context(answers, hosts)
            states = step.states(ctx)  # type: ignore[attr-defined]
            assert {key for key in states if key[0] == "clbw-proxy-lab-synchrony"} == {
                ("clbw-proxy-lab-synchrony", "sync1"), ("clbw-proxy-lab-synchrony", "sync2")}, states
            step.drain(ctx, ctx.answers.node("node1"))
            states = step.states(ctx)  # type: ignore[attr-defined]
            assert states[("clbw-proxy-lab-confluence", "node1")].startswith("MAINT"), states
            assert all(states[("clbw-proxy-lab-synchrony", m)].startswith("UP") for m in ("sync1", "sync2")), states
            assert {bed.get("/synchrony/heartbeat").headers["x-node"] for _ in range(6)} == {"sync1", "sync2"}
            step.undrain(ctx, ctx.answers.node("node1"))
            assert all(state.startswith("UP") for state in step.states(ctx).values())  # type: ignore[attr-defined]

    written, processes = bed.server.config_path.read_bytes(), bed.processes()
    mtime = bed.server.config_path.stat().st_mtime_ns
    again = bed.apply()
    assert again.exit_status == EXIT_OK and all(check.passed for check in again.checks), again.checks
    assert bed.server.config_path.read_bytes() == written
    assert bed.server.config_path.stat().st_mtime_ns == mtime
    assert bed.processes() == processes  # not reloaded
    assert bed.record()["plan"]["changes"] == []

    rolled = bed.rollback()
    assert rolled.exit_status == EXIT_OK, rolled.message
    assert bed.server.config_path.read_bytes() == old
    assert eventually(bed.serves_old_config)
