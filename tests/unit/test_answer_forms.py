"""The forms ask for declared keys only, typed as the answers' JSON Schema types them, offering its choices.

Checked against the schema the ``schema`` verb prints (not against the helper the forms are built
with), so a form cannot drift from the declaration unnoticed.
"""

from __future__ import annotations

from typing import Any

import pytest

from wizard.answers.declaration import NODE
from wizard.answers.forms import (
    ALB_FIELDS,
    APACHE_FIELDS,
    GROUP_SWITCHES,
    NODE_FIELDS,
    SETUP_FIELDS,
    FieldSpec,
    ask,
)
from wizard.answers.schema import answers_schema

#: Each form's fields and where its section sits in the answers file.
FORMS = {"setup": (SETUP_FIELDS, ()), "node": (NODE_FIELDS, ("nodes", "[]")),
         "apache": (APACHE_FIELDS, ("balancer", "apache")), "alb": (ALB_FIELDS, ("balancer", "alb"))}

SCHEMA_KINDS = {"integer": "int", "boolean": "bool", "array": "list", "string": "text"}


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional key's schema is ``anyOf: [its schema, null]``: the schema of an answer given."""
    given = [alternative for alternative in schema.get("anyOf", []) if alternative.get("type") != "null"]
    return given[0] if len(given) == 1 else schema


def schema_at(path: tuple[str, ...]) -> dict[str, Any]:
    schema = answers_schema()
    for step in path:
        schema = _present(schema)
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return _present(schema)


def cases() -> list[tuple[str, FieldSpec, tuple[str, ...]]]:
    return [(form, spec, (*where, *spec.key.split("."))) for form, (specs, where) in FORMS.items()
            for spec in specs]


@pytest.mark.parametrize(("form", "spec", "path"), cases(), ids=lambda item: item if isinstance(item, str)
                         else item.key if isinstance(item, FieldSpec) else "")
def test_every_form_field_is_a_declared_key_typed_and_offered_as_declared(form: str, spec: FieldSpec,
                                                                          path: tuple[str, ...]) -> None:
    declared = schema_at(path)  # a KeyError here: the form asks for a key the answers file does not have
    if "enum" in declared:
        assert spec.kind == "choice"
        assert [value for _, value in spec.choices] == declared["enum"]
        assert all(shown for shown, _ in spec.choices)
    else:
        assert spec.kind == SCHEMA_KINDS[declared["type"]]
        assert spec.choices == ()


def test_the_forms_cover_what_an_admin_must_answer() -> None:
    """Every required key of the setup's top level that is one answer, and of a node, has a field."""
    schema = answers_schema()
    single = {key for key in schema["required"]
              if _present(schema["properties"][key]).get("type") not in ("object", "array")}
    assert single and single <= {spec.key for spec in SETUP_FIELDS}
    node = _present(schema["properties"]["nodes"])["items"]
    assert set(node["required"]) <= {spec.key for spec in NODE_FIELDS}


def test_group_switches_are_choice_fields_and_name_their_values() -> None:
    fields = {spec.key: spec for spec in SETUP_FIELDS + NODE_FIELDS + APACHE_FIELDS}
    for key, values in GROUP_SWITCHES.values():
        assert fields[key].kind == "choice"
        assert {value for value in values if value is not None} <= {value for _, value in fields[key].choices}


def test_a_field_for_an_undeclared_key_is_refused_where_it_is_written() -> None:
    with pytest.raises(KeyError):
        ask(NODE, "access.password", "SSH password")
    with pytest.raises(KeyError):
        ask(NODE, "access", "Access")  # a section, not one answer


def test_a_choice_without_its_own_words_shows_the_value_and_an_unworded_field_its_example() -> None:
    transport = ask(NODE, "access.transport", "Reached by")
    assert transport.choices == (("ssh", "ssh"), ("local", "local"))
    assert ask(NODE, "address", "Address").placeholder == "10.0.1.11"  # the declaration's example
    assert ask(NODE, "address", "Address", placeholder="where").placeholder == "where"
