"""The answers being typed in the inventory forms, checked as you type and saved as you go.

The draft is the same plain dictionary an answers file holds, so the checks are
``wizard.answers.find_problems`` (nothing is validated twice, differently) and
saving it is a YAML dump. It holds no secret: the forms have no field for one,
and ``find_problems`` flags any key that smells like one.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from wizard.errors import Problem, StateError, WizardError

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def draft_path() -> Path:
    """Where a new setup's unfinished answers wait (beside the state files)."""
    from wizard.engine.state import default_state_path

    return default_state_path("x").parent / "new-setup.draft.yaml"


def set_earlier_draft_aside() -> Path | None:
    """Before a new draft takes the place of an unfinished one: keep the earlier one beside it
    (``new-setup.draft.yaml.previous``), so starting anew never loses typed answers. Where it
    went, or None when there was none (or it could not be moved: then it is overwritten)."""
    current = draft_path()
    if not current.exists():
        return None
    kept = current.with_name(current.name + ".previous")
    try:
        current.replace(kept)
    except OSError:
        return None
    return kept


def edit_draft_path(state_path: Path, name: str) -> Path:
    """Where changes to a setup's answers wait, saved as typed, until they are saved as its answers."""
    return state_path.with_name(f"{name}.edit.draft.yaml")


def answers_path_for(state_path: Path, name: str) -> Path:
    """Where a setup built in the forms keeps its answers file: beside its state."""
    return state_path.parent / f"{name}.answers.yaml"


def write_private(path: Path, text: str) -> None:
    """Write a file atomically (temp file beside it, rename), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)
        raise


def split_key(key: str) -> list[str | int]:
    """``nodes[1].access.port`` -> ["nodes", 1, "access", "port"]."""
    return [name if name else int(index) for name, index in _TOKEN.findall(key)]


def get_key(data: Any, key: str, default: Any = None) -> Any:
    current = data
    for part in split_key(key):
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return default
    return current


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key, making the mappings on the way; None removes the key."""
    parts = split_key(key)
    current: Any = data
    for part, following in itertools.pairwise(parts):
        if isinstance(part, int):
            current = current[part]
            continue
        if not isinstance(current.get(part), (dict, list)):
            if value is None:
                return
            current[part] = [] if isinstance(following, int) else {}
        current = current[part]
    last = parts[-1]
    if isinstance(last, int):
        if last == len(current):
            current.append(value)  # a new node, kept at the end
        else:
            current[last] = value
    elif value is None:
        current.pop(last, None)
    else:
        current[last] = value


def under(problems: list[Problem], prefix: str) -> list[Problem]:
    """The problems of one section (``nodes[0]``, ``balancer.apache``; "" is every one)."""
    if not prefix:
        return list(problems)
    return [p for p in problems if p.key == prefix or p.key.startswith((prefix + ".", prefix + "["))]


class Draft:
    """A partial answers dictionary, its problems, and where it is saved (None: not saved)."""

    def __init__(self, raw: dict[str, Any] | None = None, path: Path | None = None, *,
                 editing: str | None = None) -> None:
        self.raw: dict[str, Any] = copy.deepcopy(raw) if raw else {"version": 1}
        self.raw.setdefault("version", 1)
        self.raw.setdefault("nodes", [])
        self.path = path
        #: The name of the setup whose answers are being edited (it cannot change: it names the state).
        self.editing = editing

    @classmethod
    def load(cls, path: Path, *, editing: str | None = None) -> Draft:
        """A draft saved earlier; a StateError when it cannot be read back."""
        from wizard.answers import load_answers_file

        try:
            raw = load_answers_file(path)
        except WizardError as exc:
            raise StateError(f"The unfinished setup in {path} cannot be read: {exc.message}",
                             f"Remove {path} to start afresh.") from exc
        return cls(raw if isinstance(raw, dict) else {}, path, editing=editing)

    def problems(self) -> list[Problem]:
        """Every problem of the answers as they will be saved (see ``final``)."""
        from wizard.answers import (
            find_problems,  # loaded with the first form, not with the app
        )

        return find_problems(self.final())

    def final(self) -> dict[str, Any]:
        """The answers to save: without the options of the balancer kind not chosen (typed
        there before the admin changed their mind, and kept in the draft meanwhile)."""
        raw = copy.deepcopy(self.raw)
        balancer = raw.get("balancer")
        if isinstance(balancer, dict) and balancer.get("kind") in ("apache", "alb"):
            for other in {"apache", "alb"} - {balancer["kind"]}:
                balancer.pop(other, None)
        return raw

    def with_value(self, key: str, value: Any) -> Draft:
        """A copy of the draft with one key changed (to check a form before keeping it)."""
        trial = Draft(self.raw)
        set_key(trial.raw, key, value)
        return trial

    @property
    def nodes(self) -> list[dict[str, Any]]:
        nodes = self.raw.get("nodes")
        if not isinstance(nodes, list):
            nodes = self.raw["nodes"] = []
        return nodes

    def save(self) -> None:
        """Write the draft, readable by its owner only (it says where the machines are)."""
        import yaml

        if self.path is None:
            return
        write_private(self.path, "# An unfinished confluence-lb-wizard setup, saved as you typed; the wizard "
                                 "offers to continue it.\n"
                      + yaml.safe_dump(self.raw, sort_keys=False, default_flow_style=False))

    def discard(self) -> None:
        """Remove the saved draft; later saves do nothing (the answers file took its place)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.path = None


def balancer_section(draft: Draft, kind: str) -> dict:
    """The draft's options for one balancer kind (made empty when absent)."""
    balancer = draft.raw.setdefault("balancer", {})
    section = balancer.get(kind)
    if not isinstance(section, dict):
        section = balancer[kind] = {}
    return section
