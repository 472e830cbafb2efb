"""The records of a step as the state file keeps them: typed, and checked when read back.

The state file is input like any other: whoever could write it could have put anything in
it (the file and its folder are held to OpenSSH's StrictModes, but a damaged or hand-edited
file still loads that far). So every record is read through ``from_dict``, which checks each
key for its type and raises ``StateRecordError`` naming the record and the key, with what to
do; a record that passes is a dataclass whose fields the code reads as attributes. Each
``to_dict`` writes back the same shape it reads, so a state file written by an earlier
version loads, and saves again unchanged but for what the run adds.

What an undo record may *do* (the paths it touches, the names it disables) is checked later,
against the setup, by the step that recorded it (``wizard.engine.undo``): this module only
makes sure a record is well-formed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from wizard.engine.model import Check, UndoAction
from wizard.errors import StateError

#: The statuses a step can be in, in the order a step goes through them.
STATUSES = ("pending", "planned", "applied", "verified", "failed", "rolled-back")

EDITED_HINT = ("The state file was edited by hand or damaged. Restore it from a backup, or correct that record "
               "by hand (if it is an undo record, undo its change by hand if it was made, then remove the "
               "record); or move the file away to start afresh.")


class StateRecordError(StateError):
    """A record of the state file that is not what this tool writes (it names the record and the key)."""


def record_label(step: str, number: int) -> str:
    """How a message names an undo record: ``undo record 2 of the balancer step``."""
    return f"undo record {number} of the {step} step"


class Fields:
    """The keys of one record of the state file, each read for the type it must have; any other
    type is a ``StateRecordError`` naming the record (``label``) and the key."""

    def __init__(self, data: Any, label: str) -> None:
        if not isinstance(data, dict):
            raise StateRecordError(f"The state file's {label} is not a record (it is {type(data).__name__}).",
                                   EDITED_HINT)
        self.data: dict[str, Any] = data
        self.label = label

    def refuse(self, key: str, wanted: str) -> NoReturn:
        seen = self.data.get(key)
        what = "is missing" if key not in self.data else f"is {type(seen).__name__} {_short(seen)}"
        raise StateRecordError(f"The state file's {self.label} has no valid {key} (it should be {wanted}; it {what}).",
                               EDITED_HINT)

    def text(self, key: str, default: str = "") -> str:
        """A string; ``default`` when the key is absent or null."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.refuse(key, "text")
        return value

    def string(self, key: str) -> str:
        """A string that is there (it may be empty)."""
        value = self.data.get(key)
        if not isinstance(value, str):
            self.refuse(key, "text")
        return value

    def required_text(self, key: str) -> str:
        """A string that is there and not empty."""
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            self.refuse(key, "non-empty text")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            self.refuse(key, "text or null")
        return value

    def optional_int(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.refuse(key, "a whole number or null")
        return value

    def optional_bool(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            self.refuse(key, "true, false or null")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        """An object; empty when the key is absent or null."""
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.refuse(key, "an object")
        return value

    def optional_mapping(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            self.refuse(key, "an object or null")
        return value

    def items(self, key: str) -> list[Any]:
        """A list; empty when the key is absent or null."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.refuse(key, "a list")
        return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- undo records


@dataclass
class UndoRecord:
    """One undo record of a step: the action (what to undo, as the step recorded it), when it was
    recorded and undone, and which of the step's ``answers_seen`` it was made with (None: a
    record from before they were kept, undone with today's answers)."""

    action: UndoAction
    recorded: str | None = None
    undone: str | None = None
    answers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {**self.action.to_dict(), "recorded": self.recorded, "undone": self.undone}
        if self.answers is not None:
            data["answers"] = self.answers
        return data

    @classmethod
    def from_dict(cls, data: Any, label: str) -> UndoRecord:
        """The record as the state file holds it, checked for its shape (not for what it would do)."""
        read = Fields(data, label)
        action = UndoAction(kind=read.required_text("kind"), target=read.required_text("target"),
                            description=read.text("description"), manual=read.text("manual"),
                            data=dict(read.mapping("data")))
        return cls(action=action, recorded=read.optional_text("recorded"), undone=read.optional_text("undone"),
                   answers=read.optional_int("answers"))

    def untrusted_action(self) -> UndoAction:
        """The action to check against the setup (``Step.vet_undo``): the description the file carries is
        dropped, since each step describes what it checked; the manual text is kept only to be shown
        (the AWS kinds show it after a failure), never run."""
        action = self.action
        return UndoAction(kind=action.kind, target=action.target, description="", manual=action.manual,
                          data=dict(action.data))


# --------------------------------------------------------------------------- changes made


#: The keys a change record always reads as its own fields.
_CHANGE_FIELDS = ("target", "kind", "summary", "reload_id", "at")


@dataclass
class ChangeRecord:
    """A change a step made (``Journal.changed``): on which machine, of what kind, in a sentence,
    and when; ``reload_id`` ties a balancer's reload marks together; ``extra`` holds what else
    the step said (a path and its checksums, a command, an AWS resource), saved as keys of
    their own. A key that was absent stays absent."""

    target: str | None = None
    kind: str | None = None
    summary: str | None = None
    reload_id: str | None = None
    at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        head = {"target": self.target, "kind": self.kind, "summary": self.summary, "reload_id": self.reload_id}
        data = {key: value for key, value in head.items() if value is not None}
        data.update(self.extra)
        if self.at is not None:
            data["at"] = self.at
        return data

    @classmethod
    def of(cls, values: dict[str, Any]) -> ChangeRecord:
        """A change as a step reports it (keyword arguments of ``Journal.changed``)."""
        return cls.from_dict(values, "change just made")

    @classmethod
    def from_dict(cls, data: Any, label: str) -> ChangeRecord:
        read = Fields(data, label)
        return cls(target=read.optional_text("target"), kind=read.optional_text("kind"),
                   summary=read.optional_text("summary"), reload_id=read.optional_text("reload_id"),
                   at=read.optional_text("at"),
                   extra={key: value for key, value in read.data.items() if key not in _CHANGE_FIELDS})


# --------------------------------------------------------------------------- history, error, checks


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a step's status: when, to what, and the summary then."""

    at: str
    status: str
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "status": self.status, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: Any, label: str) -> HistoryEntry:
        read = Fields(data, label)
        status = read.required_text("status")
        if status not in STATUSES:
            read.refuse("status", "one of " + ", ".join(STATUSES))
        return cls(at=read.required_text("at"), status=status, summary=read.text("summary"))


@dataclass
class StepError:
    """Why a step failed: the message, what to do next, what was undone, and whether the admin
    interrupted it (None: not said, as for failed checks and rollbacks)."""

    message: str
    hint: str | None = None
    undone: list[str] = field(default_factory=list)
    interrupted: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "hint": self.hint, "undone": list(self.undone)}
        if self.interrupted is not None:
            data["interrupted"] = self.interrupted
        return data

    @classmethod
    def from_dict(cls, data: Any, label: str) -> StepError:
        read = Fields(data, label)
        undone = read.items("undone")
        if not all(isinstance(item, str) for item in undone):
            read.refuse("undone", "a list of texts")
        return cls(message=read.text("message"), hint=read.optional_text("hint"), undone=list(undone),
                   interrupted=read.optional_bool("interrupted"))


def check_from_dict(data: Any, label: str) -> Check:
    """A check result as the state keeps it (``Check.to_dict``), checked."""
    read = Fields(data, label)
    passed = read.optional_bool("passed")
    if passed is None:
        read.refuse("passed", "true or false")
    return Check(name=read.required_text("name"), target=read.text("target"), passed=passed,
                 seen=read.text("seen"), fix=read.text("fix"))


def check_plan(data: Any, label: str) -> dict[str, Any] | None:
    """A saved plan (``Plan.to_dict``), checked to be one ``Plan.from_dict`` reads; kept as it is."""
    if data is None:
        return None
    read = Fields(data, label)
    read.string("step")
    read.text("summary")
    read.optional_text("noop_reason")
    for number, change in enumerate(read.items("changes"), 1):
        fields = Fields(change, f"{label}, change {number}")
        for key in ("target", "kind", "summary"):
            fields.string(key)
        fields.text("diff")
        fields.mapping("details")
    for number, check in enumerate(read.items("checks"), 1):
        check_from_dict(check, f"{label}, check {number}")
    return read.data
