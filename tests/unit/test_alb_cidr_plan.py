"""balancer.alb.allowed_cidrs from hand-written facts: who may reach the listener ports.

The rules of the balancer's group are planned from ``allowed_cidrs`` (or its default: anywhere
over IPv4 when internet-facing, the VPC's CIDR when internal); only rules carrying this setup's
description are ever revoked; verify says what the group admits; rollback refuses a hand-made
record that would act on a rule that is not this setup's.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_alb_plan import VPC, answers, built, empty_facts

from wizard.balancers.alb.checks import balancer_checks
from wizard.balancers.alb.desired import build_desired
from wizard.balancers.alb.facts import AlbFacts, Permission, SecurityGroupFact
from wizard.balancers.alb.plan import plan_changes
from wizard.balancers.alb.step import STEP
from wizard.engine.model import UndoAction
from wizard.engine.undo import UndoRecordError

MINE_HTTPS = "confluence-lb-wizard wiki: HTTPS from users"
MINE_HTTP = "confluence-lb-wizard wiki: HTTP from users"


def rules_of(facts: AlbFacts) -> list[tuple[int, str, str]]:
    group = facts.security_group
    assert group is not None
    return sorted((p.from_port, source, description) for p in group.ingress for source, description in p.descriptions)


def with_rules(facts: AlbFacts, *extra: Permission, drop: bool = False) -> AlbFacts:
    group = facts.security_group
    assert group is not None
    return replace(facts, security_group=replace(group, ingress=(() if drop else group.ingress) + extra))


def ingress_changes(answers_, facts: AlbFacts) -> list[tuple[str, int, list[str]]]:
    return [(c.details.action, c.details.extra["port"], c.details.extra["cidrs"])
            for c in plan_changes(build_desired(answers_, facts), facts)
            if c.details.resource == "balancer-security-group"]


def security_check(answers_, facts: AlbFacts):
    return next(c for c in balancer_checks(build_desired(answers_, facts), facts)
                if c.name == "balancer security group")


def test_the_new_group_admits_exactly_the_allowed_networks_on_every_listener_port() -> None:
    a = answers(allowed_cidrs=["203.0.113.0/24", "2001:DB8::/32"])
    desired = build_desired(a, empty_facts())
    assert [(r.port, r.cidr, r.description) for r in desired.balancer_ingress] == [
        (443, "203.0.113.0/24", MINE_HTTPS), (443, "2001:db8::/32", MINE_HTTPS),
        (80, "203.0.113.0/24", MINE_HTTP), (80, "2001:db8::/32", MINE_HTTP)]
    assert [r.permission() for r in desired.balancer_ingress[:2]] == [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "203.0.113.0/24", "Description": MINE_HTTPS}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32", "Description": MINE_HTTPS}]}]
    plan = STEP.plan(a, empty_facts())
    assert plan.changes[0].summary == (f"create security group wiki-alb in {VPC} for the balancer (TCP 443, 80 in "
                                       "from 203.0.113.0/24, 2001:db8::/32)")
    assert "listener ports open to 203.0.113.0/24, 2001:db8::/32 (balancer.alb.allowed_cidrs)" in plan.summary
    # The ALB is made IPv4 only: the plan says what an IPv6 network does there.
    assert "IPv4 only (IpAddressType ipv4)" in plan.summary


def test_the_default_is_ipv4_anywhere_when_internet_facing_and_the_vpc_when_internal() -> None:
    facts = empty_facts()
    facts = replace(facts, env=replace(facts.env, vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16")))
    assert build_desired(answers(), facts).allowed_cidrs == ("0.0.0.0/0",)
    internal = build_desired(answers(scheme="internal"), facts)
    assert internal.allowed_cidrs == ("10.0.0.0/16", "100.64.0.0/16")
    assert {r.cidr for r in internal.balancer_ingress} == {"10.0.0.0/16", "100.64.0.0/16"}
    summary = STEP.plan(answers(scheme="internal"), facts).summary
    assert "open to 10.0.0.0/16, 100.64.0.0/16 (the default for an internal balancer: its VPC's CIDR)" in summary
    assert "WARNING" not in summary and "IPv6" not in summary


@pytest.mark.parametrize("cidrs", [["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], ["10.0.0.0/8", "::/0"]])
def test_an_internal_balancer_opened_to_everyone_is_warned_about(cidrs: list[str]) -> None:
    summary = STEP.plan(answers(scheme="internal", allowed_cidrs=cidrs), empty_facts()).summary
    assert "WARNING: the internal balancer is open to" in summary
    assert "allowed_cidrs" in summary
    assert "WARNING: the internal" not in STEP.plan(answers(allowed_cidrs=cidrs), empty_facts()).summary


def test_in_place_nothing_changes_and_the_check_passes() -> None:
    a = answers(allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"])
    facts = built(a)
    assert STEP.plan(a, facts).is_noop
    assert "listener ports open to 203.0.113.0/24, 2001:db8::/32" in (STEP.plan(a, facts).noop_reason or "")
    check = security_check(a, facts)
    assert check.passed, check
    assert check.seen == "wiki-alb (sg-0ba1a2ce0ba1a2ce0): TCP 443 from 203.0.113.0/24, 2001:db8::/32; " \
                         "TCP 80 from 203.0.113.0/24, 2001:db8::/32"


def test_narrowing_the_list_adds_first_then_revokes_only_this_setups_rules() -> None:
    facts = built(answers())  # made with the default: 0.0.0.0/0 on 443 and 80
    narrowed = answers(allowed_cidrs=["10.0.0.0/8"])
    assert ingress_changes(narrowed, facts) == [
        ("authorize", 443, ["10.0.0.0/8"]), ("authorize", 80, ["10.0.0.0/8"]),
        ("revoke", 443, ["0.0.0.0/0"]), ("revoke", 80, ["0.0.0.0/0"])]
    summaries = [c.summary for c in STEP.plan(narrowed, facts).changes]
    assert summaries[2] == ("revoke TCP 443 from 0.0.0.0/0 (anywhere) in the balancer's group wiki-alb "
                            "(sg-0ba1a2ce0ba1a2ce0): a rule this setup made, not in balancer.alb.allowed_cidrs (or its "
                            "default) any more (rules it did not make stay)")
    assert ": 2 to add, 2 to remove" in STEP.plan(narrowed, facts).summary
    check = security_check(narrowed, facts)
    assert not check.passed
    assert "does not let in TCP 443 from 10.0.0.0/8" in check.fix
    assert "rules this setup made still let in TCP 443 from 0.0.0.0/0" in check.fix


def test_the_admins_own_rules_and_another_setups_are_never_revoked_and_are_shown() -> None:
    a = answers(allowed_cidrs=["10.0.0.0/8"])
    facts = with_rules(built(a),
                       Permission("tcp", 443, 443, cidrs=("198.51.100.0/24",)),  # the admin's, no description
                       Permission("tcp", 443, 443, cidrs=("192.0.2.0/24",),
                                  descriptions=(("192.0.2.0/24", "office VPN"),)),
                       Permission("tcp", 443, 443, cidrs=("172.16.0.0/12",),
                                  descriptions=(("172.16.0.0/12", "confluence-lb-wizard wiki-old: HTTPS from users"),)),
                       Permission("tcp", 0, 65535, cidrs=("2001:db8:1::/48",)))
    assert ingress_changes(a, facts) == []
    check = security_check(a, facts)
    assert check.passed, check  # shown, not failed: apply never touches them
    assert "also rules not made by this setup (left alone): TCP 80 from 2001:db8:1::/48, TCP 443 from " \
           "172.16.0.0/12, TCP 443 from 192.0.2.0/24, TCP 443 from 198.51.100.0/24, TCP 443 from 2001:db8:1::/48" \
           in check.seen


def test_an_allowed_network_the_admin_already_admits_is_not_added_twice() -> None:
    a = answers(allowed_cidrs=["10.0.0.0/8", "198.51.100.0/24"])
    facts = with_rules(built(answers(allowed_cidrs=["10.0.0.0/8"])),
                       Permission("tcp", 443, 443, cidrs=("198.51.100.0/24",)))
    assert ingress_changes(a, facts) == [("authorize", 80, ["198.51.100.0/24"])]


def test_a_listener_port_no_longer_used_loses_this_setups_rules() -> None:
    facts = built(answers())  # HTTPS 443 and the HTTP 80 redirect
    http_only = answers(public_url="http://wiki.example.com")
    assert ingress_changes(http_only, facts) == [("revoke", 443, ["0.0.0.0/0"])]
    revoke = next(c for c in STEP.plan(http_only, facts).changes if c.details.action == "revoke")
    assert "no listener uses the port any more" in revoke.summary


def test_aws_spelling_of_an_ipv6_network_matches_the_normalised_answer() -> None:
    from wizard.balancers.alb.read import security_group_fact

    a = answers(allowed_cidrs=["2001:db8::/32"])
    facts = built(a)
    group = facts.security_group
    assert group is not None
    described = security_group_fact({"GroupId": group.id, "GroupName": group.name, "VpcId": VPC, "Tags": [
        {"Key": k, "Value": v} for k, v in group.tags.items()], "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [],
         "Ipv6Ranges": [{"CidrIpv6": "2001:0DB8:0000::/32", "Description": description}]}
        for port, description in ((443, MINE_HTTPS), (80, MINE_HTTP))]})
    assert plan_changes(build_desired(a, facts), replace(facts, security_group=described)) == []


def _ingress_record(**data: object) -> UndoAction:
    base = {"resource": "security-group-ingress", "name": "sg-0ba1a2ce0ba1a2ce0", "region": "eu-west-1",
            "setup": "wiki", "group_id": "sg-0ba1a2ce0ba1a2ce0", "port": 443, "cidr": "0.0.0.0/0",
            "source_group": None, "rule_description": MINE_HTTPS, "tags": []}
    return UndoAction(kind="aws-recreate", target="balancer", description="(from the file)", manual="aws ...",
                      data={**base, **data})


def test_rollback_performs_this_setups_rule_records_with_words_rebuilt_from_their_data() -> None:
    vetted = STEP.vet_undo(answers(), _ingress_record(cidr="2001:db8::/32"), "undo record 3")
    assert vetted.description == ("Let 2001:db8::/32 reach TCP 443 in sg-0ba1a2ce0ba1a2ce0 again, as before the "
                                  "wizard removed it.")
    revoke = STEP.vet_undo(answers(), replace(_ingress_record(), kind="aws-revoke"), "undo record 1")
    assert revoke.description == ("Remove the rule the wizard added to sg-0ba1a2ce0ba1a2ce0: TCP 443 from "
                                  "0.0.0.0/0.")


@pytest.mark.parametrize("data, expected", [
    ({"rule_description": "office VPN"}, "not as one of this setup's"),
    ({"rule_description": "confluence-lb-wizard wiki-other: HTTPS from users"}, "not as one of this setup's"),
    ({"cidr": "10.0.0.1/8"}, "not a network in the form"),
    ({"cidr": "10.0.0.0/8; aws iam delete-user"}, "not a network in the form"),
    ({"cidr": None}, "neither one network nor one source group"),
    ({"source_group": "sg-0a1b2c3d4e5f60718"}, "neither one network nor one source group"),
    ({"port": "443"}, "not a port number"),
    ({"port": 0}, "not a port number"),
    ({"group_id": "sg-0ba1 --profile x"}, "not a security group id"),
])
def test_a_hand_edited_rule_record_is_refused_before_anything_is_undone(data: dict, expected: str) -> None:
    with pytest.raises(UndoRecordError) as refused:
        STEP.vet_undo(answers(), _ingress_record(**data), "undo record 3")
    assert expected in refused.value.message and "undo record 3" in refused.value.message
    assert refused.value.hint


def test_the_nodes_group_records_still_pass() -> None:
    record = _ingress_record(group_id="sg-0a1b2c3d4e5f60718", cidr=None, source_group="sg-0ba1a2ce0ba1a2ce0",
                             port=8091, rule_description="confluence-lb-wizard wiki: Synchrony from the balancer")
    assert "Let sg-0ba1a2ce0ba1a2ce0 reach TCP 8091" in STEP.vet_undo(answers(), record, "undo record 9").description


def test_a_group_fact_reads_ipv4_and_ipv6_ranges_with_their_descriptions() -> None:
    from wizard.balancers.alb.read import security_group_fact

    fact = security_group_fact({"GroupId": "sg-1", "IpPermissions": [{
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
        "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": MINE_HTTPS}, {"CidrIp": "192.0.2.0/24"}],
        "Ipv6Ranges": [{"CidrIpv6": "2001:DB8::/32", "Description": MINE_HTTPS}],
        "UserIdGroupPairs": [{"GroupId": "sg-2", "Description": "peer"}]}]})
    assert fact.ingress == (Permission("tcp", 443, 443, cidrs=("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"),
                                       groups=("sg-2",),
                                       descriptions=(("10.0.0.0/8", MINE_HTTPS), ("2001:db8::/32", MINE_HTTPS),
                                                     ("sg-2", "peer"))),)
    assert isinstance(fact, SecurityGroupFact) and fact.allows(443, cidr="2001:db8::/32")
