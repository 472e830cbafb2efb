"""A drained rolling restart over the ALB, against moto's server and REAL simulated nodes.

AWS is moto's server (tests/integration/moto_server.py); the nodes are the lab's simulated
Confluence + Synchrony nodes on 127.0.0.1 (wizard/lab/node.py), each standing for one of
moto's running instances (``instance_id``), so the balancer step registers the instances on
the nodes' own ports and the restart step restarts real (simulated) processes and watches
their /status and Synchrony heartbeat.

What moto does not model, and how these tests stand in for it: a deregistered target leaves
its group at once (AWS keeps it ``draining`` for the deregistration delay), a registered one
is ``healthy`` at once (AWS goes through ``initial`` and its health checks), and no health
check ever reaches a node. So the order of the calls and what the groups hold at each
restart are read from moto, and the states AWS would report on the way ("draining" that
never ends, a target that never turns healthy) are answered by a client hook in front of
moto's ``DescribeTargetHealth``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from wizard.answers import validate
from wizard.balancers.alb import drain as alb_drain
from wizard.balancers.alb import timing
from wizard.balancers.alb import undo as alb_undo
from wizard.engine.model import UndoAction
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore
from wizard.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_STEP_FAILED
from wizard.steps import restart as restart_module
from wizard.steps.restart import RestartStep
from wizard.transport import aws as wizard_aws

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
NAME = "wiki-test"
CONFLUENCE_TG, SYNCHRONY_TG = f"{NAME}-confluence", f"{NAME}-synchrony"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
DELAY_KEY = "deregistration_delay.timeout_seconds"

#: Run by each node's restart command before it restarts the node: what the target groups hold
#: at that moment, read from moto with a client of its own, appended to a JSON-lines file.
SNAPSHOT = """\
import json, sys
import boto3
node, out = sys.argv[1], sys.argv[2]
elbv2 = boto3.client("elbv2", region_name="eu-west-1")
groups = {}
for name in ("wiki-test-confluence", "wiki-test-synchrony"):
    arn = elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]
    health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    groups[name] = sorted([h["Target"]["Id"], h["Target"]["Port"], h["TargetHealth"]["State"]] for h in health)
with open(out, "a") as handle:
    handle.write(json.dumps({"restarting": node, "groups": groups}) + "\\n")
"""


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(timing, "ACTIVE_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "HEALTHY_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "DELETE_TIMEOUT", 3.0)
    monkeypatch.setattr(restart_module, "POLL_SECONDS", 0.1)


class Bed:
    """moto's account with the lab's VPC and instances, two simulated nodes standing for the
    instances, and the answers that tie them (restart_drain 1 s)."""

    def __init__(self, tmp: Path, lab: Any, nodes: list[Any]) -> None:
        self.tmp, self.lab, self.nodes = tmp, lab, nodes
        self.snapshots = tmp / "snapshots.jsonl"
        script = tmp / "snapshot.py"
        script.write_text(SNAPSHOT)
        raw_nodes = []
        stock = (FIXTURES / "confluence-7-stock.xml").read_text()
        for index, node in enumerate(nodes):
            install = tmp / node.name
            (install / "conf").mkdir(parents=True)
            (install / "bin").mkdir()
            (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{node.confluence_port}"'))
            (install / "bin" / "setenv.sh").write_text(
                f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n')
            restart = f"{sys.executable} {script} {node.name} {self.snapshots} && {node.restart_command}"
            raw_nodes.append({"name": node.name, "address": "127.0.0.1", "install_dir": str(install),
                              "confluence_port": node.confluence_port, "instance_id": lab.instance_ids[index],
                              "restart_command": restart,
                              "access": {"transport": "local"}})
        self.raw: dict[str, Any] = {
            "version": 1, "name": NAME, "public_url": "https://wiki.example.com", "nodes": raw_nodes,
            "synchrony": {"mode": "direct"}, "restart_drain": 1, "restart_timeout": 10,
            "balancer": {"kind": "alb", "alb": {
                "region": REGION, "vpc_id": lab.vpc_id, "subnet_ids": lab.subnet_ids,
                "node_security_group_id": lab.node_security_group_id, "certificate_arn": lab.certificate_arn}}}
        self.state = tmp / "state" / f"{NAME}.state.json"

    def runner(self) -> Runner:
        return Runner(validate(self.raw), StateStore(self.state), command="test")

    def apply(self):
        with self.runner() as runner:
            return runner.apply(["balancer"])

    def restart(self, only: tuple[str, ...] | None = None, plans: list | None = None):
        with self.runner() as runner:
            shown = plans if plans is not None else []
            return runner.run_step(RestartStep(only), confirm=lambda plan: shown.append(plan) or True)

    def record(self, step: str) -> dict:
        return json.loads(self.state.read_text())["steps"][step]

    def target_of(self, node: str, group: str) -> tuple[str, int]:
        index = [n.name for n in self.nodes].index(node)
        port = self.nodes[index].confluence_port if group == CONFLUENCE_TG else self.nodes[index].synchrony_port
        return self.lab.instance_ids[index], port

    def snapshot_lines(self) -> list[dict]:
        if not self.snapshots.exists():
            return []
        return [json.loads(line) for line in self.snapshots.read_text().splitlines()]


def elbv2():
    return boto3.client("elbv2", region_name=REGION)


def arn_of(name: str) -> str:
    return elbv2().describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]


def targets(name: str) -> dict[tuple[str, int], str]:
    health = elbv2().describe_target_health(TargetGroupArn=arn_of(name))["TargetHealthDescriptions"]
    return {(h["Target"]["Id"], h["Target"]["Port"]): h["TargetHealth"]["State"] for h in health}


def delay_of(name: str) -> str:
    attributes = elbv2().describe_target_group_attributes(TargetGroupArn=arn_of(name))["Attributes"]
    return {a["Key"]: a["Value"] for a in attributes}[DELAY_KEY]


@pytest.fixture
def bed(tmp_path: Path, aws_lab, lab_node_factory) -> Bed:
    nodes = [lab_node_factory(f"node{index}") for index in (1, 2)]
    bed = Bed(tmp_path, aws_lab, nodes)
    outcome = bed.apply()
    assert outcome.exit_status == EXIT_OK, outcome.message
    return bed


class TargetCalls:
    """The (de)registrations the wizard's clients make, in order: (operation, group name, target id)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def hook(self, service: str, client: Any) -> None:
        client.meta.events.register("before-parameter-build", self._seen)

    def _seen(self, params: dict, model: Any, **_: object) -> None:
        if model.name in ("RegisterTargets", "DeregisterTargets"):
            group = params["TargetGroupArn"].split("/")[1]
            self.calls += [(model.name, group, target["Id"]) for target in params["Targets"]]


@pytest.fixture
def target_calls() -> Iterator[TargetCalls]:
    log = TargetCalls()
    remove = wizard_aws.add_client_hook(log.hook)
    yield log
    remove()


def fake_health(override) -> Any:
    """A client hook that answers ``DescribeTargetHealth`` with moto's answer passed through
    ``override(group_name, descriptions)``: the states AWS reports and moto does not."""
    def answer(model: Any, params: dict, **_: object) -> Any:
        if model.name != "DescribeTargetHealth":
            return None
        arn = params["body"]["TargetGroupArn"]
        real = elbv2().describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        parsed = {"TargetHealthDescriptions": override(arn.split("/")[1], real),
                  "ResponseMetadata": {"HTTPStatusCode": 200}}
        return AWSResponse("http://moto-faked", 200, {}, None), parsed

    def hook(service: str, client: Any) -> None:
        client.meta.events.register("before-call", answer)

    return hook


# --------------------------------------------------------------------------- the roll


def test_apply_sets_the_deregistration_delay_to_restart_drain_and_a_second_apply_changes_nothing(bed: Bed) -> None:
    assert delay_of(CONFLUENCE_TG) == delay_of(SYNCHRONY_TG) == "1"
    checks = {c["name"]: c for c in bed.record("balancer")["checks"]}
    assert checks["Confluence deregistration delay"]["passed"] and checks[alb_drain.STARTING_CHECK]["passed"]
    with bed.runner() as runner:
        (plan,) = runner.plan(["balancer"])
    assert plan.is_noop, [c.summary for c in plan.changes]


def test_a_live_roll_deregisters_each_node_from_both_groups_restarts_it_and_registers_it_again(
        bed: Bed, target_calls: TargetCalls) -> None:
    plans: list = []
    outcome = bed.restart(plans=plans)
    assert outcome.exit_status == EXIT_OK, outcome.message
    (plan,) = plans
    first = plan.changes[0].summary
    assert first.startswith(f"deregister node1 from the target groups {CONFLUENCE_TG} and {SYNCHRONY_TG} and wait up "
                            f"to {1 + timing.DRAIN_MARGIN:.0f} s for AWS to finish"), first
    assert "the requests under way get 1 s" in first and f"register node1 again in {CONFLUENCE_TG}" in first
    assert "wait 1 s for the requests under way" not in first  # the drain is that wait
    assert plan.changes[0].details.drain_seconds == 0
    assert plan.changes[1].summary.startswith(f"deregister node2 from the target groups {CONFLUENCE_TG}")

    record = bed.record("restart")
    assert [(c["kind"], c["target"]) for c in record["changes"]] == [
        ("drain", "node1"), ("restart", "node1"), ("undrain", "node1"),
        ("drain", "node2"), ("restart", "node2"), ("undrain", "node2")]
    ids = dict(zip(("node1", "node2"), bed.lab.instance_ids))
    assert target_calls.calls == [
        ("DeregisterTargets", CONFLUENCE_TG, ids["node1"]), ("DeregisterTargets", SYNCHRONY_TG, ids["node1"]),
        ("RegisterTargets", CONFLUENCE_TG, ids["node1"]), ("RegisterTargets", SYNCHRONY_TG, ids["node1"]),
        ("DeregisterTargets", CONFLUENCE_TG, ids["node2"]), ("DeregisterTargets", SYNCHRONY_TG, ids["node2"]),
        ("RegisterTargets", CONFLUENCE_TG, ids["node2"]), ("RegisterTargets", SYNCHRONY_TG, ids["node2"])]
    # What the groups held when each node's restart command ran: the other node only.
    snapshots = bed.snapshot_lines()
    assert [s["restarting"] for s in snapshots] == ["node1", "node2"]
    for snapshot in snapshots:
        other = "node2" if snapshot["restarting"] == "node1" else "node1"
        for group in (CONFLUENCE_TG, SYNCHRONY_TG):
            assert snapshot["groups"][group] == [[*bed.target_of(other, group), "healthy"]], snapshot
    assert [len(node.restart_log) for node in bed.nodes] == [1, 1]
    for group in (CONFLUENCE_TG, SYNCHRONY_TG):  # both back, healthy, on their own ports
        assert targets(group) == {bed.target_of("node1", group): "healthy", bed.target_of("node2", group): "healthy"}


def test_a_node_that_stays_down_stops_the_roll_deregistered_and_restart_node_puts_it_back(bed: Bed) -> None:
    bed.nodes[0].never_comes_back = True
    outcome = bed.restart()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "node1 did not answer RUNNING" in outcome.message and "node1 STAYS DRAINED" in outcome.message
    for group in (CONFLUENCE_TG, SYNCHRONY_TG):
        assert targets(group) == {bed.target_of("node2", group): "healthy"}  # node1 out, node2 serving
    assert len(bed.nodes[1].restart_log) == 0  # the roll stopped at node1

    bed.nodes[0].come_back()
    outcome = bed.restart(("node1",))
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert "resuming with node1" in bed.record("restart")["plan"]["summary"]
    for group in (CONFLUENCE_TG, SYNCHRONY_TG):
        assert targets(group) == {bed.target_of("node1", group): "healthy", bed.target_of("node2", group): "healthy"}
    assert [c["kind"] for c in bed.record("restart")["changes"]][-3:] == ["drain", "restart", "undrain"]


def test_a_drain_aws_never_finishes_puts_the_node_back_and_restarts_nothing(
        bed: Bed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "DRAIN_MARGIN", 0.5)
    node1 = bed.target_of("node1", CONFLUENCE_TG)

    def still_draining(group: str, real: list[dict]) -> list[dict]:
        if group != CONFLUENCE_TG or any(h["Target"]["Id"] == node1[0] for h in real):
            return real
        return real + [{"Target": {"Id": node1[0], "Port": node1[1]}, "TargetHealth": {
            "State": "draining", "Reason": "Target.DeregistrationInProgress"}}]

    remove = wizard_aws.add_client_hook(fake_health(still_draining))
    try:
        outcome = bed.restart()
    finally:
        remove()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "Draining node1 in the balancer failed, so it was not restarted" in outcome.message
    assert f"AWS had not let go of node1 2 s after its deregistration ({node1[0]}:{node1[1]} draining" \
        in outcome.message, outcome.message
    assert "It was registered again" in outcome.message and "Traceback" not in outcome.message
    assert [len(node.restart_log) for node in bed.nodes] == [0, 0]
    for group in (CONFLUENCE_TG, SYNCHRONY_TG):  # the balancer sends node1 its users again
        assert bed.target_of("node1", group) in targets(group)
    kinds = [(c["kind"], c["target"]) for c in bed.record("restart")["changes"]]
    assert kinds == [("drain", "node1"), ("drain-failed", "node1")]


def test_a_node_aws_never_finds_healthy_stops_the_roll_naming_it_and_the_likely_cause(
        bed: Bed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "UNDRAIN_TIMEOUT", 1.0)
    node1 = bed.target_of("node1", CONFLUENCE_TG)

    def unhealthy(group: str, real: list[dict]) -> list[dict]:
        return [{**h, "TargetHealth": {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                                       "Description": "Health checks failed with these codes: [503]"}}
                if (h["Target"]["Id"], h["Target"]["Port"]) == node1 else h for h in real]

    remove = wizard_aws.add_client_hook(fake_health(unhealthy))
    try:
        outcome = bed.restart()
    finally:
        remove()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "node1 restarted and answers, but putting it back in the balancer failed" in outcome.message
    assert f"node1 is not healthy in the balancer after 1 s ({node1[0]}:{node1[1]} unhealthy " \
           "(Target.ResponseCodeMismatch" in outcome.message, outcome.message
    assert "Likely cause: wrong health path, or the node is not ready" in outcome.message
    assert len(bed.nodes[0].restart_log) == 1 and len(bed.nodes[1].restart_log) == 0
    # Healthy again (the hook gone): `restart --node node1` waits for it and records it back.
    outcome = bed.restart(("node1",))
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert len(bed.nodes[0].restart_log) == 1  # restarted once: it was left drained after its restart
    assert [c["kind"] for c in bed.record("restart")["changes"]][-2:] == ["drain", "undrain"]


# --------------------------------------------------------------------------- verify and undo


@pytest.mark.parametrize("matcher, path", [("200-503", None), ("200,503", None), ("200", "/")])
def test_verify_fails_when_the_confluence_group_would_take_a_starting_node_as_healthy(
        bed: Bed, matcher: str, path: str | None) -> None:
    settings: dict[str, Any] = {"Matcher": {"HttpCode": matcher}}
    if path:
        settings["HealthCheckPath"] = path
    elbv2().modify_target_group(TargetGroupArn=arn_of(CONFLUENCE_TG), **settings)
    with bed.runner() as runner:
        outcome = runner.verify(["balancer"])
    assert outcome.exit_status == EXIT_CHECK_FAILED
    check = next(c for c in outcome.checks if c.name == alb_drain.STARTING_CHECK)
    assert not check.passed and "send it users" in check.fix
    assert ("include 503" if path is None else "it checks /, not /status") in check.fix, check.fix


def test_a_changed_deregistration_delay_is_planned_put_back_and_its_undo_restores_it(bed: Bed) -> None:
    elbv2().modify_target_group_attributes(TargetGroupArn=arn_of(CONFLUENCE_TG),
                                           Attributes=[{"Key": DELAY_KEY, "Value": "300"}])
    with bed.runner() as runner:
        outcome = runner.verify(["balancer"])
        (plan,) = runner.plan(["balancer"])
    failed = {c.name for c in outcome.checks if not c.passed}
    assert failed == {"Confluence deregistration delay"}, failed
    assert [c.summary for c in plan.changes] == [
        f"modify target group {CONFLUENCE_TG}: {DELAY_KEY} 300 -> 1"]
    # A drain now would not wait what the plan says: refused, nothing changed.
    outcome = bed.restart()
    assert outcome.exit_status == EXIT_STEP_FAILED and "not restart_drain (1 s)" in outcome.message
    assert len(targets(CONFLUENCE_TG)) == 2

    assert bed.apply().exit_status == EXIT_OK
    assert delay_of(CONFLUENCE_TG) == "1"
    undo = UndoAction.from_dict(bed.record("balancer")["undo"][-1])
    assert (undo.kind, undo.data["resource"]) == ("aws-restore", "target-group")
    # By hand (the runbook) too: the attributes go back, not only the health check.
    assert "modify-target-group-attributes" in undo.manual and '{"Key": "deregistration_delay.timeout_seconds", ' \
        '"Value": "300"}' in undo.manual, undo.manual
    alb_undo.perform(wizard_aws.connect(REGION, None), undo, lambda _: None)
    assert delay_of(CONFLUENCE_TG) == "300"


def test_standalone_synchrony_drains_the_node_from_the_confluence_group_only(
        tmp_path: Path, aws_lab, lab_node_factory, target_calls: TargetCalls,
        moto_nodes_answer_synchrony: None) -> None:  # sync1 is a moto address: no Synchrony answers there
    nodes = [lab_node_factory(f"node{index}") for index in (1, 2)]
    bed = Bed(tmp_path, aws_lab, nodes)
    bed.raw["synchrony"] = {"mode": "standalone", "port": 8095, "nodes": [
        {"name": "sync1", "address": aws_lab.private_ips[0]}]}
    answers = validate(bed.raw)
    assert alb_drain.group_names(answers) == [CONFLUENCE_TG]
    assert bed.apply().exit_status == EXIT_OK
    machines = targets(SYNCHRONY_TG)
    target_calls.calls.clear()  # those of the apply
    outcome = bed.restart(("node1",))
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert {(op, group) for op, group, _ in target_calls.calls} == {
        ("DeregisterTargets", CONFLUENCE_TG), ("RegisterTargets", CONFLUENCE_TG)}
    assert targets(SYNCHRONY_TG) == machines
    assert bed.target_of("node1", CONFLUENCE_TG) in targets(CONFLUENCE_TG)
