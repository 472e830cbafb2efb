"""The whole lab flow through the UI, as a newcomer walks it: every step's plan seen and confirmed,
a quit in the middle and a return to the same place, every check green, and the runbook exported."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static
from uihelpers import choose_on_welcome, label, screen_text, text_of, wait_for

from screens.app import create_app
from screens.dialogs.confirm_plan import ConfirmPlanScreen
from screens.steps.plan_view import PlanView
from screens.steps.setup import SetupScreen
from screens.steps.summary import SummaryScreen
from screens.welcome import WelcomeScreen
from wizard.engine.state import StateStore
from wizard.lab.cluster import Lab
from wizard.steps import available


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The steps poll every 2 s, for real machines; the lab's simulated nodes answer at once.
    from wizard.steps import base_url, restart

    monkeypatch.setattr(restart, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(base_url, "POLL_SECONDS", 0.2)
    started = Lab(root=tmp_path / "lab", nodes=2).start()
    yield started
    started.stop()


async def confirm(pilot, app, step: str) -> None:
    """The step's plan is shown before anything changes; the newcomer reads it and says yes."""
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen) and app.screen.plan.step == step
                   and bool(app.screen.query("#plan-body")), timeout=20)
    assert app.screen.query_one("#plan-body", PlanView).text.strip()
    await pilot.press("y")


async def run_selected(pilot, app, step: str, *, plan: bool = True) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen) and app.screen.selected == step, timeout=20)
    await pilot.press("enter")
    if plan:
        await confirm(pilot, app, step)
    await wait_for(pilot, lambda: not app.busy, timeout=60)
    assert "verified" in label(app, step), app.session.record(step).error


async def test_the_lab_walked_step_by_step_with_a_quit_in_the_middle(lab: Lab, tmp_path: Path) -> None:
    steps = available()
    first = create_app(state=lab.state_path, answers_file=lab.answers_path, lab=lab)
    async with first.run_test(size=(100, 30)) as pilot:
        await run_selected(pilot, first, "preflight", plan=False)
        if "base-url" in steps:
            await pilot.press("enter")
            await confirm(pilot, first, "base-url")
            # The guided step waits for the admin; the newcomer changes it (the lab's palette command).
            await wait_for(pilot, lambda: "waiting for the base URL" in str(first.session.progress.get("base-url")))
            # What to do stays in view while the step waits: the plan names the page and the value.
            body = text_of(first.screen.query_one("#step-body", Static))
            assert "General Configuration" in body and lab.public_url in body
            # The footer offers the lab's admin, and the log says so.
            await wait_for(pilot, lambda: "Lab: set base URL" in screen_text(first))
            assert "press b" in screen_text(first), screen_text(first)
            await pilot.press("b")
            await wait_for(pilot, lambda: not first.busy, timeout=30)
            # Offered only while the step waits (the footer is redrawn a frame after the step ends).
            await wait_for(pilot, lambda: "Lab: set base URL" not in screen_text(first))
            assert "verified" in label(first, "base-url")
        await run_selected(pilot, first, "connector")
        await pilot.press("q")  # quits in the middle
    assert first.return_code == 0

    second = create_app(state=lab.state_path, answers_file=lab.answers_path, lab=lab)
    async with second.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(second.screen, SetupScreen))
        assert second.screen.selected == "restart"  # the same place
        assert "verified" in label(second, "connector")
        await pilot.press("a")  # every step not done, in order, each plan confirmed
        await confirm(pilot, second, "restart")
        await confirm(pilot, second, "balancer")
        await wait_for(pilot, lambda: isinstance(second.screen, SummaryScreen)
                       and "every step" in screen_text(second), timeout=60)
        summary = text_of(second.screen.query_one("#summary-body", Static))
        assert "every step is done" in summary and "passed" in summary and "failed" not in summary
        await pilot.press("e")
        await pilot.pause()
        assert "Runbook written" in screen_text(second)
    state = StateStore(lab.state_path).load()
    assert all(state.steps[name].status == "verified" for name in steps)
    assert all(check.passed for name in steps for check in state.steps[name].checks)
    runbook = (lab.state_path.parent / "lab.runbook.md").read_text()
    for expected in ("server.xml", "proxyName", "BalancerMember", "restart-requested"):
        assert expected in runbook


async def test_the_lab_opens_from_the_welcome_and_stops_with_the_app(tmp_path: Path) -> None:
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await choose_on_welcome(pilot, app, "lab")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), timeout=20)
        assert app.session.answers.name == "lab" and app.lab.running
        await pilot.press("enter")
        await wait_for(pilot, lambda: "verified" in label(app, "preflight") and not app.busy, timeout=20)
        lab = app.lab
    assert not lab.running and not lab.threads()
