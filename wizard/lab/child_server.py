"""A real server program (Apache httpd, nginx, HAProxy) run by the lab as a child of its own.

What the lab's balancers share, whatever the program: found on this machine or a hint on
how to install it; a main file of its own under ``root``; started in the foreground in a
session of its own (so a Ctrl-C meant for the wizard does not reach it half-way) by a
keeper thread that also reaps it; started again on a new port when another program took
the one chosen; and ``stop()`` ending it and everything it forked, waiting until every
process is gone. Should the lab's process die without ``stop()`` (SIGKILL), the kernel's
parent-death signal (``setpriv --pdeathsig``, util-linux) ends the server too.

Each program's module says how it starts, what its main file holds, when it is ready and how
it reloads (``wizard.lab.apache``, ``wizard.lab.proxies``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from wizard.errors import WizardError
from wizard.lab.node import THREAD_PREFIX
from wizard.lab.processes import cmdline, end_tree, read_pid

#: Where distributions keep server programs (sbin is often not on a user's PATH).
SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/sbin:/usr/local/apache2/bin:/usr/local/nginx/sbin"
#: How long a server may take to answer after it starts.
START_SECONDS = 15.0
RUN_DIR = "run"
LOGS_DIR = "logs"


def search_path() -> str:
    return os.pathsep.join(filter(None, (os.environ.get("PATH", ""), SEARCH_PATH)))


def find_program(names: Sequence[str], missing: str, hint: str) -> str:
    """The first of ``names`` installed here; WizardError(``missing``, ``hint``) when none is."""
    for name in names:
        found = shutil.which(name, path=search_path())
        if found:
            return found
    raise WizardError(missing, hint)


def worker_user(candidates: Sequence[str]) -> str | None:
    """As root, a server hands requests to an unprivileged user (the first of ``candidates`` that
    exists); as anyone else it stays that user."""
    if os.geteuid() != 0:
        return None
    for user in candidates:
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    return None


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for a message saying why a server did not start ("" if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) + "\n"
    except OSError:
        return ""


def _parent_death_prefix() -> list[str]:
    """``setpriv --pdeathsig TERM --`` where util-linux has it (Linux): the command it runs gets
    SIGTERM when the thread that started it ends. Elsewhere nothing, and stop() alone ends it."""
    setpriv = shutil.which("setpriv", path=search_path())
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class ChildServer(ABC):
    """One self-contained server program under ``root``, started and stopped by the lab."""

    #: The program's name in messages and thread names.
    program = ""

    def __init__(self, root: Path, *, binary: str, thread_prefix: str = THREAD_PREFIX) -> None:
        self.root = Path(root)
        self.binary = binary
        self.thread_prefix = thread_prefix
        self.process: subprocess.Popen[bytes] | None = None
        self._reaper: threading.Thread | None = None
        #: Every server process this object started (a restart after "in use" starts another).
        self._pids: set[int] = set()

    # What each program says.

    @property
    @abstractmethod
    def main_file(self) -> Path:
        """The server's own main file, which loads the wizard's file."""

    @property
    @abstractmethod
    def pid_file(self) -> Path:
        """Where the server writes its pid."""

    @property
    @abstractmethod
    def error_log(self) -> Path:
        """Where the server says what went wrong."""

    @property
    @abstractmethod
    def configtest_command(self) -> str:
        """The answers' configtest_command for this server (it names the lab's main file)."""

    @abstractmethod
    def write_main(self) -> Path:
        """Write the main file (and the folders it names) for the ports chosen now."""

    @abstractmethod
    def start_argv(self) -> list[str]:
        """How the lab starts the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool:
        """The server answers (its port, and whatever else says it is up)."""

    @abstractmethod
    def choose_new_ports(self) -> None:
        """Another program took a port between choosing it and the server binding it: choose again."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # Life cycle.

    def start(self) -> ChildServer:
        """Start the server and return once it is ready; WizardError with its own words otherwise.

        A port was free when chosen; if something took it since, new ones are tried.
        """
        for attempt in range(3):
            self.write_main()
            problem = self._start_once()
            if problem is None:
                return self
            if "in use" not in problem or attempt == 2:
                raise WizardError(f"The lab's {self.program} did not start:\n{problem}",
                                  f"Its configuration is {self.main_file} and its log {self.error_log}. Try `"
                                  + self.configtest_command + f"` to see what {self.program} says.")
            self.choose_new_ports()
        raise AssertionError("unreachable")

    def _start_once(self) -> str | None:
        log = self.root / LOGS_DIR / "foreground.log"
        started = threading.Event()
        failed: list[OSError] = []

        def keep() -> None:
            # Started and reaped by this thread, which lives exactly as long as the server: the
            # kernel's parent-death signal follows the thread that started a process, so the
            # server is ended even when the lab's process dies without stop() (killed, or a script
            # that forgot). Reaped at once, as init would: a dead server left a zombie still
            # "exists" for `kill -0` and for a reload command.
            try:
                with open(log, "ab") as output:
                    self.process = subprocess.Popen([*_parent_death_prefix(), *self.start_argv()],
                                                    stdin=subprocess.DEVNULL, stdout=output,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                failed.append(exc)
                return
            finally:
                started.set()
            self.process.wait()

        self._reaper = threading.Thread(target=keep, name=f"{self.thread_prefix}-{self.program}-keeper", daemon=True)
        self._reaper.start()
        started.wait()
        if failed or self.process is None:
            self._join()
            return f"{self.binary} could not be run: {failed[0] if failed else 'unknown error'}"
        self._pids.add(self.process.pid)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = tail(log) + tail(self.error_log)
                self._join()
                return said.strip() or f"{self.program} exited with status {self.process.returncode}"
            if self.ready():
                return None
            time.sleep(0.05)
        self.stop()
        return f"it did not answer within {START_SECONDS:.0f} s. " + tail(self.error_log)

    def _join(self) -> None:
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        self._reaper = None

    def stop(self) -> None:
        """Stop the server and every process it forked; wait until they are gone. Idempotent."""
        pids = set(self._pids)
        daemon = read_pid(self.pid_file)
        if daemon is not None and str(self.main_file) in cmdline(daemon):
            # A server a reload started after a crash, outside our session (a reused pid is not).
            pids.add(daemon)
        if pids:
            end_tree(pids, process=self.process)
        self._join()
        self._pids.clear()
        self.process = None
