"""The base-url step's database route against a REAL PostgreSQL started by the test.

A throwaway cluster (initdb + pg_ctl in a temp folder, on a free loopback port, run as the
``postgres`` user when the tests run as root) holds a ``confluence`` database with the
``bandana`` table and Confluence's global settings row. The wizard runs ``psql`` on the
first node through the local transport, with the password from ``PGPASSWORD`` or
``~/.pgpass`` (never from the answers). The nodes' Confluence is stopped (nothing listens
on their ports) unless a test starts a stand-in that answers ``/status``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from wizard.answers import validate
from wizard.errors import EXIT_OK, EXIT_STEP_FAILED, WizardError
from wizard.lab.cluster import Lab
from wizard.lab.processes import free_port
from wizard.engine.runner import Runner
from wizard.engine.state import StateStore

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"
BIN = Path(sys.executable).parent / "confluence-lb-wizard"
IS_ROOT = os.geteuid() == 0
SUPERUSER_PASSWORD = "clbw-superuser-pw"
PASSWORD = "clbw-confluence-pw"
OLD = "http://confluence.internal:8090"
PUBLIC = "https://wiki.example.com"

# What Confluence keeps in bandana: its settings as XStream XML, and other rows beside them.
SETTINGS = f"""<settings>
  <doNotSave>false</doNotSave>
  <allowCamelCase>false</allowCamelCase>
  <allowTrackbacks>false</allowTrackbacks>
  <baseUrl>{OLD}</baseUrl>
  <siteTitle>Team wiki &amp; docs ünïcödé</siteTitle>
  <customHtmlSettings>
    <beforeHeadEnd>&lt;script&gt;var base = &apos;{OLD}&apos;;&lt;/script&gt;</beforeHeadEnd>
  </customHtmlSettings>
  <defaultEncoding>UTF-8</defaultEncoding>
</settings>"""
OTHER_ROWS = [(2, "_GLOBAL", "atlassian.confluence.smtp.settings", "<smtp/>"),
              (3, "SPACEKEY", "atlassian.confluence.settings",
               f"<spaceSettings><baseUrl>{OLD}</baseUrl></spaceSettings>")]


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl, installing PostgreSQL with apt when it is missing and we may."""
    def find() -> Path | None:
        found = shutil.which("initdb")
        if found:
            return Path(os.path.realpath(found)).parent
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        return Path(versions[-1]).parent if versions else None

    folder = find()
    if folder is None:
        if not (IS_ROOT and shutil.which("apt-get")):
            pytest.fail("PostgreSQL is not installed and cannot be installed here (not root, or no apt-get): "
                        "install it (apt-get install -y postgresql) and run the tests again.")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
            subprocess.run(command, check=False, env=env, capture_output=True, timeout=900)
        folder = find()
        if folder is None:
            pytest.fail("initdb is still missing after apt-get install postgresql.")
    return folder


class Postgres:
    """One throwaway PostgreSQL cluster on 127.0.0.1 with Confluence's bandana table."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.psql = shutil.which("psql") or str(self.bin / "psql")
        self.root = Path(tempfile.mkdtemp(prefix="clbw-pg-"))
        self.port = free_port()
        # As root the server must run as an ordinary user: postgres refuses to run as root.
        self.user = "postgres" if IS_ROOT else None

    def as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def start(self) -> Postgres:
        (self.root / "pw").write_text(SUPERUSER_PASSWORD + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.root / "pw"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        subprocess.run(self.as_owner([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                                      "--locale=C.UTF-8", "--auth=scram-sha-256", f"--pwfile={self.root / 'pw'}"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
        subprocess.run(self.as_owner([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"),
                                      "-w", "-o", options, "start"]), check=True, capture_output=True, timeout=120)
        self.sql(f"create role confluence login password '{PASSWORD}'; ", database="postgres", user="postgres")
        self.sql("create database confluence owner confluence encoding 'UTF8';", database="postgres", user="postgres")
        self.reset()
        return self

    def stop(self) -> None:
        subprocess.run(self.as_owner([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w",
                                      "stop"]), check=False, capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str, *, database: str = "confluence", user: str = "confluence") -> str:
        password = SUPERUSER_PASSWORD if user == "postgres" else PASSWORD
        done = subprocess.run([self.psql, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", user, "-d", database],
                              input=statement, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PGPASSWORD": password}, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def reset(self) -> None:
        """The table as a fresh Confluence has it: the settings row and others beside it."""
        self.sql("drop table if exists bandana; create table bandana (bandanaid bigint primary key, "
                 "bandanacontext varchar(255), bandanakey varchar(100), bandanavalue text);")
        rows = [(1, "_GLOBAL", "atlassian.confluence.settings", SETTINGS), *OTHER_ROWS]
        values = ", ".join(f"({i}, $v${c}$v$, $v${k}$v$, $v${v}$v$)" for i, c, k, v in rows)
        self.sql(f"insert into bandana values {values};")

    def settings(self) -> str:
        return self.sql("select bandanavalue from bandana where bandanaid = 1;").rstrip("\n")

    def others(self) -> str:
        return self.sql("select bandanaid, bandanavalue from bandana where bandanaid <> 1 order by 1;")


@pytest.fixture(scope="module")
def postgres():
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture
def db(postgres: Postgres, monkeypatch) -> Postgres:
    """A fresh table for the test, and psql's password in the environment (as an admin's shell has it)."""
    postgres.reset()
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return postgres


def make_answers(tmp_path: Path, pg: Postgres, nodes: int = 2) -> dict:
    raw_nodes = []
    for index in range(1, nodes + 1):
        install = tmp_path / f"node{index}"
        (install / "conf").mkdir(parents=True, exist_ok=True)
        port = free_port()  # nothing listens there: Confluence is stopped
        stock = (FIXTURES / "confluence-8-stock.xml").read_text()
        (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{port}"'))
        raw_nodes.append({"name": f"node{index}", "address": "127.0.0.1", "install_dir": str(install),
                          "confluence_port": port, "access": {"transport": "local"}})
    return {"name": "pg-test", "public_url": PUBLIC, "nodes": raw_nodes,
            "base_url": {"method": "postgres", "database": {"host": "127.0.0.1", "port": pg.port, "name": "confluence",
                                                            "user": "confluence", "psql": pg.psql}},
            "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"}, "config_path": "/etc/x.conf",
                                                      "tls": {"certificate_file": "/c.pem", "key_file": "/k.pem"}}}}


def runner(raw: dict, state: Path, **options) -> Runner:
    return Runner(validate(raw), StateStore(state), command="test", **options)


class Running:
    """A stand-in for a running Confluence: anything on the node's port answers /status."""

    def __init__(self, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"state":"RUNNING"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_plan_reads_the_old_value_and_changes_nothing(tmp_path: Path, db: Postgres) -> None:
    raw = make_answers(tmp_path, db)
    with runner(raw, tmp_path / "s.json", read_only=True) as run:
        plan = run.plan(["base-url"])[0]
    change = plan.changes[0]
    assert change.kind == "database" and change.target == "node1"
    assert change.details.old == OLD and change.details.new == PUBLIC
    assert change.diff == f"-<baseUrl>{OLD}</baseUrl>\n+<baseUrl>{PUBLIC}</baseUrl>\n"
    assert db.settings() == SETTINGS and not (tmp_path / "s.json").exists()


def test_it_refuses_while_confluence_runs_on_a_node(tmp_path: Path, db: Postgres) -> None:
    raw = make_answers(tmp_path, db)
    running = Running(raw["nodes"][1]["confluence_port"])
    try:
        with runner(raw, tmp_path / "s.json") as run:
            outcome = run.apply(["base-url"])
    finally:
        running.stop()
    assert outcome.exit_status == EXIT_STEP_FAILED
    assert "still answers on node2" in outcome.message and "Stop Confluence on every node" in outcome.message
    record = json.loads((tmp_path / "s.json").read_text())["steps"]["base-url"]
    assert record["status"] == "failed" and record["undo"] == [] and record["changes"] == []
    assert db.settings() == SETTINGS


def test_apply_records_the_undo_first_writes_one_element_and_rolls_back(tmp_path: Path, db: Postgres) -> None:
    raw = make_answers(tmp_path, db)
    state = tmp_path / "s.json"
    others = db.others()
    with runner(raw, state) as run:
        outcome = run.apply(["base-url"])
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert db.settings() == SETTINGS.replace(f"<baseUrl>{OLD}</baseUrl>", f"<baseUrl>{PUBLIC}</baseUrl>")
    assert db.others() == others  # another space's settings, the SMTP row: untouched
    record = json.loads(state.read_text())["steps"]["base-url"]
    undo, change = record["undo"][0], record["changes"][0]
    assert undo["kind"] == "base-url-database" and undo["data"]["old"] == OLD
    assert undo["recorded"] <= change["at"]  # on disk before the write
    assert "psql -h 127.0.0.1" in undo["manual"] and f"<baseUrl>{OLD}</baseUrl>" in undo["manual"]
    assert record["status"] == "verified"
    assert [(c["name"], c["passed"]) for c in record["checks"]] == [("base URL matches public_url (database)", True)]
    assert PASSWORD not in state.read_text() and "siteTitle" not in state.read_text()  # no password, no settings blob

    with runner(raw, state) as run:
        again = run.apply(["base-url"])
        assert again.exit_status == EXIT_OK and run.state.steps["base-url"].plan["changes"] == []
        assert run.rollback("base-url").exit_status == EXIT_OK
    assert db.settings() == SETTINGS  # byte for byte


def test_a_row_changed_after_the_plan_is_not_overwritten(tmp_path: Path, db: Postgres) -> None:
    raw = make_answers(tmp_path, db)

    def someone_else_edits(plan) -> bool:
        db.sql("update bandana set bandanavalue = replace(bandanavalue, 'Team wiki', 'Our wiki') where bandanaid = 1;")
        return True

    with runner(raw, tmp_path / "s.json") as run:
        outcome = run.apply(["base-url"], confirm=someone_else_edits)
    assert outcome.exit_status == EXIT_STEP_FAILED and "changed since the plan" in outcome.message
    assert db.settings() == SETTINGS.replace("Team wiki", "Our wiki")  # theirs, with the old base URL


def test_a_refused_write_changes_nothing_and_the_undo_finds_nothing_to_do(tmp_path: Path, db: Postgres) -> None:
    raw = make_answers(tmp_path, db)
    db.sql("revoke update on bandana from confluence;")
    try:
        with runner(raw, tmp_path / "s.json") as run:
            outcome = run.apply(["base-url"])
    finally:
        db.sql("grant update on bandana to confluence;")
    assert outcome.exit_status == EXIT_STEP_FAILED and "permission denied" in outcome.message
    record = json.loads((tmp_path / "s.json").read_text())["steps"]["base-url"]
    assert record["undo"][0]["undone"] and record["error"]["undone"]  # performed: nothing was left to put back
    assert db.settings() == SETTINGS


def test_the_password_comes_from_pgpass_and_a_wrong_one_is_a_clear_error(tmp_path: Path, postgres: Postgres,
                                                                       monkeypatch) -> None:
    postgres.reset()
    raw = make_answers(tmp_path, postgres)
    home = tmp_path / "home"
    home.mkdir()
    pgpass = home / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:confluence:confluence:{PASSWORD}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    with runner(raw, tmp_path / "s.json", read_only=True) as run:
        assert run.plan(["base-url"])[0].changes[0].details.old == OLD
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    pgpass.unlink()
    with runner(raw, tmp_path / "s.json", read_only=True) as run, pytest.raises(WizardError) as failed:
        run.plan(["base-url"])
    assert "password authentication failed" in failed.value.message and "node1" in failed.value.message
    assert "~/.pgpass" in failed.value.hint and "not-the-password" not in failed.value.for_admin()


def test_the_command_plans_and_applies_with_the_password_in_the_environment(tmp_path: Path, db: Postgres) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump(make_answers(tmp_path, db)))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg"), "PGPASSWORD": PASSWORD}
    state = tmp_path / "cli.state.json"

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    planned = cli("plan", "--answers", str(answers), "--state", str(state), "--only", "base-url")
    assert planned.returncode == 0 and f"+<baseUrl>{PUBLIC}</baseUrl>" in planned.stdout, planned.stdout
    applied = cli("apply", "--answers", str(answers), "--state", str(state), "--only", "base-url", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"<baseUrl>{PUBLIC}</baseUrl>" in db.settings()
    runbook = cli("runbook", "--state", str(state)).stdout
    assert "bandana" in runbook and f"<baseUrl>{OLD}</baseUrl>" in runbook  # the undo, by hand


def test_the_restart_step_brings_the_stopped_nodes_up_after_the_write(tmp_path: Path, db: Postgres) -> None:
    """The documented order: Confluence stopped, base URL written, Connector edited, nodes restarted one
    at a time (the lab's nodes start again on their restart command, as a stopped service does)."""
    with Lab(tmp_path / "lab", nodes=2) as lab:
        raw = lab.answers()
        raw["base_url"] = make_answers(tmp_path, db)["base_url"]
        for node in lab.nodes:
            node.stop_confluence()
        with runner(raw, tmp_path / "s.json") as run:
            outcome = run.apply(["base-url", "connector", "restart"])
        assert outcome.exit_status == EXIT_OK, outcome.message
        assert f"<baseUrl>{lab.public_url}</baseUrl>" in db.settings()
        assert [node.state for node in lab.nodes] == ["RUNNING", "RUNNING"]
        assert [node.restarts for node in lab.nodes] == [1, 1]
