"""The prompt face (--plain), driven through prompt_toolkit's pipe input: the same flow as the app."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from uihelpers import install_node, make_setup

from screens.plain.flow import run_prompts
from wizard.engine.state import StateStore
from wizard.errors import EXIT_BAD_INPUT, EXIT_OK

DOWN, ENTER, BACKSPACE = "\x1b[B", "\r", "\x7f"


def drive(keys: str, **kwargs) -> int:
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        return run_prompts(input=pipe, output=DummyOutput(), **kwargs)


def test_without_a_terminal_it_points_to_apply(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert run_prompts() == EXIT_BAD_INPUT
    assert "apply --answers FILE" in capsys.readouterr().err


def test_the_prompt_face_loads_no_textual() -> None:
    script = "import sys, screens.plain.flow; print(sorted(m for m in sys.modules if m.startswith('textual')))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_answers_file_then_steps_each_plan_confirmed(tmp_path: Path, lab_node_factory,
                                                        isolated_state_home: Path, capsys) -> None:
    answers = make_setup(tmp_path, lab_node_factory)
    keys = (DOWN + ENTER + str(answers) + ENTER          # open an answers file
            + ENTER                                      # run the next step: preflight
            + DOWN + DOWN + ENTER + DOWN + ENTER + "y"   # run one step: connector, its plan confirmed
            + DOWN * 6 + ENTER)                          # quit
    assert drive(keys) == EXIT_OK
    out = capsys.readouterr().out
    assert "Plan for connector" in out and 'proxyName="wiki.example.com"' in out
    state = StateStore(isolated_state_home / "confluence-lb-wizard" / "ui-test.state.json").load()
    assert state.steps["preflight"].status == "verified" and state.steps["connector"].status == "verified"
    assert b'proxyName="wiki.example.com"' in (tmp_path / "node1" / "conf" / "server.xml").read_bytes()


def test_a_new_setup_by_questions_checked_as_typed(tmp_path: Path, isolated_state_home: Path, capsys) -> None:
    install_node(tmp_path / "n1", 8090)
    keys = (ENTER                                                   # start a new setup
            + "wiki-prod" + ENTER + "ftp://nope" + ENTER            # a wrong URL is refused as typed...
            + BACKSPACE * 10 + "http://wiki.example.com" + ENTER    # ...and corrected
            + ENTER + ENTER + ENTER                                 # restart, synchrony, base URL: defaults
            + "node1" + ENTER + "127.0.0.1" + ENTER + str(tmp_path / "n1") + ENTER
            + DOWN + ENTER                                          # reached locally
            + ENTER + ENTER                                         # no sudo, detected restart command
            + "99999" + ENTER + BACKSPACE * 5 + "8090" + ENTER       # a bad port, then a good one
            + ENTER                                                 # Synchrony port: read from the node
            + ENTER                                                 # read the node now: yes
            + "n"                                                   # no other node
            + ENTER                                                 # Apache
            + DOWN + ENTER + ENTER                                  # reached locally, no sudo
            + str(tmp_path / "lb.conf") + ENTER + ENTER * 7         # the vhost file, defaults for the rest
            + DOWN * 6 + ENTER)                                     # quit at the checklist
    assert drive(keys) == EXIT_OK
    out = capsys.readouterr().out
    assert "port 8090" in out  # what was read from the node
    saved = yaml.safe_load((isolated_state_home / "confluence-lb-wizard" / "wiki-prod.answers.yaml").read_text())
    assert saved["public_url"] == "http://wiki.example.com"
    assert saved["nodes"][0]["confluence_port"] == 8090 and saved["nodes"][0]["access"]["transport"] == "local"
    assert saved["balancer"]["apache"]["config_path"] == str(tmp_path / "lb.conf")
    assert (isolated_state_home / "confluence-lb-wizard" / "wiki-prod.state.json").exists()


def test_a_key_asked_as_yaml_asks_again_after_invalid_yaml(tmp_path: Path) -> None:
    from screens.plain.answers import Asker, _answer
    from wizard.answers.draft import Draft

    draft = Draft({"name": "x"}, tmp_path / "draft.yaml")
    out = io.StringIO()
    with create_pipe_input() as pipe:
        # "a: b: c" is not YAML; then a list.
        pipe.send_text("a: b: c" + ENTER + BACKSPACE * 7 + "[1, 2]" + ENTER)
        _answer(Asker(pipe, DummyOutput(), out), draft, "extras.unknown")
    assert "extras.unknown:" in out.getvalue() and "Type a plain value" in out.getvalue()
    assert draft.raw["extras"]["unknown"] == [1, 2]


def test_the_prompts_offer_haproxy_and_ask_its_own_keys(tmp_path: Path) -> None:
    from screens.plain.answers import Asker, ask_balancer
    from wizard.answers.draft import Draft

    draft = Draft({"name": "x"}, tmp_path / "draft.yaml")
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(DOWN * 3 + ENTER                             # HAProxy, the fourth kind
                       + DOWN + ENTER + ENTER                       # reached locally, no sudo
                       + "/etc/haproxy/conf.d/wiki.cfg" + ENTER     # the file the wizard writes
                       + ENTER * 6                                  # server name ... reload: defaults
                       + "/run/haproxy/admin.sock" + ENTER          # the runtime API, for draining
                       + ENTER)                                     # nobody may open the stats page
        ask_balancer(Asker(pipe, DummyOutput(), out), draft)
    assert "HAProxy: " in out.getvalue() and "nginx: " in out.getvalue()
    assert draft.raw["balancer"]["kind"] == "haproxy"
    haproxy = draft.raw["balancer"]["haproxy"]
    assert haproxy["config_path"] == "/etc/haproxy/conf.d/wiki.cfg"
    assert haproxy["admin_socket"] == "/run/haproxy/admin.sock"
    assert haproxy["access"]["transport"] == "local"
