"""The lab's real nginx and HAProxy: self-contained, on loopback, children of the lab.

Each runs from a main file of its own under ``root`` (nginx: ``nginx -c main.conf -p ROOT``,
HAProxy: ``haproxy -W -f main.cfg -f sites/``) in the foreground, with its pid file,
logs and sockets under ``root``, and reads the wizard's file from ``root/sites``: the
wizard reaches it as any server started that way, through ``configtest_command`` and
``reload_command`` carrying the main file. nginx's main file includes ``sites/*.conf``
inside ``http {}``; HAProxy loads the folder ``sites/`` (its ``*.cfg``) and, because
HAProxy refuses to start with no listener at all, its main file keeps one small frontend
on a port of its own (``spare_port``) that answers 200. HAProxy's runtime API is a
socket in ``root/run`` (``admin_socket``), at level admin.

Like the lab's Apache (``wizard.lab.apache``), the server runs in a session of its own and
gets SIGTERM when the thread that started it ends (``setpriv --pdeathsig``), and ``stop()``
ends it and everything it forked. The tests' servers are the same classes.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

from wizard.errors import WizardError
from wizard.lab.node import THREAD_PREFIX
from wizard.lab.processes import end_tree, free_port, port_answers, read_pid

_SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/sbin:/usr/local/nginx/sbin"
START_SECONDS = 15.0
SITES_DIR = "sites"
RUN_DIR = "run"
LOGS_DIR = "logs"


def find_program(name: str, hint: str) -> str:
    """The server binary ``name``; WizardError saying how to install it when there is none."""
    found = shutil.which(name, path=os.pathsep.join(filter(None, (os.environ.get("PATH", ""), _SEARCH_PATH))))
    if found:
        return found
    raise WizardError(f"The {name} lab runs a real {name} on this machine, and none is installed.", hint)


def _parent_death_prefix() -> list[str]:
    setpriv = shutil.which("setpriv", path=os.pathsep.join(filter(None, (os.environ.get("PATH", ""), _SEARCH_PATH))))
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _worker_user() -> str | None:
    """As root, the workers run as an unprivileged user (the first of these that exists)."""
    if os.geteuid() != 0:
        return None
    for user in ("www-data", "nginx", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) + "\n"
    except OSError:
        return ""


class LabProxy(ABC):
    """One self-contained server under ``root`` serving 127.0.0.1:``port`` once the wizard's file is there."""

    #: The program's name, its config file's suffix and how to install it.
    program = ""
    suffix = ""
    install_hint = ""
    #: The main file's name under ``root``.
    main_name = ""

    def __init__(self, root: Path, *, binary: str | None = None, port: int | None = None,
                 spare_port: int | None = None, thread_prefix: str = THREAD_PREFIX) -> None:
        self.root = Path(root)
        self.binary = binary or find_program(self.program, self.install_hint)
        self.port = port or free_port()
        #: A port the server answers on before the wizard's file exists (HAProxy needs a listener).
        self.spare_port = spare_port or free_port()
        self.thread_prefix = thread_prefix
        self.process: subprocess.Popen[bytes] | None = None
        self._reaper: threading.Thread | None = None

    # Paths and commands.

    @property
    def sites_dir(self) -> Path:
        return self.root / SITES_DIR

    @property
    def config_path(self) -> Path:
        return self.sites_dir / f"confluence-lb{self.suffix}"

    @property
    def pid_file(self) -> Path:
        return self.root / RUN_DIR / f"{self.program}.pid"

    @property
    def error_log(self) -> Path:
        return self.root / LOGS_DIR / "error.log"

    @property
    def main_file(self) -> Path:
        return self.root / self.main_name

    @property
    @abstractmethod
    def configtest_command(self) -> str:
        """The answers' configtest_command for this server (it names the lab's main file)."""

    @property
    @abstractmethod
    def reload_command(self) -> str:
        """The answers' reload_command for this server."""

    @abstractmethod
    def start_argv(self) -> list[str]:
        """How the lab starts the server in the foreground."""

    @abstractmethod
    def main_text(self) -> str:
        """The server's own main file, which loads the wizard's file."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # Life cycle.

    def write_main(self) -> Path:
        for folder in (SITES_DIR, RUN_DIR, LOGS_DIR, "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.main_file.write_text(self.main_text(), encoding="utf-8")
        for path in (self.root, *(self.root / f for f in (SITES_DIR, RUN_DIR, LOGS_DIR, "tmp"))):
            path.chmod(0o755)
        return self.main_file

    def start(self) -> LabProxy:
        """Start the server and return once its spare port answers; WizardError with its words otherwise."""
        for attempt in range(3):
            self.write_main()
            problem = self._start_once()
            if problem is None:
                return self
            if "in use" not in problem or attempt == 2:
                raise WizardError(f"The lab's {self.program} did not start:\n{problem}",
                                  f"Its configuration is {self.main_file} and its log {self.error_log}. Try `"
                                  + self.configtest_command + f"` to see what {self.program} says.")
            self.port, self.spare_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self) -> str | None:
        log = self.root / LOGS_DIR / "foreground.log"
        started = threading.Event()
        failed: list[OSError] = []

        def keep() -> None:
            # Started and reaped by this thread (see wizard.lab.apache: the parent-death signal
            # follows the thread that started the process).
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
            return f"{self.binary} could not be run: {failed[0] if failed else 'unknown error'}"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = _tail(log) + _tail(self.error_log)
                self._join()
                return said.strip() or f"{self.program} exited with status {self.process.returncode}"
            if port_answers(self.spare_port) and read_pid(self.pid_file) is not None:
                return None
            time.sleep(0.05)
        self.stop()
        return f"it did not answer on 127.0.0.1:{self.spare_port} within {START_SECONDS:.0f} s. " + _tail(self.error_log)

    def _join(self) -> None:
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        self._reaper = None

    def reload(self, timeout: float = 10.0) -> None:
        """Reload as the wizard does (its reload command), returning once new processes serve."""
        from wizard.balancers.served import serving_processes
        from wizard.transport.hosts import LocalHost

        host = LocalHost()
        before = serving_processes(host, str(self.pid_file))
        done = subprocess.run(self.reload_command, shell=True, capture_output=True, text=True, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise WizardError(f"`{self.reload_command}` failed: {(done.stderr or done.stdout).strip()}",
                              f"See {self.error_log}.")
        deadline = time.monotonic() + timeout
        while not serving_processes(host, str(self.pid_file)) - before:
            if time.monotonic() > deadline:
                raise WizardError(f"The lab's {self.program} did not finish its reload within {timeout:.0f} s.",
                                  f"See {self.error_log}.")
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server and every process it forked; wait until they are gone. Idempotent."""
        pids = set()
        if self.process is not None:
            pids.add(self.process.pid)
        daemon = read_pid(self.pid_file)
        if daemon is not None:
            pids.add(daemon)
        if pids:
            end_tree(pids, process=self.process)
        self._join()
        self.process = None


class LabNginx(LabProxy):
    """A self-contained nginx: ``nginx -c main.conf -p ROOT -e logs/error.log``, foreground."""

    program = "nginx"
    suffix = ".conf"
    main_name = "main.conf"
    install_hint = ("Install nginx: `sudo apt-get install nginx` (Debian, Ubuntu) or `sudo dnf install nginx`; "
                    "then start the lab again.")

    def _options(self) -> str:
        return (f"-c {shlex.quote(str(self.main_file))} -p {shlex.quote(str(self.root) + '/')} "
                f"-e {shlex.quote(str(self.error_log))}")

    @property
    def configtest_command(self) -> str:
        return f"{shlex.quote(self.binary)} {self._options()} -t"

    @property
    def reload_command(self) -> str:
        return f"{shlex.quote(self.binary)} {self._options()} -s reload"

    def start_argv(self) -> list[str]:
        return [self.binary, "-c", str(self.main_file), "-p", str(self.root) + "/", "-e", str(self.error_log)]

    def main_text(self) -> str:
        root = self.root
        user = _worker_user()
        tmp = root / "tmp"
        if user and tmp.exists():
            # The workers write request bodies and buffered answers there.
            os.chown(tmp, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        lines = [
            "# The lab's own nginx, started by confluence-lb-wizard and stopped with it. Self-contained:",
            "# it reads only this file and the *.conf files of sites/ (inside http {}), where the",
            "# wizard's balancer step writes its configuration.",
            "daemon off;",
            "worker_processes 1;",
            f"pid {root / RUN_DIR / 'nginx.pid'};",
            f"error_log {self.error_log} warn;",
            *( [f"user {user};"] if user else []),
            "events {",
            "    worker_connections 512;",
            "}",
            "http {",
            "    access_log off;",
            *(f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
            "    # Answers before the wizard's file exists (the lab checks nginx is up here).",
            "    server {",
            f"        listen 127.0.0.1:{self.spare_port};",
            "        return 200 \"lab\\n\";",
            "    }",
            f"    include {self.sites_dir}/*.conf;",
            "}",
        ]
        return "\n".join(lines) + "\n"


class LabHaproxy(LabProxy):
    """A self-contained HAProxy in master-worker mode: ``haproxy -W -f main.cfg -f sites/`` (its pidfile in main.cfg)."""

    program = "haproxy"
    suffix = ".cfg"
    main_name = "main.cfg"
    install_hint = ("Install HAProxy: `sudo apt-get install haproxy` (Debian, Ubuntu) or `sudo dnf install haproxy`; "
                    "then start the lab again.")

    @property
    def error_log(self) -> Path:
        return self.root / LOGS_DIR / "foreground.log"  # HAProxy logs its own life to its output

    @property
    def admin_socket(self) -> Path:
        return self.root / RUN_DIR / "admin.sock"

    def _files(self) -> str:
        return f"-f {shlex.quote(str(self.main_file))} -f {shlex.quote(str(self.sites_dir))}"

    @property
    def configtest_command(self) -> str:
        return f"{shlex.quote(self.binary)} -c {self._files()}"

    @property
    def reload_command(self) -> str:
        # Master-worker mode: SIGUSR2 makes the master read its files again and start new workers.
        return f"kill -USR2 $(cat {shlex.quote(str(self.pid_file))})"

    def start_argv(self) -> list[str]:
        return [self.binary, "-W", "-f", str(self.main_file), "-f", str(self.sites_dir)]

    def main_text(self) -> str:
        lines = [
            "# The lab's own HAProxy, started by confluence-lb-wizard and stopped with it. Self-contained:",
            "# it reads only this file and the *.cfg files of sites/, where the wizard's balancer step",
            "# writes its configuration.",
            "global",
            f"    pidfile {self.pid_file}",
            f"    stats socket {self.admin_socket} mode 600 level admin",
            "    hard-stop-after 10s",
            "",
            "defaults",
            "    mode http",
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "",
            "# HAProxy refuses to start with no listener at all: this one answers before the wizard's file exists.",
            "frontend lab-spare",
            f"    bind 127.0.0.1:{self.spare_port}",
            "    http-request return status 200 content-type text/plain string lab",
        ]
        return "\n".join(lines) + "\n"
