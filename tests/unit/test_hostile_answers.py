"""Hostile input is normal input: every answers value that reaches a file or a command line,
drawn from generated hostile strings, is either refused when the answers are read (exit 2,
the key named) or lands as exactly one argument of exactly the intended directive or attribute.

A fuzz test then throws generated answers files at `plan` itself: never a traceback, never a
hang, never a change on disk.
"""

from __future__ import annotations

import copy
import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_apache_template import plain_facts, render_for

from wizard.answers import find_problems, validate
from wizard.confluence.serverxml import plan_connector_edit
from wizard.balancers.apache.vhost import NodeTarget

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STOCK = (FIXTURES / "serverxml" / "confluence-7-stock.xml").read_text(encoding="utf-8")

#: Characters that end a quoted argument, a directive, a comment or a shell word, and some that
#: merely look odd; mixed with ordinary ones so that plausible values are drawn too.
HOSTILE = '"\'\\\n\r\t ;&|$`<>#%{}()*?[]~!=,:@/\x00\x1b\u2028\u00e9\u0663'
hostile_text = st.text(alphabet=st.sampled_from(HOSTILE) | st.characters(codec="ascii", categories=("L", "N")),
                       min_size=1, max_size=40)

BASE: dict[str, Any] = {
    "name": "hostile", "public_url": "https://wiki.example.com",
    "nodes": [{"name": "node1", "address": "10.0.0.1", "access": {"transport": "local"}},
              {"name": "node2", "address": "10.0.0.2", "access": {"transport": "local"}}],
    "balancer": {"kind": "apache", "apache": {
        "access": {"transport": "local"}, "config_path": "/etc/apache2/sites-available/confluence-lb.conf",
        "server_name": "wiki.example.com", "manager_allow": ["127.0.0.1"],
        "tls": {"certificate_file": "/etc/ssl/wiki.crt", "key_file": "/etc/ssl/wiki.key"}}},
}

#: Every answers value that is written into the vhost: its dotted key and where it is in BASE.
INTO_THE_VHOST = {
    "name": ("name",),
    "balancer.apache.server_name": ("balancer", "apache", "server_name"),
    "balancer.apache.tls.certificate_file": ("balancer", "apache", "tls", "certificate_file"),
    "balancer.apache.tls.key_file": ("balancer", "apache", "tls", "key_file"),
    "balancer.apache.manager_allow[0]": ("balancer", "apache", "manager_allow", 0),
    "nodes[0].address": ("nodes", 0, "address"),
    "nodes[0].name": ("nodes", 0, "name"),
}


def with_value(path: tuple, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    place: Any = raw
    for part in path[:-1]:
        place = place[part]
    place[path[-1]] = value
    return raw


def tokens(line: str) -> list[str]:
    """One configuration line as Apache splits it: words, and double-quoted arguments whole."""
    return re.findall(r'"(?:[^"\\]|\\.)*"|[^\s"]+', line)


def shape(text: str) -> list[tuple[str, int]]:
    """Every directive line's name and its number of arguments (comments and blanks skipped)."""
    lines = [line.strip() for line in text.splitlines()]
    return [(tokens(line)[0], len(tokens(line))) for line in lines if line and not line.startswith("#")]


def render(raw: dict[str, Any]) -> str:
    """The vhost for these answers, with each node where its answers say it is."""
    answers = validate(raw)
    nodes = tuple(NodeTarget(node.name, node.address, 8090, 8091, answers.public_url.context_path, "test")
                  for node in answers.nodes)
    return render_for(answers, plain_facts(), nodes)


BASELINE = shape(render(BASE))


@pytest.mark.parametrize("key", sorted(INTO_THE_VHOST))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=hostile_text)
@example(value='/etc/ssl/wiki.crt"\n  Header always set X-Injected "yes')
@example(value="fe80::1%x\n  Require all granted")
@example(value='10.0.0.1"\nProxyPass / http://evil/')
def test_a_hostile_value_is_refused_or_lands_as_one_argument(key: str, value: str) -> None:
    raw = with_value(INTO_THE_VHOST[key], value)
    problems = find_problems(raw)
    if problems:
        assert key in {problem.key for problem in problems}, problems
        return
    text = render(raw)
    # Same directives, each with as many arguments as with a plain value: nothing added, nothing split.
    assert shape(text) == BASELINE
    assert value.strip() in text  # host names are taken without surrounding blanks


@settings(max_examples=200, deadline=None)
@given(host=hostile_text, context=hostile_text)
@example(host='wiki"/><Valve className="x', context="")
def test_the_public_url_reaches_the_connector_as_exactly_its_host(host: str, context: str) -> None:
    raw = with_value(("public_url",), f"https://{host}/{context}")
    if find_problems(raw):
        return  # refused, with the key named (the answers tests cover the messages)
    answers = validate(raw)
    edit = plan_connector_edit(STOCK, port=8090, proxy_name=answers.public_url.host, proxy_port=443,
                               scheme="https")
    connectors = [c for c in ET.fromstring(edit.new_text).iter("Connector") if c.get("port") == "8090"]
    assert [c.get("proxyName") for c in connectors] == [answers.public_url.host]
    assert shape(render(raw)) == BASELINE or answers.public_url.context_path  # a context path adds its redirect


# --------------------------------------------------------------------------- fuzz over whole files

keys = st.sampled_from(["name", "public_url", "nodes", "balancer", "synchrony", "base_url", "restart",
                        "version", "address", "access", "apache", "kind", "tls", "port", "password"])
scalars = st.none() | st.booleans() | st.integers(-2, 70000) | hostile_text
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                         max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(document=documents)
def test_any_document_gives_problems_or_answers_never_a_traceback(document: Any) -> None:
    started = time.monotonic()
    problems = find_problems(document if isinstance(document, dict) else {"nodes": document})
    assert all(problem.key and problem.message for problem in problems)
    assert time.monotonic() - started < 5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.dictionaries(keys, documents, max_size=3))
def test_plan_on_a_hostile_file_exits_with_a_status_and_changes_nothing(tmp_path_factory, mutation) -> None:
    from wizard import cli

    work = tmp_path_factory.mktemp("fuzz")
    raw = copy.deepcopy(BASE)
    raw["nodes"] = [dict(node, install_dir=str(work / node["name"])) for node in raw["nodes"]]
    raw["balancer"]["apache"]["config_path"] = str(work / "apache" / "lb.conf")
    raw.update(mutation)
    answers_file = work / "answers.yaml"
    answers_file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    before = {path: path.stat().st_mtime_ns for path in work.rglob("*")}
    started = time.monotonic()
    status = cli.main(["plan", "--answers", str(answers_file), "--state", str(work / "s" / "x.state.json")])
    assert status in (0, 1, 2, 3)
    assert time.monotonic() - started < 5
    assert {path: path.stat().st_mtime_ns for path in work.rglob("*")} == before
    assert not (work / "s").exists()


def test_hostile_yaml_is_refused_quickly_with_the_reason(tmp_path: Path) -> None:
    from wizard.answers import load_answers_file
    from wizard.errors import AnswersError

    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8))
    cases = {
        "bomb": (bomb, "aliases"),
        "self": ("name: &a [*a]\n", "refers to itself"),
        "loop": ("balancer: &m {apache: *m}\n", "refers to itself"),
        "deep": ("[" * 10000, "nested too deeply"),
        "huge": ("name: " + "x" * (2 * 1024 * 1024) + "\n", "larger than"),
        "digits": ("public_url: http://localhost:\u0664\u0669\u0668\u0664\u0669\n", None),
    }
    for name, (text, reason) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        started = time.monotonic()
        try:
            raw = load_answers_file(path)
        except AnswersError as refused:
            assert reason and reason in refused.problems[0].message, (name, refused.problems)
            assert len(str(refused)) < 2000
        else:
            assert reason is None, name
            problems = {p.key: p.message for p in find_problems(raw)}
            assert "port" in problems["public_url"], problems
        assert time.monotonic() - started < 5, name
    assert os.listdir(tmp_path)  # the files were there to read


# --- issue 16: standalone Synchrony machines and balancer.settings ------------------------------


def _standalone(machine: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw["synchrony"] = {"mode": "standalone", "nodes": [machine]}
    if settings is not None:
        raw["balancer"]["settings"] = settings
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(address=hostile_text, name=hostile_text)
@example(address='10.0.2.1" route=x', name="sync1")
@example(address="10.0.2.1\nProxyPass / http://evil/", name="sync1")
@example(address="sync.internal", name="s1 route=node1")
def test_a_hostile_synchrony_machine_is_refused_or_lands_as_one_member(address: str, name: str) -> None:
    raw = _standalone({"name": name, "address": address, "port": 8091})
    problems = {problem.key for problem in find_problems(raw)}
    if problems:
        assert problems & {"synchrony.nodes[0].address", "synchrony.nodes[0].name"}
        return
    text = render_for(validate(raw), plain_facts())
    members = [line.strip() for line in text.splitlines() if line.strip().startswith("BalancerMember")
               and ":8091\"" in line and "route=" not in line]
    assert len(members) == 2  # the WebSocket and the HTTP balancer, one member each
    for member in members:
        assert re.fullmatch(r'BalancerMember "(?:ws|http)://[^"\s]+:8091"(?: retry=\d+)?(?: upgrade=websocket)?'
                            r'(?: timeout=\d+)?(?: hcmethod=GET hcexpr=clbw_answers hcuri=/synchrony/heartbeat'
                            r' hcinterval=\d+ hcpasses=\d+ hcfails=\d+)?',
                            member), member


@pytest.mark.parametrize("settings_, key", [
    ({"read_timeout": "300; ProxyPass / http://evil/"}, "balancer.settings.read_timeout"),
    ({"max_upload_mb": "250\"\nRewriteEngine Off"}, "balancer.settings.max_upload_mb"),
    ({"tls_protocols": ["TLSv1.2 +SSLv3"]}, "balancer.settings.tls_protocols[0]"),
    ({"tls_protocols": ["all"]}, "balancer.settings.tls_protocols[0]"),
    ({"tls_protocols": []}, "balancer.settings.tls_protocols"),
    ({"hsts_max_age": "31536000; includeSubDomains"}, "balancer.settings.hsts_max_age"),
    ({"hsts_max_age": True}, "balancer.settings.hsts_max_age"),
    ({"read_timeout": 1e9}, "balancer.settings.read_timeout"),
])
def test_hostile_settings_are_refused_naming_the_key(settings_: dict[str, Any], key: str) -> None:
    raw = copy.deepcopy(BASE)
    raw["balancer"]["settings"] = settings_
    assert key in {problem.key for problem in find_problems(raw)}


@settings(max_examples=100, deadline=None)
@given(timeout=st.integers(1, 3600), upload=st.integers(1, 102400), hsts=st.integers(0, 63072000),
       protocols=st.sampled_from([["TLSv1.2"], ["TLSv1.3"], ["TLSv1.2", "TLSv1.3"], ["TLSv1.3", "TLSv1.2"]]))
def test_every_valid_setting_lands_as_exactly_its_directive(timeout, upload, hsts, protocols) -> None:
    raw = copy.deepcopy(BASE)
    raw["balancer"]["settings"] = {"read_timeout": timeout, "max_upload_mb": upload, "hsts_max_age": hsts,
                                   "tls_protocols": protocols}
    lines = [line.strip() for line in render_for(validate(raw), plain_facts()).splitlines()]
    assert f"ProxyTimeout {timeout}" in lines
    assert f'RewriteCond expr "%{{HTTP:Content-Length}} -gt {upload * 1024 * 1024}"' in lines
    assert "SSLProtocol -all " + " ".join(f"+{p}" for p in protocols) in lines
    hsts_lines = [line for line in lines if "Strict-Transport-Security" in line]
    assert hsts_lines == ([f'Header always set Strict-Transport-Security "max-age={hsts}"'] if hsts else [])


@pytest.mark.parametrize("value", ["30; reboot", "30\n", -1, 3601, True, 2.5, [30], "$(sleep 9)"])
def test_restart_drain_takes_only_a_number_of_seconds(value: Any) -> None:
    """restart_drain becomes a sleep (and an ALB deregistration delay): only whole seconds in range pass."""
    problems = find_problems({**copy.deepcopy(BASE), "restart_drain": value})
    assert "restart_drain" in {problem.key for problem in problems}, problems


# --- balancer.alb.allowed_cidrs: what reaches AWS's security group rules (and the manual undo) -------

ALB_BASE: dict[str, Any] = {
    "name": "hostile", "public_url": "https://wiki.example.com",
    "nodes": [{"name": "node1", "address": "10.0.0.1", "instance_id": "i-0123456789abcdef0"}],
    "balancer": {"kind": "alb", "alb": {
        "region": "eu-west-1", "vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0a", "subnet-0b"],
        "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}},
}
#: What a CIDR may look like, so that generated values are often almost right.
cidr_text = st.text(alphabet=st.sampled_from("0123456789abcdefABCDEF.:/%x \n\"';$-\u0663\u00b2"), min_size=1,
                    max_size=45)


def _with_cidrs(cidrs: Any) -> dict[str, Any]:
    raw = copy.deepcopy(ALB_BASE)
    raw["balancer"]["alb"]["allowed_cidrs"] = cidrs
    return raw


@settings(max_examples=300, deadline=None)
@given(value=cidr_text | hostile_text)
@example(value="10.0.0.0/8 0.0.0.0/0")
@example(value="10.0.0.1/24")
@example(value="\u0663.0.0.0/8")
@example(value="fe80::/10%eth0")
@example(value="::ffff:0.0.0.0/96")
@example(value="0.0.0.0/0\n")
def test_a_hostile_network_is_refused_or_becomes_exactly_one_normalised_network(value: str) -> None:
    raw = _with_cidrs([value])
    problems = find_problems(raw)
    if problems:
        assert {problem.key for problem in problems} == {"balancer.alb.allowed_cidrs[0]"}, problems
        assert all(len(problem.message) < 400 for problem in problems)
        return
    import ipaddress

    (network,) = validate(raw).balancer.alb.allowed_cidrs  # type: ignore[union-attr]
    # What reaches AWS and the runbook's manual command: only the characters of a network, in the
    # one spelling AWS reports back, so a second apply compares equal.
    assert re.fullmatch(r"[0-9a-f.:]+/[0-9]{1,3}", network), network
    assert str(ipaddress.ip_network(network)) == network
    assert ipaddress.ip_network(value, strict=True) == ipaddress.ip_network(network)


def test_allowed_cidrs_are_refused_whole_when_absurd_and_quickly() -> None:
    started = time.monotonic()
    problems = find_problems(_with_cidrs(["10.0.0.0/8"] * 1_000_000))
    assert time.monotonic() - started < 2
    assert [(p.key, p.message.split(";")[0]) for p in problems] == [
        ("balancer.alb.allowed_cidrs", "lists 1000000 entries")]
    for cidrs, key in ((["10.0.0.0/8", "10.0.0.0/08"], "balancer.alb.allowed_cidrs"),  # the same once normalised
                       ([], "balancer.alb.allowed_cidrs"),
                       ("0.0.0.0/0", "balancer.alb.allowed_cidrs"),
                       ([{"cidr": "10.0.0.0/8"}], "balancer.alb.allowed_cidrs[0]"),
                       ([167772160], "balancer.alb.allowed_cidrs[0]")):
        assert key in {p.key for p in find_problems(_with_cidrs(cidrs))}, cidrs
    assert validate(_with_cidrs(["2001:DB8:0::/32", "198.51.100.7", "0.0.0.0/0"])).balancer.alb.allowed_cidrs == \
        ["2001:db8::/32", "198.51.100.7/32", "0.0.0.0/0"]
