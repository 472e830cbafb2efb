"""The theme the admin chose is the theme of the next start."""

from __future__ import annotations

from uihelpers import wait_for

from screens.app import create_app
from screens.preferences import preferences_path
from screens.welcome import WelcomeScreen


async def test_the_chosen_theme_comes_back_next_time(isolated_state_home) -> None:
    first = create_app()
    async with first.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(first.screen, WelcomeScreen))
        assert first.theme == "textual-dark"  # the default
        first.action_toggle_dark()
        await pilot.pause()
        assert first.theme == "textual-light"
    assert preferences_path().is_relative_to(isolated_state_home)
    second = create_app()
    async with second.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(second.screen, WelcomeScreen))
        assert second.theme == "textual-light"


async def test_a_damaged_preferences_file_means_the_defaults(isolated_state_home) -> None:
    preferences_path().parent.mkdir(parents=True, exist_ok=True)
    preferences_path().write_text("{not json")
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen))
        assert app.theme == "textual-dark"
