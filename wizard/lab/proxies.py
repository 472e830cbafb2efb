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

How each is started, reaped and stopped is ``wizard.lab.child_server``'s, shared with the
lab's Apache. The tests' servers are the same classes.
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
import time
from abc import abstractmethod
from pathlib import Path

from wizard.errors import WizardError
from wizard.lab import child_server
from wizard.lab.child_server import LOGS_DIR, RUN_DIR, ChildServer, worker_user
from wizard.lab.node import THREAD_PREFIX
from wizard.lab.processes import free_port, port_answers, read_pid

SITES_DIR = "sites"
#: Users the workers may run as when the server is started by root.
_WORKER_USERS = ("www-data", "nginx", "nobody")


def find_program(name: str, hint: str) -> str:
    """The server binary ``name``; WizardError saying how to install it when there is none."""
    return child_server.find_program((name,), f"The {name} lab runs a real {name} on this machine, and none is "
                                     "installed.", hint)


class LabProxy(ChildServer):
    """One self-contained server under ``root`` serving 127.0.0.1:``port`` once the wizard's file is there."""

    #: The program's name, its config file's suffix and how to install it.
    program = ""
    suffix = ""
    install_hint = ""
    #: The main file's name under ``root``.
    main_name = ""

    def __init__(self, root: Path, *, binary: str | None = None, port: int | None = None,
                 spare_port: int | None = None, thread_prefix: str = THREAD_PREFIX) -> None:
        super().__init__(root, binary=binary or find_program(self.program, self.install_hint),
                         thread_prefix=thread_prefix)
        self.port = port or free_port()
        #: A port the server answers on before the wizard's file exists (HAProxy needs a listener).
        self.spare_port = spare_port or free_port()

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
    def reload_command(self) -> str:
        """The answers' reload_command for this server."""

    @abstractmethod
    def main_text(self) -> str:
        """The server's own main file, which loads the wizard's file."""

    # Starting.

    def write_main(self) -> Path:
        for folder in (SITES_DIR, RUN_DIR, LOGS_DIR, "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.main_file.write_text(self.main_text(), encoding="utf-8")
        for path in (self.root, *(self.root / f for f in (SITES_DIR, RUN_DIR, LOGS_DIR, "tmp"))):
            path.chmod(0o755)
        return self.main_file

    def ready(self) -> bool:
        return port_answers(self.spare_port) and read_pid(self.pid_file) is not None

    def choose_new_ports(self) -> None:
        self.port, self.spare_port = free_port(), free_port()

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
        user = worker_user(_WORKER_USERS)
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
