"""Real Apache httpd 2.4 servers on 127.0.0.1 for the balancer tests, self-contained.

``ApacheServer.create()`` makes a server root in /tmp (0755: as root the workers run as
www-data) with a MAIN.conf of its own (TESTBED.md: ``apache2 -f MAIN.conf -DFOREGROUND``;
Debian compiles in unixd and log_config). MAIN.conf listens on two free ports of
127.0.0.1 (``port`` for the vhost, ``extra_port`` for the HTTP->HTTPS redirect), loads
only the MPM, and includes ``<root>/sites/*.conf``, where the wizard writes its vhost
(``config_path``) with the LoadModule lines it needs. The wizard reaches it as an admin's
own build: ``configtest_command``/``reload_command`` carry ``-f MAIN.conf``.

``start()`` returns once the port answers; ``stop()`` ends the server and every process
it forked (also one a ``-k graceful`` started after a crash), then removes the root.
When apache2 is missing it is installed with apt as root; otherwise the test fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

APACHE2 = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
IS_ROOT = os.geteuid() == 0


def ensure_apache() -> str:
    """The apache2 binary, installing the Debian package when it is missing and we may."""
    if os.path.exists(APACHE2):
        return APACHE2
    if not (IS_ROOT and shutil.which("apt-get")):
        pytest.fail("apache2 is not installed and cannot be installed here (not root, or no apt-get): "
                    "install it (apt-get install -y apache2) and run the tests again.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "apache2"]):
        subprocess.run(command, check=False, env=env, capture_output=True, timeout=600)
    if not os.path.exists(APACHE2):
        pytest.fail(f"{APACHE2} is still missing after apt-get install apache2.")
    return APACHE2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class ApacheServer:
    """One self-contained Apache: its root, its two ports and (once started) its process."""

    root: Path
    port: int
    extra_port: int
    process: subprocess.Popen | None = None
    pids_seen: set[int] = field(default_factory=set)

    @classmethod
    def create(cls, *, extra_main: str = "") -> ApacheServer:
        ensure_apache()
        root = Path(tempfile.mkdtemp(prefix="clbw-apache-"))
        root.chmod(0o755)
        for folder in ("sites", "run", "logs", "tls"):
            (root / folder).mkdir(mode=0o755)
        server = cls(root=root, port=free_port(), extra_port=free_port())
        user = ""
        if IS_ROOT:
            try:
                pwd.getpwnam("www-data")
                user = "User www-data\nGroup www-data\n"
            except KeyError:
                pass
        server.main_conf.write_text(
            f'ServerRoot "{root}"\n'
            "ServerName localhost\n"
            f'PidFile "{root}/run/httpd.pid"\n'
            f'DefaultRuntimeDir "{root}/run"\n'
            f"Mutex file:{root}/run default\n"
            f'ErrorLog "{root}/logs/error.log"\n'
            "LogLevel warn\n"
            f"Listen 127.0.0.1:{server.port}\n"
            f"Listen 127.0.0.1:{server.extra_port}\n"
            f"LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n"
            "StartServers 1\nServerLimit 2\nThreadsPerChild 25\nMaxRequestWorkers 50\nMinSpareThreads 5\nMaxSpareThreads 25\n"
            "GracefulShutdownTimeout 3\n"
            f"{user}"
            f"{extra_main}\n"
            f'IncludeOptional "{root}/sites/*.conf"\n')
        return server

    # Paths and commands.

    @property
    def main_conf(self) -> Path:
        return self.root / "main.conf"

    @property
    def sites(self) -> Path:
        return self.root / "sites"

    @property
    def config_path(self) -> Path:
        return self.sites / "confluence-lb.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "httpd.pid"

    @property
    def configtest_command(self) -> str:
        return f"{APACHE2} -t -f {self.main_conf}"

    @property
    def reload_command(self) -> str:
        return f"{APACHE2} -f {self.main_conf} -k graceful"

    def error_log(self) -> str:
        try:
            return (self.root / "logs" / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def configtest(self) -> subprocess.CompletedProcess:
        return subprocess.run([APACHE2, "-t", "-f", str(self.main_conf)], capture_output=True, text=True,
                              check=False)

    def self_signed(self, name: str = "wiki.example.com") -> tuple[Path, Path]:
        """A self-signed certificate and its key for ``name``, in the server root."""
        cert, key = self.root / "tls" / f"{name}.crt", self.root / "tls" / f"{name}.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert, key

    # Life cycle.

    def start(self, within: float = 15.0) -> ApacheServer:
        with open(self.root / "logs" / "foreground.log", "ab") as log:
            self.process = subprocess.Popen([APACHE2, "-f", str(self.main_conf), "-DFOREGROUND"],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pids_seen.add(self.process.pid)
        # Reap it as soon as it exits, as init or systemd would: a dead server left as a zombie
        # still "exists" for kill -0 and for apache2 -k graceful.
        threading.Thread(target=self.process.wait, name=f"apache-reaper-{self.port}", daemon=True).start()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"apache2 exited with {self.process.returncode}:\n{self.error_log()}\n"
                            f"{(self.root / 'logs' / 'foreground.log').read_text(errors='replace')}")
            if self.answers():
                return self
            time.sleep(0.05)
        pytest.fail(f"apache2 did not answer on 127.0.0.1:{self.port} within {within} s:\n{self.error_log()}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def stop(self) -> None:
        """Stop the server and everything it forked; idempotent."""
        pids = set(self.pids_seen)
        if (daemon := self.running_pid()) is not None:
            pids.add(daemon)  # a server a `-k graceful` started after a crash
        doomed = {child for pid in pids for child in _descendants(pid)} | pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in doomed):
            time.sleep(0.05)
        for pid in doomed:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
