"""README.md's "AWS permissions" lists every AWS action the wizard calls, and nothing it does not."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: boto3's service names as IAM spells them.
IAM_SERVICE = {"ec2": "ec2", "elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "acm": "acm",
               "sts": "sts"}
#: Granted for what a call does besides its own action: tags given at creation.
IMPLIED = {"ec2:CreateTags", "elasticloadbalancing:AddTags"}
#: Every AWS call goes through Aws.call/Aws.pages (wizard/transport/aws.py), directly or through
#: wizard/balancers/alb/undo.py's _call_unless_gone, or is a waiter named here.
CALL = re.compile(r'(?:\.call|\.pages|_call_unless_gone)\(\s*(?:aws,\s*)?"([a-z0-9]+)",\s*"([a-z_]+)"', re.S)
WAITER = re.compile(r'client\("([a-z0-9]+)"\)\.get_waiter\("([a-z_]+)"\)')
WAITER_ACTIONS = {("elbv2", "load_balancers_deleted"): "describe_load_balancers"}


def iam_action(service: str, operation: str) -> str:
    return f"{IAM_SERVICE[service]}:{''.join(word.capitalize() for word in operation.split('_'))}"


def actions_in_code() -> set[str]:
    found = set()
    for path in [*(ROOT / "wizard").rglob("*.py"), *(ROOT / "screens").rglob("*.py")]:
        if path.name.startswith("lab_"):
            continue  # the lab builds its simulated account in moto, not in the admin's
        text = path.read_text(encoding="utf-8")
        found |= {iam_action(service, operation) for service, operation in CALL.findall(text)}
        found |= {iam_action(service, WAITER_ACTIONS[(service, waiter)]) for service, waiter in WAITER.findall(text)}
    return found


def actions_in_doc() -> set[str]:
    section = README.read_text(encoding="utf-8").split("## AWS permissions", 1)[1].split("\n## ", 1)[0]
    policy = json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1])
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def test_the_code_calls_aws_through_the_patterns_this_test_reads() -> None:
    # A sample the scan must find, so an empty scan cannot pass the test below.
    assert {"elasticloadbalancing:CreateTargetGroup", "ec2:DescribeVpcs", "sts:GetCallerIdentity",
            "elasticloadbalancing:DeleteLoadBalancer"} <= actions_in_code()


def test_the_permissions_page_lists_exactly_what_the_code_calls() -> None:
    code, doc = actions_in_code(), actions_in_doc()
    assert code - doc == set(), "called but not in README.md's AWS permissions"
    assert doc - code - IMPLIED == set(), "in README.md's AWS permissions but never called"
