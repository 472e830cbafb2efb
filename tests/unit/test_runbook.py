"""The runbook: everything an admin needs to redo or undo the work by hand, and never a secret."""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path

import pytest

import wizard
from wizard import render as render_module
from wizard.errors import BadInputError, WizardError
from wizard.render import environment, render, status_icon, templates_dir, when
from wizard.runbook import STEP_ORDER, STEP_PURPOSES, build_runbook, write_runbook
from wizard.engine.records import ChangeRecord, HistoryEntry, StepError, UndoRecord, check_from_dict
from wizard.engine.state import State

SECRET = "s3cret"
BACKUP = "/opt/atlassian/confluence/conf/server.xml.bak-20261120T233100"
UNDO_COMMAND = f"sudo cp -p {BACKUP} /opt/atlassian/confluence/conf/server.xml"
DIFF = (
    "--- a/conf/server.xml\n"
    "+++ b/conf/server.xml\n"
    "@@ -12,4 +12,5 @@\n"
    f'     <Connector port="8443" SSLEnabled="true" keystorePass="{SECRET}"\n'
    '                keystoreFile="/opt/keys/confluence.jks"/>\n'
    '-    <Connector port="8090" protocol="HTTP/1.1"/>\n'
    '+    <Connector port="8090" protocol="HTTP/1.1"\n'
    '+               proxyName="wiki.example.com" proxyPort="443" scheme="https" secure="true"/>\n'
)
ADDED_LINE = '+               proxyName="wiki.example.com" proxyPort="443" scheme="https" secure="true"/>'
REMOVED_LINE = '-    <Connector port="8090" protocol="HTTP/1.1"/>'
ERROR_MESSAGE = "Apache refused the new configuration: AH00526: Syntax error on line 12"


def realistic_state() -> State:
    """A run that verified preflight, applied the connector, failed on the balancer."""
    state = State(setup="wiki-prod", tool_version="0.1.0", created="2026-11-20T23:20:00+00:00")
    state.answers = {
        "version": 1, "name": "wiki-prod", "public_url": "https://wiki.example.com",
        "synchrony": {"mode": "direct", "port": 8091}, "restart": "rolling",
        "base_url": {"method": "guided"},
        "nodes": [
            {"name": "node1", "address": "10.0.1.11", "instance_id": None,
             "install_dir": "/opt/atlassian/confluence", "confluence_port": 8090,
             "synchrony_port": None, "restart_command": None,
             "access": {"transport": "ssh", "host": "node1.internal", "user": "confluence",
                        "port": 22, "key_file": None, "known_hosts": None,
                        "proxy_jump": "bastion.example.com", "sudo": False}},
            {"name": "node2", "address": "10.0.1.12", "install_dir": "/srv/confluence",
             "access": {"transport": "local"}},
        ],
        "balancer": {
            "kind": "apache", "alb": None,
            "apache": {"access": {"transport": "ssh", "host": "lb1.internal", "user": "root"},
                       "config_path": "/etc/apache2/sites-available/confluence-lb.conf",
                       "server_name": "wiki.example.com", "listen_port": 443,
                       "tls": {"certificate_file": "/etc/ssl/wiki.crt", "key_file": "/etc/ssl/wiki.key"},
                       "manager_allow": ["127.0.0.1"], "configtest_command": None}},
    }
    state.runs = [{"command": "confluence-lb-wizard apply --answers wiki.yaml --yes", "user": "alice",
                   "host": "admin1.example.com", "started": "2026-11-20T23:28:05+00:00",
                   "finished": "2026-11-20T23:40:12+00:00", "exit_status": 1}]

    preflight = state.step("preflight")
    preflight.status, preflight.updated = "verified", "2026-11-20T23:29:00+00:00"
    preflight.summary = "2 nodes and the balancer host read"
    preflight.plan = {"step": "preflight", "summary": "Read the nodes and the balancer host",
                      "changes": [], "noop_reason": "Preflight only reads.", "checks": []}
    preflight.checks = [check_from_dict(check, "check") for check in [
        {"name": "SSH reachable", "target": "node1", "passed": True, "seen": "OpenSSH_9.6", "fix": ""},
        {"name": "Synchrony port known", "target": "node2", "passed": False,
         "seen": "no -Dsynchrony.port in bin/setenv.sh",
         "fix": "Add synchrony_port to node2 in the answers file"},
    ]]

    connector = state.step("connector")
    connector.status, connector.updated = "applied", "2026-11-20T23:31:00+00:00"
    connector.summary = "Proxy attributes set on node1 <script>alert(1)</script>"
    connector.plan = {"step": "connector", "summary": "Edit the HTTP Connector of node1",
                      "noop_reason": None, "checks": [],
                      "changes": [{"target": "node1", "kind": "file", "summary": "add proxy attributes",
                                   "diff": DIFF, "details": {"path": "/opt/atlassian/confluence/conf/server.xml"}}]}
    connector.changes = [ChangeRecord.from_dict(
        {"target": "node1", "kind": "file", "summary": "server.xml edited",
         "path": "/opt/atlassian/confluence/conf/server.xml", "backup": BACKUP,
         "diff": DIFF, "sha256_before": "9f2c0d", "note": f"password={SECRET}"}, "change")]
    connector.undo = [UndoRecord.from_dict(entry, "undo record") for entry in [
        {"kind": "restore-file", "target": "node1", "description": "Put back the original server.xml",
         "manual": UNDO_COMMAND, "data": {"path": "/opt/atlassian/confluence/conf/server.xml", "backup": BACKUP}},
        {"kind": "command", "target": "node1", "description": "Remove the marker file",
         "manual": "rm -f /opt/atlassian/confluence/.lb-wizard", "data": {}},
    ]]

    balancer = state.step("balancer")
    balancer.status, balancer.updated = "failed", "2026-11-20T23:39:00+00:00"
    balancer.summary = "apache2ctl -t refused the vhost"
    balancer.error = StepError(ERROR_MESSAGE, "Read the vhost, correct it, and run apply again.",
                               ["restored /etc/apache2/sites-available/confluence-lb.conf",
                                "balancer: disabled site confluence-lb"])
    state.step("verify")  # pending
    return state


@pytest.fixture(scope="module")
def markdown() -> str:
    return build_runbook(realistic_state(), "md")


@pytest.fixture(scope="module")
def page() -> str:
    return build_runbook(realistic_state(), "html")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_runbook_shows_everything_an_admin_needs(fmt: str, markdown: str, page: str) -> None:
    raw = markdown if fmt == "md" else page
    text = raw if fmt == "md" else html.unescape(raw)
    assert "wiki-prod" in text
    assert "https://wiki.example.com" in text
    assert "alice" in text and "admin1.example.com" in text and "2026-11-20 23:28 UTC" in text
    # Answers.
    assert "node1" in text and "10.0.1.11" in text and "ssh confluence@node1.internal:22" in text
    assert "/srv/confluence" in text and "local" in text
    assert "Apache httpd" in text and "/etc/apache2/sites-available/confluence-lb.conf" in text
    # Every step with its status.
    for name, status in [("preflight", "verified"), ("base-url", "pending"), ("connector", "applied"),
                         ("restart", "pending"), ("balancer", "failed"), ("verify", "pending")]:
        assert name in text
        assert status_icon(status) in text
        assert STEP_PURPOSES[name] in text
    # The diff, the backup, the manual undo, the checks and their fixes, the error.
    assert ADDED_LINE in text and REMOVED_LINE in text
    assert 'keystorePass="********"' in text
    assert BACKUP in text
    assert UNDO_COMMAND in text
    assert "SSH reachable" in text and "Synchrony port known" in text
    assert "Add synchrony_port to node2 in the answers file" in text
    assert ERROR_MESSAGE in text
    assert "restored /etc/apache2/sites-available/confluence-lb.conf" in text
    assert "disabled site confluence-lb" in text
    assert "Preflight only reads." in text


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_no_secret_anywhere(fmt: str, markdown: str, page: str) -> None:
    raw = markdown if fmt == "md" else page
    assert SECRET not in raw
    assert SECRET not in html.unescape(raw)


def test_steps_appear_in_contract_order(markdown: str) -> None:
    headings = [line for line in markdown.splitlines() if line.startswith("## ") and ". " in line]
    assert [h.split(". ", 1)[1].split(":", 1)[0] for h in headings] == STEP_ORDER


def test_markdown_checklist_rows(markdown: str) -> None:
    assert "| ✔ | preflight | verified | 2026-11-20 23:29 UTC |" in markdown
    assert "| ● | connector | applied | 2026-11-20 23:31 UTC |" in markdown
    assert "| ✖ | balancer | failed | 2026-11-20 23:39 UTC |" in markdown
    assert "| ○ | verify | pending | — |" in markdown


def test_markdown_diff_and_undo_are_fenced(markdown: str) -> None:
    assert "```diff\n--- a/conf/server.xml\n" in markdown
    assert f"```sh\n   {UNDO_COMMAND}\n   ```" in markdown


def test_undo_is_listed_newest_first(markdown: str) -> None:
    assert markdown.index("rm -f /opt/atlassian/confluence/.lb-wizard") < markdown.index(UNDO_COMMAND)


def test_unknown_change_keys_are_shown_generically(markdown: str) -> None:
    assert "- sha256_before: 9f2c0d" in markdown
    assert "- note: password=********" in markdown


def test_html_is_escaped_and_self_contained(page: str) -> None:
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "prefers-color-scheme: dark" in page and "@media print" in page
    assert "<link" not in page and "src=" not in page
    assert '<span class="add">' in page and '<span class="del">' in page


def test_unknown_format_is_bad_input() -> None:
    with pytest.raises(BadInputError) as caught:
        build_runbook(realistic_state(), "pdf")
    assert "pdf" in caught.value.message and caught.value.hint


def test_steps_outside_the_order_come_last_and_absent_ones_are_pending() -> None:
    state = realistic_state()
    state.step("custom-step").summary = "an extra step"
    text = build_runbook(state, "md", step_order=["verify", "connector"])
    headings = [line.split(". ", 1)[1].split(":", 1)[0]
                for line in text.splitlines() if line.startswith("## ") and ". " in line]
    assert headings == ["verify", "connector", "preflight", "balancer", "custom-step"]


def test_empty_state_renders_all_steps_pending() -> None:
    state = State(setup="fresh")
    for fmt in ("md", "html"):
        text = build_runbook(state, fmt)
        assert "fresh" in text
        for name in STEP_ORDER:
            assert name in text
    markdown = build_runbook(state, "md")
    for name in STEP_ORDER:
        assert f"| ○ | {name} | pending | — |" in markdown
    assert markdown.count("Not run yet.") == len(STEP_ORDER)
    assert "0 of 6 steps done" in markdown
    assert state.steps == {}  # rendering does not add records to the state


def test_write_runbook_is_atomic_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "runbook.md"
    target.write_text("old\n")
    written = write_runbook("# new\n", target)
    assert written == target
    assert target.read_text() == "# new\n"
    # Private like the state file, whatever the umask and the old file's mode.
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runbook.md"]


def test_a_new_runbook_is_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        target = write_runbook("# runbook\n", tmp_path / "new.md")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "runbook.md"
    link.symlink_to(victim)
    write_runbook("# runbook\n", link)
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink() and link.read_text() == "# runbook\n"
    assert stat.S_IMODE(os.stat(link).st_mode) == 0o600


def test_write_runbook_into_a_missing_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        write_runbook("x", tmp_path / "missing" / "runbook.md")


# render.py

def test_templates_dir_finds_the_source_tree_templates() -> None:
    found = templates_dir()
    assert (found / "runbook" / "runbook.md.j2").is_file()
    assert (found / "runbook" / "runbook.html.j2").is_file()
    package = Path(wizard.__file__).resolve().parent
    assert found in (package / "templates", package.parent / "templates")


def test_templates_dir_missing_is_a_wizard_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(render_module, "_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(WizardError) as caught:
        templates_dir()
    assert str(tmp_path / "a") in caught.value.message and caught.value.hint


def test_missing_template_is_a_wizard_error() -> None:
    with pytest.raises(WizardError) as caught:
        render("runbook/no-such-template.md.j2")
    assert "no-such-template" in caught.value.message
    assert caught.value.hint


def test_environment_is_cached_per_autoescape_flag() -> None:
    assert environment(True) is environment(True)
    assert environment(False) is environment(False)
    assert environment(True).autoescape is True and environment(False).autoescape is False


@pytest.mark.parametrize("value, expected", [
    ("2026-11-20T23:28:41+00:00", "2026-11-20 23:28 UTC"),
    ("2026-11-21T00:28:41+01:00", "2026-11-20 23:28 UTC"),
    ("2026-11-20T23:28:41Z", "2026-11-20 23:28 UTC"),
    ("2026-11-20T23:28:41", "2026-11-20 23:28 UTC"),
    (None, "—"),
    ("", "—"),
    ("not a time", "not a time"),
])
def test_when_filter(value: object, expected: str) -> None:
    assert when(value) == expected


def test_status_icons() -> None:
    assert [status_icon(s) for s in ("pending", "planned", "applied", "verified", "failed", "rolled-back")] \
        == ["○", "◔", "●", "✔", "✖", "↺"]


# What a server answered lands in the state (a check's seen text, an error, a summary):
# in the Markdown runbook it is text, never HTML or markup.
HOSTILE = '<img src=x onerror="alert(1)"> **bold** [click](http://evil.example/) `code` | pipe'


def hostile_state() -> State:
    state = realistic_state()
    preflight = state.step("preflight")
    preflight.checks = [check_from_dict({"name": "node RUNNING", "target": "node1", "passed": False,
                                         "seen": HOSTILE, "fix": "# " + HOSTILE}, "check")]
    balancer = state.step("balancer")
    balancer.summary = HOSTILE
    balancer.error = StepError(HOSTILE, "1. " + HOSTILE, [HOSTILE])
    balancer.plan = {"step": "balancer", "summary": "# " + HOSTILE, "noop_reason": None, "checks": [],
                     "changes": [{"target": "balancer", "kind": "file", "summary": HOSTILE,
                                  "diff": "-<script>x</script>\n+ok\n", "details": {"seen": HOSTILE}}]}
    balancer.undo = [UndoRecord.from_dict({"kind": "run", "target": "balancer", "description": HOSTILE, "manual": "",
                                           "data": {}}, "undo record")]
    balancer.history = [HistoryEntry(at="<b>", status="failed", summary=HOSTILE)]
    return state


def test_markdown_shows_a_servers_answer_as_text() -> None:
    markdown = build_runbook(hostile_state(), "md")
    assert "<img" not in markdown and "<b>" not in markdown
    assert "&lt;img src=x onerror=\"alert(1)\"&gt;" in markdown
    assert "**bold**" not in markdown and "\\*\\*bold\\*\\*" in markdown
    assert "[click](" not in markdown and "\\[click\\](http://evil.example/)" in markdown
    assert "`code`" not in markdown and "\\`code\\`" in markdown
    # A value never starts a heading or a list of its own.
    assert "\n# &lt;img" not in markdown and "\n\\# &lt;img" in markdown
    assert "Next: 1\\. &lt;img" in markdown
    # Inside a fenced diff the text is code already: shown as it was.
    assert "```diff\n-<script>x</script>\n+ok\n```" in markdown
    # The runbook's own Markdown is untouched.
    assert "\n## 5. balancer: Load balancer" in markdown and "| --- | --- |" in markdown


def test_html_runbook_escapes_a_servers_answer() -> None:
    page = build_runbook(hostile_state(), "html")
    assert "<img" not in page and "<script>x" not in page
    assert "&lt;img src=x onerror=" in page


def test_markdown_escaping_keeps_ordinary_text_readable() -> None:
    from wizard.render import md_cell
    for text in ("10.0.1.11", "/opt/atlassian/confluence_data/conf/server.xml", "password=********",
                 "ssh confluence@node1.internal:22", "no -Dsynchrony.port in bin/setenv.sh", "0.1.0"):
        assert md_cell(text) == text
