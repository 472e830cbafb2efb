"""The export's output folder: created when missing, replaced when it is an earlier export, refused otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wizard.errors import EXIT_BAD_INPUT, BadInputError
from wizard.export import check_no_secret
from wizard.export.ansible import Unsafe, connector_module, dump_yaml
from wizard.export.folder import MANIFEST, earlier_files, write_export


def test_a_missing_folder_is_created_with_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    write_export(out, {"site.yml": "x\r\n", "templates/v.conf": "y"}, fmt="ansible", setup="wiki")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == ["site.yml", "templates/v.conf"] and manifest["setup"] == "wiki"
    assert (out / "site.yml").read_bytes() == b"x\r\n"  # written as given, line ends and all


def test_an_earlier_export_is_replaced_and_its_unused_files_go(tmp_path: Path) -> None:
    write_export(tmp_path, {"site.yml": "1", "templates/old.conf": "o"}, fmt="ansible", setup="wiki")
    write_export(tmp_path, {"site.yml": "2"}, fmt="ansible", setup="wiki")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [MANIFEST, "site.yml"]
    assert (tmp_path / "site.yml").read_text() == "2"


@pytest.mark.parametrize("extra", ["notes.txt", "templates/mine.conf"])
def test_a_folder_with_anything_else_is_refused_and_left_alone(tmp_path: Path, extra: str) -> None:
    write_export(tmp_path, {"site.yml": "1"}, fmt="ansible", setup="wiki")
    (tmp_path / extra).parent.mkdir(exist_ok=True)
    (tmp_path / extra).write_text("mine")
    with pytest.raises(BadInputError, match="not part of it") as raised:
        write_export(tmp_path, {"site.yml": "2"}, fmt="ansible", setup="wiki")
    assert raised.value.exit_code == EXIT_BAD_INPUT
    assert (tmp_path / "site.yml").read_text() == "1" and (tmp_path / extra).read_text() == "mine"


def test_a_foreign_folder_or_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "playbook.yml").write_text("someone else's")
    with pytest.raises(BadInputError, match="not an earlier export"):
        earlier_files(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"tool": "other", "files": ["playbook.yml"]}))
    with pytest.raises(BadInputError, match="not a manifest this tool wrote"):
        earlier_files(tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(BadInputError, match="not a folder"):
        earlier_files(a_file)


def test_the_cli_refuses_a_foreign_folder_before_reading_any_host(tmp_path: Path, capsys) -> None:
    from wizard.cli import main

    answers = Path(__file__).resolve().parents[1] / "fixtures" / "answers" / "valid" / "contract-apache.yaml"
    (tmp_path / "x.txt").write_text("mine")
    assert main(["export", "--format", "ansible", "--answers", str(answers), "-o", str(tmp_path)]) == EXIT_BAD_INPUT
    assert "not an earlier export" in capsys.readouterr().err


def test_answers_values_are_never_templated_by_ansible() -> None:
    text = dump_yaml({"cmd": Unsafe("echo {{ lookup('pipe', 'id') }}")}, "header")
    assert text.startswith("# header\n---\n")
    assert "cmd: !unsafe 'echo {{ lookup(''pipe'', ''id'') }}'" in text


def test_a_secret_in_an_exported_file_stops_the_export() -> None:
    check_no_secret({"inventory.yml": "ansible_ssh_private_key_file: /home/admin/.ssh/id_ed25519\n"})
    with pytest.raises(Exception, match="looks like a secret"):
        check_no_secret({"inventory.yml": "db_password: hunter2\n"})


def test_the_module_vendors_the_wizards_editor_verbatim() -> None:
    import inspect

    from wizard.confluence import serverxml

    module = connector_module()
    source = inspect.getsource(serverxml)
    body = source.replace("from __future__ import annotations\n", "")
    body = body.split("from wizard.errors import BadInputError\n")[1]
    assert body in module  # everything after the one replaced import, byte for byte
    import re

    assert not re.search(r"^\s*(from|import) wizard", module, re.MULTILINE)  # stand-alone on the node
    assert module.index("from __future__ import annotations") < module.index("def plan_connector_edit")
