"""Taking the ALB work back, with botocore's Stubber: only what this setup tagged, waiting while AWS
still holds a resource, and nothing at all for a resource already gone.

moto deletes at once and never says "still in use"; AWS does both (a deleted
balancer's network interfaces keep its security group for minutes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from wizard import aws as wizard_aws
from wizard.alb import timing, undo
from wizard.aws import Aws, AwsError
from wizard.model import UndoAction

REGION = "eu-west-1"
VPC = "vpc-0123456789abcdef0"
SG = "sg-0ba1a2ce0ba1a2ce0"
NODES = "sg-0a1b2c3d4e5f60718"
TG_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/wiki-confluence/1"
OURS = [{"Key": "confluence-lb-wizard:setup", "Value": "wiki"},
        {"Key": "confluence-lb-wizard:managed", "Value": "true"}]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path) -> Iterator[None]:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    wizard_aws.forget_sessions()
    yield
    wizard_aws.forget_sessions()


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(timing, "now", lambda: now[0])
    monkeypatch.setattr(timing, "sleep", sleep)
    monkeypatch.setattr(timing, "POLL_SECONDS", 10.0)
    monkeypatch.setattr(timing, "DELETE_TIMEOUT", 60.0)
    return slept


def stubbed(*services: str) -> tuple[Aws, dict[str, Stubber]]:
    clients, stubs = {}, {}
    for service in services:
        clients[service] = Aws(REGION).client(service)
        stubs[service] = Stubber(clients[service])
        stubs[service].activate()
    return Aws(REGION, clients=clients), stubs


def action(kind: str, resource: str, name: str, **data: object) -> UndoAction:
    return UndoAction(kind=kind, target="balancer", description=f"undo {name}", manual="by hand",
                      data={"resource": resource, "name": name, "region": REGION, "setup": "wiki", **data})


def group(tags: list[dict[str, str]]) -> dict:
    return {"SecurityGroups": [{"GroupId": SG, "GroupName": "wiki-alb", "VpcId": VPC, "Tags": tags,
                                "IpPermissions": []}]}


def test_the_security_group_is_deleted_once_aws_releases_it(clock: list[float]) -> None:
    aws, stubs = stubbed("ec2")
    ec2 = stubs["ec2"]
    ec2.add_response("describe_security_groups", group(OURS))
    for _ in range(2):
        ec2.add_client_error("delete_security_group", service_error_code="DependencyViolation",
                             service_message="resource has a dependent object", http_status_code=400)
    ec2.add_response("delete_security_group", {}, {"GroupId": SG})
    said: list[str] = []
    undo.perform(aws, action(undo.DELETE, "security-group", "wiki-alb", vpc_id=VPC), said.append)
    assert clock == [10.0, 10.0]
    assert said[0] == f"deleting security group wiki-alb ({SG})"
    assert "still in use" in said[1]
    ec2.assert_no_pending_responses()


def test_a_security_group_aws_never_releases_is_a_clear_error(clock: list[float]) -> None:
    aws, stubs = stubbed("ec2")
    stubs["ec2"].add_response("describe_security_groups", group(OURS))
    for _ in range(8):
        stubs["ec2"].add_client_error("delete_security_group", service_error_code="DependencyViolation",
                                      http_status_code=400)
    with pytest.raises(AwsError) as raised:
        undo.perform(aws, action(undo.DELETE, "security-group", "wiki-alb", vpc_id=VPC), lambda _: None)
    assert "AWS still holds the security group wiki-alb after 60 s" in raised.value.message
    assert "run the rollback again" in raised.value.hint


def test_a_group_of_the_same_name_without_the_setups_tag_is_left_alone() -> None:
    aws, stubs = stubbed("ec2")
    stubs["ec2"].add_response("describe_security_groups", group([{"Key": "Name", "Value": "wiki-alb"}]))
    undo.perform(aws, action(undo.DELETE, "security-group", "wiki-alb", vpc_id=VPC), lambda _: None)
    stubs["ec2"].assert_no_pending_responses()  # described, never deleted


def test_a_target_group_already_gone_is_fine() -> None:
    aws, stubs = stubbed("elbv2")
    stubs["elbv2"].add_client_error("describe_target_groups", service_error_code="TargetGroupNotFound",
                                    http_status_code=400)
    undo.perform(aws, action(undo.DELETE, "target-group", "wiki-confluence"), lambda _: None)
    stubs["elbv2"].assert_no_pending_responses()


def test_a_target_group_still_in_use_is_retried_until_released(clock: list[float]) -> None:
    aws, stubs = stubbed("elbv2")
    elbv2 = stubs["elbv2"]
    elbv2.add_response("describe_target_groups", {"TargetGroups": [{
        "TargetGroupArn": TG_ARN, "TargetGroupName": "wiki-confluence", "Protocol": "HTTP", "Port": 8090,
        "VpcId": VPC, "TargetType": "instance"}]})
    elbv2.add_response("describe_target_group_attributes", {"Attributes": []})
    elbv2.add_response("describe_tags", {"TagDescriptions": [{"ResourceArn": TG_ARN, "Tags": OURS}]})
    elbv2.add_response("describe_target_health", {"TargetHealthDescriptions": []})
    elbv2.add_client_error("delete_target_group", service_error_code="ResourceInUse", http_status_code=400)
    elbv2.add_response("delete_target_group", {}, {"TargetGroupArn": TG_ARN})
    undo.perform(aws, action(undo.DELETE, "target-group", "wiki-confluence"), lambda _: None)
    assert clock == [10.0]
    elbv2.assert_no_pending_responses()


def nodes_group(description: str) -> dict:
    return {"SecurityGroups": [{"GroupId": NODES, "GroupName": "nodes", "VpcId": VPC, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 8090, "ToPort": 8090,
         "UserIdGroupPairs": [{"GroupId": SG, "Description": description}], "IpRanges": []}]}]}


def test_the_nodes_rule_is_revoked_only_when_it_carries_the_wizards_description() -> None:
    mine = "confluence-lb-wizard wiki: Confluence from the balancer"
    revoke = action(undo.REVOKE, "security-group-ingress", NODES, group_id=NODES, port=8090, cidr=None,
                    source_group=SG, rule_description=mine)
    aws, stubs = stubbed("ec2")
    stubs["ec2"].add_response("describe_security_groups", nodes_group(mine))
    stubs["ec2"].add_response("revoke_security_group_ingress", {"Return": True}, {
        "GroupId": NODES, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 8090, "ToPort": 8090,
                                             "UserIdGroupPairs": [{"GroupId": SG, "Description": mine}]}]})
    undo.perform(aws, revoke, lambda _: None)
    stubs["ec2"].assert_no_pending_responses()

    aws, stubs = stubbed("ec2")
    stubs["ec2"].add_response("describe_security_groups", nodes_group("the admin's own rule"))
    undo.perform(aws, revoke, lambda _: None)  # described, not revoked
    stubs["ec2"].assert_no_pending_responses()


def test_an_undo_this_version_does_not_know_says_how_to_do_it_by_hand() -> None:
    aws, _ = stubbed("ec2")
    with pytest.raises(AwsError, match="does not know how to undo") as raised:
        undo.perform(aws, action(undo.DELETE, "nat-gateway", "x"), lambda _: None)
    assert "by hand" in raised.value.hint


def test_conditions_are_restored_in_the_one_spelling_modify_rule_takes() -> None:
    described = [{"Field": "path-pattern", "Values": ["/synchrony/*"],
                  "PathPatternConfig": {"Values": ["/synchrony/*"]}}]
    assert undo.clean_conditions(described) == [{"Field": "path-pattern",
                                                 "PathPatternConfig": {"Values": ["/synchrony/*"]}}]
