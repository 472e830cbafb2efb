"""Draining a node in a REAL Apache 2.4 for the rolling restart (wizard/balancers/apache/drain.py).

The balancer step is applied first (as in test_apache_balancer.py, whose lab this reuses);
then the kind's ``drain``/``undrain`` rewrite the vhost with ``status=+D`` on the node's
members, test it and reload Apache gracefully. What users see is checked with real requests:
a drained node gets no new request, whether the user's ROUTEID cookie names it or not, in
the Confluence and the Synchrony balancers, and gets them again after ``undrain``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from wizard.answers import validate
from wizard.balancers.apache.drain import DrainRefusedError
from wizard.balancers.apache.step import STEP
from wizard.balancers.apache.vhost import drained_in
from wizard.engine.step import Context
from wizard.errors import EXIT_OK, StepFailedError
from wizard.transport.pool import HostPool

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location("clbw_tests_apache_balancer",
                                               Path(__file__).with_name("test_apache_balancer.py"))
assert _spec and _spec.loader
balancer_tests = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = balancer_tests
_spec.loader.exec_module(balancer_tests)
make_lab = balancer_tests.make_lab
_quick_settle = balancer_tests._quick_settle  # noqa: F401 (an autouse fixture, used by being here)


@pytest.fixture
def lab(tmp_path, apache_factory, lab_node_factory):
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    assert lab.apply().exit_status == EXIT_OK
    return lab


def context(lab) -> Context:
    answers = validate(lab.raw)
    return Context(answers=answers, hosts=HostPool(answers))


def sticky_client(lab, node: str):
    client = lab.client()
    client.cookies.set("ROUTEID", f".{node}")
    return client


def test_a_drained_node_gets_no_new_request_sticky_or_not_and_comes_back_after_undrain(lab) -> None:
    ctx = context(lab)
    node1 = ctx.answers.node("node1")
    reloads = lab.reloads()
    config = lab.apache.config_path
    backups = set(config.parent.glob(f"{config.name}.*-backup"))
    STEP.drain(ctx, node1)
    assert lab.reloads() == reloads + 1
    text = lab.apache.config_path.read_text()
    assert drained_in(text) == {"node1"}
    assert text.count("route=node1 ") + text.count("route=node1\n") == text.count("status=+D") == 3
    with sticky_client(lab, "node1") as client:
        pages = {client.get(lab.base + "/display/X").headers["x-node"] for _ in range(10)}
        beats = {client.get(lab.base + "/synchrony/heartbeat").headers["x-node"] for _ in range(5)}
    assert pages == {"node2"} and beats == {"node2"}
    fresh = set()
    for _ in range(10):
        with lab.client() as client:
            fresh.add(client.get(lab.base + "/status").headers["x-node"])
    assert fresh == {"node2"}
    assert lab.websocket().startswith("node2: ")
    # A second drain changes nothing and does not reload.
    STEP.drain(ctx, node1)
    assert lab.reloads() == reloads + 1

    STEP.undrain(ctx, node1)
    assert drained_in(lab.apache.config_path.read_text()) == frozenset()
    assert set(config.parent.glob(f"{config.name}.*-backup")) == backups  # no backup per drain
    with sticky_client(lab, "node1") as client:
        pages = {client.get(lab.base + "/display/X").headers["x-node"] for _ in range(10)}
    assert pages == {"node1"}
    # Undrained, the file is byte for byte what the balancer step writes: a second apply changes nothing.
    with lab.runner() as runner:
        plans = runner.plan(["balancer"])
    assert all(plan.noop_reason for plan in plans), plans


def test_a_vhost_edited_by_hand_is_not_rewritten_to_drain(lab) -> None:
    ctx = context(lab)
    edited = lab.apache.config_path.read_text() + "# mine\n"
    lab.apache.config_path.write_text(edited)
    with pytest.raises(DrainRefusedError, match="not what the balancer step writes"):
        STEP.drain(ctx, ctx.answers.node("node1"))
    assert lab.apache.config_path.read_text() == edited


def test_a_drain_refused_by_apache_s_test_leaves_the_old_file_serving(lab) -> None:
    ctx = context(lab)
    before = lab.apache.config_path.read_bytes()
    lab.raw["balancer"]["apache"]["configtest_command"] = "false"
    ctx = context(lab)
    with pytest.raises(StepFailedError, match="previous file is back"):
        STEP.drain(ctx, ctx.answers.node("node1"))
    assert lab.apache.config_path.read_bytes() == before
    with sticky_client(lab, "node1") as client:
        assert client.get(lab.base + "/display/X").headers["x-node"] == "node1"
