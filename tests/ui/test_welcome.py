"""The welcome screen: a new setup, a saved one resumed, an answers file (complete, partial, unreadable)."""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.widgets import Input, Static
from uihelpers import choose_on_welcome, make_setup, text_of, wait_for

from screens.answers.inventory import InventoryScreen
from screens.app import create_app
from screens.dialogs.error import ErrorScreen
from screens.dialogs.open_file import OpenFileScreen
from screens.steps.setup import SetupScreen
from screens.welcome import WelcomeScreen


async def ready(pilot, app) -> None:
    """The welcome has looked for saved setups (in a worker) and listed them."""
    await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen) and app.screen.ready)


def option_ids(app) -> list[str]:
    start = app.screen.query_one("#start")
    return [start.get_option_at_index(i).id for i in range(start.option_count)]


async def test_the_welcome_offers_a_new_setup_and_the_lab(tmp_path: Path) -> None:
    app = create_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        assert option_ids(app) == ["new", "open", "lab", "lab-alb"]
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_complete_answers_file_opens_the_steps(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenFileScreen))
        app.screen.query_one("#answers-path", Input).value = str(answers)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert app.session.answers.name == "ui-test" and app.session.answers_path == answers


async def test_an_unreadable_answers_file_is_a_dialog_and_the_welcome_stays(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  public_url: [\n")
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await choose_on_welcome(pilot, app, "open")
        await wait_for(pilot, lambda: isinstance(app.screen, OpenFileScreen))
        app.screen.query_one("#answers-path", Input).value = str(bad)
        await pilot.click("#open")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "YAML" in text_of(app.screen.query_one("#error-message", Static))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen))


async def test_a_partial_answers_file_opens_the_inventory_to_finish_it(tmp_path: Path) -> None:
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump({"name": "wiki-prod", "public_url": "ftp://nope"}))
    app = create_app(answers_file=partial)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        assert app.screen.query_one("#setup--name", Input).value == "wiki-prod"  # given answers are kept
        assert "https://" in text_of(app.screen.query_one("#setup--public-url-problem", Static))


async def test_resume_lists_each_saved_setup_with_its_progress(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    first = create_app(answers_file=answers)
    async with first.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(first.screen, SetupScreen))
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        assert option_ids(app)[:2] == ["new", "resume-0"]
        start = app.screen.query_one("#start")
        assert start.highlighted == 1  # resuming is offered first
        assert "ui-test: 0 of 6 steps done" in str(start.get_option("resume-0").prompt)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert app.screen.selected == "preflight"


def test_without_a_terminal_the_full_screen_wizard_points_to_apply(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = Path(sys.executable).parent / "confluence-lb-wizard"
    done = subprocess.run([str(command)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)}, check=False)
    assert done.returncode == 2
    assert "apply --answers FILE" in done.stderr and "Traceback" not in done.stderr
