"""The plan dialog with a long plan: the buttons stay on screen and the plan scrolls, at 80x24 too."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Button

from screens.dialogs.confirm_plan import ConfirmPlanScreen
from screens.dialogs.error import ErrorScreen
from screens.steps.plan_view import PlanView
from wizard.engine.model import Change, Plan
from wizard.errors import WizardError

LONG_DIFF = "--- a/site.conf\n+++ b/site.conf\n@@ -0,0 +1,200 @@\n" + "".join(
    f"+    ProxyPass /path{n} balancer://confluence/path{n} " + "x" * 120 + "\n" for n in range(200))


class Host(App[bool]):
    CSS_PATH = "../../screens/wizard.tcss"


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 50)])
async def test_a_long_plan_scrolls_and_keeps_its_buttons_on_screen(size: tuple[int, int]) -> None:
    summary = "configure Apache for wiki.example.com over 8 node(s): " + ", ".join(
        f"node{n} 10.0.0.{n}:8090 (Synchrony 8091)" for n in range(1, 9))
    plan = Plan("balancer", summary, [Change("apache", "file", "write site.conf", LONG_DIFF)])
    app = Host()
    answers: list[bool] = []
    async with app.run_test(size=size) as pilot:
        app.push_screen(ConfirmPlanScreen(plan), answers.append)
        await pilot.pause()
        view = app.screen.query_one(PlanView)
        assert view.virtual_size.height > view.size.height > 0, "the plan scrolls down"
        assert view.virtual_size.width > view.size.width, "long lines scroll sideways instead of wrapping"
        # Prose wraps to the view, at any width: only the diff's lines need scrolling sideways.
        prose = [strip for strip in view.strips if "ProxyPass" not in strip.text]
        assert len(prose) > 3 and all(len(strip.text.rstrip()) <= view.scrollable_content_region.width
                                      for strip in prose), [strip.text for strip in prose]
        for button in app.screen.query(Button):
            assert 0 <= button.region.y and button.region.bottom <= size[1], (button.id, button.region)
        await pilot.press("j", "j", "l")
        assert view.scroll_offset.y == 2 and view.scroll_offset.x == 4
        assert "ProxyPass /path2 " in view.text
        await pilot.press("y")
    assert answers == [True]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_a_long_error_keeps_its_button_and_its_next_step_within_reach(size: tuple[int, int]) -> None:
    message = "The connector step failed on node3.\n\nUndone:\n" + "".join(
        f"  - node{n}: put back /opt/atlassian/confluence/conf/server.xml from its backup\n" for n in range(1, 15))
    app = Host()
    closed: list[None] = []
    async with app.run_test(size=size) as pilot:
        app.push_screen(ErrorScreen(WizardError(message, "Fix the disk on node3, then run the step again.")),
                        closed.append)
        await pilot.pause()
        button = app.screen.query_one("#ok", Button)
        assert button.region.bottom <= size[1], button.region
        body = app.screen.query_one("#dialog-body")
        body.scroll_end(animate=False)
        await pilot.pause()
        hint = app.screen.query_one("#error-hint")
        assert body.region.contains_region(hint.region), (body.region, hint.region)
        await pilot.press("enter", "enter")  # a second press must not close the screen beneath
        await pilot.pause()
    assert closed == [None]
