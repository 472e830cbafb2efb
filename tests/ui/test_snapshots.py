"""SVG snapshots of the main screens at 100x30, with fixed content (paths, lists, no clocks).

Update after an intended change with ``pytest tests/ui/test_snapshots.py --snapshot-update``
and review the SVGs in tests/ui/__snapshots__/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from uihelpers import wait_for

from screens.app import create_app
from screens.dialogs.confirm_plan import ConfirmPlanScreen
from screens.dialogs.error import ErrorScreen
from screens.dialogs.host_key import HostKeyScreen
from screens.steps.verify_results import VerifyResultsScreen
from wizard.balancers.alb.choices import AwsLists, Item
from wizard.engine.model import Change, Check, Plan
from wizard.errors import HostKeyError, WizardError

SIZE = (100, 30)
#: A fixed folder, so no temporary path appears in a snapshot.
ROOT = Path("/tmp/clbw-ui-snapshots")

DIFF = """--- /opt/atlassian/confluence/conf/server.xml
+++ /opt/atlassian/confluence/conf/server.xml
@@ -64,5 +64,6 @@
     <Connector port="8090" connectionTimeout="20000" redirectPort="8443"
                maxThreads="48" maxPostSize="16777216" minSpareThreads="10"
-               enableLookups="false" acceptCount="10" URIEncoding="UTF-8" protocol="HTTP/1.1"/>
+               enableLookups="false" acceptCount="10" URIEncoding="UTF-8" protocol="HTTP/1.1"
+               proxyName="wiki.example.com" proxyPort="443" scheme="https" secure="true"/>
"""


@pytest.fixture(autouse=True)
def fixed_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    monkeypatch.setenv("XDG_STATE_HOME", str(ROOT / "xdg"))
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


def answers(**balancer) -> dict:
    return {"name": "wiki-prod", "public_url": "https://wiki.example.com",
            "nodes": [{"name": "node1", "address": "10.0.1.11", "install_dir": "/opt/atlassian/confluence",
                       "access": {"transport": "ssh", "host": "node1.internal", "user": "confluence"}},
                      {"name": "node2", "address": "10.0.1.12", "install_dir": "/opt/atlassian/confluence",
                       "access": {"transport": "ssh", "host": "node2.internal", "user": "confluence"}}],
            **({"balancer": balancer} if balancer else {})}


def complete() -> Path:
    path = ROOT / "answers.yaml"
    path.write_text(yaml.safe_dump(answers(kind="apache", apache={
        "access": {"transport": "ssh", "host": "lb1.internal", "user": "root"},
        "config_path": "/etc/apache2/sites-available/confluence-lb.conf",
        "tls": {"certificate_file": "/etc/ssl/wiki.crt", "key_file": "/etc/ssl/wiki.key"}})))
    return path


def partial(**balancer) -> Path:
    path = ROOT / "partial.yaml"
    path.write_text(yaml.safe_dump(answers(**balancer)))
    return path


def no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nodes of the snapshots do not exist: what is read from them is fixed."""
    monkeypatch.setattr("screens.answers.inventory.read_node", lambda node, synchrony=None, prompts=None: (
        True, "server.xml  /opt/atlassian/confluence/conf/server.xml\nConfluence  port 8090, context path /"))


def test_welcome(snap_compare) -> None:
    async def read(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.screen.ready)  # the saved setups are looked for

    assert snap_compare(create_app(), terminal_size=SIZE, run_before=read)


def test_inventory(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    no_reading(monkeypatch)

    async def read(pilot) -> None:
        await wait_for(pilot, lambda: all(ok for ok, _ in pilot.app.screen.readings.values()))

    assert snap_compare(create_app(answers_file=partial()), terminal_size=SIZE, run_before=read)


def test_apache_form(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    no_reading(monkeypatch)
    assert snap_compare(create_app(answers_file=partial(kind="apache")), terminal_size=SIZE,
                        press=["ctrl+n", "enter"])


def test_alb_form_with_lists_read_from_aws(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    no_reading(monkeypatch)
    lists = AwsLists(
        "eu-west-1",
        vpcs=(Item("vpc-0a1b2c3d4e5f60718", "vpc-0a1b2c3d4e5f60718  (prod, 10.0.0.0/16)", "vpc-0a1b2c3d4e5f60718"),),
        subnets=(Item("subnet-0aa", "subnet-0aa  (eu-west-1a, 10.0.1.0/24)", "vpc-0a1b2c3d4e5f60718"),
                 Item("subnet-0bb", "subnet-0bb  (eu-west-1b, 10.0.2.0/24)", "vpc-0a1b2c3d4e5f60718")),
        instances=(Item("i-0123456789abcdef0", "i-0123456789abcdef0  (wiki-1, 10.0.1.11, running)",
                        "vpc-0a1b2c3d4e5f60718", "10.0.1.11"),
                   Item("i-0fedcba9876543210", "i-0fedcba9876543210  (wiki-2, 10.0.1.12, running)",
                        "vpc-0a1b2c3d4e5f60718", "10.0.1.12")),
        certificates=(Item("arn:aws:acm:eu-west-1:123456789012:certificate/abc", "wiki.example.com  (abc)"),),
        security_groups=(Item("sg-0nodes", "sg-0nodes  (confluence-nodes)", "vpc-0a1b2c3d4e5f60718"),))
    monkeypatch.setattr("screens.answers.alb_form.read_lists", lambda region, profile=None: lists)

    async def read(pilot) -> None:
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "lists", None) is not None)
        pilot.app.screen.query_one("#alb-form").scroll_to(y=12, animate=False)  # the lists
        await pilot.pause()

    assert snap_compare(create_app(answers_file=partial(kind="alb", alb={"region": "eu-west-1"})),
                        terminal_size=SIZE, run_before=read)


def test_setup_screen(snap_compare) -> None:
    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE)


def test_confirm_plan_with_per_node_diffs(snap_compare) -> None:
    plan = Plan("connector", "set proxyName, proxyPort, scheme and secure on 2 node(s)",
                [Change("node1", "file", "edit the Connector on port 8090 in server.xml", DIFF),
                 Change("node2", "file", "edit the Connector on port 8090 in server.xml", DIFF)])

    async def show(pilot) -> None:
        pilot.app.push_screen(ConfirmPlanScreen(plan))
        await pilot.pause()

    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE, run_before=show)


def test_error_dialog(snap_compare) -> None:
    error = WizardError("node2: /opt/atlassian/confluence/conf/server.xml cannot be read: permission denied.",
                        "Run the wizard as the user that owns the install, or set `sudo: true` in the node's access.")

    async def show(pilot) -> None:
        pilot.app.push_screen(ErrorScreen(error, title="Preflight checks: failed"))
        await pilot.pause()

    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE, run_before=show)


def test_unknown_host_key(snap_compare) -> None:
    error = HostKeyError("node1.internal (for node1) is not in ~/.ssh/known_hosts.", None, host="node1.internal",
                         port=22, key_type="ssh-ed25519",
                         fingerprint="SHA256:K9P3IIsG51Jj0WZSB0at5wyiOWbAmZyn5SRJAL0vmEo")

    async def show(pilot) -> None:
        pilot.app.push_screen(HostKeyScreen(error))
        await pilot.pause()

    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE, run_before=show)


def test_verify_results(snap_compare) -> None:
    checks = [Check("node RUNNING", "node1", True, "/status state RUNNING"),
              Check("node RUNNING", "node2", True, "/status state RUNNING"),
              Check("Synchrony heartbeat through the balancer", "balancer", False, "HTTP 502 from /synchrony/heartbeat",
                    "Open the Synchrony port (8091) from the balancer to node2, then verify again."),
              Check("sticky sessions", "balancer", True, "ROUTEID cookie set, 10 of 10 requests on one node")]

    async def show(pilot) -> None:
        pilot.app.push_screen(VerifyResultsScreen(checks, "1 of 4 check(s) failed."))
        await pilot.pause()

    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE, run_before=show)


def test_summary(snap_compare) -> None:
    assert snap_compare(create_app(answers_file=complete()), terminal_size=SIZE, press=["s"])
