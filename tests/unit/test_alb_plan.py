"""The ALB plan from hand-written facts: create everything, nothing, or exactly what drifted.

No AWS here: facts are plain dataclasses, and the plan is a pure function of
them and the answers (pyinfra's rule: facts in, changes out, the no-op reason
included).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from wizard.balancers.alb import diff
from wizard.balancers.alb.desired import Desired, build_desired, redirect_config
from wizard.balancers.alb.facts import (AlbFacts, CertificateFact, Environment, InstanceFact, ListenerFact,
                              LoadBalancerFact, NodePorts, Permission, RegisteredTarget, RuleFact,
                              SecurityGroupFact, TargetGroupFact)
from wizard.balancers.alb.names import MAX_NAME, Names, target_group_name
from wizard.balancers.alb.plan import plan_changes
from wizard.answers import validate
from wizard.transport.aws import AwsError
from wizard.balancers.alb.step import STEP

REGION = "eu-west-1"
VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
NODES_SG = "sg-0a1b2c3d4e5f60718"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
INSTANCES = ["i-0123456789abcdef0", "i-0123456789abcdef1"]
ADDRESSES = ["10.0.1.11", "10.0.2.12"]


def answers(*, setup: str = "wiki", public_url: str = "https://wiki.example.com", instance_ids: bool = True,
            mode: str = "direct", addresses: list[str] = ADDRESSES, **alb: object):
    nodes = []
    for index, node in enumerate(("node1", "node2")):
        item = {"name": node, "address": addresses[index], "access": {"transport": "local"}}
        if instance_ids:
            item["instance_id"] = INSTANCES[index]
        nodes.append(item)
    options = {"region": REGION, "vpc_id": VPC, "subnet_ids": SUBNETS, "node_security_group_id": NODES_SG}
    if public_url.startswith("https"):
        options["certificate_arn"] = CERT
    options.update(alb)
    return validate({"name": setup, "public_url": public_url, "nodes": nodes, "synchrony": {"mode": mode},
                     "balancer": {"kind": "alb", "alb": {k: v for k, v in options.items() if v is not None}}})


def node_ports(*, instance_ids: bool = True, ports=((8090, 8091), (8090, 8091)), context: str = "",
               addresses: list[str] = ADDRESSES) -> tuple[NodePorts, ...]:
    return tuple(NodePorts(node=f"node{i + 1}", address=addresses[i],
                           instance_id=INSTANCES[i] if instance_ids else None, confluence_port=ports[i][0],
                           synchrony_port=ports[i][1], context_path=context) for i in range(2))


def empty_facts(nodes: tuple[NodePorts, ...] | None = None, *, node_group: SecurityGroupFact | None = None) -> AlbFacts:
    env = Environment(
        account="123456789012", caller_arn="arn:aws:iam::123456789012:user/admin", region=REGION, vpc_id=VPC,
        vpc_cidrs=("10.0.0.0/16",), subnets={SUBNETS[0]: "eu-west-1a", SUBNETS[1]: "eu-west-1b"},
        node_security_group=node_group or SecurityGroupFact(NODES_SG, "nodes", VPC, ingress=(
            Permission("tcp", 22, 22, cidrs=("10.0.0.0/8",)),)),
        certificate=CertificateFact(CERT, "ISSUED", "wiki.example.com", ("wiki.example.com",)),
        instances={i: InstanceFact(i, "running", VPC, "eu-west-1a", None, (NODES_SG,)) for i in INSTANCES})
    return AlbFacts(env=env, nodes=nodes or node_ports(), target_groups={"confluence": None, "synchrony": None})


def built_facts(desired: Desired, facts: AlbFacts) -> AlbFacts:
    """What AWS holds after a successful apply of ``desired``: every resource, tagged, matching."""
    names = desired.names
    sg = "sg-0ba1a2ce0ba1a2ce0"
    tags = {t["Key"]: t["Value"] for t in names.tags("x", "x")}
    group = SecurityGroupFact(sg, names.security_group, VPC, tags, tuple(
        Permission("tcp", rule.port, rule.port, cidrs=(rule.cidr,), descriptions=((rule.cidr, rule.description),))
        for rule in desired.balancer_ingress))
    node_group = replace(facts.env.node_security_group, ingress=facts.env.node_security_group.ingress + tuple(
        Permission("tcp", rule.port, rule.port, groups=(sg,), descriptions=((sg, rule.description),))
        for rule in desired.node_ingress))
    groups = {}
    for spec in desired.target_groups:
        groups[spec.key] = TargetGroupFact(
            arn=f"arn:aws:elasticloadbalancing:{REGION}:123456789012:targetgroup/{spec.name}/1", name=spec.name,
            protocol="HTTP", port=spec.port, vpc_id=VPC, target_type=spec.target_type, health_protocol="HTTP",
            health_path=spec.health_path, health_port="traffic-port", interval=20, timeout=10, healthy_threshold=2,
            matcher="200", attributes={"stickiness.enabled": "true", "stickiness.type": "lb_cookie",
                                       "stickiness.lb_cookie.duration_seconds": "86400",
                                       "deregistration_delay.timeout_seconds":
                                           spec.attributes["deregistration_delay.timeout_seconds"]},
            tags=tags, targets=tuple(RegisteredTarget(t.id, t.port, "healthy") for t in spec.targets),
            load_balancers=("arn:lb",))
    listeners = []
    for spec in desired.listeners:
        rules: tuple[RuleFact, ...] = ()
        if desired.rule and spec.port == desired.rule.listener_port:
            rules = (RuleFact("arn:rule", "10", ("/synchrony/*",),
                              ({"Type": "forward", "TargetGroupArn": groups["synchrony"].arn},),
                              ({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/synchrony/*"]}},), tags),
                     RuleFact("arn:default", "default", (), (), (), {}, is_default=True))
        listeners.append(ListenerFact(
            arn=f"arn:listener/{spec.port}", port=spec.port, protocol=spec.protocol,
            certificates=(spec.certificate_arn,) if spec.certificate_arn else (), ssl_policy=spec.ssl_policy,
            default_actions=tuple(spec.default_actions(groups["confluence"].arn)), tags=tags, rules=rules))
    balancer = LoadBalancerFact(
        arn="arn:lb", name=names.load_balancer, type="application", scheme="internet-facing", vpc_id=VPC,
        state="active", dns_name="wiki-1.eu-west-1.elb.amazonaws.com", subnets=tuple(SUBNETS),
        security_groups=(sg,), attributes={"idle_timeout.timeout_seconds": str(desired.idle_timeout)}, tags=tags,
        listeners=tuple(listeners))
    return replace(facts, env=replace(facts.env, node_security_group=node_group), security_group=group,
                   target_groups={"confluence": None, "synchrony": None, **groups}, load_balancer=balancer)


def plan_for(answers_, facts: AlbFacts):
    return plan_changes(build_desired(answers_, facts), facts)


def built(answers_, facts: AlbFacts | None = None) -> AlbFacts:
    facts = facts or empty_facts()
    return built_facts(build_desired(answers_, facts), facts)


def test_an_empty_account_plans_every_resource_in_dependency_order() -> None:
    changes = plan_for(answers(), empty_facts())
    assert [(c.details.resource, c.details.action, c.details.name) for c in changes] == [
        ("balancer-security-group", "create", "wiki-alb"),
        ("node-ingress", "authorize", NODES_SG), ("node-ingress", "authorize", NODES_SG),
        ("confluence-target-group", "create", "wiki-confluence"),
        ("synchrony-target-group", "create", "wiki-synchrony"),
        ("load-balancer", "create", "wiki"),
        ("https-listener", "create", "HTTPS 443"), ("http-listener", "create", "HTTP 80"),
        ("synchrony-rule", "create", "/synchrony/*")]
    summaries = [c.summary for c in changes]
    assert summaries[0] == (f"create security group wiki-alb in {VPC} for the balancer (TCP 443, 80 in from "
                            "0.0.0.0/0 (anywhere))")
    assert summaries[1] == f"allow Confluence port 8090 from the balancer's group into the nodes' group {NODES_SG}"
    assert summaries[2] == f"allow Synchrony port 8091 from the balancer's group into the nodes' group {NODES_SG}"
    assert summaries[3] == ("create target group wiki-confluence (HTTP 8090, health /status every 20 s (timeout "
                            "10 s, healthy after 2), sticky lb_cookie, deregistration delay 30 s, instance targets) with "
                            f"node1 ({INSTANCES[0]}:8090), node2 ({INSTANCES[1]}:8090)")
    assert "health /synchrony/heartbeat" in summaries[4] and "HTTP 8091" in summaries[4]
    assert "idle timeout 300 s" in summaries[5] and "internet-facing" in summaries[5]
    assert summaries[6] == (f"create listener HTTPS 443 with {CERT} and ELBSecurityPolicy-TLS13-1-2-2021-06 "
                            "forwarding to Confluence on wiki")
    assert summaries[7] == ("create listener HTTP 80 redirecting to HTTPS 443 (301, host, path and query kept) "
                            "on wiki")
    assert summaries[8] == ("create rule /synchrony/* on listener 443 of wiki forwarding to target group "
                            "wiki-synchrony (priority 10)")
    summary = STEP.plan(answers(), empty_facts()).summary
    assert summary.startswith("load balancer wiki in eu-west-1: 7 to create, 2 to add (account 123456789012")
    # What is shown and stored is plain JSON (the payload stays in memory).
    json.dumps([c.to_dict() for c in changes])
    assert all(c.kind == "aws" and c.target == "balancer" for c in changes)


def test_the_redirect_keeps_host_path_and_query_with_a_301() -> None:
    assert redirect_config(443) == {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}",
                                    "Query": "#{query}", "StatusCode": "HTTP_301"}


def test_everything_in_place_is_a_noop_with_its_reason() -> None:
    a = answers()
    plan = STEP.plan(a, built(a))
    assert plan.is_noop
    assert "already matches" in plan.noop_reason
    assert "wiki-confluence (2 target(s))" in plan.noop_reason and "HTTPS 443, HTTP 80" in plan.noop_reason


def test_an_idle_timeout_changed_out_of_band_is_one_modify() -> None:
    a = answers()
    facts = built(a)
    balancer = replace(facts.load_balancer, attributes={"idle_timeout.timeout_seconds": "60"})
    changes = plan_for(a, replace(facts, load_balancer=balancer))
    assert len(changes) == 1
    change = changes[0]
    assert change.summary == "modify load balancer wiki: idle timeout 60 s -> 300 s"
    assert change.details.to_dict() == {"resource": "load-balancer", "action": "modify", "name": "wiki", "arn": "arn:lb",
                              "differences": ["idle timeout 60 s -> 300 s"]}
    assert change.payload.previous["idle_timeout"] == "60"


def test_the_idle_timeout_answer_is_what_is_wanted() -> None:
    a = answers(idle_timeout=600)
    facts = built(answers())
    changes = plan_for(a, facts)
    assert [c.summary for c in changes] == ["modify load balancer wiki: idle timeout 300 s -> 600 s"]


def test_a_drifted_health_check_and_lost_stickiness_modify_the_target_group_only() -> None:
    a = answers()
    facts = built(a)
    tg = replace(facts.target_groups["confluence"], health_path="/", interval=30,
                 attributes={"stickiness.enabled": "false", "stickiness.type": "lb_cookie",
                             "deregistration_delay.timeout_seconds": "30"})
    changes = plan_for(a, replace(facts, target_groups={**facts.target_groups, "confluence": tg}))
    assert len(changes) == 1
    assert changes[0].summary == ("modify target group wiki-confluence: health check path / -> /status; "
                                  "health check interval 30 -> 20; stickiness.enabled false -> true")
    previous = changes[0].payload.previous
    assert previous["health"]["HealthCheckPath"] == "/" and previous["attributes"]["stickiness.enabled"] == "false"


def test_a_missing_node_is_registered_and_an_old_port_deregistered() -> None:
    a = answers()
    facts = built(a)
    tg = facts.target_groups["confluence"]
    tg = replace(tg, targets=(RegisteredTarget(INSTANCES[0], 8080, "unhealthy", "Target.Timeout"),))
    changes = plan_for(a, replace(facts, target_groups={**facts.target_groups, "confluence": tg}))
    assert [c.summary for c in changes] == [
        f"register node1 ({INSTANCES[0]}:8090), node2 ({INSTANCES[1]}:8090) and deregister {INSTANCES[0]}:8080 "
        "(old port) in target group wiki-confluence"]


def test_a_listener_with_another_certificate_or_an_old_tls_policy_is_modified() -> None:
    a = answers()
    facts = built(a)
    https = replace(facts.load_balancer.listener(443), certificates=("arn:aws:acm:eu-west-1:1:certificate/old",),
                    ssl_policy="ELBSecurityPolicy-2016-08")
    listeners = (https, facts.load_balancer.listener(80))
    changes = plan_for(a, replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners)))
    assert len(changes) == 1
    assert "certificate arn:aws:acm:eu-west-1:1:certificate/old -> " + CERT in changes[0].summary
    assert "TLS policy ELBSecurityPolicy-2016-08 -> ELBSecurityPolicy-TLS13-1-2-2021-06" in changes[0].summary
    assert changes[0].payload.previous["SslPolicy"] == "ELBSecurityPolicy-2016-08"


def test_any_current_tls13_policy_is_kept() -> None:
    a = answers()
    facts = built(a)
    https = replace(facts.load_balancer.listener(443), ssl_policy="ELBSecurityPolicy-TLS13-1-2-Res-2021-06")
    listeners = (https, facts.load_balancer.listener(80))
    assert plan_for(a, replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners))) == []


def test_a_redirect_that_drops_the_path_is_fixed() -> None:
    a = answers()
    facts = built(a)
    http = replace(facts.load_balancer.listener(80), default_actions=(
        {"Type": "redirect", "RedirectConfig": {**redirect_config(443), "Path": "/", "StatusCode": "HTTP_302"}},))
    listeners = (facts.load_balancer.listener(443), http)
    changes = plan_for(a, replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners)))
    assert [c.details.action for c in changes] == ["modify"]
    assert "redirect HTTP_302" in changes[0].summary


def test_internal_proxy_needs_no_synchrony_group_rule_or_port() -> None:
    changes = plan_for(answers(mode="internal-proxy"), empty_facts())
    resources = [c.details.resource for c in changes]
    assert "synchrony-target-group" not in resources and "synchrony-rule" not in resources
    assert [c.details.extra["port"] for c in changes if c.details.resource == "node-ingress"] == [8090]


def test_without_a_certificate_one_http_listener_forwards_and_carries_the_rule() -> None:
    changes = plan_for(answers(public_url="http://wiki.example.com"), empty_facts())
    listeners = [c for c in changes if c.details.resource.endswith("listener")]
    assert [c.summary for c in listeners] == ["create listener HTTP 80 forwarding to Confluence on wiki"]
    assert changes[-1].details.extra["port"] == 80 and changes[-1].details.resource == "synchrony-rule"
    assert "(TCP 80 in from 0.0.0.0/0 (anywhere))" in changes[0].summary


def test_nodes_without_instance_ids_are_ip_targets_and_outside_the_vpc_go_to_zone_all() -> None:
    addresses = ["10.0.1.11", "192.168.5.20"]
    a = answers(instance_ids=False, addresses=addresses)
    desired = build_desired(a, empty_facts(node_ports(instance_ids=False, addresses=addresses)))
    confluence = desired.target_group("confluence")
    assert confluence.target_type == "ip"
    assert [t.api() for t in confluence.targets] == [
        {"Id": "10.0.1.11", "Port": 8090}, {"Id": "192.168.5.20", "Port": 8090, "AvailabilityZone": "all"}]


@pytest.mark.parametrize("address, expected", [("8.8.8.8", "neither in the VPC"),
                                               ("node2.internal", "is not an IP address")])
def test_an_address_the_balancer_cannot_target_is_refused(address: str, expected: str) -> None:
    addresses = ["10.0.1.11", address]
    with pytest.raises(AwsError) as raised:
        build_desired(answers(instance_ids=False, addresses=addresses),
                      empty_facts(node_ports(instance_ids=False, addresses=addresses)))
    assert expected in raised.value.message and "instance_id" in raised.value.hint


def test_some_nodes_with_an_instance_and_some_without_are_refused() -> None:
    nodes = node_ports()
    nodes = (nodes[0], replace(nodes[1], instance_id=None))
    with pytest.raises(AwsError) as raised:
        build_desired(answers(), empty_facts(nodes))
    assert "either instances or IP addresses" in raised.value.message


def test_the_health_check_carries_the_context_path_and_paths_must_agree() -> None:
    desired = build_desired(answers(), empty_facts(node_ports(context="/wiki")))
    assert desired.target_group("confluence").health_path == "/wiki/status"
    assert desired.target_group("synchrony").health_path == "/synchrony/heartbeat"
    nodes = node_ports(context="/wiki")
    with pytest.raises(AwsError, match="different context paths"):
        build_desired(answers(), empty_facts((nodes[0], replace(nodes[1], context_path=""))))


def test_ports_come_from_each_node() -> None:
    desired = build_desired(answers(), empty_facts(node_ports(ports=((8080, 8091), (8090, 8095)))))
    assert [(t.id, t.port) for t in desired.target_group("confluence").targets] == [
        (INSTANCES[0], 8080), (INSTANCES[1], 8090)]
    assert [t.port for t in desired.target_group("synchrony").targets] == [8091, 8095]
    assert [(rule.port, rule.purpose) for rule in desired.node_ingress] == [
        (8080, "Confluence"), (8090, "Confluence"), (8091, "Synchrony"), (8095, "Synchrony")]


def test_what_another_setup_or_someone_else_made_is_left_alone() -> None:
    a = answers()
    facts = built(a)
    theirs = replace(facts.target_groups["synchrony"], tags={"confluence-lb-wizard:setup": "other",
                                                              "confluence-lb-wizard:managed": "true"})
    with pytest.raises(AwsError) as raised:
        plan_for(a, replace(facts, target_groups={**facts.target_groups, "synchrony": theirs}))
    assert "belongs to the setup 'other'" in raised.value.message and "leaves it alone" in raised.value.message
    untagged = replace(facts.load_balancer, tags={})
    with pytest.raises(AwsError, match="does not carry the tag confluence-lb-wizard:setup=wiki"):
        plan_for(a, replace(facts, load_balancer=untagged))
    group = replace(facts.security_group, tags={"Name": "wiki-alb"})
    with pytest.raises(AwsError, match="A security group named wiki-alb already exists"):
        plan_for(a, replace(facts, security_group=group))


def test_what_aws_cannot_change_in_place_is_refused_with_the_way_out() -> None:
    a = answers()
    facts = built(a)
    internal = replace(facts.load_balancer, scheme="internal")
    with pytest.raises(AwsError) as raised:
        plan_for(a, replace(facts, load_balancer=internal))
    assert "scheme internal" in raised.value.message and "rollback balancer" in raised.value.hint
    https_tg = replace(facts.target_groups["confluence"], protocol="HTTPS")
    with pytest.raises(AwsError, match="protocol HTTPS"):
        plan_for(a, replace(facts, target_groups={**facts.target_groups, "confluence": https_tg}))


def test_the_rule_takes_the_first_free_priority_beside_the_admins_rules() -> None:
    a = answers()
    facts = built(a)
    https = facts.load_balancer.listener(443)
    admin_rules = tuple(RuleFact(f"arn:admin/{p}", str(p), (f"/admin{p}/*",), (), (), {}) for p in (10, 11))
    https = replace(https, rules=admin_rules)
    listeners = (https, facts.load_balancer.listener(80))
    changes = plan_for(a, replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners)))
    assert [c.details.extra["priority"] for c in changes] == [12]


def test_target_group_names_are_cut_to_32_characters_the_same_way_every_time() -> None:
    base = "confluence-production-eu-west"  # 29 characters
    name = target_group_name(base, "confluence")
    assert len(name) <= MAX_NAME and name == target_group_name(base, "confluence")
    assert name.endswith("-confluence") and not name.startswith("-")
    other = target_group_name("confluence-production-eu-east", "confluence")
    assert other != name
    assert target_group_name("wiki", "synchrony") == "wiki-synchrony"
    names = Names.of(answers(setup="wiki"))
    assert (names.load_balancer, names.security_group) == ("wiki", "wiki-alb")
    named = Names.of(answers(setup="setup-a", name="lb-b"))
    assert (named.setup, named.load_balancer, named.confluence_target_group) == ("setup-a", "lb-b", "lb-b-confluence")


def test_without_the_nodes_group_the_plan_says_what_the_admin_must_open() -> None:
    a = answers(node_security_group_id=None)
    plan = STEP.plan(a, empty_facts())
    assert "node-ingress" not in [c.details.resource for c in plan.changes]
    assert "must let the balancer's group wiki-alb reach TCP 8090, 8091" in plan.summary


def test_a_listener_added_by_hand_to_the_setups_balancer_is_left_alone() -> None:
    a = answers()
    facts = built(a)
    by_hand = replace(facts.load_balancer.listener(80), tags={})
    listeners = (facts.load_balancer.listener(443), by_hand)
    with pytest.raises(AwsError) as raised:
        plan_for(a, replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners)))
    assert raised.value.message.startswith("The listener on port 80 of the load balancer wiki was not made by "
                                           "the wizard")
    assert "rollback balancer" in raised.value.hint


# --- From direct to internal-proxy: what direct routing made goes, and only that ----------------

BALANCER_SG = "sg-0ba1a2ce0ba1a2ce0"
INTERNAL = "synchrony.mode is internal-proxy"


def with_rules(facts: AlbFacts, *rules: RuleFact) -> AlbFacts:
    """The facts with the rules of the HTTPS listener replaced."""
    https = replace(facts.load_balancer.listener(443), rules=rules)
    listeners = (https, facts.load_balancer.listener(80))
    return replace(facts, load_balancer=replace(facts.load_balancer, listeners=listeners))


def test_switching_to_internal_proxy_deletes_the_rule_then_the_group_then_revokes_the_port() -> None:
    facts = built(answers(mode="direct"))
    changes = plan_for(answers(mode="internal-proxy"), facts)
    assert [(c.details.resource, c.details.action, c.details.name) for c in changes] == [
        ("synchrony-rule", "delete", "/synchrony/*"), ("synchrony-target-group", "delete", "wiki-synchrony"),
        ("node-ingress", "revoke", NODES_SG)]
    assert all(INTERNAL in c.summary for c in changes)
    assert changes[0].summary.startswith("delete rule /synchrony/* on listener 443 of wiki (priority 10, forward "
                                         "to wiki-synchrony): ")
    assert changes[1].summary.startswith("delete target group wiki-synchrony (HTTP 8091, 2 target(s)): ")
    assert changes[2].summary.startswith(f"stop letting the balancer's group {BALANCER_SG} reach Synchrony port "
                                         f"8091 in the nodes' group {NODES_SG}: ")
    # What the undo needs to make each one again, as it was.
    rule = changes[0].payload.previous
    assert (rule["port"], rule["priority"]) == (443, "10")
    assert diff.forward_targets(rule["actions"]) == {facts.target_groups["synchrony"].arn}
    assert rule["tags"]["confluence-lb-wizard:setup"] == "wiki"
    group = changes[1].payload.previous
    assert group["targets"] == [{"Id": INSTANCES[0], "Port": 8091}, {"Id": INSTANCES[1], "Port": 8091}]
    assert group["health"]["HealthCheckPath"] == "/synchrony/heartbeat"
    assert group["attributes"]["stickiness.type"] == "lb_cookie" and group["protocol"] == "HTTP"
    assert changes[2].payload.spec.port == 8091 and changes[2].payload.previous == {"source_group": BALANCER_SG}
    json.dumps([c.to_dict() for c in changes])
    summary = STEP.plan(answers(mode="internal-proxy"), facts).summary
    assert "(account 123456789012" in summary


def test_once_the_synchrony_route_is_gone_internal_proxy_plans_nothing() -> None:
    a = answers(mode="internal-proxy")
    plan = STEP.plan(a, built(a))
    assert plan.is_noop and "stays" not in plan.noop_reason


@pytest.mark.parametrize("foreign", ["rule", "target group", "ingress"])
def test_what_the_wizard_did_not_make_is_not_removed_on_the_way_to_internal_proxy(foreign: str) -> None:
    facts = built(answers(mode="direct"))
    if foreign == "rule":
        rule = facts.load_balancer.listener(443).rules[0]
        facts = with_rules(facts, replace(rule, tags={"Name": "by hand"}), *facts.load_balancer.listener(443).rules[1:])
    elif foreign == "target group":
        group = replace(facts.target_groups["synchrony"], tags={"confluence-lb-wizard:setup": "other",
                                                                 "confluence-lb-wizard:managed": "true"})
        facts = replace(facts, target_groups={**facts.target_groups, "synchrony": group})
    else:
        nodes = facts.env.node_security_group
        ingress = tuple(replace(p, descriptions=((BALANCER_SG, "opened by the admin"),)) if p.from_port == 8091
                        else p for p in nodes.ingress)
        facts = replace(facts, env=replace(facts.env, node_security_group=replace(nodes, ingress=ingress)))
    changes = plan_for(answers(mode="internal-proxy"), facts)
    resources = [c.details.resource for c in changes]
    left = {"rule": "synchrony-rule", "target group": "synchrony-target-group", "ingress": "node-ingress"}[foreign]
    assert left not in resources
    # The admin's rule still forwards to the group, so the group stays too.
    assert len(resources) == (1 if foreign == "rule" else 2)


def test_a_synchrony_group_something_else_still_uses_stays_and_the_plan_says_why() -> None:
    a = answers(mode="internal-proxy")
    facts = built(answers(mode="direct"))
    tg = facts.target_groups["synchrony"]
    admin = RuleFact("arn:admin", "5", ("/collab/*",), ({"Type": "forward", "TargetGroupArn": tg.arn},), (), {})
    wizards = facts.load_balancer.listener(443).rules
    changes = plan_for(a, with_rules(facts, admin, *wizards))
    assert [(c.details.resource, c.details.action) for c in changes] == [
        ("synchrony-rule", "delete"), ("node-ingress", "revoke")]
    # Once those are gone, the plan is a no-op that names the group and what holds it.
    done = built(a)
    done = replace(with_rules(done, admin), target_groups={**done.target_groups, "synchrony": tg})
    plan = STEP.plan(a, done)
    assert plan.is_noop
    assert ("The target group wiki-synchrony is no longer needed (synchrony.mode is internal-proxy, so Synchrony "
            "is reached through Confluence's own port) but stays: still used by the rule /collab/* on listener "
            "443; delete it once nothing uses it.") in plan.noop_reason
    elsewhere = replace(tg, load_balancers=("arn:lb", "arn:other-lb"))
    changes = plan_for(a, replace(facts, target_groups={**facts.target_groups, "synchrony": elsewhere}))
    assert "synchrony-target-group" not in [c.details.resource for c in changes]
