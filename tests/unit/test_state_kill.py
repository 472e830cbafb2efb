"""A state written by a killed process is never corrupt.

Writer processes save a growing state as fast as they can and are SIGKILLed at
many moments: right after they start, while they load, between saves and in
the middle of them. After every kill the state file loads, is internally
consistent (every part of it written by the same save), and its serial never
goes back: the file is the old state or the new one, never a torn mix.

Starting a fresh interpreter per writer costs more than the whole window a
kill should land in, so one helper interpreter imports ``wizard.engine.state`` once
and forks each writer; the test kills the writer by its pid, and the helper
reaps it and reports how it died.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import wizard.engine.state as state_module
from wizard.engine.state import State, StateStore

REPO = Path(__file__).resolve().parents[2]
KILLS = 150
EARLY_EVERY = 5  # every fifth writer is killed right after it starts
MAX_STEPS = 40  # the writer keeps the newest steps, so a save stays a few milliseconds

FORKER = """
import os, sys
sys.path.insert(0, {repo!r})
from wizard.engine.state import StateStore

MAX_STEPS = {max_steps}


def write_forever(path):
    store = StateStore(path)
    store.acquire("kill-test writer")  # the previous writer was killed: the kernel freed its lock
    state = store.load_or_new("kill-test")
    os.write(1, f"ready {{os.getpid()}}\\n".encode())
    n = int(state.answers.get("next", 0))
    while True:
        record = state.step(f"s{{n:06d}}")
        record.plan = {{"step": f"s{{n:06d}}", "summary": f"{{n:06d}}:" + "x" * (1000 + 37 * (n % 100))}}
        record.set_status("planned", f"step {{n}}")
        if len(state.steps) > MAX_STEPS:
            del state.steps[next(iter(state.steps))]
        n += 1
        state.answers["next"] = n
        state.answers["serial_at_write"] = state.serial + 1
        store.save(state)


for line in sys.stdin:
    if line.strip() != "fork":
        break
    pid = os.fork()
    if pid == 0:
        try:
            write_forever(sys.argv[1])
        finally:
            os._exit(70)
    os.write(1, f"forked {{pid}}\\n".encode())
    _, status = os.waitpid(pid, 0)
    os.write(1, f"reaped {{pid}} {{status}}\\n".encode())
"""


class Forker:
    """The helper interpreter: forks a writer on request and reports when it is reaped."""

    def __init__(self, path: Path) -> None:
        script = textwrap.dedent(FORKER).format(repo=str(REPO), max_steps=MAX_STEPS)
        self.process = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""
        self._lines: list[str] = []

    def fork(self) -> int:
        self.process.stdin.write(b"fork\n")
        self.process.stdin.flush()
        return int(self.expect("forked ").split()[1])

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next line starting with ``prefix`` (other lines are kept for later)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self._lines):
                if line.startswith(prefix):
                    return self._lines.pop(i)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} line from the forker; seen {self._lines}")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    raise AssertionError(f"the forker ended: {self.process.stderr.read().decode()}")
                self._buffer += chunk
                *complete, self._buffer = self._buffer.split(b"\n")
                self._lines += [line.decode() for line in complete]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def check_consistent(state: State) -> None:
    """Everything in one saved state was written by the same save."""
    assert state.answers["serial_at_write"] == state.serial
    n = state.answers["next"]
    names = list(state.steps)
    assert names[-1] == f"s{n - 1:06d}"
    assert len(names) == min(n, MAX_STEPS)
    for name, record in state.steps.items():
        k = int(name[1:])
        assert record.plan == {"step": name, "summary": f"{k:06d}:" + "x" * (1000 + 37 * (k % 100))}
        assert record.status == "planned" and record.summary == f"step {k}"


@pytest.mark.slow
def test_a_state_written_by_a_killed_process_is_never_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "kill.state.json"
    store = StateStore(path)
    rng = random.Random(20240601)
    forker = Forker(path)
    started = time.monotonic()
    previous = 0
    early_kills = mid_run_kills = 0
    try:
        for i in range(KILLS):
            pid = forker.fork()
            if i % EARLY_EVERY == 0:
                early_kills += 1  # before or while it takes the lock and loads
            else:
                forker.expect(f"ready {pid}")
                time.sleep(rng.uniform(0, 0.03))
            os.kill(pid, signal.SIGKILL)
            status = int(forker.expect(f"reaped {pid} ").split()[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                f"writer {pid} ended by itself (status {status}) before it was killed")
            if not path.exists():
                assert previous == 0, "the state file vanished"
                continue
            state = store.load()
            check_consistent(state)
            assert state.serial >= previous, f"serial went back from {previous} to {state.serial}"
            if state.serial > previous and i % EARLY_EVERY:
                mid_run_kills += 1
            previous = state.serial
    finally:
        forker.close()
    elapsed = time.monotonic() - started

    assert early_kills == KILLS // EARLY_EVERY
    # Most writers got saves done before they were killed: the kills landed
    # while saves were going on, not only before the first one.
    assert mid_run_kills >= KILLS // 4, f"only {mid_run_kills} kills came after a save"
    assert previous >= KILLS // 2
    assert elapsed < 60, f"the kill test took {elapsed:.1f}s"  # about 5 s here; a guard against a hang

    # Temp files of saves cut short may remain; they are never read, and the
    # next save clears those older than STALE_TEMP_SECONDS.
    old = time.time() - state_module.STALE_TEMP_SECONDS - 1
    temps = list(tmp_path.glob("*.tmp"))
    print(f"{KILLS} kills, {mid_run_kills} after a save, final serial {previous}, {len(temps)} temp files left")
    # Some kills landed inside a save, between creating its temp file and the rename.
    assert temps, "no kill landed inside a save"
    for temp in temps:
        os.utime(temp, (old, old))
    final = store.load()
    check_consistent(final)
    store.save(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, store.lock_path.name])
    assert store.load().serial == previous + 1
