"""Changing a file on a host the safe way, shared by every step that writes one.

The order is the point: check the file is still what the plan was made from,
record the undo (with the backup's path) in the state, take the backup, and
only then replace the file atomically.
"""

from __future__ import annotations

from wizard.engine.step import Journal
from wizard.engine.undo import remove_file_action, restore_file_action
from wizard.errors import ChangedSincePlanError
from wizard.transport.hosts import Host, backup_path_for, sha256


def link_note(target: str | None) -> str:
    """What a plan says of a file that is a symbolic link: its target is edited, the link stays."""
    return f" (a symbolic link: its target {target} is what changes; the link stays)" if target else ""


def rewrite_unchanged(host: Host, path: str, *, read: bytes, new: bytes) -> None:
    """Write ``new`` over ``path`` atomically if the file still holds ``read`` (else
    ``ChangedSincePlanError``, nothing written), keeping no backup: for a change whose undo is
    its own opposite made the same way (a balancer's drain and undrain), whose caller holds
    ``read`` to put back should the server refuse ``new``."""
    if not host.exists(path) or sha256(host.read_bytes(path)) != sha256(read):
        raise ChangedSincePlanError(
            f"{path} on {host.label} changed after the wizard read it; nothing was written.",
            "Someone else edited it meanwhile. Run the step again to work from what is there now.")
    host.write_atomic(path, new)


def replace_file(host: Host, target: str, path: str, *, planned_from: bytes | None,
                 new: bytes, journal: Journal, summary: str) -> None:
    """Write ``new`` to ``path`` if the file still holds ``planned_from``.

    ``planned_from`` is None when the plan expected no file there.
    """
    exists = host.exists(path)
    current = host.read_bytes(path) if exists else None
    if (current is None) != (planned_from is None) or (
            current is not None and planned_from is not None and sha256(current) != sha256(planned_from)):
        raise ChangedSincePlanError(
            f"{path} on {host.label} changed after the plan was made; nothing was written.",
            "Someone else edited it meanwhile. Run the step again to plan from what is there now.")
    if current is None:
        journal.undo(remove_file_action(target, path, new))
        host.write_atomic(path, new)
        journal.changed(target=target, kind="file", summary=summary, path=path, backup=None,
                        sha256_before=None, sha256_after=sha256(new))
        return
    backup = backup_path_for(path)
    journal.undo(restore_file_action(target, path, backup, current, new))
    host.copy(path, backup)
    host.write_atomic(path, new)
    journal.changed(target=target, kind="file", summary=summary, path=path, backup=backup,
                    sha256_before=sha256(current), sha256_after=sha256(new))
