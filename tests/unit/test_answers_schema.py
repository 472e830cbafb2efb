"""The JSON Schema of `schema` and the validator of `plan` agree, because both come from one declaration.

Every answers file in the tests is fed to both: the valid ones pass both, the
invalid ones fail both, naming the same key. The lab's answers are checked the
same way in tests/integration/test_lab.py (they need a running lab).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from wizard.answers import find_problems, load_answers_file, merge
from wizard.answers.declaration import RULES
from wizard.answers.schema import SCHEMA_FILE_NAME, answers_schema, answers_schema_json
from wizard.answers.template import answers_template

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures" / "answers"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(answers_schema())


def schema_keys(raw: Any) -> set[str]:
    """The dotted keys the JSON Schema's errors name (as the wizard writes keys: ``nodes[0].name``)."""
    return {key for error in VALIDATOR.iter_errors(raw) for key in _error_keys(error)}


def _error_keys(error: jsonschema.ValidationError) -> list[str]:
    base = _dotted(error.absolute_path)
    if error.validator == "anyOf" and error.context:
        # An optional key is "its schema, or null (blank)": the errors of its schema name the keys.
        inner = [e for e in error.context if e.schema != {"type": "null"}]
        return [key for e in inner for key in _error_keys(e)] or [base]
    if error.validator == "required":
        return [_join(base, name) for name in error.validator_value if name not in error.instance]
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        return [_join(base, str(name)) for name in error.instance if name not in allowed]
    return [base]


def _dotted(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def validator_keys(raw: Any) -> set[str]:
    return {problem.key for problem in find_problems(raw)}


def expected_key(path: Path) -> str:
    match = re.match(r"# expect: (\S+)", path.read_text(encoding="utf-8"))
    assert match, f"{path.name} must start with '# expect: KEY'"
    return match.group(1)


def test_every_answers_file_in_the_tests_is_a_fixture_here() -> None:
    # An answers file added elsewhere in the tests must be fed to both checks too.
    elsewhere = [path for path in TESTS.rglob("*.y*ml") if FIXTURES not in path.parents
                 and "__snapshots__" not in path.parts]
    assert elsewhere == []
    assert len(VALID) >= 4 and len(INVALID) >= 40


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = answers_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_files_pass_both(path: Path) -> None:
    raw = load_answers_file(path)
    assert validator_keys(raw) == set()
    assert schema_keys(raw) == set()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_files_fail_both_naming_the_same_key(path: Path) -> None:
    raw = load_answers_file(path)
    key = expected_key(path)
    assert key in validator_keys(raw)
    assert key in schema_keys(raw)


def test_rules_beyond_json_schema_are_checked_by_the_validator_and_named_in_the_schema() -> None:
    raw = load_answers_file(FIXTURES / "valid" / "contract-alb.yaml")
    raw["nodes"][1]["name"] = "NODE1"  # names are compared ignoring case
    raw["balancer"]["alb"]["certificate_arn"] = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    assert {"nodes[1].name", "balancer.alb.certificate_arn"} <= validator_keys(raw)
    assert schema_keys(raw) == set()  # JSON Schema cannot say these...
    comment = answers_schema()["$comment"]
    for rule in RULES:
        if rule.schema is None:
            assert rule.says in comment  # ...so the schema says that plan checks them


def test_the_schema_verb_prints_the_shipped_schema() -> None:
    printed = subprocess.run([sys.executable, "-m", "wizard", "schema"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    assert json.loads(printed) == answers_schema()
    assert printed == answers_schema_json()


def test_every_key_of_the_schema_has_a_description() -> None:
    def walk(node: Any, path: str) -> None:
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{path}{name} has no description"
            walk(prop, f"{path}{name}.")
            if "items" in prop:
                walk(prop["items"], f"{path}{name}[].")
    walk(answers_schema(), "")


@pytest.mark.parametrize("kind", ["apache", "alb"])
def test_init_names_every_key_of_the_schema(kind: str) -> None:
    text = answers_template(kind)
    assert text.startswith(f"# yaml-language-server: $schema=./{SCHEMA_FILE_NAME}\n")

    def names(node: Any) -> set[str]:
        found = set()
        for name, prop in node.get("properties", {}).items():
            found |= {name} | names(prop) | names(prop.get("items", {}))
        return found
    for name in names(answers_schema()):
        assert re.search(rf"^\s*(# )?-? ?{name}:", text, re.MULTILINE), f"init does not show {name}"


@pytest.mark.parametrize("kind", ["apache", "alb"])
def test_init_is_a_partial_answers_file_naming_what_is_left_to_fill_in(kind: str) -> None:
    raw = yaml.safe_load(answers_template(kind))
    missing = {problem.key for problem in find_problems(raw) if problem.missing}
    others = [problem for problem in find_problems(raw) if not problem.missing]
    assert others == []
    assert {"name", "public_url", "nodes[0].name", "nodes[0].address"} <= missing


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_init_filled_in_with_a_valid_files_values_is_valid(path: Path) -> None:
    filled = load_answers_file(path)
    kind = filled["balancer"]["kind"]
    raw = merge(yaml.safe_load(answers_template(kind)), filled)
    assert find_problems(raw) == []
    assert schema_keys(raw) == set()


def test_init_writes_the_file_and_the_schema_beside_and_never_over_a_file(tmp_path: Path) -> None:
    target = tmp_path / "wiki.yaml"
    run = [sys.executable, "-m", "wizard", "init", "-o", str(target)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert target.read_text(encoding="utf-8") == answers_template("apache")
    assert json.loads((tmp_path / SCHEMA_FILE_NAME).read_text(encoding="utf-8")) == answers_schema()
    target.write_text("name: mine\n", encoding="utf-8")
    second = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert "exists already" in second.stderr and "Traceback" not in second.stderr
    assert target.read_text(encoding="utf-8") == "name: mine\n"


def test_a_command_may_refer_to_a_secret_but_not_carry_one() -> None:
    raw = load_answers_file(FIXTURES / "valid" / "minimal-apache-http.yaml")
    apache = raw["balancer"]["apache"]
    apache["reload_command"] = "RELOAD_TOKEN=$(echo abc) apache2ctl graceful"
    apache["configtest_command"] = "apache2ctl -t"
    assert validator_keys(raw) == set() and schema_keys(raw) == set()
    apache["reload_command"] = "reload --token abc;systemctl reload apache2"
    raw["nodes"][0]["restart_command"] = "sshpass -p hunter2 ssh n1 systemctl restart confluence"
    problems = {p.key: p.message for p in find_problems(raw)}
    assert set(problems) == {"balancer.apache.reload_command", "nodes[0].restart_command"}
    assert all("holds a secret" in message and "hunter2" not in message and "abc" not in message
               for message in problems.values())
    # JSON Schema cannot see inside a command: its $comment says plan checks it.
    assert "no literal secret" in json.dumps(answers_schema()["properties"]["nodes"])


def test_manager_allow_split_into_parts_that_cover_everyone_is_refused_like_everyone() -> None:
    raw = load_answers_file(FIXTURES / "valid" / "minimal-apache-http.yaml")
    raw["balancer"]["apache"]["manager_allow"] = ["0.0.0.0/1", "128.0.0.0/1"]
    assert "balancer.apache.manager_allow" in validator_keys(raw)
    raw["balancer"]["apache"]["manager_allow"] = ["::/1", "8000::/1", "127.0.0.1"]
    assert "balancer.apache.manager_allow" in validator_keys(raw)
    raw["balancer"]["apache"]["manager_allow"] = ["0.0.0.0/1", "10.0.0.0/8"]
    assert validator_keys(raw) == set()


def test_a_huge_key_or_value_is_not_echoed_back_whole() -> None:
    raw = load_answers_file(FIXTURES / "valid" / "minimal-apache-http.yaml")
    raw["x" * 5_000_000] = 1
    raw["name"] = "y" * 5_000_000
    problems = find_problems(raw)
    assert len(problems) == 2 and all(len(p.key) + len(p.message) < 1000 for p in problems)
