"""balancer.alb.allowed_cidrs end to end against moto's server: the balancer's security group
admits exactly the allowed networks (IPv4 and IPv6) on every listener port, narrowing the list
revokes only this setup's rules and their undo puts them back, the admin's own rule survives,
an internal balancer defaults to its VPC's CIDR, and a second apply changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml
from test_alb_balancer import (  # noqa: F401  (fast_waits, _nodes_answer_their_heartbeat: autouse fixtures)
    NAME,
    REGION,
    CallLog,
    _nodes_answer_their_heartbeat,
    apply,
    assert_nothing_left,
    balancer_group,
    calls,
    fast_waits,
    make_setup,
    rollback,
    runner_for,
)

from wizard.answers import validate
from wizard.balancers.alb import undo as alb_undo
from wizard.balancers.alb.step import STEP
from wizard.engine.model import UndoAction
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED
from wizard.transport import aws as wizard_aws

pytestmark = pytest.mark.integration

MINE = "confluence-lb-wizard wiki-test: "


def ingress(vpc_id: str) -> dict[int, list[tuple[str, str | None]]]:
    """port -> sorted (network, description) of the balancer's group, IPv4 and IPv6 alike."""
    ec2 = boto3.client("ec2", region_name=REGION)
    group = balancer_group(ec2, vpc_id)
    assert group is not None
    found: dict[int, list[tuple[str, str | None]]] = {}
    for permission in group["IpPermissions"]:
        entries = [(r["CidrIp"], r.get("Description")) for r in permission.get("IpRanges", [])]
        entries += [(r["CidrIpv6"], r.get("Description")) for r in permission.get("Ipv6Ranges", [])]
        entries += [(g["GroupId"], g.get("Description")) for g in permission.get("UserIdGroupPairs", [])]
        found.setdefault(permission["FromPort"], []).extend(entries)
    return {port: sorted(entries) for port, entries in found.items()}


def mine(*cidrs: str, protocol: str) -> list[tuple[str, str]]:
    return sorted((cidr, f"{MINE}{protocol} from users") for cidr in cidrs)


def with_cidrs(setup: dict, cidrs: list[str] | None, **alb: object) -> dict:
    """The same setup with other answers for balancer.alb.allowed_cidrs (None: the key left out)."""
    options = {k: v for k, v in setup["raw"]["balancer"]["alb"].items() if k != "allowed_cidrs"}
    options.update(alb)
    if cidrs is not None:
        options["allowed_cidrs"] = cidrs
    raw = {**setup["raw"], "balancer": {"kind": "alb", "alb": options}}
    setup["answers_file"].write_text(yaml.safe_dump(raw))
    return {**setup, "raw": raw, "answers": validate(raw)}


def plan_of(setup: dict):
    with runner_for(setup) as runner:
        return runner.plan(["balancer"])[0]


@pytest.fixture
def setup(tmp_path: Path, aws_lab) -> dict:
    return make_setup(tmp_path, aws_lab, allowed_cidrs=["203.0.113.0/24", "198.51.100.0/24", "2001:DB8::/32"])


def test_the_allowed_networks_are_the_only_ingress_the_setup_creates_ipv4_and_ipv6(setup: dict,
                                                                                  calls: CallLog) -> None:  # noqa: F811 (a fixture)
    outcome = apply(setup)
    assert outcome.exit_status == EXIT_OK, outcome.message
    cidrs = ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
    assert ingress(setup["lab"].vpc_id) == {443: mine(*cidrs, protocol="HTTPS"), 80: mine(*cidrs, protocol="HTTP")}
    checks = {c.name: c for c in outcome.checks}
    assert checks["balancer security group"].passed, checks["balancer security group"]
    assert "TCP 443 from 203.0.113.0/24, 198.51.100.0/24, 2001:db8::/32" in checks["balancer security group"].seen

    calls.operations.clear()
    plan = plan_of(setup)
    assert plan.is_noop, [c.summary for c in plan.changes]
    assert apply(setup).exit_status == EXIT_OK
    assert "DescribeSecurityGroups" in calls.operations and calls.mutating == []


def test_narrowing_revokes_only_the_dropped_rules_the_admins_own_rule_survives_and_the_undo_puts_them_back(
        setup: dict, calls: CallLog) -> None:  # noqa: F811 (a fixture)
    assert apply(setup).exit_status == EXIT_OK
    ec2 = boto3.client("ec2", region_name=REGION)
    group_id = balancer_group(ec2, setup["lab"].vpc_id)["GroupId"]
    # The admin's own rules in the balancer's group: one on a listener port, one beside.
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]},
        {"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443,
         "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": "the admin's health probe"}]}])
    before = ingress(setup["lab"].vpc_id)

    narrowed = with_cidrs(setup, ["203.0.113.0/24"])
    plan = plan_of(narrowed)
    assert [(c.details.action, c.details.extra["port"], c.details.extra["cidrs"]) for c in plan.changes] == [
        ("revoke", 443, ["198.51.100.0/24", "2001:db8::/32"]), ("revoke", 80, ["198.51.100.0/24", "2001:db8::/32"])]
    calls.operations.clear()
    outcome = apply(narrowed)
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert calls.mutating == ["RevokeSecurityGroupIngress"] * 4
    assert ingress(setup["lab"].vpc_id) == {
        443: sorted([*mine("203.0.113.0/24", protocol="HTTPS"), ("192.0.2.0/24", None)]),
        80: mine("203.0.113.0/24", protocol="HTTP"),
        8443: [("192.0.2.0/24", "the admin's health probe")]}
    check = next(c for c in outcome.checks if c.name == "balancer security group")
    assert check.passed and "also rules not made by this setup (left alone): TCP 443 from 192.0.2.0/24" in check.seen
    calls.operations.clear()
    assert plan_of(narrowed).is_noop and apply(narrowed).exit_status == EXIT_OK and calls.mutating == []

    # The undos apply recorded for the narrowing, vetted as rollback vets them and performed newest
    # first, authorize the four rules again with this setup's description.
    record = json.loads(setup["state"].read_text())["steps"]["balancer"]
    recorded = [UndoAction.from_dict(entry) for entry in record["undo"]][-4:]
    assert [(u.kind, u.data["port"], u.data["cidr"]) for u in recorded] == [
        ("aws-recreate", 443, "198.51.100.0/24"), ("aws-recreate", 443, "2001:db8::/32"),
        ("aws-recreate", 80, "198.51.100.0/24"), ("aws-recreate", 80, "2001:db8::/32")]
    session = wizard_aws.connect(REGION, None)
    for index, action in reversed(list(enumerate(recorded))):
        alb_undo.perform(session, STEP.vet_undo(narrowed["answers"], action, f"undo record {index}"), lambda _: None)
    assert ingress(setup["lab"].vpc_id) == before
    assert plan_of(setup).is_noop

    # A whole rollback deletes the group the wizard made (with every rule in it) and nothing else.
    assert rollback(setup).exit_status == EXIT_OK
    assert_nothing_left(setup)


def refuse_second(operation: str):
    """A client hook under which AWS refuses the second call of ``operation`` (only that one: the undo
    that follows makes the same call)."""
    from botocore.awsrequest import AWSResponse

    seen = [0]

    def refuse(model, **_: object):
        if model.name != operation:
            return None
        seen[0] += 1
        if seen[0] != 2:
            return None
        parsed = {"Error": {"Code": "AccessDenied", "Message": "User is not authorized"},
                  "ResponseMetadata": {"HTTPStatusCode": 403}}
        return AWSResponse("http://refused", 403, {}, None), parsed

    def hook(service: str, client) -> None:
        client.meta.events.register("before-call", refuse)

    return hook


def test_a_replacement_that_fails_halfway_is_taken_back_whole(setup: dict) -> None:
    assert apply(setup).exit_status == EXIT_OK
    before = ingress(setup["lab"].vpc_id)
    replaced = with_cidrs(setup, ["10.0.0.0/8", "2001:db8:ffff::/48"])
    remove = wizard_aws.add_client_hook(refuse_second("RevokeSecurityGroupIngress"))
    try:
        outcome = apply(replaced)
    finally:
        remove()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "ec2:RevokeSecurityGroupIngress" in outcome.message and "Traceback" not in outcome.message
    # Every rule added was revoked again, the one revoked authorized again: as before the run.
    assert ingress(setup["lab"].vpc_id) == before
    undone = json.loads(setup["state"].read_text())["steps"]["balancer"]["error"]["undone"]
    assert any("Let 198.51.100.0/24 reach TCP 443" in line for line in undone), undone
    assert any("Remove the rule the wizard added" in line and "10.0.0.0/8" in line for line in undone), undone


def test_an_internal_balancer_admits_its_vpc_by_default_and_warns_when_opened_to_everyone(
        tmp_path: Path, aws_lab) -> None:
    internal = make_setup(tmp_path, aws_lab, scheme="internal")
    plan = plan_of(internal)
    assert "listener ports open to 10.20.0.0/16 (the default for an internal balancer" in plan.summary
    assert apply(internal).exit_status == EXIT_OK
    assert ingress(aws_lab.vpc_id) == {443: mine("10.20.0.0/16", protocol="HTTPS"),
                                       80: mine("10.20.0.0/16", protocol="HTTP")}
    assert plan_of(internal).is_noop

    everyone = with_cidrs(internal, ["0.0.0.0/0"])
    plan = plan_of(everyone)
    assert "WARNING: the internal balancer is open to 0.0.0.0/0" in plan.summary
    assert [(c.details.action, c.details.extra["port"], c.details.extra["cidrs"]) for c in plan.changes] == [
        ("authorize", 443, ["0.0.0.0/0"]), ("authorize", 80, ["0.0.0.0/0"]),
        ("revoke", 443, ["10.20.0.0/16"]), ("revoke", 80, ["10.20.0.0/16"])]
