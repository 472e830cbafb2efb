"""Helpers for the UI tests (imported by name: pytest puts tests/ui on sys.path)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from textual.css.query import NoMatches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds and the screen in front is built (a screen just
    pushed has no widgets yet on a loaded machine); fails the test after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (_holds(pilot.app, condition) and pilot.app.screen.is_mounted):
        assert loop.time() < deadline, f"condition not met in time; the screen shows:\n{screen_text(pilot.app)}"
        await pilot.pause(0.05)


def _holds(app: Any, condition: Callable[[], bool]) -> bool:
    """``condition()``, but a widget the condition looks for that is not on the screen in front fails the
    test at once with what that screen shows (an error dialog's message says why the run stopped)."""
    try:
        return condition()
    except NoMatches as exc:
        raise AssertionError(f"{exc}; the screen shows:\n{screen_text(app)}") from exc


def screen_text(app: Any) -> str:
    """What the terminal shows now, as plain text (how an admin reads it)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens,
                                                       simplify=True))
    return console.export_text(styles=False)


def label(app: Any, name: str) -> str:
    """A checklist row's text."""
    return str(app.screen.query_one(f"#label-{name}").render())


def install_node(folder: Path, port: int) -> Path:
    """A node's install folder with the stock Confluence 8 server.xml on ``port``."""
    (folder / "conf").mkdir(parents=True, exist_ok=True)
    (folder / "bin").mkdir(exist_ok=True)
    stock = (FIXTURES / "confluence-8-stock.xml").read_text()
    (folder / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{port}"'))
    return folder


def setup_answers(tmp_path: Path, port: int, apache: Any = None, *, name: str = "ui-test",
                  synchrony_port: int | None = None) -> dict[str, Any]:
    """Answers for one local node (and a local Apache when given)."""
    install = tmp_path / "node1"
    (tmp_path / "apache").mkdir(exist_ok=True)
    answers: dict[str, Any] = {
        "name": name, "public_url": "http://wiki.example.com",
        "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(install), "confluence_port": port,
                   "synchrony_port": synchrony_port or port,  # direct mode asks its heartbeat
                   "restart_command": f"touch {install}/restart-requested", "access": {"transport": "local"}}],
        "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                  "config_path": str(tmp_path / "apache" / "lb.conf")}}}
    if apache is not None:
        answers["balancer"]["apache"].update({
            "config_path": str(apache.config_path), "listen_port": apache.port, "server_name": "wiki.example.com",
            "configtest_command": apache.configtest_command, "reload_command": apache.reload_command})
    return answers


def make_setup(tmp_path: Path, lab_node_factory: Any, apache: Any = None) -> Path:
    """One local node: a real install folder and a simulated Confluence answering /status (the lab's
    node); with ``apache`` (a self-contained test Apache) the balancer step can plan for real. The
    answers file."""
    node = lab_node_factory("node1", tmp_path / "node1", restart_seconds=0.2)
    install_node(tmp_path / "node1", node.confluence_port)
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(setup_answers(tmp_path, node.confluence_port, apache,
                                                 synchrony_port=node.synchrony_port)))
    return path


def text_of(widget: Any, width: int = 200) -> str:
    """All a Static holds as plain text (scrolled out of view or not)."""
    content = widget.content
    if isinstance(content, str):
        return content
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text(styles=False)


async def choose_on_welcome(pilot: Any, app: Any, key: str) -> None:
    """Pick a welcome option once the saved setups have been looked for (in a worker)."""
    await wait_for(pilot, lambda: getattr(app.screen, "ready", False))
    start = app.screen.query_one("#start")
    start.highlighted = start.get_option_index(key)
    await pilot.press("enter")
