"""The Textual face driven with Pilot: open a setup, run a step in a worker, see the checklist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from textual.widgets import Input, Label, Static

from screens.app import ConfirmPlanScreen, ErrorScreen, WelcomeScreen, create_app
from wizard.state import StateStore


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"


def make_setup(tmp_path: Path, fake_confluence_factory, apache=None) -> Path:
    """One local node: a real install folder and a simulated Confluence answering /status;
    with ``apache`` (a self-contained test Apache) the balancer step can plan for real."""
    install = tmp_path / "node1"
    (install / "conf").mkdir(parents=True)
    (install / "bin").mkdir()
    fake = fake_confluence_factory(trigger=install / "restart-requested", restart_delay=0.2)
    stock = (FIXTURES / "confluence-8-stock.xml").read_text()
    (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{fake.port}"'))
    (tmp_path / "apache").mkdir()
    answers = {"name": "ui-test", "public_url": "http://wiki.example.com",
               "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(install),
                          "confluence_port": fake.port, "restart_command": f"touch {install}/restart-requested",
                          "access": {"transport": "local"}}],
               "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                         "config_path": str(tmp_path / "apache" / "lb.conf")}}}
    if apache is not None:
        answers["balancer"]["apache"].update({
            "config_path": str(apache.config_path), "listen_port": apache.port, "server_name": "wiki.example.com",
            "configtest_command": apache.configtest_command, "reload_command": apache.reload_command})
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers))
    return path


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await pilot.pause(0.05)


@pytest.fixture(autouse=True)
def isolated_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


async def test_welcome_opens_an_answers_file_and_runs_every_step(tmp_path: Path, fake_confluence_factory,
                                                                apache_factory) -> None:
    answers = make_setup(tmp_path, fake_confluence_factory, apache_factory())
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        app.screen.query_one("#answers-path", Input).value = str(answers)
        await pilot.click("#open")
        await wait_for(pilot, lambda: app.runner is not None)
        label = app.query_one("#label-preflight", Label)
        assert "pending" in str(label.render())
        await pilot.press("a")
        # The connector's change is shown in a dialog before it is made.
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        assert "verified" in str(app.query_one("#label-preflight", Label).render())
        assert app.screen.plan.step == "connector" and 'proxyName="wiki.example.com"' in app.screen.plan.changes[0].diff
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen) and app.screen.plan.step == "restart")
        await pilot.press("y")
        await wait_for(pilot, lambda: "verified" in str(app.query_one("#label-restart", Label).render()))
        # The balancer's new vhost is shown too; the admin stops here (the Apache path has its own tests).
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen) and app.screen.plan.step == "balancer",
                       timeout=20)
        assert any("balancer://" in change.diff for change in app.screen.plan.changes)
        await pilot.press("n")
        await wait_for(pilot, lambda: not app.busy)
        assert "planned" in str(app.query_one("#label-balancer", Label).render())
    state = StateStore(tmp_path / "xdg" / "confluence-lb-wizard" / "ui-test.state.json").load()
    assert [state.steps[n].status for n in ("preflight", "connector", "restart")] == ["verified"] * 3
    assert state.steps["restart"].checks and all(c["passed"] for c in state.steps["restart"].checks)
    assert b'proxyName="wiki.example.com"' in (tmp_path / "node1" / "conf" / "server.xml").read_bytes()


async def test_declining_the_plan_changes_nothing(tmp_path: Path, fake_confluence_factory) -> None:
    answers = make_setup(tmp_path, fake_confluence_factory)
    before = (tmp_path / "node1" / "conf" / "server.xml").read_bytes()
    app = create_app(answers_file=str(answers))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not app.busy)
        assert "planned" in str(app.query_one("#label-connector", Label).render())
    assert (tmp_path / "node1" / "conf" / "server.xml").read_bytes() == before


async def test_a_bad_answers_file_shows_an_error_dialog_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npublic_url: ftp://nope\n")
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.query_one("#answers-path", Input).value = str(bad)
        await pilot.click("#open")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        message = str(app.screen.query_one("#error-message", Static).render())
        assert "public_url" in message and "nodes" in message
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen))


async def test_resume_lands_on_the_saved_setup_and_exports_the_runbook(tmp_path: Path, fake_confluence_factory) -> None:
    answers = make_setup(tmp_path, fake_confluence_factory)
    first = create_app(answers_file=str(answers))
    async with first.run_test(size=(100, 30)) as pilot:
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(first.screen, ConfirmPlanScreen))
        await pilot.press("n")  # quit in the middle: preflight done, connector only planned
        await wait_for(pilot, lambda: not first.busy)
        assert "verified" in str(first.query_one("#label-preflight", Label).render())
    second = create_app()
    async with second.run_test(size=(100, 30)) as pilot:
        assert isinstance(second.screen, WelcomeScreen)
        await pilot.press("tab")  # the saved-setup list comes first
        second.screen.query_one("#saved").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: second.runner is not None)
        assert "verified" in str(second.query_one("#label-preflight", Label).render())
        assert "planned" in str(second.query_one("#label-connector", Label).render())
        assert "Tomcat Connector" in str(second.query_one("#step-detail", Static).render())  # lands on it
        await pilot.press("e")
        await pilot.pause()
    exported = tmp_path / "xdg" / "confluence-lb-wizard" / "ui-test.state.runbook.md"
    assert exported.exists() and "ui-test" in exported.read_text()
