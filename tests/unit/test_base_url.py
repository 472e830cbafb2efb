"""The base-url step from plain data: comparing URLs, reading manifests and settings rows,
planning both methods, and the guided apply headless and watched (probes stubbed)."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

import pytest

from wizard.answers import find_problems, validate
from wizard.answers_model import Database
from wizard.confluence import checks
from wizard.confluence.probes import HttpAnswer, manifest_base_url
from wizard.engine.events import ProgressReported
from wizard.engine.model import Plan
from wizard.engine.step import Context, Journal
from wizard.errors import Interrupted, StepFailedError, WizardError
from wizard.steps import base_url
from wizard.steps.base_url import (
    STEP,
    BaseUrlFacts,
    SettingsRow,
    manual_sql,
    psql_command,
)
from wizard.transport.pool import HostPool

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"

SETTINGS = """<settings>
  <doNotSave>false</doNotSave>
  <allowCamelCase>false</allowCamelCase>
  <baseUrl>http://confluence.internal:8090</baseUrl>
  <siteTitle>Wiki &amp; more</siteTitle>
  <customHtmlSettings><beforeHeadEnd>&lt;!-- baseUrl --&gt;</beforeHeadEnd></customHtmlSettings>
</settings>"""


def answers_for(tmp_path: Path, method: str = "guided", public_url: str = "https://wiki.example.com", **base):
    install = tmp_path / "node1"
    (install / "conf").mkdir(parents=True, exist_ok=True)
    (install / "conf" / "server.xml").write_bytes((FIXTURES / "confluence-8-stock.xml").read_bytes())
    raw = {"name": "base-url-test", "public_url": public_url,
           "nodes": [{"name": "node1", "address": "10.0.0.1", "install_dir": str(install),
                      "access": {"transport": "local"}}],
           "base_url": {"method": method, **base},
           "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"}, "config_path": "/etc/a.conf",
                                                     "tls": {"certificate_file": "/c.pem", "key_file": "/k.pem"}}}}
    return validate(raw)


# --------------------------------------------------------------------------- comparing


@pytest.mark.parametrize("seen, wanted, same", [
    ("https://wiki.example.com", "https://wiki.example.com/", True),
    ("HTTPS://Wiki.Example.COM:443", "https://wiki.example.com", True),
    ("http://wiki.example.com:80/wiki/", "http://wiki.example.com/wiki", True),
    ("http://wiki.example.com", "https://wiki.example.com", False),  # scheme
    ("https://wiki.example.com:8443", "https://wiki.example.com", False),  # port
    ("https://wiki.example.com/wiki", "https://wiki.example.com", False),  # context path
    ("https://old.example.com", "https://wiki.example.com", False),  # host
    ("not a url", "https://wiki.example.com", False),
])
def test_base_urls_compare_by_scheme_host_port_and_path(seen: str, wanted: str, same: bool) -> None:
    assert checks.same_base_url(seen, wanted) is same


def test_the_manifest_url_is_the_roots_own_url_element() -> None:
    stock = ("<manifest><id>A</id><iconUrl>https://x/images/i.png</iconUrl><url>https://wiki.example.com</url>"
             "<iconUri>https://x/i.png</iconUri></manifest>")
    assert manifest_base_url(stock) == "https://wiki.example.com"
    namespaced = ('<?xml version="1.0"?><a:manifest xmlns:a="urn:applinks"><a:url> https://w/wiki </a:url>'
                  "</a:manifest>")
    assert manifest_base_url(namespaced) == "https://w/wiki"
    assert manifest_base_url('{"id": "A", "url": "https://json.example.com"}') == "https://json.example.com"
    assert manifest_base_url("<manifest><url>https://a.example.com/?x=1&amp;y=2</url><icon") == \
        "https://a.example.com/?x=1&y=2"  # cut short, still found
    assert manifest_base_url("<manifest><name>Confluence</name></manifest>") is None
    assert manifest_base_url("<html>login</html>") is None


# --------------------------------------------------------------------------- the settings row


def test_the_settings_row_gives_and_replaces_only_the_base_url() -> None:
    row = SettingsRow(10, "0" * 32, SETTINGS)
    assert row.base_url == "http://confluence.internal:8090"
    new = row.with_base_url("https://wiki.example.com/a&b")
    assert "<baseUrl>https://wiki.example.com/a&amp;b</baseUrl>" in new
    assert new.replace("<baseUrl>https://wiki.example.com/a&amp;b</baseUrl>",
                       "<baseUrl>http://confluence.internal:8090</baseUrl>") == SETTINGS
    assert SettingsRow(1, "", "<settings/>").base_url is None
    twice = SETTINGS.replace("</settings>", "<baseUrl>x</baseUrl></settings>")
    assert SettingsRow(1, "", twice).base_url is None  # ambiguous: never guessed


def test_psql_never_prompts_and_quotes_what_it_is_given() -> None:
    command = psql_command(Database(host="db.internal", port=5433, name="conf luence", user="conf"))
    assert " -w " in command and " -X " in command and "ON_ERROR_STOP=1" in command
    assert "-d 'conf luence'" in command and "-p 5433" in command and "-U conf" in command
    manual = shlex.split(manual_sql(Database(), "https://new.example.com", "http://it's.old:8090"))
    assert manual[:10] == ["psql", "-h", "localhost", "-p", "5432", "-U", "confluence", "-d", "confluence", "-c"]
    assert "'<baseUrl>http://it''s.old:8090</baseUrl>')" in manual[10]  # a SQL literal inside one shell word


# --------------------------------------------------------------------------- answers


def test_the_postgres_route_takes_a_database_block_without_password(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, "postgres", database={"host": "db.internal", "user": "wiki"})
    assert answers.base_url.db == Database(host="db.internal", port=5432, name="confluence", user="wiki")
    assert answers_for(tmp_path, "postgres").base_url.db == Database()
    raw = answers.to_dict()
    raw["public_url"] = answers.public_url.url
    raw["base_url"]["database"]["password"] = "hunter2"
    problems = {p.key: p.message for p in find_problems(raw)}
    assert "~/.pgpass" in problems["base_url.database.password"] and "hunter2" not in str(problems)
    raw["base_url"] = {"method": "guided", "database": {"host": "db"}}
    assert "only for method postgres" in {p.key: p.message for p in find_problems(raw)}["base_url.database"]


# --------------------------------------------------------------------------- plans


def facts(method: str = "guided", current: str | None = "http://10.0.0.1:8090", **extra) -> BaseUrlFacts:
    values = {"method": method, "wanted": "https://wiki.example.com", "current": current,
              "source": "node1's manifest", "node": "node1",
              "admin_page": "http://10.0.0.1:8090/admin/editgeneralconfig.action",
              "manifest": "http://10.0.0.1:8090/rest/applinks/1.0/manifest"}
    values.update(extra)
    return BaseUrlFacts(**values)


def test_a_matching_base_url_plans_nothing(tmp_path: Path) -> None:
    plan = STEP.plan(answers_for(tmp_path), facts(current="https://WIKI.example.com:443/"))
    assert plan.is_noop and "already" in plan.noop_reason and "node1's manifest" in plan.noop_reason


def test_guided_plan_tells_exactly_where_to_change_it(tmp_path: Path) -> None:
    plan = STEP.plan(answers_for(tmp_path), facts())
    change = plan.changes[0]
    assert change.kind == "manual" and change.target == "node1"
    assert change.summary == ("In Confluence, go to General Configuration > Server Base URL "
                              "(http://10.0.0.1:8090/admin/editgeneralconfig.action) and set it to "
                              "https://wiki.example.com")
    assert change.details.old == "http://10.0.0.1:8090"


def test_postgres_plan_shows_the_element_it_rewrites_and_who_still_runs(tmp_path: Path) -> None:
    answers = answers_for(tmp_path, "postgres")
    row = SettingsRow(7, "a" * 32, SETTINGS)
    plan = STEP.plan(answers, facts("postgres", row.base_url, settings=row, running=("node1",)))
    change = plan.changes[0]
    assert change.kind == "database" and change.payload is row
    assert change.diff == ("-<baseUrl>http://confluence.internal:8090</baseUrl>\n"
                           "+<baseUrl>https://wiki.example.com</baseUrl>\n")
    assert "stop it on every node" in plan.summary and change.details.bandanaid == 7
    assert "payload" not in change.to_dict()  # the settings stay out of the state
    with pytest.raises(WizardError, match="no single <baseUrl>"):
        STEP.plan(answers, facts("postgres", None, settings=SettingsRow(7, "", "<settings/>")))


# --------------------------------------------------------------------------- guided apply


class Recorder:
    def __init__(self) -> None:
        self.undo: list = []
        self.changes: list = []
        self.journal = Journal(self.undo.append, self.changes.append)


def context(answers, events: list | None = None, *, interactive: bool) -> Context:
    sink = events.append if events is not None else (lambda event: None)
    return Context(answers=answers, hosts=HostPool(answers), events=sink, interactive=interactive)


def test_headless_guided_apply_fails_at_once_saying_where_to_change_it(tmp_path: Path) -> None:
    answers = answers_for(tmp_path)
    plan = STEP.plan(answers, facts())
    recorder = Recorder()
    with pytest.raises(StepFailedError) as failed:
        STEP.apply(context(answers, interactive=False), plan, recorder.journal)
    assert failed.value.exit_code == 1
    assert "http://10.0.0.1:8090/admin/editgeneralconfig.action" in failed.value.message
    assert "https://wiki.example.com" in failed.value.message and "run the same command again" in failed.value.hint
    assert recorder.changes == [] and recorder.undo == []


def test_watched_guided_apply_waits_for_the_admin_then_records_the_old_value(tmp_path: Path, monkeypatch) -> None:
    answers = answers_for(tmp_path)
    plan = STEP.plan(answers, facts())
    seen = iter(["http://10.0.0.1:8090", None, "https://wiki.example.com"])
    looked: list[str] = []

    def manifest(url: str):
        looked.append(url)
        value = next(seen)
        return value, HttpAnswer(url, 200 if value else None, error="refused")

    monkeypatch.setattr(checks, "read_base_url", manifest)
    monkeypatch.setattr(base_url, "POLL_SECONDS", 0.01)
    events: list = []
    recorder = Recorder()
    summary = STEP.apply(context(answers, events, interactive=True), plan, recorder.journal)
    assert "now https://wiki.example.com (was http://10.0.0.1:8090)" in summary
    assert looked == ["http://10.0.0.1:8090/rest/applinks/1.0/manifest"] * 3
    progress = [e.message for e in events if isinstance(e, ProgressReported)]
    assert progress[0].startswith("In Confluence, go to General Configuration > Server Base URL")
    assert any("waiting for the base URL" in m for m in progress)
    assert recorder.undo == []  # the admin made the change; nothing for the wizard to undo
    assert recorder.changes[0]["old"] == "http://10.0.0.1:8090" and recorder.changes[0]["kind"] == "manual"


def test_watched_guided_apply_stops_when_cancelled_or_out_of_time(tmp_path: Path, monkeypatch) -> None:
    answers = answers_for(tmp_path)
    plan: Plan = STEP.plan(answers, facts())
    monkeypatch.setattr(checks, "read_base_url", lambda url: ("http://10.0.0.1:8090", HttpAnswer(url, 200)))
    monkeypatch.setattr(base_url, "POLL_SECONDS", 5.0)
    ctx = context(answers, interactive=True)
    threading.Timer(0.2, ctx.cancel.set).start()
    with pytest.raises(Interrupted):
        STEP.apply(ctx, plan, Recorder().journal)  # returns at once on cancel, not after the poll
    monkeypatch.setattr(base_url, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(base_url, "WAIT_SECONDS", 0.05)
    with pytest.raises(StepFailedError, match="did not become https://wiki.example.com"):
        STEP.apply(context(answers, interactive=True), plan, Recorder().journal)


def test_postgres_verify_reads_the_database_and_tells_a_stale_node_to_restart(tmp_path: Path, monkeypatch) -> None:
    answers = answers_for(tmp_path, "postgres")
    written = SETTINGS.replace("http://confluence.internal:8090", "https://wiki.example.com")
    monkeypatch.setattr(base_url, "read_settings", lambda host, node, db: SettingsRow(1, "0" * 32, written))
    stale = checks.Reading("node1", "m", "p", "http://confluence.internal:8090", "http://confluence.internal:8090",
                           True)
    stopped = checks.Reading("node2", "m", "p", None, "m: no answer", False)
    monkeypatch.setattr(base_url, "read_manifests", lambda ctx: [stale, stopped])
    found = STEP.verify(context(answers, interactive=False))
    assert [(c.name, c.target, c.passed) for c in found] == [
        ("base URL matches public_url (database)", "node1", True), ("base URL matches public_url", "node1", False)]
    assert "restart Confluence on node1" in found[1].fix  # a stopped node2 is node RUNNING's to report
