"""Taking the ALB work back, with botocore's Stubber: only what this setup tagged, waiting while AWS
still holds a resource, and nothing at all for a resource already gone.

moto deletes at once and never says "still in use"; AWS does both (a deleted
balancer's network interfaces keep its security group for minutes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from wizard.transport import aws as wizard_aws
from wizard.balancers.alb import timing, undo
from wizard.balancers.alb.desired import Desired
from wizard.balancers.alb.names import Names
from wizard.transport.aws import Aws, AwsError
from wizard.engine.model import UndoAction

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


# --- Making again what the switch to internal-proxy deleted --------------------------------------

LB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/wiki/1"
LISTENER_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/wiki/1/443"
OLD_SYNCHRONY = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/wiki-synchrony/old"
NEW_SYNCHRONY = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/wiki-synchrony/new"
HEALTH = {"HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckPath": "/synchrony/heartbeat",
          "HealthCheckIntervalSeconds": 20, "HealthCheckTimeoutSeconds": 10, "HealthyThresholdCount": 2,
          "Matcher": {"HttpCode": "200"}}
TAGS = {"confluence-lb-wizard:setup": "wiki", "confluence-lb-wizard:managed": "true"}
TAG_LIST = [{"Key": k, "Value": v} for k, v in TAGS.items()]


def desired() -> Desired:
    return Desired(names=Names("wiki", "wiki", "wiki-confluence", "wiki-synchrony", "wiki-alb"), region=REGION,
                   vpc_id=VPC, scheme="internet-facing", subnets=(), idle_timeout=300, balancer_ingress=(),
                   node_security_group=NODES, node_ingress=(), target_groups=(), listeners=(), rule=None,
                   context_path="")


def synchrony_group(arn: str) -> dict:
    return {"TargetGroups": [{"TargetGroupArn": arn, "TargetGroupName": "wiki-synchrony", "Protocol": "HTTP",
                              "Port": 8091, "VpcId": VPC, "TargetType": "instance"}]}


def expect_group_read(elbv2: Stubber, arn: str, tags: list[dict[str, str]]) -> None:
    elbv2.add_response("describe_target_groups", synchrony_group(arn))
    elbv2.add_response("describe_target_group_attributes", {"Attributes": []})
    elbv2.add_response("describe_tags", {"TagDescriptions": [{"ResourceArn": arn, "Tags": tags}]})
    elbv2.add_response("describe_target_health", {"TargetHealthDescriptions": []})


def expect_balancer_read(elbv2: Stubber) -> None:
    """The setup's balancer with its HTTPS listener and no rule but the default one."""
    elbv2.add_response("describe_load_balancers", {"LoadBalancers": [{"LoadBalancerArn": LB_ARN,
                                                                      "LoadBalancerName": "wiki"}]})
    elbv2.add_response("describe_load_balancer_attributes", {"Attributes": []})
    elbv2.add_response("describe_listeners", {"Listeners": [{"ListenerArn": LISTENER_ARN, "Port": 443}]})
    elbv2.add_response("describe_rules", {"Rules": [{"RuleArn": "arn:default", "IsDefault": True}]})
    elbv2.add_response("describe_tags", {"TagDescriptions": [{"ResourceArn": LB_ARN, "Tags": TAG_LIST}]})


def test_a_deleted_target_group_is_made_again_with_its_settings_tags_and_targets() -> None:
    targets = [{"Id": "i-0123456789abcdef0", "Port": 8091}, {"Id": "i-0123456789abcdef1", "Port": 8091}]
    recreate = undo.recreate_target_group(desired(), "wiki-synchrony", {
        "protocol": "HTTP", "port": 8091, "vpc_id": VPC, "target_type": "instance", "health": HEALTH,
        "attributes": {"stickiness.enabled": "true", "stickiness.type": "lb_cookie", "unset": ""},
        "tags": TAGS, "targets": targets})
    assert recreate.kind == undo.RECREATE and recreate.kind in undo.KINDS
    assert recreate.manual.startswith(f"aws elbv2 create-target-group --region {REGION} --name wiki-synchrony "
                                      "--protocol HTTP --port 8091")
    assert "register-targets" in recreate.manual and "Id=i-0123456789abcdef1,Port=8091" in recreate.manual
    aws, stubs = stubbed("elbv2")
    elbv2 = stubs["elbv2"]
    elbv2.add_client_error("describe_target_groups", service_error_code="TargetGroupNotFound", http_status_code=400)
    elbv2.add_response("create_target_group", {"TargetGroups": [{"TargetGroupArn": NEW_SYNCHRONY}]}, {
        "Name": "wiki-synchrony", "Protocol": "HTTP", "Port": 8091, "VpcId": VPC, "TargetType": "instance",
        "HealthCheckEnabled": True, **HEALTH, "Tags": TAG_LIST})
    elbv2.add_response("modify_target_group_attributes", {}, {"TargetGroupArn": NEW_SYNCHRONY, "Attributes": [
        {"Key": "stickiness.enabled", "Value": "true"}, {"Key": "stickiness.type", "Value": "lb_cookie"}]})
    elbv2.add_response("register_targets", {}, {"TargetGroupArn": NEW_SYNCHRONY, "Targets": targets})
    undo.perform(aws, recreate, lambda _: None)
    elbv2.assert_no_pending_responses()


def test_a_deleted_rule_is_made_again_forwarding_to_the_group_as_it_is_now() -> None:
    conditions = [{"Field": "path-pattern", "Values": ["/synchrony/*"],
                   "PathPatternConfig": {"Values": ["/synchrony/*"]}}]
    actions = [{"Type": "forward", "TargetGroupArn": OLD_SYNCHRONY,
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": OLD_SYNCHRONY, "Weight": 1}]}}]
    recreate = undo.recreate_rule(desired(), {"port": 443, "path": "/synchrony/*", "priority": "10",
                                              "conditions": conditions, "actions": actions, "tags": TAGS})
    assert recreate.kind == undo.RECREATE and "--priority 10" in recreate.manual
    assert "--names wiki-synchrony" in recreate.manual  # the group's ARN is looked up, not the old one
    aws, stubs = stubbed("elbv2")
    elbv2 = stubs["elbv2"]
    expect_balancer_read(elbv2)
    expect_group_read(elbv2, NEW_SYNCHRONY, TAG_LIST)
    new_actions = [{"Type": "forward", "TargetGroupArn": NEW_SYNCHRONY,
                    "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": NEW_SYNCHRONY, "Weight": 1}]}}]
    elbv2.add_response("create_rule", {"Rules": [{"RuleArn": "arn:rule"}]}, {
        "ListenerArn": LISTENER_ARN, "Priority": 10, "Actions": new_actions, "Tags": TAG_LIST,
        "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/synchrony/*"]}}]})
    undo.perform(aws, recreate, lambda _: None)
    elbv2.assert_no_pending_responses()


def test_a_rule_is_never_pointed_at_a_group_someone_else_now_names_wiki_synchrony() -> None:
    aws, stubs = stubbed("elbv2")
    elbv2 = stubs["elbv2"]
    expect_balancer_read(elbv2)
    expect_group_read(elbv2, NEW_SYNCHRONY, [{"Key": "Name", "Value": "wiki-synchrony"}])  # not the setup's
    recreate = undo.recreate_rule(desired(), {
        "port": 443, "path": "/synchrony/*", "priority": "10", "tags": TAGS,
        "actions": [{"Type": "forward", "TargetGroupArn": OLD_SYNCHRONY}],
        "conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/synchrony/*"]}}]})
    with pytest.raises(AwsError, match="this setup did not make it"):
        undo.perform(aws, recreate, lambda _: None)
    elbv2.assert_no_pending_responses()  # described, nothing created


def test_a_revoked_node_port_is_authorized_again_and_one_already_there_is_fine() -> None:
    mine = "confluence-lb-wizard wiki: Synchrony from the balancer"
    tags = [{"Key": "confluence-lb-wizard:setup", "Value": "wiki"}]
    again = undo.authorize_ingress(desired(), NODES, 8091, mine, SG, tags)
    assert again.kind == undo.RECREATE
    assert again.manual.startswith(f"aws ec2 authorize-security-group-ingress --region {REGION} --group-id {NODES}")
    expected = {"GroupId": NODES, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 8091, "ToPort": 8091,
                                                     "UserIdGroupPairs": [{"GroupId": SG, "Description": mine}]}],
                "TagSpecifications": [{"ResourceType": "security-group-rule", "Tags": tags}]}
    aws, stubs = stubbed("ec2")
    stubs["ec2"].add_response("authorize_security_group_ingress", {"Return": True}, expected)
    stubs["ec2"].add_client_error("authorize_security_group_ingress", service_error_code="InvalidPermission.Duplicate",
                                  http_status_code=400, expected_params=expected)
    undo.perform(aws, again, lambda _: None)
    undo.perform(aws, again, lambda _: None)
    stubs["ec2"].assert_no_pending_responses()
