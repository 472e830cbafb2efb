"""The marks an apply leaves around a balancer's reload, so that a killed apply is finished next time.

Before the first write an apply records a change "reload-pending", once the server runs the new
configuration "reloaded", both with the same ``reload_id`` (a name the state's masking of
secret-looking keys leaves alone). One without the other is an apply stopped before its reload.
"""

from __future__ import annotations

from typing import Any

RELOAD_PENDING = "reload-pending"
RELOAD_DONE = "reloaded"


def pending_reload(record: Any, undo_kind: str) -> str | None:
    """The reload id of the newest apply in ``record`` (a step's state record) that marked a reload
    pending and never finished it, while its reload undo (of ``undo_kind``) is still to be done.

    An apply that failed, or was rolled back, had its undo performed: its files are back and
    nothing is pending.
    """
    changes = [c for c in getattr(record, "changes", None) or [] if isinstance(c, dict)]
    undo = [u for u in getattr(record, "undo", None) or [] if isinstance(u, dict)]
    finished = {c.get("reload_id") for c in changes if c.get("kind") == RELOAD_DONE}
    live = {(u.get("data") or {}).get("reload_id") for u in undo
            if u.get("kind") == undo_kind and not u.get("undone") and isinstance(u.get("data"), dict)}
    for change in reversed(changes):
        reload_id = change.get("reload_id")
        if change.get("kind") == RELOAD_PENDING and isinstance(reload_id, str) and reload_id \
                and reload_id not in finished and reload_id in live:
            return reload_id
    return None


def reload_was_run(record: Any, reload_id: str) -> bool:
    """Whether the apply that drew ``reload_id`` got as far as its reload (the change "reload" is
    recorded just before the reload command runs): if not, the server still runs what it ran
    before, and the reload's undo has nothing to do. Older versions named the id "token". A
    record that keeps no changes is taken to have reloaded."""
    changes = getattr(record, "changes", None)
    if changes is None:
        return True
    return any(isinstance(c, dict) and c.get("kind") == "reload" and c.get("reload_id", c.get("token")) == reload_id
               for c in changes)
