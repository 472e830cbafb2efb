"""Reading an answers file: YAML (JSON is YAML too) into a plain dictionary, refusing what could hurt.

Only reads and parses; :mod:`wizard.answers.checking` checks the content. A
hostile file must not hang or crash the tool: the file's size, its nesting
depth and what its YAML aliases expand to are all bounded, and each is refused
with a message (exit 2), never a traceback.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from wizard.answers.values import type_name
from wizard.errors import AnswersError, Problem

#: An answers file is a page or two of YAML; a megabyte is not one.
MAX_FILE_BYTES = 1024 * 1024
#: Keys, list items and values once aliases are expanded (a 50-node file holds about 1,000).
MAX_VALUES = 20_000
#: The deepest an answers file nests is 5 (balancer.apache.access.host); 32 is generous.
MAX_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    Plain safe_load keeps the last of two ``name:`` lines silently; an admin who
    wrote both meant one of them, so say so instead of guessing.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<:" merge keys legitimately repeat keys of the merged mapping
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key; the base class reports it properly
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} a second time (first at line {first.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_answers_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an answers file (YAML or JSON) into a plain dictionary.

    Only reads and parses; :func:`validate` checks the content. An empty file
    (or one holding only comments) is an empty partial answers file: ``{}``.

    Raises :class:`AnswersError` (never a traceback) when the file is missing or
    unreadable, is not valid YAML (the problem names the line and column), or
    its top level is not a mapping of keys to answers.
    """
    source = os.fspath(path)

    def fail(message: str) -> AnswersError:
        return AnswersError([Problem("(file)", message)], source=source)

    try:
        with open(source, "rb") as handle:
            data_bytes = handle.read(MAX_FILE_BYTES + 1)
        if len(data_bytes) > MAX_FILE_BYTES:
            raise fail(f"is larger than {MAX_FILE_BYTES // 1024} kB; an answers file is a page or two of YAML: "
                       "check the path given to --answers")
        text = data_bytes.decode("utf-8")
    except FileNotFoundError:
        raise fail("does not exist: check the path given to --answers") from None
    except IsADirectoryError:
        raise fail("is a directory, not an answers file") from None
    except PermissionError:
        raise fail("cannot be read: permission denied (check the file's owner and mode)") from None
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None

    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise fail(_describe_yaml_error(exc)) from None
    except yaml.YAMLError as exc:
        raise fail(f"is not valid YAML: {exc}") from None
    except RecursionError:
        raise fail(f"is nested too deeply (more than {MAX_DEPTH} levels of lists or mappings)") from None
    problem = _too_big(data)
    if problem:
        raise fail(problem)

    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(f"must hold a mapping of answers (key: value lines such as 'name: wiki-prod'), "
                   f"not {type_name(data)}")
    return data


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    """A YAML error as one line naming where it is (1-based line and column)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown place"
    what = exc.problem or exc.context or "syntax error"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    hint = ""
    if "\\t" in what or "\t" in what:
        hint = "; indent with spaces, not tabs"
    return f"is not valid YAML at {where}: {what}{context}{hint}"




def _too_big(data: Any) -> str | None:
    """Why ``data`` is too large or too deep to be an answers file, or None.

    YAML aliases let 400 bytes stand for billions of values (each ``*a`` repeats
    everything ``&a`` holds), and ``&a [*a]`` for a list that holds itself.
    Counting as the values would be walked, with a budget, refuses both before
    anything walks them for real.
    """
    budget = MAX_VALUES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return (f"holds more than {MAX_VALUES} values once its YAML aliases (*name) are expanded, or an "
                    "alias refers to itself: write the values out instead of repeating them through aliases")
        if depth > MAX_DEPTH:
            return (f"is nested too deeply (more than {MAX_DEPTH} levels of lists or mappings), or a YAML alias "
                    "(*name) refers to itself: write the values out instead")
        if isinstance(item, dict):
            stack.extend((value, depth + 1) for value in item.values())
            stack.extend((key, depth + 1) for key in item if isinstance(key, tuple))
        elif isinstance(item, (list, tuple)):
            stack.extend((value, depth + 1) for value in item)
    return None
