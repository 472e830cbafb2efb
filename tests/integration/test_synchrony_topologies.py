"""Issue 16 over a REAL Apache: standalone Synchrony, the setenv.sh options, direct mode's refusal
of a node without Synchrony, and balancer.settings taking effect.

Simulated nodes (the lab's simulated node, wizard/lab/node.py) stand in for Confluence and for the machines
of a standalone Synchrony cluster (only their Synchrony port is used for those); the nodes'
install folders hold a server.xml and a bin/setenv.sh shaped like Atlassian's.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from test_apache_balancer import SERVER_NAME, Lab, make_lab

from wizard.answers import validate
from wizard.confluence.checks import MACHINE_SYNCHRONY_FIRST, NODE_SYNCHRONY_FIRST
from wizard.confluence.setenv import option_line
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED

pytestmark = pytest.mark.integration

STOCK_SETENV = (Path(__file__).resolve().parents[1] / "fixtures" / "setenv" / "confluence-7-stock.sh").read_text()


def setenv_files(lab: Lab) -> dict[str, Path]:
    return {node["name"]: Path(node["install_dir"]) / "bin" / "setenv.sh" for node in lab.raw["nodes"]}


def stock_setenv(lab: Lab) -> dict[str, bytes]:
    """Give every node Atlassian's stock setenv.sh with its Synchrony port; the bytes as written."""
    written = {}
    for node, path in zip(lab.nodes, setenv_files(lab).values()):
        text = STOCK_SETENV.replace("export CATALINA_OPTS",
                                    f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n'
                                    "export CATALINA_OPTS")
        path.write_text(text)
        written[path.parent.parent.name] = text.encode()
    return written


def run(lab: Lab, raw: dict, verb: str, *names: str):
    with Runner(validate(raw), StateStore(lab.state), events=lab.events.append, command="test") as runner:
        if verb == "rollback":
            return runner.rollback(names[0])
        return runner.apply(list(names))


def standalone_lab(tmp_path, apache_factory, lab_node_factory, **settings) -> tuple[Lab, list]:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, tls=True)
    synchrony = [lab_node_factory(f"sync{i}", echo_pages=True) for i in (1, 2)]
    lab.raw["synchrony"] = {"mode": "standalone", "nodes": [
        {"name": s.name, "address": "127.0.0.1", "port": s.synchrony_port} for s in synchrony]}
    if settings:
        lab.raw["balancer"]["settings"] = settings
    return lab, synchrony


def test_standalone_synchrony_cluster_behind_apache_with_setenv_edited_and_restored(
        tmp_path, apache_factory, lab_node_factory) -> None:
    lab, synchrony = standalone_lab(tmp_path, apache_factory, lab_node_factory)
    before = stock_setenv(lab)
    outcome = run(lab, lab.raw, "apply", "connector", "balancer")
    assert outcome.exit_status == EXIT_OK, (outcome.message, [c for c in outcome.checks if not c.passed])
    names = {check.name for check in outcome.checks if check.passed}
    assert "Synchrony service URL in setenv.sh ends in /v1" in names
    assert any("heartbeat" in name for name in names) and any("WebSocket" in name for name in names)

    # Every Confluence node's setenv.sh: exactly one line more, every other byte kept.
    wanted = option_line("apache-lab", "synchrony.service.url", f"https://{SERVER_NAME}/synchrony/v1") + "\n"
    for name, path in setenv_files(lab).items():
        after = path.read_bytes()
        assert after.count(wanted.encode()) == 1 and after.replace(wanted.encode(), b"", 1) == before[name]

    # Heartbeat and WebSocket through Apache reach the Synchrony machines, never the nodes' own Synchrony.
    answered = {lab.get("/synchrony/heartbeat").headers["x-node"] for _ in range(6)}
    assert answered == {"sync1", "sync2"}
    assert lab.get("/synchrony/heartbeat").text == "OK"
    assert re.fullmatch(r"sync[12]: hello", lab.websocket())
    assert not any(key.startswith("synchrony") for node in lab.nodes for key in node.hits)
    # A Synchrony answer never moves the user's Confluence route.
    with lab.client() as client:
        client.get(lab.base + "/status")
        route = client.cookies.get("ROUTEID")
        assert "set-cookie" not in client.get(lab.base + "/synchrony/heartbeat").headers
        assert client.cookies.get("ROUTEID") == route

    # A second apply changes nothing.
    edited = {name: path.read_bytes() for name, path in setenv_files(lab).items()}
    with Runner(validate(lab.raw), StateStore(lab.state), command="test") as runner:
        assert runner.plan(["connector"])[0].is_noop
    assert run(lab, lab.raw, "apply", "connector").exit_status == EXIT_OK
    assert {name: path.read_bytes() for name, path in setenv_files(lab).items()} == edited
    # Rollback puts setenv.sh back byte for byte.
    assert run(lab, lab.raw, "rollback", "connector").exit_status == EXIT_OK
    for name, path in setenv_files(lab).items():
        assert path.read_bytes() == before[name]


def test_internal_proxy_sets_the_flag_and_direct_removes_only_it(tmp_path, apache_factory,
                                                                 lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, mode="internal-proxy")
    before = stock_setenv(lab)
    assert run(lab, lab.raw, "apply", "connector").exit_status == EXIT_OK
    flag = option_line("apache-lab", "synchrony.proxy.enabled", "true") + "\n"
    for name, path in setenv_files(lab).items():
        assert path.read_bytes().replace(flag.encode(), b"", 1) == before[name]
        assert path.read_text().count(flag) == 1
    direct = copy.deepcopy(lab.raw)
    direct["synchrony"] = {"mode": "direct"}
    outcome = run(lab, direct, "apply", "connector")
    assert outcome.exit_status == EXIT_OK, outcome.message
    for name, path in setenv_files(lab).items():
        assert path.read_bytes() == before[name]


def test_internal_proxy_leaves_the_admins_own_flag_alone(tmp_path, apache_factory, lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, mode="internal-proxy", count=1)
    path = next(iter(setenv_files(lab).values()))
    path.write_text(path.read_text() + 'CATALINA_OPTS="-Dsynchrony.proxy.enabled=false ${CATALINA_OPTS}"\n')
    before = path.read_bytes()
    with Runner(validate(lab.raw), StateStore(lab.state), command="test") as runner:
        plans = runner.plan(["connector"])
    plan = plans[0]
    assert not any(c.details.role == "setenv" for c in plan.changes)
    assert "-Dsynchrony.proxy.enabled=false is set by the admin: left as it is" in plan.summary
    assert path.read_bytes() == before


def test_direct_mode_refuses_a_node_without_synchrony_before_any_change(tmp_path, apache_factory,
                                                                        lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    # node2's setenv.sh names a Synchrony port nothing listens on: a node that runs no Synchrony.
    closed = httpx_free_port()
    path = setenv_files(lab)["node2"]
    path.write_text(f'CATALINA_OPTS="-Dsynchrony.port={closed} ${{CATALINA_OPTS}}"\n')
    config_before = lab.apache.config_path.read_bytes() if lab.apache.config_path.exists() else None
    outcome = run(lab, lab.raw, "apply", "balancer")
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "node2" in outcome.message and "node1" not in outcome.message.split("Nothing was changed")[0]
    assert "Nothing was changed" in outcome.message
    after = lab.apache.config_path.read_bytes() if lab.apache.config_path.exists() else None
    assert after == config_before
    # The preflight refuses the same node, by name.
    preflight = run(lab, lab.raw, "apply", "preflight")
    assert preflight.exit_status == EXIT_STEP_FAILED
    heartbeats = [(c.target, c.passed) for c in preflight.checks if c.name == NODE_SYNCHRONY_FIRST]
    assert heartbeats == [("node1", True), ("node2", False)]


def httpx_free_port() -> int:
    from wizard.lab.processes import free_port

    return free_port()


def test_settings_take_effect_on_real_apache(tmp_path, apache_factory, lab_node_factory) -> None:
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    lab.raw["balancer"]["settings"] = {"read_timeout": 1, "max_upload_mb": 1}
    outcome = lab.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    text = lab.apache.config_path.read_text()
    assert "ProxyTimeout 1\n" in text and '"%{HTTP:Content-Length} -gt 1048576"' in text
    # A node that answers past the read timeout: Apache's own 502.
    slow = lab.get("/clbw-slow?3")
    assert slow.status_code == 502 and "x-node" not in slow.headers
    assert lab.get("/clbw-slow?0.1").text == "late"
    # An upload over the limit that declares its length: 413, and no node sees it.
    with lab.client() as client:
        big = client.post(lab.base + "/pages/doattachfile.action", content=b"x" * (1024 * 1024 + 1))
        small = client.post(lab.base + "/pages/doattachfile.action", content=b"x" * 1000)
    assert big.status_code == 413
    assert small.status_code == 200 and small.json()["received"] == 1000
    # Only the small upload reached a node.
    assert sum(node.hits.get("confluence /pages/doattachfile.action", 0) for node in lab.nodes) == 1
    # X-Forwarded-For reaches the node.
    assert lab.get("/anything").json()["x_forwarded_for"] == "127.0.0.1"


def test_standalone_refuses_a_synchrony_machine_that_does_not_answer_before_any_change(
        tmp_path, apache_factory, lab_node_factory) -> None:
    lab, synchrony = standalone_lab(tmp_path, apache_factory, lab_node_factory)
    lab.raw["restart"] = "manual"  # the lab's nodes have no restart command: every other check passes
    before = stock_setenv(lab)
    synchrony[1].stop_synchrony()  # sync2 is down: its port refuses connections
    port = synchrony[1].synchrony_port

    config_before = lab.apache.config_path.read_bytes() if lab.apache.config_path.exists() else None

    def unchanged() -> bool:
        after = lab.apache.config_path.read_bytes() if lab.apache.config_path.exists() else None
        return after == config_before and all(path.read_bytes() == before[name]
                                              for name, path in setenv_files(lab).items())

    # A whole apply stops at the preflight, which names the machine: nothing anywhere changed.
    preflight = run(lab, lab.raw, "apply")
    assert preflight.exit_status == EXIT_STEP_FAILED
    assert unchanged()
    assert [(c.name, c.target) for c in preflight.checks if not c.passed] == [(MACHINE_SYNCHRONY_FIRST, "sync2")]
    machines = {c.target: c for c in preflight.checks if c.name == MACHINE_SYNCHRONY_FIRST}
    assert {name: check.passed for name, check in machines.items()} == {"sync1": True, "sync2": False}
    assert f"http://127.0.0.1:{port}/synchrony/heartbeat: no answer" in machines["sync2"].seen
    assert "Start Synchrony on sync2" in machines["sync2"].fix and str(port) in machines["sync2"].fix
    # The nodes' own Synchrony is not what standalone mode uses: not probed.
    assert not [c for c in preflight.checks if c.name == NODE_SYNCHRONY_FIRST]

    # The balancer step refuses too, naming the machine, whatever --only chose; nothing changes.
    outcome = run(lab, lab.raw, "apply", "balancer")
    assert outcome.exit_status == EXIT_STEP_FAILED
    message = outcome.message.split("Nothing was changed")[0]
    assert "standalone" in message and "sync2" in message and "sync1" not in message
    assert unchanged()

    synchrony[1].start_synchrony()
    again = run(lab, lab.raw, "apply", "preflight")
    assert again.exit_status == EXIT_OK, [c for c in again.checks if not c.passed]
    assert all(c.passed for c in again.checks if c.name == MACHINE_SYNCHRONY_FIRST)


def test_standalone_with_a_context_path_keeps_synchrony_at_the_public_origin(
        tmp_path, apache_factory, lab_node_factory) -> None:
    """public_url https://wiki.example.com/wiki: every node's service URL stays <origin>/synchrony/v1 and
    Apache serves /synchrony at the root from the machines, Confluence under /wiki (why the context
    path is not in the service URL: wizard.confluence.setenv.service_url)."""
    lab = make_lab(tmp_path, apache_factory, lab_node_factory, tls=True, context="/wiki")
    synchrony = [lab_node_factory(f"sync{i}", echo_pages=True) for i in (1, 2)]
    lab.raw["synchrony"] = {"mode": "standalone", "nodes": [
        {"name": s.name, "address": "127.0.0.1", "port": s.synchrony_port} for s in synchrony]}
    before = stock_setenv(lab)
    outcome = run(lab, lab.raw, "apply", "connector", "balancer")
    assert outcome.exit_status == EXIT_OK, (outcome.message, [c for c in outcome.checks if not c.passed])
    assert any(c.passed and c.name.endswith("(/synchrony/heartbeat)") for c in outcome.checks)

    wanted = option_line("apache-lab", "synchrony.service.url", f"https://{SERVER_NAME}/synchrony/v1") + "\n"
    for name, path in setenv_files(lab).items():
        assert path.read_bytes().replace(wanted.encode(), b"", 1) == before[name]
    assert {lab.get("/synchrony/heartbeat").headers["x-node"] for _ in range(6)} == {"sync1", "sync2"}
    assert re.fullmatch(r"sync[12]: hello", lab.websocket())
    status = lab.get("/wiki/status")
    assert status.json()["state"] == "RUNNING" and status.headers["x-node"] in {"node1", "node2"}
    # <ctx>/synchrony is Confluence's own path here, never the Synchrony machines'.
    assert lab.get("/wiki/synchrony/heartbeat").headers.get("x-node") not in {"sync1", "sync2"}
