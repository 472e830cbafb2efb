"""Checking an answers document against the declaration, and building the typed answers.

The walk collects every problem at once (so the admin fixes the file in one
pass, not one error per run). Keys in problems are dotted paths with 0-based
list indexes, for example ``nodes[1].access.port`` or ``balancer.alb.subnet_ids[0]``.

Secrets are never read from an answers file: a key that smells like one is a
problem wherever it appears, and its value is never echoed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from typing import Any

from wizard.answers.declaration import ANSWERS, RULES, child_sections
from wizard.answers.shape import NO_DEFAULT, Key, Section
from wizard.answers.values import Bad, ListOf, Value, type_name
from wizard.answers_model import Answers
from wizard.errors import AnswersError, Problem

# Key names that smell like a secret, anywhere in the document.
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)|secret|token|credential|private_key|access_key",
                         re.IGNORECASE)
_AWS_SECRET_KEY = re.compile(r"aws|access_key|secret_key|session", re.IGNORECASE)
_PRIVATE_KEY_TEXT = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


class Checker:
    """Collects problems while the sections are walked."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, key: str, message: str, *, missing: bool = False) -> None:
        self.problems.append(Problem(key, message, missing=missing))

    def require(self, key: str, what: str) -> None:
        self.add(key, f"is required: {what}", missing=True)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _condition_holds(section: Section, checked: Mapping[str, Any], condition: tuple[str, tuple[Any, ...]],
                     *, unknown: bool) -> bool:
    """Whether a sibling's answer (or its default) is one of the values; ``unknown`` when it has none."""
    sibling, allowed = condition
    value = checked.get(sibling)
    if value is None:
        value = section.default(sibling)
    if value is None or value is NO_DEFAULT:
        return unknown
    return value in allowed


def _absent(value: Any, key: Key) -> bool:
    """A null value (``port:`` with nothing after it) counts as absent, so a template with blank
    entries is a partial answers file; blank text counts as absent for a required key."""
    return value is None or (key.required is not None and isinstance(value, str) and not value.strip())


def walk(ck: Checker, section: Section, data: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    """Check one mapping against ``section``: the checked values by key (None where absent or bad)."""
    _unknown(ck, data, prefix, section)
    checked: dict[str, Any] = {}
    for key in section.keys:
        name = join(prefix, key.name)
        raw = data.get(key.name)
        if key.only_when and not _condition_holds(section, checked, key.only_when, unknown=True):
            if raw is not None and key.misplaced is not None:
                ck.add(name, key.misplaced(checked.get(key.only_when[0])))
            checked[key.name] = None
            continue
        required = key.required
        if key.required_when and not _condition_holds(section, checked, key.required_when, unknown=False):
            required = None
        if _absent(raw, key):
            if required is not None:
                ck.require(name, required)
            checked[key.name] = None
            continue
        checked[key.name] = _check_value(ck, key.value, raw, name, required)
    return checked


def _check_value(ck: Checker, value: Value | Section | ListOf, raw: Any, name: str,
                 required: str | None) -> Any:
    if isinstance(value, Section):
        if not isinstance(raw, dict):
            ck.add(name, f"must be {value.what}, not {type_name(raw)}")
            return None
        return walk(ck, value, raw, name)
    if isinstance(value, ListOf):
        return _check_list(ck, value, raw, name, required)
    try:
        return value(raw)
    except Bad as exc:
        ck.add(name, str(exc))
        return None


def _check_list(ck: Checker, spec: ListOf, raw: Any, name: str, required: str | None) -> list[Any] | None:
    if raw == [] and required is not None:
        ck.require(name, required)
        return None
    if not isinstance(raw, list):
        ck.add(name, f"must be a list of {spec.what}, not {type_name(raw)}")
        return None
    if spec.max_items and len(raw) > spec.max_items:
        # Before the items: a list of a million entries is refused at once, not checked one by one.
        ck.add(name, f"lists {len(raw)} entries; {spec.too_many}")
        return None
    before = len(ck.problems)
    items = [_check_value(ck, spec.item, item, f"{name}[{index}]", None) for index, item in enumerate(raw)]
    if len(ck.problems) != before:
        return None
    if spec.unique:
        duplicates = sorted({str(item) for item in items if items.count(item) > 1})
        if duplicates:
            ck.add(name, f"lists {', '.join(duplicates)} more than once; {spec.distinct}")
            return None
    if len(items) < spec.min_items:
        ck.add(name, spec.too_few)
        return None
    return items


def _unknown(ck: Checker, data: Mapping[Any, Any], prefix: str, section: Section) -> None:
    """Report keys that are not part of the declaration here, with a suggestion when one is close."""
    known = section.names()
    for raw_key in data:
        if isinstance(raw_key, str) and raw_key in known:
            continue
        # A key is echoed in the problem: a 5 MB one is cut, like any value.
        key_text = str(raw_key) if len(str(raw_key)) <= 80 else str(raw_key)[:60] + f"...({len(str(raw_key))})"
        key = join(prefix, key_text)
        if not isinstance(raw_key, str):
            ck.add(key, f"is not a valid key: keys are names, not {type_name(raw_key)}")
            continue
        if _SECRET_KEY.search(raw_key):
            continue  # reported by _find_secrets with a better message
        ck.add(key, _unknown_message(raw_key, section))


def _unknown_message(key: str, section: Section) -> str:
    known = section.names()
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        # Case and separators: "Public-URL" is public_url.
        normalized = key.lower().replace("-", "_").replace(" ", "_")
        if normalized in known:
            close = [normalized]
    if close:
        return f"is not a known answer here; did you mean '{close[0]}'?"
    for child, child_keys in child_sections(section).items():
        if key in child_keys:
            return f"is not a known answer here; did you mean to put it under '{child}'?"
    return f"is not a known answer here; the answers here are: {', '.join(known)}"


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _secret_message(key: str, path: str = "") -> str:
    base = "secrets are never read from the answers file"
    if path.startswith("base_url.database."):
        return (f"{base}: psql, run on the node, takes the database password from ~/.pgpass (or PGPASSWORD) "
                "of the user it runs as there; remove this key")
    if _AWS_SECRET_KEY.search(key):
        return (f"{base}: AWS credentials come from the standard AWS credential chain (environment "
                "variables, ~/.aws with balancer.alb.profile, or an instance role); remove this key")
    return (f"{base}: the wizard asks for a passphrase or password when it needs one, and never stores "
            "it; remove this key (use key_file or ssh-agent for ssh keys)")


def _find_secrets(value: Any, prefix: str, ck: Checker) -> None:
    """Report every secret-looking key, and inline private keys, anywhere in the document.

    Iterative, not recursive: a document nested ten thousand levels deep is
    refused by the loader, but this walk must not be the thing that overflows.
    """
    stack: list[tuple[Any, str]] = [(value, prefix)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, inner in reversed(list(item.items())):
                key_path = join(path, str(key))
                if isinstance(key, str) and is_secret_key(key):
                    ck.add(key_path, _secret_message(key, key_path))  # the value is never echoed
                    continue
                stack.append((inner, key_path))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{index}]") for index, inner in reversed(list(enumerate(item))))
        elif isinstance(item, str) and _PRIVATE_KEY_TEXT.search(item):
            ck.add(path, "holds a private key; secrets are never read from the answers file: give the "
                         "path of the key file (key_file) instead, or use ssh-agent")


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def build(section: Section, checked: Mapping[str, Any]) -> Any:
    """The section's dataclass from clean checked values; absent keys take the dataclass's defaults."""
    arguments: dict[str, Any] = {}
    for key in section.keys:
        value = checked.get(key.name)
        if value is None:
            continue
        inner = key.value.item if isinstance(key.value, ListOf) else key.value
        if isinstance(inner, Section):
            value = [build(inner, item) for item in value] if isinstance(key.value, ListOf) else build(inner, value)
        elif key.convert is not None:
            value = key.convert(value)
        arguments[key.name] = value
    known = {item.name for item in dataclasses.fields(section.build)}
    return section.build(**{name: value for name, value in arguments.items() if name in known})


def check(raw: Any) -> tuple[list[Problem], Answers | None]:
    """Every problem in ``raw``, and the Answers when there is none."""
    ck = Checker()
    if not isinstance(raw, dict):
        ck.add("(document)", f"must be a mapping of answers (key: value), not {type_name(raw)}")
        return ck.problems, None
    _find_secrets(raw, "", ck)
    checked = walk(ck, ANSWERS, raw, "")
    for rule in RULES:
        rule.check(ck, raw, checked)
    if ck.problems:
        return ck.problems, None
    return [], build(ANSWERS, checked)


def find_problems(raw: Any) -> list[Problem]:
    """Every problem in an answers dictionary, section by section; missing keys have ``missing=True``.

    Never raises for bad content: wrong types, unknown keys and secrets are all
    problems. An empty list means :func:`validate` will succeed.
    """
    return check(raw)[0]


def missing_keys(raw: Any) -> list[str]:
    """The dotted keys a face must still ask the admin for (the problems with ``missing=True``)."""
    return [p.key for p in find_problems(raw) if p.missing]


def validate(raw: Any, source: str | None = None) -> Answers:
    """The typed answers of ``raw``, or one :class:`AnswersError` listing every problem.

    ``source`` (the file's path) is named in the error message. Defaults of
    :mod:`wizard.answers_model` fill absent optional keys; ``key_file`` and
    ``known_hosts`` are kept as written (``~`` is expanded where they are used).
    """
    problems, answers = check(raw)
    if problems or answers is None:
        raise AnswersError(problems, source=source)
    return answers
