"""What the admin chose in the app and expects next time: the theme.

Kept beside the saved setups (``$XDG_STATE_HOME/confluence-lb-wizard/preferences.json``);
a missing or unreadable file means the defaults, and a file that cannot be written is
not worth an error: the choice is simply not remembered.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def preferences_path() -> Path:
    from wizard.engine.state import default_state_path

    return default_state_path("x").parent / "preferences.json"


def load_theme() -> str | None:
    try:
        data = json.loads(preferences_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    theme = data.get("theme") if isinstance(data, dict) else None
    return theme if isinstance(theme, str) else None


def save_theme(theme: str) -> None:
    path = preferences_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"theme": theme}) + "\n", encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        pass
