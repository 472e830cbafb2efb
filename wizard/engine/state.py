"""The state file: what every step did, how to undo it, and the check results.

One JSON file per setup, schema-versioned, saved atomically (temp file, fsync,
rename, fsync the folder) with mode 0600, so a run killed at any moment leaves
either the previous state or the new one, never a torn file. A lock file beside
it names its holder; the kernel releases the lock (``flock``) when the holder
dies, so a crashed run never keeps it.

The state never holds a secret: the answers carry none by design, and every
diff is masked (``wizard.engine.redact``) before it is recorded.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import shlex
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from wizard.engine.model import Check
from wizard.engine.records import (
    STATUSES,
    ChangeRecord,
    Fields,
    HistoryEntry,
    StateRecordError,
    StepError,
    UndoRecord,
    check_from_dict,
    check_plan,
    record_label,
)
from wizard.engine.redact import MASK, is_secret_name, redact
from wizard.errors import StateError, StateLockedError

SCHEMA_VERSION = 1
DONE = ("applied", "verified")

# Temp files a killed save left behind are removed by a later save once they are
# this old; a younger one may belong to a save still running.
STALE_TEMP_SECONDS = 60.0
_TEMP_SUFFIX = ".tmp"

# Upgrades from an older schema: MIGRATIONS[n] turns a version-n document into
# version n+1. Version 1 is the first released schema; later versions add their
# step here so that old state files keep loading.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def now_iso() -> str:
    """Now, in UTC, to the microsecond: the restart step orders a restart against a
    Connector change by these strings, and both can happen within one second."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_state_path(setup_name: str) -> Path:
    """Where a setup's state lives when ``--state`` is not given."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "confluence-lb-wizard" / f"{setup_name}.state.json"


@dataclass
class StepRecord:
    """Everything the state knows about one step (each part typed; see ``wizard.engine.records``)."""

    name: str
    status: str = "pending"
    updated: str | None = None
    started: str | None = None
    finished: str | None = None
    summary: str = ""
    #: The last plan, as ``Plan.to_dict`` gave it (shown; ``Plan.from_dict`` reads it back).
    plan: dict[str, Any] | None = None
    changes: list[ChangeRecord] = field(default_factory=list)
    undo: list[UndoRecord] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: StepError | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    #: The answers the step's changes were made with, each once; an undo record names its own
    #: (``answers``: an index here), so rollback undoes it as it was made, whatever the answers
    #: say today (an Apache vhost is still an Apache vhost after the answers moved to an ALB).
    answers_seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in DONE

    def set_status(self, status: str, summary: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        self.status = status
        self.updated = now_iso()
        if summary is not None:
            self.summary = summary
        self.history.append(HistoryEntry(at=self.updated, status=status, summary=self.summary))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "updated": self.updated,
                "started": self.started, "finished": self.finished, "summary": self.summary,
                "plan": self.plan, "changes": [c.to_dict() for c in self.changes],
                "undo": [u.to_dict() for u in self.undo],
                "checks": [c.to_dict() for c in self.checks],
                "error": self.error.to_dict() if self.error is not None else None,
                "history": [h.to_dict() for h in self.history],
                "answers_seen": self.answers_seen}

    @classmethod
    def from_dict(cls, data: Any, name: str = "") -> StepRecord:
        """A step's record read back from the state file, every part checked; ``StateRecordError``
        names the first part that is not what this tool writes (``name``: the step's key there)."""
        read = Fields(data, f"record of the step {name!r}" if name else "step record")
        name = read.required_text("name")
        where = f"of the {name} step"
        status = read.text("status", "pending")
        if status not in STATUSES:
            raise StateRecordError(f"The state file names an unknown status {status!r} for step {name}.",
                                   "Correct it by hand to one of " + ", ".join(STATUSES) + ", or restore the "
                                   "file from a backup.")
        answers_seen = read.items("answers_seen")
        for number, seen in enumerate(answers_seen, 1):
            Fields(seen, f"answers {number} {where}")
        undo = [UndoRecord.from_dict(entry, record_label(name, number))
                for number, entry in enumerate(read.items("undo"), 1)]
        for number, entry in enumerate(undo, 1):
            if entry.answers is not None and not 0 <= entry.answers < len(answers_seen):
                raise StateRecordError(f"The state file's {record_label(name, number)} names answers the step's "
                                       f"record does not hold (number {entry.answers}).",
                                       "The state file was edited by hand or damaged. Undo that change by hand "
                                       "if it was made, then remove the record from the state file.")
        error = read.optional_mapping("error")
        return cls(
            name=name, status=status, updated=read.optional_text("updated"),
            started=read.optional_text("started"), finished=read.optional_text("finished"),
            summary=read.text("summary"), plan=check_plan(read.data.get("plan"), f"plan {where}"),
            changes=[ChangeRecord.from_dict(c, f"change {number} {where}")
                     for number, c in enumerate(read.items("changes"), 1)],
            undo=undo,
            checks=[check_from_dict(c, f"check {number} {where}") for number, c in enumerate(read.items("checks"), 1)],
            error=StepError.from_dict(error, f"error {where}") if error is not None else None,
            history=[HistoryEntry.from_dict(h, f"history entry {number} {where}")
                     for number, h in enumerate(read.items("history"), 1)],
            answers_seen=list(answers_seen))


@dataclass
class State:
    setup: str
    answers: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    serial: int = 0
    schema_version: int = SCHEMA_VERSION
    tool_version: str = ""

    def step(self, name: str) -> StepRecord:
        """The record of a step, created pending on first use."""
        if name not in self.steps:
            self.steps[name] = StepRecord(name=name)
        return self.steps[name]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "serial": self.serial,
                "tool_version": self.tool_version, "setup": self.setup, "created": self.created,
                "answers": self.answers, "runs": self.runs,
                "steps": {name: record.to_dict() for name, record in self.steps.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = migrate(data)
        try:
            answers = data.get("answers") or {}
            steps = data.get("steps") or {}
            if not isinstance(answers, dict) or not isinstance(steps, dict):
                raise TypeError("answers and steps must be mappings")
            return cls(setup=data["setup"], answers=answers,
                       steps={name: StepRecord.from_dict(rec, name) for name, rec in steps.items()},
                       runs=list(data.get("runs") or []), created=data.get("created") or now_iso(),
                       serial=int(data.get("serial", 0)),
                       schema_version=int(data["schema_version"]),
                       tool_version=data.get("tool_version", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"The state file is not one this tool wrote ({exc}).",
                             "Point --state at the right file, or move this one away to start afresh.") from exc


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a state document up to ``SCHEMA_VERSION`` through ``MIGRATIONS``."""
    if not isinstance(data, dict) or "schema_version" not in data:
        raise StateError("The state file has no schema_version; it was not written by this tool.",
                         "Point --state at the right file, or move this one away to start afresh.")
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StateError(f"The state file's schema_version {version!r} is not valid.")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"The state file was written by a newer confluence-lb-wizard (schema {version}; "
            f"this one reads up to {SCHEMA_VERSION}).",
            "Upgrade confluence-lb-wizard, then run the command again.")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StateError(f"No migration from state schema {version} to {version + 1}.",
                             "Upgrade confluence-lb-wizard, or start afresh with a new --state file.")
        data = step(dict(data))
        if not isinstance(data, dict):
            raise StateError(f"The migration from state schema {version} to {version + 1} returned no document.")
        version += 1
        data["schema_version"] = version
    return data


class StateStore:
    """Loads, saves and locks one state file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Resolved once, before any lock: the same state reached through a symlinked folder
        # or file must take the same lock (beside the real file), not a second one.
        self.path = Path(os.path.realpath(Path(path).expanduser()))
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None

    def exists(self) -> bool:
        """Whether the state file is there (a resumable setup)."""
        return self.path.exists()

    def load(self) -> State:
        """Read, check and migrate the state file; ``StateError`` says what is wrong with it.

        Like OpenSSH's StrictModes, a state file (or folder) that someone else could have
        written is refused: rollback acts on what the file says.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError as exc:
            raise StateError(f"There is no state file at {self.path}.",
                             "Run `confluence-lb-wizard apply --answers FILE` first, or pass the right --state.") from exc
        except OSError as exc:
            raise StateError(f"Could not read the state file {self.path}: {exc.strerror}.",
                             "Check the file's permissions (it is readable only by its owner).") from exc
        try:
            check_private_folder(self.path.parent)
            check_private_file(self.path, os.fstat(fd))
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            raw = b"".join(chunks)
        except OSError as exc:
            raise StateError(f"Could not read the state file {self.path}: {exc.strerror}.",
                             "Check the file's permissions (it is readable only by its owner).") from exc
        finally:
            os.close(fd)
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StateError(f"The state file {self.path} is not UTF-8 text.",
                             "It was not written by this tool; restore it or move it away.") from exc
        except json.JSONDecodeError as exc:
            raise StateError(f"The state file {self.path} is not valid JSON (line {exc.lineno}).",
                             "It was not written by this tool, or was edited by hand; restore it or move it away.") from exc
        return State.from_dict(data)

    def load_or_new(self, setup: str) -> State:
        """The saved state, or a fresh one for ``setup`` when there is none yet."""
        return self.load() if self.exists() else State(setup=setup)

    def save(self, state: State) -> None:
        """Write the state atomically with mode 0600 and a serial one higher.

        The new text goes to a temp file beside the state (created 0600 whatever
        the umask), is fsynced, renamed over the state and the folder fsynced: a
        run killed at any moment leaves the old file or the new one, whole. The
        in-memory serial moves only once the new file is in place.
        """
        document = redact_state(state.to_dict())
        document["serial"] = state.serial + 1
        document["schema_version"] = SCHEMA_VERSION
        payload = state_json(document).encode("utf-8")
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            check_private_folder(directory)
            # mkstemp creates with O_EXCL (and O_NOFOLLOW): a planted name is never followed.
            descriptor, temp_name = tempfile.mkstemp(prefix=self._temp_prefix, suffix=_TEMP_SUFFIX,
                                                     dir=directory)
        except OSError as exc:
            raise StateError(f"Could not write the state file in {directory}: {exc.strerror}.",
                             "Choose a writable place with --state.") from exc
        try:
            try:
                os.fchmod(descriptor, 0o600)
                view = memoryview(payload)
                while view:
                    view = view[os.write(descriptor, view):]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temp_name, self.path)
        except BaseException as exc:
            # Failed or interrupted (Ctrl-C) before the rename: the previous state
            # file is intact, and the temp file must not linger.
            try:
                os.remove(temp_name)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise StateError(f"Could not save the state file {self.path}: {exc.strerror}.",
                                 "Free disk space or fix permissions; the previous state file is intact.") from exc
            raise
        state.serial = document["serial"]
        state.schema_version = SCHEMA_VERSION
        _fsync_directory(directory)
        self._remove_stale_temps(directory)

    @property
    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _remove_stale_temps(self, directory: Path) -> None:
        """Remove this state file's temp files left by a save that was killed."""
        prefix, cutoff = self._temp_prefix, time.time() - STALE_TEMP_SECONDS
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(_TEMP_SUFFIX)):
                continue
            # mkstemp's random part has no dot; a dot means another file's temp
            # (wiki.state.json.bak's temps also start with ".wiki.state.json.").
            if "." in name[len(prefix):-len(_TEMP_SUFFIX)]:
                continue
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.remove(entry.path)
            except OSError:
                pass  # tidying only; a temp file is never read

    # Locking.

    def acquire(self, command: str = "") -> None:
        """Take the lock or raise ``StateLockedError`` naming who holds it.

        The lock is an ``flock`` on a file beside the state: the kernel drops it
        when the holder exits or is killed, so a stale holder never keeps it. The
        file's text (pid, host, user, time, command) only explains who holds it.
        Taking a lock this store already holds does nothing.
        """
        if self._lock_fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"Could not open the lock file {self.lock_path}: {exc.strerror}.",
                             "Choose a writable place with --state.") from exc
        check_private_folder(self.path.parent)
        fd = _open_lock(self.lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateError(f"Could not lock {self.lock_path}: {exc.strerror}.") from exc
            raise StateLockedError(
                f"Another run is using this setup's state: {describe_holder(holder)}.",
                "Wait for it to finish, or stop it; the lock frees itself when that process ends.") from exc
        # The lock is ours; what the file says about an earlier holder is stale.
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(),
                  "since": now_iso(), "command": command}
        text = json.dumps(holder).encode()
        try:
            # Write, then cut: a contender reading meanwhile sees the new record
            # (perhaps followed by the old one's tail, which _read_holder ignores),
            # never an empty file.
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise StateError(f"Could not write the lock file {self.lock_path}: {exc.strerror}.",
                             "Free disk space or fix permissions.") from exc
        self._lock_fd = fd

    @property
    def locked(self) -> bool:
        """Whether this store holds the lock."""
        return self._lock_fd is not None

    def release(self) -> None:
        """Give the lock up (nothing happens when this store does not hold it)."""
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock(path: Path) -> int:
    """The lock file, opened without following a symlink (a link planted there would make the
    holder record overwrite its target) and checked to be a plain file of ours."""
    flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(f"The lock file {path} is a symbolic link; the wizard never follows one there.",
                             f"Remove it (`rm {shlex.quote(str(path))}`), check who put it there, then run the "
                             "command again.") from exc
        raise StateError(f"Could not open the lock file {path}: {exc.strerror}.",
                         "Choose a writable place with --state.") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateError(f"The lock file {path} is not a regular file.",
                             f"Remove it (`rm -r {shlex.quote(str(path))}`), then run the command again.")
        check_private_file(path, info, what="lock file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_private_folder(directory: Path) -> None:
    """The state's folder must belong to this user (or root) and be writable by no one else,
    as OpenSSH's StrictModes asks of ~/.ssh; else ``StateError`` with the fix."""
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise StateError(f"Could not inspect the state folder {directory}: {exc.strerror}.",
                         "Choose a folder of your own with --state.") from exc
    quoted = shlex.quote(str(directory))
    if not _trusted_owner(info.st_uid):
        raise StateError(f"The state folder {directory} belongs to another user (uid {info.st_uid}); whoever owns "
                         "it could replace the state file or plant its lock.",
                         "Keep the state in a folder of your own (--state), or "
                         f"`chown {_user() or os.geteuid()} {quoted}`.")
    if info.st_mode & 0o022:
        raise StateError(f"The state folder {directory} is writable by other users (mode "
                         f"{stat.S_IMODE(info.st_mode):04o}); anyone there could replace the state file, whose "
                         "undo records rollback acts on, or plant its lock.",
                         f"`chmod go-w {quoted}`, or keep the state in a folder of your own (--state).")


def check_private_file(path: Path, info: os.stat_result, *, what: str = "state file") -> None:
    """A state (or lock) file must belong to this user (or root) and be writable by no one else.
    (One only readable by others holds no secret and is rewritten 0600 by the next save.)"""
    quoted = shlex.quote(str(path))
    if not _trusted_owner(info.st_uid):
        raise StateError(f"The {what} {path} belongs to another user (uid {info.st_uid}); the wizard does not "
                         "act on a file someone else could have written.",
                         f"Check its content, then `chown {_user() or os.geteuid()} {quoted}` and `chmod 600 {quoted}`.")
    if info.st_mode & 0o022:
        raise StateError(f"The {what} {path} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}; "
                         "the wizard writes it 0600), so anyone could have edited what rollback would act on.",
                         f"Check its content, then `chmod 600 {quoted}`.")


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some filesystems cannot sync a folder, which is no error."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES):
            return
        raise StateError(f"The state file {directory} was saved, but its folder could not be "
                         f"flushed to disk: {exc.strerror}.",
                         "Check the disk; the file may revert to the previous state after a power loss.") from exc


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder record at the start of the lock file (trailing bytes ignored)."""
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        holder, _ = json.JSONDecoder().raw_decode(raw.lstrip())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """Who holds a lock, for a message: pid and host, then user, since when and what it runs."""
    if not holder or not isinstance(holder, dict):
        return "a process that did not say who it is"
    parts = [f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"]
    if holder.get("user"):
        parts.append(f"user {holder['user']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    if holder.get("command"):
        parts.append(f"running `{holder['command']}`")
    return ", ".join(parts)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers; the pid still identifies the holder
        return ""


def state_json(document: dict[str, Any]) -> str:
    """The state file's text: one line per top-level key and one per step.

    Readable and diffable like an indented file, yet every value is encoded by json's C
    encoder: ``indent=`` switches to the pure-Python encoder, which made each save (one
    before and one after every change of every node) cost milliseconds of CPU.
    """
    def entry(key: str, value: Any, margin: str) -> str:
        return f"{margin}{json.dumps(key)}: {json.dumps(value)}"

    lines = []
    for key, value in document.items():
        if key == "steps" and isinstance(value, dict) and value:
            steps = ",\n".join(entry(name, record, "    ") for name, record in value.items())
            lines.append(f'  "steps": {{\n{steps}\n  }}')
        else:
            lines.append(entry(key, value, "  "))
    return "{\n" + ",\n".join(lines) + "\n}\n"


#: Keys whose string value is a command the wizard may run again (the answers' *_command and
#: psql, a change's command and its undo, a plan's reload/configtest): masking inside one would
#: corrupt it, so one is masked only when it carries a literal secret, which the answers refuse.
_COMMAND_KEYS = frozenset({"command", "undo", "reload", "configtest", "includes", "psql", "manual"})


def _is_command_key(key: Any) -> bool:
    return isinstance(key, str) and (key in _COMMAND_KEYS or key.endswith("_command"))


def redact_state(data: Any) -> Any:
    """Mask anything that looks like a secret in every string of the state.

    Strings go through ``redact``; a value stored under a secret's name
    (``{"password": ...}``) is masked whole, whatever it looks like. Two things are never
    rewritten, because rollback and later runs act on them: a step's undo records
    (structured data: paths, checksums, names; never a secret) and a command that carries
    no literal secret (``RELOAD_TOKEN=$(cat f) apache2ctl graceful`` stays as it is).
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, (list, tuple)):
        return [redact_state(item) for item in data]
    if isinstance(data, dict):
        return {key: _redact_value(key, value) for key, value in data.items()}
    return data


def _redact_value(key: Any, value: Any) -> Any:
    if key == "undo" and isinstance(value, list):
        return value  # a step's undo records: never masked in place (see redact_state)
    if _is_command_key(key) and isinstance(value, str):
        from wizard.engine.command_secrets import literal_secret

        return redact(value) if literal_secret(value) else value
    if (isinstance(key, str) and is_secret_name(key) and value not in ("", None)
            and isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return MASK
    return redact_state(value)
