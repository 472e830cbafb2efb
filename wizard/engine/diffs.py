"""The diff of a planned file change, as the plan, the state and the runbook show it (masked)."""

from __future__ import annotations

import difflib

from wizard.engine.redact import redact


def unified_diff(node: str, path: str, before: str, after: str) -> str:
    """A masked unified diff of a file's change, for the plan, the state and the runbook."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"{node}:{path}", tofile=f"{node}:{path} (planned)", n=2)
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return redact(text.replace("\r", ""))
