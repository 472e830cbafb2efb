"""Synchrony's stickiness can never move the Confluence session (REAL Apache, simulated nodes).

The regression of issue 14's point 1: with one ROUTEID cookie for every balancer, a
``/synchrony/heartbeat`` whose node's Synchrony was down (its Confluence up) failed over to
node2 and re-set ROUTEID to node2: the user's next Confluence request left their session.
The vhost now gives the Synchrony balancers their own cookie, SYNCROUTEID, scoped to
/synchrony; verify's check catches a vhost where Synchrony re-sets ROUTEID.
"""
from __future__ import annotations

import re

import pytest

from wizard.answers import validate
from wizard.balancers.apache.checks import ApacheChecks
from wizard.engine.step import Context
from wizard.errors import EXIT_OK
from wizard.transport.pool import HostPool

from test_apache_drain import balancer_tests

pytestmark = pytest.mark.integration
make_lab = balancer_tests.make_lab
_quick_settle = balancer_tests._quick_settle  # noqa: F401 (autouse)
CHECK = "Synchrony's stickiness cannot move the Confluence session"


@pytest.fixture
def lab(tmp_path, apache_factory, lab_node_factory):
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    assert lab.apply().exit_status == EXIT_OK
    return lab


def synchrony_cookie_check(lab):
    answers = validate(lab.raw)
    checks = ApacheChecks(Context(answers=answers, hosts=HostPool(answers))).run()
    return next(check for check in checks if check.name == CHECK)


def test_a_synchrony_failover_keeps_the_user_s_confluence_session_on_its_node(lab) -> None:
    node1 = lab.nodes[0]
    with lab.client() as client:
        client.cookies.set("ROUTEID", ".node1", path="/")
        assert client.get(lab.base + "/display/X").headers["x-node"] == "node1"
        node1.stop_synchrony()  # refused: its Confluence still runs
        beat = client.get(lab.base + "/synchrony/heartbeat")
        assert beat.status_code == 200 and beat.headers["x-node"] == "node2"
        cookies = beat.headers.get_list("set-cookie")
        assert not any(c.startswith("ROUTEID=") for c in cookies), cookies
        assert any(re.match(r"SYNCROUTEID=\.node2; path=/synchrony;", c) for c in cookies), cookies
        assert client.cookies.get("ROUTEID") == ".node1"
        # Their next Confluence request stays on node1, and Synchrony sticks to node2.
        assert {client.get(lab.base + "/display/X").headers["x-node"] for _ in range(5)} == {"node1"}
        assert {client.get(lab.base + "/synchrony/heartbeat").headers["x-node"] for _ in range(5)} == {"node2"}
    check = synchrony_cookie_check(lab)
    assert check.passed, check


def test_each_balancer_sets_only_its_own_cookie(lab) -> None:
    with lab.client() as client:
        page = client.get(lab.base + "/status").headers.get_list("set-cookie")
        beat = client.get(lab.base + "/synchrony/heartbeat").headers.get_list("set-cookie")
    assert len(page) == 1 and page[0].startswith("ROUTEID=.node") and "path=/;" in page[0]
    assert len(beat) == 1 and beat[0].startswith("SYNCROUTEID=.node") and "path=/synchrony;" in beat[0]
    text = lab.apache.config_path.read_text()
    assert text.count("retry=5") == 3 * len(lab.nodes)


def test_verify_fails_when_synchrony_re_sets_the_confluence_cookie(lab) -> None:
    """The vhost of before this change: one ROUTEID cookie set by any balancer."""
    text = lab.apache.config_path.read_text()
    old = re.sub(r'    Header add Set-Cookie "ROUTEID=.*\n    Header add Set-Cookie "SYNCROUTEID=.*\n',
                 '    Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/; HttpOnly" '
                 'env=BALANCER_ROUTE_CHANGED\n', text).replace("stickysession=SYNCROUTEID", "stickysession=ROUTEID")
    assert "stickysession=SYNCROUTEID" not in old and 'Set-Cookie "SYNCROUTEID' not in old
    lab.apache.config_path.write_text(old)
    assert lab.apache.configtest().returncode == 0
    reloads = lab.reloads()
    balancer_tests.subprocess.run(lab.apache.reload_command, shell=True, check=True)
    assert balancer_tests.eventually(lambda: lab.reloads() > reloads)
    check = synchrony_cookie_check(lab)
    assert not check.passed and "re-sets ROUTEID=" in check.seen and "SYNCROUTEID" in check.fix
