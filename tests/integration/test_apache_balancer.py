"""The balancer step, kind apache, against a REAL Apache 2.4 in front of simulated nodes.

Each test starts its own self-contained Apache (tests/integration/apache.py) on free
ports of 127.0.0.1 and two simulated nodes (the lab's ``LabNode``: Confluence /status,
Synchrony /synchrony/heartbeat, WebSocket echoes, pages that echo the request, every
answer naming its node). The nodes' install folders hold a server.xml whose Connector is
on the simulated node's port and a bin/setenv.sh with its Synchrony port, so the wizard reads the ports
as it would on a real node. The wizard reaches Apache locally (one test over a real
sshd) with ``configtest_command``/``reload_command`` carrying ``-f MAIN.conf``.

Most tests drive ``wizard.engine.runner.Runner``; a few run the installed command as an admin
would (``apply --answers F --only balancer --yes``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from wizard.answers import validate
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED
from wizard.engine.runner import Outcome, Runner
from wizard.engine.state import StateStore
from wizard.balancers.apache import vhost as apache_vhost
from wizard.balancers.apache import reload as apache_reload

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "confluence-lb-wizard"
SERVER_NAME = "wiki.example.com"


@pytest.fixture(autouse=True)
def _quick_settle(monkeypatch):
    """A graceful reload takes milliseconds here; the default settle time is for real servers."""
    monkeypatch.setattr(apache_reload, "RELOAD_SETTLE_SECONDS", 0.2)
    monkeypatch.setattr(apache_reload, "RESTART_SECONDS", 2.0)


@dataclass
class Lab:
    """A started Apache, simulated nodes with install folders, and the answers that tie them."""

    apache: Any  # ApacheServer
    nodes: list[Any]  # wizard.lab.node.LabNode
    tmp: Path
    raw: dict
    events: list = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.tmp / "state" / "balancer.state.json"

    @property
    def tls(self) -> bool:
        return self.raw["public_url"].startswith("https")

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.apache.port}"

    @property
    def ws_base(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.apache.port}"

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
        return httpx.Client(verify=False, headers={"Host": SERVER_NAME}, timeout=5, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        with self.client(**options) as client:
            return client.get(self.base + path)

    def websocket(self, path: str = "/synchrony/v1/bayeux-sync1", message: str = "hello") -> str:
        extra = {"ssl": insecure()} if self.tls else {}
        # Generous: right after a graceful reload on a loaded 2-core machine a TLS handshake
        # to a fresh Apache child can take seconds; the assertion is the echo, not the speed.
        with connect(self.ws_base + path, open_timeout=20, **extra) as socket:
            socket.send(message)
            return str(socket.recv(timeout=5))

    def reloads(self) -> int:
        return self.apache.error_log().count("SIGUSR1 received")


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def make_lab(tmp: Path, apache_factory, lab_node_factory, *, tls: bool = False, context: str = "",
             mode: str = "direct", count: int = 2, start: bool = True, **apache_options: Any) -> Lab:
    apache = apache_factory(start=False)
    nodes, raw_nodes = [], []
    stock = (FIXTURES / ("context-path-wiki.xml" if context == "/wiki" else "confluence-7-stock.xml")).read_text()
    for index in range(1, count + 1):
        install = tmp / f"node{index}"
        node = lab_node_factory(f"node{index}", install, context_path=context, echo_pages=True)
        (install / "conf").mkdir(parents=True)
        (install / "bin").mkdir()
        (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{node.confluence_port}"'))
        (install / "bin" / "setenv.sh").write_text(
            f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n')
        nodes.append(node)
        raw_nodes.append({"name": node.name, "address": "127.0.0.1", "install_dir": str(install),
                          "confluence_port": node.confluence_port, "access": {"transport": "local"}})
    options: dict[str, Any] = {"access": {"transport": "local"}, "config_path": str(apache.config_path),
                               "server_name": SERVER_NAME, "listen_port": apache.port,
                               "configtest_command": apache.configtest_command,
                               "reload_command": apache.reload_command}
    if tls:
        cert, key = apache.self_signed(SERVER_NAME)
        options["tls"] = {"certificate_file": str(cert), "key_file": str(key)}
    options.update(apache_options)
    raw = {"version": 1, "name": "apache-lab", "public_url": f"{'https' if tls else 'http'}://{SERVER_NAME}{context}",
           "synchrony": {"mode": mode}, "nodes": raw_nodes, "balancer": {"kind": "apache", "apache": options}}
    lab = Lab(apache, nodes, tmp, raw)
    if start:
        apache.start()
    return lab


@pytest.fixture
def lab(tmp_path, apache_factory, lab_node_factory) -> Lab:
    return make_lab(tmp_path, apache_factory, lab_node_factory)


def old_config(lab: Lab) -> bytes:
    """What an admin had before: one node, no balancer, no stickiness (their own file)."""
    node = lab.nodes[0]
    modules = "".join(f"<IfModule !{m}_module>\n    LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
                      f"</IfModule>\n" for m in ("authz_core", "proxy", "proxy_http"))
    return (f"{modules}<VirtualHost *:{lab.apache.port}>\n    ServerName {SERVER_NAME}\n"
            f"    ProxyPass / http://127.0.0.1:{node.confluence_port}/\n</VirtualHost>\n").encode()


def serves_old_config(lab: Lab) -> bool:
    try:
        with lab.client() as client:  # the old file serves plain HTTP, even in a TLS lab
            answer = client.get(f"http://127.0.0.1:{lab.apache.port}/status")
    except httpx.HTTPError:
        return False
    return (answer.status_code == 200 and answer.headers.get("x-node") == "node1"
            and "ROUTEID" not in answer.headers.get("set-cookie", ""))


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --------------------------------------------------------------------------- the happy paths


def test_apply_configures_apache_for_confluence_and_synchrony(lab: Lab) -> None:
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    names = {check.name: check for check in outcome.checks}
    assert all(check.passed for check in outcome.checks), outcome.checks
    assert all(check.target == "balancer" for check in outcome.checks)
    assert any("heartbeat" in name for name in names) and any("WebSocket" in name for name in names)
    text = lab.apache.config_path.read_text()
    assert text.startswith("# Managed by confluence-lb-wizard for the setup apache-lab.")
    for node in lab.nodes:  # the ports were read from server.xml and setenv.sh
        assert f"http://127.0.0.1:{node.confluence_port}\" route={node.name}" in text
        assert f"http://127.0.0.1:{node.synchrony_port}\" route={node.name}" in text

    status = lab.get("/status")
    assert status.status_code == 200 and status.json() == {"state": "RUNNING"}
    heartbeat = lab.get("/synchrony/heartbeat")
    assert heartbeat.status_code == 200 and heartbeat.text == "OK"
    page = lab.get("/display/DOC/Home?focusedCommentId=1")
    forwarded = page.json()
    assert forwarded["service"] == "confluence" and forwarded["host"] == SERVER_NAME
    assert forwarded["x_forwarded_proto"] == "http" and forwarded["query"] == "focusedCommentId=1"
    assert re.fullmatch(r"node[12]: hello", lab.websocket())

    record = lab.record()
    assert record["status"] == "verified"
    kinds = [change["kind"] for change in record["changes"]]
    assert kinds == ["reload-pending", "file", "reload", "reloaded"]
    assert [entry["kind"] for entry in record["undo"]] == ["apache-reload", "remove-file"]
    assert record["plan"]["changes"][0]["diff"].count("+") > 20


def test_sticky_sessions_hold_a_user_to_one_node_for_confluence_and_synchrony(lab: Lab) -> None:
    assert lab.apply().exit_status == EXIT_OK
    # Without the cookie the balancer spreads the requests. (byrequests evens out the number
    # of requests per node, sticky ones included, so this comes before the sticky ones.)
    seen = set()
    for _ in range(10):
        with lab.client() as fresh:
            seen.add(fresh.get(lab.base + "/status").headers["x-node"])
    assert seen == {"node1", "node2"}
    with lab.client() as client:  # a browser: keeps its cookies
        first = client.get(lab.base + "/status")
        route = client.cookies.get("ROUTEID")
        assert route in (".node1", ".node2") and first.headers["x-node"] == route[1:]
        landed = {client.get(lab.base + "/status").headers["x-node"] for _ in range(20)}
        assert landed == {route[1:]}
        synchrony = {client.get(lab.base + "/synchrony/heartbeat").headers["x-node"] for _ in range(5)}
        # Synchrony sticks to one node through its own cookie, scoped to /synchrony (it may be
        # another node than the Confluence session's: Synchrony's nodes form one cluster).
        sync_route = client.cookies.get("SYNCROUTEID")
        assert sync_route in (".node1", ".node2") and synchrony == {sync_route[1:]}
        assert client.cookies.get("ROUTEID") == route
    cookie = lab.get("/status").headers["set-cookie"]
    assert "path=/" in cookie and "HttpOnly" in cookie and "Secure" not in cookie


def test_tls_with_a_self_signed_certificate_and_the_redirect_to_https(tmp_path, apache_factory,
                                                                      lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, tls=True)
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert any("redirects to HTTPS" in check.name and check.passed for check in outcome.checks)
    status = lab.get("/status")
    assert status.status_code == 200 and status.json()["state"] == "RUNNING"
    assert "Secure" in status.headers["set-cookie"] and "ROUTEID=.node" in status.headers["set-cookie"]
    assert lab.get("/anything").json()["x_forwarded_proto"] == "https"
    assert lab.get("/synchrony/heartbeat").text == "OK"
    assert re.fullmatch(r"node[12]: over tls", lab.websocket(message="over tls"))
    with lab.client() as client:
        moved = client.get(f"http://127.0.0.1:{lab.apache.extra_port}/display/DOC/Page+One?a=1&b=%2F")
    assert moved.status_code == 301
    assert moved.headers["location"] == f"https://{SERVER_NAME}/display/DOC/Page+One?a=1&b=%2F"


def test_the_balancer_manager_is_refused_and_never_proxied(lab: Lab) -> None:
    assert lab.apply().exit_status == EXIT_OK
    refused = lab.get("/balancer-manager")
    assert refused.status_code == 403 and "x-node" not in refused.headers
    assert not any("balancer-manager" in key for node in lab.nodes for key in node.hits)


def test_manager_allow_opens_the_manager_to_those_addresses_only(tmp_path, apache_factory,
                                                                 lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, manager_allow=["127.0.0.1"])
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    page = lab.get("/balancer-manager")
    assert page.status_code == 200 and "Load Balancer Manager" in page.text and "x-node" not in page.headers
    assert "Require ip 127.0.0.1" in lab.apache.config_path.read_text()


def test_a_second_apply_changes_nothing_and_does_not_reload(lab: Lab) -> None:
    assert lab.apply().exit_status == EXIT_OK
    written = lab.apache.config_path.stat().st_mtime_ns
    reloads = lab.reloads()
    again = lab.apply()
    assert again.exit_status == EXIT_OK and all(check.passed for check in again.checks)
    assert lab.apache.config_path.stat().st_mtime_ns == written
    assert lab.reloads() == reloads
    plan = lab.record()["plan"]
    assert plan["changes"] == [] and "already holds what the wizard would write" in plan["noop_reason"]


def test_older_apache_gets_the_rewrite_style_and_websockets_still_work(lab: Lab, monkeypatch) -> None:
    # Pretend 2.4.71 predates upgrade=websocket: the seed's rewrite to ws:// members is used.
    monkeypatch.setattr(apache_vhost, "UPGRADE_PARAMETER_VERSION", (2, 5, 0))
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    text = lab.apache.config_path.read_text()
    assert "ws://127.0.0.1:" in text and "upgrade=websocket" not in text
    assert re.fullmatch(r"node[12]: rewritten", lab.websocket(message="rewritten"))


def test_internal_proxy_mode_under_a_context_path(tmp_path, apache_factory, lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, context="/wiki", mode="internal-proxy")
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    text = lab.apache.config_path.read_text()
    assert "synchrony-http" not in text and ":8091" not in text
    assert lab.get("/wiki/status").json() == {"state": "RUNNING"}
    assert lab.get("/wiki/synchrony-proxy/heartbeat").text == "OK"
    assert re.fullmatch(r"node[12]: proxied", lab.websocket("/wiki/synchrony-proxy/v1/bayeux-sync1", "proxied"))
    root = lab.get("/")
    assert root.status_code == 302 and root.headers["location"].endswith("/wiki/")


# --------------------------------------------------------------------------- failures leave Apache serving


def test_a_failed_config_test_is_rolled_back_and_the_old_config_keeps_serving(tmp_path, apache_factory,
                                                                              lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, start=False)
    old = old_config(lab)
    lab.apache.config_path.write_bytes(old)
    lab.apache.start()
    assert serves_old_config(lab)
    reloads = lab.reloads()
    broken = lab.apache.sites / "zz-colleague.conf"

    def confirm(plan) -> bool:
        # A colleague saves a broken file between the plan and the apply.
        broken.write_text("<VirtualHost *:8999>\n    ThisIsNotADirective on\n</VirtualHost>\n")
        return True

    outcome = lab.apply(confirm)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "NOT reloaded" in outcome.message and "ThisIsNotADirective" in outcome.message
    assert "zz-colleague.conf" in outcome.message  # Apache's own lines name the file
    assert lab.apache.config_path.read_bytes() == old
    assert lab.reloads() == reloads and serves_old_config(lab)
    record = lab.record()
    assert record["status"] == "failed"
    assert any("Put back" in undone for undone in record["error"]["undone"])
    assert not any(change.get("kind") == "reload" for change in record["changes"])


def test_a_reload_that_kills_apache_is_rolled_back_and_apache_serves_again(tmp_path, apache_factory,
                                                                           lab_node_factory, monkeypatch) -> None:
    """A certificate Apache cannot load passes `apache2 -t` and ends the server on the reload. The wizard
    checks certificates with openssl first; with that check out of the way, the safety net must hold."""
    from wizard.balancers.apache import facts as apache_module
    from wizard.balancers.apache.facts import TlsFacts

    monkeypatch.setattr(apache_module, "read_tls_facts", lambda host, options: TlsFacts(note="skipped"))
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, tls=True, start=False)
    old = old_config(lab)
    lab.apache.config_path.write_bytes(old)
    Path(lab.raw["balancer"]["apache"]["tls"]["certificate_file"]).write_text("not a certificate\n")
    lab.apache.start()
    assert serves_old_config(lab)
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED, outcome.message
    assert "Apache stopped after the reload" in outcome.message
    assert lab.apache.config_path.read_bytes() == old
    assert eventually(lambda: serves_old_config(lab)), lab.apache.error_log()[-2000:]


def test_proxy_error_override_elsewhere_is_refused_naming_file_and_line(lab: Lab) -> None:
    other = lab.apache.sites / "intranet.conf"
    other.write_text("<IfModule !proxy_module>\n    LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so\n"
                     "</IfModule>\n<VirtualHost *:8998>\n    ServerName intranet.example.com\n"
                     "    ProxyErrorOverride On\n</VirtualHost>\n")
    reloads = lab.reloads()
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert f"{other}:6" in outcome.message and "ProxyErrorOverride Off" in outcome.message
    assert not lab.apache.config_path.exists() and lab.reloads() == reloads


def test_a_rival_vhost_for_the_same_name_is_refused(lab: Lab) -> None:
    rival = lab.apache.sites / "old-wiki.conf"
    rival.write_text(f"<VirtualHost *:{lab.apache.port}>\n    ServerName {SERVER_NAME}\n</VirtualHost>\n")
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert f"{rival}:1" in outcome.message and "config_path" in outcome.message
    assert not lab.apache.config_path.exists()


def test_rollback_restores_the_previous_file_and_apache_serves_it(tmp_path, apache_factory,
                                                                   lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, start=False)
    old = old_config(lab)
    lab.apache.config_path.write_bytes(old)
    lab.apache.start()
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert "replace a file the wizard did not write" in lab.record()["plan"]["changes"][0]["summary"]
    assert "ROUTEID" in lab.get("/status").headers.get("set-cookie", "")
    rolled = lab.rollback()
    assert rolled.exit_status == EXIT_OK, rolled.message
    assert lab.apache.config_path.read_bytes() == old
    assert eventually(lambda: serves_old_config(lab))
    record = lab.record()
    assert record["status"] == "rolled-back" and all(entry["undone"] for entry in record["undo"])


def test_an_apache_setup_whose_answers_moved_to_an_alb_still_rolls_back_its_vhost(tmp_path, apache_factory,
                                                                                  lab_node_factory) -> None:
    # Undo records are undone with the answers they were made with, never today's: an admin who
    # moves the setup to an ALB can still take the Apache vhost back, byte for byte.
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, start=False)
    old = old_config(lab)
    lab.apache.config_path.write_bytes(old)
    lab.apache.start()
    assert lab.apply().exit_status == EXIT_OK
    assert lab.apache.config_path.read_bytes() != old
    moved = dict(lab.raw, balancer={"kind": "alb", "alb": {
        "name": "moved", "region": "eu-west-1", "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0a", "subnet-0b"]}})
    with Runner(validate(moved), StateStore(lab.state), command="test") as runner:
        rolled = runner.rollback("balancer")
    assert rolled.exit_status == EXIT_OK, rolled.message
    assert lab.apache.config_path.read_bytes() == old
    assert eventually(lambda: serves_old_config(lab))
    assert json.loads(lab.state.read_text())["answers"]["balancer"]["kind"] == "alb"


# --------------------------------------------------------------------------- as an admin runs it


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg-state")}
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_installed_command_applies_verifies_and_rolls_back(lab: Lab) -> None:
    answers = lab.tmp / "answers.yaml"
    answers.write_text(yaml.safe_dump(lab.raw))
    state = lab.tmp / "cli.state.json"
    applied = run_cli("apply", "--answers", str(answers), "--state", str(state), "--only", "balancer", "--yes",
                      cwd=lab.tmp)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "+    ProxyPreserveHost On" in applied.stdout  # the plan's diff was shown
    assert "PASS" in applied.stdout and "FAIL" not in applied.stdout
    assert lab.get("/synchrony/heartbeat").text == "OK"
    status = json.loads(run_cli("status", "--state", str(state), "--json", cwd=lab.tmp).stdout)
    assert [(s["name"], s["status"]) for s in status["steps"] if s["name"] == "balancer"] == [("balancer", "verified")]
    verified = run_cli("verify", "--state", str(state), "--json", cwd=lab.tmp)
    checks = [c for c in json.loads(verified.stdout)["checks"] if c["target"] == "balancer"]
    assert checks and all(c["passed"] for c in checks)
    again = run_cli("apply", "--answers", str(answers), "--state", str(state), "--only", "balancer", "--yes",
                    cwd=lab.tmp)
    assert again.returncode == 0 and "already holds what the wizard would write" in again.stdout
    rolled = run_cli("rollback", "balancer", "--state", str(state), "--yes", cwd=lab.tmp)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert not lab.apache.config_path.exists() and lab.apache.answers()


def test_an_apply_killed_before_the_reload_is_finished_by_the_next_apply(tmp_path, apache_factory,
                                                                        lab_node_factory) -> None:
    """kill -9 after the vhost is written and before Apache is reloaded: the file is already as
    planned, yet the next apply must test and reload, not report "nothing to change"."""
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, start=False)
    old = old_config(lab)
    lab.apache.config_path.write_bytes(old)
    lab.apache.start()
    assert serves_old_config(lab)
    block, reached = tmp_path / "block-reload", tmp_path / "reload-reached"
    # While `block` exists the reload command stops before reloading, for the test to kill the run there.
    lab.raw["balancer"]["apache"]["reload_command"] = (
        f"if [ -e {block} ]; then touch {reached}; sleep 60; fi; {lab.apache.reload_command}")
    answers = lab.tmp / "answers.yaml"
    answers.write_text(yaml.safe_dump(lab.raw))
    state = lab.tmp / "killed.state.json"
    command = ["apply", "--answers", str(answers), "--state", str(state), "--only", "balancer", "--yes"]
    block.touch()
    # This checkout's wizard (the installed command may be another checkout's).
    wizard = [sys.executable, "-m", "wizard"]
    env = {**os.environ, "XDG_STATE_HOME": str(lab.tmp / "xdg-state"), "PYTHONPATH": str(REPO)}

    def run_here(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*wizard, *args], cwd=lab.tmp, capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    # Its own process group, so the kill takes the reload command's shell and sleep with it.
    run = subprocess.Popen([*wizard, *command], cwd=lab.tmp, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert eventually(reached.exists, within=60), "the apply never reached the reload"
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
    block.unlink()
    written = lab.apache.config_path.read_bytes()
    assert written != old and b"ProxyPreserveHost On" in written  # written, never reloaded
    assert serves_old_config(lab)
    reloads = lab.reloads()

    resumed = run_here(*command)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "stopped before Apache was reloaded" in resumed.stdout
    assert lab.apache.config_path.read_bytes() == written
    assert lab.reloads() > reloads
    assert "ROUTEID" in lab.get("/status").headers.get("set-cookie", "")
    record = json.loads(state.read_text())["steps"]["balancer"]
    assert record["status"] == "verified"
    kinds = [change["kind"] for change in record["changes"]]
    assert kinds[0] == "reload-pending" and kinds[-2:] == ["reload", "reloaded"]
    # The interrupted apply's undo is the one kept: a rollback still puts the old file back.
    assert [entry["kind"] for entry in record["undo"]].count("apache-reload") == 1
    rolled = run_here("rollback", "balancer", "--state", str(state), "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert lab.apache.config_path.read_bytes() == old
    assert eventually(lambda: serves_old_config(lab))

    # Once finished, nothing is pending any more.
    again = run_here(*command)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stopped before Apache was reloaded" not in again.stdout


def test_the_installed_command_refuses_a_broken_apache_before_changing_anything(lab: Lab) -> None:
    (lab.apache.sites / "aa-broken.conf").write_text("NotADirective at all\n")
    answers = lab.tmp / "answers.yaml"
    answers.write_text(yaml.safe_dump(lab.raw))
    done = run_cli("apply", "--answers", str(answers), "--state", str(lab.tmp / "s.json"), "--only", "balancer",
                   "--yes", cwd=lab.tmp)
    assert done.returncode == 1
    assert "aa-broken.conf" in done.stdout + done.stderr and "NotADirective" in done.stdout + done.stderr
    assert not lab.apache.config_path.exists() and lab.apache.answers()


def test_plan_shows_the_diffs_but_no_secret(lab: Lab) -> None:
    """A server.xml with keystorePass and a vhost with AuthLDAPBindPassword: `plan` prints
    both files' diffs, and neither secret."""
    keystore_secret, ldap_secret = "ks-S3cret-91", "ldap-S3cret-92"
    for node in lab.nodes:
        server_xml = lab.tmp / node.name / "conf" / "server.xml"
        text = server_xml.read_text()
        # On the Connector the plan edits, so its lines are in the diff the plan prints.
        edited = text.replace('enableLookups="false" acceptCount="10" URIEncoding="UTF-8"\n',
                              'enableLookups="false" acceptCount="10" URIEncoding="UTF-8"\n'
                              f'                   keystorePass="{keystore_secret}"\n', 1)
        assert edited != text
        server_xml.write_text(edited)
    # The admin's own vhost, which the plan replaces: its lines are the diff's "-" side.
    lab.apache.config_path.write_text(
        f"<VirtualHost *:{lab.apache.port}>\n    ServerName {SERVER_NAME}\n"
        "    <IfModule authnz_ldap_module>\n"
        "        AuthLDAPURL ldap://ldap.example.com/dc=example,dc=com?uid\n"
        f"        AuthLDAPBindPassword {ldap_secret}\n"
        "    </IfModule>\n"
        "    <IfModule headers_module>\n"
        f'        RequestHeader set Authorization "Basic {ldap_secret}"\n'
        "    </IfModule>\n"
        "</VirtualHost>\n")
    answers = lab.tmp / "answers.yaml"
    answers.write_text(yaml.safe_dump(lab.raw))
    state = lab.tmp / "plan.state.json"
    planned = run_cli("plan", "--answers", str(answers), "--state", str(state), "--only", "connector", "balancer",
                      cwd=lab.tmp)
    shown = planned.stdout + planned.stderr
    assert planned.returncode == 0, shown
    # The diffs were shown (else this proves nothing), with the secrets masked.
    assert "proxyName=" in shown and "AuthLDAPBindPassword" in shown, shown
    assert keystore_secret not in shown and ldap_secret not in shown, shown
    assert 'keystorePass="********"' in shown and "AuthLDAPBindPassword ********" in shown, shown
    assert not state.exists()


# --------------------------------------------------------------------------- over SSH


def test_the_balancer_host_over_ssh(tmp_path, apache_factory, lab_node_factory, ssh_testbed, sshd,
                                    isolated_ssh_client) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, tls=True)
    lab.raw["balancer"]["apache"]["access"] = {
        "transport": "ssh", "host": "127.0.0.1", "port": sshd.port, "user": ssh_testbed.login_user,
        "key_file": str(ssh_testbed.client_key), "known_hosts": str(ssh_testbed.known_hosts(sshd))}
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert all(check.passed for check in outcome.checks), outcome.checks
    assert lab.apache.config_path.read_text().startswith("# Managed by confluence-lb-wizard")
    assert re.fullmatch(r"node[12]: via ssh", lab.websocket(message="via ssh"))
    again = lab.apply()
    assert again.exit_status == EXIT_OK and lab.record()["plan"]["changes"] == []
    assert lab.rollback().exit_status == EXIT_OK and not lab.apache.config_path.exists()
