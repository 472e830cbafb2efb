"""The built-in lab (wizard/lab/cluster.py): simulated nodes, the real Apache, moto, and nothing left behind.

The nodes are checked the way a balancer and the wizard see them (HTTP, WebSockets, the
restart trigger); the Apache lab is configured by the wizard's own steps through the
Runner and then carries real traffic; every fault is made observable and healed; the
installed command runs the whole lab headless. "Nothing left behind" is checked without
psutil: Apache's pids and every process naming the lab's main.conf are gone, the ports
refuse connections, and no thread named ``clbw-lab-...`` is alive.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from wizard.lab import child_server
from wizard.answers import find_problems, load_answers_file, merge, missing_keys, validate
from wizard.answers.schema import answers_schema
from wizard.answers.template import answers_template
from wizard.errors import EXIT_OK, BadInputError, WizardError
from wizard.lab.cluster import FAULTS, WRONG_BASE_URL, Lab
from wizard.lab.node import THREAD_PREFIX
from wizard.engine.runner import Runner
from wizard.confluence.serverxml import plan_connector_edit
from wizard.engine.state import StateStore
from wizard.steps import available

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent / "confluence-lb-wizard"
WS_PATH = "/synchrony/v1/bayeux-sync1"


@pytest.fixture(scope="module", autouse=True)
def apache_installed(apache_helpers) -> None:
    """The Apache lab needs apache2; the test helper installs it with apt when it may."""
    apache_helpers.ensure_apache()


# --- helpers -------------------------------------------------------------------------------------


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (the lab's own main.conf)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and alive(int(entry)):
                found.append(int(entry))
    return found


def lab_threads(lab: Lab) -> list[str]:
    """The lab's live threads, by name (each lab names its own ``clbw-lab-<id>-...``)."""
    import threading

    assert lab.thread_prefix.startswith(THREAD_PREFIX)
    return [t.name for t in threading.enumerate() if t.name.startswith(lab.thread_prefix + "-") and t.is_alive()]


def through_apache(lab: Lab, path: str, **kwargs) -> httpx.Response:
    """A request to the lab's Apache by address, with the vhost's Host header."""
    assert lab.apache is not None
    return httpx.get(f"http://127.0.0.1:{lab.apache.port}{path}", headers={"Host": "localhost"},
                     follow_redirects=False, timeout=5, **kwargs)


def eventually(probe, timeout: float = 8.0, interval: float = 0.1):
    """``probe()`` until it returns something true (right after a graceful reload an answer may be old)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def ws_echo(url: str, message: str) -> str:
    with connect(url, open_timeout=5, close_timeout=2) as websocket:
        websocket.send(message)
        return str(websocket.recv(timeout=5))


def manifest_url(node_url: str) -> str:
    answer = httpx.get(f"{node_url}/rest/applinks/1.0/manifest", timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/xml")
    found = re.search(r"<url>(.*?)</url>", answer.text)
    assert found, answer.text
    return found[1]


def edit_connector(path: Path, port: int, proxy_name: str, proxy_port: int, scheme: str) -> None:
    edit = plan_connector_edit(path.read_text(), port=port, proxy_name=proxy_name, proxy_port=proxy_port,
                               scheme=scheme)
    path.write_text(edit.new_text)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A running two-node Apache lab in tmp_path (restarts shortened); stopped after the test."""
    with Lab(tmp_path / "lab") as started:
        for node in started.nodes:
            node.restart_seconds = 0.3
        yield started


# --- life cycle ------------------------------------------------------------------------------------


def test_the_lab_starts_and_stops_leaving_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    lab = Lab()
    assert lab.root.parent == tmp_path / "xdg" / "confluence-lb-wizard" / "lab"
    lab.start()
    try:
        assert lab.apache is not None and lab.apache.running
        pid, main_conf = lab.apache.pid, str(lab.apache.main_conf)
        ports = [lab.apache.port] + [p for n in lab.nodes for p in (n.confluence_port, n.synchrony_port)]
        assert not any(refused(port) for port in ports)
        assert processes_naming(main_conf) and lab_threads(lab)
        # A WebSocket held open must not keep a thread alive after stop.
        with connect(f"ws://127.0.0.1:{lab.nodes[0].synchrony_port}{WS_PATH}", open_timeout=5,
                     close_timeout=1) as held:
            held.send("hello")
            assert held.recv(timeout=5) == "node1: hello"
            lab.stop()
    finally:
        lab.stop()
    assert not alive(pid)
    assert processes_naming(main_conf) == []
    assert all(refused(port) for port in ports)
    assert lab_threads(lab) == [] and lab.threads() == []
    assert not lab.root.exists(), "a lab in the default folder is removed unless kept"
    lab.stop()  # idempotent


def test_a_kept_lab_keeps_its_files_and_a_stopped_lab_does_not_start_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    lab = Lab(keep=True, nodes=1)
    with lab:
        assert len(lab.nodes) == 1
    assert lab.answers_path.exists() and (lab.nodes[0].server_xml_path).exists()
    assert "files are kept" in lab.farewell()
    with pytest.raises(WizardError, match="does not start again"):
        lab.start()


@pytest.mark.parametrize("ending", ("killed", "forgot-stop"))
def test_apache_ends_with_the_labs_process_even_without_stop(tmp_path: Path, ending: str) -> None:
    """SIGKILL leaves no finally to run (the parent-death signal ends Apache); a script that
    forgets stop() exits through atexit. Either way the lab comes back on its ports."""
    script = ("import sys, time\nfrom pathlib import Path\nfrom wizard.lab.cluster import Lab\n"
              "lab = Lab(Path(sys.argv[1]), nodes=1, resume=True).start()\n"
              "print(lab.apache.pid, lab.apache.port, flush=True)\n"
              + ("time.sleep(60)\n" if ending == "killed" else ""))
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "lab")], stdout=subprocess.PIPE,
                             text=True)
    pid, port = (int(word) for word in child.stdout.readline().split())
    assert alive(pid)
    if ending == "killed":
        child.kill()
    child.wait(timeout=30)
    assert eventually(lambda: not alive(pid), timeout=10), "Apache outlived the lab's process"
    assert eventually(lambda: processes_naming(str(tmp_path / "lab" / "apache" / "main.conf")) == [], timeout=10)
    assert refused(port)
    with Lab(tmp_path / "lab", resume=True) as again:
        assert again.resumed, again.resume_summary()
        assert again.apache is not None and again.apache.port == port and len(again.nodes) == 1


# --- coming back -------------------------------------------------------------------------------------


def test_a_resumed_lab_comes_back_as_it_was_left(tmp_path: Path) -> None:
    """Ports, install files as the wizard edited them, Apache's site, the base URL and the state."""
    root = tmp_path / "lab"
    with Lab(root, resume=True) as first:
        assert not first.resumed and first.resume_summary() == ""  # a new folder: nothing to come back to
        ports = [(n.confluence_port, n.synchrony_port) for n in first.nodes]
        apache_port, server_id = first.apache.port, first.database.server_id
        first.set_base_url_as_admin()
        node1 = first.nodes[0]
        edit_connector(node1.server_xml_path, node1.confluence_port, "localhost", apache_port, "http")
        edited = node1.server_xml_path.read_bytes()
        site = first.apache.config_path
        site.write_text("# the wizard's site would be here\n")
        state = first.prepare_state().read_bytes()
    with Lab(root, resume=True) as again:
        assert again.resumed and "Resumed the lab" in again.resume_summary()
        assert "Resumed the lab" in again.describe()
        assert [(n.confluence_port, n.synchrony_port) for n in again.nodes] == ports
        assert again.apache.port == apache_port and again.database.server_id == server_id
        assert again.base_url == f"http://localhost:{apache_port}"
        assert again.nodes[0].server_xml_path.read_bytes() == edited
        # The node booted with the file as it is, as a real node does after its machine restarts.
        assert again.nodes[0].running_connector["proxyPort"] == apache_port
        assert again.nodes[1].running_connector["proxyPort"] is None
        assert site.read_text() == "# the wizard's site would be here\n"
        assert again.state_path.read_bytes() == state
        answers = validate(load_answers_file(again.answers_path))
        assert [(n.confluence_port, n.synchrony_port) for n in answers.nodes] == ports
    assert "come back to it where you left off" in again.farewell()


@pytest.mark.parametrize("change", ("port-taken", "other-node-count", "record-damaged", "not-asked"))
def test_a_lab_that_cannot_come_back_says_why_and_starts_afresh(tmp_path: Path, change: str) -> None:
    root = tmp_path / "lab"
    with Lab(root, resume=True, nodes=1) as first:
        port = first.nodes[0].confluence_port
        first.prepare_state()
    blocker = socket.socket()
    try:
        if change == "port-taken":
            blocker.bind(("127.0.0.1", port))
            blocker.listen()
        elif change == "record-damaged":
            (root / "lab.json").write_text("{not json")
        lab = Lab(root, resume=change != "not-asked", nodes=2 if change == "other-node-count" else None)
        with lab:
            assert not lab.resumed
            expected = {"port-taken": f"port {port} (node1's Confluence) is taken by another program",
                        "other-node-count": "it had 1 node(s) and 2 were asked for",
                        "record-damaged": "is not JSON", "not-asked": None}[change]
            if expected is None:
                assert lab.resume_summary() == ""
            else:
                assert expected in lab.resume_summary() and "A fresh lab starts instead" in lab.resume_summary()
                assert "lab.state.json.old" in lab.resume_summary()
            assert (root / "lab.state.json.old").exists() and not lab.state_path.exists()
            assert lab.base_url == lab.nodes[0].url  # a fresh install's base URL
            if change == "port-taken":
                assert lab.nodes[0].confluence_port != port
    finally:
        blocker.close()


def test_one_lab_per_folder(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab", resume=True, nodes=1) as first:
        second = Lab(tmp_path / "lab", resume=True, nodes=1)
        with pytest.raises(WizardError, match="already running") as caught:
            second.start()
        assert f"pid {os.getpid()}" in str(caught.value) and "quit its wizard first" in (caught.value.hint or "")
        assert lab_threads(second) == [] and not second.running
        assert first.running and not refused(first.apache.port)


def test_without_apache_the_lab_says_how_to_install_it_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(child_server.shutil, "which", lambda *args, **kwargs: None)
    lab = Lab(tmp_path / "lab")
    with pytest.raises(WizardError) as caught:
        lab.start()
    assert "apt-get install apache2" in (caught.value.hint or "")
    assert "dnf install httpd" in (caught.value.hint or "")
    assert lab_threads(lab) == [] and not lab.running


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_the_nginx_and_haproxy_labs_finish_green_and_leave_nothing_running(tmp_path: Path, balancer: str) -> None:
    import io

    from wizard.lab.cluster import run_headless

    out = io.StringIO()
    with Lab(tmp_path / balancer, balancer=balancer) as lab:
        assert lab.proxy is not None and lab.apache is None
        status = run_headless(lab, out=out)
        server = lab.proxy
    assert status == 0, out.getvalue()[-3000:]
    assert "Every step is done and its checks passed." in out.getvalue()
    assert f"{balancer}-reload" in (tmp_path / balancer / "lab.state.json").read_text()
    assert not server.running and lab_threads(lab) == []


def test_bad_lab_arguments_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="apache, alb, nginx or haproxy"):
        Lab(tmp_path, balancer="traefik")
    with pytest.raises(BadInputError, match="1 to 16 nodes"):
        Lab(tmp_path, nodes=0)


# --- the answers and the nodes -----------------------------------------------------------------


def test_the_answers_are_complete_and_valid(lab: Lab) -> None:
    raw = load_answers_file(lab.answers_path)
    assert missing_keys(raw) == []
    answers = validate(raw)
    assert answers.name == "lab" and answers.public_url.url == lab.public_url == f"http://localhost:{lab.apache.port}"
    assert (answers.synchrony.mode, answers.restart, answers.restart_timeout, answers.base_url.method) == \
        ("direct", "rolling", 60, "guided")
    for node, lab_node in zip(answers.nodes, lab.nodes, strict=True):
        assert (node.name, node.address, node.access.transport) == (lab_node.name, "127.0.0.1", "local")
        assert (node.confluence_port, node.synchrony_port) == (lab_node.confluence_port, lab_node.synchrony_port)
        assert node.install_dir == str(lab_node.install_dir)
        assert node.restart_command == f"touch {lab_node.trigger_path}"
    apache = answers.balancer.apache
    assert apache is not None and apache.access.transport == "local"
    assert apache.config_path == str(lab.apache.config_path) and apache.listen_port == lab.apache.port
    assert f"-f {lab.apache.main_conf}" in apache.configtest_command and "-t" in apache.configtest_command
    assert apache.reload_command.endswith(f"-f {lab.apache.main_conf} -k graceful")


def schema_errors(raw: dict) -> list[str]:
    """What the `schema` verb's JSON Schema finds wrong in ``raw`` (nothing, for a valid file)."""
    return [error.message for error in jsonschema.Draft202012Validator(answers_schema()).iter_errors(raw)]


def test_the_labs_answers_pass_the_schema_and_inits_file_filled_in_with_them_passes_plan(lab: Lab) -> None:
    raw = load_answers_file(lab.answers_path)
    assert find_problems(raw) == [] and schema_errors(raw) == []
    filled = merge(yaml.safe_load(answers_template("apache")), raw)
    assert schema_errors(filled) == []
    answers_file = lab.root / "from-init.yaml"
    answers_file.write_text(yaml.safe_dump(filled), encoding="utf-8")
    done = run_command("plan", "--answers", str(answers_file), "--state", str(lab.root / "init.state.json"),
                       cwd=lab.root)
    assert done.returncode == EXIT_OK, done.stdout[-3000:] + done.stderr
    assert "nothing was changed" in done.stdout


def test_the_description_says_how_to_set_the_base_url_from_a_shell(lab: Lab) -> None:
    found = re.search(r"or from a shell: curl -d (baseUrl=\S+) (\S+)", lab.describe())
    assert found, lab.describe()
    form, url = found.groups()
    # What that curl command sends: a form POST.
    with urllib.request.urlopen(urllib.request.Request(url, data=form.encode(), method="POST"), timeout=10):
        pass
    assert lab.base_url == lab.public_url
    assert "or from a shell" not in lab.describe()  # done: nothing left to say


def test_the_nodes_answer_like_confluence_and_synchrony(lab: Lab) -> None:
    node1 = lab.nodes[0]
    assert lab.base_url == node1.url == f"http://127.0.0.1:{node1.confluence_port}"
    with httpx.Client(timeout=5, follow_redirects=False) as client:
        for node in lab.nodes:
            status = client.get(f"{node.url}/status")
            assert (status.status_code, status.json(), status.headers["x-node"]) == (200, {"state": "RUNNING"},
                                                                                      node.name)
            assert manifest_url(node.url) == lab.base_url
            root = httpx.get(f"{node.url}/", timeout=5)  # no cookie jar: a first visit
            assert root.status_code == 302 and root.headers["x-node"] == node.name
            assert root.headers["location"] == f"http://127.0.0.1:{node.confluence_port}/index.action"
            assert re.match(rf"JSESSIONID=\w+\.{node.name}; Path=/", root.headers["set-cookie"])
            again = client.get(f"{node.url}/index.action", headers={"Cookie": "JSESSIONID=x"})
            assert again.status_code == 200 and node.name in again.text and "set-cookie" not in again.headers
            for heartbeat in (f"{node.synchrony_url}/heartbeat", f"{node.url}/synchrony-proxy/heartbeat"):
                answer = client.get(heartbeat)
                assert (answer.status_code, answer.text, answer.headers["x-node"]) == (200, "OK", node.name)
            # Synchrony's WebSocket path refuses a plain GET, as Jetty does.
            assert client.get(f"{node.synchrony_url}/v1/bayeux-sync1").status_code == 400
        assert ws_echo(f"ws://127.0.0.1:{node1.synchrony_port}{WS_PATH}", "hi") == "node1: hi"
        assert ws_echo(f"ws://127.0.0.1:{node1.confluence_port}/synchrony-proxy/v1/bayeux-sync1", "yo") == "node1: yo"
    setenv = node1.setenv_path.read_text()
    assert f"-Dsynchrony.port={node1.synchrony_port} " in setenv
    assert 'Service name="Tomcat-Standalone"' in node1.server_xml_path.read_text()


def test_the_redirect_follows_the_running_connector_after_an_edit_and_a_restart(lab: Lab) -> None:
    node = lab.nodes[1]
    port = lab.apache.port
    edit_connector(node.server_xml_path, node.confluence_port, "localhost", port, "http")
    location = lambda: httpx.get(f"{node.url}/", timeout=5).headers.get("location")  # noqa: E731
    # Edited but not restarted: Tomcat still runs the old Connector.
    assert location() == f"http://127.0.0.1:{node.confluence_port}/index.action"
    assert node.running_connector["proxyName"] is None
    subprocess.run(node.restart_command, shell=True, check=True)  # what the restart step runs
    assert httpx.get(f"{node.url}/status", timeout=5).json() == {"state": "STARTING"}
    assert eventually(lambda: node.restarts == 1 and node.state == "RUNNING")
    assert node.running_connector == {"proxyName": "localhost", "proxyPort": port, "scheme": "http", "secure": False}
    assert location() == f"http://localhost:{port}/index.action"
    # HTTPS on the default port: no port in the Location, as Tomcat builds it.
    edit_connector(node.server_xml_path, node.confluence_port, "wiki.example.com", 443, "https")
    node.restart()
    assert node.restarts == 2 and node.running_connector["secure"] is True
    assert location() == "https://wiki.example.com/index.action"
    assert lab.nodes[0].restarts == 0, "only the triggered node restarts"


def test_the_base_url_saved_in_general_configuration_is_reported_by_every_node(lab: Lab) -> None:
    node2 = lab.nodes[1]
    form = httpx.get(f"{node2.url}/admin/editgeneralconfig.action", timeout=5)
    assert form.status_code == 200 and 'name="baseUrl"' in form.text and lab.base_url in form.text
    saved = httpx.post(f"{node2.url}/admin/editgeneralconfig.action", data={"baseUrl": lab.public_url + "/"},
                       timeout=5)
    assert saved.status_code == 200 and "Saved" in saved.text
    assert lab.base_url == lab.public_url  # stored without the trailing slash, as Confluence does
    assert [manifest_url(node.url) for node in lab.nodes] == [lab.public_url] * len(lab.nodes)
    refused_value = httpx.post(f"{node2.url}/admin/editgeneralconfig.action", data={"baseUrl": "wiki"}, timeout=5)
    assert refused_value.status_code == 400 and lab.base_url == lab.public_url
    lab.base_url = "https://wiki.example.com"
    assert manifest_url(lab.nodes[0].url) == "https://wiki.example.com"


# --- the wizard's steps on the Apache lab, then traffic and faults -----------------------------------


@pytest.fixture(scope="module")
def applied_lab(tmp_path_factory, apache_installed) -> Iterator[Lab]:
    """One Apache lab for the module, set up by the wizard's own steps through the Runner."""
    from wizard.balancers.apache import checks as apache_checks
    from wizard.steps import restart

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(restart, "POLL_SECONDS", 0.2)
        patch.setattr(apache_checks, "VERIFY_PATIENCE_SECONDS", 1.0)
        lab = Lab(tmp_path_factory.mktemp("applied") / "lab").start()
        try:
            for node in lab.nodes:
                node.restart_seconds = 0.3
            steps = [name for name in ("preflight", "base-url", "connector", "restart", "balancer", "verify")
                     if name in available()]
            if "base-url" in steps:
                lab.set_base_url_as_admin()
            answers = validate(load_answers_file(lab.answers_path))
            with Runner(answers, StateStore(lab.state_path), command="test") as runner:
                outcome = runner.apply(steps)
            assert outcome.exit_status == EXIT_OK, (outcome.message, [c for c in outcome.checks if not c.passed])
            yield lab
        finally:
            lab.stop()


def test_the_wizard_configures_the_lab_and_apache_carries_its_traffic(applied_lab: Lab) -> None:
    lab = applied_lab
    assert all(node.restarts == 1 for node in lab.nodes)
    assert lab.apache is not None and lab.apache.config_path.exists()
    heartbeat = through_apache(lab, "/synchrony/heartbeat")
    assert (heartbeat.status_code, heartbeat.text) == (200, "OK")
    status = through_apache(lab, "/status")
    assert status.json() == {"state": "RUNNING"} and "ROUTEID=." in status.headers.get("set-cookie", "")
    root = through_apache(lab, "/")
    assert root.headers["location"] == f"{lab.public_url}/index.action"
    echoed = ws_echo(f"ws://localhost:{lab.apache.port}{WS_PATH}", "through apache")
    assert re.fullmatch(r"node\d: through apache", echoed)
    # Sticky: with a node's route in the cookie, every request lands on that node.
    for node in lab.nodes:
        landed = {through_apache(lab, "/status", cookies={"ROUTEID": f".{node.name}"}).headers["x-node"]
                  for _ in range(4)}
        assert landed == {node.name}


def _observe(lab: Lab, fault: str) -> bool:
    """True when the lab is healthy in the respect ``fault`` breaks."""
    node = lab.nodes[0]
    if fault == "node-down":
        return not refused(node.confluence_port)
    if fault == "synchrony-down":
        return not refused(node.synchrony_port)
    if fault == "wrong-base-url":
        return all(manifest_url(n.url) != WRONG_BASE_URL for n in lab.nodes)
    if fault == "manager-exposed":
        return through_apache(lab, "/balancer-manager").status_code == 403
    if fault == "no-stickiness":
        return "ROUTEID" in through_apache(lab, "/status").headers.get("set-cookie", "")
    if fault == "no-websocket-route":
        try:
            return ws_echo(f"ws://localhost:{lab.apache.port}{WS_PATH}", "x").endswith(": x")
        except InvalidStatus:
            return False
    if fault in ("connector-not-restarted", "connector-not-edited"):
        return httpx.get(f"{node.url}/", timeout=5).headers["location"] == f"{lab.public_url}/index.action"
    raise AssertionError(fault)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_observable_and_heal_undoes_it(applied_lab: Lab, fault: str) -> None:
    lab = applied_lab
    node = lab.nodes[0]
    server_xml = node.server_xml_path.read_bytes()
    vhost = lab.apache.config_path.read_bytes()
    restarts = node.restarts
    assert _observe(lab, fault)
    try:
        lab.inject(fault)
        assert lab.faults == [fault]
        assert eventually(lambda: not _observe(lab, fault)), f"{fault} is not observable"
        if fault == "connector-not-restarted":
            assert node.server_xml_path.read_bytes() == server_xml, "the file keeps the wizard's edit"
            assert node.running_connector["proxyName"] is None and node.load_connector().proxy_name == "localhost"
        if fault == "connector-not-edited":
            assert node.load_connector().proxy_name is None and node.restarts == restarts + 1
    finally:
        lab.heal()
    assert lab.faults == []
    assert eventually(lambda: _observe(lab, fault)), f"heal did not undo {fault}"
    assert node.server_xml_path.read_bytes() == server_xml and lab.apache.config_path.read_bytes() == vhost


@pytest.mark.parametrize("fault", ("manager-exposed", "no-stickiness", "no-websocket-route"))
def test_the_balancer_checks_see_the_apache_faults(applied_lab: Lab, fault: str) -> None:
    from wizard.balancers.apache import checks as apache_checks

    answers = validate(load_answers_file(applied_lab.answers_path))

    def failed_checks() -> list[str]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(apache_checks, "VERIFY_PATIENCE_SECONDS", 0.5)
            with Runner(answers, StateStore(applied_lab.state_path), command="test") as runner:
                outcome = runner.verify(["balancer"])
        return [check.name for check in outcome.checks if not check.passed]

    applied_lab.inject(fault)
    try:
        failed = failed_checks()
    finally:
        applied_lab.heal()
    expected = {"manager-exposed": "/balancer-manager", "no-stickiness": "ROUTEID",
                "no-websocket-route": "WebSocket"}[fault]
    assert any(expected in name for name in failed), failed
    assert failed_checks() == []


def test_faults_that_cannot_be_made_say_why(applied_lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no fault"):
        applied_lab.inject("cosmic-rays")
    with pytest.raises(KeyError):
        applied_lab.inject("node-down", node="node9")
    with Lab(tmp_path / "fresh", nodes=1) as fresh:
        with pytest.raises(WizardError, match="not there yet") as caught:
            fresh.inject("no-stickiness")
        assert caught.value.hint == "Apply the balancer step first."
        with pytest.raises(WizardError, match="Connector it was installed with") as caught:
            fresh.inject("connector-not-restarted")
        assert "Apply the connector step first" in (caught.value.hint or "")
        assert fresh.faults == []


# --- the installed command ----------------------------------------------------------------------------


def run_command(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_STATE_HOME": str(cwd / "xdg")}
    done = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return done


def test_lab_headless_applies_every_step_and_stops_everything(tmp_path: Path) -> None:
    done = run_command("lab", "--headless", cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stdout[-3000:] + done.stderr
    assert "Every step is done and its checks passed." in done.stdout
    root = Path(re.search(r"lab folder\s+(\S+)", done.stdout)[1])
    port = int(re.search(r"public URL\s+http://localhost:(\d+)", done.stdout)[1])
    assert root == tmp_path / "xdg" / "confluence-lb-wizard" / "lab" / "apache"
    assert "files are kept" in done.stderr and "come back to it where you left off" in done.stderr
    # Nothing left: Apache's pid is dead, no process names the lab's main.conf, the ports refuse.
    pid = int((root / "apache" / "run" / "httpd.pid").read_text()) if (root / "apache" / "run" / "httpd.pid").exists() \
        else None
    assert pid is None or not alive(pid)
    assert processes_naming(str(root / "apache" / "main.conf")) == []
    assert refused(port)
    for node in load_answers_file(root / "answers.yaml")["nodes"]:
        assert refused(node["confluence_port"]) and refused(node["synchrony_port"])
    state = StateStore(root / "lab.state.json").load()
    assert {name: state.steps[name].status for name in available()} == {name: "verified" for name in available()}

    # Again: the same lab comes back with every step done; the final checks pass on it.
    again = run_command("lab", "--headless", cwd=tmp_path)
    assert again.returncode == EXIT_OK, again.stdout[-3000:] + again.stderr
    assert "Resumed the lab" in again.stdout and f"public URL   http://localhost:{port}" in again.stdout
    assert StateStore(root / "lab.state.json").load().serial > state.serial
    assert refused(port)

    # --fresh: a new lab in the same folder; the old state is kept beside it, the steps start over.
    fresh = run_command("lab", "--headless", "--fresh", "--only", "preflight", cwd=tmp_path)
    assert fresh.returncode == EXIT_OK, fresh.stdout[-3000:] + fresh.stderr
    assert "Resumed the lab" not in fresh.stdout and (root / "lab.state.json.old").exists()
    restarted = StateStore(root / "lab.state.json").load()
    assert restarted.steps["preflight"].status == "verified" and "connector" not in restarted.steps


def test_lab_without_a_terminal_says_so_and_starts_nothing(tmp_path: Path) -> None:
    done = run_command("lab", cwd=tmp_path)
    assert done.returncode == 2
    assert "needs a terminal" in done.stderr and "lab --headless" in done.stderr
    assert not (tmp_path / "xdg" / "confluence-lb-wizard" / "lab").exists()


# --- the ALB lab ----------------------------------------------------------------------------------------


def test_the_alb_lab_simulates_aws_with_moto_and_restores_the_environment(tmp_path: Path, monkeypatch) -> None:
    import boto3  # with moto, from the [test] extra: missing, the test fails loudly

    from wizard.balancers.alb import timing

    for name, value in (("POLL_SECONDS", 0.01), ("ACTIVE_TIMEOUT", 5.0), ("HEALTHY_TIMEOUT", 5.0)):
        monkeypatch.setattr(timing, name, value)
    monkeypatch.setenv("AWS_PROFILE", "a-real-account")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    before = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MOTO_"))}

    lab = Lab(tmp_path / "alb", balancer="alb")
    with lab:
        assert lab.public_url.startswith("https://") and lab.apache is None
        assert "simulated by moto" in lab.describe() and "nothing reaches real AWS" in lab.describe()
        assert os.environ["AWS_ENDPOINT_URL"] == lab.aws.endpoint_url
        assert "AWS_PROFILE" not in os.environ, "a real profile must not be used inside the lab"
        raw = load_answers_file(lab.answers_path)
        assert schema_errors(raw) == [] and schema_errors(merge(yaml.safe_load(answers_template("alb")), raw)) == []
        answers = validate(raw)
        alb = answers.balancer.alb
        assert alb is not None and len(alb.subnet_ids) == 2 and alb.certificate_arn
        assert all(node.instance_id for node in answers.nodes)
        ec2 = boto3.client("ec2", region_name=alb.region, endpoint_url=lab.aws.endpoint_url)
        assert ec2.describe_vpcs(VpcIds=[alb.vpc_id])["Vpcs"]
        if importlib.util.find_spec("wizard.balancers.alb.step") is not None:
            importlib.import_module("wizard.balancers.alb.step")
            for node in lab.nodes:
                node.restart_seconds = 0.3
            with Runner(answers, StateStore(lab.state_path), command="test") as runner:
                outcome = runner.apply(["preflight", "balancer"])
            assert outcome.exit_status == EXIT_OK, outcome.message
            elbv2 = boto3.client("elbv2", region_name=alb.region, endpoint_url=lab.aws.endpoint_url)
            assert [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]
                    if b["LoadBalancerName"] == "confluence-lab"]
    assert {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MOTO_"))} == before
    assert lab_threads(lab) == []
    assert yaml.safe_load(Path(tmp_path / "alb" / "answers.yaml").read_text())["balancer"]["kind"] == "alb"
