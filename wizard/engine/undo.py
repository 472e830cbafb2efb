"""The generic undo actions (restore a file, remove a created file) and the checks every
undo record passes before rollback performs it.

Steps record these through ``Journal.undo`` before they act; rollback (and the
clean-up after a failed apply) performs them newest first. Each action checks
what is there before acting, so performing it twice, or for a change that was
never made, does no harm.

An undo record comes back from the state file, which anyone able to write that file
can edit; so a record is data that rollback checks against the setup, never an
instruction. ``vet`` accepts a file record only for a path the setup could have
changed (each step's ``undo_paths``: the nodes' server.xml and setenv.sh under
their install_dir, the balancer's config_path, and backups beside them), and rebuilds the
description and the manual command from the checked data: the text the file carries
is never shown or run. No record holds a command: a step that undoes by running one
(a2dissite, a reload) records what to undo, and builds the command itself from the
answers. The ``run`` records of older versions are read, but never executed.

A record's shape (kind, target, data as an object) is checked when the state file is read
(``wizard.engine.records.UndoRecord``); the data of each kind is then read into a typed
value (``RestoreFile``, ``RemoveFile`` here; each step's own kinds in the step) that the
checks and the undo itself use.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wizard.answers_model import Answers
from wizard.engine.model import BALANCER, UndoAction
from wizard.engine.records import StateRecordError, UndoRecord
from wizard.engine.records import record_label as record_label  # where the runner and older callers look
from wizard.errors import WizardError
from wizard.transport.hosts import BACKUP_TAG, Host, sha256

if TYPE_CHECKING:
    from wizard.engine.step import Context, Step

RESTORE_FILE = "restore-file"
REMOVE_FILE = "remove-file"
#: The kind older versions recorded with a free shell command; read, refused, never run.
LEGACY_RUN = "run"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BACKUP_SUFFIX = r"\.\d{8}T\d{12}Z\." + re.escape(BACKUP_TAG) + r"-backup"


class UndoRecordError(WizardError):
    """An undo record of the state file that rollback will not perform (it names the record
    and what to do by hand)."""


class LegacyCommandError(UndoRecordError):
    """A ``run`` record of an older version: the command it holds is never executed; the
    admin is told what it said, to run by hand if it is right."""


def host_for(ctx: Context, target: str) -> Host:
    return ctx.hosts.balancer() if target == BALANCER else ctx.hosts.node(target)


# --------------------------------------------------------------------------- the file kinds, typed


@dataclass(frozen=True)
class RestoreFile:
    """The data of a restore-file record: ``path`` was replaced; its original is at ``backup``
    (beside it, named as the wizard names backups); the checksums before and after the change."""

    path: str
    backup: str
    sha256_before: str
    sha256_after: str

    def to_data(self) -> dict[str, Any]:
        return {"path": self.path, "backup": self.backup, "sha256_before": self.sha256_before,
                "sha256_after": self.sha256_after}


@dataclass(frozen=True)
class RemoveFile:
    """The data of a remove-file record: the wizard created ``path``, with this checksum."""

    path: str
    sha256_after: str

    def to_data(self) -> dict[str, Any]:
        return {"path": self.path, "sha256_after": self.sha256_after}


FileUndo = RestoreFile | RemoveFile


# --------------------------------------------------------------------------- recording


def restore_file_action(target: str, path: str, backup: str, before: bytes, after: bytes) -> UndoAction:
    """Undo of replacing ``path`` (its original copied to ``backup``)."""
    return file_action(target, RestoreFile(path, backup, sha256(before), sha256(after)))


def remove_file_action(target: str, path: str, after: bytes) -> UndoAction:
    """Undo of creating ``path``."""
    return file_action(target, RemoveFile(path, sha256(after)))


def file_action(target: str, data: FileUndo) -> UndoAction:
    """The action of a file record, its description and manual command built from its data (quoted)."""
    path, where = data.path, target
    if isinstance(data, RestoreFile):
        return UndoAction(kind=RESTORE_FILE, target=target,
                          description=f"Put back {path} on {where} as it was before the change (backup "
                                      f"{data.backup}).",
                          manual=f"cp -p -- {shlex.quote(data.backup)} {shlex.quote(path)}", data=data.to_data())
    return UndoAction(kind=REMOVE_FILE, target=target, description=f"Remove {path} on {where}, which the wizard created.",
                      manual=f"rm -- {shlex.quote(path)}", data=data.to_data())


# --------------------------------------------------------------------------- checking


def parse_record(entry: Any, label: str) -> UndoAction:
    """The action of one raw record of the state file (``UndoRecord.from_dict``), its own description
    dropped, or ``UndoRecordError`` naming what is missing."""
    try:
        return UndoRecord.from_dict(entry, label).untrusted_action()
    except StateRecordError as exc:
        raise UndoRecordError(f"{exc.message} Rollback refused and nothing was undone.", _EDITED_HINT) from exc


_EDITED_HINT = ("The state file was edited by hand or damaged. Find out what that change was and undo it by hand "
                "if it was made, then remove the record from the state file (or restore the file from a backup).")


def check_target(answers: Answers, action: UndoAction, label: str) -> None:
    """The record's target must be the balancer or a node of these answers."""
    if action.target != BALANCER and action.target not in {n.name for n in answers.nodes}:
        raise UndoRecordError(
            f"The state file's {label} names the machine {action.target!r}, which is not a node of these "
            "answers nor the balancer; rollback refused and nothing was undone.", _EDITED_HINT)


def vet(step: Step[Any], answers: Answers, action: UndoAction, label: str) -> UndoAction:
    """The generic kinds checked against the setup and described afresh; any other kind refused."""
    if action.kind in (RESTORE_FILE, REMOVE_FILE):
        return vet_file_action(answers, action, label, step.undo_paths(answers, action.target))
    if action.kind == LEGACY_RUN:
        raise legacy_command_error(action, label)
    raise UndoRecordError(
        f"The state file's {label} is of the kind {action.kind!r}, which this version of the {step.name} step "
        "never records; rollback refused and nothing was undone.", _EDITED_HINT)


def legacy_command_error(action: UndoAction, label: str) -> LegacyCommandError:
    """The refusal of an old ``run`` record, with its command shown (quoted) to run by hand."""
    command = action.data.get("command")
    shown = command if isinstance(command, str) else "(no command)"
    where = "the balancer" if action.target == BALANCER else action.target
    return LegacyCommandError(
        f"The state file's {label} asks to run a command ({shown!r}); this version never runs commands taken "
        "from the state file, so it was not run.",
        f"Check that command, and if it is right run it by hand on {where}: {shown}")


def vet_file_action(answers: Answers, action: UndoAction, label: str, allowed: frozenset[str]) -> UndoAction:
    """A restore-file or remove-file record, checked: a path the setup could have changed, a backup
    beside it named as the wizard names backups, well-formed checksums."""
    check_target(answers, action, label)
    return file_action(action.target, file_undo(action, label, allowed))


def file_undo(action: UndoAction, label: str, allowed: frozenset[str] | None = None) -> FileUndo:
    """The typed data of a restore-file or remove-file action, each key checked (and the path one of
    ``allowed``, when given), or ``UndoRecordError`` naming the record and what is wrong."""
    data = action.data
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise UndoRecordError(f"The state file's {label} ({action.kind} on {action.target}) has no path; "
                              "rollback refused and nothing was undone.", _EDITED_HINT)
    if not _plain_path(path) or (allowed is not None and path not in allowed):
        raise UndoRecordError(
            f"The state file's {label} would {'restore' if action.kind == RESTORE_FILE else 'remove'} {path!r} on "
            f"{action.target}, which is not a file this setup changes there ({_listing(allowed or frozenset())}). "
            "Rollback refused and nothing was undone.", _EDITED_HINT)
    checksums = ("sha256_before", "sha256_after") if action.kind == RESTORE_FILE else ("sha256_after",)
    if any(not isinstance(data.get(key), str) or not _SHA256.fullmatch(data[key]) for key in checksums):
        raise UndoRecordError(f"The state file's {label} ({action.kind} of {path}) has no valid checksum; "
                              "rollback refused and nothing was undone.", _EDITED_HINT)
    if action.kind != RESTORE_FILE:
        return RemoveFile(path, data["sha256_after"])
    backup = data.get("backup")
    if not isinstance(backup, str) or not re.fullmatch(re.escape(path) + _BACKUP_SUFFIX, backup):
        raise UndoRecordError(
            f"The state file's {label} would restore {path} from {backup!r}, which is not a backup the "
            f"wizard makes (beside the file: {path}.<time>.{BACKUP_TAG}-backup). Rollback refused and "
            "nothing was undone.", _EDITED_HINT)
    return RestoreFile(path, backup, data["sha256_before"], data["sha256_after"])


def _plain_path(path: str) -> bool:
    return (path.startswith("/") and posixpath.normpath(path) == path
            and not any(ord(ch) < 32 or ord(ch) == 127 for ch in path))


def _listing(paths: frozenset[str]) -> str:
    return ", ".join(sorted(paths)) if paths else "none"


# --------------------------------------------------------------------------- performing


def perform(ctx: Context, action: UndoAction) -> None:
    """Carry out one generic undo action (checked by ``vet``), or raise WizardError saying why not."""
    if action.kind == LEGACY_RUN:
        raise legacy_command_error(action, f"{action.kind} record")
    if action.kind not in (RESTORE_FILE, REMOVE_FILE):
        raise WizardError(f"This version does not know how to undo a {action.kind!r} change.",
                          "Undo it by hand.")
    data = file_undo(action, f"{action.kind} record")
    host = host_for(ctx, action.target)
    if isinstance(data, RestoreFile):
        _restore_file(host, data, action.manual)
    else:
        _remove_file(host, data, action.manual)


def _restore_file(host: Host, data: RestoreFile, manual: str) -> None:
    path, backup = data.path, data.backup
    current = host.read_bytes(path) if host.exists(path) else None
    if current is not None and sha256(current) == data.sha256_before:
        return  # never changed, or already restored
    if current is not None and sha256(current) != data.sha256_after:
        raise WizardError(
            f"{path} on {host.label} was changed by someone else after the wizard wrote it; "
            "it was left alone rather than overwrite their change.",
            f"Compare it with the backup and restore by hand if right: {manual}")
    if not host.exists(backup):
        raise WizardError(f"The backup {backup} on {host.label} is gone, so {path} cannot be restored.",
                          "Restore the file from your own backups.")
    original = host.read_bytes(backup)
    if sha256(original) != data.sha256_before:
        raise WizardError(f"The backup {backup} on {host.label} no longer matches the original file.",
                          "Restore the file from your own backups.")
    host.write_atomic(path, original, mode=host.stat(backup).mode)


def _remove_file(host: Host, data: RemoveFile, manual: str) -> None:
    path = data.path
    if not host.exists(path):
        return
    if sha256(host.read_bytes(path)) != data.sha256_after:
        raise WizardError(f"{path} on {host.label} was changed after the wizard created it; it was left in place.",
                          f"Remove it by hand if it should go: {manual}")
    host.remove(path)
