"""The nginx and HAProxy kinds' pure parts: parsers of what the servers say, the rendered file,
refusals, the undo records, and hostile answers (refused, or landing as one argument)."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wizard.answers import find_problems, validate
from wizard.balancers.haproxy.config import build as haproxy_build
from wizard.balancers.haproxy.config import render_config as haproxy_render
from wizard.balancers.haproxy.facts import covers, haproxy_commands, parse_sections, parse_version
from wizard.balancers.haproxy.step import STEP as HAPROXY
from wizard.balancers.nginx.config import build as nginx_build
from wizard.balancers.nginx.config import regex_literal
from wizard.balancers.nginx.config import render_config as nginx_render
from wizard.balancers.nginx.facts import nginx_commands, parse_dump, walk_dump
from wizard.balancers.nginx.step import STEP as NGINX
from wizard.balancers.served import Facts, NodeTarget, ServerError, ServerFacts
from wizard.engine.model import BALANCER, UndoAction
from wizard.engine.undo import UndoRecordError

NODES = (NodeTarget("node1", "10.0.0.1", 8090, 8091, ""), NodeTarget("node2", "10.0.0.2", 8090, 8091, ""))


def raw(kind: str, **options: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"access": {"transport": "local"}, "server_name": "wiki.example.com"}
    section.update(options)
    return {"name": "wiki", "public_url": "https://wiki.example.com",
            "nodes": [{"name": "node1", "address": "10.0.0.1"}, {"name": "node2", "address": "10.0.0.2"}],
            "balancer": {"kind": kind, kind: section}}


TLS = {"certificate_file": "/etc/ssl/wiki.pem", "key_file": "/etc/ssl/wiki.pem"}


def facts(kind: str, **extra: Any) -> Facts:
    server = ServerFacts(kind, (1, 22, 1) if kind == "nginx" else (2, 6, 12), "", "/x", None, None, "t", "r",
                         None, "loaded", extra=extra)
    return Facts(server, NODES)


# --------------------------------------------------------------------------- nginx


DUMP = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
# configuration file /etc/nginx/nginx.conf:
pid /run/nginx.pid;
events { }
http {
    include /etc/nginx/conf.d/*.conf;
    include sites/*;
}
stream { include /etc/nginx/stream.d/*.conf; }

# configuration file /etc/nginx/conf.d/old.conf:
upstream clbw_wiki_confluence_all { server 10.0.0.9:8090; }
map $cookie_x $clbw_wiki_route { default ""; }
server { listen 443 ssl; server_name wiki.example.com; }

# configuration file /etc/nginx/sites/a:
server { listen 80; server_name "other.example.com"; }
"""


def test_the_dump_is_walked_from_the_main_file_through_its_includes() -> None:
    files = parse_dump(DUMP)
    assert list(files) == ["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/old.conf", "/etc/nginx/sites/a"]
    walk = walk_dump(files, "/etc/nginx", "/etc/nginx/conf.d/confluence-lb.conf")
    assert walk.config_contexts == [("http",)] and not walk.config_read
    assert walk_dump(files, "/etc/nginx", "/etc/nginx/stream.d/x.conf").config_contexts == [("stream",)]
    assert walk_dump(files, "/etc/nginx", "/etc/nginx/conf.d/sub/x.conf").config_contexts == []  # * never crosses /
    assert walk_dump(files, "/etc/nginx", "/etc/nginx/sites/x.conf").config_contexts == [("http",)]  # relative


def test_nginx_refuses_names_another_file_defines_and_a_rival_server() -> None:
    files = parse_dump(DUMP)
    walk = walk_dump(files, "/etc/nginx", "/etc/nginx/conf.d/confluence-lb.conf")
    from wizard.balancers.nginx.facts import defined_names, other_servers

    upstreams, variables = defined_names(walk.others)
    answers = validate(raw("nginx", tls={"certificate_file": "/a.crt", "key_file": "/a.key"}))
    taken = facts("nginx", upstreams=frozenset(upstreams), variables=frozenset(), servers=())
    with pytest.raises(ServerError, match="clbw_wiki_confluence_all"):
        NGINX.plan(answers, taken)
    shadowed = facts("nginx", upstreams=frozenset(), variables=frozenset(variables), servers=())
    with pytest.raises(ServerError, match=r"\$clbw_wiki_route"):
        NGINX.plan(answers, shadowed)
    rival = facts("nginx", upstreams=frozenset(), variables=frozenset(), servers=tuple(other_servers(walk.others)))
    with pytest.raises(ServerError, match="old.conf:3"):
        NGINX.plan(answers, rival)


def test_the_nginx_file_builds_stickiness_from_maps_without_a_backslash() -> None:
    answers = validate(raw("nginx", tls={"certificate_file": "/a.crt", "key_file": "/a.key"}))
    text = nginx_render(nginx_build(answers, facts("nginx"), "wiki.example.com", 443, 80))
    assert "\\" not in text
    assert "upstream clbw_wiki_confluence_n1 {\n    server 10.0.0.1:8090 max_fails=1 fail_timeout=10s;\n" \
           "    server 10.0.0.2:8090 max_fails=1 fail_timeout=10s backup;\n}" in text
    assert '"~(^| )10[.]0[.]0[.]1:8090$" node1;' in text
    assert "8091$" not in text  # a Synchrony answer names no node: it never sets ROUTEID
    assert '"node1|node1" "";' in text and 'ROUTEID=node1; Path=/; HttpOnly; Secure' in text
    assert "return 301 https://wiki.example.com$request_uri;" in text
    assert text.index("location ^~ /synchrony/v1/bayeux-sync1") < text.index("location ^~ /synchrony/ {") \
        < text.index("location / {")
    assert "proxy_read_timeout 300s;" in text and "client_max_body_size 250m;" in text
    assert "passive only" in text
    assert regex_literal("[::1]:80") == "[[]::1[]]:80"


def test_nginx_commands_carry_the_main_file_and_prefix() -> None:
    answers = validate(raw("nginx", configtest_command="sudo /opt/nginx/sbin/nginx -c /srv/lb/main.conf -p /srv/lb/ -t",
                           reload_command="sudo /opt/nginx/sbin/nginx -c /srv/lb/main.conf -p /srv/lb/ -s reload",
                           tls={"certificate_file": "/a.crt", "key_file": "/a.key"}))
    commands = nginx_commands(answers.balancer.nginx)
    assert commands.dump == "sudo /opt/nginx/sbin/nginx -c /srv/lb/main.conf -p /srv/lb/ -T"
    assert commands.main_config == "/srv/lb/main.conf" and commands.prefix == "/srv/lb/"


# --------------------------------------------------------------------------- HAProxy


def test_haproxy_loads_a_file_named_by_f_or_a_cfg_in_an_f_folder() -> None:
    loads = ("/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d")
    folders = frozenset({"/etc/haproxy/conf.d"})
    assert covers(loads, folders, "/etc/haproxy/conf.d/lb.cfg") == "/etc/haproxy/conf.d"
    assert covers(loads, folders, "/etc/haproxy/haproxy.cfg") == "/etc/haproxy/haproxy.cfg"
    assert covers(loads, folders, "/etc/haproxy/conf.d/sub/lb.cfg") is None
    assert covers(loads, frozenset(), "/etc/haproxy/conf.d/lb.cfg") is None  # conf.d is not a folder there
    answers = validate(raw("haproxy", tls=TLS, configtest_command="haproxy -c -f /a.cfg -f /d",
                           reload_command="haproxy -W -f /a.cfg -f /d -f /e.cfg -p /run/h.pid"))
    commands = haproxy_commands(answers.balancer.haproxy)
    assert commands.loads == ("/a.cfg", "/d", "/e.cfg") and commands.pid_file == "/run/h.pid"
    assert parse_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17") == (2, 6, 12)


@pytest.mark.parametrize(("step", "old", "needs"), [(NGINX, (1, 10, 3), "nginx 1.12.0 or later."),
                                                   (HAPROXY, (2, 1, 9), "HAProxy 2.2.0 or later (http-check send)")])
def test_a_server_older_than_the_file_needs_is_refused_before_anything_changes(step: Any, old: tuple[int, ...],
                                                                             needs: str) -> None:
    kind = step.kind
    server = replace(facts(kind).server, version=old)
    with pytest.raises(ServerError, match=re.escape(needs)) as refused:
        step.plan(validate(raw(kind, tls=TLS)), Facts(server, NODES))
    assert f"runs {step.product} {'.'.join(map(str, old))}" in refused.value.message
    assert refused.value.hint.startswith("Upgrade ") and refused.value.hint.endswith("then run the step again.")


def test_haproxy_refuses_a_section_name_or_a_port_already_taken() -> None:
    answers = validate(raw("haproxy", tls=TLS))
    sections = parse_sections("frontend web\n    bind :443 ssl crt /x.pem\n", "/etc/haproxy/haproxy.cfg")
    with pytest.raises(ServerError, match="already binds port 443"):
        HAPROXY.plan(answers, facts("haproxy", sections=tuple(sections)))
    named = parse_sections("backend clbw-wiki-confluence\n    server a 1.2.3.4:80\n", "/etc/haproxy/old.cfg")
    with pytest.raises(ServerError, match="old.cfg:1 already defines the backend clbw-wiki-confluence"):
        HAPROXY.plan(answers, facts("haproxy", sections=tuple(named)))


def test_the_haproxy_file_has_cookies_checks_tunnel_timeouts_and_no_stats_by_default() -> None:
    answers = validate(raw("haproxy", tls=TLS))
    text = haproxy_render(haproxy_build(answers, facts("haproxy"), "wiki.example.com", 443, 80))
    assert "bind :443 ssl crt /etc/ssl/wiki.pem" in text and "wiki.pem.key" not in text
    assert text.count("cookie ROUTEID insert indirect nocache httponly secure") == 1  # Confluence's backend
    synchrony = text[text.index("\nbackend clbw-wiki-synchrony"):text.index("\nbackend clbw-wiki-confluence")]
    assert "\n    cookie ROUTEID\n" in synchrony and "insert" not in synchrony  # read, never set
    assert "http-check expect string RUNNING" in text and "option redispatch" in text
    assert "timeout tunnel 300s" in text and "http-redirect" not in text
    assert "http-request redirect prefix https://wiki.example.com code 301" in text
    assert "server node1 10.0.0.1:8090 cookie node1 check" in text
    assert "stats" not in text.replace("# Stats page: none (no stats_allow in the answers).", "")
    assert "\ndefaults" not in text
    opened = validate(raw("haproxy", tls=TLS, stats_allow=["10.0.0.0/24", "127.0.0.1"]))
    text = haproxy_render(haproxy_build(opened, facts("haproxy"), "wiki.example.com", 443, 80))
    assert "http-request deny deny_status 403 if clbw_stats !{ src 10.0.0.0/24 127.0.0.1 }" in text


# --------------------------------------------------------------------------- undo records


@pytest.mark.parametrize("step", [NGINX, HAPROXY], ids=["nginx", "haproxy"])
def test_undo_records_are_checked_against_the_answers(step: Any) -> None:
    kind = step.kind
    answers = validate(raw(kind, tls=TLS if kind == "haproxy" else {"certificate_file": "/a.crt", "key_file": "/a.key"}))
    path = answers.balancer.host_options.config_path
    assert step.undo_paths(answers, BALANCER) == frozenset({path})
    good = UndoAction(f"{kind}-reload", BALANCER, "", "", {"reload_id": "ab12"})
    vetted = step.vet_undo(answers, good, "undo record 1")
    assert vetted.data == {"reload_id": "ab12"} and answers.balancer.host_options.reload_command in vetted.manual
    for bad in ({"reload_id": "; rm -rf /"}, {}):
        with pytest.raises(UndoRecordError):
            step.vet_undo(answers, UndoAction(f"{kind}-reload", BALANCER, "", "", bad), "undo record 1")
    with pytest.raises(UndoRecordError):
        step.vet_undo(answers, UndoAction("remove-file", BALANCER, "", "", {"path": "/etc/passwd",
                                                                             "sha256_after": "0" * 64}), "r")
    with pytest.raises(UndoRecordError):
        step.vet_undo(answers, UndoAction("apache-module", BALANCER, "", "", {"module": "ssl"}), "r")


def test_apache_nginx_and_haproxy_share_one_apply_order() -> None:
    # "Record the reload's undo, mark the reload pending, write each file with its undo first, test,
    # reload, mark it done" is written once (ReloadingKind.apply): no kind keeps an order of its own.
    from wizard.balancers.apache.step import STEP as APACHE
    from wizard.balancers.reloading import ReloadingKind

    for step in (APACHE, NGINX, HAPROXY):
        assert isinstance(step, ReloadingKind)
        assert type(step).apply is ReloadingKind.apply, type(step).__name__


# --------------------------------------------------------------------------- hostile answers

HOSTILE = '"\'\\\n\r\t ;&|$`<>#%{}()*?[]~!=,:@/\x00\x1b'
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters(codec="ascii", categories=("L", "N")),
                       min_size=1, max_size=30)

INTO_THE_FILE = {
    "server_name": ("server_name",),
    "tls.certificate_file": ("tls", "certificate_file"),
    "stats_allow[0]": ("stats_allow", 0),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(INTO_THE_FILE)), value=hostile_text, kind=st.sampled_from(["nginx", "haproxy"]))
def test_a_hostile_value_is_refused_or_lands_whole(key: str, value: str, kind: str) -> None:
    if kind == "nginx" and key == "stats_allow[0]":
        return
    document = raw(kind, tls=copy.deepcopy(TLS), stats_allow=["127.0.0.1"] if kind == "haproxy" else None)
    if kind == "nginx":
        del document["balancer"]["nginx"]["stats_allow"]
    place: Any = document["balancer"][kind]
    path = INTO_THE_FILE[key]
    for part in path[:-1]:
        place = place[part]
    place[path[-1]] = value
    if key == "tls.certificate_file":
        document["balancer"][kind]["tls"]["key_file"] = value
    if find_problems(document):
        return
    answers = validate(document)
    step = NGINX if kind == "nginx" else HAPROXY
    text = step.render(answers, facts(kind))
    for line in text.splitlines():
        assert not any(ord(ch) < 32 for ch in line)
    assert value.strip() in text  # host names are taken without surrounding blanks
    assert not any(ch in value for ch in "\"\\\n;{}#")


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_the_balancer_settings_reach_nginx_and_haproxy(kind: str) -> None:
    settings = {"read_timeout": 120, "max_upload_mb": 50, "tls_protocols": ["TLSv1.3"], "hsts_max_age": 31536000}
    document = raw(kind, tls=TLS)
    document["balancer"]["settings"] = settings
    answers = validate(document)
    if kind == "nginx":
        text = nginx_render(nginx_build(answers, facts("nginx"), "wiki.example.com", 443, 80))
        assert "proxy_read_timeout 120s;" in text and "client_max_body_size 50m;" in text
        assert "ssl_protocols TLSv1.3;" in text
        assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in text
        assert "proxy_read_timeout 300s;" in text  # the WebSocket routes keep Atlassian's 300 s
    else:
        text = haproxy_render(haproxy_build(answers, facts("haproxy"), "wiki.example.com", 443, 80))
        assert "timeout server 120s" in text and f"gt {50 * 1024 * 1024} }}" in text
        assert "ssl-min-ver TLSv1.3" in text
        assert 'http-response set-header Strict-Transport-Security "max-age=31536000"' in text
        assert "timeout tunnel 300s" in text
    plain = validate(raw(kind, tls=TLS))
    rendered = (nginx_render(nginx_build(plain, facts("nginx"), "wiki.example.com", 443, 80)) if kind == "nginx"
                else haproxy_render(haproxy_build(plain, facts("haproxy"), "wiki.example.com", 443, 80)))
    assert "Strict-Transport-Security" not in rendered  # 0: no header


# --------------------------------------------------------------------------- standalone Synchrony cluster

MACHINES = [{"name": "sync1", "address": "10.0.2.21"}, {"name": "sync2", "address": "fd00::5", "port": 9000}]


def standalone(kind: str, machines: list[dict[str, Any]] | None = None, **options: Any) -> dict[str, Any]:
    document = raw(kind, tls=copy.deepcopy(TLS) if kind == "haproxy" else {"certificate_file": "/a.crt",
                                                                             "key_file": "/a.key"}, **options)
    document["synchrony"] = {"mode": "standalone", "nodes": copy.deepcopy(machines or MACHINES)}
    return document


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_standalone_with_nginx_or_haproxy_is_valid_answers(kind: str) -> None:
    assert find_problems(standalone(kind)) == []


def test_nginx_standalone_sends_every_synchrony_route_to_the_machines_without_a_cookie() -> None:
    answers = validate(standalone("nginx"))
    config = nginx_build(answers, facts("nginx"), "wiki.example.com", 443, 80)
    text = nginx_render(config)
    assert "upstream clbw_wiki_synchrony_cluster {\n    server 10.0.2.21:8091 max_fails=1 fail_timeout=10s;\n" \
           "    server [fd00::5]:9000 max_fails=1 fail_timeout=10s;\n}" in text
    ws = text[text.index("location ^~ /synchrony/v1/bayeux-sync1 {"):]
    ws = ws[:ws.index("}")]
    assert "proxy_pass http://clbw_wiki_synchrony_cluster;" in ws
    assert "proxy_set_header Upgrade $http_upgrade;" in ws and "Connection $clbw_wiki_connection;" in ws
    assert "proxy_read_timeout 300s;" in ws and "proxy_send_timeout 300s;" in ws
    http = text[text.index("location ^~ /synchrony/ {"):]
    assert "proxy_pass http://clbw_wiki_synchrony_cluster;" in http[:http.index("}")]
    assert text.index("location ^~ /synchrony/v1/bayeux-sync1") < text.index("location ^~ /synchrony/ {") \
        < text.index("location / {")
    # Never the nodes' Synchrony: no node's Synchrony port, no per-node Synchrony upstream or chooser.
    assert ":8091" not in text.replace("10.0.2.21:8091", "")
    assert "clbw_wiki_synchrony_n" not in text and "clbw_wiki_synchrony_upstream" not in text
    assert "synchrony-proxy" not in text
    # The machines are not in the map naming the node that answered: no ROUTEID from their answers.
    route_map = text[text.index("map $upstream_addr"):]
    route_map = route_map[:route_map.index("}")]
    assert "10[.]0[.]2[.]21" not in route_map and "fd00" not in route_map
    assert "passive" in text and "standalone Synchrony cluster (2 machine(s))" in text
    assert "clbw_wiki_synchrony_cluster" in {u.name for u in config.upstreams}  # checked for clashes too
    assert "\\" not in text


def test_haproxy_standalone_backend_is_the_machines_checked_on_their_heartbeat_without_a_cookie() -> None:
    answers = validate(standalone("haproxy"))
    config = haproxy_build(answers, facts("haproxy"), "wiki.example.com", 443, 80)
    text = haproxy_render(config)
    assert "use_backend clbw-wiki-synchrony if { path_beg /synchrony/ }" in text
    synchrony = text[text.index("\nbackend clbw-wiki-synchrony\n"):text.index("\nbackend clbw-wiki-confluence\n")]
    assert "server sync1 10.0.2.21:8091 check inter 5s fall 3 rise 2\n" in synchrony
    assert "server sync2 [fd00::5]:9000 check inter 5s fall 3 rise 2\n" in synchrony
    assert "http-check send meth GET uri /synchrony/heartbeat" in synchrony
    assert "http-check expect status 200" in synchrony and "timeout tunnel 300s" in synchrony
    assert "cookie ROUTEID" not in synchrony and " cookie " not in synchrony
    assert "node1" not in synchrony and "10.0.0.1" not in synchrony
    # ROUTEID is inserted by the Confluence backend only.
    assert text.count("cookie ROUTEID insert") == 1
    confluence = text[text.index("\nbackend clbw-wiki-confluence\n"):]
    assert "cookie ROUTEID insert indirect nocache httponly secure" in confluence
    assert "server node1 10.0.0.1:8090 cookie node1 check" in confluence
    assert config.sections == ("clbw-wiki", "clbw-wiki-http", "clbw-wiki-synchrony", "clbw-wiki-confluence")


def test_haproxy_standalone_refuses_a_synchrony_backend_name_another_file_defines() -> None:
    answers = validate(standalone("haproxy"))
    named = parse_sections("backend clbw-wiki-synchrony\n    server a 1.2.3.4:80\n", "/etc/haproxy/old.cfg")
    with pytest.raises(ServerError, match="old.cfg:1 already defines the backend clbw-wiki-synchrony"):
        HAPROXY.plan(answers, facts("haproxy", sections=tuple(named)))


@pytest.mark.parametrize("mode", ["direct", "standalone"])
def test_haproxy_drain_acts_on_the_nodes_backends_only(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's drain in standalone mode touches only its Confluence server: the Synchrony backend's
    servers are the Synchrony machines (here one is even named like the node), which keep serving."""
    from types import SimpleNamespace

    from wizard.balancers.haproxy import step as haproxy_step

    document = standalone("haproxy", [{"name": "node1", "address": "10.0.2.21"}], admin_socket="/run/h.sock")
    if mode == "direct":
        document["synchrony"] = {"mode": "direct"}
    answers = validate(document)
    sent: list[tuple[str, str, str]] = []
    monkeypatch.setattr(haproxy_step, "set_state",
                        lambda host, sock, backend, server, state: sent.append((backend, server, state)))
    monkeypatch.setattr(haproxy_step, "server_states", lambda host, sock: {
        ("clbw-wiki-confluence", "node1"): "UP", ("clbw-wiki-synchrony", "node1"): "UP",
        ("clbw-wiki-synchrony", "node2"): "DOWN", ("other", "x"): "DOWN"})
    ctx: Any = SimpleNamespace(answers=answers, hosts=SimpleNamespace(balancer=lambda: None))
    HAPROXY.drain(ctx, answers.node("node1"))
    HAPROXY.undrain(ctx, answers.node("node1"))
    if mode == "standalone":
        assert sent == [("clbw-wiki-confluence", "node1", "maint"), ("clbw-wiki-confluence", "node1", "ready")]
    else:
        assert sent == [("clbw-wiki-confluence", "node1", "maint"), ("clbw-wiki-synchrony", "node1", "maint"),
                        ("clbw-wiki-confluence", "node1", "ready"), ("clbw-wiki-synchrony", "node1", "ready")]
    # The health check reads the Synchrony backend in both modes (the machines in standalone).
    assert set(HAPROXY.states(ctx)) == {("clbw-wiki-confluence", "node1"), ("clbw-wiki-synchrony", "node1"),
                                        ("clbw-wiki-synchrony", "node2")}


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_the_standalone_plan_names_the_machines(kind: str) -> None:
    answers = validate(standalone(kind))
    plan = (NGINX if kind == "nginx" else HAPROXY).plan(answers, facts(kind))
    assert "standalone Synchrony cluster (sync1 10.0.2.21:8091, sync2 fd00::5:9000)" in plan.summary, plan.summary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile_text, key=st.sampled_from(["name", "address"]), kind=st.sampled_from(["nginx", "haproxy"]))
def test_a_hostile_synchrony_machine_is_refused_or_lands_whole(value: str, key: str, kind: str) -> None:
    from wizard.confluence.probes import url_host

    machine = {"name": "sync1", "address": "10.0.2.21", key: value}
    document = standalone(kind, [machine])
    if find_problems(document):
        return
    answers = validate(document)
    text = (NGINX if kind == "nginx" else HAPROXY).render(answers, facts(kind))
    for line in text.splitlines():
        assert not any(ord(ch) < 32 for ch in line)
    landed = answers.synchrony.nodes[0]
    if key == "address":
        assert f"{url_host(landed.address)}:8091" in text
    elif kind == "haproxy":  # nginx names no machine in its file: the upstream holds addresses only
        assert f"server {landed.name} " in text
    assert not any(ch in value.strip() for ch in "\"\\\n;{}#")


@pytest.mark.parametrize("mode", ["direct", "standalone"])
@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_the_drained_file_takes_the_node_out_everywhere_and_only_it(kind: str, mode: str) -> None:
    """The file a drain writes (nginx; HAProxy without admin_socket): every server line of the drained node
    is ``down`` (nginx) or ``disabled`` (HAProxy), no other line is; the standalone Synchrony machines (one
    named like the node) keep serving; the header names the drained nodes, and the file with none drained is
    byte for byte the balancer step's."""
    document = standalone(kind, [{"name": "node1", "address": "10.0.2.21"}])
    if mode == "direct":
        document["synchrony"] = {"mode": "direct"}
    answers = validate(document)
    step: Any = NGINX if kind == "nginx" else HAPROXY
    found = facts(kind)
    assert step.drains_through_file(answers) and step.drain_support(answers).can_drain
    plain = step.render(answers, found)
    assert step.render_drained(answers, found, frozenset()) == plain and step.drained_in(plain) == frozenset()
    drained = step.render_drained(answers, found, frozenset({"node1"}))
    assert step.drained_in(drained) == {"node1"}
    mark = " down;" if kind == "nginx" else " disabled"
    out = [line for line in drained.splitlines() if line.strip().startswith("server ") and line.endswith(mark)]
    node1 = [line for line in drained.splitlines() if line.strip().startswith("server ")
             and ("10.0.0.1:" in line)]
    assert out == node1 and out, drained
    assert not any("10.0.2.21" in line for line in out)  # the Synchrony machine keeps serving
    both = step.render_drained(answers, found, frozenset({"node1", "node2"}))
    assert step.drained_in(both) == {"node1", "node2"}
    # With admin_socket HAProxy drains through its runtime API instead: no file drain.
    if kind == "haproxy":
        with_socket = validate({**document, "balancer": {"kind": "haproxy", "haproxy": {
            **document["balancer"]["haproxy"], "admin_socket": "/run/haproxy/admin.sock"}}})
        assert not step.drains_through_file(with_socket)
        assert "runtime API" in step.drain_support(with_socket).summary
