"""The ALB balancer step end to end against moto's server: build, idempotency, repair, rollback.

The nodes are real install folders on the local transport (server.xml copied
from the stock Confluence 7 file, so the Confluence port 8090 is read from it);
AWS is moto's server started by the tests. moto is looser than AWS, so every
"nothing twice" assertion is about the wizard finding what exists first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from wizard.transport import aws as wizard_aws
from wizard.balancers.alb import timing
from wizard.balancers.alb import undo as alb_undo
from wizard.answers import validate
from wizard.transport.aws import AwsError
from wizard.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_STEP_FAILED
from wizard.engine.model import UndoAction
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
NAME = "wiki-test"
TAG_SETUP = "confluence-lb-wizard:setup"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
BIN = Path(sys.executable).parent / "confluence-lb-wizard"
MUTATING = ("Create", "Modify", "Register", "Deregister", "Delete", "Add", "Remove", "Set", "Authorize",
            "Revoke", "Put")


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch) -> None:
    monkeypatch.setattr(timing, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(timing, "ACTIVE_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "HEALTHY_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "DELETE_TIMEOUT", 3.0)


@pytest.fixture(autouse=True)
def _nodes_answer_their_heartbeat(moto_nodes_answer_synchrony) -> None:
    """moto's instances run no Synchrony (see the fixture)."""


def make_setup(tmp_path: Path, lab, *, public_url: str = "https://wiki.example.com", instance_ids: bool = True,
               synchrony_mode: str = "direct", **alb: object) -> dict:
    nodes = []
    for index, name in enumerate(("node1", "node2")):
        install = tmp_path / name
        (install / "conf").mkdir(parents=True)
        (install / "conf" / "server.xml").write_text((FIXTURES / "confluence-7-stock.xml").read_text())
        node = {"name": name, "address": lab.private_ips[index], "install_dir": str(install),
                "access": {"transport": "local"}}
        if instance_ids:
            node["instance_id"] = lab.instance_ids[index]
        nodes.append(node)
    options = {"region": REGION, "vpc_id": lab.vpc_id, "subnet_ids": lab.subnet_ids,
               "node_security_group_id": lab.node_security_group_id}
    if public_url.startswith("https"):
        options["certificate_arn"] = lab.certificate_arn
    options.update(alb)
    raw = {"version": 1, "name": NAME, "public_url": public_url, "nodes": nodes,
           "synchrony": {"mode": synchrony_mode}, "balancer": {"kind": "alb", "alb": options}}
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(yaml.safe_dump(raw))
    return {"raw": raw, "answers": validate(raw), "answers_file": answers_file, "lab": lab, "tmp": tmp_path,
            "state": tmp_path / "state" / f"{NAME}.state.json"}


@pytest.fixture
def setup(tmp_path: Path, aws_lab) -> dict:
    return make_setup(tmp_path, aws_lab)


def runner_for(setup: dict, events=None) -> Runner:
    return Runner(setup["answers"], StateStore(setup["state"]), events=events or (lambda e: None), command="test")


def apply(setup: dict, events=None):
    with runner_for(setup, events) as runner:
        return runner.apply(["balancer"])


def rollback(setup: dict):
    with runner_for(setup) as runner:
        return runner.rollback("balancer")


class CallLog:
    """Every AWS operation the wizard's clients make, seen through botocore's before-call event."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def hook(self, service: str, client) -> None:
        client.meta.events.register("before-call", self._seen)

    def _seen(self, model, **_: object) -> None:
        self.operations.append(model.name)

    @property
    def mutating(self) -> list[str]:
        return [op for op in self.operations if op.startswith(MUTATING)]


@pytest.fixture
def calls() -> Iterator[CallLog]:
    log = CallLog()
    remove = wizard_aws.add_client_hook(log.hook)
    yield log
    remove()


def clients():
    return (boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION))


def tags_of(elbv2, arn: str) -> dict[str, str]:
    described = elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]
    return {tag["Key"]: tag["Value"] for tag in described}


def target_group(elbv2, name: str) -> dict | None:
    try:
        return elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]
    except elbv2.exceptions.TargetGroupNotFoundException:
        return None


def load_balancer(elbv2, name: str) -> dict | None:
    try:
        return elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        return None


def balancer_group(ec2, vpc_id: str) -> dict | None:
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                  {"Name": "group-name", "Values": [f"{NAME}-alb"]}])
    return found["SecurityGroups"][0] if found["SecurityGroups"] else None


def node_group_rules(ec2, group_id: str) -> list[tuple[int, str]]:
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    rules = []
    for permission in group["IpPermissions"]:
        sources = [r["CidrIp"] for r in permission["IpRanges"]] + [g["GroupId"] for g in permission["UserIdGroupPairs"]]
        rules += [(permission["FromPort"], source) for source in sources]
    return sorted(rules)


def assert_nothing_left(setup: dict) -> None:
    ec2, elbv2 = clients()
    lab = setup["lab"]
    assert load_balancer(elbv2, NAME) is None
    assert target_group(elbv2, f"{NAME}-confluence") is None
    assert target_group(elbv2, f"{NAME}-synchrony") is None
    assert balancer_group(ec2, lab.vpc_id) is None
    tagged = ec2.describe_security_groups(Filters=[{"Name": f"tag:{TAG_SETUP}", "Values": [NAME]}])
    assert tagged["SecurityGroups"] == []
    assert node_group_rules(ec2, lab.node_security_group_id) == [(22, "10.0.0.0/8")]
    # What the admin had is untouched.
    running = ec2.describe_instances(InstanceIds=lab.instance_ids)["Reservations"]
    assert all(i["State"]["Name"] == "running" for r in running for i in r["Instances"])
    assert boto3.client("acm", region_name=REGION).describe_certificate(
        CertificateArn=lab.certificate_arn)["Certificate"]["Status"] == "ISSUED"


def assert_balancer_built(setup: dict, *, https: bool = True, instance_targets: bool = True,
                          synchrony: bool = True) -> dict:
    """Every resource and setting of seeds 000/001 and the Quick Start; returns the ARNs."""
    ec2, elbv2 = clients()
    lab = setup["lab"]
    group = balancer_group(ec2, lab.vpc_id)
    assert group is not None
    group_tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert group_tags[TAG_SETUP] == NAME and group_tags["confluence-lb-wizard:managed"] == "true"
    ports = {p["FromPort"]: [r["CidrIp"] for r in p["IpRanges"]] for p in group["IpPermissions"]}
    assert ports == ({443: ["0.0.0.0/0"], 80: ["0.0.0.0/0"]} if https else {80: ["0.0.0.0/0"]})
    expected_node_rules = [(22, "10.0.0.0/8"), (8090, group["GroupId"])] + \
        ([(8091, group["GroupId"])] if synchrony else [])
    assert node_group_rules(ec2, lab.node_security_group_id) == sorted(expected_node_rules)

    wanted_targets = lab.instance_ids if instance_targets else lab.private_ips
    groups = {}
    for key, port, path in (("confluence", 8090, "/status"), ("synchrony", 8091, "/synchrony/heartbeat")):
        tg = target_group(elbv2, f"{NAME}-{key}")
        if key == "synchrony" and not synchrony:
            assert tg is None
            continue
        assert tg is not None
        groups[key] = tg["TargetGroupArn"]
        assert (tg["Protocol"], tg["Port"], tg["VpcId"]) == ("HTTP", port, lab.vpc_id)
        assert tg["TargetType"] == ("instance" if instance_targets else "ip")
        health_check = (tg["HealthCheckProtocol"], tg["HealthCheckPath"], tg["HealthCheckPort"])
        assert health_check == ("HTTP", path, "traffic-port")
        assert (tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"], tg["HealthyThresholdCount"]) == \
            (20, 10, 2)
        assert tg["Matcher"] == {"HttpCode": "200"}
        attributes = {a["Key"]: a["Value"] for a in
                      elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
        assert attributes["stickiness.enabled"] == "true" and attributes["stickiness.type"] == "lb_cookie"
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        assert sorted((h["Target"]["Id"], h["Target"]["Port"]) for h in health) == \
            sorted((target, port) for target in wanted_targets)
        assert tags_of(elbv2, tg["TargetGroupArn"])[TAG_SETUP] == NAME

    balancer = load_balancer(elbv2, NAME)
    assert balancer is not None
    assert (balancer["Type"], balancer["Scheme"], balancer["VpcId"]) == ("application", "internet-facing", lab.vpc_id)
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(lab.subnet_ids)
    assert balancer["SecurityGroups"] == [group["GroupId"]]
    assert tags_of(elbv2, balancer["LoadBalancerArn"])[TAG_SETUP] == NAME
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"])["Attributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "300"

    described = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    listeners = {listener["Port"]: listener for listener in described}
    assert sorted(listeners) == ([80, 443] if https else [80])
    forwarding = listeners[443 if https else 80]
    assert forwarding["DefaultActions"][0]["Type"] == "forward"
    assert forwarding["DefaultActions"][0]["TargetGroupArn"] == groups["confluence"]
    if https:
        assert forwarding["Protocol"] == "HTTPS"
        assert forwarding["Certificates"][0]["CertificateArn"] == lab.certificate_arn
        assert forwarding["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
        redirect = listeners[80]
        assert redirect["Protocol"] == "HTTP"
        assert redirect["DefaultActions"] == [{"Type": "redirect", "RedirectConfig": {
            "Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
            "StatusCode": "HTTP_301"}}]
    for listener in listeners.values():
        assert tags_of(elbv2, listener["ListenerArn"])[TAG_SETUP] == NAME
    rules = [r for r in elbv2.describe_rules(ListenerArn=forwarding["ListenerArn"])["Rules"] if not r["IsDefault"]]
    if synchrony:
        assert len(rules) == 1
        assert rules[0]["Conditions"][0]["Field"] == "path-pattern"
        assert rules[0]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/synchrony/*"]
        assert rules[0]["Actions"] == [{"Type": "forward", "TargetGroupArn": groups["synchrony"]}]
        assert tags_of(elbv2, rules[0]["RuleArn"])[TAG_SETUP] == NAME
    else:
        assert rules == []
    return {"balancer": balancer["LoadBalancerArn"], "group": group["GroupId"], **groups}


def test_apply_builds_the_whole_balancer_as_the_seeds_and_the_quick_start_describe(setup: dict) -> None:
    events = []
    outcome = apply(setup, events.append)
    assert outcome.exit_status == EXIT_OK, outcome.message
    arns = assert_balancer_built(setup)

    state = json.loads(setup["state"].read_text())
    record = state["steps"]["balancer"]
    assert record["status"] == "verified"
    # Every change recorded with its ARN or id; every undo recorded (keyed by name, not ARN).
    recorded = {(c["resource"], c["action"]) for c in record["changes"]}
    assert ("load-balancer", "created") in recorded and ("https-listener", "created") in recorded
    assert arns["balancer"] in {c.get("arn") for c in record["changes"]}
    kinds = [(u["kind"], u["data"]["resource"]) for u in record["undo"]]
    assert kinds == [("aws-delete", "security-group"),
                     ("aws-revoke", "security-group-ingress"), ("aws-revoke", "security-group-ingress"),
                     ("aws-delete", "target-group"), ("aws-delete", "target-group"),
                     ("aws-delete", "load-balancer"), ("aws-delete", "listener"), ("aws-delete", "listener"),
                     ("aws-delete", "rule")]
    checks = {(c["name"], c["target"]): c for c in record["checks"]}
    assert checks[("Confluence target healthy", "node1")]["passed"]
    assert checks[("Synchrony target healthy", "node2")]["passed"]
    assert checks[("idle timeout", "balancer")]["seen"] == "300 s"
    assert all(c["passed"] for c in record["checks"])
    plan_summaries = [c["summary"] for c in record["plan"]["changes"]]
    assert any("create target group wiki-test-confluence (HTTP 8090, health /status every 20 s" in s
               for s in plan_summaries)
    progress = [e.message for e in events if type(e).__name__ == "ProgressReported"]
    assert any("is active" in m for m in progress) and any("healthy" in m for m in progress)


def test_a_second_apply_makes_no_mutating_aws_call(setup: dict, calls: CallLog) -> None:
    assert apply(setup).exit_status == EXIT_OK
    calls.operations.clear()
    with runner_for(setup) as runner:
        plans = runner.plan(["balancer"])
        assert plans[0].is_noop and "already matches" in (plans[0].noop_reason or "")
        again = runner.apply(["balancer"])
    assert again.exit_status == EXIT_OK, again.message
    assert "DescribeTargetGroups" in calls.operations  # the hook saw the calls
    assert calls.mutating == []


def test_rollback_deletes_only_what_the_setup_made(setup: dict) -> None:
    _, elbv2 = clients()
    foreign = elbv2.create_target_group(Name="someone-else", Protocol="HTTP", Port=80,
                                        VpcId=setup["lab"].vpc_id)["TargetGroups"][0]["TargetGroupArn"]
    assert apply(setup).exit_status == EXIT_OK
    outcome = rollback(setup)
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert_nothing_left(setup)
    assert elbv2.describe_target_groups(TargetGroupArns=[foreign])["TargetGroups"]
    record = json.loads(setup["state"].read_text())["steps"]["balancer"]
    assert record["status"] == "rolled-back" and all(u["undone"] for u in record["undo"])
    # A second rollback has nothing to do, and a new apply builds it all again.
    assert rollback(setup).exit_status == EXIT_OK
    assert apply(setup).exit_status == EXIT_OK
    assert_balancer_built(setup)


def test_out_of_band_changes_are_planned_as_modify_and_fixed_then_restored_on_rollback(setup: dict) -> None:
    assert apply(setup).exit_status == EXIT_OK
    ec2, elbv2 = clients()
    arns = assert_balancer_built(setup)
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=arns["balancer"], Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "60"}])
    elbv2.modify_target_group(TargetGroupArn=arns["confluence"], HealthCheckPath="/")
    elbv2.modify_target_group_attributes(TargetGroupArn=arns["synchrony"], Attributes=[
        {"Key": "stickiness.enabled", "Value": "false"}])
    with runner_for(setup) as runner:
        plan = runner.plan(["balancer"])[0]
        verified = runner.verify(["balancer"])
    assert [(c.details.resource, c.details.action) for c in plan.changes] == [
        ("confluence-target-group", "modify"), ("synchrony-target-group", "modify"), ("load-balancer", "modify")]
    assert "health check path / -> /status" in plan.changes[0].summary
    assert "idle timeout 60 s -> 300 s" in plan.changes[2].summary
    failed = {c.name for c in verified.checks if not c.passed}
    # A health check on / no longer tells a STARTING node from a RUNNING one: the drain's check says so too.
    assert failed == {"Confluence target group", "Synchrony stickiness", "idle timeout",
                      "Confluence health check refuses a STARTING node"}

    assert apply(setup).exit_status == EXIT_OK
    assert_balancer_built(setup)
    with runner_for(setup) as runner:
        assert runner.plan(["balancer"])[0].is_noop

    # Rollback first restores what was modified, then deletes what was created.
    outcome = rollback(setup)
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert_nothing_left(setup)


def test_nodes_without_an_instance_id_are_registered_by_ip(tmp_path: Path, aws_lab) -> None:
    setup = make_setup(tmp_path, aws_lab, instance_ids=False)
    assert apply(setup).exit_status == EXIT_OK
    assert_balancer_built(setup, instance_targets=False)


def test_without_a_certificate_port_80_forwards_and_internal_proxy_needs_no_synchrony_group(
        tmp_path: Path, aws_lab) -> None:
    setup = make_setup(tmp_path, aws_lab, public_url="http://wiki.example.com", synchrony_mode="internal-proxy")
    assert apply(setup).exit_status == EXIT_OK
    assert_balancer_built(setup, https=False, synchrony=False)
    assert rollback(setup).exit_status == EXIT_OK
    assert_nothing_left(setup)


def test_direct_synchrony_over_http_puts_the_rule_on_port_80(tmp_path: Path, aws_lab) -> None:
    setup = make_setup(tmp_path, aws_lab, public_url="http://wiki.example.com")
    assert apply(setup).exit_status == EXIT_OK
    assert_balancer_built(setup, https=False, synchrony=True)


def refuse_call(operation: str, code: str = "AccessDenied", status: int = 403):
    """A client hook under which AWS refuses one operation, as it would for a missing permission."""
    from botocore.awsrequest import AWSResponse

    def refuse(model, **_: object):
        if model.name == operation:
            parsed = {"Error": {"Code": code, "Message": "User is not authorized"},
                      "ResponseMetadata": {"HTTPStatusCode": status}}
            return AWSResponse("http://refused", status, {}, None), parsed
        return None

    def hook(service: str, client) -> None:
        client.meta.events.register("before-call", refuse)

    return hook


def test_an_aws_refusal_midway_leaves_nothing_half_made(setup: dict) -> None:
    remove = wizard_aws.add_client_hook(refuse_call("CreateLoadBalancer"))
    try:
        outcome = apply(setup)
    finally:
        remove()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "elasticloadbalancing:CreateLoadBalancer" in outcome.message
    assert "Traceback" not in outcome.message
    record = json.loads(setup["state"].read_text())["steps"]["balancer"]
    assert record["status"] == "failed"
    assert "Delete the target group wiki-test-confluence, which the wizard created." in record["error"]["undone"]
    assert_nothing_left(setup)


def test_a_classic_load_balancer_with_the_name_is_refused(setup: dict) -> None:
    boto3.client("elb", region_name=REGION).create_load_balancer(
        LoadBalancerName=NAME, Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8090}],
        AvailabilityZones=[f"{REGION}a"])
    outcome = apply(setup)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "Classic Load Balancer named wiki-test exists" in outcome.message
    assert_nothing_left(setup)


def test_a_name_taken_by_a_resource_of_someone_else_is_left_alone(setup: dict) -> None:
    _, elbv2 = clients()
    elbv2.create_target_group(Name=f"{NAME}-synchrony", Protocol="HTTP", Port=8091, VpcId=setup["lab"].vpc_id)
    outcome = apply(setup)
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "target group named wiki-test-synchrony already exists" in outcome.message
    assert "leaves it alone" in outcome.message
    assert target_group(elbv2, f"{NAME}-synchrony") is not None
    assert balancer_group(clients()[0], setup["lab"].vpc_id) is None


@pytest.mark.parametrize("problem, expected", [
    ("subnet-elsewhere", "not in the VPC"),
    ("stopped", "is stopped, not running"),
    ("no-vpc", "does not exist in eu-west-1"),
    ("one-zone", "at least two availability zones"),
])
def test_facts_that_cannot_work_are_refused_with_a_clear_message(tmp_path: Path, aws_lab, problem: str,
                                                                 expected: str) -> None:
    ec2, _ = clients()
    options: dict = {}
    if problem == "subnet-elsewhere":
        options["subnet_ids"] = [aws_lab.subnet_ids[0], aws_lab.other_subnet_id]
    elif problem == "stopped":
        ec2.stop_instances(InstanceIds=[aws_lab.instance_ids[1]])
    elif problem == "no-vpc":
        options["vpc_id"] = "vpc-0123456789abcdef0"
    elif problem == "one-zone":
        same_zone = ec2.create_subnet(VpcId=aws_lab.vpc_id, CidrBlock="10.20.9.0/24",
                                      AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
        options["subnet_ids"] = [aws_lab.subnet_ids[0], same_zone]
    setup = make_setup(tmp_path, aws_lab, **options)
    with runner_for(setup) as runner:
        with pytest.raises(AwsError) as raised:
            runner.plan(["balancer"])
    assert expected in raised.value.message
    assert raised.value.hint


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg-state")}
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_installed_command_builds_and_rolls_back_the_balancer(tmp_path: Path, aws_lab) -> None:
    # internal-proxy: in a separate process no fixture can stand in for the Synchrony of moto's
    # instances, which direct mode would (rightly) refuse to point users at.
    setup = make_setup(tmp_path, aws_lab, synchrony_mode="internal-proxy")
    tmp, answers, state = setup["tmp"], str(setup["answers_file"]), str(setup["state"])
    applied = cli("apply", "--answers", answers, "--state", state, "--only", "balancer", "--yes", cwd=tmp)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "create Application Load Balancer wiki-test" in applied.stdout
    assert_balancer_built(setup, synchrony=False)

    planned = cli("plan", "--answers", answers, "--state", state, "--only", "balancer", cwd=tmp)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "0 change(s) planned" in planned.stdout and "already matches" in planned.stdout

    # verify runs every step's checks; the nodes' Connector is another step's work, not done
    # here, and moto's balancer carries no traffic, so the end-to-end tests through it fail.
    # The balancer step's own checks (recorded under its name in the state) all pass.
    verified = cli("verify", "--state", state, "--json", cwd=tmp)
    assert verified.returncode == 3 and json.loads(verified.stdout)["passed"] is False
    balancer = json.loads(Path(state).read_text())["steps"]["balancer"]["checks"]
    assert len(balancer) >= 10 and all(c["passed"] for c in balancer), verified.stdout  # no Synchrony group

    runbook = cli("runbook", "--state", state, cwd=tmp)
    assert runbook.returncode == 0, runbook.stderr
    assert "wiki-test-confluence" in runbook.stdout and "aws elbv2 delete-target-group" in runbook.stdout

    rolled = cli("rollback", "--state", state, "--yes", cwd=tmp)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert_nothing_left(setup)


def switched(setup: dict, mode: str) -> dict:
    """The same setup with other answers for synchrony.mode."""
    raw = {**setup["raw"], "synchrony": {"mode": mode}}
    return {**setup, "raw": raw, "answers": validate(raw)}


def synchrony_rule(elbv2, arns: dict) -> dict:
    listener = next(item for item in elbv2.describe_listeners(LoadBalancerArn=arns["balancer"])["Listeners"]
                    if item["Port"] == 443)
    return next(rule for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
                if not rule["IsDefault"])


def test_switching_to_internal_proxy_removes_the_synchrony_route_and_its_undo_puts_it_back(
        setup: dict, calls: CallLog) -> None:
    assert apply(setup).exit_status == EXIT_OK
    _, elbv2 = clients()
    before = assert_balancer_built(setup)
    priority = synchrony_rule(elbv2, before)["Priority"]

    internal = switched(setup, "internal-proxy")
    with runner_for(internal) as runner:
        plan = runner.plan(["balancer"])[0]
    assert [(c.details.resource, c.details.action) for c in plan.changes] == [
        ("synchrony-rule", "delete"), ("synchrony-target-group", "delete"), ("node-ingress", "revoke")]
    assert all("synchrony.mode is internal-proxy" in c.summary for c in plan.changes)
    assert ": 3 to remove (account" in plan.summary, plan.summary
    calls.operations.clear()
    outcome = apply(internal)
    assert outcome.exit_status == EXIT_OK, outcome.message
    # Those three calls and nothing else; what stays is exactly the internal-proxy balancer.
    assert calls.mutating == ["DeleteRule", "DeleteTargetGroup", "RevokeSecurityGroupIngress"]
    after = assert_balancer_built(internal, synchrony=False)
    assert (after["balancer"], after["confluence"], after["group"]) == \
        (before["balancer"], before["confluence"], before["group"])

    calls.operations.clear()
    assert apply(internal).exit_status == EXIT_OK
    assert "DescribeTargetGroups" in calls.operations and calls.mutating == []

    # The undos that apply recorded, performed newest first as rollback does, put the route back.
    record = json.loads(setup["state"].read_text())["steps"]["balancer"]
    recorded = [UndoAction.from_dict(entry) for entry in record["undo"][-3:]]
    assert [(u.kind, u.data["resource"]) for u in recorded] == [
        ("aws-recreate", "rule"), ("aws-recreate", "target-group"), ("aws-recreate", "security-group-ingress")]
    assert all(u.manual.startswith("aws ") for u in recorded)
    session = wizard_aws.connect(REGION, None)
    for action in reversed(recorded):
        alb_undo.perform(session, action, lambda _: None)
    restored = assert_balancer_built(setup)  # the rule forwards to the new Synchrony group, with both nodes
    assert restored["synchrony"] != before["synchrony"]
    assert synchrony_rule(elbv2, restored)["Priority"] == priority
    with runner_for(setup) as runner:
        assert runner.plan(["balancer"])[0].is_noop

    # A full rollback then takes everything away, the recreated resources included.
    assert rollback(setup).exit_status == EXIT_OK
    assert_nothing_left(setup)


def test_a_failed_switch_to_internal_proxy_puts_back_what_it_had_deleted(setup: dict) -> None:
    assert apply(setup).exit_status == EXIT_OK
    remove = wizard_aws.add_client_hook(refuse_call("RevokeSecurityGroupIngress"))
    try:
        outcome = apply(switched(setup, "internal-proxy"))
    finally:
        remove()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "ec2:RevokeSecurityGroupIngress" in outcome.message
    record = json.loads(setup["state"].read_text())["steps"]["balancer"]
    assert any("Create the rule /synchrony/* on listener 443 of wiki-test again" in u
               for u in record["error"]["undone"])
    assert_balancer_built(setup)


# --------------------------------------------------------------------------- issue 16


def test_an_idle_timeout_under_300_fails_verify_even_when_the_answers_say_so(tmp_path: Path, aws_lab) -> None:
    setup = make_setup(tmp_path, aws_lab, idle_timeout=60)
    with runner_for(setup) as runner:
        plan = runner.plan(["balancer"])[0]
    assert "WARNING: idle_timeout 60 s is under 300 s" in plan.summary
    outcome = apply(setup)
    assert outcome.exit_status == EXIT_CHECK_FAILED  # applied as answered, and verify says it is not enough
    idle = next(c for c in outcome.checks if c.name == "idle timeout")
    assert not idle.passed and idle.seen == "60 s" and "set balancer.alb.idle_timeout to 300" in idle.fix
    _, elbv2 = clients()
    arn = elbv2.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]["LoadBalancerArn"]
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=arn)["Attributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "60"


def test_standalone_synchrony_target_group_registers_the_synchrony_machines(tmp_path: Path, aws_lab) -> None:
    setup = make_setup(tmp_path, aws_lab, synchrony_mode="internal-proxy")
    raw = {**setup["raw"], "synchrony": {"mode": "standalone", "port": 8095, "nodes": [
        {"name": "sync1", "address": aws_lab.private_ips[0]},
        {"name": "sync2", "address": aws_lab.private_ips[1], "port": 8096}]},
        "balancer": {**setup["raw"]["balancer"], "settings": {"tls_protocols": ["TLSv1.3"]}}}
    setup = {**setup, "raw": raw, "answers": validate(raw)}
    with runner_for(setup) as runner:
        plan = runner.plan(["balancer"])[0]
    assert "registers the standalone Synchrony machines (sync1, sync2)" in plan.summary
    assert "policy ELBSecurityPolicy-TLS13-1-3-2021-06" in plan.summary
    assert apply(setup).exit_status == EXIT_OK
    _, elbv2 = clients()
    group = target_group(elbv2, f"{NAME}-synchrony")
    assert group is not None and group["TargetType"] == "ip" and group["HealthCheckPath"] == "/synchrony/heartbeat"
    targets = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    assert sorted((t["Target"]["Id"], t["Target"]["Port"]) for t in targets) == sorted(
        [(aws_lab.private_ips[0], 8095), (aws_lab.private_ips[1], 8096)])
    # The Confluence group still registers the nodes (by instance), and /synchrony/* goes to the machines.
    confluence = target_group(elbv2, f"{NAME}-confluence")
    assert confluence is not None and confluence["TargetType"] == "instance"
    lb = elbv2.describe_load_balancers(Names=[NAME])["LoadBalancers"][0]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    https = next(listener for listener in listeners if listener["Port"] == 443)
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"
    rules = elbv2.describe_rules(ListenerArn=https["ListenerArn"])["Rules"]
    forward = [r for r in rules if not r["IsDefault"]]
    assert len(forward) == 1 and forward[0]["Actions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    assert rollback(setup).exit_status == EXIT_OK
    assert target_group(elbv2, f"{NAME}-synchrony") is None
