"""A new setup from the welcome screen: the inventory (nodes added, edited, removed, checked as you
type, read from), the balancer choice and the Apache form, saved as an answers file beside the state."""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.widgets import DataTable, Input, Static
from uihelpers import choose_on_welcome, install_node, text_of, wait_for

from screens.answers.apache_form import ApacheFormScreen
from screens.answers.balancer_choice import BalancerChoiceScreen
from screens.answers.inventory import InventoryScreen
from screens.answers.node_form import NodeFormScreen
from screens.app import create_app
from screens.steps.setup import SetupScreen
from screens.welcome import WelcomeScreen


async def type_into(pilot, app, selector: str, text: str, *, keys: bool = False, wait: bool = True) -> None:
    """Answer a field: key by key with ``keys`` (as an admin types), else in one go (Pilot
    takes some 80 ms a key, and the checks run on every change either way)."""
    widget = app.screen.query_one(selector, Input)
    widget.focus()
    widget.value = ""
    if keys:
        await pilot.press(*text)
    else:
        widget.value = text
    if wait:
        await pilot.pause()


def problem(app, widget_id: str) -> str:
    return text_of(app.screen.query_one(f"#{widget_id}-problem", Static))


async def add_node(pilot, app, name: str, install: Path, *, port: int) -> None:
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(app.screen, NodeFormScreen))
    await type_into(pilot, app, "#node--name", name, wait=False)
    await type_into(pilot, app, "#node--address", "127.0.0.1", wait=False)
    await type_into(pilot, app, "#node--install-dir", str(install), wait=False)
    app.screen.query_one("#node--access-transport").value = "local"
    await type_into(pilot, app, "#node--confluence-port", str(port))


async def test_a_new_setup_is_built_in_the_forms_and_saved_beside_the_state(
        tmp_path: Path, isolated_state_home: Path) -> None:
    install_node(tmp_path / "n1", 8090)
    install_node(tmp_path / "n2", 8091)
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await choose_on_welcome(pilot, app, "new")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))

        # Checked as you type: a wrong answer is named next to its field at once.
        await type_into(pilot, app, "#setup--name", "wiki-prod", keys=True)
        await type_into(pilot, app, "#setup--public-url", "ftp://wiki", keys=True)
        assert "https://" in problem(app, "setup--public-url")
        await type_into(pilot, app, "#setup--public-url", "http://wiki.example.com")
        assert problem(app, "setup--public-url") == ""

        # A node: a bad port is named as it is typed; what was read from the node is shown.
        await add_node(pilot, app, "node1", tmp_path / "n1", port=8090)
        await type_into(pilot, app, "#node--access-port", "http")
        await type_into(pilot, app, "#node--confluence-port", "99999")
        assert problem(app, "node--confluence-port")
        await type_into(pilot, app, "#node--confluence-port", "8090")
        assert problem(app, "node--confluence-port") == ""
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "port 8090" in text_of(app.screen.query_one("#node-read", Static)))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))

        # A second node (read in the background once kept), edited, then a third added and removed.
        await add_node(pilot, app, "node2", tmp_path / "n2", port=8091)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: "port 8091" in str(table.get_row_at(1)[3]))
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeFormScreen))
        await type_into(pilot, app, "#node--name", "node-b")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        assert app.screen.draft.nodes[1]["name"] == "node-b"
        app.screen.draft.nodes.append({"name": "node3", "address": "10.0.0.3"})
        app.screen.fill_table()
        table.move_cursor(row=2)
        await pilot.press("delete")
        assert table.row_count == 2 and len(app.screen.draft.nodes) == 2

        # The balancer: Apache (explained), then its form.
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, BalancerChoiceScreen))
        assert "sticky" in str(app.screen.query_one("#kinds").get_option("apache").prompt)
        assert "target groups" in str(app.screen.query_one("#kinds").get_option("alb").prompt)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ApacheFormScreen))
        app.screen.query_one("#apache--access-transport").value = "local"
        await type_into(pilot, app, "#apache--config-path", "relative/path.conf")
        assert "absolute" in problem(app, "apache--config-path")
        await type_into(pilot, app, "#apache--config-path", str(tmp_path / "lb.conf"))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert app.session.answers.name == "wiki-prod"

    folder = isolated_state_home / "confluence-lb-wizard"
    saved = yaml.safe_load((folder / "wiki-prod.answers.yaml").read_text())
    assert [n["name"] for n in saved["nodes"]] == ["node1", "node-b"]
    assert saved["balancer"]["kind"] == "apache" and "alb" not in saved["balancer"]
    assert (folder / "wiki-prod.state.json").exists()
    assert not (folder / "new-setup.draft.yaml").exists()  # the draft became the answers


async def test_quitting_in_the_middle_of_the_inventory_loses_nothing(tmp_path: Path) -> None:
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await choose_on_welcome(pilot, app, "new")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        await type_into(pilot, app, "#setup--name", "half-done", keys=True)
        await pilot.pause(0.5)  # saved after a short pause in typing
        await pilot.press("ctrl+q")
    again = create_app()
    async with again.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: again.screen.ready)
        start = again.screen.query_one("#start")
        assert "Continue the new setup" in str(start.get_option("draft").prompt)
        start.highlighted = start.get_option_index("draft")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(again.screen, InventoryScreen))
        assert again.screen.query_one("#setup--name", Input).value == "half-done"


async def test_going_on_with_answers_missing_marks_every_one(tmp_path: Path) -> None:
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await choose_on_welcome(pilot, app, "new")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        assert problem(app, "setup--name") == ""  # a fresh form is not a wall of red
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, InventoryScreen)
        assert problem(app, "setup--name") and problem(app, "setup--public-url")
        assert "nodes" in text_of(app.screen.query_one("#nodes-problems", Static))


async def test_starting_anew_keeps_the_earlier_unfinished_setup(isolated_state_home: Path) -> None:
    from wizard.answers.draft import draft_path

    draft_path().parent.mkdir(parents=True, exist_ok=True)
    draft_path().write_text("name: half-done\n")
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await choose_on_welcome(pilot, app, "new")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        await type_into(pilot, app, "#setup--name", "another", keys=True)
        await pilot.pause(0.5)
    kept = draft_path().with_name(draft_path().name + ".previous")
    assert kept.read_text() == "name: half-done\n"
    assert "another" in draft_path().read_text()


async def test_a_new_setup_never_takes_over_an_existing_one(tmp_path: Path, isolated_state_home: Path) -> None:
    from screens.dialogs.error import ErrorScreen
    from wizard.answers.draft import Draft, draft_path
    from wizard.engine.state import State, StateStore, default_state_path

    existing = default_state_path("wiki-prod")
    StateStore(existing).save(State(setup="wiki-prod"))
    before = existing.read_bytes()
    install_node(tmp_path / "n1", 8090)
    raw = {"name": "wiki-prod", "public_url": "http://wiki.example.com",
           "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(tmp_path / "n1"),
                      "access": {"transport": "local"}}],
           "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                     "config_path": str(tmp_path / "lb.conf")}}}
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, WelcomeScreen))
        app.finish_draft(Draft(raw, draft_path()))
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "already exists" in app.screen.error.message and "another name" in (app.screen.error.hint or "")
        assert app.session is None
    assert existing.read_bytes() == before
    assert not existing.with_name("wiki-prod.answers.yaml").exists()


async def test_only_the_newest_read_of_a_node_is_shown(tmp_path: Path) -> None:
    from screens.messages import NodeRead

    install_node(tmp_path / "n1", 8090)
    app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await choose_on_welcome(pilot, app, "new")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen))
        inventory = app.screen
        inventory.draft.nodes.append({"name": "node1", "address": "127.0.0.1", "install_dir": str(tmp_path / "n1"),
                                      "access": {"transport": "local"}, "confluence_port": 8090})
        inventory.read_again(0)  # read 1
        inventory.read_again(0)  # read 2, after the admin changed something
        await wait_for(pilot, lambda: inventory.readings["node1"][0] is not None)
        assert inventory.latest_read["node1"] == inventory.read_serial
        newest = inventory.readings["node1"]
        inventory.post_message(NodeRead("node1", "what the first, slower read saw", False, inventory.read_serial - 1))
        await pilot.pause()
        assert inventory.readings["node1"] == newest
