"""The answers file's JSON Schema (draft 2020-12), made from the declaration.

Editors that speak JSON Schema (the YAML language server behind VS Code's YAML
extension, IntelliJ, Neovim) complete and check an answers file with it; the
``schema`` verb prints it and ``init`` writes it beside a new answers file.
It says what the declaration says: each key's check, help line, default and
when it is required. The few rules JSON Schema cannot say (names unique
ignoring case, a certificate in the balancer's region) are listed in
``$comment``; ``plan`` and ``apply`` check them too.
"""

from __future__ import annotations

import json
from typing import Any

from wizard import __version__
from wizard.answers.declaration import ANSWERS, RULES
from wizard.answers.shape import NO_DEFAULT, Key, Section
from wizard.answers.values import ListOf, Value

SCHEMA_FILE_NAME = "confluence-lb-wizard.schema.json"
#: A key that must not be there. Not ``false``: validators name the key for ``not``, not for ``false``.
NOT_ALLOWED: dict[str, Any] = {"not": {}}


def answers_schema() -> dict[str, Any]:
    """The JSON Schema of an answers file."""
    schema = _section(ANSWERS)
    rules = [rule.schema for rule in RULES if rule.schema is not None]
    schema["allOf"] = [*schema.get("allOf", []), *rules]
    plan_only = [rule.says for rule in RULES if rule.schema is None]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "confluence-lb-wizard answers file",
        "description": f"The setup confluence-lb-wizard {__version__} applies: `plan --answers FILE` reads it.",
        "$comment": "Beyond this schema, plan and apply also check: " + "; ".join(plan_only) + ".",
        **schema,
    }


def answers_schema_json() -> str:
    return json.dumps(answers_schema(), indent=2, ensure_ascii=False) + "\n"


def _section(section: Section) -> dict[str, Any]:
    properties = {key.name: _key(section, key) for key in section.keys}
    required = [key.name for key in section.keys if key.required and not key.required_when]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    conditions = [_condition(section, key) for key in section.keys if key.required_when or key.only_when]
    if conditions:
        schema["allOf"] = [part for condition in conditions for part in condition]
    return schema


def _condition(section: Section, key: Key) -> list[dict[str, Any]]:
    """``required_when`` and ``only_when`` as if/then: the sibling's answer (or its default) decides."""
    parts = []
    answered = {"required": [key.name], "properties": {key.name: {"not": {"type": "null"}}}}
    for condition, holds, then in ((key.required_when, True, answered),
                                   (key.only_when, False, {"properties": {key.name: NOT_ALLOWED}})):
        if condition is None:
            continue
        sibling, values = condition
        # required_when: then applies while the sibling is one of the values; only_when: while it is not.
        test: dict[str, Any] = {"enum": list(values)} if holds else {"not": {"enum": list(values)}}
        when: dict[str, Any] = {"properties": {sibling: test}}
        default = section.default(sibling)
        # An absent sibling means its default; without one, nothing is decided.
        if default is NO_DEFAULT or default is None or not _matches(test, default):
            when["required"] = [sibling]
        parts.append({"if": when, "then": then})
    return parts


def _matches(test: dict[str, Any], value: Any) -> bool:
    if "enum" in test:
        return value in test["enum"]
    return value not in test["not"]["enum"]


def _key(section: Section, key: Key) -> dict[str, Any]:
    schema = _value(key.value)
    if not key.required or key.required_when:
        # A blank optional key (``port:``) is "not answered": it takes its default.
        schema = {"anyOf": [schema, {"type": "null"}]}
    schema["description"] = key.help
    default = section.default(key.name)
    if default is not NO_DEFAULT and default is not None and default != []:
        schema["default"] = default
    return schema


def _value(value: Value | Section | ListOf) -> dict[str, Any]:
    if isinstance(value, Section):
        return _section(value)
    if isinstance(value, ListOf):
        schema: dict[str, Any] = {"type": "array", "items": _value(value.item)}
        if value.min_items:
            schema["minItems"] = value.min_items
        if value.max_items:
            schema["maxItems"] = value.max_items
        if value.unique:
            schema["uniqueItems"] = True
        return schema
    return value.json_schema()
