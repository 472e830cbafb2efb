"""The ALB form: the VPC, subnets, instances, certificate and security group are picked from lists
read from AWS (moto), never typed; AWS errors are words, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.widgets import Select, SelectionList, Static
from uihelpers import text_of, wait_for

from screens.answers.alb_form import AlbFormScreen
from screens.answers.balancer_choice import BalancerChoiceScreen
from screens.answers.inventory import InventoryScreen
from screens.app import create_app
from screens.steps.setup import SetupScreen


def partial_answers(tmp_path: Path, ips: list[str], **alb) -> Path:
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump({
        "name": "wiki-alb", "public_url": "https://wiki.example.com",
        "nodes": [{"name": f"node{i + 1}", "address": ip} for i, ip in enumerate(ips)],
        "balancer": {"kind": "alb", "alb": {"region": "eu-west-1", **alb}}}))
    return path


async def open_alb_form(pilot, app) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
    await pilot.press("ctrl+n")
    await wait_for(pilot, lambda: isinstance(app.screen, BalancerChoiceScreen))
    assert app.screen.query_one("#kinds").highlighted == 1  # the answers' kind, alb
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, AlbFormScreen))


async def test_the_alb_is_described_by_picking_from_what_aws_holds(tmp_path: Path, aws_lab,
                                                                   isolated_state_home: Path) -> None:
    app = create_app(answers_file=partial_answers(tmp_path, aws_lab.private_ips))
    async with app.run_test(size=(100, 40)) as pilot:
        await open_alb_form(pilot, app)
        # The region is known, so the lists are read at once (in a worker).
        await wait_for(pilot, lambda: app.screen.lists is not None, timeout=20)
        form = app.screen
        vpcs = [value for _, value in form.query_one("#vpc", Select)._options]
        assert aws_lab.vpc_id in vpcs
        form.query_one("#vpc", Select).value = aws_lab.vpc_id
        await pilot.pause()
        subnets = form.query_one("#subnets", SelectionList)
        assert {subnets.get_option_at_index(i).value for i in range(subnets.option_count)} == set(aws_lab.subnet_ids)
        subnets.select_all()
        # Each node's instance is found by its private address.
        await wait_for(pilot, lambda: form.query_one("#instance-0", Select).value == aws_lab.instance_ids[0])
        form.query_one("#certificate", Select).value = aws_lab.certificate_arn
        form.query_one("#node-sg", Select).value = aws_lab.node_security_group_id
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
    saved = yaml.safe_load((isolated_state_home / "confluence-lb-wizard" / "wiki-alb.answers.yaml").read_text())
    alb = saved["balancer"]["alb"]
    assert alb["vpc_id"] == aws_lab.vpc_id and sorted(alb["subnet_ids"]) == sorted(aws_lab.subnet_ids)
    assert alb["certificate_arn"] == aws_lab.certificate_arn
    assert alb["node_security_group_id"] == aws_lab.node_security_group_id
    assert [n["instance_id"] for n in saved["nodes"]] == aws_lab.instance_ids


async def test_aws_refusing_is_explained_with_what_to_try(tmp_path: Path, aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    from wizard.transport import aws

    monkeypatch.setattr(aws, "MAX_ATTEMPTS", 1)
    aws.forget_sessions()
    app = create_app(answers_file=partial_answers(tmp_path, ["10.0.0.1", "10.0.0.2"]))
    async with app.run_test(size=(100, 40)) as pilot:
        await open_alb_form(pilot, app)
        status = app.screen.query_one("#aws-status", Static)
        await wait_for(pilot, lambda: "✘" in text_of(status), timeout=30)
        assert "Next:" in text_of(status) and "Traceback" not in text_of(status)
        await pilot.press("ctrl+s")  # nothing picked: every missing choice is marked
        await pilot.pause()
        assert isinstance(app.screen, AlbFormScreen)
        assert "vpc" in text_of(app.screen.query_one("#vpc-problem", Static)).lower()
