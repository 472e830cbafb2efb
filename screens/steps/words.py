"""Short words the faces show: step names for narrow columns, status glyphs, local times.

Plain strings (no Rich, no Textual), so the first screen and the prompts load them for nothing.
"""

from __future__ import annotations

from datetime import datetime

#: Short names for the checklist, which is narrow at 80 columns.
SHORT_TITLES = {"answers": "Answers", "preflight": "Preflight", "base-url": "Base URL",
                "connector": "Connector", "restart": "Restart", "balancer": "Balancer",
                "verify": "Verify"}

#: One glyph per step status (the state file's statuses), plus "running" for the step in hand.
STATUS_ICONS = {"pending": "○", "planned": "◔", "applied": "●", "verified": "✔", "failed": "✘",
                "rolled-back": "↺", "running": "▶", "complete": "✔", "incomplete": "…"}


def short_title(name: str, fallback: str = "") -> str:
    return SHORT_TITLES.get(name, fallback or name)


def local_time(iso: str | None) -> str:
    """An ISO time from the state as the admin's local HH:MM ("" when there is none)."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:  # a hand-edited state; show nothing rather than fail
        return ""


def local_datetime(iso: str | None) -> str:
    """An ISO time as the admin's local date and time, for lists of setups."""
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""
