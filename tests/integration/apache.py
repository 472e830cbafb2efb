"""Real Apache httpd 2.4 servers on 127.0.0.1 for the balancer tests, self-contained.

``ApacheServer.create()`` makes a server root in /tmp (0755: as root the workers run as
www-data) with a MAIN.conf of its own (``apache2 -f MAIN.conf -DFOREGROUND``),
written by the lab's writer (``wizard.lab.apache.write_main_conf``). MAIN.conf listens on
two free ports of 127.0.0.1 (``port`` for the vhost, ``extra_port`` for the HTTP->HTTPS
redirect), loads only the MPM, and includes ``<root>/sites/*.conf``, where the wizard
writes its vhost (``config_path``) with the LoadModule lines it needs. The wizard reaches
it as an admin's own build: ``configtest_command``/``reload_command`` carry ``-f MAIN.conf``.

``start()`` returns once the port answers; ``stop()`` ends the server and every process
it forked (also one a ``-k graceful`` started after a crash), then removes the root.
When apache2 is missing it is installed with apt as root; otherwise the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wizard.lab.apache import (
    ERROR_LOG,
    MAIN_CONF,
    PID_FILE,
    RUN_DIR,
    SITES_DIR,
    write_main_conf,
)
from wizard.lab.processes import alive, end_tree, free_port, port_answers, read_pid

APACHE2 = "/usr/sbin/apache2"
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
        """A server root in /tmp with the lab's main file (wizard.lab.apache), listening on two free
        ports; ``extra_main`` is added to the main file before the sites are included."""
        ensure_apache()
        root = Path(tempfile.mkdtemp(prefix="clbw-apache-"))
        (root / "tls").mkdir(mode=0o755)
        server = cls(root=root, port=free_port(), extra_port=free_port())
        write_main_conf(root, binary=APACHE2, ports=[server.port, server.extra_port],
                        extra=[f"Mutex file:{root / RUN_DIR} default", extra_main])
        return server

    # Paths and commands.

    @property
    def main_conf(self) -> Path:
        return self.root / MAIN_CONF

    @property
    def sites(self) -> Path:
        return self.root / SITES_DIR

    @property
    def config_path(self) -> Path:
        return self.sites / "confluence-lb.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / PID_FILE

    @property
    def configtest_command(self) -> str:
        return f"{APACHE2} -t -f {self.main_conf}"

    @property
    def reload_command(self) -> str:
        return f"{APACHE2} -f {self.main_conf} -k graceful"

    def error_log(self) -> str:
        try:
            return (self.root / ERROR_LOG).read_text(errors="replace")
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
        return port_answers(self.port)

    def running_pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and alive(pid) else None

    def stop(self) -> None:
        """Stop the server and everything it forked; idempotent."""
        pids = set(self.pids_seen)
        if (daemon := self.running_pid()) is not None:
            pids.add(daemon)  # a server a `-k graceful` started after a crash
        end_tree(pids, process=self.process)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
