"""What the headless commands print: every plan, event and check line with its secrets masked,
while the plan that gets executed keeps its real values."""

from __future__ import annotations

import copy
import io

from wizard.engine.events import PlanReady, ProgressReported, StepApplied, StepFailed, StepRolledBack
from wizard.engine.model import Change, Check, Plan, ShownDetails
from wizard.engine.redact import MASK
from wizard.report import EventPrinter, format_checks, format_plan

SECRETS = ("rel-T0ken-1", "ssh-Pw-2", "ldap-Pw-3", "basic-4")


def a_plan() -> Plan:
    return Plan("balancer", "write the vhost, then reload with RELOAD_TOKEN=rel-T0ken-1", [
        Change(target="balancer", kind="file", summary="/etc/apache2/sites-available/wiki.conf: the vhost",
               diff=("--- a/wiki.conf\n+++ b/wiki.conf\n@@ -1,3 +1,3 @@\n"
                     "-    AuthLDAPBindPassword ldap-Pw-3\n"
                     '+    RequestHeader set Authorization "Basic basic-4"\n')),
        Change(target="node1", kind="command", summary="run `sshpass -p ssh-Pw-2 ssh node1 systemctl restart confluence`",
               details=ShownDetails({"command": "sshpass -p ssh-Pw-2 ssh node1 systemctl restart confluence"})),
    ])


def test_a_plan_is_shown_masked_and_left_as_it_is() -> None:
    plan = a_plan()
    before = copy.deepcopy(plan)
    shown = format_plan(plan)
    for secret in SECRETS:
        assert secret not in shown, shown
    assert "AuthLDAPBindPassword " + MASK in shown and f"sshpass -p {MASK} ssh node1" in shown
    assert "RELOAD_TOKEN=" + MASK in shown
    # Only what is shown is masked: the plan still holds what apply runs.
    assert plan == before and "ssh-Pw-2" in plan.changes[1].details.to_dict()["command"]


def test_events_are_printed_masked() -> None:
    out = io.StringIO()
    printer = EventPrinter(out)
    printer(ProgressReported("restart", "node1", "running sshpass -p ssh-Pw-2 ssh node1 ..."))
    printer(StepApplied("balancer", "reloaded with RELOAD_TOKEN=rel-T0ken-1"))
    printer(StepFailed("balancer", "`curl -u admin:basic-4 http://lb/` failed",
                       hint="check SetEnv DB_PASSWORD ldap-Pw-3 in the vhost", undone=("ran MYSQL_PWD=ssh-Pw-2 mysql",)))
    printer(StepRolledBack("balancer", ("reload with RELOAD_TOKEN=rel-T0ken-1",)))
    printer(PlanReady("balancer", a_plan()))
    text = out.getvalue()
    for secret in SECRETS:
        assert secret not in text, text
    assert text.count(MASK) >= 8


def test_checks_are_printed_masked() -> None:
    checks = [Check("vhost read", "balancer", False, "AuthLDAPBindPassword ldap-Pw-3",
                    fix="RequestHeader set Authorization \"Basic basic-4\"")]
    shown = format_checks(checks)
    assert "ldap-Pw-3" not in shown and "basic-4" not in shown
    assert "FAIL" in shown and "vhost read" in shown


def test_the_prompt_face_prints_masked() -> None:
    from screens.plain.answers import Asker

    out = io.StringIO()
    Asker(out=out).say("  - [node1] Run the restart\n      by hand: sshpass -p ssh-Pw-2 ssh node1 systemctl restart x")
    assert "ssh-Pw-2" not in out.getvalue() and f"sshpass -p {MASK}" in out.getvalue()
