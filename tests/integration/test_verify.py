"""The final tests against the built-in lab (wizard/lab/cluster.py): a real Apache httpd in front of
simulated nodes, set up by the wizard itself. A healthy lab passes every check; each failure
mode of docs/reference.md ("What verify checks"), injected on purpose, makes exactly the right check fail, and nothing else.

One lab serves the module (set up once with every step, as ``apply --yes`` does); each fault
test injects one fault, verifies, and heals the lab. The base-url tests use state files of
their own, so their failures never leak into the lab's state.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wizard.confluence import checks
from wizard.answers import validate
from wizard.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_STEP_FAILED
from wizard.engine.events import ProgressReported
from wizard.lab.cluster import WRONG_BASE_URL, Lab
from wizard.engine.model import BALANCER
from wizard.confluence.probes import Endpoint
from wizard.engine.runner import Outcome, Runner
from wizard.engine.state import StateStore
from wizard.balancers.apache import checks as apache_checks
from wizard.steps import base_url

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent / "confluence-lb-wizard"

# The check each fault must fail, and every check that fails with it (by name prefix and target).
APACHE_STATUS = "Confluence /status RUNNING through the balancer, with a ROUTEID cookie"
MANAGER = "/balancer-manager closed"
WEBSOCKET = "WebSocket upgrade through the balancer"
FAULTS = {
    "node-down": {("node RUNNING", "node1")},
    "synchrony-down": {(checks.NODE_SYNCHRONY, "node1")},
    "wrong-base-url": {(checks.BASE_URL, "node1"), (checks.BASE_URL, "node2")},
    "manager-exposed": {(MANAGER, BALANCER)},
    "no-stickiness": {(checks.STICKY, BALANCER), (APACHE_STATUS, BALANCER)},
    "no-websocket-route": {(WEBSOCKET, BALANCER)},
    "connector-not-restarted": {(checks.CONNECTOR_IN_EFFECT, "node1")},
    "connector-not-edited": {("Connector proxy settings", "node1"), (checks.CONNECTOR_IN_EFFECT, "node1")},
}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg-state")}
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def runner(lab: Lab, state: Path | None = None, **options) -> Runner:
    return Runner(validate(lab.answers()), StateStore(state or lab.state_path), command="test", **options)


def verify(lab: Lab) -> Outcome:
    with runner(lab) as run:
        return run.verify()


def failing(outcome: Outcome) -> set[tuple[str, str]]:
    return {(c.name, c.target) for c in outcome.checks if not c.passed}


def matches(found: set[tuple[str, str]], expected: set[tuple[str, str]]) -> bool:
    """Every expected (name prefix, target) fails, and nothing else does."""
    claimed = {f for f in found if any(f[0].startswith(name) and f[1] == target for name, target in expected)}
    return claimed == found and all(any(f[0].startswith(n) and f[1] == t for f in found) for n, t in expected)


@pytest.fixture(autouse=True)
def _brief_patience(monkeypatch) -> None:
    """The lab reloads Apache before a fault is in place; the Apache step's patience with answers from
    before a reload (meant for real servers) would only slow each failing check down."""
    monkeypatch.setattr(apache_checks, "VERIFY_PATIENCE_SECONDS", 1.0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """A two-node Apache lab, set up with every step as an admin would (playing the admin for the base URL)."""
    with Lab(tmp_path_factory.mktemp("lab"), nodes=2) as started:
        started.set_base_url_as_admin()
        with runner(started) as run:
            started.applied = run.apply()  # type: ignore[attr-defined]
        yield started


@pytest.fixture
def healthy(lab: Lab):
    """The lab, healed (and its base URL the public one) after the test, whatever it broke."""
    yield lab
    lab.heal()
    lab.base_url = lab.public_url


def test_the_setup_of_a_healthy_lab_ends_with_every_final_test_passed(lab: Lab) -> None:
    applied = lab.applied  # type: ignore[attr-defined]
    assert applied.exit_status == EXIT_OK, applied.message
    record = json.loads(lab.state_path.read_text())["steps"]["verify"]
    assert record["status"] == "verified"
    # In apply the step is the last gate: its record holds every final test, the other steps' too.
    names = {(c["name"], c["target"]) for c in record["checks"]}
    for node in ("node1", "node2"):
        for name in ("node RUNNING", "Connector proxy settings", checks.BASE_URL, checks.NODE_SYNCHRONY,
                     checks.CONNECTOR_IN_EFFECT):
            assert (name, node) in names
    for name in (APACHE_STATUS, checks.STICKY, checks.ROOT_REDIRECT):
        assert (name, BALANCER) in names
    assert all(c["passed"] for c in record["checks"])


def test_verify_on_a_healthy_lab_passes_every_check_once(healthy: Lab) -> None:
    done = run_cli("verify", "--state", str(healthy.state_path), "--json", cwd=healthy.root)
    result = json.loads(done.stdout)
    assert done.returncode == 0 and result["passed"] is True, done.stdout
    assert all(c["passed"] for c in result["checks"]) and all(set(c) == {"name", "target", "passed", "seen", "fix"}
                                                              for c in result["checks"])
    pairs = [(c["name"], c["target"]) for c in result["checks"]]
    assert len(pairs) == len(set(pairs))  # each step checks its own; nothing twice
    for check in (checks.STICKY, checks.ROOT_REDIRECT, "Synchrony heartbeat OK through the balancer",
                  WEBSOCKET, MANAGER):
        assert any(name.startswith(check) and target == BALANCER for name, target in pairs), check
    text = run_cli("verify", "--state", str(healthy.state_path), cwd=healthy.root).stdout
    assert "PASS  balancer  sticky sessions through the balancer" in text and "FAIL" not in text
    runbook = run_cli("runbook", "--state", str(healthy.state_path), cwd=healthy.root).stdout
    assert "verify" in runbook and checks.STICKY in runbook and checks.CONNECTOR_IN_EFFECT in runbook


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_injected_fault_fails_exactly_the_right_check(healthy: Lab, fault: str) -> None:
    healthy.inject(fault)
    outcome = verify(healthy)
    assert outcome.exit_status == EXIT_CHECK_FAILED
    found = failing(outcome)
    assert matches(found, FAULTS[fault]), f"{fault}: {sorted(found)}"
    for check in outcome.checks:
        if not check.passed:
            assert check.fix and check.seen  # what was seen, and what to do
    healthy.heal()


def test_a_fault_through_the_command_exits_3_with_the_failed_check_in_json(healthy: Lab) -> None:
    healthy.inject("wrong-base-url")
    done = run_cli("verify", "--state", str(healthy.state_path), "--json", cwd=healthy.root)
    result = json.loads(done.stdout)
    assert done.returncode == 3 and result["passed"] is False
    bad = [c for c in result["checks"] if not c["passed"]]
    assert {c["target"] for c in bad} == {"node1", "node2"} and all(c["name"] == checks.BASE_URL for c in bad)
    assert WRONG_BASE_URL in bad[0]["seen"] and "editgeneralconfig.action" in bad[0]["fix"]
    record = json.loads(healthy.state_path.read_text())["steps"]["base-url"]
    assert record["status"] == "applied" and not all(c["passed"] for c in record["checks"])  # into the state


# --------------------------------------------------------------------------- the guided base-url step


def test_headless_guided_base_url_says_where_to_change_it_and_fails_until_it_matches(healthy: Lab,
                                                                                   tmp_path: Path) -> None:
    healthy.base_url = WRONG_BASE_URL
    state = tmp_path / "guided.state.json"
    args = ("apply", "--answers", str(healthy.answers_path), "--state", str(state), "--only", "base-url", "--yes")
    done = run_cli(*args, cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == EXIT_STEP_FAILED, said
    page = f"{healthy.nodes[0].url}/admin/editgeneralconfig.action"
    assert page in said and f"set it to {healthy.public_url}" in said and WRONG_BASE_URL in said
    status = json.loads(run_cli("status", "--state", str(state), "--json", cwd=tmp_path).stdout)
    assert [s["status"] for s in status["steps"] if s["name"] == "base-url"] == ["failed"]
    healthy.set_base_url_as_admin()
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert "already" in again.stdout


def test_watched_guided_base_url_waits_for_the_admin(healthy: Lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(base_url, "POLL_SECONDS", 0.1)
    healthy.base_url = WRONG_BASE_URL
    events: list = []
    with runner(healthy, tmp_path / "watched.state.json", events=events.append) as run:
        run.ctx.interactive = True
        admin = threading.Timer(0.5, healthy.set_base_url_as_admin)
        admin.start()
        started = time.monotonic()
        outcome = run.apply(["base-url"])
        admin.join()
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert time.monotonic() - started >= 0.5
    progress = [e.message for e in events if isinstance(e, ProgressReported)]
    assert any("General Configuration > Server Base URL" in m and "editgeneralconfig.action" in m for m in progress)
    record = json.loads((tmp_path / "watched.state.json").read_text())["steps"]["base-url"]
    assert record["status"] == "verified" and record["undo"] == []
    assert record["changes"][0]["old"] == WRONG_BASE_URL and record["changes"][0]["new"] == healthy.public_url


# --------------------------------------------------------------------------- the TLS certificate


def make_certificate(folder: Path, name: str, days: int, *, hostnames: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A self-signed certificate valid for ``days`` from yesterday, naming ``hostnames`` (or ``name``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames or (name,)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}-{days}.crt", folder / f"{name}-{days}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path):
    """Start a TLS server on loopback presenting a given certificate; returns its port."""
    import socket

    servers: list[socket.socket] = []

    def start(cert: Path, key: Path) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass  # the check hangs up after the handshake, or refuses the certificate

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in servers:
        listener.close()


@pytest.mark.parametrize("days, hostnames, passed, words", [
    (90, (), True, "not trusted by this machine"),
    (90, ("*.example.com",), True, "names *.example.com"),
    (5, (), False, "under 14"),
    (90, ("old.example.com",), False, "does not name wiki.example.com"),
])
def test_the_tls_certificate_check_on_a_real_handshake(tmp_path: Path, tls_server, days, hostnames, passed,
                                                       words) -> None:
    port = tls_server(*make_certificate(tmp_path, "wiki.example.com", days, hostnames=hostnames))
    endpoint = Endpoint("https", "127.0.0.1", port, "wiki.example.com", "wiki.example.com")
    check = checks.tls_certificate(endpoint)
    assert check.passed is passed, check.seen
    assert words in check.seen and check.target == BALANCER


# --------------------------------------------------------------------------- through Apache with TLS


@pytest.mark.parametrize("days, passed", [(90, True), (5, False)])
def test_the_checks_through_apache_with_tls(tmp_path: Path, apache_factory, lab_node_factory, days: int,
                                            passed: bool) -> None:
    """Stickiness, redirects and the certificate over HTTPS, through a real Apache the wizard set up."""
    from wizard.steps.verify import STEP as VERIFY

    apache = apache_factory(start=False)
    cert, key = make_certificate(apache.root / "tls", "wiki.example.com", days)
    stock = (Path(__file__).resolve().parents[1] / "fixtures" / "serverxml" / "confluence-7-stock.xml").read_text()
    raw_nodes = []
    for index in (1, 2):
        install = tmp_path / f"node{index}"
        node = lab_node_factory(f"node{index}", install, echo_pages=True)
        (install / "conf").mkdir(parents=True)
        (install / "bin").mkdir()
        (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{node.confluence_port}"'))
        (install / "bin" / "setenv.sh").write_text(f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port}"\n')
        raw_nodes.append({"name": node.name, "address": "127.0.0.1", "install_dir": str(install),
                          "confluence_port": node.confluence_port, "access": {"transport": "local"}})
    raw = {"name": "tls-verify", "public_url": "https://wiki.example.com", "nodes": raw_nodes,
           "balancer": {"kind": "apache", "apache": {
               "access": {"transport": "local"}, "config_path": str(apache.config_path),
               "server_name": "wiki.example.com", "listen_port": apache.port, "http_port": apache.extra_port,
               "tls": {"certificate_file": str(cert), "key_file": str(key)},
               "configtest_command": apache.configtest_command, "reload_command": apache.reload_command}}}
    apache.start()
    with Runner(validate(raw), StateStore(tmp_path / "s.json"), command="test") as run:
        assert run.apply(["balancer"]).exit_status == EXIT_OK
        found = {check.name: check for check in VERIFY.verify(run.ctx) if check.target == BALANCER}
    assert found[checks.STICKY].passed and "answered by node" in found[checks.STICKY].seen, found[checks.STICKY]
    assert found[checks.ROOT_REDIRECT].passed, found[checks.ROOT_REDIRECT]
    tls = found[f"{checks.TLS_CERTIFICATE} (wiki.example.com)"]
    assert tls.passed is passed, tls.seen
    assert "not trusted by this machine" in tls.seen and (passed or "under 14" in tls.seen)
