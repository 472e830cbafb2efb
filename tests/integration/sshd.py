"""Real OpenSSH servers on 127.0.0.1 for the integration tests.

``SshTestbed`` owns a temp folder with a client key, the test users and their
``authorized_keys`` files; ``SshTestbed.start_sshd()`` starts an ``sshd -D`` on a
free port with its own host keys and waits until it accepts connections.
Every server is stopped (with every process it forked) at the end.

Running as root (the project's machines), the login user is ``root`` and two
extra users are created idempotently: ``clbwtest`` (plain, no sudo) and
``clbwsudo`` (passwordless sudo, for the sudo write path). Not as root, the
login user is the current user and the extra users are unavailable (tests that
need them fail loudly instead of skipping).
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wizard.answers_model import Access
from wizard.lab.processes import descendants, free_port, kill_stragglers, signal_pids

SSHD = "/usr/sbin/sshd"
PLAIN_USER = "clbwtest"
SUDO_USER = "clbwsudo"
SUDOERS_DROPIN = "/etc/sudoers.d/clbw-tests"
IS_ROOT = os.geteuid() == 0


def apt_install(package: str) -> None:
    if not (IS_ROOT and (os.environ.get("CI") or shutil.which("apt-get"))):
        pytest.fail(f"{package} is not installed and cannot be installed here (not root, or no "
                    f"apt-get): install it (apt-get install -y {package}) and run the tests again.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                          check=False, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True, timeout=300)
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                              check=False, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"apt-get install {package} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def ensure_sshd() -> str:
    """The sshd binary, installing openssh-server when it is missing and we may."""
    if not os.path.exists(SSHD):
        apt_install("openssh-server")
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} is still missing after installing openssh-server.")
    if IS_ROOT:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return SSHD


def ensure_sudo() -> str:
    found = shutil.which("sudo")
    if found is None:
        apt_install("sudo")
        found = shutil.which("sudo")
    if found is None:
        pytest.fail("sudo is still missing after installing it.")
    return found


def ensure_user(name: str) -> pwd.struct_passwd:
    """A local login user (idempotent). Needs root."""
    if not IS_ROOT:
        pytest.fail(f"the test needs the local user {name!r}, which only root can create; "
                    "run the integration tests as root (as the project's machines do).")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                       capture_output=True)
        entry = pwd.getpwnam(name)
    # A fresh account is locked ("!"), and sshd without PAM refuses locked accounts.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    return entry


def make_key(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """A key pair made with ssh-keygen (paramiko cannot make ed25519 keys)."""
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", path.name, "-f", str(path)]
    if key_type == "rsa":
        argv[4:4] = ["-b", "2048"]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def fingerprint(public_key_path: Path) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key_path)], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


@dataclass
class Sshd:
    """One running sshd."""

    directory: Path
    port: int
    host_keys: dict[str, Path]
    process: subprocess.Popen | None = None
    host: str = "127.0.0.1"

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def known_hosts_lines(self) -> list[str]:
        lines = []
        for key_path in self.host_keys.values():
            key_type, blob = Path(f"{key_path}.pub").read_text().split()[:2]
            lines.append(f"[{self.host}]:{self.port} {key_type} {blob}")
        return lines

    def fingerprint(self, key_type: str = "ed25519") -> str:
        return fingerprint(Path(f"{self.host_keys[key_type]}.pub"))

    def kill_hard(self) -> None:
        """SIGKILL the daemon and every session it forked (a crash, a power cut)."""
        if self.process is None:
            return
        signal_pids([self.process.pid, *descendants(self.process.pid)], signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        # sshd's session processes call setsid(), so they are found by parentage.
        sessions = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        signal_pids(sessions, signal.SIGTERM)
        kill_stragglers(sessions, grace=5)
        self.process = None


@dataclass
class SshTestbed:
    """Keys, users and sshd instances for one test session."""

    directory: Path
    client_key: Path
    login_user: str
    users: list[str] = field(default_factory=list)
    servers: list[Sshd] = field(default_factory=list)
    sudoers_written: bool = False

    @classmethod
    def create(cls) -> SshTestbed:
        ensure_sshd()
        # Not pytest's tmp_path: its folders are 0700 and sshd reads
        # authorized_keys as the logging-in user, who must be able to reach it.
        directory = Path(tempfile.mkdtemp(prefix="clbw-ssh-"))
        directory.chmod(0o755)
        (directory / "authorized_keys").mkdir(mode=0o755)
        client_dir = directory / "client"
        client_dir.mkdir(mode=0o700)
        client_key = make_key(client_dir / "id_ed25519")
        login_user = "root" if IS_ROOT else getpass.getuser()
        bed = cls(directory=directory, client_key=client_key, login_user=login_user)
        bed.authorize(login_user)
        return bed

    make_key = staticmethod(make_key)
    fingerprint = staticmethod(fingerprint)

    def authorize(self, user: str, public_key: Path | None = None) -> None:
        public = Path(f"{public_key or self.client_key}.pub").read_text()
        target = self.directory / "authorized_keys" / user
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(public)
        target.chmod(0o644)
        if user not in self.users:
            self.users.append(user)

    def plain_user(self) -> pwd.struct_passwd:
        """A non-root user without sudo rights, allowed to log in with the client key."""
        entry = ensure_user(PLAIN_USER)
        if PLAIN_USER not in self.users:
            self.authorize(PLAIN_USER)
        return entry

    def sudo_user(self) -> pwd.struct_passwd:
        """A non-root user with passwordless sudo (removed again at the end)."""
        ensure_sudo()
        entry = ensure_user(SUDO_USER)
        if not self.sudoers_written:
            with open(SUDOERS_DROPIN, "w", encoding="utf-8") as handle:
                handle.write(f"{SUDO_USER} ALL=(root) NOPASSWD: ALL\n")
            os.chmod(SUDOERS_DROPIN, 0o440)
            self.sudoers_written = True
        if SUDO_USER not in self.users:
            self.authorize(SUDO_USER)
        return entry

    def start_sshd(self, *, extra_config: str = "") -> Sshd:
        """Start one more sshd with its own host keys; returns once it accepts connections."""
        last_log = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            directory = Path(tempfile.mkdtemp(prefix="sshd-", dir=self.directory))
            directory.chmod(0o755)
            keys = {kind: make_key(directory / f"ssh_host_{kind}_key", kind)
                    for kind in ("ed25519", "rsa")}
            port = free_port()
            config = directory / "sshd_config"
            config.write_text("\n".join([
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                *[f"HostKey {path}" for path in keys.values()],
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.directory / 'authorized_keys'}/%u",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                "PrintMotd no",
                "LogLevel VERBOSE",
                "Subsystem sftp internal-sftp",
                # Debian's bash sources ~/.bashrc for commands sshd starts unless SHLVL says
                # it is nested; root's .bashrc here runs `pyenv init` (0.4 s a command, and a
                # 60 s wait on a stale rehash lock). The wizard behaves the same either way.
                "SetEnv SHLVL=1",
                extra_config,
                "",
            ]))
            server = Sshd(directory=directory, port=port, host_keys=keys)
            with open(server.log_path, "wb") as log:
                server.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                                  stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL)
            if self._wait_listening(server):
                self.servers.append(server)
                return server
            last_log = server.log()
            server.stop()
        pytest.fail(f"sshd did not start; its log:\n{last_log}")

    @staticmethod
    def _wait_listening(server: Sshd, within: float = 10.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert server.process is not None
            if server.process.poll() is not None:
                return False
            try:
                with socket.create_connection((server.host, server.port), timeout=0.5) as sock:
                    sock.settimeout(2.0)
                    if sock.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.02)
        return False

    def known_hosts(self, *servers: Sshd, name: str = "known_hosts") -> Path:
        """A fresh known_hosts file trusting exactly ``servers``."""
        path = Path(tempfile.mkdtemp(prefix="kh-", dir=self.directory)) / name
        path.write_text("".join(line + "\n" for server in servers
                                for line in server.known_hosts_lines()))
        return path

    def access(self, server: Sshd, *, user: str | None = None, known_hosts: Path | None = None,
               **overrides: object) -> Access:
        """An access block reaching ``server`` with the client key."""
        fields: dict[str, object] = {
            "transport": "ssh", "host": server.host, "port": server.port,
            "user": user or self.login_user, "key_file": str(self.client_key),
            "known_hosts": str(known_hosts or self.known_hosts(server))}
        fields.update(overrides)
        return Access(**fields)  # type: ignore[arg-type]

    def stop_server(self, server: Sshd) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop_server(server)
        if self.sudoers_written:
            try:
                os.remove(SUDOERS_DROPIN)
            except FileNotFoundError:
                pass
            self.sudoers_written = False
        shutil.rmtree(self.directory, ignore_errors=True)
