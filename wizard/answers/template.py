"""The commented answers file that ``init`` writes: every key, its default and what it is for.

Made from the declaration, like the schema, so a key added there appears here.
Required keys are left blank (a blank key is "not answered yet": ``plan`` names
it); keys with a default carry it; optional keys without one, and sections that
only apply to another choice (the other balancer kind, the database route), are
commented out with an example, ready to uncomment.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from wizard.answers.declaration import ANSWERS, BALANCER, BALANCER_KINDS
from wizard.answers.schema import SCHEMA_FILE_NAME
from wizard.answers.shape import NO_DEFAULT, Key, Section
from wizard.answers.values import ListOf, Value

_INDENT = "  "
_WIDTH = 100


def answers_template(kind: str = "apache", schema_path: str = f"./{SCHEMA_FILE_NAME}") -> str:
    """The commented answers file for a balancer of ``kind`` (the other kinds' keys commented out)."""
    if kind not in BALANCER_KINDS:
        raise ValueError(f"unknown balancer kind {kind!r}")
    lines = [
        f"# yaml-language-server: $schema={schema_path}",
        "# confluence-lb-wizard answers file: every key, its default and what it is for.",
        "# Fill in the keys marked required, then: confluence-lb-wizard plan --answers THIS_FILE",
        "# A key left blank or commented out takes its default. Never put a password here: the",
        "# wizard asks for passphrases when it needs them and uses the AWS credential chain.",
        "",
    ]
    _section_lines(ANSWERS, lines, depth=0, commented=False, kind=kind)
    return "\n".join(lines) + "\n"


def _section_lines(section: Section, lines: list[str], *, depth: int, commented: bool, kind: str) -> None:
    for key in section.keys:
        _key_lines(section, key, lines, depth=depth, commented=commented, kind=kind)


def _key_lines(section: Section, key: Key, lines: list[str], *, depth: int, commented: bool, kind: str) -> None:
    indent = _INDENT * depth
    default = section.default(key.name)
    has_default = default is not NO_DEFAULT and default is not None and default != []
    inner = key.value.item if isinstance(key.value, ListOf) else key.value
    hide = commented or _hidden(section, key, kind)
    for line in textwrap.wrap(_describe(key, default if has_default else NO_DEFAULT), width=_WIDTH - len(indent)):
        lines.append(f"{indent}# {line}")

    def emit(text: str, *, comment: bool) -> None:
        lines.append(f"{indent}{'# ' if comment else ''}{text}")

    if isinstance(inner, Section):
        emit(f"{key.name}:", comment=hide)
        if isinstance(key.value, ListOf):
            # One item, its keys under the "-": copy the item for each further one.
            lines.append(f"{indent}{_INDENT}{'# ' if hide else ''}-")
            _section_lines(inner, lines, depth=depth + 2, commented=hide, kind=kind)
        else:
            _section_lines(inner, lines, depth=depth + 1, commented=hide, kind=kind)
    elif section is BALANCER and key.name == "kind":
        emit(f"{key.name}: {kind}", comment=hide)
    elif has_default:
        emit(f"{key.name}: {_yaml(default)}", comment=hide)
    elif key.required:
        emit(f"{key.name}:", comment=hide)
    else:
        example = "" if key.example is None else f" {_yaml(key.example)}"
        emit(f"{key.name}:{example}", comment=True)


def _hidden(section: Section, key: Key, kind: str) -> bool:
    """A section that applies to another choice, or an optional one with keys of its own to fill in."""
    if key.only_when is not None:
        sibling, values = key.only_when
        chosen = kind if sibling == "kind" else section.default(sibling)
        if chosen not in values:
            return True
    inner = key.value.item if isinstance(key.value, ListOf) else key.value
    if isinstance(inner, Section) and key.required is None:
        return any(inner_key.required for inner_key in inner.keys)
    return False


def _describe(key: Key, default: Any) -> str:
    parts = [key.help]
    choices = _choices(key)
    if choices:
        parts.append(f"One of: {', '.join(choices)}.")
    if key.required and not key.required_when:
        parts.append("Required.")
    elif key.required_when:
        sibling, values = key.required_when
        parts.append(f"Required when {sibling} is {' or '.join(map(str, values))}.")
    if default is not NO_DEFAULT:
        parts.append(f"Default: {_yaml(default)}.")
    text = parts[0].rstrip(".") + "."
    return " ".join([text, *parts[1:]])


def _choices(key: Key) -> list[str]:
    if isinstance(key.value, Value):
        return [str(option) for option in key.value.schema.get("enum", [])]
    return []


def _yaml(value: Any) -> str:
    """A scalar or a short list as YAML flow text (JSON is YAML)."""
    if isinstance(value, str) and value and value.replace("-", "").replace("_", "").replace(".", "") \
            .replace("/", "").replace("~", "").replace(":", "").isalnum() and not value[0].isdigit():
        return value
    return json.dumps(value)
