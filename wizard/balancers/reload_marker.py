"""The marks an apply leaves around a balancer's reload, so that a killed apply is finished next time.

Before the first write an apply records a change "reload-pending", once the server runs the new
configuration "reloaded", both with the same ``reload_id`` (a name the state's masking of
secret-looking keys leaves alone). One without the other is an apply stopped before its reload.
"""

from __future__ import annotations

from wizard.engine.state import StepRecord

RELOAD_PENDING = "reload-pending"
RELOAD_DONE = "reloaded"


def pending_reload(record: StepRecord | None, undo_kind: str) -> str | None:
    """The reload id of the newest apply in ``record`` (a step's state record) that marked a reload
    pending and never finished it, while its reload undo (of ``undo_kind``) is still to be done.

    An apply that failed, or was rolled back, had its undo performed: its files are back and
    nothing is pending.
    """
    if record is None:
        return None
    finished = {c.reload_id for c in record.changes if c.kind == RELOAD_DONE}
    live = {u.action.data.get("reload_id") for u in record.undo if u.action.kind == undo_kind and not u.undone}
    for change in reversed(record.changes):
        reload_id = change.reload_id
        if change.kind == RELOAD_PENDING and reload_id and reload_id not in finished and reload_id in live:
            return reload_id
    return None


def reload_was_run(record: StepRecord | None, reload_id: str) -> bool:
    """Whether the apply that drew ``reload_id`` got as far as its reload (the change "reload" is
    recorded just before the reload command runs): if not, the server still runs what it ran
    before, and the reload's undo has nothing to do. Older versions named the id "token". A
    step without a record is taken to have reloaded."""
    if record is None:
        return True
    return any(c.kind == "reload" and (c.reload_id or c.extra.get("token")) == reload_id for c in record.changes)
