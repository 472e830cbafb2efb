"""The plain data a step works with: plans, changes, checks and undo actions.

Everything here is a dataclass that turns into JSON for the state file and the
runbook, and back. Nothing here touches a host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
    details: dict[str, Any] = field(default_factory=dict)
    payload: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "summary": self.summary,
                "diff": self.diff, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(target=data["target"], kind=data["kind"], summary=data["summary"],
                   diff=data.get("diff", ""), details=dict(data.get("details", {})))


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
