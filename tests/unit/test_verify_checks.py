"""The final tests one by one (wizard/confluence/checks.py), fed with stubbed answers: what passes,
what fails, and what each failure tells the admin to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wizard.answers import validate
from wizard.answers_model import PublicUrl
from wizard.confluence import checks, probes
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.probes import HttpAnswer, PeerCertificate
from wizard.engine.model import BALANCER
from wizard.steps.verify import STEP as VERIFY
from wizard.transport.hosts import LocalHost

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
PUBLIC = PublicUrl.parse("https://wiki.example.com")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def answer(status: int | None, *, body: str = "", node: str | None = None, location: str | None = None,
           cookies: tuple[str, ...] = (), url: str = "https://lb/") -> HttpAnswer:
    headers = {}
    if node:
        headers["x-node"] = node
    if location:
        headers["location"] = location
    return HttpAnswer(url, status, body, headers, error="" if status else "connection refused", cookies=cookies)


@dataclass
class FakeEndpoint:
    """An Endpoint whose answers come from ``respond(path, cookies, scheme, port)``."""

    respond: Callable[..., HttpAnswer]
    scheme: str = "https"
    address: str = "10.0.0.9"
    port: int = 443
    host_header: str = "wiki.example.com"
    server_name: str = "wiki.example.com"
    http_ports: tuple[int, ...] = (80,)
    calls: list = field(default_factory=list)

    def get(self, path: str, *, cookies=None, scheme=None, port=None, timeout: float = 5.0) -> HttpAnswer:
        self.calls.append((path, dict(cookies or {}), scheme, port))
        return self.respond(path, cookies or {}, scheme, port)

    def describe(self) -> str:
        return "https://10.0.0.9:443 as wiki.example.com"


# --------------------------------------------------------------------------- stickiness


class Apache:
    """Round-robin for newcomers, the ROUTEID route for the others; ``sticky=False`` ignores the cookie."""

    def __init__(self, nodes=("node1", "node2"), *, sticky: bool = True, cookie: bool = True,
                 name_nodes: bool = True) -> None:
        self.nodes, self.sticky, self.cookie, self.name_nodes = nodes, sticky, cookie, name_nodes
        self.turn = 0

    def __call__(self, path, cookies, scheme, port) -> HttpAnswer:
        route = cookies.get("ROUTEID", "").lstrip(".")
        if self.sticky and route in self.nodes:
            node, changed = route, False
        else:
            node = self.nodes[self.turn % len(self.nodes)]
            self.turn += 1
            changed = True
        sets = (f"ROUTEID=.{node}; path=/",) if self.cookie and changed else ()
        return answer(200, body='{"state":"RUNNING"}', node=node if self.name_nodes else None, cookies=sets)


def test_sticky_sessions_hold_with_the_cookie() -> None:
    endpoint = FakeEndpoint(Apache())
    check = checks.stickiness(endpoint, PUBLIC, "ROUTEID")
    assert check.passed and check.target == BALANCER and check.name == checks.STICKY
    assert "answered by node1" in check.seen and "without the cookie answered by node1, node2" in check.seen
    with_cookie = [c for c in endpoint.calls if c[1]]
    assert len(with_cookie) == checks.STICKY_TRIES and all(c[1] == {"ROUTEID": ".node1"} for c in with_cookie)


def test_no_sticky_cookie_fails() -> None:
    check = checks.stickiness(FakeEndpoint(Apache(cookie=False)), PUBLIC, "ROUTEID")
    assert not check.passed and "without a ROUTEID cookie" in check.seen and "apply --only balancer" in check.fix


def test_a_cookie_the_balancer_ignores_fails() -> None:
    check = checks.stickiness(FakeEndpoint(Apache(sticky=False)), PUBLIC, "ROUTEID")
    assert not check.passed and "node1, node2" in check.seen and "logged out at random" in check.fix


def test_nodes_that_do_not_name_themselves_are_judged_by_the_cookie() -> None:
    assert checks.stickiness(FakeEndpoint(Apache(name_nodes=False)), PUBLIC, "ROUTEID").passed
    moved = checks.stickiness(FakeEndpoint(Apache(sticky=False, name_nodes=False)), PUBLIC, "ROUTEID")
    assert not moved.passed and "moved the session" in moved.seen  # Apache re-issued ROUTEID


def test_an_alb_cookie_renewed_on_every_answer_is_followed() -> None:
    counter = iter(range(100))

    def alb(path, cookies, scheme, port) -> HttpAnswer:
        return answer(200, node="node2", cookies=(f"AWSALB=v{next(counter)}; Path=/",))

    endpoint = FakeEndpoint(alb)
    check = checks.stickiness(endpoint, PUBLIC, "AWSALB")
    assert check.passed
    sent = [c[1]["AWSALB"] for c in endpoint.calls if c[1]]
    assert sent[0] == "v0" and sent[1] != sent[0]  # the newest value, as a browser sends it


def test_stickiness_through_a_silent_balancer_fails() -> None:
    check = checks.stickiness(FakeEndpoint(lambda *a: answer(None)), PUBLIC, "ROUTEID")
    assert not check.passed and "no answer" in check.seen


# --------------------------------------------------------------------------- GET / redirects


@pytest.mark.parametrize(("sets", "passed", "seen"), [
    ((), True, "a Synchrony failover leaves ROUTEID alone"),
    (("ROUTEID=node2; Path=/; HttpOnly",), False, "a Synchrony failover re-sets ROUTEID=node2"),
])
def test_a_synchrony_answer_that_re_sets_the_session_cookie_fails(sets, passed, seen) -> None:
    """The heartbeat asked with a ROUTEID naming no node (a failover): an answer that sets ROUTEID would move
    the user's Confluence session, and fails with what to do."""
    endpoint = FakeEndpoint(lambda path, cookies, scheme, port: answer(200, body="OK", node="node2", cookies=sets))
    answers = validate({"name": "p", "public_url": "https://wiki.example.com",
                        "nodes": [{"name": "node1", "address": "10.0.0.1"}],
                        "balancer": {"kind": "nginx", "nginx": {"access": {"host": "lb"},
                                                                "tls": {"certificate_file": "/c", "key_file": "/k"}}}})
    check = checks.synchrony_keeps_session(endpoint, answers, "ROUTEID")
    assert (check.passed, check.seen) == (passed, seen)
    assert endpoint.calls == [("/synchrony/heartbeat", {"ROUTEID": "clbw-no-such-node"}, None, None)]
    assert bool(check.fix) != passed and (passed or "apply --only balancer" in check.fix)
    silent = checks.synchrony_keeps_session(FakeEndpoint(lambda *a: answer(None)), answers, "ROUTEID")
    assert not silent.passed and "connection refused" in silent.seen


def redirects(chain: dict[str, HttpAnswer]) -> FakeEndpoint:
    return FakeEndpoint(lambda path, cookies, scheme, port: chain.get(path, answer(404)))


NODES = [("10.0.0.1", 8090), ("10.0.0.2", 8090)]


def test_root_redirects_that_stay_public_pass() -> None:
    endpoint = redirects({"/": answer(302, location="https://wiki.example.com/index.action"),
                          "/index.action": answer(302, location="/login.action?os_destination=%2F"),
                          "/login.action?os_destination=%2F": answer(200)})
    check = checks.root_redirect(endpoint, PUBLIC, NODES)
    assert check.passed, check.seen
    assert "/index.action: HTTP 302" in check.seen and "/login.action?os_destination=%2F: HTTP 200" in check.seen


@pytest.mark.parametrize("location, problem", [
    ("http://wiki.example.com/index.action", "http:// behind an HTTPS public URL"),
    ("https://10.0.0.1:8090/index.action", "node address 10.0.0.1:8090"),
    ("https://wiki.example.com:8090/index.action", "port 8090 (a node's Confluence port)"),
    ("https://wiki.example.com:8443/", "port 8443 (a port users do not use)"),
])
def test_root_redirects_to_http_or_a_node_fail(location: str, problem: str) -> None:
    check = checks.root_redirect(redirects({"/": answer(302, location=location)}), PUBLIC, NODES)
    assert not check.passed and problem in check.seen and "apply --only connector" in check.fix


def test_a_redirect_to_single_sign_on_elsewhere_is_not_followed() -> None:
    endpoint = redirects({"/": answer(302, location="https://idp.example.org/sso?x=1")})
    check = checks.root_redirect(endpoint, PUBLIC, NODES)
    assert check.passed and "not followed" in check.seen and len(endpoint.calls) == 1


def test_https_redirect_must_keep_path_and_query() -> None:
    good = FakeEndpoint(lambda path, cookies, scheme, port: answer(
        301, location=f"https://wiki.example.com:443{path}"))
    assert checks.https_redirect(good, PUBLIC).passed
    assert good.calls[0][2:] == ("http", 80)
    dropped = FakeEndpoint(lambda path, cookies, scheme, port: answer(301, location="https://wiki.example.com/"))
    check = checks.https_redirect(dropped, PUBLIC)
    assert not check.passed and "https://wiki.example.com/clbw-redirect-check?keep=1&and=2" in check.fix


# --------------------------------------------------------------------------- the certificate


def certificate(days_left: int = 90, names=("wiki.example.com",), trusted: bool = True) -> PeerCertificate:
    return PeerCertificate(subject="CN=wiki.example.com", issuer="CN=Example CA",
                           not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=days_left, hours=1),
                           dns_names=tuple(names), ip_addresses=(), trusted=trusted,
                           trust_error="" if trusted else "self-signed certificate")


@pytest.mark.parametrize("cert, passed, words", [
    (certificate(), True, "90 day(s) left"),
    (certificate(names=("*.example.com",), trusted=False), True, "not trusted by this machine (self-signed"),
    (certificate(days_left=10), False, "expires in 10 day(s), under 14"),
    (certificate(days_left=-3), False, "it has expired"),
    (certificate(names=("old.example.com",)), False, "does not name wiki.example.com"),
])
def test_tls_certificate(monkeypatch, cert: PeerCertificate, passed: bool, words: str) -> None:
    monkeypatch.setattr(probes, "peer_certificate", lambda address, port, name: (cert, ""))
    check = checks.tls_certificate(FakeEndpoint(lambda *a: answer(200)), now=NOW)
    assert check.passed is passed and words in check.seen
    assert check.fix == "" if passed else "valid for more than 14 days" in check.fix


def test_no_tls_answer_fails(monkeypatch) -> None:
    monkeypatch.setattr(probes, "peer_certificate", lambda *a: (None, "10.0.0.9:443: no TLS answer (refused)"))
    check = checks.tls_certificate(FakeEndpoint(lambda *a: answer(200)))
    assert not check.passed and "no TLS answer" in check.seen


@pytest.mark.parametrize("name, names, ips, match", [
    ("wiki.example.com", ["wiki.example.com"], [], True),
    ("WIKI.example.com.", ["wiki.example.com"], [], True),
    ("wiki.example.com", ["*.example.com"], [], True),
    ("a.wiki.example.com", ["*.example.com"], [], False),  # one label deep only
    ("example.com", ["*.com"], [], False),
    ("wiki.example.com", ["other.example.com"], [], False),
    ("127.0.0.1", ["127.0.0.1"], [], False),  # an address must be an IP SAN
    ("127.0.0.1", [], ["127.0.0.1"], True),
])
def test_hostname_matching(name: str, names: list[str], ips: list[str], match: bool) -> None:
    assert checks.hostname_matches(name, names, ips) is match


# --------------------------------------------------------------------------- through the balancer


def test_heartbeat_status_and_websocket_checks(monkeypatch) -> None:
    answers = cluster_answers(Path("/nonexistent"), files=False)
    endpoint = FakeEndpoint(lambda path, *a: {
        "/synchrony/heartbeat": answer(200, body="ok\n"),
        "/status": answer(200, body='{"state":"RUNNING"}')}.get(path, answer(404)))
    assert checks.balancer_heartbeat(endpoint, answers).passed
    assert checks.balancer_status(endpoint, answers.public_url).passed
    upgrades = []
    monkeypatch.setattr(probes, "websocket_upgrade",
                        lambda *a, **k: (upgrades.append((a, k)) or (400, "wss://10.0.0.9:443/...: HTTP/1.1 400")))
    check = checks.balancer_websocket(endpoint, answers)
    assert not check.passed and check.name.endswith("(/synchrony/v1/bayeux-sync1)")
    assert upgrades[0][0][:2] == ("10.0.0.9", 443) and upgrades[0][1] == {"tls": True,
                                                                          "server_name": "wiki.example.com"}
    broken = FakeEndpoint(lambda path, *a: answer(200, body="<html>Confluence</html>"))
    check = checks.balancer_heartbeat(broken, answers)
    assert not check.passed and "Synchrony" in check.fix  # routed to Confluence (item 4)


# --------------------------------------------------------------------------- node checks


def cluster_answers(tmp_path: Path, *, mode: str = "direct", files: bool = True,
                    public: str = "https://wiki.example.com"):
    if files:
        install = tmp_path / "node1"
        (install / "conf").mkdir(parents=True, exist_ok=True)
        (install / "bin").mkdir(exist_ok=True)
        (install / "conf" / "server.xml").write_bytes((FIXTURES / "confluence-8-stock.xml").read_bytes())
        (install / "bin" / "setenv.sh").write_text('CATALINA_OPTS="-Dsynchrony.port=8099 ${CATALINA_OPTS}"\n')
    return validate({
        "name": "checks-test", "public_url": public, "synchrony": {"mode": mode},
        "nodes": [{"name": "node1", "address": "10.0.0.1", "install_dir": str(tmp_path / "node1"),
                   "restart_command": "sudo systemctl restart confluence", "access": {"transport": "local"}}],
        "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"}, "config_path": "/etc/a.conf",
                                                  "tls": {"certificate_file": "/c", "key_file": "/k"}}}})


def node_facts(answers):
    node = answers.nodes[0]
    return node, read_node_facts(LocalHost("node1"), node, answers)


@pytest.mark.parametrize("mode, url", [
    ("direct", "http://10.0.0.1:8099/synchrony/heartbeat"),
    ("internal-proxy", "http://10.0.0.1:8090/synchrony-proxy/heartbeat"),
])
def test_node_synchrony_heartbeat_where_the_balancer_looks(tmp_path: Path, monkeypatch, mode: str, url: str) -> None:
    node, facts = node_facts(cluster_answers(tmp_path, mode=mode))
    asked = []
    monkeypatch.setattr(probes, "http_get", lambda u, **k: asked.append(u) or answer(None, url=u))
    check = checks.node_synchrony(node, facts, mode)
    assert asked == [url] and not check.passed and check.name == checks.NODE_SYNCHRONY
    assert ("port 8099" in check.fix) if mode == "direct" else ("synchrony-proxy" in check.fix)


def test_a_running_connector_without_the_public_address_fails(tmp_path: Path, monkeypatch) -> None:
    answers = cluster_answers(tmp_path)
    node, facts = node_facts(answers)
    monkeypatch.setattr(probes, "http_get", lambda u, **k: answer(302, location="http://10.0.0.1:8090/index.action",
                                                                  url=u))
    check = checks.connector_in_effect(node, facts, answers.public_url)
    assert not check.passed and "apply --only connector" in check.fix  # server.xml not edited either
    xml = tmp_path / "node1" / "conf" / "server.xml"
    xml.write_text(xml.read_text().replace('port="8090"', 'port="8090" proxyName="wiki.example.com" '
                                                          'proxyPort="443" scheme="https" secure="true"', 1))
    node, facts = node_facts(answers)
    check = checks.connector_in_effect(node, facts, answers.public_url)
    assert not check.passed and "`sudo systemctl restart confluence`" in check.fix  # edited, not restarted


@pytest.mark.parametrize("reply, passed", [
    (answer(302, location="https://wiki.example.com/index.action"), True),
    (answer(302, location="/index.action"), True),  # relative: nothing to judge
    (answer(200), True),
])
def test_connector_in_effect_passes_when_nothing_says_otherwise(tmp_path: Path, monkeypatch, reply, passed) -> None:
    answers = cluster_answers(tmp_path)
    node, facts = node_facts(answers)
    monkeypatch.setattr(probes, "http_get", lambda u, **k: reply)
    assert checks.connector_in_effect(node, facts, answers.public_url).passed is passed


def test_a_node_that_does_not_answer_is_left_to_node_running(tmp_path: Path, monkeypatch) -> None:
    answers = cluster_answers(tmp_path)
    node, facts = node_facts(answers)
    monkeypatch.setattr(probes, "http_get", lambda u, **k: answer(None, url=u))
    assert checks.connector_in_effect(node, facts, answers.public_url) is None


def test_base_url_check_names_the_admin_page(tmp_path: Path) -> None:
    reading = checks.Reading("node1", "http://10.0.0.1:8090/rest/applinks/1.0/manifest",
                             "http://10.0.0.1:8090/admin/editgeneralconfig.action", "http://old:8090",
                             "http://old:8090 (from the manifest)", True)
    check = checks.base_url_check(reading, PUBLIC)
    assert not check.passed and "http://10.0.0.1:8090/admin/editgeneralconfig.action" in check.fix
    unread = checks.Reading("node1", "m", "page", None, "m: HTTP 503", True)
    assert not checks.base_url_check(unread, PUBLIC).passed
    good = checks.Reading("node1", "m", "page", "https://wiki.example.com/", "ok", True)
    assert checks.base_url_check(good, PUBLIC).passed


# --------------------------------------------------------------------------- the step


def test_verify_adds_only_its_own_checks_while_apply_gets_them_all(tmp_path: Path, monkeypatch) -> None:
    """``Runner.verify`` runs every step's checks itself; the step's plan (the gate of apply) holds all."""
    from wizard.engine import step as base
    from wizard.engine.model import Check
    from wizard.engine.state import StepRecord
    from wizard.steps import verify as verify_module
    from wizard.transport.pool import HostPool

    answers = cluster_answers(tmp_path)
    done = {name: StepRecord(name, status="verified") for name in ("preflight", "base-url", "connector",
                                                                    "restart", "balancer")}
    ctx = base.Context(answers=answers, hosts=HostPool(answers), previous=done)

    class Borrowed:
        def __init__(self, name: str) -> None:
            self.name = name

        def applies(self, answers) -> bool:
            return True

        def verify(self, ctx) -> list[Check]:
            return [Check(f"{self.name} check", "node1", True, "seen")]

    monkeypatch.setattr("wizard.steps.get", Borrowed)
    own = [Check("own", BALANCER, False, "seen", "fix")]
    monkeypatch.setattr(verify_module.VerifyStep, "_node_checks", lambda self, ctx, facts: [])
    monkeypatch.setattr(verify_module.VerifyStep, "_balancer_checks", lambda self, ctx, facts: own)
    assert VERIFY.verify(ctx) == own
    everything = VERIFY.inspect(ctx)
    assert [c.name for c in everything] == ["restart check", "connector check", "base-url check",
                                            "balancer check", "own"]
    plan = VERIFY.plan(answers, everything)
    assert plan.is_noop and plan.summary == "1 of 5 check(s) failed" and VERIFY.read_only


def test_the_final_tests_wait_for_every_other_step(tmp_path: Path, monkeypatch) -> None:
    """Before the setup is made, the plan of the final tests probes nothing: each step to do fails once."""
    from wizard.engine import step as base
    from wizard.engine.state import StepRecord
    from wizard.steps import verify as verify_module
    from wizard.transport.pool import HostPool

    answers = cluster_answers(tmp_path)
    previous = {"preflight": StepRecord("preflight", status="verified"),
                "connector": StepRecord("connector", status="failed")}
    ctx = base.Context(answers=answers, hosts=HostPool(answers), previous=previous)
    monkeypatch.setattr(verify_module, "_borrowed", lambda *a: pytest.fail("nothing may be probed"))
    found = VERIFY.inspect(ctx)
    assert [(c.name, c.seen) for c in found] == [
        ("Confluence's base URL", "not applied yet (status: pending)"),
        ("Tomcat Connector on every node", "not applied yet (status: failed)"),
        ("Restart the nodes one at a time", "not applied yet (status: pending)"),
        ("The load balancer", "not applied yet (status: pending)")]
    assert all(not c.passed and "confluence-lb-wizard apply" in c.fix for c in found)
    assert VERIFY.plan(answers, found).summary == "the final tests run once every other step is done (4 step(s) to do)"
