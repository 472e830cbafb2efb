"""Finding and opening a setup, shared by the Textual app and the prompts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wizard.answers import load_answers_file, validate
from wizard.answers_model import Answers
from wizard.state import State, StateStore, default_state_path
from wizard.steps import available


@dataclass
class SavedSetup:
    path: Path
    setup: str
    done: int
    total: int
    updated: str | None


def saved_setups(folder: Path | None = None) -> list[SavedSetup]:
    """The setups with a state file in the default folder, with their progress."""
    folder = folder or default_state_path("x").parent
    found = []
    for path in sorted(folder.glob("*.state.json")) if folder.is_dir() else []:
        try:
            state = StateStore(path).load()
        except Exception:  # an unreadable file is listed by `status`, not here
            continue
        names = available()
        done = sum(1 for name in names if name in state.steps and state.steps[name].done)
        updated = max((r.updated for r in state.steps.values() if r.updated), default=None)
        found.append(SavedSetup(path, state.setup, done, len(names), updated))
    return found


def answers_from_file(path: str) -> Answers:
    return validate(load_answers_file(path), source=path)


def answers_from_state(path: Path) -> tuple[State, Answers]:
    state = StateStore(path).load()
    return state, validate(state.answers, source=str(path))
