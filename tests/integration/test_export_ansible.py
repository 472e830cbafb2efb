"""`export --format ansible` end to end: the exported playbook run by ansible-playbook over REAL sshd.

The lab's simulated nodes (``wizard.lab.cluster.Lab``: Confluence and Synchrony on loopback, restarted
by a trigger file) sit behind the lab's real Apache httpd; the answers reach every machine
(the two nodes and the Apache host) over a real sshd on 127.0.0.1, as root with the testbed's
key. The playbook runs with ``--check --diff`` first (the Connector change is shown, nothing
changes), then for real (Connector edited, rolling restart, vhost written, tested and
reloaded, the final uri checks pass), then again (changed=0). The balancer then serves the
heartbeat and keeps sessions sticky. Last, the same machines are put back as they were and
`apply` (the wizard itself) runs on them: its server.xml and vhost are byte for byte the
playbook's. The same holds for the nginx and HAProxy kinds' managed file, behind the lab's real
nginx and HAProxy.

ansible-core is a test dependency (pyproject's `test` extra): a missing ansible-playbook fails.
"""

from __future__ import annotations

import os
import re
import shlex
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
from wizard.export.ansible import RESTART_MARKER_NAME
from wizard.export.folder import MANIFEST
from wizard.lab.cluster import Lab
from wizard.engine.runner import Runner
from wizard.confluence.serverxml import decode_server_xml, encode_server_xml, plan_connector_edit
from wizard.engine.state import StateStore

from test_nginx_haproxy_balancer import make_bed  # noqa: F401 (the real nginx/HAProxy bed's fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN_DIR = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
#: The wizard of this checkout (the environment's installed command may be another copy).
WIZARD = [sys.executable, "-m", "wizard"]
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
                "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
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
    raw["balancer"][raw["balancer"]["kind"]]["access"] = dict(access)
    return raw


class AnsibleLoader(yaml.SafeLoader):
    """YAML as Ansible reads it: ``!unsafe`` marks a string Ansible must not template."""


AnsibleLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def export_ansible(raw: dict, tmp_path: Path, env: dict[str, str]) -> Path:
    """``raw`` written as the answers file and exported with the wizard of this checkout: the export folder."""
    answers_file = tmp_path / "answers.yaml"
    answers_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "export"
    done = run([*WIZARD, "export", "--format", "ansible", "--answers", str(answers_file), "-o", str(out)], env)
    assert done.returncode == EXIT_OK, done.stderr
    return out


def run_changes_nothing(playbook: str, env: dict[str, str], out: Path) -> None:
    """A second run of the playbook reports changed=0 and failed=0 on every host."""
    second = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(second.stdout).values()), second.stdout


def stays_on(base: str, cookie: str, node: str, *, rounds: int) -> None:
    """With the ROUTEID cookie, every request reaches the same node."""
    for _ in range(rounds):
        again = httpx.get(f"{base}/status", headers={"Host": "localhost", "Cookie": f"ROUTEID={cookie}"},
                          timeout=5.0)
        assert again.headers["x-node"] == node


def owed(node) -> bool:
    """Whether the marker the edit modules leave until the node's restart is done is beside its server.xml."""
    return (node.server_xml_path.parent / RESTART_MARKER_NAME).exists()


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's counters per host."""
    found = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        found[match[1]] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
    return found


def test_exported_playbook_applies_what_apply_applies(lab, ssh_testbed, sshd, client_env, tmp_path):
    playbook = ansible_playbook()
    raw = over_ssh(lab, ssh_testbed, sshd)
    vhost = lab.apache.config_path
    originals = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}
    assert not vhost.exists()

    out = export_ansible(raw, tmp_path, client_env)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [MANIFEST, "inventory.yml", "library/clbw_connector.py", "library/clbw_setenv.py",
                       "library/clbw_watch.py", "site.yml", "templates/confluence-lb.conf",
                       "templates/drained/node1.conf", "templates/drained/node2.conf"]
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
    assert not any(owed(node) for node in lab.nodes)

    # The real run: every node edited and restarted one at a time, Apache configured, checks passed.
    first = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    counters = recap(first.stdout)
    assert set(counters) == {"node1", "node2", "balancer", "localhost"}, first.stdout
    assert all(counters[name]["failed"] == 0 for name in counters)
    assert counters["node1"]["changed"] >= 2 and counters["balancer"]["changed"] >= 2, first.stdout
    assert counters["localhost"]["ok"] == 3, first.stdout  # status + sticky cookie, heartbeat, manager closed
    assert [node.restarts for node in lab.nodes] == [1, 1]
    assert not any(owed(node) for node in lab.nodes)  # each node's restart is done
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
    stays_on(base, cookie, route[1], rounds=6)  # without the cookie Apache alternates

    # A second run changes nothing and restarts nothing.
    run_changes_nothing(playbook, client_env, out)
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


def test_a_run_killed_between_an_edit_and_the_restart_restarts_that_node_next_time(
        lab, ssh_testbed, sshd, client_env, tmp_path):
    """ansible-playbook killed (SIGKILL, its whole process group) while node1's restart command runs, after
    its Connector edit: node1's server.xml is as wanted, but its Tomcat still runs the old Connector. The
    next run finds nothing to edit on node1 and must still restart it (the marker its edit left says the
    restart is owed), and node2 (its own edit); a third run changes and restarts nothing."""
    import signal
    import time

    playbook = ansible_playbook()
    raw = over_ssh(lab, ssh_testbed, sshd)
    started = shlex.quote(str(tmp_path / "restart-started"))
    first_node = raw["nodes"][0]
    # node1's first restart command hangs until the play is killed, then ends without restarting.
    first_node["restart_command"] = (f"if [ ! -e {started} ]; then touch {started}; sleep 20; exit 1; fi; "
                                     + first_node["restart_command"])
    originals = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}
    out = export_ansible(raw, tmp_path, client_env)

    log = tmp_path / "killed-run.log"
    with log.open("w") as output:
        killed = subprocess.Popen([playbook, "-i", "inventory.yml", "site.yml"], env=client_env, cwd=out,
                                  stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not (tmp_path / "restart-started").exists():
            assert killed.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    node1, node2 = lab.nodes
    assert node1.server_xml_path.read_bytes() != originals["node1"], log.read_text()  # edited ...
    assert node1.restarts == 0 and owed(node1)  # ... not restarted, and the marker says so
    assert node2.server_xml_path.read_bytes() == originals["node2"] and not owed(node2)  # not reached
    assert node1.running_connector.get("proxyName") != "localhost"

    second = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [node.restarts for node in lab.nodes] == [1, 1], second.stdout
    assert not owed(node1) and not owed(node2)
    for node in lab.nodes:
        assert node.running_connector["proxyName"] == "localhost", node.running_connector
    run_changes_nothing(playbook, client_env, out)
    assert [node.restarts for node in lab.nodes] == [1, 1]


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


# --------------------------------------------------------------------------- the drained rolling restart


class Traffic:
    """Requests through the balancer in a thread while a playbook runs: when each was sent, its answer
    (HTTP status or the connection error) and the node that answered (X-Node). Each request is a new
    user's (no cookie).

    A graceful reload closes idle keep-alive connections; a request sent on one just as it closes gets no
    answer at all, and a browser sends such a request again (RFC 9112, 9.3.1). So does this client, once,
    and counts it in ``retried``; anything else, or a second failure, is recorded as the answer."""

    def __init__(self, url: str, host: str) -> None:
        import threading

        self.url, self.host = url, host
        self.seen: list[tuple[float, float, int, str]] = []  # (sent, answered, status, node)
        self.retried = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clbw-test-traffic", daemon=True)

    def _run(self) -> None:
        import time

        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    client.cookies.clear()
                    try:
                        answer = client.get(self.url, headers={"Host": self.host})
                    except httpx.RemoteProtocolError:
                        self.retried += 1
                        answer = client.get(self.url, headers={"Host": self.host})
                    status, node = answer.status_code, answer.headers.get("x-node", "")
                except httpx.HTTPError as exc:
                    status, node = -1, type(exc).__name__
                self.seen.append((sent, time.monotonic(), status, node))
                self._stop.wait(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def wait_running(node, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while node.state != "RUNNING" or not node.synchrony_up:
        assert time.monotonic() < deadline, f"{node.name} did not come back"
        time.sleep(0.05)


def snapshot_restarts(raw: dict, vhost: Path, folder: Path) -> None:
    """Each node's restart command first copies the vhost Apache serves at that moment into ``folder``
    (``<node>-<n>.conf``; ``absent`` when there is none): the state of the balancer when the node goes down."""
    folder.mkdir()
    for node in raw["nodes"]:
        target = shlex.quote(str(folder / node["name"]))
        node["restart_command"] = (f"n=$(ls {shlex.quote(str(folder))} | grep -c '^{node['name']}-'); "
                                   f"cp {shlex.quote(str(vhost))} {target}-$n.conf 2>/dev/null || "
                                   f"echo absent > {target}-$n.conf; " + node["restart_command"])


def roll_behind_a_live_file(lab, raw: dict, config: Path, port: int, drained_in, env: dict[str, str],
                            client_env: dict[str, str], tmp_path: Path):
    """The export of ``raw`` (restart_drain 1 s), then two runs of its playbook with ``env``, for a balancer that
    drains a node by rewriting its file ``config``: the first restarts both nodes without a drain (the
    balancer does not serve the setup yet, as the restart step does then) and writes the file; after
    server.xml is put back, the second restarts both again under traffic through ``port``. At each restart
    the file held that node drained, and only it; no request reached a node while it restarted and every
    request was answered; the file ends as exported. Returns the playbook, the export folder, the original
    server.xml files and the second run."""
    import time

    playbook = ansible_playbook()
    raw["restart_drain"] = 1
    snapshots = tmp_path / "at-restart"
    snapshot_restarts(raw, config, snapshots)
    originals = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}
    out = export_ansible(raw, tmp_path, client_env)
    exported = (out / "templates" / config.name).read_bytes()
    for node in lab.nodes:
        drained = (out / "templates" / "drained" / f"{node.name}.conf").read_text()
        assert drained_in(drained) == {node.name} and not drained_in(exported.decode())

    first = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [node.restarts for node in lab.nodes] == [1, 1]
    assert sorted(p.read_text() for p in snapshots.iterdir()) == ["absent\n", "absent\n"]
    assert config.read_bytes() == exported

    # Someone puts server.xml back: the next run must restart both nodes, now behind a live balancer.
    for node in lab.nodes:
        node.server_xml_path.write_bytes(originals[node.name])
    with Traffic(f"http://127.0.0.1:{port}/status", "localhost") as traffic:
        time.sleep(0.5)  # both nodes seen answering before the roll
        second = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
        time.sleep(0.5)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [node.restarts for node in lab.nodes] == [2, 2]  # each node once more, in this run
    for node in lab.nodes:
        # The file at the moment the node's restart command ran: that node drained, and only that node.
        (snapshot,) = [p for p in snapshots.iterdir() if p.name == f"{node.name}-1.conf"]
        assert drained_in(snapshot.read_text()) == {node.name}, snapshot.read_text()
        restart = node.restart_log[-1]
        assert restart.running_again is not None
        during = [seen for seen in traffic.seen if restart.requested <= seen[0] <= restart.running_again]
        assert during, "no request was sent while the node restarted"
        assert all(seen[3] != node.name for seen in during), during
    assert len({seen[3] for seen in traffic.seen}) == 2  # both nodes served before and after
    failed = [seen for seen in traffic.seen if seen[2] != 200]
    assert not failed, failed[:5]
    assert traffic.retried <= 4  # at most one closed keep-alive connection per reload: drain and back, per node
    assert config.read_bytes() == exported  # every node back
    return playbook, out, originals, second


def test_exported_roll_drains_each_node_in_apache_and_a_node_that_does_not_come_back_stays_drained(
        lab, ssh_testbed, sshd, client_env, tmp_path):
    """Behind a live Apache the exported roll drains each node (status=+D, tested, reloaded) before its restart
    and puts it back after: no request through Apache reaches a node while it restarts, every request is
    answered, each node restarts once, and the vhost ends as the export (and `apply`) writes it. A node that
    does not come back stops the roll there, drained; the next run restarts it again and puts it back."""
    from wizard.balancers.apache.vhost import drained_in

    raw = over_ssh(lab, ssh_testbed, sshd)
    raw["restart_timeout"] = 10
    vhost = lab.apache.config_path
    playbook, out, originals, second = roll_behind_a_live_file(
        lab, raw, vhost, lab.apache.port, drained_in, client_env, client_env, tmp_path)
    exported = (out / "templates" / "confluence-lb.conf").read_bytes()
    counters = recap(second.stdout)
    assert counters["node1"]["failed"] == counters["node2"]["failed"] == 0, second.stdout

    # A node that does not come back stops the roll and stays drained; the other is not touched.
    for node in lab.nodes:
        node.server_xml_path.write_bytes(originals[node.name])
    node1, node2 = lab.nodes
    node1.never_comes_back = True
    before = [len(node.restart_log) for node in lab.nodes]
    stopped = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert stopped.returncode != 0, stopped.stdout
    assert "STAYS DRAINED" in stopped.stdout and "node1 did not come back" in stopped.stdout, stopped.stdout
    assert [len(node.restart_log) for node in lab.nodes] == [before[0] + 1, before[1]]
    assert drained_in(vhost.read_text()) == {"node1"}
    assert node2.server_xml_path.read_bytes() == originals["node2"]  # the roll stopped before node2

    # It comes back (the admin fixed it): the next run restarts it once more, puts it back, then rolls node2.
    node1.come_back()
    wait_running(node1)
    resumed = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [len(node.restart_log) for node in lab.nodes] == [before[0] + 2, before[1] + 1]
    assert vhost.read_bytes() == exported
    assert all(c["changed"] == 0 for c in recap(run([playbook, "-i", "inventory.yml", "site.yml"], client_env,
                                                       cwd=out).stdout).values())

    # Apache's test refuses the drained vhost (here: a test command that always fails): the previous vhost is
    # back, Apache serves what it served, and the node is not restarted.
    inventory = (out / "inventory.yml").read_text()
    (out / "inventory.yml").write_text(re.sub(r"clbw_configtest: .*", "clbw_configtest: 'false'", inventory))
    node1.server_xml_path.write_bytes(originals["node1"])
    before = [len(node.restart_log) for node in lab.nodes]
    refused = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert refused.returncode != 0 and "Draining node1 in Apache failed" in refused.stdout, refused.stdout
    assert vhost.read_bytes() == exported
    assert [len(node.restart_log) for node in lab.nodes] == before


# --------------------------------------------------------------------------- setenv.sh


def twin_apply(lab: Lab, raw: dict, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    """The same machines as they were before the playbook (server.xml, setenv.sh, no vhost), set up by `apply`."""
    for node in lab.nodes:
        node.server_xml_path.write_bytes(originals[node.name][0])
        node.setenv_path.write_bytes(originals[node.name][1])
    lab.apache.config_path.unlink()
    subprocess.run(lab.apache.reload_command.split(), check=True, capture_output=True)
    runner = Runner(validate(raw), StateStore(tmp_path / "state" / "lab.state.json"), command="test")
    with runner:
        outcome = runner.apply(["connector", "restart", "balancer"])
    assert outcome.exit_status == EXIT_OK, outcome.message


@pytest.mark.parametrize("mode, line", [
    ("internal-proxy", 'CATALINA_OPTS="-Dsynchrony.proxy.enabled=true ${CATALINA_OPTS}"'),
    ("standalone", 'CATALINA_OPTS="-Dsynchrony.service.url=http://localhost:{port}/synchrony/v1 ${CATALINA_OPTS}"'),
])
def test_exported_playbook_edits_setenv_sh_as_apply_does(mode, line, lab, lab_node_factory, ssh_testbed, sshd,
                                                         client_env, tmp_path):
    """The Synchrony option of the mode reaches every node's bin/setenv.sh through the exported module: shown by
    --check --diff, written as one marked line (byte for byte what `apply` writes on a twin), taking effect at
    the roll's restart, and a second run changes nothing."""
    playbook = ansible_playbook()
    raw = over_ssh(lab, ssh_testbed, sshd)
    raw["synchrony"] = {"mode": mode, "port": raw["synchrony"]["port"]}
    if mode == "standalone":
        machine = lab_node_factory("sync1", echo_pages=True)
        raw["synchrony"]["nodes"] = [{"name": "sync1", "address": "127.0.0.1", "port": machine.synchrony_port}]
    port = raw["balancer"]["apache"]["listen_port"]
    marked = line.replace("{port}", str(port)) + "  # added by confluence-lb-wizard for the setup lab"
    originals = {n.name: (n.server_xml_path.read_bytes(), n.setenv_path.read_bytes()) for n in lab.nodes}
    out = export_ansible(raw, tmp_path, client_env)

    check = run([playbook, "-i", "inventory.yml", "site.yml", "--check", "--diff"], client_env, cwd=out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(f"+{marked}\n") == 2, check.stdout  # one per node
    assert {n.name: (n.server_xml_path.read_bytes(), n.setenv_path.read_bytes()) for n in lab.nodes} == originals
    assert all(node.restarts == 0 for node in lab.nodes)

    first = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [node.restarts for node in lab.nodes] == [1, 1]
    by_ansible = {n.name: (n.server_xml_path.read_bytes(), n.setenv_path.read_bytes()) for n in lab.nodes}
    for name, (_, setenv) in by_ansible.items():
        before = originals[name][1]
        assert setenv.count(marked.encode()) == 1 and setenv.replace(marked.encode() + b"\n", b"", 1) == before

    # Only the setenv.sh change needs a restart: put server.xml as the playbook left it and setenv.sh back.
    for node in lab.nodes:
        node.setenv_path.write_bytes(originals[node.name][1])
    again = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert [node.restarts for node in lab.nodes] == [2, 2]  # the setenv.sh edit alone restarts the node
    assert {n.name: (n.server_xml_path.read_bytes(), n.setenv_path.read_bytes()) for n in lab.nodes} == by_ansible

    run_changes_nothing(playbook, client_env, out)
    assert [node.restarts for node in lab.nodes] == [2, 2]

    twin_apply(lab, raw, originals, tmp_path)
    assert {n.name: (n.server_xml_path.read_bytes(), n.setenv_path.read_bytes()) for n in lab.nodes} == by_ansible


def test_setenv_module_matches_the_wizard(client_env, tmp_path):
    """The exported setenv.sh module, run by Ansible, makes the wizard's own edit (plan_setenv_edit) on every
    case: added in each mode, taken out again in direct mode (the file back byte for byte), the admin's own flag
    left alone, and the files the wizard refuses refused, untouched."""
    playbook = ansible_playbook()
    from wizard.confluence.setenv import PROXY_ENABLED, SERVICE_URL, SetenvError, plan_setenv_edit
    from wizard.export.ansible import setenv_module

    stock = (FIXTURES.parent / "setenv" / "confluence-7-stock.sh").read_text()
    proxied = plan_setenv_edit(stock, setup="wiki", wanted={PROXY_ENABLED: "true"}).new_text
    cases = {  # name -> (file, options)
        "stock-proxy.sh": (stock, {PROXY_ENABLED: "true"}),
        "stock-standalone.sh": (stock, {SERVICE_URL: "https://wiki.example.com/synchrony/v1"}),
        "proxied-direct.sh": (proxied, {}),
        "proxied-standalone.sh": (proxied, {SERVICE_URL: "https://wiki.example.com/synchrony/v1"}),
        "crlf-proxy.sh": ('CATALINA_OPTS="-Da=1 ${CATALINA_OPTS}"\r\nexport CATALINA_OPTS\r\n', {PROXY_ENABLED: "true"}),
        "admins-flag.sh": (stock.replace('# CATALINA_OPTS="-Dsynchrony.proxy.enabled=false',
                                         'CATALINA_OPTS="-Dsynchrony.proxy.enabled=false'), {PROXY_ENABLED: "true"}),
        "admins-url.sh": (stock + 'CATALINA_OPTS="-Dsynchrony.service.url=http://other/synchrony/v1 ${CATALINA_OPTS}"\n',
                          {SERVICE_URL: "https://wiki.example.com/synchrony/v1"}),
        "no-catalina-opts.sh": ("#!/bin/sh\nJAVA_OPTS=-Xmx1g\n", {PROXY_ENABLED: "true"}),
        "open-quote.sh": ('CATALINA_OPTS="-Dx=1 ${CATALINA_OPTS}\n', {PROXY_ENABLED: "true"}),
    }
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "clbw_setenv.py").write_text(setenv_module())
    files = tmp_path / "files"
    files.mkdir()
    for name, (text, _) in cases.items():
        (files / name).write_bytes(text.encode())
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [{
        "clbw_setenv": {"path": str(files) + "/{{ item.key }}", "setup": "wiki", "options": "{{ item.value }}"},
        "loop": "{{ cases | dict2items }}", "ignore_errors": True}],
        "vars": {"cases": {name: options for name, (_, options) in cases.items()}}}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {**client_env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = run([playbook, "-i", "localhost,", "play.yml"], env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = {}
    for name, (text, options) in cases.items():
        try:
            wanted = plan_setenv_edit(text, setup="wiki", wanted=options).new_text
        except SetenvError:
            assert (files / name).read_text() == text, name
            assert re.search(rf"failed: \[localhost\] \(item=\{{'key': '{re.escape(name)}'", done.stdout), name
            outcomes[name] = "refused"
            continue
        assert (files / name).read_bytes() == wanted.encode(), name
        outcomes[name] = "same" if wanted == text else "edited"
    assert outcomes == {"stock-proxy.sh": "edited", "stock-standalone.sh": "edited", "proxied-direct.sh": "edited",
                        "proxied-standalone.sh": "edited", "crlf-proxy.sh": "edited", "admins-flag.sh": "same",
                        "admins-url.sh": "refused", "no-catalina-opts.sh": "refused", "open-quote.sh": "refused"}
    assert (files / "proxied-direct.sh").read_text() == stock  # direct takes out exactly this setup's line
    again = run([playbook, "-i", "localhost,", "play.yml"], env, cwd=tmp_path)
    assert re.search(r"localhost\s+:.*changed=0", again.stdout), again.stdout


# --------------------------------------------------------------------------- HAProxy


@pytest.fixture
def haproxy_lab():
    """The lab with its real HAProxy (master-worker, with the runtime API's admin socket) in front."""
    root = Path(tempfile.mkdtemp(prefix="clbw-export-haproxy-"))
    root.chmod(0o755)
    started = Lab(root, nodes=2, balancer="haproxy")
    started.start()
    yield started
    started.stop()
    shutil.rmtree(root, ignore_errors=True)


_SERVERS_STATE = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'show servers state\\n')\n"
    "out = b''\n"
    "while True:\n"
    "    chunk = s.recv(65536)\n"
    "    if not chunk: break\n"
    "    out += chunk\n"
    "sys.stdout.write(out.decode())\n")


def admin_flags(text: str) -> dict[tuple[str, str], int]:
    """(backend, server) -> srv_admin_state, from ``show servers state``."""
    lines = text.splitlines()
    header = next(line[1:].split() for line in lines if line.startswith("#"))
    found = {}
    for line in lines:
        fields = line.split()
        if not line.startswith("#") and len(fields) >= len(header):
            found[(fields[header.index("be_name")], fields[header.index("srv_name")])] = \
                int(fields[header.index("srv_admin_state")])
    return found


def test_exported_roll_drains_each_node_through_haproxys_runtime_api(haproxy_lab, client_env, tmp_path):
    """Behind a live HAProxy with admin_socket the exported roll drains each node through the runtime API
    (library/clbw_haproxy.py: set server ... state maint) before its restart and sets it ready after: at each
    restart that node, and only it, is drained in every backend of the setup, no request through HAProxy reaches
    it while it restarts, and the roll ends with every server ready. Before the balancer step, HAProxy serves
    nothing of the setup: nothing is drained, as the restart step does then."""
    import time

    from wizard.balancers.haproxy.config import backend_names

    lab = haproxy_lab
    playbook = ansible_playbook()
    raw = lab.answers()
    raw["restart_drain"] = 1
    socket_path = raw["balancer"]["haproxy"]["admin_socket"]
    snapshots = tmp_path / "at-restart"
    snapshots.mkdir()
    client = tmp_path / "servers_state.py"
    client.write_text(_SERVERS_STATE)
    for node in raw["nodes"]:
        target = shlex.quote(str(snapshots / node["name"]))
        node["restart_command"] = (f"{shlex.quote(sys.executable)} {shlex.quote(str(client))} "
                                   f"{shlex.quote(socket_path)} > {target}-$(date +%s%N).txt; " + node["restart_command"])
    out = export_ansible(raw, tmp_path, client_env)
    assert (out / "library" / "clbw_haproxy.py").is_file()
    assert "clbw_haproxy" in (out / "site.yml").read_text()
    env = {**client_env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    originals = {node.name: node.server_xml_path.read_bytes() for node in lab.nodes}

    # HAProxy runs but has none of the setup's backends yet: the roll restarts without a drain.
    first = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [node.restarts for node in lab.nodes] == [1, 1]
    assert first.stdout.count("is restarted WITHOUT a drain: the balancer does not serve this setup yet") == 2
    assert all(admin_flags(p.read_text()) == {} or all(key[0] not in backend_names("lab", True)
                                                       for key in admin_flags(p.read_text()))
               for p in snapshots.iterdir())
    for path in list(snapshots.iterdir()):
        path.unlink()

    # The balancer step serves the setup; server.xml put back, so the next run restarts both nodes.
    with Runner(validate(raw), StateStore(tmp_path / "state" / "lab.state.json"), command="test") as runner:
        assert runner.apply(["balancer"]).exit_status == EXIT_OK
    for node in lab.nodes:
        node.server_xml_path.write_bytes(originals[node.name])
    backends = backend_names("lab", True)
    with Traffic(f"http://127.0.0.1:{lab.proxy.port}/status", "localhost") as traffic:
        time.sleep(0.5)
        second = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
        time.sleep(0.5)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [node.restarts for node in lab.nodes] == [2, 2]
    for node in lab.nodes:
        (snapshot,) = [p for p in snapshots.iterdir() if p.name.startswith(f"{node.name}-")]
        flags = admin_flags(snapshot.read_text())
        drained = {server for (backend, server), value in flags.items() if backend in backends and value & 0x01}
        assert drained == {node.name}, snapshot.read_text()
        assert all((backend, node.name) in flags for backend in backends)
        restart = node.restart_log[-1]
        during = [seen for seen in traffic.seen if restart.requested <= seen[0] <= restart.running_again]
        assert during and all(seen[3] != node.name for seen in during), during
    assert not [seen for seen in traffic.seen if seen[2] != 200][:5]
    assert len({seen[3] for seen in traffic.seen}) == 2
    done_flags = admin_flags(subprocess.run([sys.executable, "-c", _SERVERS_STATE, socket_path], capture_output=True,
                                            text=True, check=True).stdout)
    assert all(done_flags[(backend, node.name)] & 0x09 == 0 for backend in backends for node in lab.nodes)

    third = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
    assert third.returncode == 0, third.stdout + third.stderr
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in recap(third.stdout).values()), third.stdout


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_exported_roll_drains_each_node_through_the_balancers_file(kind, client_env, tmp_path):
    """Behind a live nginx, or HAProxy without admin_socket, the exported roll drains each node as `restart`
    does: the file with that node's servers out (templates/drained/: nginx down, HAProxy disabled), tested,
    reloaded, before its restart, and the file of templates/ after: no request through the balancer reaches a
    node while it restarts, none fails, and the file ends as the export writes it. Before the balancer serves
    the setup (its file is not there yet) nothing is drained."""
    from wizard.balancers.served import drained_named as drained_in

    root = Path(tempfile.mkdtemp(prefix=f"clbw-export-{kind}-roll-"))
    root.chmod(0o755)
    lab = Lab(root, nodes=2, balancer=kind)
    lab.start()
    try:
        raw = lab.answers()
        raw["balancer"][kind].pop("admin_socket", None)  # HAProxy: no runtime API, the file drains
        env = {**client_env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
        playbook, out, _, _ = roll_behind_a_live_file(lab, raw, lab.proxy.config_path, lab.proxy.port, drained_in,
                                                      env, client_env, tmp_path)
        run_changes_nothing(playbook, env, out)
        assert [node.restarts for node in lab.nodes] == [2, 2]
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- nginx and HAProxy's own file


@pytest.fixture(params=["nginx", "haproxy"])
def served_lab(request):
    """The lab behind its real nginx, or its real HAProxy (with the runtime API's admin socket)."""
    root = Path(tempfile.mkdtemp(prefix=f"clbw-export-{request.param}-"))
    root.chmod(0o755)
    started = Lab(root, nodes=2, balancer=request.param)
    started.start()
    yield started
    started.stop()
    shutil.rmtree(root, ignore_errors=True)


def task_output(output: str, name: str) -> str:
    """What ansible-playbook printed for the tasks whose name starts with ``name`` (their TASK lines included)."""
    return "".join(re.findall(r"^TASK \[" + re.escape(name) + r".*?(?=^TASK \[|^PLAY RECAP|\Z)", output,
                              re.MULTILINE | re.DOTALL))


def test_exported_playbook_writes_the_nginx_and_haproxy_file_as_apply_does(served_lab, ssh_testbed, sshd,
                                                                          client_env, tmp_path):
    """Over the real sshd, the exported playbook writes the kind's managed file (through the symbolic link that
    config_path is, as `apply` does) byte for byte as `apply --only balancer` writes it on an identical twin;
    the server tests it before it reloads; the final uri checks pass and the heartbeat and a sticky ROUTEID
    page answer through the balancer; a second run changes nothing; a file that fails the server's test is
    put back and the previous one keeps serving."""
    lab = served_lab
    kind = lab.balancer
    playbook = ansible_playbook()
    raw = over_ssh(lab, ssh_testbed, sshd)
    config = lab.proxy.config_path
    # config_path is a symbolic link to a file outside the folder the server includes (the wizard's file
    # in a folder of its own, linked into sites/): the playbook writes its target and keeps the link.
    earlier = b"# the file before the wizard's\n"
    target = lab.root / "elsewhere" / config.name
    target.parent.mkdir()
    target.write_bytes(earlier)
    config.symlink_to(target)
    out = export_ansible(raw, tmp_path, client_env)
    template = out / "templates" / config.name
    assert template.is_file() and target.read_bytes() == earlier  # exporting changed nothing
    site = yaml.load((out / "site.yml").read_text(), Loader=AnsibleLoader)
    assert [play["hosts"] for play in site] == ["confluence_nodes", "confluence_balancer", "localhost"]
    assert "not in this playbook" not in (out / "site.yml").read_text()

    first = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    counters = recap(first.stdout)
    assert all(c["failed"] == 0 for c in counters.values()), first.stdout
    assert counters["balancer"]["changed"] >= 2, first.stdout  # the file written, the server reloaded
    # /status with the cookie, the heartbeat, and for HAProxy its stats page closed.
    assert counters["localhost"]["ok"] == (3 if kind == "haproxy" else 2), first.stdout
    assert config.is_symlink() and config.resolve() == target.resolve()
    by_ansible = target.read_bytes()
    assert by_ansible == template.read_bytes() and by_ansible != earlier

    base = f"http://127.0.0.1:{lab.proxy.port}"
    heartbeat = httpx.get(f"{base}/synchrony/heartbeat", headers={"Host": "localhost"}, timeout=5.0)
    assert (heartbeat.status_code, heartbeat.text.strip()) == (200, "OK")
    answer = httpx.get(f"{base}/status", headers={"Host": "localhost"}, timeout=5.0)
    cookie = answer.cookies.get("ROUTEID") or ""
    route = re.fullmatch(r"\.?(node\d)", cookie)
    assert route and answer.headers["x-node"] == route[1], (cookie, answer.headers)
    stays_on(base, cookie, route[1], rounds=4)

    run_changes_nothing(playbook, client_env, out)

    # A file the server's own test refuses: put back, the server not reloaded, the previous file serving.
    good = template.read_text()
    from wizard.balancers.served import serving_processes
    from wizard.transport.hosts import LocalHost

    template.write_text(good + "this is not a directive of any server\n")
    serving = serving_processes(LocalHost(), str(lab.proxy.pid_file))
    refused = run([playbook, "-i", "inventory.yml", "site.yml"], client_env, cwd=out)
    assert refused.returncode != 0, refused.stdout
    assert "fatal: [balancer]" in task_output(refused.stdout, "Test "), refused.stdout
    # The new file's reload never ran (the block stopped at the test) and the previous file's was skipped
    # (in the balancer's play: the roll's drain and undrain reloads before it were skipped, nothing restarted).
    product = {"nginx": "nginx", "haproxy": "HAProxy"}[kind]
    reloads = task_output(refused.stdout[refused.stdout.index(f"PLAY [{product} in front of the nodes]"):], "Reload ")
    assert reloads.count("TASK [") == 1 and "with the previous" in reloads and "skipping: [balancer]" in reloads, \
        refused.stdout
    assert "configuration test (or its reload) failed with the new file" in refused.stdout, refused.stdout
    assert serving_processes(LocalHost(), str(lab.proxy.pid_file)) == serving and serving
    assert target.read_bytes() == by_ansible and config.is_symlink()
    heartbeat = httpx.get(f"{base}/synchrony/heartbeat", headers={"Host": "localhost"}, timeout=5.0)
    assert (heartbeat.status_code, heartbeat.text.strip()) == (200, "OK")
    template.write_text(good)

    # The twin: the same balancer as before the playbook, set up by `apply --only balancer`.
    target.write_bytes(earlier)
    lab.proxy.reload()
    with Runner(validate(raw), StateStore(tmp_path / "state" / "lab.state.json"), command="test") as runner:
        outcome = runner.apply(["balancer"])
    assert outcome.exit_status == EXIT_OK, outcome.message
    assert config.is_symlink() and target.read_bytes() == by_ansible


# --------------------------------------------------------------------------- HTTPS through nginx and HAProxy


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_exported_playbook_serves_https_through_nginx_and_haproxy(
        kind, make_bed, client_env, tmp_path):  # noqa: F811 (the fixture)
    """public_url https: the playbook writes the kind's file with TLS (nginx: certificate and key; HAProxy:
    one PEM) and the HTTP port's redirect, the server's test passes, and its final uri checks (status,
    heartbeat, the redirect keeping path and query) pass over HTTPS. Real requests then get the pages over
    TLS, a 301 from plain HTTP to the same path on https, and a second run changes nothing."""
    playbook = ansible_playbook()
    bed = make_bed(kind, tls=True)
    for raw_node, node in zip(bed.raw["nodes"], bed.nodes):
        raw_node["restart_command"] = node.restart_command
    out = export_ansible(bed.raw, tmp_path, client_env)
    env = {**client_env, "ANSIBLE_PYTHON_INTERPRETER": sys.executable}

    first = run([playbook, "-i", "inventory.yml", "site.yml"], env, cwd=out)
    assert first.returncode == 0, first.stdout + first.stderr
    checks = task_output(first.stdout, "HTTP on port") + task_output(first.stdout, "Confluence answers")
    assert "ok: [localhost]" in checks and "https://" in (out / "site.yml").read_text(), first.stdout
    assert [node.restarts for node in bed.nodes] == [1, 1]
    status = bed.get("/status")  # bed.base is https://
    assert status.status_code == 200 and status.json() == {"state": "RUNNING"}
    assert bed.get("/synchrony/heartbeat").text == "OK"
    moved = httpx.get(f"http://127.0.0.1:{bed.http_port}/display/X?a=1", headers={"Host": "wiki.example.com"},
                      timeout=5.0, follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == "https://wiki.example.com/display/X?a=1"
    run_changes_nothing(playbook, env, out)
