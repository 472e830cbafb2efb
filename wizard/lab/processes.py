"""Local processes and ports: what the lab (and the tests' servers) need to start and stop daemons cleanly.

A daemon such as Apache or sshd forks workers and sessions, and some of them call
``setsid()``, so neither the ``Popen`` handle nor the process group reaches all of them.
What is left behind holds ports and files of the next run, so stopping one means: find
every process below it (by parentage, from ``/proc``), signal it, wait, and SIGKILL what
is still running. Stdlib only; without ``/proc`` (not Linux) the tree is just the
processes named.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

#: How often the waits below look again.
POLL_SECONDS = 0.05
#: How long a SIGKILLed process may take to be gone (it is not waited for longer).
KILL_SECONDS = 5.0


#: Where ``free_port`` looks first: below the kernel's ephemeral range (see ``_ephemeral_low``).
_PICK_FROM = 10000
#: The ports this process has handed out: never handed out twice (a server may not have bound it yet).
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    """The first port of the range the kernel picks from for bind(0) and outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now, for a server that binds it itself a moment later.

    Chosen at random below the kernel's ephemeral range, never twice in this process: a port the
    kernel gave a bind(0) would be free again as soon as the probe closes, and the next server that
    binds port 0 (a simulated node, a test's listener) could be given it before the server it was
    chosen for binds it. Another program may still take it in between; callers that start a server
    on it retry on "Address already in use".
    """
    low = _ephemeral_low()
    if low - _PICK_FROM >= 1000:
        for _ in range(200):
            port = random.randrange(_PICK_FROM, low)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    _handed_out.add(port)
    return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now (as the lab's servers bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The lab's own servers set SO_REUSEADDR, so a port in TIME_WAIT after the last run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a started server is up)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    """The pid a daemon wrote to its pid file; None when the file is missing or garbled."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces ("" when it is gone or there is no /proc).

    A pid file can outlive its daemon and the pid be reused: the command line tells whose it is now.
    """
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first (from /proc; empty where there is no /proc).

    Found by parentage, not by process group or session, because sshd's sessions and
    Apache's detached servers leave both.
    """
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(errors="replace")
            # The command name (in parentheses) may hold spaces and ")"; the fields after the last ")" do not.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie does not count: it holds no port or file, only waits to be reaped."""
    if Path("/proc").is_dir():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
            return stat.rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def signal_pids(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids``; one already gone (or not ours to signal) is skipped, not an error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def signal_group_or_process(pid: int, sig: int) -> None:
    """``sig`` to the process group ``pid`` leads (a daemon and its workers), or to ``pid`` alone when it leads none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        signal_pids([pid], sig)


def wait_gone(pids: Iterable[int], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until none of ``pids`` runs; whether they are all gone."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def kill_stragglers(pids: Iterable[int], *, grace: float) -> list[int]:
    """Give ``pids`` up to ``grace`` seconds to exit (they were asked to), then SIGKILL the ones still running.

    Returns once the killed ones are gone too (a SIGKILL takes effect a moment later, and
    until then the process still holds its ports), with the pids that had to be killed, so
    a caller can tell a clean stop from a forced one.
    """
    pids = list(pids)
    wait_gone(pids, grace)
    killed = [pid for pid in pids if alive(pid)]
    signal_pids(killed, signal.SIGKILL)
    wait_gone(killed, KILL_SECONDS)
    return killed


def end_tree(leaders: Iterable[int], *, process: subprocess.Popen[bytes] | None = None,
             grace: float = 10.0) -> None:
    """Stop ``leaders`` and every process below them, and return once all are gone.

    Each leader gets SIGTERM (its process group when it leads one), so a daemon such as
    Apache shuts its workers down itself; ``process`` (the ``Popen`` among the leaders, if
    any) is waited for, and SIGKILLed after ``grace`` seconds. Whatever of the tree, as it
    was before the signal, still runs ``grace`` seconds later is SIGKILLed.
    """
    leaders = set(leaders)
    tree = leaders | {child for pid in leaders for child in descendants(pid)}
    for pid in leaders:
        signal_group_or_process(pid, signal.SIGTERM)
    if process is not None:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group_or_process(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)
    kill_stragglers(tree, grace=grace)
