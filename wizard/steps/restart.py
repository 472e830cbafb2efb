"""Restart: make the Connector change take effect, one node at a time.

Rolling: each node is restarted with its restart command, seen to go down and
waited for until ``/status`` answers RUNNING before the next one starts, so the
cluster keeps serving (Atlassian's clustering documentation: start the nodes one
at a time). Many restart commands return
before the node has even stopped (init scripts, service managers, a backgrounded
script): a node still answering RUNNING right after its command is the old
process, not the restarted one. The roll stops at the first node that does not
go down or does not come back. Manual: the admin restarts the nodes; the wizard
says exactly what to run and then waits for each to answer RUNNING.
A restart cannot be undone; the state records which nodes were restarted.
"""

from __future__ import annotations

import posixpath
import shlex
import threading
import time
from dataclasses import dataclass
from typing import Any

from wizard.answers_model import Answers, Node
from wizard.confluence.nodes import NodeFacts, read_node_facts
from wizard.confluence.probes import confluence_state, http_get
from wizard.engine.model import Change, Check, Plan
from wizard.engine.step import Context, Journal, Step
from wizard.errors import StepFailedError, WizardError
from wizard.transport.hosts import Host

POLL_SECONDS = 2.0
#: Watching for a manual restart polls faster: a quick restart must not slip between two looks.
MANUAL_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class RestartFacts:
    commands: dict[str, str]  # node -> the command that restarts it
    command_sources: dict[str, str]
    status_urls: dict[str, str]
    #: When each node was last restarted by this step, and when the connector step last
    #: wrote (or restored) a server.xml: a node restarted since then needs no restart.
    restarted_at: dict[str, str]
    last_connector_change: str | None

    def needs_restart(self, node: str) -> bool:
        restarted = self.restarted_at.get(node)
        if restarted is None:
            return True
        # Times are to the microsecond; on a tie the order is unknown, so restart again
        # rather than take a server.xml change as in effect when it may not be.
        return self.last_connector_change is not None and restarted <= self.last_connector_change


def detect_restart_command(host: Host, node: Node) -> tuple[str, str]:
    """The node's restart command and where it came from; WizardError when there is none."""
    if node.restart_command:
        return node.restart_command, "the answers (nodes[].restart_command)"
    if host.run("systemctl cat confluence.service >/dev/null 2>&1", timeout=20).ok:
        return "systemctl restart confluence", "the systemd unit confluence.service"
    if host.run("test -x /etc/init.d/confluence", timeout=20).ok:
        return "/etc/init.d/confluence restart", "the init script /etc/init.d/confluence"
    bin_dir = posixpath.join(node.install_dir, "bin")
    stop, start = posixpath.join(bin_dir, "stop-confluence.sh"), posixpath.join(bin_dir, "start-confluence.sh")
    if host.exists(stop) and host.exists(start):
        return f"{shlex.quote(stop)}; {shlex.quote(start)}", f"the install's scripts in {bin_dir}"
    raise WizardError(f"{node.name}: no way to restart Confluence was found (no systemd unit or init script "
                      f"named confluence, no {stop}).",
                      f"Set nodes[].restart_command for {node.name}, or use `restart: manual`.")


def last_change(record: Any, kind: str = "file") -> str | None:
    """When a step last made a change of ``kind`` or undid one: server.xml edits and the
    base URL written into the database both take effect only when Confluence restarts.

    An undo is recorded just before its change is made and the change just after: an
    apply killed in between made the change without recording it. So the time an undo
    was recorded counts as a possible change too (at worst a node is restarted once more).
    """
    if record is None:
        return None
    times = [c.get("at") for c in record.changes if c.get("kind") == kind and c.get("at")]
    undone = [u.get("undone") for u in record.undo if u.get("undone")]
    recorded = [u.get("recorded") for u in record.undo if u.get("recorded")]
    return max(times + undone + recorded, default=None)


def last_file_change(record: Any) -> str | None:
    return last_change(record, "file")


def restart_times(record: Any) -> dict[str, str]:
    """Each node's latest restart by this step (a roll that stopped half-way counts for its nodes)."""
    latest: dict[str, str] = {}
    for change in record.changes if record is not None else []:
        if change.get("kind") == "restart" and change.get("at"):
            latest[change["target"]] = max(change["at"], latest.get(change["target"], ""))
    return latest


class RestartStep(Step[RestartFacts]):
    name = "restart"
    title = "Restart the nodes one at a time"
    explanation = ("A server.xml change takes effect only after Confluence restarts. Nodes restart one "
                   "at a time, each waited for until /status answers RUNNING, so users keep working.")

    def inspect(self, ctx: Context) -> RestartFacts:
        def read(node: Node) -> tuple[str, str, str, NodeFacts]:
            host = ctx.hosts.node(node)
            facts = read_node_facts(host, node, ctx.answers)
            if ctx.answers.restart == "manual":
                command, source = _manual_hint(host, node)
            else:
                command, source = detect_restart_command(host, node)
            return command, source, facts.status_url(node.address), facts

        results = ctx.for_each_node(read)
        names = [node.name for node in ctx.answers.nodes]
        return RestartFacts(
            commands={n: r[0] for n, r in zip(names, results)},
            command_sources={n: r[1] for n, r in zip(names, results)},
            status_urls={n: r[2] for n, r in zip(names, results)},
            restarted_at=restart_times(ctx.previous.get("restart")),
            last_connector_change=max(
                (t for t in (last_file_change(ctx.previous.get("connector")),
                             last_change(ctx.previous.get("base-url"), "database")) if t), default=None))

    def plan(self, answers: Answers, facts: RestartFacts) -> Plan:
        pending = [node for node in answers.nodes if facts.needs_restart(node.name)]
        if not pending:
            return Plan(self.name, "every node was restarted after the last Connector change",
                        noop_reason="Every node was restarted after the last Connector change ("
                                    + ", ".join(f"{n}: {t}" for n, t in sorted(facts.restarted_at.items()))
                                    + "); nothing new needs a restart.")
        manual = answers.restart == "manual"
        changes = [Change(target=node.name, kind="manual" if manual else "command",
                          summary=(f"you restart it ({facts.commands[node.name]}), then the wizard waits for "
                                   f"{facts.status_urls[node.name]} to answer RUNNING") if manual else
                                  (f"run `{facts.commands[node.name]}` ({facts.command_sources[node.name]}), "
                                   f"then wait for {facts.status_urls[node.name]} to answer RUNNING"),
                          details={"command": facts.commands[node.name], "status_url": facts.status_urls[node.name],
                                   "order": index + 1})
                   for index, node in enumerate(pending)]
        how = "you restart each node" if manual else "restart each node"
        skipped = [n.name for n in answers.nodes if n not in pending]
        note = f" ({', '.join(skipped)} already restarted since the last Connector change)" if skipped else ""
        return Plan(self.name, f"{how}, one at a time, in this order: "
                    + ", ".join(n.name for n in pending) + note, changes)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        restarted: list[str] = []
        total = len(plan.changes)
        for index, change in enumerate(plan.changes):
            node = ctx.answers.node(change.target)
            ctx.check_cancelled()
            if change.kind == "command":
                ctx.progress(self.name, node.name, f"restarting ({index + 1}/{total})", index / total)
                host = ctx.hosts.node(node)
                # Watched while the command runs: a command that waits until the node is
                # back has taken it down and up before it returns.
                with _DownWatcher(change.details["status_url"]) as watcher:
                    host.run_checked(change.details["command"], timeout=float(ctx.answers.restart_timeout),
                                     what=f"Restarting Confluence on {node.name}",
                                     hint=_stopped_hint(restarted, node))
                if not watcher.seen_down:
                    ctx.progress(self.name, node.name, "waiting for it to go down")
                    self._wait_down(ctx, node, change.details["status_url"], restarted,
                                    command=change.details["command"])
            else:
                ctx.progress(self.name, node.name, f"waiting for you to restart it: {change.details['command']}",
                             index / total)
                # A node that was never restarted answers RUNNING at once; only a node seen
                # leaving RUNNING and coming back has really been restarted by the admin.
                self._wait_down(ctx, node, change.details["status_url"], restarted)
            self._wait_running(ctx, node, change.details["status_url"], restarted)
            # Recorded once RUNNING, so a roll stopped by a node that did not come back
            # restarts that node again next time, and not the ones before it.
            journal.changed(target=node.name, kind="restart", summary=f"restarted with {change.details['command']}",
                            command=change.details["command"])
            restarted.append(node.name)
            ctx.progress(self.name, node.name, "RUNNING", (index + 1) / total)
        return f"restarted {', '.join(restarted)}, one at a time; each answered RUNNING"

    def _wait_down(self, ctx: Context, node: Node, url: str, restarted: list[str],
                   command: str | None = None) -> None:
        """Until ``url`` stops answering RUNNING (refused, STARTING, an error page...).

        ``command`` is the restart command that just returned, or None when the admin
        restarts the node by hand.
        """
        deadline = time.monotonic() + ctx.answers.restart_timeout
        while confluence_state(http_get(url, timeout=5.0)) == "RUNNING":
            ctx.check_cancelled()
            if time.monotonic() >= deadline:
                so_far = (f"Restarted so far: {', '.join(restarted)}." if restarted
                          else "No node was restarted.")
                if command is None:
                    raise StepFailedError(
                        f"{node.name} kept answering RUNNING for {ctx.answers.restart_timeout} s: it was not "
                        f"restarted, so its Connector change is not in effect yet. {so_far}",
                        f"Restart Confluence on {node.name}, then run the step again.")
                raise StepFailedError(
                    f"{node.name} kept answering RUNNING for {ctx.answers.restart_timeout} s after `{command}` "
                    "returned: the command does not seem to restart Confluence (or the restart was too quick "
                    f"to be seen), so its Connector change may not be in effect. The roll stopped here. {so_far}",
                    f"Run the restart command by hand on {node.name} and check that Confluence stops and "
                    "starts again (or fix nodes[].restart_command); then run the step again.")
            time.sleep(MANUAL_POLL_SECONDS)

    def _wait_running(self, ctx: Context, node: Node, url: str, restarted: list[str]) -> None:
        deadline = time.monotonic() + ctx.answers.restart_timeout
        last = ""
        while True:
            ctx.check_cancelled()
            answer = http_get(url, timeout=5.0)
            state = confluence_state(answer)
            if state == "RUNNING":
                return
            last = f"state {state}" if state else answer.seen
            if time.monotonic() >= deadline:
                raise StepFailedError(
                    f"{node.name} did not answer RUNNING within {ctx.answers.restart_timeout} s after its "
                    f"restart (last seen: {last}). The roll stopped here; "
                    + (f"already restarted: {', '.join(restarted)}." if restarted else "no other node was restarted."),
                    f"Look at {node.name}'s atlassian-confluence.log (in the Confluence home's logs folder); "
                    "when it answers RUNNING, run the step again to restart the remaining nodes.")
            ctx.progress(self.name, node.name, f"waiting for RUNNING ({last})")
            time.sleep(POLL_SECONDS)

    def verify(self, ctx: Context) -> list[Check]:
        def check(node: Node) -> Check:
            try:
                facts = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
            except WizardError as exc:
                return Check("node RUNNING", node.name, False, exc.message, exc.hint or "")
            answer = http_get(facts.status_url(node.address), timeout=5.0)
            state = confluence_state(answer)
            return Check("node RUNNING", node.name, state == "RUNNING",
                         f"/status state {state}" if state else answer.seen,
                         "" if state == "RUNNING" else
                         f"Start Confluence on {node.name} and check its atlassian-confluence.log.")

        return ctx.for_each_node(check)


class _DownWatcher:
    """Polls a node's /status in a thread (as a context manager) and notes whether it was
    ever seen not RUNNING: connection refused, STARTING, an error page."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._down = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="clbw-restart-watch", daemon=True)

    @property
    def seen_down(self) -> bool:
        """True once an answer other than RUNNING was seen."""
        return self._down.is_set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if confluence_state(http_get(self.url, timeout=5.0)) != "RUNNING":
                self._down.set()
                return
            self._stop.wait(MANUAL_POLL_SECONDS)

    def __enter__(self) -> _DownWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        # A probe under way finishes within its own 5 s timeout; its answer still counts.
        self._thread.join(timeout=6.0)


def _manual_hint(host: Host, node: Node) -> tuple[str, str]:
    try:
        return detect_restart_command(host, node)
    except WizardError:
        return "restart Confluence on this node your usual way", "the admin"


def _stopped_hint(restarted: list[str], node: Node) -> str:
    done = f"Already restarted: {', '.join(restarted)}. " if restarted else ""
    return (f"{done}Run the restart command by hand on {node.name} to see why it fails, or set "
            "nodes[].restart_command; then run the step again.")


STEP = RestartStep()
