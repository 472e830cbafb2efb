"""The lab's real Apache httpd: self-contained, on a loopback port, a child of the lab.

A main file of its own (``apache2 -f MAIN.conf -DFOREGROUND``) with ServerRoot, PidFile, ErrorLog and ``Listen 127.0.0.1:<port>``,
only the MPM (and what this build does not compile in) loaded, and
``IncludeOptional <root>/apache/sites/*.conf``, the folder where the wizard writes its
vhost with the LoadModule lines it needs. The wizard reaches it as any Apache started
that way: ``configtest_command`` and ``reload_command`` carry ``-f MAIN.conf``, which
selects the "self-contained" layout of ``wizard.balancers.apache.facts``.

How it is started, reaped and stopped (a session of its own, the parent-death signal,
``stop()`` ending everything it forked, including a server a ``-k graceful`` started after
a crash) is ``wizard.lab.child_server``'s, shared with the lab's nginx and HAProxy.
"""

from __future__ import annotations

import pwd
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from wizard.errors import WizardError
from wizard.lab.child_server import (
    LOGS_DIR,
    RUN_DIR,
    ChildServer,
    find_program,
    worker_user,
)
from wizard.lab.node import THREAD_PREFIX
from wizard.lab.processes import free_port, port_answers

_PROGRAMS = ("apache2", "httpd")
_MODULE_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules",
                "/usr/local/apache2/modules")
#: Users the workers may run as when Apache is started by root (Debian, RHEL, BSD-ish, any).
_WORKER_USERS = ("www-data", "apache", "daemon", "nobody")
INSTALL_HINT = ("Install Apache httpd 2.4: `sudo apt-get install apache2-bin` (Debian, Ubuntu: the program "
                "and its modules, no system service) or "
                "`sudo dnf install httpd` (RHEL, Fedora, Rocky); then start the lab again. "
                "Or try the ALB lab, which needs no Apache: `confluence-lb-wizard lab --balancer alb`.")
#: The self-contained layout below an Apache root (the lab's, and the tests' servers').
MAIN_CONF = "main.conf"
SITES_DIR = "sites"
PID_FILE = f"{RUN_DIR}/httpd.pid"
ERROR_LOG = f"{LOGS_DIR}/error.log"


def find_apache() -> str:
    """The Apache httpd server binary; WizardError saying how to install it when there is none."""
    return find_program(_PROGRAMS, "The Apache lab runs a real Apache httpd on this machine, and none is "
                        "installed (no apache2 or httpd found).", INSTALL_HINT)


class LabApache(ChildServer):
    """One self-contained Apache under ``root`` (``<lab>/apache``), listening on 127.0.0.1:``port``."""

    program = "apache"

    def __init__(self, root: Path, *, binary: str | None = None, port: int | None = None,
                 thread_prefix: str = THREAD_PREFIX) -> None:
        super().__init__(root, binary=binary or find_apache(), thread_prefix=thread_prefix)
        self.port = port or free_port()

    # Paths and commands (the answers use these).

    @property
    def main_conf(self) -> Path:
        return self.root / MAIN_CONF

    @property
    def main_file(self) -> Path:
        return self.main_conf

    @property
    def sites_dir(self) -> Path:
        return self.root / SITES_DIR

    @property
    def config_path(self) -> Path:
        """Where the wizard writes its vhost (a folder MAIN.conf includes)."""
        return self.sites_dir / "confluence-lb.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / PID_FILE

    @property
    def error_log(self) -> Path:
        return self.root / ERROR_LOG

    @property
    def configtest_command(self) -> str:
        return f"{shlex.quote(self.binary)} -t -f {shlex.quote(str(self.main_conf))}"

    @property
    def reload_command(self) -> str:
        return f"{shlex.quote(self.binary)} -f {shlex.quote(str(self.main_conf))} -k graceful"

    # Starting.

    def write_main(self) -> Path:
        """The self-contained main file; the tree is made readable for the workers' user."""
        return write_main_conf(self.root, binary=self.binary, ports=[self.port], comment=[
            "The lab's own Apache httpd, started by `confluence-lb-wizard lab` and stopped with it.",
            "Self-contained: it reads only this file and the *.conf files of sites/, where the",
            "wizard's balancer step writes its virtual host."])

    def start_argv(self) -> list[str]:
        return [self.binary, "-f", str(self.main_conf), "-DFOREGROUND"]

    def ready(self) -> bool:
        return port_answers(self.port)

    def choose_new_ports(self) -> None:
        self.port = free_port()

    def reload(self, timeout: float = 10.0) -> None:
        """A graceful reload, as the wizard does it, returning once Apache has read the new configuration."""
        before = _count_in(self.error_log, "resuming normal operations")
        done = subprocess.run(shlex.split(self.reload_command), capture_output=True, text=True, timeout=60,
                              check=False)
        if done.returncode != 0:
            raise WizardError(f"`{self.reload_command}` failed: {(done.stderr or done.stdout).strip()}",
                              f"See {self.error_log}.")
        deadline = time.monotonic() + timeout
        while _count_in(self.error_log, "resuming normal operations") <= before:
            if time.monotonic() > deadline:
                raise WizardError(f"The lab's Apache did not finish its reload within {timeout:.0f} s.",
                                  f"See {self.error_log}.")
            time.sleep(0.05)
        # The old generation's workers finish the requests they hold; new connections
        # go to the new one from here.
        time.sleep(0.2)


def write_main_conf(root: Path, *, binary: str, ports: Sequence[int], extra: Sequence[str] = (),
                    comment: Sequence[str] = ()) -> Path:
    """Write ``<root>/main.conf``, the main file of a self-contained Apache (``binary -f main.conf``), and return it.

    One writer for the lab's Apache and the tests' servers, so both run Apache the same
    way: ServerRoot, PidFile, ErrorLog under ``root``, ``Listen 127.0.0.1:<port>`` for each
    of ``ports``, only the MPM (and what this build does not compile in) loaded, small
    worker limits, an unprivileged ``User`` when started as root, then the ``extra``
    directives and ``IncludeOptional <root>/sites/*.conf``, where the wizard writes its
    vhost. ``comment`` lines head the file. The folders are made and left readable
    (0755) for the workers' user. WizardError when this Apache has no MPM module.
    """
    for folder in (SITES_DIR, RUN_DIR, LOGS_DIR):
        (root / folder).mkdir(parents=True, exist_ok=True)
    modules = _module_dir()
    compiled_in = _compiled_in(binary)
    lines = [f"# {line}" for line in comment]
    lines += [
        f'ServerRoot "{root}"',
        "ServerName localhost",
        f'PidFile "{root / PID_FILE}"',
        f'DefaultRuntimeDir "{root / RUN_DIR}"',
        f'ErrorLog "{root / ERROR_LOG}"',
        "LogLevel warn",
        *(f"Listen 127.0.0.1:{port}" for port in ports),
    ]
    if not any(name in compiled_in for name in ("event.c", "worker.c", "prefork.c")):
        mpm = next((m for m in ("event", "worker", "prefork") if (modules / f"mod_mpm_{m}.so").exists()), None)
        if mpm is None:
            raise WizardError(f"This Apache ({binary}) has no MPM module in {modules}.", INSTALL_HINT)
        lines.append(f'LoadModule mpm_{mpm}_module "{modules / f"mod_mpm_{mpm}.so"}"')
    # Debian compiles unixd in; RHEL builds load it (and authz_core) as modules.
    for module in ("unixd", "authz_core"):
        if f"mod_{module}.c" not in compiled_in and (modules / f"mod_{module}.so").exists():
            lines += [f"<IfModule !{module}_module>",
                      f'    LoadModule {module}_module "{modules / f"mod_{module}.so"}"', "</IfModule>"]
    # Small: a lab serves one admin; a graceful reload must not wait long for old workers.
    lines += ["StartServers 1", "ServerLimit 2", "ThreadsPerChild 25", "MaxRequestWorkers 50",
              "MinSpareThreads 5", "MaxSpareThreads 25", "GracefulShutdownTimeout 3"]
    user = worker_user(_WORKER_USERS)
    if user:
        lines += [f"User {user}", f"Group {_primary_group(user)}"]
    lines += [*extra, f'IncludeOptional "{root / SITES_DIR}/*.conf"']
    main_conf = root / MAIN_CONF
    main_conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for path in (root, *(root / folder for folder in (SITES_DIR, RUN_DIR, LOGS_DIR))):
        path.chmod(0o755)
    return main_conf


def _module_dir() -> Path:
    for folder in _MODULE_DIRS:
        if Path(folder).is_dir():
            return Path(folder)
    raise WizardError(f"Apache's modules folder was not found (looked in {', '.join(_MODULE_DIRS)}).",
                      INSTALL_HINT)


def _compiled_in(binary: str) -> str:
    """What ``binary -l`` lists: the modules built into this Apache (loading one again is an error)."""
    try:
        done = subprocess.run([binary, "-l"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WizardError(f"Could not run {binary} -l: {exc}.", INSTALL_HINT) from exc
    return done.stdout


def _primary_group(user: str) -> str:
    import grp

    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return user


def _count_in(path: Path, needle: str) -> int:
    try:
        return path.read_text(errors="replace").count(needle)
    except OSError:
        return 0
