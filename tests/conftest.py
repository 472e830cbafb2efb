"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wizard.lab.node import LabNode


def _load_test_helper(name: str, filename: str):
    """Load tests/integration/<filename> by path under one fixed name (tests/ is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "integration" / filename)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --- SSH clients and the questions SSH asks ------------------------------------------------


class ScriptedPrompts:
    """SSH's questions (``wizard.transport.prompts.Prompts``) answered from a script.

    ``passphrases`` are handed out in turn (None when they run out), every unknown
    host key gets ``trust``; each question is kept in ``asked`` (which tests may share).
    """

    can_ask = True

    def __init__(self, passphrases: tuple[str, ...] = (), *, trust: bool = False,
                 asked: list | None = None) -> None:
        self._passphrases = iter(passphrases)
        self.trust = trust
        self.asked: list = [] if asked is None else asked

    def passphrase(self, prompt: str) -> str | None:
        self.asked.append(prompt)
        return next(self._passphrases, None)

    def trust_host_key(self, error) -> bool:
        self.asked.append(error)
        return self.trust


@pytest.fixture
def scripted_prompts() -> type[ScriptedPrompts]:
    """``ScriptedPrompts``: what a test passes as a face's answers to SSH's questions."""
    return ScriptedPrompts


@pytest.fixture
def isolated_ssh_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No agent, no ~/.ssh of the machine, no ssh config unless a test writes one.

    Nobody answers SSH's questions unless the test passes its own prompts.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("CLBW_SSH_CONFIG", str(tmp_path / "no-ssh-config"))


# --- Real OpenSSH servers (tests/integration/sshd.py) ---------------------------------------


@pytest.fixture(scope="session")
def ssh_helpers():
    """The tests/integration/sshd.py module (Sshd, SshTestbed, make_key, fingerprint...)."""
    return _load_test_helper("clbw_tests_sshd", "sshd.py")


@pytest.fixture(scope="session")
def ssh_testbed(ssh_helpers) -> Iterator:
    """Client key, test users and sshd instances for the session; all stopped at the end."""
    bed = ssh_helpers.SshTestbed.create()
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture(scope="session")
def sshd(ssh_testbed):
    """One real sshd on 127.0.0.1 for the whole session."""
    server = ssh_testbed.start_sshd()
    yield server
    ssh_testbed.stop_server(server)


@pytest.fixture
def sshd_factory(ssh_testbed) -> Iterator[Callable]:
    """Start extra sshd instances (a bastion, one to kill); they stop when the test ends."""
    started = []

    def start(**kwargs):
        server = ssh_testbed.start_sshd(**kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        ssh_testbed.stop_server(server)


# --- Simulated Confluence nodes (the lab's, wizard/lab/node.py) -------------------------------


@pytest.fixture
def lab_node_factory(tmp_path_factory) -> Iterator[Callable[..., LabNode]]:
    """Start simulated nodes, the lab's own (Confluence + Synchrony, WebSocket echoes, restarts by
    the trigger file): ``start(name, install_dir=None, **knobs)`` returns a running ``LabNode``
    that writes nothing in ``install_dir`` (the test writes server.xml there; the restart trigger
    is ``<install_dir>/restart-requested``, what ``node.restart_command`` touches). Knobs: ``LabNode``'s
    (``restart_seconds``, default 0.3 here; ``never_comes_back``, ``echo_pages``, ``context_path``...);
    faults on a running node: ``stop_synchrony()``, ``hold_starting()``/``come_back()``; what it
    served: ``hits`` and ``unavailable_hits``. All stop when the test ends."""
    started: list[LabNode] = []

    def start(name: str, install_dir: Path | None = None, **knobs: Any) -> LabNode:
        folder = install_dir if install_dir is not None else tmp_path_factory.mktemp(f"{name}-install")
        node = LabNode(name, folder, managed_files=False, **{"restart_seconds": 0.3, **knobs})
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.stop()


# --- moto's AWS server (tests/integration/moto_server.py) ----------------------------------


@pytest.fixture(scope="session")
def moto_helpers():
    """The tests/integration/moto_server.py module (MotoServer, AwsLab, build_lab, REGION...)."""
    return _load_test_helper("clbw_tests_moto_server", "moto_server.py")


@pytest.fixture(scope="session")
def moto_server(moto_helpers) -> Iterator:
    """One moto server on 127.0.0.1 for the whole session."""
    server = moto_helpers.MotoServer()
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto_server, moto_helpers, monkeypatch, tmp_path) -> str:
    """An empty moto account for this test: test credentials, AWS_ENDPOINT_URL pointing at moto,
    no profile or config file of the machine's own. Returns the endpoint URL."""
    moto_server.reset()
    for name in moto_helpers.UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_helpers.ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return moto_server.url


@pytest.fixture
def moto_nodes_answer_synchrony(monkeypatch) -> None:
    """The nodes of the moto tests are moto's instances: addresses that exist only inside moto,
    where no Synchrony can run (nor on the standalone Synchrony machines they stand for). The
    refusal of a node (direct) or machine (standalone) whose Synchrony does not answer is tested
    over real simulated nodes (tests/integration/test_synchrony_topologies.py); with this
    fixture each is taken to answer, so those tests stay about what is made in AWS."""
    from wizard.engine.model import Check
    from wizard.steps import balancer

    monkeypatch.setattr(balancer, "synchrony_heartbeats",
                        lambda ctx: [Check("Synchrony heartbeat on the node", node.name, True, "a moto instance")
                                     for node in ctx.answers.nodes])


@pytest.fixture
def aws_lab(aws_env, moto_helpers):
    """A VPC with two subnets in two zones, the nodes' security group, two running instances and an
    issued certificate for wiki.example.com, in moto (``AwsLab``)."""
    return moto_helpers.build_lab()


# --- Real Apache httpd (tests/integration/apache.py) ----------------------------------------


@pytest.fixture(scope="session")
def apache_helpers():
    """The tests/integration/apache.py module (ApacheServer, ensure_apache, APACHE2...)."""
    return _load_test_helper("clbw_tests_apache", "apache.py")


@pytest.fixture
def apache_factory(apache_helpers) -> Iterator[Callable]:
    """Create self-contained Apache servers: ``create(start=True, extra_main="")`` returns an
    ``ApacheServer`` (``.port``, ``.extra_port``, ``.config_path``, ``.configtest_command``,
    ``.reload_command``...); every one is stopped and removed when the test ends."""
    created = []

    def create(start: bool = True, **kwargs):
        server = apache_helpers.ApacheServer.create(**kwargs)
        created.append(server)
        return server.start() if start else server

    yield create
    for server in created:
        server.remove()
