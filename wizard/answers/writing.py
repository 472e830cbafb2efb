"""Writing answers back as a file, and merging a partial file with the admin's answers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from wizard.answers.declaration import ANSWERS
from wizard.answers.shape import Section
from wizard.answers.values import ListOf
from wizard.answers_model import Answers


def _tidy(value: Any) -> Any:
    """``value`` without None values or empty lists (absent keys take the same defaults)."""
    if isinstance(value, dict):
        tidy = {}
        for key, item in value.items():
            item = _tidy(item)
            if item is None or item == []:
                continue
            tidy[key] = item
        return tidy
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def _in_declared_order(section: Section, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its keys (and its sections' keys) in the declaration's order, so a written
    file reads like the documentation."""
    result: dict[str, Any] = {}
    for key in section.keys:
        if key.name not in data:
            continue
        value = data[key.name]
        inner = key.value.item if isinstance(key.value, ListOf) else key.value
        if isinstance(inner, Section):
            if isinstance(key.value, ListOf) and isinstance(value, list):
                value = [_in_declared_order(inner, item) if isinstance(item, dict) else item for item in value]
            elif isinstance(value, dict):
                value = _in_declared_order(inner, value)
        result[key.name] = value
    result.update({key: item for key, item in data.items() if key not in result})
    return result


def answers_to_yaml(answers: Answers) -> str:
    """The answers as an answers file: contract key order, no null values.

    ``validate(yaml.safe_load(answers_to_yaml(a)))`` gives back ``a``. The
    answers hold no secret by design, so the text is safe to save and show.
    """
    data = _in_declared_order(ANSWERS, _tidy(answers.to_dict()))
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    return f"# confluence-lb-wizard answers file (every key: confluence-lb-wizard init)\n{body}"


def merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two answers dictionaries into a new one; neither input is changed.

    Mappings are merged key by key; everything else, lists included, is
    replaced by the override (a list of nodes is one answer, not items to
    combine). A None override means "not answered" and keeps the default, the
    same way a blank key in a file counts as absent.
    """
    result: dict[str, Any] = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if value is None:
            continue
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
