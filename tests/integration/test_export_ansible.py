"""`export --format ansible` end to end: the exported playbook run by ansible-playbook over REAL sshd.

The lab's simulated nodes (``wizard.lab.cluster.Lab``: Confluence and Synchrony on loopback, restarted
by a trigger file) sit behind the lab's real Apache httpd; the answers reach every machine
(the two nodes and the Apache host) over a real sshd on 127.0.0.1, as root with the testbed's
key. The playbook runs with ``--check --diff`` first (the Connector change is shown, nothing
changes), then for real (Connector edited, rolling restart, vhost written, tested and
reloaded, the final uri checks pass), then again (changed=0). The balancer then serves the
heartbeat and keeps sessions sticky. Last, the same machines are put back as they were and
`apply` (the wizard itself) runs on them: its server.xml and vhost are byte for byte the
playbook's.

ansible-core is a test dependency (pyproject's `test` extra): a missing ansible-playbook fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from wizard.answers import validate
from wizard.errors import EXIT_OK
from wizard.export.folder import MANIFEST
from wizard.lab.cluster import Lab
from wizard.engine.runner import Runner
from wizard.confluence.serverxml import decode_server_xml, encode_server_xml, plan_connector_edit
from wizard.engine.state import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN_DIR = Path(sys.executable).parent
WIZARD = BIN_DIR / "confluence-lb-wizard"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverxml"


def ansible_playbook() -> str:
    path = BIN_DIR / "ansible-playbook"
    if not path.exists():
        pytest.fail("ansible-playbook is missing: install the test extra (pip install -e '.[test]'), "
                    "which brings ansible-core.")
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client (ssh) is missing; ansible-playbook needs it: apt-get install openssh-client.")
    return str(path)


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the wizard and of ansible-playbook: no agent, no ~/.ssh or ssh config of
    the machine, no retry files, Ansible's own folders in the test's temp folder."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    env.update({"HOME": str(home), "CLBW_SSH_CONFIG": str(tmp_path / "no-ssh-config"),
                "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"), "ANSIBLE_RETRY_FILES_ENABLED": "false",
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_STDOUT_CALLBACK": "default",
                "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"})
    return env


@pytest.fixture
def lab():
    """The lab on loopback, in a folder every user can reach (Apache's workers run as www-data)."""
    root = Path(tempfile.mkdtemp(prefix="clbw-export-lab-"))
    root.chmod(0o755)
    started = Lab(root, nodes=2)
    started.start()
    yield started
    started.stop()
    shutil.rmtree(root, ignore_errors=True)


def over_ssh(lab: Lab, ssh_testbed, sshd) -> dict:
    """The lab's answers with every machine reached over the real sshd instead of locally."""
    raw = lab.answers()
    access = {"transport": "ssh", "host": "127.0.0.1", "port": sshd.port, "user": ssh_testbed.login_user,
              "key_file": str(ssh_testbed.client_key), "known_hosts": str(ssh_testbed.known_hosts(sshd))}
    for node in raw["nodes"]:
        node["access"] = dict(access)
    raw["balancer"]["apache"]["access"] = dict(access)
    return raw


class AnsibleLoader(yaml.SafeLoader):
    """YAML as Ansible reads it: ``!unsafe`` marks a string Ansible must not template."""


AnsibleLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counters per host."""
    found = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        found[match[1]] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
    return found


def test_exported_playbook_applies_what_apply_applies(lab, ssh_testbed, sshd, client_env, tmp_path):
    playbook = ansible_playbook()
    raw = over_ssh(lab, ssh_testbed, sshd)
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "export"
    vhost = lab.apache.config_path
    originals = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}
    assert not vhost.exists()

    done = run([str(WIZARD), "export", "--format", "ansible", "--answers", str(answers_file), "-o", str(out)],
               client_env)
    assert done.returncode == EXIT_OK, done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [MANIFEST, "inventory.yml", "library/clbw_connector.py", "site.yml",
                       "templates/confluence-lb.conf"]
    # Exporting changed nothing on the machines.
    assert {n.name: n.server_xml_path.read_bytes() for n in lab.nodes} == originals and not vhost.exists()
    site = yaml.load((out / "site.yml").read_text(), Loader=AnsibleLoader)
    assert site[0]["serial"] == 1 and site[0]["hosts"] == "confluence_nodes"

    # --check --diff: the Connector change is shown, nothing is changed.
    check = run([playbook, "-i", "inventory.yml", "site.yml", "--check", "--diff"], client_env, cwd=out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert '+    proxyName="localhost"' in check.stdout or 'proxyName="localhost"' in check.stdout
    assert re.search(r"^\+.*proxyName=\"localhost\"", check.stdout, re.MULTILINE), check.stdout
    assert {n.name: n.server_xml_path.read_bytes() for n in lab.nodes} == originals and not vhost.exists()
    assert all(node.restarts == 0 for node in lab.nodes)

    # The real run: every node edited and restarted one at a time, Apache configured, checks passed.
    first = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    counters = recap(first.stdout)
    assert set(counters) == {"node1", "node2", "balancer", "localhost"}, first.stdout
    assert all(counters[name]["failed"] == 0 for name in counters)
    assert counters["node1"]["changed"] >= 2 and counters["balancer"]["changed"] >= 2, first.stdout
    assert counters["localhost"]["ok"] == 3, first.stdout  # status + sticky cookie, heartbeat, manager closed
    assert [node.restarts for node in lab.nodes] == [1, 1]
    # The restart took the edit into the running Tomcat (the lab node re-reads server.xml then).
    public_port = raw["balancer"]["apache"]["listen_port"]
    for node in lab.nodes:
        running = node.running_connector
        assert (running["proxyName"], str(running["proxyPort"]), running["scheme"]) == \
            ("localhost", str(public_port), "http"), running
    by_ansible = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}
    vhost_by_ansible = vhost.read_bytes()
    assert vhost_by_ansible == (out / "templates" / "confluence-lb.conf").read_bytes()

    # The balancer serves the heartbeat and keeps a session on its node.
    base = f"http://127.0.0.1:{public_port}"
    heartbeat = httpx.get(f"{base}/synchrony/heartbeat", headers={"Host": "localhost"}, timeout=5.0)
    assert (heartbeat.status_code, heartbeat.text.strip()) == (200, "OK")
    first_answer = httpx.get(f"{base}/status", headers={"Host": "localhost"}, timeout=5.0)
    cookie = first_answer.cookies.get("ROUTEID") or ""
    route = re.fullmatch(r"\.?(node\d)", cookie)
    assert route and first_answer.headers["x-node"] == route[1], first_answer.headers
    for _ in range(6):  # without the cookie Apache alternates; with it, the same node every time
        again = httpx.get(f"{base}/status", headers={"Host": "localhost", "Cookie": f"ROUTEID={cookie}"},
                          timeout=5.0)
        assert again.headers["x-node"] == route[1]

    # A second run changes nothing and restarts nothing.
    second = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(second.stdout).values()), second.stdout
    assert [node.restarts for node in lab.nodes] == [1, 1]
    assert {n.name: n.server_xml_path.read_bytes() for n in lab.nodes} == by_ansible

    # The twin: the same machines as they were, set up by `apply`.
    for node in lab.nodes:
        node.server_xml_path.write_bytes(originals[node.name])
    vhost.unlink()
    subprocess.run(lab.apache.reload_command.split(), check=True, capture_output=True)
    runner = Runner(validate(raw), StateStore(tmp_path / "state" / "lab.state.json"), command="test")
    with runner:
        outcome = runner.apply(["connector", "restart", "balancer"])
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert {n.name: n.server_xml_path.read_bytes() for n in lab.nodes} == by_ansible
    assert vhost.read_bytes() == vhost_by_ansible


def test_connector_module_matches_the_wizard_on_every_fixture(client_env, tmp_path):
    """The exported module, run by Ansible, makes the wizard's own edit on every server.xml fixture (CRLF,
    BOM, single quotes, an existing proxyName, ISO-8859-1...) and refuses what the wizard refuses."""
    playbook = ansible_playbook()
    from wizard.export.ansible import connector_module

    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "clbw_connector.py").write_text(connector_module())
    cases = sorted(p.name for p in FIXTURES.glob("*.xml"))
    files = tmp_path / "files"
    files.mkdir()
    for name in cases:
        shutil.copyfile(FIXTURES / name, files / name)
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [{
        "clbw_connector": {"path": str(files) + "/{{ item }}", "proxy_name": "wiki.example.com",
                           "proxy_port": 443, "scheme": "https"},
        "loop": cases, "ignore_errors": True}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {**client_env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = run([playbook, "-i", "localhost,", "play.yml"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    edited = refused = 0
    for name in cases:
        original = (FIXTURES / name).read_bytes()
        try:
            text, encoding = decode_server_xml(original)
            edit = plan_connector_edit(text, port=None, proxy_name="wiki.example.com", proxy_port=443,
                                       scheme="https")
        except Exception:  # the wizard refuses it: so must the module, leaving the file alone
            assert (files / name).read_bytes() == original, name
            assert re.search(rf"failed: \[localhost\] \(item={re.escape(name)}\)", done.stdout), name
            refused += 1
            continue
        assert (files / name).read_bytes() == encode_server_xml(edit.new_text, encoding), name
        edited += 1
    assert edited >= 10 and refused >= 4, (edited, refused)
    # A second pass changes nothing.
    again = run([playbook, "-i", "localhost,", "play.yml"], env, cwd=tmp_path)
    assert re.search(r"localhost\s+:.*changed=0", again.stdout), again.stdout
