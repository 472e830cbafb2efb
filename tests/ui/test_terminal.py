"""The installed command in a real terminal (tmux): `confluence-lb-wizard lab`, walk a step, quit."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "confluence-lb-wizard"


@pytest.fixture(scope="module", autouse=True)
def tmux_installed(ssh_helpers) -> None:
    """tmux is the real terminal here; missing, it is installed with apt (or the test fails saying how)."""
    if shutil.which("tmux") is None:
        ssh_helpers.apt_install("tmux")
    assert shutil.which("tmux"), "tmux is still missing after apt-get install tmux"


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


def run_lab_until_quit(socket: str, command: str, walk: list[tuple[str | None, tuple[str, ...]]],
                       size: tuple[int, int]) -> str:
    """Start the lab in a new tmux server of ``size`` (columns, lines), and for each (key, texts):
    press key (None: none), wait for every text; then quit with q and wait for the session to
    end. The last pane seen."""
    tmux(socket, "kill-server")
    started = tmux(socket, "new-session", "-d", "-s", "wizard", "-x", str(size[0]), "-y", str(size[1]), command)
    assert started.returncode == 0, started.stderr
    shown = ""
    for key, texts in walk:
        if key is not None:
            tmux(socket, "send-keys", "-t", "wizard", key)
        shown = wait_for_pane(socket, *texts)
    tmux(socket, "send-keys", "-t", "wizard", "q")
    deadline = time.monotonic() + 20
    while tmux(socket, "has-session", "-t", "wizard").returncode == 0:
        assert time.monotonic() < deadline, f"the wizard did not quit:\n{pane(socket)}"
        time.sleep(0.1)
    return shown


def test_the_lab_in_a_real_terminal_walks_a_step_quits_and_comes_back(tmp_path: Path) -> None:
    """The README's first command: walk a step, quit, run it again, land where you left off."""
    assert BIN.exists(), f"the installed command is missing: {BIN}"
    socket = f"clbw-{uuid.uuid4().hex[:8]}"
    state_home = tmp_path / "xdg"
    command = (f"env XDG_STATE_HOME={shlex.quote(str(state_home))} TERM=xterm-256color "
               f"{shlex.quote(str(BIN))} lab")
    lab_folder = state_home / "confluence-lb-wizard" / "lab" / "apache"
    try:
        run_lab_until_quit(socket, command, [
            (None, ("Preflight", "Connector", "Run")),  # the checklist and the footer
            ("Enter", ("verified",)),  # run the first step: preflight
        ], size=(100, 30))
        leftovers = processes_mentioning(str(state_home))
        assert leftovers == [], leftovers  # no lab process (Apache, nodes) is left behind
        assert (lab_folder / "lab.json").is_file() and (lab_folder / "lab.state.json").is_file()

        # At the smallest size the wizard is made for.
        shown = run_lab_until_quit(socket, command, [
            (None, ("came back as you left it", "verified", "Press enter to run base-url")),
        ], size=(80, 24))
        # Preflight is still done and nothing after it is: the checklist as it was left.
        assert shown.count("│  verified") == 1 and shown.count("│  pending") == 5, shown
        assert processes_mentioning(str(state_home)) == []
    finally:
        tmux(socket, "kill-server")
