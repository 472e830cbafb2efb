"""The rolling restart behind a live REAL Apache: each node drained, restarted, waited for
(RUNNING, then its Synchrony heartbeat), put back; then the next one.

The lab is test_apache_balancer.py's (a self-contained Apache, the lab's simulated nodes,
``wizard.lab.node.LabNode``). Each node's ``restart_command`` is the lab's (it touches the
node's restart trigger): the node winds down, refuses connections for a moment, answers 503
STARTING for a while, then RUNNING, its Synchrony a little later. Users with sticky cookies
keep sending requests during the roll; none may fail.
"""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from wizard.balancers.apache.vhost import drained_in
from wizard.engine.state import StateStore
from wizard.engine.runner import Runner
from wizard.answers import validate
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED
from wizard.steps.restart import RestartStep

from test_apache_drain import balancer_tests  # noqa: F401 (loads the lab helpers)

pytestmark = pytest.mark.integration
make_lab = balancer_tests.make_lab
_quick_settle = balancer_tests._quick_settle  # noqa: F401 (autouse)


@pytest.fixture
def lab(tmp_path, apache_factory, lab_node_factory):
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    lab.raw["restart_drain"] = 1
    lab.raw["restart_timeout"] = 10
    for raw, node in zip(lab.raw["nodes"], lab.nodes):
        raw["restart_command"] = node.restart_command
    applied = lab.apply()
    assert applied.exit_status == EXIT_OK, applied.message
    return lab


def restart(lab, only: tuple[str, ...] | None = None):
    with Runner(validate(lab.raw), StateStore(lab.state), events=lab.events.append, command="test") as runner:
        return runner.run_step(RestartStep(only))


def restart_record(lab) -> dict:
    return json.loads(lab.state.read_text())["steps"]["restart"]


class Users:
    """Sticky users on each node sending requests (a page, then Synchrony's heartbeat) until stopped."""

    def __init__(self, lab, nodes: list[str]) -> None:
        self.lab, self.failures, self.requests, self.retried = lab, [], 0, 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user, args=(n,), daemon=True) for n in nodes]

    def _user(self, node: str) -> None:
        with self.lab.client() as client:
            client.cookies.set("ROUTEID", f".{node}", path="/")
            while not self._stop.is_set():
                for path in ("/display/X", "/synchrony/heartbeat"):
                    try:
                        try:
                            answer = client.get(self.lab.base + path)
                        except httpx.RemoteProtocolError:
                            # A graceful reload closes idle keep-alive connections; a browser whose
                            # reused connection closes before any answer sends the request again.
                            self.retried += 1
                            answer = client.get(self.lab.base + path)
                        ok = answer.status_code == 200
                    except httpx.HTTPError as exc:
                        ok, answer = False, exc
                    self.requests += 1
                    if not ok:
                        self.failures.append((node, path, str(answer)))
                time.sleep(0.05)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def test_a_live_roll_drains_each_node_waits_for_synchrony_and_no_request_fails(lab) -> None:
    with Users(lab, ["node1", "node2", "node1", "node2"]) as users:
        time.sleep(0.3)
        outcome = restart(lab)
        time.sleep(0.3)
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert users.requests > 40 and users.failures == [], users.failures[:5]
    record = restart_record(lab)
    steps = [(c["kind"], c["target"]) for c in record["changes"]]
    assert steps == [("drain", "node1"), ("restart", "node1"), ("undrain", "node1"),
                     ("drain", "node2"), ("restart", "node2"), ("undrain", "node2")]
    assert all(c["at"] for c in record["changes"])
    assert [node.restarts for node in lab.nodes] == [1, 1]
    # No user page reached a node while it was restarting: it was drained (the requests turned away
    # are the wizard's own probes of /status and the heartbeat, straight to the node).
    assert all("confluence /display/X" not in node.unavailable_hits for node in lab.nodes), \
        [n.unavailable_hits for n in lab.nodes]
    assert all(node.hits["confluence /display/X"] > node.unavailable_hits["confluence /display/X"]
               for node in lab.nodes)  # both served users
    plan = record["plan"]
    assert "drained first" in plan["summary"] and "node1, node2" in plan["summary"]
    assert "status=+D" in plan["changes"][0]["summary"] and "wait 1 s" in plan["changes"][0]["summary"]
    assert "heartbeat" in plan["changes"][0]["summary"]
    assert drained_in(lab.apache.config_path.read_text()) == frozenset()
    # The node was put back only once its Synchrony answered.
    node2 = lab.nodes[1]
    assert node2.synchrony_lag_seconds > 0


def test_a_node_that_does_not_come_back_stays_drained_and_the_next_run_resumes_with_it(lab) -> None:
    lab.nodes[0].never_comes_back = True
    outcome = restart(lab)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "node1 STAYS DRAINED" in outcome.message and "restart --node node1" in outcome.message
    assert drained_in(lab.apache.config_path.read_text()) == {"node1"}
    assert lab.nodes[1].restarts == 0  # the roll stopped at node1
    with lab.client() as client:  # its users are on node2 meanwhile
        client.cookies.set("ROUTEID", ".node1")
        assert client.get(lab.base + "/display/X").headers["x-node"] == "node2"
    # Rollback has nothing to undo in a restart, but says which node is left drained and how to finish it.
    with Runner(validate(lab.raw), StateStore(lab.state), command="test") as runner:
        rolled = runner.rollback("restart")
    assert rolled.exit_status == EXIT_OK
    assert "node1 DRAINED" in rolled.message and "restart --node node1" in rolled.message, rolled.message
    # The node comes back; `restart --node node1` resumes with it (restarted again: its restart was
    # never seen through) and puts it back.
    lab.nodes[0].come_back()
    assert balancer_tests.eventually(lambda: lab.nodes[0].restart_log[-1].finished)
    outcome = restart(lab, ("node1",))
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert drained_in(lab.apache.config_path.read_text()) == frozenset()
    assert lab.nodes[0].restarts == 2 and lab.nodes[1].restarts == 0
    record = restart_record(lab)
    assert "resuming with node1" in record["plan"]["summary"]
    assert [c["kind"] for c in record["changes"]][-3:] == ["drain", "restart", "undrain"]


def test_the_restart_verb_shows_the_plan_and_restarts_only_the_named_node(lab) -> None:
    answers = lab.tmp / "answers.json"
    answers.write_text(json.dumps(lab.raw))
    run = balancer_tests.run_cli("restart", "--answers", str(answers), "--state", str(lab.state), "--yes",
                                 "--node", "node2", cwd=lab.tmp)
    assert run.returncode == EXIT_OK, run.stdout + run.stderr
    assert "node2" in run.stdout and "drained first" in run.stdout
    assert [node.restarts for node in lab.nodes] == [0, 1]
    # No terminal and no --yes: refused before anything changes (exit status 2).
    refused = balancer_tests.run_cli("restart", "--state", str(lab.state), cwd=lab.tmp)
    assert refused.returncode == 2 and [node.restarts for node in lab.nodes] == [0, 1]
    unknown = balancer_tests.run_cli("restart", "--state", str(lab.state), "--yes", "--node", "node9", cwd=lab.tmp)
    assert unknown.returncode != EXIT_OK and "node9" in unknown.stdout + unknown.stderr
