"""What a drained restart on the ALB relies on, from plain data: the health check that must refuse a
STARTING node, the deregistration delay the plan sets, and the restart's plan for the drain.

The calls to AWS themselves are tested against moto's server (tests/integration/test_alb_drain.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from wizard.answers import validate
from wizard.balancers.alb import drain as alb_drain
from wizard.balancers.alb import timing
from wizard.balancers.alb.desired import DEREGISTRATION_DELAY_KEY, build_desired
from wizard.balancers.alb.plan import plan_changes
from wizard.balancers.alb.step import STEP
from wizard.balancers.kind import kind_for
from wizard.steps.restart import STEP as RESTART
from wizard.steps.restart import RestartFacts

from test_alb_plan import answers, built, empty_facts  # noqa: E402 (tests/unit is on the path)


@pytest.mark.parametrize("matcher, path, expected", [
    ("200", "/status", ""),
    ("200-299", "/status", ""),
    ("200,302", "/status", ""),
    ("200-503", "/status", "include 503"),
    ("200,503", "/status", "include 503"),
    ("500-599", "/status", "include 503"),
    ("503", "/status", "include 503"),
    ("200", "/", "it checks /, not /status"),
    ("200", "/wiki/status", "it checks /wiki/status, not /status"),
    ("2OO", "/status", "cannot be read"),
    ("200-", "/status", ""),  # AWS would refuse it; read as 200 alone
    ("", "/status", "cannot be read"),
])
def test_a_health_check_that_would_take_a_starting_node_as_healthy_is_named(matcher: str, path: str,
                                                                         expected: str) -> None:
    why = alb_drain.starting_accepted(matcher, path, "/status")
    assert (expected in why) if expected else why == "", why


def test_the_target_groups_deregistration_delay_is_restart_drain_and_a_change_is_one_modify() -> None:
    a = answers()
    a.restart_drain = 45
    desired = build_desired(a, empty_facts())
    assert {spec.key: spec.attributes[DEREGISTRATION_DELAY_KEY] for spec in desired.target_groups} == \
        {"confluence": "45", "synchrony": "45"}
    assert "deregistration delay 45 s" in desired.target_groups[0].describe()
    facts = built(a)
    assert plan_changes(build_desired(a, facts), facts) == []
    group = facts.target_groups["confluence"]
    drifted = replace(group, attributes={**group.attributes, DEREGISTRATION_DELAY_KEY: "300"})
    changes = plan_changes(build_desired(a, facts), replace(facts, target_groups={**facts.target_groups,
                                                                               "confluence": drifted}))
    assert [c.summary for c in changes] == [
        f"modify target group wiki-confluence: {DEREGISTRATION_DELAY_KEY} 300 -> 45"]
    # The undo puts the old value back.
    assert changes[0].payload.previous["attributes"][DEREGISTRATION_DELAY_KEY] == "300"


def test_verify_holds_the_delay_and_the_health_check_to_what_the_drain_needs() -> None:
    a = answers()
    facts = built(a)
    desired = build_desired(a, facts)
    checks = {c.name: c for c in alb_drain.drain_checks(desired, facts)}
    assert set(checks) == {"Confluence deregistration delay", "Synchrony deregistration delay",
                           alb_drain.STARTING_CHECK}
    assert all(c.passed for c in checks.values())
    group = facts.target_groups["confluence"]
    loose = replace(group, matcher="200-599", attributes={**group.attributes, DEREGISTRATION_DELAY_KEY: "300"})
    failed = {c.name: c for c in alb_drain.drain_checks(desired, replace(
        facts, target_groups={**facts.target_groups, "confluence": loose})) if not c.passed}
    assert set(failed) == {"Confluence deregistration delay", alb_drain.STARTING_CHECK}
    assert "include 503" in failed[alb_drain.STARTING_CHECK].fix
    assert failed["Confluence deregistration delay"].seen == "wiki-confluence: 300 s"


@pytest.mark.parametrize("mode, groups", [("direct", ["wiki-confluence", "wiki-synchrony"]),
                                          ("internal-proxy", ["wiki-confluence"])])
def test_the_plan_words_of_a_drain_name_the_groups_and_the_bound(mode: str, groups: list[str]) -> None:
    a = answers(mode=mode)
    assert alb_drain.group_names(a) == groups
    words = STEP.describe_drain(a, a.node("node1"))
    assert words.startswith(f"deregister node1 from the target group{'s' if len(groups) > 1 else ''} "
                            f"{' and '.join(groups)} and wait up to {30 + timing.DRAIN_MARGIN:.0f} s")
    assert f"register node1 again in {' and '.join(groups)}" in STEP.describe_undrain(a, a.node("node1"))
    support = kind_for(a).drain_support(a)
    assert support.can_drain and support.waits_for_requests


def restart_facts(a, **drain) -> RestartFacts:
    names = [n.name for n in a.nodes]
    return RestartFacts(commands={n: f"restart {n}" for n in names}, command_sources={n: "test" for n in names},
                        status_urls={n: f"http://{n}:8090/status" for n in names}, restarted_at={},
                        last_connector_change=None, balancer_live=True, **drain)


def test_the_restart_plan_of_an_alb_drain_adds_no_wait_of_its_own() -> None:
    a = answers()
    kind = kind_for(a)
    support = kind.drain_support(a)
    plan = RESTART.plan(a, restart_facts(
        a, can_drain=True, drain_summary=support.summary, drain_waits=True,
        drain_steps={n.name: kind.describe_drain(a, n) for n in a.nodes},
        undrain_steps={n.name: kind.describe_undrain(a, n) for n in a.nodes}))
    first = plan.changes[0]
    assert first.summary.startswith("deregister node1 from the target groups wiki-confluence and wiki-synchrony")
    assert "s for the requests under way" not in first.summary and first.details.drain_seconds == 0
    assert "register node1 again in wiki-confluence and wiki-synchrony" in first.summary
    assert "drained first" in plan.summary


def test_the_restart_plan_of_a_balancer_that_cannot_drain_says_no_drain_why_and_the_remedy(tmp_path) -> None:
    a = validate({"name": "p", "public_url": "http://wiki.example.com", "nodes": [
        {"name": "node1", "address": "10.0.0.1", "install_dir": str(tmp_path), "access": {"transport": "local"}}],
        "balancer": {"kind": "haproxy", "haproxy": {"access": {"transport": "local"},
                                                    "config_path": "/etc/haproxy/conf.d/x.cfg"}}})
    # Without admin_socket HAProxy drains through its file; a kind that cannot drain says so like this:
    support = kind_for(a).drain_support(a)
    assert support.can_drain and "the file drains" in support.summary and "disabled" in support.summary
    summary, remedy = "this balancer cannot take a node out", "put a balancer that drains in front"
    plan = RESTART.plan(a, restart_facts(a, can_drain=False, drain_summary=summary, drain_remedy=remedy))
    assert "NO DRAIN" in plan.summary and "requests fail" in plan.summary and summary in plan.summary
    assert f"To drain instead: {remedy}" in plan.summary
    assert plan.changes[0].summary.startswith("NO DRAIN") and plan.changes[0].details.drain is False
    # Not live: nothing to drain, nothing to say about it.
    quiet = RESTART.plan(a, replace(restart_facts(a, can_drain=False, drain_summary=summary),
                                    balancer_live=False))
    assert "NO DRAIN" not in quiet.summary and not quiet.changes[0].summary.startswith("NO DRAIN")
