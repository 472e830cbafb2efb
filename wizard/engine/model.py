"""The plain data a step works with: plans, changes, checks and undo actions.

Everything here is a dataclass that turns into JSON for the state file and the
runbook, and back. Nothing here touches a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

# Targets that are not a node name.
BALANCER = "balancer"
WORKSTATION = "workstation"


@dataclass
class Check:
    """One verifiable fact: what was looked at, what was seen, and the fix if it failed."""

    name: str
    target: str
    passed: bool
    seen: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(name=data["name"], target=data["target"], passed=bool(data["passed"]),
                   seen=data.get("seen", ""), fix=data.get("fix", ""))


@dataclass(frozen=True)
class ChangeDetails:
    """The particulars of one planned change, typed by what the change is.

    Each step plans its changes with a subclass of its own (a file it replaces, a command it
    runs, a resource it creates), so every read of a detail in ``apply`` is an attribute mypy
    checks, and ``apply`` tells its changes apart by their class. ``to_dict`` is what the state
    file and the runbook hold: ``role`` first when the class has one (the word older state
    files use), then every field by name.
    """

    #: The ``role`` key of the saved dict ("vhost", "reload"...), or None for a class without one.
    role: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"role": self.role, **data} if self.role else data


@dataclass(frozen=True)
class ShownDetails(ChangeDetails):
    """Particulars that are only shown: a plan read back from the state file, or a change whose
    step acts on nothing but its payload. Never read by an ``apply``."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True, kw_only=True)
class FileChange(ChangeDetails):
    """A change that replaces (or creates) one file: ``apply`` writes the change's payload,
    ``(bytes planned from or None, new bytes)``, to ``path`` through ``replace_file``.
    Steps subclass it with what their plan shows beside the path."""

    path: str


@dataclass(frozen=True, kw_only=True)
class ResourceChange(ChangeDetails):
    """A change to a resource of a cloud account: what it is (``resource``), what is done to it
    (``action``: create, modify, delete...), its name, and what the plan shows beside (``extra``,
    saved as keys of their own)."""

    resource: str
    action: str
    name: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "name": self.name, **self.extra}


@dataclass
class Change:
    """One change a plan will make.

    ``diff`` and ``details`` are stored in the state and shown in the runbook, so
    they never hold a secret (server.xml diffs are masked before they get here).
    ``payload`` is what ``apply`` needs (the new file's bytes, say); it lives
    only in memory and is never saved.
    """

    target: str
    kind: str  # "file", "command", "aws", "manual"
    summary: str
    diff: str = ""
    details: ChangeDetails = field(default_factory=ShownDetails)
    payload: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "summary": self.summary,
                "diff": self.diff, "details": self.details.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        """A change read back from a saved plan: its details are shown, never acted on."""
        return cls(target=data["target"], kind=data["kind"], summary=data["summary"],
                   diff=data.get("diff", ""), details=ShownDetails(dict(data.get("details", {}))))


@dataclass
class Plan:
    """What a step would do, or, when ``changes`` is empty, why it has nothing to do."""

    step: str
    summary: str
    changes: list[Change] = field(default_factory=list)
    noop_reason: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "summary": self.summary,
                "changes": [c.to_dict() for c in self.changes],
                "noop_reason": self.noop_reason,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls(step=data["step"], summary=data.get("summary", ""),
                   changes=[Change.from_dict(c) for c in data.get("changes", [])],
                   noop_reason=data.get("noop_reason"),
                   checks=[Check.from_dict(c) for c in data.get("checks", [])])


@dataclass
class UndoAction:
    """How to take back one change, recorded in the state before the change is made.

    ``kind`` selects who performs it (see ``wizard.engine.undo``); ``manual`` is what an
    admin would type to do the same by hand, for the runbook.
    """

    kind: str
    target: str
    description: str
    manual: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UndoAction:
        return cls(kind=data["kind"], target=data["target"], description=data["description"],
                   manual=data.get("manual", ""), data=dict(data.get("data", {})))
