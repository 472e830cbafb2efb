"""Rollback trusts nothing the state file says without checking it, and nothing on the way
to or from the state file follows a symlink by surprise or corrupts a command.

Undo records are checked against the setup (paths it could have changed, names of its
site and modules), commands are built from the answers, the state file and its folder are
held to OpenSSH's StrictModes, the lock and the backup copy never follow a planted link,
and masking secrets never rewrites what rollback acts on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from wizard.answers import validate
from wizard.balancers.apache.facts import LAYOUTS, ApacheError, check_config_path, resolve_config_path
from wizard.engine.command_secrets import literal_secret
from wizard.errors import AnswersError, HostError, StateError, StateLockedError
from wizard.transport.hosts import LocalHost, backup_path_for
from wizard.engine.model import BALANCER, UndoAction
from wizard.engine.records import ChangeRecord, UndoRecord
from wizard.engine.redact import MASK
from wizard.engine.state import State, StateStore
from wizard.balancers.apache.step import STEP as APACHE
from wizard.balancers.apache.undo import MODULE_UNDO, SITE_UNDO
from wizard.steps.base_url import STEP as BASE_URL
from wizard.steps.connector import STEP as CONNECTOR
from wizard.engine.undo import LegacyCommandError, UndoRecordError, parse_record, restore_file_action

INJECTED = "/etc/apache2/sites-available/x;cd;echo INJECTED-$(id -un)>pwned;.conf"


def answers(config_path: str | None = "/etc/apache2/sites-available/confluence-lb.conf", *,
            reload: str | None = None, postgres: bool = False, psql: str = "psql"):
    apache: dict = {"access": {"transport": "local"}}
    if config_path:
        apache["config_path"] = config_path
    if reload:
        apache["reload_command"] = reload
    raw: dict = {"name": "trust", "public_url": "http://wiki.example.com",
                 "nodes": [{"name": "node1", "address": "10.0.0.1", "install_dir": "/opt/confluence",
                            "access": {"transport": "local"}}],
                 "balancer": {"kind": "apache", "apache": apache}}
    if postgres:
        raw["base_url"] = {"method": "postgres", "database": {"psql": psql}}
    return validate(raw)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- defect 1: a2ensite


@pytest.mark.parametrize("path", [INJECTED, "/etc/apache2/sites-available/000-default wiki.conf",
                                  "/etc/apache2/sites-available/-q.conf", "/etc/httpd/conf.d/a'b.conf"])
def test_a_config_path_whose_name_is_not_a_plain_word_is_refused(path: str) -> None:
    # Refused when the answers are read...
    with pytest.raises(AnswersError) as invalid:
        answers(path)
    assert [problem.key for problem in invalid.value.problems] == ["balancer.apache.config_path"]
    # ...and again where the command is built, should answers ever arrive unchecked.
    options = dataclasses.replace(answers().balancer.apache, config_path=path)
    with pytest.raises(ApacheError) as refused:
        resolve_config_path(LAYOUTS["debian"], options)
    assert "config_path" in refused.value.message and refused.value.hint


def test_site_and_module_commands_are_checked_and_quoted() -> None:
    enabler = LAYOUTS["debian"].site_enablers[0]
    assert enabler.enable_command("confluence-lb") == "a2ensite -q confluence-lb"
    assert LAYOUTS["debian"].disable_module_command("proxy_http") == "a2dismod -q -f proxy_http"
    for hostile in ("x;id", "a b", "-f", "$(id)", "x\ny"):
        with pytest.raises(ApacheError):
            enabler.disable_command(hostile)
        with pytest.raises(ApacheError):
            LAYOUTS["debian"].enable_module_command(hostile)
    assert check_config_path("/etc/apache2/sites-available/wiki_2.conf")


def test_the_plan_enables_the_site_with_a_checked_name() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_apache_template import plain_facts, targets

    from wizard.balancers.apache.vhost import BalancerFacts

    import dataclasses

    # Every module loaded already, Apache reading sites-enabled: the only command is enabling the site.
    from wizard.balancers.apache.vhost import ALL_MODULES

    facts = dataclasses.replace(plain_facts(), includes=("/etc/apache2/sites-enabled/confluence-lb.conf",),
                                loaded={m: "shared" for m in ALL_MODULES},
                                loaded_elsewhere=frozenset(ALL_MODULES))
    plan = APACHE.plan(answers(), BalancerFacts(facts, targets(1)))
    site = next(c for c in plan.changes if c.details.role == "site")
    assert site.details.command == "a2ensite -q confluence-lb" and site.details.site == "confluence-lb"


# --------------------------------------------------------------------------- defect 3: records checked


def test_a_restore_record_outside_the_setup_is_refused_naming_the_record() -> None:
    action = restore_file_action("node1", "/etc/passwd", backup_path_for("/etc/passwd"), b"a", b"b")
    with pytest.raises(UndoRecordError) as refused:
        CONNECTOR.vet_undo(answers(), action, "undo record 3 of the connector step")
    assert "undo record 3 of the connector step" in refused.value.message
    assert "/etc/passwd" in refused.value.message and "/opt/confluence/conf/server.xml" in refused.value.message
    assert refused.value.hint


def test_a_restore_record_of_server_xml_is_described_from_its_data_not_the_files_text() -> None:
    path = "/opt/confluence/conf/server.xml"
    entry = restore_file_action("node1", path, backup_path_for(path), b"a", b"b").to_dict()
    entry["description"] = "Harmless housekeeping."
    entry["manual"] = "rm -rf /"
    vetted = CONNECTOR.vet_undo(answers(), parse_record(entry, "r"), "r")
    assert path in vetted.description and "Harmless" not in vetted.description
    assert vetted.manual.startswith("cp -p -- ") and "rm -rf" not in vetted.manual


@pytest.mark.parametrize("change", [
    {"backup": "/tmp/evil"},                                        # a backup not beside the file
    {"backup": "/opt/confluence/conf/server.xml.x/../../../../etc/shadow"},
    {"path": "/opt/confluence/conf/../../../etc/passwd"},           # not a normal path
    {"target": "node9"},                                             # not a node of the answers
    {"sha256_before": "not a checksum"},
])
def test_a_tampered_file_record_is_refused(change: dict) -> None:
    path = "/opt/confluence/conf/server.xml"
    action = restore_file_action("node1", path, backup_path_for(path), b"a", b"b")
    if "target" in change:
        action.target = change["target"]
    action.data.update({k: v for k, v in change.items() if k != "target"})
    with pytest.raises(UndoRecordError):
        CONNECTOR.vet_undo(answers(), action, "undo record 1 of the connector step")


@pytest.mark.parametrize("entry", [{"kind": "restore-file"}, {"target": "node1"}, "text", {"kind": "remove-file",
                                   "target": "node1", "data": {}}])
def test_a_record_without_target_or_path_is_a_clear_error(entry) -> None:
    with pytest.raises(UndoRecordError) as refused:
        CONNECTOR.vet_undo(answers(), parse_record(entry, "undo record 1 of the connector step"),
                           "undo record 1 of the connector step")
    assert "undo record 1 of the connector step" in refused.value.message


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(UndoRecordError, match="never records"):
        CONNECTOR.vet_undo(answers(), UndoAction("format-disk", "node1", "", "", {}), "r")


def test_site_and_module_records_name_only_the_answers_site_and_known_modules() -> None:
    site = APACHE.vet_undo(answers(), UndoAction(SITE_UNDO, BALANCER, "x", "x", {"site": "confluence-lb"}), "r")
    assert site.manual == "a2dissite -q confluence-lb" and "confluence-lb" in site.description
    with pytest.raises(UndoRecordError, match="not the site"):
        APACHE.vet_undo(answers(), UndoAction(SITE_UNDO, BALANCER, "", "", {"site": "000-default"}), "r")
    with pytest.raises(UndoRecordError, match="never switches on"):
        APACHE.vet_undo(answers(), UndoAction(MODULE_UNDO, BALANCER, "", "", {"module": "x;id"}), "r")


def test_an_old_run_record_is_never_run_but_what_this_version_would_build_is_performed() -> None:
    same = APACHE.vet_undo(answers(), UndoAction("run", BALANCER, "", "", {"command": "a2dissite -q confluence-lb"}),
                           "r")
    assert same.kind == SITE_UNDO and same.data == {"site": "confluence-lb"}
    module = APACHE.vet_undo(answers(), UndoAction("run", BALANCER, "", "", {"command": "a2dismod -q -f headers"}),
                             "r")
    assert module.kind == MODULE_UNDO
    with pytest.raises(LegacyCommandError) as refused:
        APACHE.vet_undo(answers(), UndoAction("run", BALANCER, "d", "m", {"command": "touch /tmp/pwned"}),
                        "undo record 2 of the balancer step")
    assert "touch /tmp/pwned" in refused.value.hint and "never runs commands" in refused.value.message


def test_the_reload_record_keeps_no_command_and_takes_the_answers_ones() -> None:
    reload = "RELOAD_TOKEN=$(echo abc) apache2ctl graceful"
    entry = {"kind": "apache-reload", "target": BALANCER, "description": "x", "manual": "x",
             "data": {"token": "ab12", "reload": "rm -rf /", "configtest": "rm -rf /"}}
    vetted = APACHE.vet_undo(answers(reload=reload), parse_record(entry, "r"), "r")
    assert vetted.data == {"reload_id": "ab12"} and reload in vetted.description and "rm -rf" not in vetted.manual
    # An older state whose answers were masked: refused when the answers are read, and again here.
    masked = f"RELOAD_TOKEN={MASK} abc) apache2ctl graceful"
    with pytest.raises(AnswersError, match="holds a secret"):
        answers(reload=masked)
    unchecked = answers(reload=reload)
    unchecked.balancer.apache = dataclasses.replace(unchecked.balancer.apache, reload_command=masked)
    with pytest.raises(UndoRecordError, match="masked secret"):
        APACHE.vet_undo(unchecked, parse_record(entry, "r"), "r")


def test_a_database_record_runs_only_against_the_answers_database() -> None:
    good = {"database": {"host": "localhost", "port": 5432, "name": "confluence", "user": "confluence",
                         "psql": "psql"}, "old": "http://old.example.com", "new": "http://wiki.example.com"}
    action = UndoAction("base-url-database", "node1", "x", "x", dict(good))
    assert BASE_URL.vet_undo(answers(postgres=True), action, "r").data["database"]["psql"] == "psql"
    evil = UndoAction("base-url-database", "node1", "x", "x",
                      {**good, "database": {**good["database"], "psql": "touch /tmp/pwned; psql"}})
    with pytest.raises(UndoRecordError, match="not the one of these answers"):
        BASE_URL.vet_undo(answers(postgres=True), evil, "r")


# --------------------------------------------------------------------------- defects 3/4: the state's files


def test_a_state_file_or_folder_writable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    store = StateStore(folder / "x.state.json")
    store.save(State(setup="x"))
    store.path.chmod(0o666)
    with pytest.raises(StateError) as refused:
        store.load()
    assert "chmod 600" in (refused.value.hint or "")
    store.path.chmod(0o600)
    folder.chmod(0o777)
    for attempt in (store.load, store.acquire, lambda: store.save(State(setup="x"))):
        with pytest.raises(StateError) as refused:
            attempt()
        assert "chmod go-w" in (refused.value.hint or "")
    folder.chmod(0o700)
    assert store.load().setup == "x"


def test_a_lock_planted_as_a_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    store = StateStore(tmp_path / "s" / "x.state.json")
    store.path.parent.mkdir(mode=0o700)
    store.lock_path.symlink_to(victim)
    with pytest.raises(StateError, match="symbolic link"):
        store.acquire("test")
    assert victim.read_text() == "precious\n"


def test_the_same_state_through_a_symlinked_folder_takes_the_same_lock(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    first, second = StateStore(real / "x.state.json"), StateStore(tmp_path / "link" / "x.state.json")
    first.acquire("first")
    try:
        with pytest.raises(StateLockedError):
            second.acquire("second")
    finally:
        first.release()


def test_the_backup_copy_never_writes_through_a_link_at_its_destination(tmp_path: Path) -> None:
    source, victim = tmp_path / "server.xml", tmp_path / "victim"
    source.write_text("<Server/>")
    victim.write_text("precious\n")
    destination = tmp_path / "server.xml.backup"
    destination.symlink_to(victim)
    with pytest.raises(HostError, match="already there"):
        LocalHost().copy(str(source), str(destination))
    assert victim.read_text() == "precious\n" and destination.is_symlink()
    fresh = tmp_path / "fresh.backup"
    os.chmod(source, 0o640)
    LocalHost().copy(str(source), str(fresh))
    assert fresh.read_text() == "<Server/>" and fresh.stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------- defect 5: masking


def test_a_command_with_a_reference_survives_the_state_round_trip_and_undo_is_never_masked(tmp_path: Path) -> None:
    reload = "RELOAD_TOKEN=$(echo abc) apache2ctl graceful"
    store = StateStore(tmp_path / "x.state.json")
    state = State(setup="x", answers={"balancer": {"apache": {"reload_command": reload}}})
    record = state.step("balancer")
    record.undo.append(UndoRecord(UndoAction("apache-reload", BALANCER, "d", "m",
                                             {"token": "ab", "secret_looking": "password=abc"})))
    record.changes.append(ChangeRecord(kind="reload", extra={"command": reload}))
    store.save(state)
    loaded = store.load()
    assert loaded.answers["balancer"]["apache"]["reload_command"] == reload
    assert loaded.steps["balancer"].changes[0].extra["command"] == reload
    assert loaded.steps["balancer"].undo == record.undo


@pytest.mark.parametrize("command, found", [
    ("RELOAD_TOKEN=$(echo abc) apache2ctl graceful", None),
    ('PGPASSWORD="$PW" psql -h db', None),
    ("apache2ctl -f /etc/a.conf -k graceful", None),
    ("sudo -u www-data apachectl graceful", None),
    ("psql -p 5432 -U confluence", None),
    ("reload --token abc;systemctl reload apache2", "--token"),
    ("PGPASSWORD=hunter2 psql", "PGPASSWORD"),
    ("MYSQL_PWD=x mysql", "MYSQL_PWD"),
    ("curl -u user:pass http://x", "user:password"),
    ("sshpass -p pass ssh x", "sshpass"),
    ("curl http://u:p@h/", "URL"),
])
def test_literal_secrets_in_commands_are_found_and_references_are_not(command: str, found: str | None) -> None:
    result = literal_secret(command)
    assert (result is None) if found is None else (result is not None and found in result)
