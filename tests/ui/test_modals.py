"""The questions a worker asks through modals: an unknown host key (with its fingerprint), a key's
passphrase, over a real sshd, through the app's own prompts; and the bridge itself (answers, cancels)."""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from textual.app import App
from textual.widgets import Input, Static
from uihelpers import install_node, text_of, wait_for

from screens.answers.inventory import InventoryScreen
from screens.app import create_app
from screens.bridge import ThreadBridge
from screens.dialogs.confirm_plan import ConfirmPlanScreen
from screens.dialogs.host_key import HostKeyScreen
from screens.dialogs.passphrase import PassphraseScreen
from wizard.engine.model import Change, Plan
from wizard.errors import HostKeyError
from wizard.transport import ssh


async def test_a_node_over_ssh_asks_for_its_unknown_host_key_and_the_key_passphrase(
        tmp_path: Path, ssh_testbed, sshd) -> None:
    locked = ssh_testbed.make_key(tmp_path / "locked", passphrase="s3cret words")
    ssh_testbed.authorize(ssh_testbed.login_user, locked)
    known_hosts = tmp_path / "known_hosts"  # empty: the node's key is unknown
    install_node(tmp_path / "n1", 8090)
    answers = tmp_path / "partial.yaml"
    answers.write_text(yaml.safe_dump({
        "name": "over-ssh", "public_url": "http://wiki.example.com",
        "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(tmp_path / "n1"),
                   "access": {"transport": "ssh", "host": "127.0.0.1", "port": sshd.port,
                              "user": ssh_testbed.login_user, "key_file": str(locked),
                              "known_hosts": str(known_hosts)}}]}))
    app = create_app(answers_file=answers)  # no balancer yet: the inventory opens, and reads the node
    asked: list[str] = []
    ask = app.prompts.passphrase
    app.prompts.passphrase = lambda prompt: asked.append(prompt) or ask(prompt)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        # The key is unlocked first (to offer it), then the host's key is checked.
        # Pushed is not yet built: wait for its input too.
        await wait_for(pilot, lambda: isinstance(app.screen, PassphraseScreen)
                       and bool(app.screen.query("#passphrase")), timeout=20)
        assert asked and str(locked) in asked[0]  # asked through the app's own prompts
        app.screen.query_one("#passphrase", Input).value = "s3cret words"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen)
                       and bool(app.screen.query("#fingerprint")), timeout=20)
        shown = text_of(app.screen.query_one("#fingerprint", Static))
        assert sshd.fingerprint() in shown and "ssh-ed25519" in shown
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen)
                       and app.screen.readings.get("node1", (None, ""))[0] is True, timeout=20)
        assert "port 8090" in app.screen.readings["node1"][1]
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known_hosts.read_text()
    assert not hasattr(ssh, "ask_passphrase")  # nothing installed module-wide that could outlive the app


async def test_refusing_a_host_key_sends_nothing(tmp_path: Path, ssh_testbed, sshd) -> None:
    known_hosts = tmp_path / "known_hosts"
    install_node(tmp_path / "n1", 8090)
    answers = tmp_path / "partial.yaml"
    answers.write_text(yaml.safe_dump({
        "name": "over-ssh", "public_url": "http://wiki.example.com",
        "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(tmp_path / "n1"),
                   "access": {"transport": "ssh", "host": "127.0.0.1", "port": sshd.port,
                              "user": ssh_testbed.login_user, "key_file": str(ssh_testbed.client_key),
                              "known_hosts": str(known_hosts)}}]}))
    app = create_app(answers_file=answers)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, HostKeyScreen)
                       and bool(app.screen.query("#fingerprint")), timeout=20)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, InventoryScreen)
                       and app.screen.readings.get("node1", (None, ""))[0] is False, timeout=20)
        assert "known_hosts" in app.screen.readings["node1"][1] or "host key" in app.screen.readings["node1"][1]
    assert not known_hosts.exists() or known_hosts.read_text() == ""


class Bare(App[None]):
    pass


async def test_the_bridge_waits_for_the_answer_and_gives_up_when_cancelled() -> None:
    app = Bare()
    async with app.run_test(size=(80, 24)) as pilot:
        cancel = threading.Event()
        bridge = ThreadBridge(app, cancelled=cancel.is_set)
        plan = Plan("connector", "edit it", [Change("node1", "file", "edit", "+new\n-old\n")])
        results: list[bool] = []
        worker = threading.Thread(target=lambda: results.append(bridge.ask(ConfirmPlanScreen(plan), False)))
        worker.start()
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: results == [True])
        worker = threading.Thread(target=lambda: results.append(bridge.ask(ConfirmPlanScreen(plan), False)))
        worker.start()
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmPlanScreen))
        cancel.set()  # the run was cancelled: the question goes away with the safe answer
        await wait_for(pilot, lambda: results == [True, False] and not isinstance(app.screen, ConfirmPlanScreen))
        # From the event loop's own thread it never waits (that would freeze the UI).
        assert bridge.ask(ConfirmPlanScreen(plan), False) is False


async def test_a_changed_host_key_can_only_be_refused() -> None:
    app = Bare()
    error = HostKeyError("changed!", "remove the old entry", host="node1", port=22, key_type="ssh-ed25519",
                         fingerprint="SHA256:abc", changed=True)
    async with app.run_test(size=(80, 24)) as pilot:
        answers: list[bool] = []
        app.push_screen(HostKeyScreen(error), answers.append)
        await pilot.pause()
        assert "CHANGED" in str(app.screen.query_one("#dialog-title").render())
        assert not app.screen.query("#accept")
        await pilot.press("a")
        assert answers == [False]
