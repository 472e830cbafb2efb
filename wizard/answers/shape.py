"""The building blocks of the answers declaration: keys, sections and cross-key rules.

:mod:`wizard.answers.declaration` describes the whole answers file with these;
:mod:`wizard.answers.checking` walks that description to check a document and
build the dataclasses, :mod:`wizard.answers.schema` turns it into JSON Schema,
and :mod:`wizard.answers.template` into the commented file of ``init``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizard.answers.values import ListOf, Value

if TYPE_CHECKING:
    from wizard.answers.checking import Checker

#: A key without a default (absent means "not answered", or the dataclass's None).
NO_DEFAULT: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Key:
    """One key of a section: what it holds, what it is for, and when it must (or may) be there."""

    name: str
    value: Value | Section | ListOf
    help: str
    #: Why the key is needed, said when it is missing; None: optional.
    required: str | None = None
    #: ``(sibling, values)``: required only while the sibling's answer is one of ``values``.
    required_when: tuple[str, tuple[Any, ...]] | None = None
    #: ``(sibling, values)``: allowed only while the sibling's answer is one of ``values`` (or unknown).
    only_when: tuple[str, tuple[Any, ...]] | None = None
    #: What to say when the key is given although ``only_when`` does not hold.
    misplaced: Callable[[Any], str] | None = None
    #: For ``init``: a value to show (commented out) when the key has no default.
    example: Any = None
    #: Turns the checked answer into what the dataclass holds (the public URL into its parts).
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Section:
    """A mapping of keys, built into ``build`` (a dataclass) once every key is clean."""

    keys: tuple[Key, ...]
    build: type
    #: How the section reads in "must be a mapping ..." (a node: "describing one node").
    what: str = "a mapping of keys to answers"

    def key(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)

    def default(self, name: str) -> Any:
        """The default of ``name``: the dataclass's, so that building and documenting agree."""
        for item in dataclasses.fields(self.build):
            if item.name == name:
                if item.default is not dataclasses.MISSING:
                    return item.default
                if item.default_factory is not dataclasses.MISSING:
                    made = item.default_factory()
                    return made if isinstance(made, list) else NO_DEFAULT
        return NO_DEFAULT


@dataclass(frozen=True)
class Rule:
    """A rule across keys: checked after the walk, with its JSON Schema where JSON Schema can say it."""

    says: str
    check: Callable[[Checker, Mapping[str, Any], Mapping[str, Any]], None]
    #: A JSON Schema fragment for the document's ``allOf``; None: only ``plan`` and ``apply`` check it.
    schema: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
