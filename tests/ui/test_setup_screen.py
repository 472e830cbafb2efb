"""The setup screen driven with Pilot: the checklist, running a step (its plan first), cancelling,
rolling back, verifying, exporting, and errors as dialogs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Static
from uihelpers import label, make_setup, screen_text, text_of, wait_for

from screens.app import WizardApp, create_app
from screens.dialogs.confirm_plan import ConfirmPlanScreen
from screens.dialogs.confirm_rollback import ConfirmRollbackScreen
from screens.dialogs.error import ErrorScreen
from screens.steps.plan_view import PlanView
from screens.steps.setup import SetupScreen
from screens.steps.summary import SummaryScreen
from screens.steps.verify_results import VerifyResultsScreen
from wizard.engine.state import StateStore


async def select(pilot, app: WizardApp, name: str) -> None:
    app.screen.query_one("#checklist").select(name)
    await pilot.pause()


async def test_a_step_runs_after_its_plan_is_shown_and_the_checklist_follows(
        tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert "pending" in label(app, "preflight")
        assert app.screen.selected == "preflight"  # resume lands on the first step not done
        await pilot.press("enter")  # preflight only reads: no plan to confirm
        await wait_for(pilot, lambda: "verified" in label(app, "preflight") and not app.busy)
        assert app.screen.selected == "base-url"  # on to the next step not done
        await select(pilot, app, "connector")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        plan = app.screen.plan
        assert plan.step == "connector" and 'proxyName="wiki.example.com"' in plan.changes[0].diff
        # The diff is shown with its added lines coloured.
        body = app.screen.query_one("#plan-body", PlanView)
        assert "[node1]" in body.text and "\n+" in body.text and "proxyName" in body.text
        added = [strip for strip in body.strips if strip.text.startswith("+ ")]
        assert added and all(segment.style is not None and segment.style.color.name == "green"
                             for strip in added for segment in strip if segment.text.strip())
        await pilot.press("y")
        await wait_for(pilot, lambda: "verified" in label(app, "connector") and not app.busy)
    assert b'proxyName="wiki.example.com"' in (tmp_path / "node1" / "conf" / "server.xml").read_bytes()


async def test_declining_a_plan_changes_nothing(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    before = (tmp_path / "node1" / "conf" / "server.xml").read_bytes()
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await select(pilot, app, "connector")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not app.busy)
        assert "planned" in label(app, "connector")
    assert (tmp_path / "node1" / "conf" / "server.xml").read_bytes() == before


async def test_a_failed_step_is_a_dialog_with_the_next_thing_to_try(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    (tmp_path / "node1" / "conf" / "server.xml").unlink()
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        message = text_of(app.screen.query_one("#error-message", Static))
        hint = text_of(app.screen.query_one("#error-hint", Static))
        assert "server.xml" in message and hint.startswith("Next:")
        assert "Traceback" not in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert "failed" in label(app, "preflight")
        # The step view keeps the reason and the next thing to try.
        assert "Next:" in text_of(app.screen.query_one("#step-body", Static))


async def test_long_work_can_be_cancelled_and_the_ui_keeps_answering(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        # restart: manual makes the step wait for the admin to restart the node: long work.
        app.session.answers.restart = "manual"
        await select(pilot, app, "restart")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "waiting for you" in str(app.session.progress.get("restart")))
        await select(pilot, app, "preflight")  # the UI still answers while the worker waits
        assert app.screen.selected == "preflight"
        await pilot.press("c")
        await wait_for(pilot, lambda: not app.busy)
        assert "failed" in label(app, "restart")
        assert not isinstance(app.screen, ErrorScreen)  # a cancel is not an error
    record = StateStore(tmp_path / "xdg" / "confluence-lb-wizard" / "ui-test.state.json").load().steps["restart"]
    assert record.error and record.error.interrupted


async def test_a_step_is_rolled_back_from_the_palette_after_its_undo_is_listed(
        tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    before = (tmp_path / "node1" / "conf" / "server.xml").read_bytes()
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await select(pilot, app, "connector")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "verified" in label(app, "connector") and not app.busy)
        await pilot.press("ctrl+p")
        await pilot.press(*"Roll back")  # only the connector has something to undo
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRollbackScreen))
        undo = text_of(app.screen.query_one("#undo-list", Static))
        assert "node1" in undo and "server.xml" in undo and "by hand" in undo
        await pilot.press("y")
        await wait_for(pilot, lambda: "rolled-back" in label(app, "connector") and not app.busy)
    assert (tmp_path / "node1" / "conf" / "server.xml").read_bytes() == before


async def test_verify_now_shows_each_failure_with_what_to_do(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "verified" in label(app, "preflight") and not app.busy)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, VerifyResultsScreen), timeout=20)
        failed = text_of(app.screen.query_one("#results-failed", Static))
        assert "FAIL" in failed and "→" in failed  # each failure says what to do
        assert "PASS" in text_of(app.screen.query_one("#results-passed", Static))
        assert "checklist" in {w.id for w in app.screen.query("#checklist")}  # still in view
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))


async def test_quitting_midway_and_coming_back_resumes_where_it_stopped(tmp_path: Path, lab_node_factory,
                                                                       isolated_state_home: Path) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    first = create_app(answers_file=answers)
    async with first.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(first.screen, SetupScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "verified" in label(first, "preflight") and not first.busy)
        await pilot.press("q")
    second = create_app()  # the welcome screen lists it with its progress
    async with second.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: second.screen.ready)
        option = second.screen.query_one("#start").get_option("resume-0")
        assert "ui-test: 1 of" in str(option.prompt)
        second.screen.query_one("#start").highlighted = second.screen.query_one("#start").get_option_index("resume-0")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(second.screen, SetupScreen))
        assert "verified" in label(second, "preflight")
        assert second.screen.selected == "base-url"  # the first step not done
        await pilot.press("e")
        await pilot.pause()
    exported = isolated_state_home / "confluence-lb-wizard" / "ui-test.runbook.md"
    assert exported.exists() and "ui-test" in exported.read_text()
    assert exported.with_suffix(".html").exists()


async def test_the_summary_offers_the_runbook_export(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen))
        assert "some steps are not done" in text_of(app.screen.query_one("#summary-body", Static))
        await pilot.press("e")
        await pilot.pause()
        assert "Runbook written to" in text_of(app.screen.query_one("#summary-export", Static))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))


async def test_light_and_dark_themes_and_80_by_24(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        text = screen_text(app)
        for seen in ("Preflight", "Connector", "Verify", "Run", "Quit"):
            assert seen in text  # the checklist and the bindings fit in 80x24
        dark = app.theme
        await pilot.press("d")
        assert app.theme != dark and "light" in app.theme
        await pilot.press("d")
        assert app.theme == dark


async def test_an_unexpected_problem_is_a_dialog_not_a_traceback(tmp_path: Path, lab_node_factory,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from wizard.engine.runner import Runner

    def broken(self, *args, **kwargs):
        raise RuntimeError("the disk fell off")

    monkeypatch.setattr(Runner, "apply", broken)
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        message = text_of(app.screen.query_one("#error-message", Static))
        assert "the disk fell off" in message and "Traceback" not in screen_text(app)
        await pilot.press("enter")
        assert not app.busy


async def open_answers_editor(pilot, app) -> None:
    """From the steps, i: the inventory on the setup's answers."""
    from screens.answers.inventory import InventoryScreen

    await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
    await pilot.press("i")
    await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))


async def wait_in_a_manual_restart(pilot, app) -> None:
    """The restart step (manual) applied and waiting for the admin to restart the first node."""
    await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
    app.session.answers.restart = "manual"
    await select(pilot, app, "restart")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
    await pilot.press("y")
    await wait_for(pilot, lambda: "waiting for you" in str(app.session.progress.get("restart")))


async def test_the_answers_are_changed_from_the_checklist_and_the_setup_reopens(
        tmp_path: Path, lab_node_factory, isolated_state_home: Path) -> None:
    from textual.widgets import Input

    from screens.answers.apache_form import ApacheFormScreen
    from screens.answers.balancer_choice import BalancerChoiceScreen

    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_answers_editor(pilot, app)
        assert app.screen.query_one("#setup--name", Input).disabled  # it names the state file
        app.screen.query_one("#setup--public-url", Input).value = "http://wiki2.example.com"
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, BalancerChoiceScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApacheFormScreen))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen)
                       and app.session.answers.public_url.url == "http://wiki2.example.com")
    state = StateStore(isolated_state_home / "confluence-lb-wizard" / "ui-test.state.json").load()
    assert state.answers["public_url"] == "http://wiki2.example.com"
    assert (isolated_state_home / "confluence-lb-wizard" / "ui-test.answers.yaml").exists()
    assert not (isolated_state_home / "confluence-lb-wizard" / "ui-test.edit.draft.yaml").exists()  # saved


async def test_changes_to_the_answers_not_saved_yet_survive_a_quit(
        tmp_path: Path, lab_node_factory, isolated_state_home: Path) -> None:
    from textual.widgets import Input

    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_answers_editor(pilot, app)
        field = app.screen.query_one("#setup--public-url", Input)
        field.focus()
        field.value = "http://wiki3.example.com"
        await pilot.pause(0.5)  # saved after a short pause in typing
        await pilot.press("ctrl+q")
    again = create_app(answers_file=answers)
    async with again.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(again.screen, SetupScreen))
        assert again.session.answers.public_url.url != "http://wiki3.example.com"  # not saved as the answers
        await open_answers_editor(pilot, again)
        assert again.screen.query_one("#setup--public-url", Input).value == "http://wiki3.example.com"


async def test_quitting_while_a_step_works_stops_it_safely_first(tmp_path: Path, lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_in_a_manual_restart(pilot, app)
        await pilot.press("q")  # the step is cancelled at its next safe point, then the app quits
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130
    record = StateStore(tmp_path / "xdg" / "confluence-lb-wizard" / "ui-test.state.json").load().steps["restart"]
    assert record.status == "failed" and record.error.interrupted


async def test_quitting_at_once_leaves_the_state_to_the_step_until_it_has_stopped(tmp_path: Path,
                                                                                  lab_node_factory) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    state_path = tmp_path / "xdg" / "confluence-lb-wizard" / "ui-test.state.json"
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_in_a_manual_restart(pilot, app)
        runner = app.session.runner
        await pilot.press("q", "q")  # the second q quits at once
        await wait_for(pilot, lambda: app.return_code is not None)
        # The step's thread still holds the lock (and the connections) while it stops.
        assert runner.state is not None and runner.store._lock_fd is not None
    deadline = time.monotonic() + 30
    while runner.store._lock_fd is not None:  # the worker closes the runner once the step has stopped
        assert time.monotonic() < deadline, "the step never stopped after the app quit"
        time.sleep(0.1)
    store = StateStore(state_path)
    store.acquire("test")  # free now
    store.release()
    state = store.load()
    assert state.steps["restart"].status == "failed" and state.steps["restart"].error.interrupted
    assert state.runs[-1]["exit_status"] == 130 and state.runs[-1]["finished"]


async def test_the_balancer_choice_offers_nginx_and_haproxy_with_forms_of_their_own(
        tmp_path: Path, lab_node_factory, isolated_state_home: Path) -> None:
    from textual.widgets import Input, OptionList

    from screens.answers.apache_form import HaproxyFormScreen, NginxFormScreen
    from screens.answers.balancer_choice import BalancerChoiceScreen

    answers = make_setup(tmp_path, lab_node_factory)
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_answers_editor(pilot, app)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, BalancerChoiceScreen))
        kinds = app.screen.query_one("#kinds", OptionList)
        assert [kinds.get_option_at_index(i).id for i in range(kinds.option_count)] == \
            ["apache", "alb", "nginx", "haproxy"]
        for index, form, key in ((2, NginxFormScreen, "nginx"), (3, HaproxyFormScreen, "haproxy")):
            kinds.highlighted = index
            await pilot.press("enter")
            await wait_for(pilot, lambda form=form: isinstance(app.screen, form))
            path = app.screen.query_one(f"#{key}--config-path", Input)
            assert path.placeholder.endswith((".conf", ".cfg"))
            assert app.screen.draft.raw["balancer"]["kind"] == key
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, BalancerChoiceScreen))
