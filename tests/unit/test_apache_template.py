"""The Apache vhost template: its structure for many answers, and Apache's own verdict on it.

The structure tests render from plain data. The property test renders generated answer
combinations (1 to 8 nodes, TLS on and off, a context path or none, both Synchrony modes,
both WebSocket styles, manager_allow or none) and has a real ``apache2 -t`` accept every one;
a sample of combinations is then served for real by Apache in front of simulated nodes.
"""

from __future__ import annotations

import dataclasses
import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from wizard.answers import validate
from wizard.balancers.apache.facts import HEADER_LINE, ApacheFacts, read_apache_facts
from wizard.transport.hosts import LocalHost
from wizard.balancers.apache.vhost import (ALL_MODULES, BalancerFacts, NodeTarget, build_vhost, needed_modules,
                                           redirect_ports_in, render_vhost, websocket_style)

NEW, OLD = (2, 4, 71), (2, 4, 46)  # both sides of 2.4.47, where the WebSocket style changes


def answers_of(*, nodes: int = 2, tls: bool = False, context: str = "", mode: str = "direct",
               manager_allow: list[str] | None = None, listen_port: int | None = None,
               config_path: str = "/etc/apache2/sites-available/confluence-lb.conf",
               cert: str = "/etc/ssl/wiki.crt", key: str = "/etc/ssl/wiki.key",
               configtest: str | None = None, reload: str | None = None, name: str = "tpl"):
    apache: dict = {"access": {"transport": "local"}, "config_path": config_path,
                    "server_name": "wiki.example.com"}
    if tls:
        apache["tls"] = {"certificate_file": cert, "key_file": key}
    if manager_allow:
        apache["manager_allow"] = manager_allow
    if listen_port:
        apache["listen_port"] = listen_port
    if configtest:
        apache["configtest_command"] = configtest
    if reload:
        apache["reload_command"] = reload
    return validate({
        "name": name, "public_url": f"{'https' if tls else 'http'}://wiki.example.com{context}",
        "synchrony": {"mode": mode},
        "nodes": [{"name": f"node{i}", "address": f"10.0.0.{i}", "access": {"transport": "local"}}
                  for i in range(1, nodes + 1)],
        "balancer": {"kind": "apache", "apache": apache}})


def targets(count: int, context: str = "", ports: list[tuple[int, int]] | None = None) -> tuple[NodeTarget, ...]:
    """``count`` nodes at 10.0.0.N, on Confluence's and Synchrony's default ports unless given."""
    ports = ports or [(8090, 8091)] * count
    return tuple(NodeTarget(f"node{i}", f"10.0.0.{i}", confluence, synchrony, context, "test")
                 for i, (confluence, synchrony) in enumerate(ports[:count], start=1))


def plain_facts(version=NEW, listens: dict[int, str | None] | None = None) -> ApacheFacts:
    """Facts of a Debian-like Apache that listens on 80 (and 443 with ssl), for structure tests."""
    from wizard.balancers.apache.facts import LAYOUTS, Commands, Directive, ServerSettings, TlsFacts

    listens = {80: None, 443: None} if listens is None else listens
    directives = tuple(Directive("/etc/apache2/ports.conf", i, "listen",
                                 (str(port),) + ((proto,) if proto else ()), f"Listen {port}")
                       for i, (port, proto) in enumerate(listens.items(), start=1))
    layout = LAYOUTS["debian"]
    return ApacheFacts(
        layout=layout, commands=Commands("t", "r", "m", "s", "i", "v"), version=version, version_text="",
        loaded={}, loaded_elsewhere=frozenset(), module_dir="/usr/lib/apache2/modules", sources={},
        config_path="/etc/apache2/sites-available/confluence-lb.conf", current=None,
        enabler=layout.site_enablers[0], site_enabled=False, modules_file=None, modules_file_current=None,
        includes=(), settings=ServerSettings(()), directives=directives,
        owned_paths=("/etc/apache2/sites-available/confluence-lb.conf",), other_owner=None, tls=TlsFacts())


def render_for(answers, facts: ApacheFacts, nodes: tuple[NodeTarget, ...] | None = None) -> str:
    nodes = nodes or targets(len(answers.nodes), answers.public_url.context_path)
    return render_vhost(build_vhost(answers, BalancerFacts(facts, nodes)))


def directives(text: str) -> list[str]:
    """The configuration's lines without comments and blank lines, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def assert_blocks_closed(text: str) -> None:
    stack: list[str] = []
    for line in directives(text):
        opened = re.match(r"<(\w+)[\s>]", line)
        closed = re.match(r"</(\w+)>", line)
        if closed:
            assert stack and stack[-1].lower() == closed[1].lower(), f"unbalanced {line} in:\n{text}"
            stack.pop()
        elif opened:
            stack.append(opened[1])
    assert not stack, f"unclosed {stack} in:\n{text}"


def proxy_pass_paths(text: str) -> list[str]:
    return [line.split()[1].strip('"') for line in directives(text) if line.startswith("ProxyPass ")]


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("tls", (False, True))
@pytest.mark.parametrize("mode", ("direct", "internal-proxy"))
@pytest.mark.parametrize("version", (NEW, OLD))
@pytest.mark.parametrize("context", ("", "/wiki"))
def test_every_combination_is_closed_ordered_and_restricted(tls: bool, mode: str, version, context: str) -> None:
    answers = answers_of(nodes=3, tls=tls, context=context, mode=mode)
    text = render_for(answers, plain_facts(version))
    assert text.startswith(HEADER_LINE.format(setup="tpl"))
    assert "must not be edited" not in text and "Do not edit by hand" in text.splitlines()[0]
    assert_blocks_closed(text)
    lines = directives(text)
    passes = proxy_pass_paths(text)
    # /balancer-manager first and never proxied; Confluence's route last.
    assert passes[0] == "/balancer-manager" and "ProxyPass /balancer-manager !" in lines
    assert passes[-1] == (context or "/")
    assert "Require all denied" in lines and not any(line.startswith("Require ip") for line in lines)
    assert "ProxyPreserveHost On" in lines and "ProxyRequests Off" in lines
    assert "ProxyErrorOverride Off" in lines and "ProxyErrorOverride On" not in text
    # Every balancer lists every node, with the node's name as its route.
    for balancer in re.findall(r'<Proxy "balancer://([\w-]+)">', text):
        block = text.split(f'<Proxy "balancer://{balancer}">', 1)[1].split("</Proxy>", 1)[0]
        assert [m for m in re.findall(r"route=(\S+)", block)] == ["node1", "node2", "node3"], balancer
        # Synchrony's own balancers (direct mode) keep their route in a cookie of their own, so a
        # Synchrony failover never moves the Confluence session.
        own = "SYNCROUTEID" if balancer.startswith("synchrony-") else "ROUTEID"
        assert f"stickysession={own}\n" in block and block.count(" retry=5") == 3
    cookies = [line for line in lines if line.startswith("Header add Set-Cookie")]
    if mode == "direct":
        assert len(cookies) == 2
        assert ("ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/;" in cookies[0]
                and "reqenv('BALANCER_NAME') == 'balancer://confluence'" in cookies[0])
        assert ("SYNCROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/synchrony;" in cookies[1]
                and "m#^balancer://synchrony-#" in cookies[1])
    else:
        assert len(cookies) == 1
        assert "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" in cookies[0] and "env=BALANCER_ROUTE_CHANGED" in cookies[0]
    assert all(("; Secure" in cookie) is tls for cookie in cookies)
    ws_path = "/synchrony/v1/bayeux-sync1" if mode == "direct" else f"{context}/synchrony-proxy/v1/bayeux-sync1"
    if websocket_style(version) == "upgrade":
        assert passes.index(ws_path) < passes.index(context or "/")
        assert "upgrade=websocket" in text and "ws://" not in text and "RewriteCond %{HTTP:Upgrade}" not in text
    else:
        assert "upgrade=websocket" not in text and "ws://10.0.0.1:" in text
        assert "RewriteCond %{HTTP:Upgrade} ^websocket$ [NC]" in lines
        assert any(line.startswith("RewriteRule ^") and ws_path.replace("-", "\\-") in line and "[P,L]" in line
                   for line in lines)
    if mode == "direct":
        # Synchrony at /synchrony on its own port, before Confluence's route, whatever the context path.
        assert passes.index("/synchrony/") < passes.index(context or "/")
        assert 'BalancerMember "http://10.0.0.1:8091" route=node1' in text
    else:
        assert ":8091" not in text and "/synchrony/" not in passes
    if tls:
        assert "SSLEngine on" in lines and 'SSLCertificateFile "/etc/ssl/wiki.crt"' in lines
        assert 'RequestHeader set X-Forwarded-Proto "https"' in lines
        redirect = text.split("<VirtualHost *:80>", 1)[1].split("</VirtualHost>", 1)[0]
        assert "RewriteRule ^ https://wiki.example.com%{REQUEST_URI} [R=301,L]" in redirect
    else:
        assert "SSLEngine" not in text and "R=301" not in text and "<VirtualHost *:80>" in text
    if context:
        assert "RewriteRule ^/?$ /wiki/ [R=302,L]" in lines


def test_manager_allow_becomes_require_ip() -> None:
    text = render_for(answers_of(manager_allow=["127.0.0.1", "10.1.0.0/16"]), plain_facts())
    block = text.split("<Location /balancer-manager>", 1)[1].split("</Location>", 1)[0]
    assert "Require ip 127.0.0.1 10.1.0.0/16" in block and "Require all denied" not in block
    assert "SetHandler balancer-manager" in block


def test_node_ports_come_from_the_facts_never_assumed() -> None:
    answers = answers_of(nodes=2)
    nodes = targets(2, ports=[(8080, 8095), (18090, 18091)])
    text = render_for(answers, plain_facts(), nodes)
    assert 'BalancerMember "http://10.0.0.1:8080" route=node1' in text
    assert 'BalancerMember "http://10.0.0.2:18091" route=node2' in text
    assert ":8090\"" not in text and ":8091\"" not in text


def test_ipv6_members_are_bracketed() -> None:
    nodes = (NodeTarget("node1", "[fd00::1]", 8090, 8091, "", "test"),)
    text = render_for(answers_of(nodes=1), plain_facts(), nodes)
    assert 'BalancerMember "http://[fd00::1]:8090" route=node1' in text


def test_listen_lines_only_for_ports_nobody_listens_on() -> None:
    stock = render_for(answers_of(tls=True), plain_facts())
    assert not any(line.startswith("Listen") for line in directives(stock))
    odd = render_for(answers_of(tls=True, listen_port=8443), plain_facts(listens={}))
    assert "Listen 8443 https" in directives(odd) and "Listen 80" in directives(odd)
    assert "<VirtualHost *:8443>" in odd and "<VirtualHost *:80>" in odd
    # The public URL keeps its own port in the redirect, not Apache's.
    assert "https://wiki.example.com%{REQUEST_URI}" in odd


def test_redirect_covers_every_plain_port_apache_listens_on() -> None:
    text = render_for(answers_of(tls=True, listen_port=18443),
                      plain_facts(listens={18443: None, 18080: None, 8443: "https"}))
    assert "<VirtualHost *:18080>" in text and "*:8443" not in text
    assert redirect_ports_in(text) == (18080,)  # what verify probes
    assert redirect_ports_in(render_for(answers_of(), plain_facts())) == ()


def test_needed_modules_follow_the_features() -> None:
    base = needed_modules(answers_of(), NEW)
    assert "proxy_wstunnel" not in base and "ssl" not in base
    assert "rewrite" in base  # the upload limit (balancer.settings.max_upload_mb) is a rewrite rule
    assert base.index("proxy") < base.index("proxy_http") < base.index("proxy_balancer") < base.index(
        "lbmethod_byrequests")
    assert {"proxy_wstunnel", "rewrite"} <= set(needed_modules(answers_of(), OLD))
    assert {"ssl", "rewrite"} <= set(needed_modules(answers_of(tls=True), NEW))
    assert "rewrite" in needed_modules(answers_of(context="/wiki"), NEW)


def test_special_characters_of_a_context_path_are_escaped_for_mod_rewrite() -> None:
    text = render_for(answers_of(context="/w$i.k+i", mode="internal-proxy"), plain_facts(OLD))
    assert r"RewriteRule ^/?$ /w\$i.k+i/ [R=302,L]" in text
    assert r"^/w\$i\.k\+i/synchrony\-proxy/v1/bayeux\-sync1(.*)$" in text


# --------------------------------------------------------------------------- Apache's verdict


@pytest.fixture(scope="module")
def lab(apache_helpers):
    """A self-contained Apache root (not started), its facts as the wizard reads them, and a certificate."""
    server = apache_helpers.ApacheServer.create()
    cert, key = server.self_signed()
    answers = answers_of(config_path=str(server.config_path), configtest=server.configtest_command,
                         reload=server.reload_command, listen_port=server.port)
    facts = read_apache_facts(LocalHost("balancer"), answers, ALL_MODULES)
    assert facts.layout.name == "self-contained" and facts.version[:2] == (2, 4)
    yield server, facts, cert, key
    server.remove()


combination = st.fixed_dictionaries({
    "nodes": st.integers(1, 8),
    "tls": st.booleans(),
    "context": st.sampled_from(["", "/wiki", "/confluence", "/a.b-c_d"]),
    "mode": st.sampled_from(["direct", "internal-proxy"]),
    "version": st.sampled_from([NEW, OLD, (2, 4, 47), (2, 4, 5)]),
    "manager_allow": st.sampled_from([[], ["127.0.0.1"], ["10.0.0.0/8", "192.168.1.7", "::1"]]),
    "listen": st.sampled_from(["lab", 443, 8443]),
    "ports": st.lists(st.tuples(st.integers(1024, 65535), st.integers(1024, 65535)), min_size=8, max_size=8),
    "address": st.sampled_from(["10.0.0.", "127.0.0.", "fd00::"]),
})


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(combo=combination)
def test_generated_configurations_pass_apache_configtest(lab, combo: dict) -> None:
    server, facts, cert, key = lab
    answers = answers_of(nodes=combo["nodes"], tls=combo["tls"], context=combo["context"], mode=combo["mode"],
                         manager_allow=combo["manager_allow"],
                         listen_port=server.port if combo["listen"] == "lab" else combo["listen"],
                         config_path=str(server.config_path), cert=str(cert), key=str(key),
                         configtest=server.configtest_command, reload=server.reload_command)
    host = (lambda i: f"[fd00::{i}]") if combo["address"] == "fd00::" else (lambda i: f"{combo['address']}{i}")
    nodes = tuple(NodeTarget(f"node{i}", host(i), c, s, combo["context"], "test")
                  for i, (c, s) in enumerate(combo["ports"][:combo["nodes"]], start=1))
    text = render_vhost(build_vhost(answers, BalancerFacts(dataclasses.replace(facts, version=combo["version"]),
                                                           nodes)))
    assert_blocks_closed(text)
    server.config_path.write_text(text)
    checked = server.configtest()
    assert checked.returncode == 0, f"{checked.stderr}\n{text}"


# A sample of combinations served for real: (nodes, tls, context, mode, version).
SAMPLES = [
    (1, False, "", "direct", NEW),
    (2, True, "", "direct", OLD),
    (3, True, "/wiki", "internal-proxy", NEW),
    (8, False, "/confluence", "internal-proxy", OLD),
    (2, False, "/wiki", "direct", OLD),
]


@pytest.mark.parametrize("count,tls,context,mode,version", SAMPLES)
def test_a_sample_is_served_for_real(apache_factory, lab_node_factory, count: int, tls: bool, context: str,
                                     mode: str, version) -> None:
    server = apache_factory(start=False)
    cert, key = server.self_signed()
    answers = answers_of(nodes=count, tls=tls, context=context, mode=mode, listen_port=server.port,
                         config_path=str(server.config_path), cert=str(cert), key=str(key),
                         configtest=server.configtest_command, reload=server.reload_command)
    facts = dataclasses.replace(read_apache_facts(LocalHost("balancer"), answers, ALL_MODULES), version=version)
    fakes = [lab_node_factory(f"node{i}", context_path=context, echo_pages=True) for i in range(1, count + 1)]
    nodes = tuple(NodeTarget(f.name, "127.0.0.1", f.confluence_port, f.synchrony_port, context, "test")
                  for f in fakes)
    server.config_path.write_text(render_vhost(build_vhost(answers, BalancerFacts(facts, nodes))))
    server.start()
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{server.port}"
    with httpx.Client(verify=False, headers={"Host": "wiki.example.com"}, timeout=5) as client:
        status = client.get(f"{base}{context}/status")
        assert status.status_code == 200 and status.json() == {"state": "RUNNING"}
        assert status.headers["x-node"] in {f.name for f in fakes}
        heartbeat = "/synchrony/heartbeat" if mode == "direct" else f"{context}/synchrony-proxy/heartbeat"
        answer = client.get(base + heartbeat)
        assert answer.status_code == 200 and answer.text == "OK"
        page = client.get(f"{base}{context}/display/SPACE/Page?x=1")
        assert page.status_code == 200
        seen = json.loads(page.text)
        assert seen["host"] == "wiki.example.com" and seen["x_forwarded_proto"] == scheme
        assert seen["path"] == f"{context}/display/SPACE/Page" and seen["query"] == "x=1"
        assert client.get(f"{base}/balancer-manager").status_code == 403
        if context:
            root = client.get(f"{base}/")
            assert root.status_code == 302 and root.headers["location"].endswith(f"{context}/")
        if tls:
            redirect = client.get(f"http://127.0.0.1:{server.extra_port}/x/y?z=1")
            assert redirect.status_code == 301
            assert redirect.headers["location"] == "https://wiki.example.com/x/y?z=1"
    ws_path = "/synchrony/v1/bayeux-sync1" if mode == "direct" else f"{context}/synchrony-proxy/v1/bayeux-sync1"
    ws_url = f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}{ws_path}"
    options = {"ssl": _insecure()} if tls else {}
    with connect(ws_url, open_timeout=5, **options) as socket:
        socket.send("hello")
        reply = socket.recv(timeout=5)
    assert re.fullmatch(r"node\d: hello", str(reply)), reply


def _insecure():
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context



def test_an_explicit_http_port_is_the_only_redirect() -> None:
    answers = answers_of(tls=True, listen_port=18443)
    answers.balancer.apache.http_port = 18081
    text = render_for(answers, plain_facts(listens={18443: None, 18080: None}))
    assert redirect_ports_in(text) == (18081,)
    assert "Listen 18081" in directives(text) and "<VirtualHost *:18080>" not in text


# --------------------------------------------------------------------------- issue 16: standalone, settings


def standalone_answers(**settings):
    raw = answers_of(tls=True).to_dict()
    raw["synchrony"] = {"mode": "standalone", "nodes": [{"name": "sync1", "address": "10.0.2.1"},
                                                        {"name": "sync2", "address": "fd00::2", "port": 8095}]}
    if settings:
        raw["balancer"]["settings"] = settings
    for key in ("apache", "alb"):
        if raw["balancer"].get(key) is None:
            del raw["balancer"][key]
    return validate(raw)


@pytest.mark.parametrize("version", (NEW, OLD))
def test_standalone_synchrony_is_a_balancer_over_the_synchrony_machines_without_routes(version) -> None:
    text = render_for(standalone_answers(), plain_facts(version))
    assert_blocks_closed(text)
    for name in ("synchrony-ws", "synchrony-http"):
        block = text.split(f'<Proxy "balancer://{name}">', 1)[1].split("</Proxy>", 1)[0]
        assert "10.0.2.1:8091\"" in block and "[fd00::2]:8095\"" in block
        # No route and no stickysession: a Synchrony answer never resets the user's ROUTEID.
        assert "route=" not in block and "stickysession" not in block
        # Each machine is checked on its heartbeat where Apache has mod_proxy_hcheck (2.4.47+).
        members = [line for line in block.splitlines() if "BalancerMember" in line]
        assert len(members) == 2
        assert all(("hcuri=/synchrony/heartbeat" in line) == (version is NEW) for line in members)
    assert ":8091\" route=node" not in text  # the Confluence nodes' own Synchrony is not used
    assert proxy_pass_paths(text).index("/synchrony/") < proxy_pass_paths(text).index("/")
    assert "a standalone Synchrony cluster (2 machine(s))" in text


def test_settings_land_in_the_vhost_with_their_defaults() -> None:
    lines = directives(render_for(answers_of(tls=True), plain_facts()))
    assert "ProxyTimeout 300" in lines and "ProxyAddHeaders On" in lines
    assert 'RewriteCond expr "%{HTTP:Content-Length} -gt 262144000"' in lines
    assert "RewriteRule ^ - [R=413,L]" in lines
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in lines
    assert not any("Strict-Transport-Security" in line for line in lines)


def test_settings_land_in_the_vhost_as_answered() -> None:
    text = render_for(standalone_answers(read_timeout=30, max_upload_mb=10, tls_protocols=["TLSv1.3"],
                                         hsts_max_age=31536000), plain_facts())
    lines = directives(text)
    assert "ProxyTimeout 30" in lines and "SSLProtocol -all +TLSv1.3" in lines
    assert 'RewriteCond expr "%{HTTP:Content-Length} -gt 10485760"' in lines
    assert 'Header always set Strict-Transport-Security "max-age=31536000"' in lines
    assert "timeout=300" in text  # WebSockets keep their own longer timeout
    # The 413 rule comes before every proxied route, so no node sees the body.
    assert text.index("R=413") < text.index("ProxyPass        ")


def test_hsts_only_over_https() -> None:
    raw = answers_of().to_dict()
    raw["balancer"]["settings"] = {"hsts_max_age": 600}
    del raw["balancer"]["alb"]
    text = render_for(validate(raw), plain_facts())
    assert "Strict-Transport-Security" not in text and "SSLProtocol" not in text
