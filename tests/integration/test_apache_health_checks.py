"""mod_proxy_hcheck in the vhost (REAL Apache 2.4, the lab's simulated nodes): a node answering 503
``{"state":"STARTING"}`` gets no user, sticky or not, and one whose Synchrony is down gets no
Synchrony request; both are used again once they answer."""
from __future__ import annotations

import pytest

from wizard.errors import EXIT_OK

from test_apache_drain import balancer_tests

pytestmark = pytest.mark.integration
make_lab = balancer_tests.make_lab
eventually = balancer_tests.eventually
_quick_settle = balancer_tests._quick_settle  # noqa: F401 (autouse)
#: hcinterval=5 (one failed check takes a member out): a little more than one interval.
WITHIN = 12.0


@pytest.fixture
def lab(tmp_path, apache_factory, lab_node_factory):
    lab = make_lab(tmp_path, apache_factory, lab_node_factory)
    assert lab.apply().exit_status == EXIT_OK
    return lab


def nodes_seen(lab, path: str, route: str | None, cookie: str = "ROUTEID", tries: int = 6) -> set[str]:
    seen = set()
    for _ in range(tries):
        with lab.client() as client:
            if route:
                client.cookies.set(cookie, f".{route}")
            answer = client.get(lab.base + path)
            seen.add(answer.headers.get("x-node") if answer.status_code == 200 else f"HTTP {answer.status_code}")
    return seen


def test_the_members_are_health_checked_on_status_running_and_the_heartbeat(lab) -> None:
    text = lab.apache.config_path.read_text()
    assert "ProxyHCExpr clbw_running" in text and "mod_proxy_hcheck.so" in text
    assert text.count("hcuri=/status") == 2 and text.count("hcuri=/synchrony/heartbeat") == 4
    assert eventually(lambda: lab.nodes[0].hits.get("confluence /status", 0) >= 1, WITHIN)  # Apache checks


def test_a_starting_node_gets_no_traffic_sticky_or_not_and_comes_back_when_running(lab) -> None:
    node1 = lab.nodes[0]
    # Its /status answers 503 {"state":"STARTING"} and its pages 503, its ports open (no restart, so
    # no refused connection takes it out: only the health check can); its Synchrony is not up yet.
    node1.hold_starting()
    # Until the next check (at most 5 s) its users still reach it; from then on, none.
    assert eventually(lambda: nodes_seen(lab, "/display/X", "node1") == {"node2"}, WITHIN)
    before = node1.unavailable_hits["confluence /display/X"]
    assert nodes_seen(lab, "/display/X", None, tries=10) == {"node2"}
    assert nodes_seen(lab, "/display/X", "node1", tries=10) == {"node2"}
    assert nodes_seen(lab, "/synchrony/heartbeat", "node1", "SYNCROUTEID") == {"node2"}
    assert node1.unavailable_hits["confluence /display/X"] == before
    node1.come_back()  # RUNNING again
    assert eventually(lambda: nodes_seen(lab, "/display/X", "node1") == {"node1"}, WITHIN)


def test_a_node_whose_synchrony_is_down_keeps_its_confluence_users(lab) -> None:
    node1 = lab.nodes[0]
    node1.synchrony_healthy = False  # its heartbeat answers 503, its port open; Confluence runs
    assert eventually(lambda: nodes_seen(lab, "/synchrony/heartbeat", "node1", "SYNCROUTEID") == {"node2"}, WITHIN)
    assert nodes_seen(lab, "/display/X", "node1") == {"node1"}
