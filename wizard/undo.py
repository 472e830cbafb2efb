"""The generic undo actions: restore a file, remove a created file, run a command.

Steps record these through ``Journal.undo`` before they act; rollback (and the
clean-up after a failed apply) performs them newest first. Each action checks
what is there before acting, so performing it twice, or for a change that was
never made, does no harm.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from wizard.errors import WizardError
from wizard.hosts import Host, sha256
from wizard.model import BALANCER, UndoAction

if TYPE_CHECKING:
    from wizard.steps.base import Context


def host_for(ctx: Context, target: str) -> Host:
    return ctx.hosts.balancer() if target == BALANCER else ctx.hosts.node(target)


def restore_file_action(target: str, path: str, backup: str, before: bytes, after: bytes) -> UndoAction:
    return UndoAction(
        kind="restore-file", target=target,
        description=f"Put back {path} as it was before the change (backup {backup}).",
        manual=f"cp -p {shlex.quote(backup)} {shlex.quote(path)}",
        data={"path": path, "backup": backup, "sha256_before": sha256(before),
              "sha256_after": sha256(after)})


def remove_file_action(target: str, path: str, after: bytes) -> UndoAction:
    return UndoAction(
        kind="remove-file", target=target,
        description=f"Remove {path}, which the wizard created.",
        manual=f"rm {shlex.quote(path)}",
        data={"path": path, "sha256_after": sha256(after)})


def run_command_action(target: str, command: str, description: str, *, sudo: bool | None = None) -> UndoAction:
    return UndoAction(kind="run", target=target, description=description, manual=command,
                      data={"command": command, "sudo": sudo})


def perform(ctx: Context, action: UndoAction) -> None:
    """Carry out one generic undo action, or raise WizardError saying why not."""
    handler = _HANDLERS.get(action.kind)
    if handler is None:
        raise WizardError(f"This version does not know how to undo a {action.kind!r} change.",
                          f"Undo it by hand: {action.manual}")
    handler(host_for(ctx, action.target), action)


def _restore_file(host: Host, action: UndoAction) -> None:
    path, backup = action.data["path"], action.data["backup"]
    current = host.read_bytes(path) if host.exists(path) else None
    if current is not None and sha256(current) == action.data["sha256_before"]:
        return  # never changed, or already restored
    if current is not None and sha256(current) != action.data["sha256_after"]:
        raise WizardError(
            f"{path} on {host.label} was changed by someone else after the wizard wrote it; "
            "it was left alone rather than overwrite their change.",
            f"Compare it with the backup and restore by hand if right: {action.manual}")
    if not host.exists(backup):
        raise WizardError(f"The backup {backup} on {host.label} is gone, so {path} cannot be restored.",
                          "Restore the file from your own backups.")
    original = host.read_bytes(backup)
    if sha256(original) != action.data["sha256_before"]:
        raise WizardError(f"The backup {backup} on {host.label} no longer matches the original file.",
                          "Restore the file from your own backups.")
    host.write_atomic(path, original, mode=host.stat(backup).mode)


def _remove_file(host: Host, action: UndoAction) -> None:
    path = action.data["path"]
    if not host.exists(path):
        return
    if sha256(host.read_bytes(path)) != action.data["sha256_after"]:
        raise WizardError(f"{path} on {host.label} was changed after the wizard created it; it was left in place.",
                          f"Remove it by hand if it should go: {action.manual}")
    host.remove(path)


def _run(host: Host, action: UndoAction) -> None:
    host.run_checked(action.data["command"], sudo=action.data.get("sudo"),
                     what="The undo command")


_HANDLERS = {"restore-file": _restore_file, "remove-file": _remove_file, "run": _run}
