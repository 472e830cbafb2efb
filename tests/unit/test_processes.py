"""wizard.lab.processes: finding, signalling and ending process trees, on real processes (Linux /proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from wizard.lab.processes import (
    alive,
    descendants,
    end_tree,
    free_port,
    kill_stragglers,
    port_answers,
    read_pid,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")

#: A parent that starts a child ignoring SIGTERM (as a stuck worker or session would), prints its pid, and waits.
PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 60'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(60)\n")


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """(the parent, the pid of its child that ignores SIGTERM); both SIGKILLed at the end whatever the test did."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, start_new_session=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    yield parent, child
    for pid in (child, parent.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    parent.wait(timeout=10)
    parent.stdout.close()


def test_free_port_can_be_bound_and_port_answers_tells_whether_something_listens() -> None:
    port = free_port()
    assert not port_answers(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert port_answers(port)
    assert not port_answers(port)


def test_free_port_never_hands_out_a_port_the_kernel_may_give_a_bind_to_port_zero(monkeypatch) -> None:
    """The kernel gives bind(0) a port of its ephemeral range; a port chosen there and not yet bound by its
    server could go to the next bind(0) (a simulated node), so free_port picks below that range, never the
    same port twice, and never one something listens on."""
    from wizard.lab import processes

    low = processes._ephemeral_low()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(processes._PICK_FROM <= port < low for port in ports)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(processes, "_PICK_FROM", taken)
        monkeypatch.setattr(processes, "_ephemeral_low", lambda: taken + 1001)
        picks = {free_port() for _ in range(20)}
    assert taken not in picks


def test_read_pid(tmp_path) -> None:
    (tmp_path / "good.pid").write_text("1234\n")
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert read_pid(tmp_path / "good.pid") == 1234
    assert read_pid(tmp_path / "bad.pid") is None
    assert read_pid(tmp_path / "missing.pid") is None


def test_descendants_reach_grandchildren(tree) -> None:
    parent, child = tree
    assert child in descendants(parent.pid)
    assert {parent.pid, child} <= set(descendants(os.getpid()))
    assert parent.pid not in descendants(child)


def test_a_zombie_is_not_alive() -> None:
    process = subprocess.Popen(["true"])
    assert alive(os.getpid())
    # Wait for the exit without reaping it: the pid stays, as a zombie.
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    assert os.path.exists(f"/proc/{process.pid}")
    assert not alive(process.pid)
    process.wait()


def test_kill_stragglers_kills_only_what_still_runs(tree) -> None:
    parent, child = tree
    os.kill(parent.pid, signal.SIGTERM)
    parent.wait(timeout=10)
    os.kill(child, signal.SIGTERM)  # ignored
    assert kill_stragglers([parent.pid, child], grace=0.3) == [child]
    assert not alive(child)


def test_end_tree_ends_the_parent_and_a_child_that_ignores_sigterm(tree) -> None:
    parent, child = tree
    end_tree([parent.pid], process=parent, grace=0.5)
    assert parent.returncode == -signal.SIGTERM  # the SIGTERM, not the SIGKILL: the parent was asked first
    assert not alive(child)
