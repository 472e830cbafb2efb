"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# --- Real OpenSSH servers (tests/integration/sshd.py) ---------------------------------------


def _load_sshd_helpers():
    """tests/ is not a package, so the helper is loaded by path under one fixed name."""
    name = "clbw_tests_sshd"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "integration" / "sshd.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def ssh_helpers():
    """The tests/integration/sshd.py module (Sshd, SshTestbed, make_key, fingerprint...)."""
    return _load_sshd_helpers()


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


# --- Simulated Confluence nodes (tests/integration/fake_confluence.py) ------------------------


def _load_fake_confluence():
    """Loaded by path under one fixed name, like the sshd helpers (tests/ is not a package)."""
    name = "clbw_tests_fake_confluence"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parent / "integration" / "fake_confluence.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def fake_confluence_factory() -> Iterator[Callable]:
    """Start simulated Confluence nodes: ``start(trigger=PATH, restart_delay=0.3,
    never_comes_back=False, down=False, ...)`` returns a running ``FakeConfluence``
    (``.port``, ``.restarts``, ``.restart_log``, ``.stop()``); all stop when the test ends."""
    module = _load_fake_confluence()
    started = []

    def start(trigger=None, **kwargs):
        fake = module.FakeConfluence(trigger, **kwargs)
        started.append(fake)
        return fake.start()

    yield start
    for fake in started:
        fake.stop()
