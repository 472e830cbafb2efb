"""`export --format cloudformation` with balancer.alb.allowed_cidrs: the stack's balancer group admits
the same networks (IPv4 and IPv6) on the same ports as the group `apply` makes, and the template
stays cfn-lint clean. The shared twin machinery is test_export_cloudformation.py's.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml
from test_export_cloudformation import (  # noqa: F401  (autouse fixtures)
    NAME,
    REGION,
    _nodes_answer_their_heartbeat,
    deploy,
    fast_waits,
    lint,
)

from wizard.answers import validate
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore
from wizard.errors import EXIT_OK
from wizard.export import run_export
from test_export_cloudformation import setup  # noqa: F401,E402  (the fixture)

pytestmark = pytest.mark.integration


def balancer_rules() -> list[tuple[int, str, str]]:
    """(port, network, description) of the setup's balancer group, whoever made it."""
    ec2 = boto3.client("ec2", region_name=REGION)
    (group,) = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == f"{NAME}-alb"]
    return sorted((p["FromPort"], r.get("CidrIp") or r["CidrIpv6"], r.get("Description", ""))
                  for p in group["IpPermissions"] for r in [*p.get("IpRanges", []), *p.get("Ipv6Ranges", [])])


def test_the_stack_admits_the_allowed_networks_as_apply_does(setup, tmp_path: Path) -> None:  # noqa: F811
    raw = {**setup["raw"], "balancer": {"kind": "alb", "alb": {
        **setup["raw"]["balancer"]["alb"], "allowed_cidrs": ["203.0.113.0/24", "2001:DB8::/32"]}}}
    answers = validate(raw)
    with Runner(answers, StateStore(setup["state"]), command="test") as runner:
        assert runner.apply(["balancer"]).exit_status == EXIT_OK
    by_apply = balancer_rules()
    with Runner(answers, StateStore(setup["state"]), command="test rollback") as runner:
        assert runner.rollback("balancer").exit_status == EXIT_OK

    mine = "confluence-lb-wizard wiki-test: {} from users"
    assert by_apply == sorted((port, cidr, mine.format(protocol)) for port, protocol in ((443, "HTTPS"), (80, "HTTP"))
                              for cidr in ("203.0.113.0/24", "2001:db8::/32"))

    out = tmp_path / "cfn"
    run_export("cloudformation", answers, out)
    template_path = out / f"{NAME}.cfn.yaml"
    linted = lint(template_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    template = yaml.safe_load(template_path.read_text())
    ingress = template["Resources"]["BalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert sorted((rule["FromPort"], rule.get("CidrIp") or rule["CidrIpv6"], rule["Description"])
                  for rule in ingress if rule["FromPort"] == rule["ToPort"] and rule["IpProtocol"] == "tcp") == by_apply
    assert len(ingress) == len(by_apply)

    # moto's CloudFormation (5.x) carries an inline rule's IPv4 network and port, but drops its
    # description and every CidrIpv6 rule: those are compared through the template above.
    deploy(template_path.read_text(), setup)
    by_stack = balancer_rules()
    assert [(port, cidr) for port, cidr, _ in by_stack if ":" not in cidr] == \
        [(port, cidr) for port, cidr, _ in by_apply if ":" not in cidr]
