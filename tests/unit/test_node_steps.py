"""The connector and restart plans from plain data (no host), and the connector on the local transport."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from wizard.answers import validate
from wizard.errors import WizardError
from wizard.transport.hosts import LocalHost
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.serverxml import ServerXmlError, read_facts
from wizard.steps.connector import STEP as CONNECTOR
from wizard.steps.restart import RestartFacts, STEP as RESTART, restart_times
from wizard.engine.state import StepRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"


def answers_for(tmp_path: Path, fixtures: list[str], public_url: str = "https://wiki.example.com", **extra):
    nodes = []
    for index, fixture in enumerate(fixtures, start=1):
        install = tmp_path / f"node{index}"
        (install / "conf").mkdir(parents=True)
        (install / "bin").mkdir()
        (install / "conf" / "server.xml").write_bytes((FIXTURES / fixture).read_bytes())
        nodes.append({"name": f"node{index}", "address": f"10.0.0.{index}", "install_dir": str(install),
                      "access": {"transport": "local"}, **extra})
    return validate({"name": "plan-test", "public_url": public_url, "nodes": nodes,
                     "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                               "config_path": "/etc/apache2/x.conf",
                                                               **({"tls": {"certificate_file": "/c.pem", "key_file": "/k.pem"}}
                                                                  if public_url.startswith("https") else {})}}})


def facts_of(answers):
    return {node.name: read_node_facts(LocalHost(node.name), node, answers) for node in answers.nodes}


def test_connector_plan_is_a_diff_per_node_that_needs_it(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["confluence-8-stock.xml", "old-proxy-name.xml"])
    plan = CONNECTOR.plan(answers, facts_of(answers))
    assert [c.target for c in plan.changes] == ["node1", "node2"]
    first = plan.changes[0]
    assert '+' in first.diff and 'proxyName="wiki.example.com"' in first.diff
    assert first.details.attributes["proxyPort"] == [None, "443"]
    assert first.details.attributes["secure"][1] == "true"
    old = plan.changes[1].details.attributes["proxyName"]
    assert old[0] == "old.example.com" and old[1] == "wiki.example.com"
    before, after = first.payload
    assert before == (FIXTURES / "confluence-8-stock.xml").read_bytes() and after != before


def test_connector_plan_is_a_noop_with_a_reason_when_every_node_is_right(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["crlf.xml"])
    facts = facts_of(answers)
    _, after = CONNECTOR.plan(answers, facts).changes[0].payload
    Path(answers.nodes[0].install_dir, "conf", "server.xml").write_bytes(after)
    plan = CONNECTOR.plan(answers, facts_of(answers))
    assert plan.is_noop and "already has" in plan.noop_reason and "proxyName=wiki.example.com" in plan.noop_reason


def test_connector_diff_masks_secrets(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["plain-and-ssl.xml"], confluence_port=8443)
    plan = CONNECTOR.plan(answers, facts_of(answers))
    text = (FIXTURES / "plain-and-ssl.xml").read_text()
    secret = text.split('keystorePass="')[1].split('"')[0]
    assert secret and secret not in plan.changes[0].diff
    assert "keystorePass=\"********\"" in plan.changes[0].diff


def test_context_path_mismatch_is_refused(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["context-path-wiki.xml"], public_url="https://wiki.example.com")
    with pytest.raises(WizardError, match="serves Confluence at /wiki"):
        CONNECTOR.plan(answers, facts_of(answers))
    matching = answers_for(tmp_path / "b", ["context-path-wiki.xml"], public_url="https://wiki.example.com/wiki")
    assert len(CONNECTOR.plan(matching, facts_of(matching)).changes) == 1


def test_a_malformed_server_xml_is_refused_naming_node_and_file(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["malformed-unclosed.xml"])
    with pytest.raises(ServerXmlError) as caught:
        facts_of(answers)
    assert caught.value.message.startswith("node1: ") and "server.xml" in caught.value.message


def test_ambiguous_connectors_ask_for_confluence_port(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["two-http-connectors.xml"])
    with pytest.raises(WizardError) as caught:
        facts_of(answers)
    assert "confluence_port" in (caught.value.hint or "")


def test_synchrony_port_comes_from_setenv(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["confluence-7-stock.xml"])
    setenv = Path(answers.nodes[0].install_dir, "bin", "setenv.sh")
    setenv.write_text('CATALINA_OPTS="-Dsynchrony.port=8099 ${CATALINA_OPTS}"\nexport CATALINA_OPTS\n')
    facts = facts_of(answers)["node1"]
    assert facts.synchrony_port == 8099 and "setenv.sh" in facts.synchrony_port_source
    assert facts.status_url("10.0.0.1") == "http://10.0.0.1:8090/status"


def test_connector_on_local_transport_applies_verifies_and_rolls_back(tmp_path: Path) -> None:
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore

    answers = answers_for(tmp_path, ["utf8-bom.xml", "single-quotes.xml"])
    originals = {n.name: Path(n.install_dir, "conf", "server.xml").read_bytes() for n in answers.nodes}
    with Runner(answers, StateStore(tmp_path / "state.json")) as runner:
        outcome = runner.apply(["connector"])
        assert outcome.exit_status == 0, outcome.message
        assert all(c.passed for c in outcome.checks) and len(outcome.checks) == 2
        for node in answers.nodes:
            data = Path(node.install_dir, "conf", "server.xml").read_bytes()
            connector = next(c for c in read_facts(data.decode("utf-8")).connectors if c.port == 8090)
            assert (connector.proxy_name, connector.proxy_port, connector.scheme, connector.secure) == \
                ("wiki.example.com", 443, "https", True)
        assert Path(answers.nodes[0].install_dir, "conf", "server.xml").read_bytes().startswith(b"\xef\xbb\xbf")
        assert runner.rollback("connector").exit_status == 0
    for node in answers.nodes:
        assert Path(node.install_dir, "conf", "server.xml").read_bytes() == originals[node.name]


class CountingHost(LocalHost):
    """A local host that counts the files it reads (each read is SSH round trips on a real node)."""

    def __init__(self, label: str, reads: Counter) -> None:
        super().__init__(label)
        self.reads = reads

    def read_bytes(self, path: str) -> bytes:
        self.reads[path] += 1
        return super().read_bytes(path)


def test_connector_verify_reads_each_node_s_files_once(tmp_path: Path) -> None:
    """Its two checks (the Connector, the Synchrony option in setenv.sh) share one read of each
    node; they read every node twice, in two rounds, when the setenv.sh check came in."""
    from wizard.engine.step import Context
    from wizard.transport.pool import HostPool

    answers = answers_for(tmp_path, ["confluence-7-stock.xml", "confluence-7-stock.xml", "confluence-7-stock.xml"])
    answers.synchrony.mode = "internal-proxy"  # a mode whose option the verify checks in setenv.sh
    stock_setenv = (FIXTURES.parent / "setenv" / "confluence-7-stock.sh").read_bytes()
    for node in answers.nodes:
        Path(node.install_dir, "bin", "setenv.sh").write_bytes(stock_setenv)
    plan = CONNECTOR.plan(answers, facts_of(answers))
    for change in plan.changes:
        Path(change.details.path).write_bytes(change.payload[1])
    reads: Counter = Counter()
    ctx = Context(answers=answers, hosts=HostPool(answers, lambda label, *_: CountingHost(label, reads)))
    checks = CONNECTOR.verify(ctx)
    assert [(c.name, c.target, c.passed) for c in checks] == [
        *[("Connector proxy settings", n.name, True) for n in answers.nodes],
        *[("-Dsynchrony.proxy.enabled in setenv.sh", n.name, True) for n in answers.nodes]]
    files = [p for n in answers.nodes for p in (Path(n.install_dir, "conf", "server.xml"),
                                                 Path(n.install_dir, "bin", "setenv.sh"))]
    assert reads == Counter({str(path): 1 for path in files})


def facts(restarted_at, last_change, names=("node1", "node2")):
    return RestartFacts(commands={n: f"restart {n}" for n in names}, command_sources={n: "test" for n in names},
                        status_urls={n: f"http://{n}:8090/status" for n in names},
                        restarted_at=restarted_at, last_connector_change=last_change)


def test_restart_plan_rolls_every_node_in_order_when_never_restarted(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["confluence-7-stock.xml", "confluence-7-stock.xml"])
    plan = RESTART.plan(answers, facts({}, None))
    assert [c.target for c in plan.changes] == ["node1", "node2"]
    assert [c.details.order for c in plan.changes] == [1, 2]
    assert all(c.kind == "command" and "RUNNING" in c.summary for c in plan.changes)


def test_restart_plan_skips_nodes_restarted_since_the_last_connector_change(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["confluence-7-stock.xml", "confluence-7-stock.xml"])
    half = RESTART.plan(answers, facts({"node1": "2026-11-20T10:05:00+00:00"}, "2026-11-20T10:00:00+00:00"))
    assert [c.target for c in half.changes] == ["node2"] and "node1 already restarted" in half.summary
    done = RESTART.plan(answers, facts({"node1": "2026-11-20T10:05:00+00:00", "node2": "2026-11-20T10:06:00+00:00"},
                                       "2026-11-20T10:00:00+00:00"))
    assert done.is_noop and "nothing new needs a restart" in done.noop_reason
    again = RESTART.plan(answers, facts({"node1": "2026-11-20T10:05:00+00:00", "node2": "2026-11-20T10:06:00+00:00"},
                                        "2026-11-20T11:00:00+00:00"))
    assert [c.target for c in again.changes] == ["node1", "node2"]


def test_manual_restart_plan_tells_the_admin_what_to_run(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, ["confluence-7-stock.xml"])
    answers.restart = "manual"
    plan = RESTART.plan(answers, facts({}, None, names=("node1",)))
    assert plan.changes[0].kind == "manual" and "you restart it (restart node1)" in plan.changes[0].summary


def test_restart_times_take_each_nodes_latest_restart() -> None:
    record = StepRecord.from_dict({"name": "restart", "changes": [
        {"kind": "restart", "target": "node1", "at": "2026-11-20T10:00:00+00:00"},
        {"kind": "restart", "target": "node1", "at": "2026-11-20T12:00:00+00:00"},
        {"kind": "restart", "target": "node2", "at": "2026-11-20T11:00:00+00:00"},
        {"kind": "file", "target": "node2", "at": "2026-11-20T13:00:00+00:00"}]})
    assert restart_times(record) == {"node1": "2026-11-20T12:00:00+00:00", "node2": "2026-11-20T11:00:00+00:00"}


class _Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, nothing catches it."""


def test_a_server_xml_written_by_an_apply_killed_before_recording_it_still_needs_a_restart(
        tmp_path: Path, monkeypatch) -> None:
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore
    from wizard.engine import step as base_module
    from wizard.steps.restart import last_file_change

    answers = answers_for(tmp_path, ["confluence-7-stock.xml"])
    server_xml = Path(answers.nodes[0].install_dir, "conf", "server.xml")
    original = server_xml.read_bytes()
    store = StateStore(tmp_path / "state.json")

    def killed(self, **change) -> None:
        raise _Killed  # the file is written; the change is never recorded

    monkeypatch.setattr(base_module.Journal, "changed", killed)
    with pytest.raises(_Killed), Runner(answers, store) as runner:
        runner.apply(["connector"])
    monkeypatch.undo()
    assert server_xml.read_bytes() != original
    record = store.load().steps["connector"]
    assert record.changes == [] and record.undo  # only the undo reached the state

    changed = last_file_change(record)
    assert changed is not None
    # node1 was restarted before this apply: the server.xml written since is not in effect yet.
    plan = RESTART.plan(answers, facts({"node1": "2000-01-01T00:00:00+00:00"}, changed, names=("node1",)))
    assert [c.target for c in plan.changes] == ["node1"]
