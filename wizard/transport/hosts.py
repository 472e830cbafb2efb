"""Reaching a machine: run a command, read a file, replace a file atomically.

``Host`` is the one interface every step uses. ``LocalHost`` works on this
machine's own files and commands (the lab, and admins who run the wizard on the
box itself); the SSH implementation lives in ``wizard.transport.ssh`` and keeps paramiko
out of start-up. ``HostPool`` hands out one connection per machine and closes
them all at the end.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from wizard.answers_model import Access, Answers, Node
from wizard.errors import CommandFailedError, HostError
from wizard.transport.prompts import NO_PROMPTS, Prompts

BACKUP_TAG = "clbw"


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class FileInfo:
    mode: int  # permission bits only
    uid: int
    gid: int
    size: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backup_path_for(path: str, when: datetime | None = None) -> str:
    """Where the backup of ``path`` goes: beside it, stamped, with a suffix no
    Apache ``*.conf`` include or Tomcat loader picks up."""
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{path}.{stamp}.{BACKUP_TAG}-backup"


class Host(ABC):
    """One machine, reached somehow. Paths are POSIX paths on that machine."""

    #: How the admin knows this machine ("node1", "balancer").
    label: str
    #: Where it is, for messages ("confluence@10.0.1.11:22", "this machine").
    where: str

    @abstractmethod
    def run(self, command: str, *, timeout: float = 60.0, sudo: bool | None = None,
            stdin: bytes | None = None) -> CommandResult:
        """Run a shell command; a non-zero exit is returned, not raised."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """The file's bytes; HostError when it is missing or unreadable."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def is_dir(self, path: str) -> bool: ...

    @abstractmethod
    def stat(self, path: str) -> FileInfo: ...

    @abstractmethod
    def write_atomic(self, path: str, data: bytes, *, mode: int | None = None,
                     owner: tuple[int, int] | None = None) -> None:
        """Replace ``path`` with ``data`` in one step: a temp file beside it with
        the given (or the existing file's) mode and owner, synced, then renamed
        over the original. Readers see the old file or the new one, never half."""

    @abstractmethod
    def copy(self, source: str, destination: str) -> None:
        """Copy a file keeping its mode (and owner where allowed)."""

    @abstractmethod
    def link_target(self, path: str) -> str | None:
        """Where ``path`` leads when it is a symbolic link (every link resolved), else None.

        ``write_atomic`` writes a link's target and leaves the link itself alone, so an
        edited ``sites-enabled/x.conf`` stays the link ``a2ensite`` made. A link that leads
        nowhere (dangling, or a loop) is a ``HostError``: the wizard will not guess.
        """

    @abstractmethod
    def remove(self, path: str) -> None: ...

    def close(self) -> None:
        """Release the connection, if there is one."""

    # Shared helpers built on the primitives above.

    def run_checked(self, command: str, *, timeout: float = 60.0, sudo: bool | None = None,
                    what: str | None = None, hint: str | None = None) -> CommandResult:
        """Run and raise ``CommandFailedError`` with the command's own words when it fails."""
        result = self.run(command, timeout=timeout, sudo=sudo)
        if not result.ok:
            said = (result.stderr.strip() or result.stdout.strip() or "(no output)")
            said = "\n".join(said.splitlines()[-15:])
            raise CommandFailedError(
                f"{what or 'The command'} failed on {self.label} ({self.where}): "
                f"`{command}` exited {result.exit_status}:\n{said}",
                hint or "Run the command by hand on that machine to see why, fix it, then run the step again.",
                command=command, exit_status=result.exit_status,
                stdout=result.stdout, stderr=result.stderr)
        return result

    def which(self, program: str) -> str | None:
        """Where ``program`` is on the host's PATH (sbin included), or None."""
        result = self.run(f"PATH=\"$PATH:/usr/sbin:/sbin:/usr/local/sbin\" command -v {shlex.quote(program)}",
                          timeout=20.0)
        found = result.stdout.strip()
        return found if result.ok and found else None

    def backup(self, path: str) -> str:
        """Copy ``path`` to a stamped backup beside it and return the backup's path."""
        destination = backup_path_for(path)
        self.copy(path, destination)
        return destination


class LocalHost(Host):
    """This machine's own files and commands."""

    def __init__(self, label: str = "local", *, sudo: bool = False) -> None:
        self.label = label
        self.where = "this machine"
        self.sudo = sudo

    def run(self, command: str, *, timeout: float = 60.0, sudo: bool | None = None,
            stdin: bytes | None = None) -> CommandResult:
        use_sudo = self.sudo if sudo is None else sudo
        argv = ["sudo", "-n", "sh", "-c", command] if use_sudo else ["sh", "-c", command]
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostError(f"`{command}` on {self.label} did not finish within {timeout:.0f} s.",
                            "Check what the command waits for, or run it by hand.") from exc
        except OSError as exc:
            raise HostError(f"Could not run `{command}` on {self.label}: {exc.strerror}.") from exc
        return CommandResult(command, done.returncode,
                             done.stdout.decode("utf-8", "replace"),
                             done.stderr.decode("utf-8", "replace"))

    def read_bytes(self, path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise _file_error("read", path, self, exc) from exc

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def stat(self, path: str) -> FileInfo:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise _file_error("inspect", path, self, exc) from exc
        return FileInfo(mode=info.st_mode & 0o7777, uid=info.st_uid, gid=info.st_gid,
                        size=info.st_size)

    def link_target(self, path: str) -> str | None:
        if not os.path.islink(path):
            return None
        try:
            return os.path.realpath(path, strict=True)
        except OSError as exc:
            raise HostError(f"{path} on {self.label} is a symbolic link that leads nowhere ({exc.strerror}); "
                            "the wizard does not write through it.",
                            f"Look at `ls -l {path}`: point it at the real file, or replace it by the file.") from exc

    def write_atomic(self, path: str, data: bytes, *, mode: int | None = None,
                     owner: tuple[int, int] | None = None) -> None:
        # A link keeps being the link: its target is what is replaced (see link_target).
        path = self.link_target(path) or path
        directory = os.path.dirname(path) or "."
        if os.path.exists(path):
            current = self.stat(path)
            mode = current.mode if mode is None else mode
            owner = (current.uid, current.gid) if owner is None else owner
        mode = 0o644 if mode is None else mode
        try:
            descriptor, temp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                                     suffix=".clbw-tmp", dir=directory)
        except OSError as exc:
            raise _file_error("write a temporary file beside", path, self, exc) from exc
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_path, mode)
            if owner is not None and hasattr(os, "chown"):
                _chown_if_permitted(temp_path, owner)
            os.replace(temp_path, path)
            _fsync_directory(directory)
        except OSError as exc:
            _remove_quietly(temp_path)
            raise _file_error("replace", path, self, exc) from exc
        except BaseException:
            _remove_quietly(temp_path)
            raise

    def copy(self, source: str, destination: str) -> None:
        # The destination is created, never opened if it exists (O_EXCL), and a symlink planted
        # there is never followed (O_NOFOLLOW): a backup must not write through someone's link.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            info = os.stat(source)
            with open(source, "rb") as reader:
                descriptor = os.open(destination, flags, 0o600)
                try:
                    with os.fdopen(descriptor, "wb") as writer:
                        shutil.copyfileobj(reader, writer)
                        writer.flush()
                        os.fsync(writer.fileno())
                        os.fchmod(writer.fileno(), info.st_mode & 0o7777)
                except BaseException:
                    _remove_quietly(destination)
                    raise
            os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
            _chown_if_permitted(destination, (info.st_uid, info.st_gid))
        except FileExistsError as exc:
            raise HostError(f"Could not copy {source} to {destination} on {self.label} ({self.where}): something "
                            "is already there (a file or a link the wizard will not write through).",
                            f"Look at {destination}, remove it if it is stray, then run the step again.") from exc
        except OSError as exc:
            raise _file_error("copy", source, self, exc) from exc

    def remove(self, path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _file_error("remove", path, self, exc) from exc


def _chown_if_permitted(path: str, owner: tuple[int, int]) -> None:
    info = os.stat(path)
    if (info.st_uid, info.st_gid) == owner:
        return
    try:
        os.chown(path, *owner)
    except PermissionError:
        # Only root may give a file away; a non-root admin editing their own
        # files keeps their own ownership, which is what they had.
        pass


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _file_error(verb: str, path: str, host: Host, exc: OSError) -> HostError:
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError):
        hint = (f"Give the wizard's user on {host.label} permission on {path} "
                "(or set `sudo: true` in that machine's access), then run the step again.")
    elif isinstance(exc, FileNotFoundError):
        hint = "Check the path in the answers file (install_dir, config_path) and that it exists on that machine."
    else:
        hint = "Check the file and the disk on that machine, then run the step again."
    return HostError(f"Could not {verb} {path} on {host.label} ({host.where}): {reason}.", hint)


#: Builds the host for (label, access block, address to fall back on, who answers SSH's questions).
HostFactory = Callable[[str, Access, str, Prompts], Host]


def default_host_factory(label: str, access: Access, default_host: str,
                         prompts: Prompts = NO_PROMPTS) -> Host:
    """Build the host for an access block: local here, SSH through ``wizard.transport.ssh``."""
    if access.transport == "local":
        return LocalHost(label, sudo=access.sudo)
    try:
        from wizard.transport.ssh import SSHHost  # paramiko loads only when SSH is used
    except ImportError as exc:  # until the SSH transport is installed
        raise HostError(f"The SSH transport is not available: {exc}.",
                        "Reinstall confluence-lb-wizard with its dependencies (paramiko).") from exc
    return SSHHost(label, access, default_host, prompts=prompts)


class HostPool:
    """One host object per machine for a run, built on first use, closed at the end.

    Thread-safe: steps fan out over nodes in a thread pool and ask for hosts
    from several threads at once.
    """

    def __init__(self, answers: Answers, factory: HostFactory = default_host_factory, *,
                 prompts: Prompts = NO_PROMPTS) -> None:
        self.answers = answers
        self.factory = factory
        #: The face's answerer for SSH's questions, handed to every host built here.
        self.prompts = prompts
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def node(self, node: Node | str) -> Host:
        if isinstance(node, str):
            node = self.answers.node(node)
        return self._get(node.name, node.access, node.access.host or node.address)

    def balancer(self) -> Host:
        options = self.answers.balancer.host_options
        if options is None:
            raise HostError("This setup's balancer is not a machine the wizard reaches (an ALB); there is no "
                            "balancer host to reach.")
        return self._get("balancer", options.access, options.access.host or "")

    def _get(self, label: str, access: Access, default_host: str) -> Host:
        with self._lock:
            host = self._hosts.get(label)
        if host is None:
            created = self.factory(label, access, default_host, self.prompts)
            with self._lock:
                host = self._hosts.setdefault(label, created)
            if host is not created:
                created.close()
        return host

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            try:
                host.close()
            except Exception:  # closing is best effort; the work is already done
                pass

    def __enter__(self) -> HostPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
