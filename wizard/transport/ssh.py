"""The SSH transport: a ``Host`` reached over OpenSSH-compatible SSH (paramiko).

Connection settings come from the node's access block merged with
``~/.ssh/config`` the way ``ssh`` merges them (the access block wins). Host
keys are checked against ``known_hosts`` before anything is sent; an unknown
key raises ``HostKeyError`` unless the admin accepts it, a changed key is always
refused. Authentication is by key only (the access block's ``key_file``,
``IdentityFile``, ssh-agent, ``~/.ssh/id_*``); the wizard never asks for or
sends a login or sudo password.

paramiko is imported inside the functions that need it, so importing this
module costs nothing until a connection is made.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import getpass
import logging
import os
import posixpath
import secrets
import select
import shlex
import socket
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.answers_model import Access
from wizard.errors import HostError, HostKeyError
from wizard.transport.hosts import CommandResult, FileInfo, Host
from wizard.transport.prompts import NO_PROMPTS, Prompts

if TYPE_CHECKING:  # pragma: no cover - typing only
    import paramiko

CONNECT_TIMEOUT = 15.0
#: How long one SFTP request may wait for the server before the connection is
#: considered lost.
SFTP_TIMEOUT = 60.0
KEEPALIVE_SECONDS = 30
SSH_CONFIG_ENV = "CLBW_SSH_CONFIG"
DEFAULT_KEY_NAMES = ("id_rsa", "id_ecdsa", "id_ed25519")

_SUDO_PASSWORD_SIGNS = ("a password is required", "a terminal is required",
                        "no tty present", "askpass")


@dataclass
class _Endpoint:
    """One SSH server to log in to: the target or a ProxyJump hop."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"


class SSHHost(Host):
    """A machine reached over SSH; one connection, opened on first use, reused."""

    def __init__(self, label: str, access: Access, default_host: str = "", *,
                 prompts: Prompts = NO_PROMPTS, ssh_config_path: str | None = None) -> None:
        self.label = label
        self.access = access
        _quiet_paramiko_logs()
        #: Who answers an encrypted key's passphrase and an unknown host key (the face's own).
        self.prompts = prompts
        alias = access.host or default_host
        if not alias:
            raise HostError(f"No address is known for {label}.",
                            "Set `address` (or `access.host`) for it in the answers file.")
        self._config = _load_ssh_config(ssh_config_path)
        self.target = _resolve_endpoint(self._config, alias, user=access.user, port=access.port,
                                        key_file=access.key_file)
        options = self._config.lookup(alias) if self._config is not None else {}
        self.known_hosts = os.path.expanduser(
            access.known_hosts
            or (options.get("userknownhostsfile", "").split() or ["~/.ssh/known_hosts"])[0])
        self._explicit_known_hosts = bool(access.known_hosts)
        jump = access.proxy_jump if access.proxy_jump is not None else options.get("proxyjump")
        self.hops = [] if not jump or jump.strip().lower() == "none" else [
            _resolve_jump(self._config, spec) for spec in jump.split(",") if spec.strip()]
        self.where = self.target.where
        self.sudo = bool(access.sudo) and self.target.user != "root"
        #: How many times a connection was opened (reuse is visible in tests).
        self.connect_count = 0
        self._lock = threading.RLock()
        self._sftp_lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._hop_clients: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        # Decrypted keys live here, in memory only, so a reconnect does not ask again.
        self._loaded_keys: dict[str, Any] = {}

    # ------------------------------------------------------------------ connection

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        # No SFTP lock here: a thread inside an SFTP call may be the one that
        # found the connection dead; taking the attribute is enough.
        sftp, self._sftp = self._sftp, None
        client, self._client = self._client, None
        hops, self._hop_clients = self._hop_clients, []
        for thing in [sftp, client, *reversed(hops)]:
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001, S110 - closing is best effort
                    pass

    def _transport(self) -> paramiko.Transport:
        """The live transport, connecting (or reconnecting) first when needed."""
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is not None and transport.is_active():
                return transport
            self._drop_connection()
            self._connect()
            assert self._client is not None
            transport = self._client.get_transport()
            assert transport is not None
            return transport

    def _connect(self) -> None:
        import paramiko

        sock = None
        hops: list[paramiko.SSHClient] = []
        chain = [*self.hops, self.target]
        try:
            for index, endpoint in enumerate(chain):
                client = self._login(endpoint, sock)
                if index == len(chain) - 1:
                    self._client = client
                    break
                hops.append(client)
                following = chain[index + 1]
                try:
                    hop = client.get_transport()
                    assert hop is not None, "a connected client has a transport"
                    sock = hop.open_channel(
                        "direct-tcpip", (following.hostname, following.port), ("127.0.0.1", 0),
                        timeout=CONNECT_TIMEOUT)
                except paramiko.ChannelException as exc:
                    raise HostError(
                        f"The jump host {endpoint.address} could not reach {following.address} "
                        f"for {self.label}: {exc.text or 'connection failed'}.",
                        f"Check that {following.hostname} port {following.port} is reachable from "
                        f"{endpoint.hostname} (address, port, firewall) and that the jump host "
                        "allows TCP forwarding (AllowTcpForwarding).") from exc
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise self._lost(f"opening a tunnel through {endpoint.address}", exc) from exc
        except BaseException:
            for client in reversed(hops):
                client.close()
            raise
        self._hop_clients = hops
        self.connect_count += 1
        assert self._client is not None, "connected just above"
        transport = self._client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)

    def _login(self, endpoint: _Endpoint, sock: Any) -> paramiko.SSHClient:
        """Open one SSH connection: host key verified first, then key authentication."""
        import paramiko

        keys, notes = self._explicit_keys(endpoint)
        client = paramiko.SSHClient()
        for path, system in self._known_hosts_files():
            try:
                if system:
                    client.load_system_host_keys(path)
                else:
                    client.load_host_keys(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise HostError(f"Could not read the known hosts file {path}: "
                                f"{exc.strerror or exc}.",
                                "Fix its permissions, or point `known_hosts` in the access block "
                                "at a readable file.") from exc
        client.set_missing_host_key_policy(_HostKeyPolicy(self, endpoint))
        strategy = _KeyStrategy(endpoint.user, keys)
        try:
            client.connect(endpoint.hostname, endpoint.port, username=endpoint.user,
                           sock=sock, timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT,
                           auth_timeout=CONNECT_TIMEOUT, channel_timeout=CONNECT_TIMEOUT,
                           auth_strategy=strategy)
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._changed_key_error(endpoint, exc) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise self._auth_error(endpoint, strategy, notes) from exc
        except socket.gaierror as exc:
            client.close()
            raise HostError(
                f"Could not find the address of {endpoint.hostname} (for {self.label}): "
                f"{exc.strerror or exc}.",
                f"Check the host name `{endpoint.alias}` in the answers file or ~/.ssh/config, "
                "and that this machine's DNS can resolve it.") from exc
        except TimeoutError as exc:
            client.close()
            raise HostError(
                f"Connecting to {endpoint.address} (for {self.label}) timed out after "
                f"{CONNECT_TIMEOUT:.0f} s.",
                f"Check the address and port, that the machine is up, and that no firewall or "
                f"security group drops SSH (port {endpoint.port}) from this machine.") from exc
        except paramiko.SSHException as exc:
            client.close()
            raise HostError(
                f"The SSH connection to {endpoint.address} (for {self.label}) failed: {exc}.",
                f"Check that an SSH server listens on {endpoint.address}, and run "
                f"`ssh -v -p {endpoint.port} {endpoint.user}@{endpoint.hostname}` to see why.") from exc
        except (OSError, EOFError) as exc:
            client.close()
            reason = _connect_reason(exc)
            raise HostError(
                f"Could not connect to {endpoint.address} (for {self.label}): {reason}.",
                f"Check the address and port in the answers file (or ~/.ssh/config), that sshd "
                f"runs there, and that no firewall blocks port {endpoint.port} from this machine.") from exc
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None and isinstance(transport.sock, socket.socket):
            # Small requests back to back (an exec's close, then an SFTP call) would otherwise
            # wait for the server's delayed ACK: 40 ms per exchange with Nagle's algorithm on.
            with contextlib.suppress(OSError):
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if transport is None or not transport.is_authenticated():
            client.close()
            raise HostError(
                f"{endpoint.where} (for {self.label}) asks for a second factor after the key "
                "(a password or a code); the wizard logs in with keys only.",
                "Allow key-only logins for this user (AuthenticationMethods publickey in sshd_config).")
        return client

    def _known_hosts_files(self) -> list[tuple[str, bool]]:
        files = [(self.known_hosts, False)]
        if not self._explicit_known_hosts:
            files.insert(0, ("/etc/ssh/ssh_known_hosts", True))
        return files

    def _explicit_keys(self, endpoint: _Endpoint) -> tuple[list[tuple[str, Any]], list[str]]:
        """The keys to try, in order: named keys, agent keys, default keys.

        Returns ``(label, pkey)`` pairs and notes about keys that could not be used.
        """
        keys: list[tuple[str, Any]] = []
        notes: list[str] = []
        agent_keys = _agent_keys()
        agent_blobs = {key.asbytes() for key in agent_keys}
        named = list(endpoint.identity_files)
        if endpoint is not self.target and self.target.identity_files:
            # A jump host is often reached with the same key as the node.
            named += [path for path in self.target.identity_files if path not in named]
        for path in named:
            pkey = self._load_named_key(path, agent_blobs, notes, explicit=True)
            if pkey is not None:
                keys.append((f"{_tilde(path)} ({pkey.fingerprint})", pkey))
        for key in agent_keys:
            keys.append((f"ssh-agent key {key.fingerprint}", key))
        ssh_dir = os.path.expanduser("~/.ssh")
        for name in DEFAULT_KEY_NAMES:
            path = os.path.join(ssh_dir, name)
            if path in named or not os.path.isfile(path):
                continue
            pkey = self._load_named_key(path, agent_blobs, notes, explicit=False)
            if pkey is not None:
                keys.append((f"{_tilde(path)} ({pkey.fingerprint})", pkey))
        return keys, notes

    def _load_named_key(self, path: str, agent_blobs: set[bytes], notes: list[str],
                        *, explicit: bool) -> Any:
        """Load a private key file; ask for its passphrase when it is encrypted.

        Returns None (with a note) when the key cannot be used here. An
        encrypted key already held by ssh-agent is left to the agent.
        """
        import paramiko

        path = os.path.expanduser(path)
        if path in self._loaded_keys:
            return self._loaded_keys[path]
        if not os.path.exists(path):
            if explicit:
                notes.append(f"{_tilde(path)} does not exist")
            return None
        try:
            key = paramiko.PKey.from_path(path)
        except (TypeError, paramiko.PasswordRequiredException):
            key = None
        except (OSError, ValueError, paramiko.SSHException) as exc:
            notes.append(f"{_tilde(path)} could not be read as a private key ({exc})")
            return None
        if key is None:  # encrypted
            if _public_blob(path) in agent_blobs:
                return None  # the agent holds it unlocked
            if not self.prompts.can_ask:
                notes.append(f"{_tilde(path)} is encrypted and no passphrase can be asked "
                             "for here")
                if explicit:
                    raise HostError(
                        f"The key {_tilde(path)} for {self.label} is encrypted; load it into "
                        f"ssh-agent (ssh-add {_tilde(path)}) or run interactively.",
                        f"Run `ssh-add {_tilde(path)}` in the shell that starts the wizard "
                        "(so SSH_AUTH_SOCK is set), or start the wizard without --non-interactive "
                        "so it can ask for the passphrase.")
                return None
            key = self._unlock(path, self.prompts.passphrase)
            if key is None:
                notes.append(f"{_tilde(path)} is encrypted and no passphrase was given")
                return None
        self._loaded_keys[path] = key
        return key

    def _unlock(self, path: str, ask: Callable[[str], str | None]) -> Any:
        import paramiko

        prompt = f"Passphrase for the SSH key {_tilde(path)} ({self.label})"
        for attempt in range(3):
            passphrase = ask(prompt if attempt == 0 else f"Wrong passphrase. {prompt}")
            if passphrase is None:
                return None
            try:
                return paramiko.PKey.from_path(path, passphrase.encode("utf-8"))
            except (ValueError, TypeError, paramiko.SSHException):
                continue
            finally:
                passphrase = None  # keep it no longer than needed
        raise HostError(f"The passphrase for {_tilde(path)} was wrong three times.",
                        f"Check it with `ssh-keygen -y -f {_tilde(path)}`, or load the key into "
                        "ssh-agent with ssh-add.")

    # ------------------------------------------------------------------ host keys

    def _unknown_key(self, endpoint: _Endpoint, key: Any) -> HostKeyError:
        fingerprint = key.fingerprint
        key_type = key.get_name()
        file_type = _host_key_file_type(key_type)
        keyscan = (f"ssh-keyscan -p {endpoint.port} {endpoint.hostname} "
                   f">> {_shell_path(self.known_hosts)}")
        return HostKeyError(
            f"{endpoint.address} (for {self.label}) is not in {_tilde(self.known_hosts)}. "
            f"It presents the {key_type} key with fingerprint {fingerprint}. Nothing was sent to it.",
            f"Compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_{file_type}_key.pub` "
            f"on the host (over a console you trust). If they match, accept the key in the wizard, "
            f"or add it with `{keyscan}`.",
            host=endpoint.hostname, port=endpoint.port, key_type=key_type,
            fingerprint=fingerprint, key_base64=key.get_base64(), changed=False)

    def _changed_key_error(self, endpoint: _Endpoint, exc: Any) -> HostKeyError:
        key = exc.key
        expected = getattr(exc, "expected_key", None)
        name = _known_hosts_name(endpoint.hostname, endpoint.port)
        was = f" (recorded: {expected.fingerprint})" if expected is not None else ""
        return HostKeyError(
            f"WARNING: the host key of {endpoint.address} (for {self.label}) has CHANGED: it now "
            f"presents {key.get_name()} {key.fingerprint}{was}. Someone could be intercepting the "
            "connection (a man-in-the-middle attack), or the host was reinstalled. "
            "Nothing was sent to it.",
            f"Ask the host's administrator whether its keys changed (`ssh-keygen -lf "
            f"/etc/ssh/ssh_host_{_host_key_file_type(key.get_name())}_key.pub` on the host). Only "
            f"if they did, remove the old entry with `ssh-keygen -R {shlex.quote(name)} -f "
            f"{_shell_path(self.known_hosts)}` and connect again to review the new key.",
            host=endpoint.hostname, port=endpoint.port, key_type=key.get_name(),
            fingerprint=key.fingerprint, key_base64=key.get_base64(), changed=True)

    # ------------------------------------------------------------------ errors

    def _auth_error(self, endpoint: _Endpoint, strategy: Any,  # a _KeyStrategy (paramiko's, built in __new__)
                    notes: list[str]) -> HostError:
        tried = strategy.tried or ["no key at all (no key_file, no ssh-agent, no ~/.ssh/id_* key)"]
        lines = [f"  - {item}" for item in tried] + [f"  - {note}" for note in notes]
        key_hint = (self.access.key_file or "~/.ssh/id_ed25519")
        return HostError(
            f"{endpoint.hostname}:{endpoint.port} (for {self.label}) refused the login as "
            f"`{endpoint.user}`. Keys tried:\n" + "\n".join(lines),
            f"Install your public key for {endpoint.user} on that machine, e.g. `ssh-copy-id -i "
            f"{_tilde(key_hint)}.pub -p {endpoint.port} {endpoint.user}@{endpoint.hostname}`, or "
            "set `key_file` (and `user`) in the access block to a key that machine accepts.")

    def _lost(self, doing: str, exc: BaseException) -> HostError:
        self._drop_connection_quietly()
        detail = str(exc).strip() or exc.__class__.__name__
        return HostError(
            f"The connection to {self.label} ({self.where}) was lost while {doing}: {detail}.",
            "Check that the machine is up and sshd is running there, then run the step again; "
            "the wizard reconnects on its own.")

    def _drop_connection_quietly(self) -> None:
        with self._lock:
            self._drop_connection()

    def _file_error(self, verb: str, path: str, exc: BaseException) -> HostError:
        code = getattr(exc, "errno", None)
        reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        if code in (errno.EACCES, errno.EPERM):
            hint = (f"The SSH user `{self.target.user}` may not do this. Set `sudo: true` in "
                    f"{self.label}'s access block (with passwordless sudo), or give that user "
                    f"permission on {path}, then run the step again.")
            reason = "permission denied"
        elif code == errno.ENOENT:
            hint = ("Check the path in the answers file (install_dir, config_path) and that it "
                    "exists on that machine.")
            reason = "no such file or directory"
        else:
            hint = "Check the file and the disk on that machine, then run the step again."
        return HostError(f"Could not {verb} {path} on {self.label} ({self.where}): {reason}.", hint)

    # ------------------------------------------------------------------ commands

    def run(self, command: str, *, timeout: float = 60.0, sudo: bool | None = None,
            stdin: bytes | None = None) -> CommandResult:
        use_sudo = self.sudo if sudo is None else (bool(sudo) and self.target.user != "root")
        wire = f"sudo -n sh -c {shlex.quote(command)}" if use_sudo else command
        status, out, err = self._exec(wire, timeout=timeout, stdin=stdin, shown=command)
        stderr = err.decode("utf-8", "replace")
        if use_sudo and status != 0:
            self._check_sudo(command, status, stderr)
        return CommandResult(command, status, out.decode("utf-8", "replace"), stderr)

    def _check_sudo(self, command: str, status: int, stderr: str) -> None:
        first = stderr.strip().splitlines()[0].lower() if stderr.strip() else ""
        user = self.target.user
        if first.startswith("sudo:") and any(sign in first for sign in _SUDO_PASSWORD_SIGNS):
            raise HostError(
                f"sudo on {self.label} ({self.where}) wants a password for `{user}`; the wizard "
                "never types sudo passwords, so it needs passwordless sudo for the commands it runs.",
                f"Allow it with a sudoers drop-in (edit with `visudo -f "
                f"/etc/sudoers.d/confluence-lb-wizard`), e.g.:\n    {user} ALL=(root) NOPASSWD: ALL\n"
                "or log in as a user that owns the files and set `sudo: false`.")
        if status == 127 and ("sudo: not found" in stderr or "sudo: command not found" in stderr):
            raise HostError(f"sudo is not installed on {self.label} ({self.where}).",
                            "Install sudo there and allow passwordless sudo for the SSH user, "
                            "or set `sudo: false` and log in as a user that may change the files.")

    def _exec(self, command: str, *, timeout: float, stdin: bytes | None = None,
              shown: str | None = None) -> tuple[int, bytes, bytes]:
        """Run ``command`` through the login shell; (exit status, stdout, stderr) as bytes."""
        import paramiko

        shown = shown or command
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(f"starting `{shown}`", exc) from exc
        out: list[bytes] = []
        err: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            channel.exec_command(command)
            pending = memoryview(stdin) if stdin else None
            if pending is None:
                channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    out.append(channel.recv(65536))
                while channel.recv_stderr_ready():
                    err.append(channel.recv_stderr(65536))
                if pending is not None and (channel.closed or channel.exit_status_ready()):
                    pending = None  # the command ended without reading all its input
                if pending is not None and channel.send_ready():
                    sent = channel.send(pending[:32768].tobytes())
                    pending = pending[sent:] if sent < len(pending) else None
                    if pending is None:
                        channel.shutdown_write()
                    continue
                if channel.closed or (channel.eof_received and channel.exit_status_ready()):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    channel.close()
                    raise HostError(
                        f"`{shown}` on {self.label} ({self.where}) did not finish within "
                        f"{timeout:.0f} s.",
                        "Check what the command waits for, or run it by hand on that machine.")
                if channel.eof_received:
                    # Output is done; only the exit status is still to come (the
                    # channel's select pipe stays readable after EOF, so wait on
                    # the status event instead of spinning).
                    channel.status_event.wait(min(remaining, 0.5))
                else:
                    select.select([channel], [], [], min(remaining, 0.05 if pending is not None else 0.5))
            # Drain what arrived together with the close.
            while channel.recv_ready():
                out.append(channel.recv(65536))
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(65536))
            status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        except HostError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(f"running `{shown}`", exc) from exc
        finally:
            channel.close()
        if status == -1 and not transport.is_active():
            raise self._lost(f"running `{shown}`", EOFError("the server closed the connection"))
        return status, b"".join(out), b"".join(err)

    def _run_sudo_checked(self, script: str, *, verb: str, path: str,
                          timeout: float = 120.0) -> bytes:
        """Run a file operation as root; map its failure to an admin message."""
        status, out, err = self._exec(f"sudo -n sh -c {shlex.quote(script)}", timeout=timeout,
                                      shown=script)
        if status != 0:
            stderr = err.decode("utf-8", "replace")
            self._check_sudo(script, status, stderr)
            said = stderr.strip() or "(no output)"
            if "No such file" in said:
                raise self._file_error(verb, path, OSError(errno.ENOENT, said))
            raise HostError(f"Could not {verb} {path} on {self.label} ({self.where}) with sudo: "
                            f"{said}",
                            "Run the same operation by hand on that machine to see why.")
        return out

    # ------------------------------------------------------------------ files

    def _sftp_call(self, verb: str, path: str, operation: Callable[[Any], Any]) -> Any:
        """Run ``operation(sftp)`` under the SFTP lock, mapping errors for the admin."""
        import paramiko

        transport = self._transport()
        failure: BaseException | None = None
        with self._sftp_lock:
            try:
                sftp = self._sftp
                if sftp is None or sftp.get_channel().closed:
                    sftp = paramiko.SFTPClient.from_transport(transport)
                    if sftp is None:
                        raise paramiko.SSHException("the server refused the SFTP subsystem")
                    sftp.get_channel().settimeout(SFTP_TIMEOUT)
                    self._sftp = sftp
                return operation(sftp)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
                    raise
                failure = exc
            except (paramiko.SSHException, EOFError) as exc:
                failure = exc
        # Outside the SFTP lock: dropping the connection takes the connect lock.
        if isinstance(failure, OSError) and transport.is_active() \
                and not isinstance(failure, socket.timeout):
            raise self._file_error(verb, path, failure) from failure
        raise self._lost(f"working on {path}", failure) from failure

    def read_bytes(self, path: str) -> bytes:
        def read(sftp: Any) -> bytes:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                return handle.read()
        try:
            return self._sftp_call("read", path, read)
        except OSError as exc:
            if self.sudo and exc.errno in (errno.EACCES, errno.EPERM):
                return self._run_sudo_checked(f"cat -- {shlex.quote(path)}", verb="read", path=path)
            raise self._file_error("read", path, exc) from exc

    def exists(self, path: str) -> bool:
        try:
            self._sftp_call("inspect", path, lambda sftp: sftp.lstat(path))
            return True
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            if self.sudo and exc.errno in (errno.EACCES, errno.EPERM):
                quoted = shlex.quote(path)
                return self.run(f"test -e {quoted} || test -L {quoted}", sudo=True,
                                timeout=30.0).exit_status == 0
            raise self._file_error("inspect", path, exc) from exc

    def is_dir(self, path: str) -> bool:
        try:
            attrs = self._sftp_call("inspect", path, lambda sftp: sftp.stat(path))
            return stat_module.S_ISDIR(attrs.st_mode or 0)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            if self.sudo and exc.errno in (errno.EACCES, errno.EPERM):
                return self.run(f"test -d {shlex.quote(path)}", sudo=True,
                                timeout=30.0).exit_status == 0
            raise self._file_error("inspect", path, exc) from exc

    def stat(self, path: str) -> FileInfo:
        try:
            attrs = self._sftp_call("inspect", path, lambda sftp: sftp.stat(path))
        except OSError as exc:
            if self.sudo and exc.errno in (errno.EACCES, errno.EPERM):
                out = self._run_sudo_checked(f"stat -L -c '%a %u %g %s' -- {shlex.quote(path)}",
                                             verb="inspect", path=path)
                mode, uid, gid, size = out.decode().split()
                return FileInfo(mode=int(mode, 8), uid=int(uid), gid=int(gid), size=int(size))
            raise self._file_error("inspect", path, exc) from exc
        return FileInfo(mode=(attrs.st_mode or 0) & 0o7777, uid=attrs.st_uid or 0,
                        gid=attrs.st_gid or 0, size=attrs.st_size or 0)

    def copy(self, source: str, destination: str) -> None:
        # Copied to a fresh temp file beside the destination (mktemp creates it exclusively), then
        # hard-linked to its name: link(2) fails on anything already there, a symlink included, so
        # a link planted at the destination is never written through.
        q = shlex.quote
        command = (f"tmp=$(mktemp -- {q(destination)}.XXXXXX) || exit 1; "
                   f"cp -p -- {q(source)} \"$tmp\" && ln -T -- \"$tmp\" {q(destination)}; "
                   "status=$?; rm -f -- \"$tmp\"; exit $status")
        result = self.run(command, timeout=120.0)
        if not result.ok and "File exists" in (result.stderr + result.stdout):
            raise HostError(f"Could not copy {source} to {destination} on {self.label} ({self.where}): something "
                            "is already there (a file or a link the wizard will not write through).",
                            f"Look at {destination}, remove it if it is stray, then run the step again.")
        if not result.ok:
            said = result.stderr.strip() or result.stdout.strip() or "(no output)"
            code = (errno.EACCES if "Permission denied" in said or "Operation not permitted" in said
                    else errno.ENOENT if "No such file" in said else None)
            if code is not None:
                raise self._file_error(f"copy {source} to", destination,
                                       OSError(code, said)) from None
            raise HostError(f"Could not copy {source} to {destination} on {self.label} "
                            f"({self.where}): {said}",
                            "Check the disk and the permissions of both paths on that machine.")

    def remove(self, path: str) -> None:
        if self.sudo:
            self._run_sudo_checked(f"rm -f -- {shlex.quote(path)}", verb="remove", path=path)
            return
        try:
            self._sftp_call("remove", path, lambda sftp: sftp.remove(path))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise self._file_error("remove", path, exc) from exc

    def link_target(self, path: str) -> str | None:
        def resolve(sftp: Any) -> str | None:
            if not stat_module.S_ISLNK(sftp.lstat(path).st_mode or 0):
                return None
            target: str = sftp.normalize(path)  # the server's realpath(3): every link resolved
            sftp.stat(target)  # a loop or a dangling link fails here
            return target

        try:
            return self._sftp_call("inspect", path, resolve)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not self.exists(path):
                return None
            if self.sudo and exc.errno in (errno.EACCES, errno.EPERM):
                quoted = shlex.quote(path)
                if self.run(f"test -L {quoted}", sudo=True, timeout=30.0).exit_status != 0:
                    return None
                return self._run_sudo_checked(f"readlink -e -- {quoted}", verb="inspect",
                                              path=path).decode().strip()
            raise HostError(f"{path} on {self.label} is a symbolic link that leads nowhere ({exc}); the wizard "
                            "does not write through it.",
                            f"Look at `ls -l {path}` there: point it at the real file, or replace it by "
                            "the file.") from exc

    def write_atomic(self, path: str, data: bytes, *, mode: int | None = None,
                     owner: tuple[int, int] | None = None) -> None:
        # A link keeps being the link: its target is what is replaced (see link_target).
        path = self.link_target(path) or path
        if self.exists(path):
            current = self.stat(path)
            mode = current.mode if mode is None else mode
            owner = (current.uid, current.gid) if owner is None else owner
        mode = 0o644 if mode is None else mode
        directory = posixpath.dirname(path) or "."
        temp_path = posixpath.join(
            directory, f".{posixpath.basename(path)}.{secrets.token_hex(6)}.clbw-tmp")
        if self.sudo:
            self._write_atomic_sudo(path, temp_path, data, mode, owner)
        else:
            self._write_atomic_sftp(path, temp_path, data, mode, owner)

    def _write_atomic_sftp(self, path: str, temp_path: str, data: bytes, mode: int,
                           owner: tuple[int, int] | None) -> None:
        created = False

        def write(sftp: Any) -> None:
            nonlocal created
            with sftp.open(temp_path, "wxb") as handle:
                created = True
                # Mode first, so the content is never readable with looser permissions.
                handle.chmod(mode)
                handle.set_pipelined(True)
                handle.write(data)
                handle.flush()
                if owner is not None:
                    attrs = handle.stat()
                    if (attrs.st_uid, attrs.st_gid) != tuple(owner):
                        try:
                            handle.chown(*owner)
                        except OSError as exc:
                            # Only root may give a file away; an admin editing their own
                            # files keeps their ownership (as LocalHost does).
                            if exc.errno not in (errno.EACCES, errno.EPERM):
                                raise
                        else:
                            handle.chmod(mode)  # chown may clear set-id bits
            sftp.posix_rename(temp_path, path)

        try:
            self._sftp_call("replace", path, write)
        except BaseException as exc:
            if created:
                self._remove_temp_quietly(temp_path)
            if isinstance(exc, OSError):
                verb = "replace" if created else "write a temporary file beside"
                raise self._file_error(verb, path, exc) from exc
            raise

    def _write_atomic_sudo(self, path: str, temp_path: str, data: bytes, mode: int,
                           owner: tuple[int, int] | None) -> None:
        # Upload as the login user (0600, private), then let root install it beside
        # the target with the right mode and owner, and rename it over the target.
        upload = f"/tmp/.clbw-upload.{secrets.token_hex(8)}"

        def put(sftp: Any) -> None:
            with sftp.open(upload, "wxb") as handle:
                handle.chmod(0o600)
                handle.set_pipelined(True)
                handle.write(data)
                handle.flush()

        try:
            try:
                self._sftp_call("upload", upload, put)
            except OSError as exc:
                raise self._file_error("upload a temporary copy of", path, exc) from exc
            q = shlex.quote
            owner_args = f" -o {int(owner[0])} -g {int(owner[1])}" if owner is not None else ""
            script = (
                f"set -e; tmp={q(temp_path)}; trap 'rm -f \"$tmp\"' EXIT; "
                f"install -m {mode:o}{owner_args} -- {q(upload)} \"$tmp\"; "
                f"sync -- \"$tmp\" 2>/dev/null || true; "
                f"mv -f -- \"$tmp\" {q(path)}")
            self._run_sudo_checked(script, verb="replace", path=path)
        finally:
            self._remove_temp_quietly(upload)

    def _remove_temp_quietly(self, path: str) -> None:
        try:
            self._sftp_call("remove", path, lambda sftp: sftp.remove(path))
        except (OSError, HostError):
            pass


# ---------------------------------------------------------------------- host keys


def _HostKeyPolicy(host: SSHHost, endpoint: _Endpoint) -> Any:
    """A paramiko MissingHostKeyPolicy that raises ``HostKeyError`` (or asks the host's prompts)."""
    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            error = host._unknown_key(endpoint, key)
            if host.prompts.trust_host_key(error):
                trust_host_key(error, host.known_hosts)
                client.get_host_keys().add(hostname, key.get_name(), key)
                return
            raise error

    return Policy()


def trust_host_key(error: HostKeyError, known_hosts_path: str | None = None) -> str:
    """Append the key from an unknown-host-key error to ``known_hosts``.

    For when the admin has compared the fingerprint and accepted it. A changed
    key is never replaced here: the old entry has to be removed on purpose.
    Returns the line written.
    """
    if error.changed:
        raise HostError(
            f"The host key of {error.host}:{error.port} changed; the wizard does not replace it.",
            f"If the change is expected, remove the old entry with `ssh-keygen -R "
            f"{_known_hosts_name(error.host, error.port)}` and connect again.")
    if not error.key_base64 or not error.key_type:
        raise HostError("That host key error carries no key to trust.")
    path = os.path.expanduser(known_hosts_path or "~/.ssh/known_hosts")
    line = f"{_known_hosts_name(error.host, error.port)} {error.key_type} {error.key_base64}\n"
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        existing = b""
        if os.path.exists(path):
            with open(path, "rb") as handle:
                existing = handle.read()
        if line.encode() in existing.splitlines(keepends=True) or \
                line.strip().encode() in existing.splitlines():
            return line
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "ab") as handle:
            if existing and not existing.endswith(b"\n"):
                handle.write(b"\n")
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise HostError(f"Could not add the host key to {path}: {exc.strerror or exc}.",
                        "Check that the file and its folder are writable by you.") from exc
    return line


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _host_key_file_type(key_type: str) -> str:
    if "ed25519" in key_type:
        return "ed25519"
    if "ecdsa" in key_type:
        return "ecdsa"
    if "rsa" in key_type:
        return "rsa"
    return "ed25519"


# ---------------------------------------------------------------------- auth


class _KeyStrategy:
    """Public-key authentication only, trying the given keys in order.

    Built on paramiko's AuthStrategy so no password (or keyboard-interactive
    prompt) is ever tried; remembers what it tried for the error message.
    """

    def __new__(cls, username: str, keys: list[tuple[str, Any]]) -> Any:
        from paramiko.auth_strategy import AuthStrategy, InMemoryPrivateKey

        class Strategy(AuthStrategy):
            def __init__(self) -> None:
                super().__init__(ssh_config=None)
                self.tried: list[str] = []

            def get_sources(self) -> Iterator[Any]:
                for label, pkey in keys:
                    self.tried.append(label)
                    yield InMemoryPrivateKey(username, pkey)

        return Strategy()


def _agent_keys() -> list[Any]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        import paramiko

        return list(paramiko.Agent().get_keys())
    except Exception:  # noqa: BLE001 - an unreachable agent is the same as no agent
        return []


def _public_blob(private_path: str) -> bytes | None:
    try:
        with open(private_path + ".pub", encoding="utf-8") as handle:
            fields = handle.read().split()
        return base64.b64decode(fields[1]) if len(fields) >= 2 else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------- ssh config


def _load_ssh_config(path: str | None) -> Any:
    import paramiko

    path = os.path.expanduser(path or os.environ.get(SSH_CONFIG_ENV) or "~/.ssh/config")
    if not os.path.exists(path):
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(path)
    except (OSError, paramiko.ConfigParseError, ValueError) as exc:
        raise HostError(f"Could not read the SSH config {path}: {exc}.",
                        "Fix the file (`ssh -G HOST` shows how ssh reads it), or point "
                        f"{SSH_CONFIG_ENV} at another one.") from exc


def _resolve_endpoint(config: Any, alias: str, *, user: str | None, port: int | None,
                      key_file: str | None) -> _Endpoint:
    options = config.lookup(alias)
    hostname = options.get("hostname") or alias
    try:
        resolved_port = int(port or options.get("port") or 22)
    except ValueError as exc:
        raise HostError(f"The SSH port for {alias} is not a number: {options.get('port')!r}.",
                        "Fix `port` in the answers file or Port in ~/.ssh/config.") from exc
    identity = [key_file] if key_file else list(options.get("identityfile") or [])
    return _Endpoint(alias=alias, hostname=hostname, port=resolved_port,
                     user=user or options.get("user") or getpass.getuser(),
                     identity_files=[os.path.expanduser(path) for path in identity])


def _resolve_jump(config: Any, spec: str) -> _Endpoint:
    """One ProxyJump hop: ``[user@]host[:port]`` or ``ssh://[user@]host[:port]``."""
    spec = spec.strip()
    if spec.startswith("ssh://"):
        spec = spec[len("ssh://"):].rstrip("/")
    user = None
    if "@" in spec:
        user, spec = spec.rsplit("@", 1)
    port = None
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host = spec
    try:
        port_number = int(port) if port else None
    except ValueError as exc:
        raise HostError(f"The ProxyJump port in {spec!r} is not a number.",
                        "Write the jump host as user@host:port.") from exc
    return _resolve_endpoint(config, host, user=user or None, port=port_number, key_file=None)


def _connect_reason(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    errors = getattr(exc, "errors", None)
    if errors:  # paramiko's NoValidConnectionsError: one error per address tried
        codes = {getattr(error, "errno", None) for error in errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return "connection refused (nothing listens on that port)"
        if errno.EHOSTUNREACH in codes:
            return "no route to host"
    if code == errno.ECONNREFUSED:
        return "connection refused (nothing listens on that port)"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to host"
    if code == errno.ECONNRESET or isinstance(exc, EOFError):
        return "the connection was closed by the other side before SSH started"
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _shell_path(path: str) -> str:
    """A path for a command the admin copies: ``~/`` kept unquoted so the shell expands it."""
    shown = _tilde(path)
    if shown.startswith("~/"):
        return "~/" + shlex.quote(shown[2:])
    return shlex.quote(shown)


def _quiet_paramiko_logs() -> None:
    """paramiko logs connection errors at ERROR; with no handler configured, Python
    prints them on stderr (over the Textual screen). The wizard reports them itself."""
    logging.getLogger("paramiko").addHandler(_NULL_HANDLER)


_NULL_HANDLER = logging.NullHandler()


def _tilde(path: str) -> str:
    home = os.path.expanduser("~")
    if home and home != "/" and path.startswith(home + os.sep):
        return "~" + path[len(home):]
    return path
