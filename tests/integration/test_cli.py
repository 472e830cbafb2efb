"""The installed command, run as an admin runs it: exit statuses, messages, no tracebacks.

These tests start the console script that `pip install .` put next to this
interpreter, from a temporary working directory, so they also prove the
installed package finds its templates without the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent / "confluence-lb-wizard"
VERBS = ("plan", "apply", "status", "verify", "runbook", "rollback", "schema", "init", "export")


def run(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg-state"), **(env or {})}
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, input=stdin,
                          env=environment, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"


@pytest.fixture
def setup(tmp_path: Path, lab_node_factory) -> dict:
    """Two local nodes: real install folders and a simulated Confluence answering /status."""
    nodes = []
    for index, name in enumerate(("node1", "node2"), start=1):
        install = tmp_path / name
        (install / "conf").mkdir(parents=True)
        (install / "bin").mkdir()
        node = lab_node_factory(name, install, restart_seconds=0.2)
        stock = (FIXTURES / "confluence-7-stock.xml").read_text()
        (install / "conf" / "server.xml").write_text(stock.replace('port="8090"', f'port="{node.confluence_port}"'))
        # Direct mode asks each node's Synchrony for its heartbeat before anything changes.
        (install / "bin" / "setenv.sh").write_text(
            f'CATALINA_OPTS="-Dsynchrony.port={node.synchrony_port} ${{CATALINA_OPTS}}"\n')
        nodes.append({"name": name, "address": "127.0.0.1", "install_dir": str(install),
                      "restart_command": f"touch {install / 'restart-requested'}",
                      "confluence_port": node.confluence_port, "access": {"transport": "local"}})
    (tmp_path / "apache").mkdir()
    answers = {
        "version": 1, "name": "cli-test", "public_url": "http://wiki.example.com", "nodes": nodes,
        "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"},
                                                  "config_path": str(tmp_path / "apache" / "lb.conf")}},
    }
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers))
    originals = {name: (tmp_path / name / "conf" / "server.xml").read_bytes() for name in ("node1", "node2")}
    return {"tmp": tmp_path, "answers": path, "state": tmp_path / "s" / "cli-test.state.json", "raw": answers,
            "originals": originals}


def test_the_installed_command_is_the_package_not_the_source_tree() -> None:
    assert BIN.exists(), f"{BIN} is missing: install the package (tests/run does)"
    if os.environ.get("CI"):
        import wizard
        repo = Path(__file__).resolve().parents[2]
        installed = Path(wizard.__file__).resolve().parent
        assert installed != repo / "wizard", "CI must test the non-editable install, not the source tree"
        assert installed.parent.name == "site-packages"
        assert (installed / "templates" / "runbook" / "runbook.md.j2").is_file()


@pytest.mark.parametrize("verb", (None, *VERBS))
def test_every_verb_has_help_and_version(tmp_path: Path, verb: str | None) -> None:
    args = [verb] if verb else []
    helped = run(*args, "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert "usage: confluence-lb-wizard" in helped.stdout
    version = run(*args, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("confluence-lb-wizard ")


def test_python_dash_m_wizard_is_the_same_command(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "wizard", "--version"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    assert done.stdout == run("--version", cwd=tmp_path).stdout


def test_apply_status_runbook_rollback_end_to_end(setup: dict) -> None:
    tmp, state = setup["tmp"], setup["state"]
    # The balancer has its own end-to-end tests (real Apache, moto); here: the node steps.
    node_steps = ("--only", "preflight", "connector", "restart")
    applied = run("apply", "--answers", str(setup["answers"]), "--state", str(state), "--yes", *node_steps, cwd=tmp)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "PASS  node2" in applied.stdout and "Every step is done" in applied.stdout
    assert '+' in applied.stdout and 'proxyName="wiki.example.com"' in applied.stdout  # the diff was shown
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    assert b'proxyName="wiki.example.com"' in (tmp / "node1" / "conf" / "server.xml").read_bytes()

    status = run("status", "--state", str(state), "--json", cwd=tmp)
    data = json.loads(status.stdout)
    assert data["setup"] == "cli-test" and data["state_file"] == str(state)
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("preflight", "verified"), ("base-url", "pending"), ("connector", "verified"), ("restart", "verified"),
        ("balancer", "pending"), ("verify", "pending")]
    assert [s["updated"] is not None for s in data["steps"]] == [True, False, True, True, False, False]

    text = run("status", "--state", str(state), cwd=tmp).stdout
    assert "preflight" in text and "verified" in text

    markdown = run("runbook", "--state", str(state), cwd=tmp)
    assert markdown.returncode == 0 and "cli-test" in markdown.stdout and "preflight" in markdown.stdout
    assert "server.xml" in markdown.stdout and "cp -p" in markdown.stdout  # the change and its manual undo
    html_file = tmp / "runbook.html"
    exported = run("runbook", "--state", str(state), "--format", "html", "-o", str(html_file), cwd=tmp)
    assert exported.returncode == 0 and html_file.read_text().lstrip().lower().startswith("<!doctype html")

    verified = run("verify", "--state", str(state), "--json", cwd=tmp)
    result = json.loads(verified.stdout)
    assert {"name", "target", "passed", "seen", "fix"} <= set(result["checks"][0])
    failed = [check for check in result["checks"] if not check["passed"]]
    # Every node check passes; the failures say which steps are not applied yet.
    assert verified.returncode == 3 and result["passed"] is False
    not_applied = [c for c in failed if c["seen"].startswith("not applied yet")]
    assert {c["name"] for c in not_applied} >= {"Confluence's base URL", "The load balancer"}
    assert all(c["fix"] for c in failed)
    assert any(c["name"] == "node RUNNING" and c["passed"] for c in result["checks"])

    again = run("apply", "--answers", str(setup["answers"]), "--state", str(state), "--yes", *node_steps, cwd=tmp)
    assert again.returncode == 0 and "Nothing to change" in again.stdout

    rolled = run("rollback", "--state", str(state), "--yes", cwd=tmp)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "Rolled back: restart, connector, preflight" in rolled.stdout
    assert "restart the nodes" in rolled.stdout.lower()
    after = json.loads(run("status", "--state", str(state), "--json", cwd=tmp).stdout)
    assert {s["name"]: s["status"] for s in after["steps"]}["connector"] == "rolled-back"
    assert {s["name"]: s["status"] for s in after["steps"]}["restart"] == "rolled-back"
    for node in ("node1", "node2"):
        assert (tmp / node / "conf" / "server.xml").read_bytes() == setup["originals"][node]


def test_state_defaults_to_the_setup_name_under_xdg_state_home(setup: dict) -> None:
    tmp = setup["tmp"]
    assert run("apply", "--answers", str(setup["answers"]), "--only", "preflight", "--yes", cwd=tmp).returncode == 0
    expected = tmp / "xdg-state" / "confluence-lb-wizard" / "cli-test.state.json"
    assert expected.exists()
    status = json.loads(run("status", "--json", cwd=tmp).stdout)  # the only state file is found
    assert status["state_file"] == str(expected)


def test_plan_prints_and_changes_nothing(setup: dict) -> None:
    planned = run("plan", "--answers", str(setup["answers"]), "--state", str(setup["state"]),
                  "--only", "preflight", "connector", "restart", cwd=setup["tmp"])
    assert planned.returncode == 0
    assert "Plan for preflight" in planned.stdout and "nothing was changed" in planned.stdout
    assert "Plan for connector" in planned.stdout and 'proxyName="wiki.example.com"' in planned.stdout
    assert not setup["state"].exists()
    for node in ("node1", "node2"):
        assert (setup["tmp"] / node / "conf" / "server.xml").read_bytes() == setup["originals"][node]


def test_a_symlinked_server_xml_stays_a_link_through_apply_and_rollback(setup: dict) -> None:
    # Installs that keep conf/ under version control link server.xml to the real file.
    conf = setup["tmp"] / "node1" / "conf"
    real = setup["tmp"] / "node1" / "server.xml.managed"
    (conf / "server.xml").rename(real)
    (conf / "server.xml").symlink_to(real)
    planned = run("plan", "--answers", str(setup["answers"]), "--state", str(setup["state"]),
                  "--only", "connector", cwd=setup["tmp"])
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"a symbolic link: its target {real} is what changes" in planned.stdout
    applied = run("apply", "--answers", str(setup["answers"]), "--state", str(setup["state"]),
                  "--only", "connector", "--yes", cwd=setup["tmp"])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (conf / "server.xml").is_symlink() and os.readlink(conf / "server.xml") == str(real)
    assert b'proxyName="wiki.example.com"' in real.read_bytes()
    rolled = run("rollback", "--state", str(setup["state"]), "connector", "--yes", cwd=setup["tmp"])
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert (conf / "server.xml").is_symlink() and real.read_bytes() == setup["originals"]["node1"]


def test_plan_with_a_failing_preflight_check_names_it_and_exits_1_as_apply_would(setup: dict) -> None:
    (setup["tmp"] / "node2" / "conf" / "server.xml").unlink()
    planned = run("plan", "--answers", str(setup["answers"]), "--state", str(setup["state"]),
                  "--only", "preflight", cwd=setup["tmp"])
    assert planned.returncode == 1, planned.stdout + planned.stderr
    failed = [line for line in planned.stdout.splitlines() if line.strip().startswith("FAIL")]
    assert failed and all("node2" in line for line in failed)
    assert "`apply` would stop at preflight" in planned.stdout
    assert not setup["state"].exists()


def test_bad_answers_exit_2_naming_every_problem_and_change_nothing(setup: dict) -> None:
    raw = dict(setup["raw"])
    raw["public_url"] = "ftp://wiki.example.com"
    raw["nodes"] = [dict(raw["nodes"][0], access={"transport": "local", "port": 70000})]
    raw.pop("balancer")
    bad = setup["tmp"] / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    done = run("apply", "--answers", str(bad), "--state", str(setup["state"]), "--yes", cwd=setup["tmp"])
    assert done.returncode == 2
    assert "public_url" in done.stderr and "nodes[0].access.port" in done.stderr
    assert "balancer" in done.stderr and "missing" in done.stderr
    assert not setup["state"].exists()


def test_unreadable_yaml_is_exit_2_with_the_line(setup: dict) -> None:
    bad = setup["tmp"] / "broken.yaml"
    bad.write_text("name: x\nnodes: [\n  - oops\n")
    done = run("plan", "--answers", str(bad), cwd=setup["tmp"])
    assert done.returncode == 2 and "line" in done.stderr


def test_apply_without_yes_and_without_a_terminal_is_refused(setup: dict) -> None:
    done = run("apply", "--answers", str(setup["answers"]), "--state", str(setup["state"]), cwd=setup["tmp"], stdin="")
    assert done.returncode == 2 and "--yes" in done.stderr
    assert not setup["state"].exists()


def test_unknown_or_unavailable_step_is_bad_input(setup: dict) -> None:
    unknown = run("apply", "--answers", str(setup["answers"]), "--only", "nonsense", "--yes", cwd=setup["tmp"])
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_missing_state_file_is_a_clear_error(tmp_path: Path) -> None:
    done = run("status", "--state", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert done.returncode == 2 and "no state file" in done.stderr.lower()
    assert "apply --answers" in done.stderr


def test_failed_preflight_exits_1_and_the_state_says_why(setup: dict) -> None:
    (setup["tmp"] / "node2" / "conf" / "server.xml").unlink()
    done = run("apply", "--answers", str(setup["answers"]), "--state", str(setup["state"]), "--yes", cwd=setup["tmp"])
    assert done.returncode == 1
    assert "FAIL  node2" in done.stdout
    data = json.loads(run("status", "--state", str(setup["state"]), "--json", cwd=setup["tmp"]).stdout)
    assert data["steps"][0]["status"] == "failed" and "server.xml readable" in data["steps"][0]["summary"]


def test_verify_with_answers_and_no_state_writes_nothing(setup: dict) -> None:
    done = run("verify", "--answers", str(setup["answers"]), "--state", str(setup["state"]), cwd=setup["tmp"])
    assert done.returncode == 3  # the Connectors were never edited
    assert "FAIL  node1  Connector proxy settings" in done.stdout
    assert not setup["state"].exists()


def test_ctrl_c_is_exit_130_with_the_state_saved(setup: dict) -> None:
    """SIGINT while a step runs: exit 130, the state is loadable, the step is resumable."""
    import signal
    import time

    slow = setup["raw"]
    slow["nodes"][0]["restart_command"] = "sleep-for-a-while"
    path = setup["tmp"] / "slow.yaml"
    path.write_text(yaml.safe_dump(slow))
    shim = setup["tmp"] / "bin"
    shim.mkdir()
    # `command -v` on the restart program is the preflight's last node check; make it slow.
    (shim / "sh").write_text("#!/bin/bash\ncase \"$2\" in *sleep-for-a-while*) sleep 30;; esac\nexec /bin/sh \"$@\"\n")
    (shim / "sh").chmod(0o755)
    env = {**os.environ, "XDG_STATE_HOME": str(setup["tmp"] / "xdg-state"),
           "PATH": f"{shim}:{os.environ['PATH']}"}
    process = subprocess.Popen([str(BIN), "apply", "--answers", str(path), "--state", str(setup["state"]), "--yes"],
                               cwd=setup["tmp"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not setup["state"].exists():
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err
    data = json.loads(subprocess.run([str(BIN), "status", "--state", str(setup["state"]), "--json"],
                                     capture_output=True, text=True, env=env).stdout)
    assert data["steps"][0]["status"] == "failed"
    record = json.loads(setup["state"].read_text())["steps"]["preflight"]
    assert record["error"]["interrupted"] is True


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_rollback_refuses_hand_edited_undo_records_and_changes_nothing(setup: dict) -> None:
    """A record added by hand that restores a file outside the setup (here a decoy /etc/passwd) and an
    old-style `run` record: `rollback --yes` refuses, names the record and the fix, and touches nothing."""
    tmp, state = setup["tmp"], setup["state"]
    applied = run("apply", "--answers", str(setup["answers"]), "--state", str(state), "--yes",
                  "--only", "preflight", "connector", cwd=tmp)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    edited = (tmp / "node1" / "conf" / "server.xml").read_bytes()
    passwd = tmp / "etc" / "passwd"
    passwd.parent.mkdir()
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    backup = tmp / "etc" / "passwd.20250101T000000000000Z.clbw-backup"
    backup.write_text("root::0:0:root:/root:/bin/bash\n")  # no password: what an attacker would put back
    document = json.loads(state.read_text())
    document["steps"]["connector"]["undo"] += [
        {"kind": "restore-file", "target": "node1", "description": "Tidy up.", "manual": "", "recorded": "9",
         "undone": None, "data": {"path": str(passwd), "backup": str(backup),
                                  "sha256_before": _sha(backup.read_bytes()), "sha256_after": _sha(passwd.read_bytes())}},
        {"kind": "run", "target": "node1", "description": "Tidy up.", "manual": "", "recorded": "9", "undone": None,
         "data": {"command": f"touch {tmp / 'pwned'}", "sudo": False}}]
    state.write_text(json.dumps(document))
    state.chmod(0o600)
    rolled = run("rollback", "--state", str(state), "--yes", cwd=tmp)
    out = rolled.stdout + rolled.stderr
    assert rolled.returncode == 1, out
    assert "undo record" in out and "of the connector step" in out and str(passwd) in out
    assert passwd.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    assert not (tmp / "pwned").exists()
    assert (tmp / "node1" / "conf" / "server.xml").read_bytes() == edited  # nothing of the step was undone


def test_rollback_refuses_a_state_file_others_can_write(setup: dict) -> None:
    tmp, state = setup["tmp"], setup["state"]
    applied = run("apply", "--answers", str(setup["answers"]), "--state", str(state), "--yes",
                  "--only", "preflight", "connector", cwd=tmp)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    edited = (tmp / "node1" / "conf" / "server.xml").read_bytes()
    state.chmod(0o666)
    rolled = run("rollback", "--state", str(state), "--yes", cwd=tmp)
    assert rolled.returncode != 0 and f"chmod 600 {state}" in rolled.stdout + rolled.stderr
    assert (tmp / "node1" / "conf" / "server.xml").read_bytes() == edited
