"""Preflight on the local transport: what it looks for before anything changes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wizard.answers import validate
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore

STOCK = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml" / "confluence-8-stock.xml"


def answers_with(tmp_path: Path, base_url: dict):
    nodes = []
    for index in (1, 2):
        install = tmp_path / f"node{index}"
        (install / "conf").mkdir(parents=True)
        (install / "conf" / "server.xml").write_bytes(STOCK.read_bytes())
        # Closed loopback ports: the version probe gets its answer (none) at once, and
        # internal-proxy asks for no Synchrony heartbeat on the nodes.
        nodes.append({"name": f"node{index}", "address": "127.0.0.1", "confluence_port": index,
                      "install_dir": str(install), "access": {"transport": "local"}, "restart_command": "true"})
    return validate({"name": "preflight-test", "public_url": "http://wiki.example.com", "nodes": nodes,
                     "base_url": base_url, "synchrony": {"mode": "internal-proxy"},
                     "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                               "config_path": str(tmp_path / "site.conf"),
                                                               "configtest_command": "true",
                                                               "reload_command": "true"}}})


def preflight_checks(tmp_path: Path, base_url: dict):
    with Runner(answers_with(tmp_path, base_url), StateStore(tmp_path / "state.json")) as runner:
        outcome = runner.apply(["preflight"])
    return outcome, [c for c in outcome.checks if c.name.startswith("psql")]


@pytest.mark.parametrize(("psql", "found"), [(sys.executable, True), ("python3", True),
                                             ("/nowhere/bin/psql", False), ("clbw-no-such-psql", False)])
def test_the_postgres_method_needs_psql_on_the_first_node(tmp_path: Path, psql: str, found: bool) -> None:
    outcome, checks = preflight_checks(tmp_path, {"method": "postgres", "database": {"psql": psql}})
    assert [(c.target, c.passed) for c in checks] == [("node1", found)]  # only where psql runs
    if not found:
        assert outcome.exit_status == 1
        assert "not found on node1" in checks[0].seen
        assert "postgresql-client" in checks[0].fix and "base_url.method: guided" in checks[0].fix


def test_the_guided_method_does_not_look_for_psql(tmp_path: Path) -> None:
    outcome, checks = preflight_checks(tmp_path, {"method": "guided"})
    assert checks == [] and outcome.exit_status == 0, outcome.message
