"""`export --format cloudformation`: cfn-lint clean, and deployed on moto's CloudFormation it builds
the balancer `apply` builds.

The twin: `apply --only balancer` builds the ALB in moto, its settings are read back through the
API, `rollback` removes it; then the exported template is deployed as a stack in the same
account and its resources are read back the same way. Target groups, listeners, the rule and
the balancer must be equal in every setting moto's CloudFormation carries. moto's
CloudFormation drops some properties (``MOTO_DROPS``): for those the template's own values
are compared with what `apply` set through the API, and a guard test fails the day moto
starts carrying them, so they move into the compared settings.

cfn-lint is a test dependency (pyproject's `test` extra): a missing cfn-lint fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from wizard.balancers.alb import timing
from wizard.answers import validate
from wizard.errors import EXIT_BAD_INPUT, EXIT_OK
from wizard.export import run_export
from wizard.export.folder import MANIFEST
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
NAME = "wiki-test"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
STACK_TAGS = [{"Key": "confluence-lb-wizard:setup", "Value": NAME}, {"Key": "confluence-lb-wizard:managed", "Value": "true"}]
#: What moto's CloudFormation (5.x) does not carry from the template to the resources it makes.
MOTO_DROPS = ("TargetGroup.TargetGroupAttributes (stickiness)", "TargetGroup.Targets",
              "the Tags of every ElasticLoadBalancingV2 resource (load balancer, target groups, listeners, rule; "
              "the stack's own tags too)",
              "LoadBalancer.LoadBalancerAttributes (idle timeout)",
              "List<Subnet::Id> parameter defaults (passed explicitly instead)",
              "Fn::GetAtt LoadBalancer.CanonicalHostedZoneID")


@pytest.fixture(autouse=True)
def _nodes_answer_their_heartbeat(moto_nodes_answer_synchrony) -> None:
    """moto's instances run no Synchrony (see the fixture)."""


@pytest.fixture(autouse=True)
def fast_waits(monkeypatch) -> None:
    monkeypatch.setattr(timing, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(timing, "ACTIVE_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "HEALTHY_TIMEOUT", 3.0)
    monkeypatch.setattr(timing, "DELETE_TIMEOUT", 3.0)


@pytest.fixture
def setup(tmp_path: Path, aws_lab) -> dict:
    nodes = []
    for index, name in enumerate(("node1", "node2")):
        install = tmp_path / name
        (install / "conf").mkdir(parents=True)
        (install / "conf" / "server.xml").write_text((FIXTURES / "confluence-7-stock.xml").read_text())
        nodes.append({"name": name, "address": aws_lab.private_ips[index], "install_dir": str(install),
                      "access": {"transport": "local"}, "instance_id": aws_lab.instance_ids[index]})
    raw = {"version": 1, "name": NAME, "public_url": "https://wiki.example.com", "nodes": nodes,
           "synchrony": {"mode": "direct"},
           "balancer": {"kind": "alb", "alb": {
               "region": REGION, "vpc_id": aws_lab.vpc_id, "subnet_ids": aws_lab.subnet_ids,
               "node_security_group_id": aws_lab.node_security_group_id,
               "certificate_arn": aws_lab.certificate_arn}}}
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(yaml.safe_dump(raw))
    return {"raw": raw, "answers": validate(raw), "file": answers_file, "lab": aws_lab,
            "state": tmp_path / "state" / f"{NAME}.state.json"}


def read_back(node_group: str) -> dict[str, Any]:
    """Every setting of the setup's balancer, by name rather than ARN or id, as the API shows it."""
    elbv2 = boto3.client("elbv2", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    groups = elbv2.describe_target_groups()["TargetGroups"]
    tg_names = {tg["TargetGroupArn"]: tg["TargetGroupName"] for tg in groups}

    def by_name(actions: list[dict]) -> list[dict]:
        return [{k: (tg_names[v] if k == "TargetGroupArn" else v) for k, v in a.items() if k != "Order"}
                for a in actions]

    found: dict[str, Any] = {"target_groups": {}, "attributes": {}, "targets": {}, "tags": {}}
    for tg in groups:
        name = tg["TargetGroupName"]
        found["target_groups"][name] = {k: tg[k] for k in (
            "Protocol", "Port", "TargetType", "HealthCheckProtocol", "HealthCheckPort", "HealthCheckEnabled",
            "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
            "HealthCheckPath", "Matcher")}
        attributes = elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
        found["attributes"][name] = {a["Key"]: a["Value"] for a in attributes
                                     if a["Key"].startswith("stickiness.")
                                     or a["Key"] == "deregistration_delay.timeout_seconds"}
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        found["targets"][name] = sorted((t["Target"]["Id"], t["Target"]["Port"]) for t in health)
        found["tags"][name] = {t["Key"]: t["Value"] for t in
                               elbv2.describe_tags(ResourceArns=[tg["TargetGroupArn"]])["TagDescriptions"][0]["Tags"]}
    (balancer,) = elbv2.describe_load_balancers()["LoadBalancers"]
    sg_names = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    found["load_balancer"] = {"Name": balancer["LoadBalancerName"], "Scheme": balancer["Scheme"],
                              "Type": balancer["Type"], "VpcId": balancer["VpcId"],
                              "Subnets": sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]),
                              "SecurityGroups": sorted(sg_names[g] for g in balancer["SecurityGroups"])}
    found["lb_attributes"] = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"])["Attributes"] if a["Key"].startswith("idle_timeout")}
    found["listeners"], found["rules"], found["part_tags"] = {}, {}, {}

    def tags_of(arn: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]}

    for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]:
        found["part_tags"][f"listener {listener['Port']}"] = tags_of(listener["ListenerArn"])
        for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
            if not rule["IsDefault"]:
                found["part_tags"][f"rule {listener['Port']} {rule['Priority']}"] = tags_of(rule["RuleArn"])
        found["listeners"][listener["Port"]] = {
            "Protocol": listener["Protocol"], "Certificates": listener.get("Certificates", []),
            # moto's API gives an HTTP listener a TLS policy; AWS has none there: compared for HTTPS only.
            "SslPolicy": listener.get("SslPolicy") if listener["Protocol"] == "HTTPS" else None,
            "DefaultActions": by_name(listener["DefaultActions"])}
        found["rules"][listener["Port"]] = sorted(
            ((r["Priority"], repr(r["Conditions"]), repr(by_name(r["Actions"])))
             for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]))
    (group,) = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == f"{NAME}-alb"]
    found["security_group"] = sorted((p["FromPort"], p["ToPort"], r["CidrIp"]) for p in group["IpPermissions"]
                                     for r in p.get("IpRanges", []))
    nodes_group = ec2.describe_security_groups(GroupIds=[node_group])["SecurityGroups"][0]
    found["node_ingress"] = sorted((p["FromPort"], sg_names.get(pair["GroupId"], "?"))
                                   for p in nodes_group["IpPermissions"] for pair in p.get("UserIdGroupPairs", []))
    return found


def deploy(template: str, setup: dict) -> dict:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    # moto ignores a List<AWS::EC2::Subnet::Id> parameter's default (MOTO_DROPS): pass it, as
    # `aws cloudformation deploy --parameter-overrides` would.
    cloudformation.create_stack(StackName=NAME, TemplateBody=template, Tags=STACK_TAGS, Parameters=[
        {"ParameterKey": "Subnets", "ParameterValue": ",".join(setup["lab"].subnet_ids)}])
    (stack,) = cloudformation.describe_stacks(StackName=NAME)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return stack


def lint(path: Path) -> subprocess.CompletedProcess:
    if not CFN_LINT.exists():
        pytest.fail("cfn-lint is missing: install the test extra (pip install -e '.[test]'), which brings it.")
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, check=False, timeout=300)


def test_template_is_lint_clean_and_deploys_to_what_apply_builds(setup, tmp_path):
    # The wizard's own balancer, read back, then removed.
    runner = Runner(setup["answers"], StateStore(setup["state"]), command="test")
    with runner:
        assert runner.apply(["balancer"]).exit_status == EXIT_OK
    by_apply = read_back(setup["lab"].node_security_group_id)
    with Runner(setup["answers"], StateStore(setup["state"]), command="test rollback") as runner:
        assert runner.rollback("balancer").exit_status == EXIT_OK
    assert not boto3.client("elbv2", region_name=REGION).describe_load_balancers()["LoadBalancers"]

    out = tmp_path / "cfn"
    written = run_export("cloudformation", setup["answers"], out)
    assert [p.name for p in written] == [f"{NAME}.cfn.yaml"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, f"{NAME}.cfn.yaml"])
    template_path = out / f"{NAME}.cfn.yaml"
    linted = lint(template_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    template_text = template_path.read_text()
    template = yaml.safe_load(template_text)
    parameters = template["Parameters"]
    assert parameters["VpcId"]["Default"] == setup["lab"].vpc_id
    assert parameters["Subnets"]["Default"].split(",") == sorted(setup["lab"].subnet_ids)
    assert parameters["CertificateArn"]["Default"] == setup["lab"].certificate_arn
    assert "DNSName" in template["Outputs"]

    stack = deploy(template_text, setup)
    by_stack = read_back(setup["lab"].node_security_group_id)
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["DNSName"].endswith(".elb.amazonaws.com")

    # Equal in every setting moto's CloudFormation carries.
    for key in ("target_groups", "load_balancer", "listeners", "rules", "security_group", "node_ingress"):
        assert by_stack[key] == by_apply[key], key
    assert by_apply["security_group"] == [(80, 80, "0.0.0.0/0"), (443, 443, "0.0.0.0/0")]
    assert by_apply["node_ingress"] == [(8090, f"{NAME}-alb"), (8091, f"{NAME}-alb")]
    assert set(by_apply["listeners"]) == {80, 443} and len(by_apply["target_groups"]) == 2
    assert by_apply["rules"][443] == [("10", repr([{"Field": "path-pattern", "PathPatternConfig":
                                                  {"Values": ["/synchrony/*"]}}]),
                                       repr([{"Type": "forward", "TargetGroupArn": f"{NAME}-synchrony"}]))]
    assert by_apply["listeners"][80]["DefaultActions"][0]["RedirectConfig"]["StatusCode"] == "HTTP_301"

    # What moto drops (MOTO_DROPS): the template's values against what apply set through the API.
    resources = template["Resources"]
    groups = {r["Properties"]["Name"]: r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"}
    assert set(groups) == set(by_apply["target_groups"]) == {f"{NAME}-confluence", f"{NAME}-synchrony"}
    for name, properties in groups.items():
        assert {a["Key"]: a["Value"] for a in properties["TargetGroupAttributes"]} == by_apply["attributes"][name]
        assert sorted((t["Id"], t["Port"]) for t in properties["Targets"]) == by_apply["targets"][name]
        template_tags = {t["Key"]: t["Value"] for t in properties["Tags"]}
        assert template_tags == by_apply["tags"][name]
        assert template_tags["confluence-lb-wizard:setup"] == NAME
    # The listeners and the rule carry the tags `apply` gives them (moto drops them from the stack's: MOTO_DROPS),
    # so `plan` owns them whatever tags the stack is deployed with.
    template_parts = {f"listener {r['Properties']['Port']}": r["Properties"]["Tags"] for r in resources.values()
                      if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"}
    template_parts.update({f"rule 443 {r['Properties']['Priority']}": r["Properties"]["Tags"]
                           for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"})
    assert {k: {t["Key"]: t["Value"] for t in v} for k, v in template_parts.items()} == by_apply["part_tags"]
    assert set(by_apply["part_tags"]) == {"listener 80", "listener 443", "rule 443 10"}
    (balancer,) = [r["Properties"] for r in resources.values()
                   if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"]
    assert {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]} == by_apply["lb_attributes"] \
        == {"idle_timeout.timeout_seconds": "300"}
    assert {t["Key"]: t["Value"] for t in balancer["Tags"]}["confluence-lb-wizard:setup"] == NAME


def test_moto_still_drops_what_the_comparison_names(setup, tmp_path):
    """The day moto's CloudFormation carries these, they belong in the compared settings above."""
    run_export("cloudformation", setup["answers"], tmp_path / "cfn")
    deploy((tmp_path / "cfn" / f"{NAME}.cfn.yaml").read_text(), setup)
    found = read_back(setup["lab"].node_security_group_id)
    dropped = [name for name in found["attributes"] if found["attributes"][name].get("stickiness.enabled") != "true"]
    untargeted = [name for name in found["targets"] if not found["targets"][name]]
    assert dropped or untargeted or found["lb_attributes"] != {"idle_timeout.timeout_seconds": "300"}, \
        f"moto now carries {MOTO_DROPS}: compare them through the stack in the test above"


def test_cloudformation_refuses_apache_answers_and_a_foreign_folder(setup, tmp_path):
    from wizard.cli import main

    apache = Path(__file__).resolve().parents[1] / "fixtures" / "answers" / "valid" / "contract-apache.yaml"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["export", "--format", "cloudformation", "--answers", str(setup["file"]), "-o",
                 str(foreign)]) == EXIT_BAD_INPUT
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert main(["export", "--format", "cloudformation", "--answers", str(apache), "-o",
                 str(tmp_path / "new")]) == EXIT_BAD_INPUT


def test_export_takes_the_answers_recorded_in_a_state_file(setup, tmp_path, capsys):
    from wizard.cli import main

    store = StateStore(setup["state"])
    with store:
        state = store.load_or_new(NAME)
        state.answers = setup["answers"].to_dict()
        store.save(state)
    out = tmp_path / "from-state"
    assert main(["export", "--format", "cloudformation", "--state", str(setup["state"]), "-o", str(out)]) == EXIT_OK
    template = yaml.safe_load((out / f"{NAME}.cfn.yaml").read_text())
    assert template["Parameters"]["VpcId"]["Default"] == setup["lab"].vpc_id
    # Exporting again into its own folder replaces the earlier export.
    assert main(["export", "--format", "cloudformation", "--answers", str(setup["file"]), "-o", str(out)]) == EXIT_OK
    assert "Wrote 1 file(s)" in capsys.readouterr().err


#: What moto's CloudFormation cannot show about the stack's resources, which `plan` needs to recognise them:
#: it creates every ElasticLoadBalancingV2 resource WITHOUT the Tags the template gives it (load balancer,
#: target groups, listeners, rule), and drops the target groups' attributes and targets and the balancer's
#: idle timeout (MOTO_DROPS). AWS's CloudFormation applies each resource's Tags and properties when it creates
#: it; here the test applies the template's own values to the stack's resources through the API, so what is
#: tested is the template's names and tags against the way `plan` and `verify` find and own resources.
MOTO_CANNOT_MODEL = MOTO_DROPS[:4]


def as_aws_would_create_it(template: dict) -> list[str]:
    """Give the stack's resources what AWS's CloudFormation gives them from the template and moto drops
    (MOTO_CANNOT_MODEL), taken from the template itself; returns what was given, for the record."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                for r in cloudformation.describe_stack_resources(StackName=NAME)["StackResources"]}
    given = []
    for logical, resource in template["Resources"].items():
        properties, kind = resource["Properties"], resource["Type"]
        if not kind.startswith("AWS::ElasticLoadBalancingV2::"):
            continue
        arn = physical[logical]
        assert arn.startswith("arn:aws:elasticloadbalancing:"), (logical, arn)
        if elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"] == [] and properties.get("Tags"):
            elbv2.add_tags(ResourceArns=[arn], Tags=properties["Tags"])
            given.append(f"{logical} tags")
        if kind.endswith("::TargetGroup"):
            elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=properties["TargetGroupAttributes"])
            elbv2.register_targets(TargetGroupArn=arn, Targets=properties["Targets"])
            given.append(f"{logical} attributes and targets")
        if kind.endswith("::LoadBalancer"):
            elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=properties["LoadBalancerAttributes"])
            given.append(f"{logical} attributes")
    return given


def test_plan_and_verify_recognise_the_stacks_balancer_as_this_setups(setup, tmp_path):
    """A setup whose ALB came from the exported stack is found (the balancer, target groups and security group
    by name, the listeners and the rule on it) and owned (tags on every one, listeners and rule included): `plan`
    with the same answers plans nothing to create, nothing at all once the resources hold what the template says,
    and `verify`'s balancer checks pass. What moto cannot model is named in MOTO_CANNOT_MODEL."""
    run_export("cloudformation", setup["answers"], tmp_path / "cfn")
    template_text = (tmp_path / "cfn" / f"{NAME}.cfn.yaml").read_text()
    template = yaml.safe_load(template_text)
    # No stack tags: the template's own Tags are what makes every resource this setup's.
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName=NAME, TemplateBody=template_text, Parameters=[
        {"ParameterKey": "Subnets", "ParameterValue": ",".join(setup["lab"].subnet_ids)}])
    assert cloudformation.describe_stacks(StackName=NAME)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    given = as_aws_would_create_it(template)
    assert any("Listener" in item for item in given) and any("SynchronyRule" in item for item in given), given

    with Runner(setup["answers"], StateStore(setup["state"]), command="test plan") as runner:
        (plan,) = runner.plan(["balancer"])
    creates = [change.summary for change in plan.changes if change.details.get("action") == "create"]
    assert not creates, creates
    assert not plan.changes, [change.summary for change in plan.changes]
    assert "already matches" in plan.noop_reason and NAME in plan.noop_reason, plan.noop_reason

    with Runner(setup["answers"], StateStore(setup["state"]), command="test verify") as runner:
        outcome = runner.verify(["balancer"])
    by_name = {check.name: check for check in outcome.checks if check.target == "balancer"}
    for name in ("balancer security group", "nodes' security group", "Application Load Balancer", "idle timeout",
                 "HTTPS listener 443", "HTTP listener 80", "/synchrony/* rule", "Confluence target group",
                 "Confluence stickiness", "Synchrony target group", "Synchrony stickiness"):
        assert name in by_name and by_name[name].passed, (name, by_name.get(name))
    assert len(elbv2_names()) == 1  # still the stack's one balancer


def elbv2_names() -> list[str]:
    return [b["LoadBalancerName"] for b in boto3.client("elbv2", region_name=REGION).describe_load_balancers()[
        "LoadBalancers"]]


def test_moto_still_drops_the_tags_the_recognition_test_gives_back(setup, tmp_path):
    """The day moto's CloudFormation carries the ElasticLoadBalancingV2 Tags, as_aws_would_create_it is no longer
    needed for them: the recognition test above then runs on the stack as moto made it."""
    run_export("cloudformation", setup["answers"], tmp_path / "cfn")
    deploy((tmp_path / "cfn" / f"{NAME}.cfn.yaml").read_text(), setup)
    elbv2 = boto3.client("elbv2", region_name=REGION)
    (balancer,) = elbv2.describe_load_balancers()["LoadBalancers"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    arns = [balancer["LoadBalancerArn"], *(listener["ListenerArn"] for listener in listeners)]
    tagged = [d for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"] if d["Tags"]]
    assert not tagged, f"moto now carries {MOTO_CANNOT_MODEL[2]}: drop them from as_aws_would_create_it"
