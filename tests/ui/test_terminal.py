"""The installed command in a real terminal (tmux): `confluence-lb-wizard lab`, walk a step, quit."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "confluence-lb-wizard"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=False)


def pane(socket: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-t", "wizard").stdout


def wait_for_pane(socket: str, *texts: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = pane(socket)
        if all(text in shown for text in texts):
            return shown
        assert time.monotonic() < deadline, f"never saw {texts!r}; the pane shows:\n{shown}"
        time.sleep(0.1)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that mention ``text`` (the lab's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and "tmux" not in cmdline:
            found.append(cmdline)
    return found


def test_the_lab_in_a_real_terminal_walks_a_step_and_quits(tmp_path: Path) -> None:
    assert BIN.exists(), f"the installed command is missing: {BIN}"
    socket = f"clbw-{uuid.uuid4().hex[:8]}"
    state_home = tmp_path / "xdg"
    command = (f"env XDG_STATE_HOME={shlex.quote(str(state_home))} TERM=xterm-256color "
               f"{shlex.quote(str(BIN))} lab")
    try:
        started = tmux(socket, "new-session", "-d", "-s", "wizard", "-x", "100", "-y", "30", command)
        assert started.returncode == 0, started.stderr
        wait_for_pane(socket, "Preflight", "Connector", "Run")  # the checklist and the footer
        tmux(socket, "send-keys", "-t", "wizard", "Enter")  # run the first step: preflight
        wait_for_pane(socket, "verified")
        tmux(socket, "send-keys", "-t", "wizard", "q")
        deadline = time.monotonic() + 20
        while tmux(socket, "has-session", "-t", "wizard").returncode == 0:
            assert time.monotonic() < deadline, f"the wizard did not quit:\n{pane(socket)}"
            time.sleep(0.1)
        leftovers = processes_mentioning(str(state_home))
        assert leftovers == [], leftovers  # no lab process (Apache, nodes) is left behind
    finally:
        tmux(socket, "kill-server")
    assert not any(os.scandir(state_home / "confluence-lb-wizard" / "lab"))  # the lab's folder is gone too
