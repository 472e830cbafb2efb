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

Behind a live balancer (the balancer step is done) each node is drained first when
the balancer can drain (Apache: drain mode on its members; nginx, and HAProxy without
``admin_socket``: its file with the node out, tested and reloaded; HAProxy with
``admin_socket``: its runtime API; an ALB: the node's targets deregistered, which itself waits for the
requests under way), given ``restart_drain`` seconds to finish the requests under way
(unless the drain already waited for them), restarted, waited for until ``/status``
answers RUNNING and, in direct mode, its own Synchrony answers its heartbeat (users
who land on a node whose Synchrony is still down cannot edit), and only then put
back in the balancer; then the next node. The state records each drain, restart
and undrain with its time, the drain before the balancer is touched: a node that
does not come back stops the roll and stays drained (the admin is told so, and that
``restart --node NAME`` finishes it), and the next run starts with the node it left
drained. A live balancer that cannot drain (every kind the wizard writes can; a kind
whose ``drain_support`` says it cannot) is known before the roll starts: the plan says
NO DRAIN, why, what it means for users and how to get drains, and the roll restarts
one node at a time without recording or attempting any drain.
"""

from __future__ import annotations

import posixpath
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from wizard.answers_model import Answers, Node
from wizard.balancers.kind import kind_for
from wizard.confluence.checks import synchrony_heartbeat_url
from wizard.confluence.nodes import NodeFacts, read_node_facts
from wizard.confluence.probes import confluence_state, heartbeat_ok, http_get
from wizard.engine.model import Change, ChangeDetails, Check, Plan
from wizard.engine.state import StepRecord
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
    #: Each node's own Synchrony heartbeat, waited for before the node is put back (direct mode).
    heartbeat_urls: dict[str, str] = field(default_factory=dict)
    #: The balancer already serves users (its step is done): the roll drains each node first.
    balancer_live: bool = False
    #: Whether the balancer (its kind, with these answers) can drain a node, and what a drain does
    #: there, or why it cannot and what would let it.
    can_drain: bool = False
    drain_summary: str = ""
    drain_remedy: str = ""
    #: The kind's drain itself waits for the requests under way (an ALB's deregistration delay).
    drain_waits: bool = False
    #: node -> what draining it and putting it back do on this balancer, for the plan.
    drain_steps: dict[str, str] = field(default_factory=dict)
    undrain_steps: dict[str, str] = field(default_factory=dict)
    #: Nodes an earlier roll drained and never put back (a drain record without its undrain), in drain order.
    left_drained: tuple[str, ...] = ()
    #: ``restart --node NAME``: only these nodes, restarted even when no change needs it.
    only: tuple[str, ...] | None = None

    def needs_restart(self, node: str) -> bool:
        if self.only is not None:
            return node in self.only and not self._restarted_since_left_drained(node)
        return self._needs_restart(node)

    def _restarted_since_left_drained(self, node: str) -> bool:
        # Resuming a roll stopped after this node's restart and before its undrain: it needs no second restart.
        return node in self.left_drained and node in self.restarted_after_drain

    #: Nodes left drained whose restart was recorded after their drain.
    restarted_after_drain: tuple[str, ...] = ()

    def _needs_restart(self, node: str) -> bool:
        if node in self.left_drained:
            return node not in self.restarted_after_drain
        restarted = self.restarted_at.get(node)
        if restarted is None:
            return True
        # Times are to the microsecond; on a tie the order is unknown, so restart again
        # rather than take a server.xml change as in effect when it may not be.
        return self.last_connector_change is not None and restarted <= self.last_connector_change


@dataclass(frozen=True, kw_only=True)
class NodeRestart(ChangeDetails):
    """One node's turn in the roll: how it is restarted (the change's kind: command, manual, or
    undrain for a node an earlier roll restarted), where it answers, and whether it is drained."""

    command: str
    status_url: str
    #: The node's own Synchrony heartbeat, waited for before it is put back (direct mode).
    heartbeat_url: str | None
    drain: bool
    drain_seconds: int
    left_drained: bool
    order: int


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


def last_change(record: StepRecord | None, kind: str = "file") -> str | None:
    """When a step last made a change of ``kind`` or undid one: server.xml edits and the
    base URL written into the database both take effect only when Confluence restarts.

    An undo is recorded just before its change is made and the change just after: an
    apply killed in between made the change without recording it. So the time an undo
    was recorded counts as a possible change too (at worst a node is restarted once more).
    """
    if record is None:
        return None
    times = [c.at for c in record.changes if c.kind == kind and c.at]
    undone = [u.undone for u in record.undo if u.undone]
    recorded = [u.recorded for u in record.undo if u.recorded]
    return max(times + undone + recorded, default=None)


def last_file_change(record: StepRecord | None) -> str | None:
    return last_change(record, "file")


def left_drained(record: StepRecord | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The nodes an earlier roll drained and did not put back (a ``drain`` change without a later
    ``undrain``), in drain order; and those of them restarted since their drain."""
    drained: dict[str, str] = {}
    restarted: set[str] = set()
    for change in record.changes if record is not None else []:
        target, kind = change.target, change.kind
        if target is None:
            continue
        if kind == "drain":
            drained[target] = change.at or ""
            restarted.discard(target)
        elif kind in ("undrain", "drain-failed"):
            drained.pop(target, None)
            restarted.discard(target)
        elif kind == "restart" and target in drained:
            restarted.add(target)
    return tuple(drained), tuple(n for n in drained if n in restarted)


def restart_times(record: StepRecord | None) -> dict[str, str]:
    """Each node's latest restart by this step (a roll that stopped half-way counts for its nodes)."""
    latest: dict[str, str] = {}
    for change in record.changes if record is not None else []:
        if change.kind == "restart" and change.at and change.target is not None:
            latest[change.target] = max(change.at, latest.get(change.target, ""))
    return latest


class RestartStep(Step[RestartFacts]):
    name = "restart"
    title = "Restart the nodes one at a time"
    explanation = ("A server.xml change takes effect only after Confluence restarts. Nodes restart one "
                   "at a time, each waited for until /status answers RUNNING, so users keep working.")

    def rollback_warning(self, record: StepRecord) -> str:
        drained, _ = left_drained(record)
        if not drained:
            return ""
        names = ", ".join(drained)
        return (f"A restart has nothing to undo, but a stopped roll left {names} DRAINED in the balancer "
                "(it sends them no users): once they answer RUNNING, run "
                + " and ".join(f"`confluence-lb-wizard restart --node {n}`" for n in drained)
                + " to put them back.")

    def __init__(self, only: tuple[str, ...] | None = None) -> None:
        #: ``restart --node NAME``: the nodes to restart whether or not a change needs it.
        self.only = only

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
        balancer = ctx.previous.get("balancer")
        kind = kind_for(ctx.answers)
        drained, restarted_after = left_drained(ctx.previous.get(self.name))
        direct = ctx.answers.synchrony.mode == "direct"
        unknown = [n for n in self.only or () if n not in names]
        if unknown:
            raise WizardError(f"No node is named {', '.join(unknown)} in the answers (nodes: {', '.join(names)}).",
                              "Name nodes as nodes[].name spells them: restart --node NAME.")
        support = kind.drain_support(ctx.answers)
        return RestartFacts(
            heartbeat_urls=self._heartbeats(ctx, results, drained) if direct else {},
            balancer_live=bool(balancer is not None and getattr(balancer, "done", False)),
            can_drain=support.can_drain, drain_summary=support.summary, drain_remedy=support.remedy,
            drain_waits=support.waits_for_requests,
            drain_steps={n.name: kind.describe_drain(ctx.answers, n) for n in ctx.answers.nodes},
            undrain_steps={n.name: kind.describe_undrain(ctx.answers, n) for n in ctx.answers.nodes},
            left_drained=tuple(n for n in drained if n in names),
            restarted_after_drain=tuple(n for n in restarted_after if n in names),
            only=self.only,
            commands={n: r[0] for n, r in zip(names, results)},
            command_sources={n: r[1] for n, r in zip(names, results)},
            status_urls={n: r[2] for n, r in zip(names, results)},
            restarted_at=restart_times(ctx.previous.get("restart")),
            last_connector_change=max(
                (t for t in (last_file_change(ctx.previous.get("connector")),
                             last_change(ctx.previous.get("base-url"), "database")) if t), default=None))

    def _heartbeats(self, ctx: Context, results: list[tuple[str, str, str, NodeFacts]],
                    drained: tuple[str, ...]) -> dict[str, str]:
        """The heartbeat of each node whose own Synchrony runs (direct mode): one that answers now,
        or one an earlier roll left drained (its node may be down right now). A node whose Synchrony
        does not answer before its restart is not waited for after it."""
        def probe(node: Node) -> str | None:
            facts = results[[n.name for n in ctx.answers.nodes].index(node.name)][3]
            url = synchrony_heartbeat_url(node, facts, "direct")
            return url if node.name in drained or heartbeat_ok(http_get(url, timeout=5.0)) else None

        found = ctx.for_each_node(probe)
        return {node.name: url for node, url in zip(ctx.answers.nodes, found) if url}

    def plan(self, answers: Answers, facts: RestartFacts) -> Plan:
        # An earlier roll's drained nodes come first: they are out of the balancer until put back.
        resumed = [answers.node(name) for name in facts.left_drained]
        pending = resumed + [node for node in answers.nodes
                             if node.name not in facts.left_drained and facts.needs_restart(node.name)]
        if not pending:
            if facts.only is not None:
                return Plan(self.name, "no node to restart", noop_reason="No node was named to restart.")
            return Plan(self.name, "every node was restarted after the last Connector change",
                        noop_reason="Every node was restarted after the last Connector change ("
                                    + ", ".join(f"{n}: {t}" for n, t in sorted(facts.restarted_at.items()))
                                    + "); nothing new needs a restart.")
        manual = answers.restart == "manual"
        drain = facts.balancer_live and facts.can_drain
        changes = []
        for index, node in enumerate(pending):
            name = node.name
            restart = facts.needs_restart(name)
            heartbeat = facts.heartbeat_urls.get(name)
            back = f"{facts.status_urls[name]} to answer RUNNING" + (
                f" and {heartbeat} to answer OK" if heartbeat else "")
            if not restart:
                kind, summary = "undrain", f"left drained by an earlier roll after its restart: wait for {back}"
            elif manual:
                kind, summary = "manual", (f"you restart it ({facts.commands[name]}), then the wizard waits for "
                                           f"{back}")
            else:
                kind, summary = "command", (f"run `{facts.commands[name]}` ({facts.command_sources[name]}), "
                                            f"then wait for {back}")
            if drain:
                wait = "" if facts.drain_waits else f", wait {answers.restart_drain} s for the requests under way"
                first = ("still drained by an earlier roll; " if name in facts.left_drained else
                         facts.drain_steps.get(name, f"drain it ({facts.drain_summary})") + wait + "; ")
                summary = first + summary + "; then " + facts.undrain_steps.get(name, "put it back in the balancer")
            elif facts.balancer_live and restart:
                summary = ("NO DRAIN (the balancer keeps sending it users, whose requests fail while it "
                           "restarts): " + summary)
            changes.append(Change(target=name, kind=kind, summary=summary,
                                  details=NodeRestart(command=facts.commands[name], status_url=facts.status_urls[name],
                                                      heartbeat_url=heartbeat, drain=drain,
                                                      drain_seconds=answers.restart_drain
                                                      if drain and not facts.drain_waits else 0,
                                                      left_drained=name in facts.left_drained, order=index + 1)))
        how = "you restart each node" if manual else "restart each node"
        skipped = [n.name for n in answers.nodes if n not in pending]
        note = (f" ({', '.join(skipped)} already restarted since the last Connector change)"
                if skipped and facts.only is None else "")
        if drain:
            balancing = (f"; the balancer is live, so each node is drained first ({facts.drain_summary}) and "
                         "put back once it answers again")
        elif facts.balancer_live:
            balancing = (f"; NO DRAIN: the balancer is live but cannot drain a node ({facts.drain_summary}), so "
                         "each node is restarted WITHOUT draining: the balancer keeps sending it users, and their "
                         "requests fail (errors, lost unsaved edits) from the moment it stops until it answers "
                         "again; each node is still waited for before the next one"
                         + (f". To drain instead: {facts.drain_remedy}" if facts.drain_remedy else ""))
        else:
            balancing = ""
        resume = (f"; resuming with {', '.join(facts.left_drained)}, left drained by an earlier roll"
                  if facts.left_drained else "")
        return Plan(self.name, f"{how}, one at a time, in this order: "
                    + ", ".join(n.name for n in pending) + note + balancing + resume, changes)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        restarted: list[str] = []
        total = len(plan.changes)
        kind = kind_for(ctx.answers)
        for index, change in enumerate(plan.changes):
            node = ctx.answers.node(change.target)
            details = change.details
            assert isinstance(details, NodeRestart), f"not a node's restart: {details!r}"
            ctx.check_cancelled()
            drain = details.drain
            if drain:
                self._drain(ctx, kind, node, journal, restarted)
                if details.drain_seconds > 0:
                    ctx.progress(self.name, node.name, f"drained; {details.drain_seconds} s for the "
                                 "requests under way", index / total)
                    # Cancellable: the node stays drained and recorded so, and the next run resumes with it.
                    ctx.cancel.wait(float(details.drain_seconds))
                    ctx.check_cancelled()
            if change.kind == "command":
                ctx.progress(self.name, node.name, f"restarting ({index + 1}/{total})", index / total)
                host = ctx.hosts.node(node)
                # Watched while the command runs: a command that waits until the node is
                # back has taken it down and up before it returns.
                with _DownWatcher(details.status_url) as watcher:
                    host.run_checked(details.command, timeout=float(ctx.answers.restart_timeout),
                                     what=f"Restarting Confluence on {node.name}",
                                     hint=_stopped_hint(restarted, node, drain))
                if not watcher.seen_down:
                    ctx.progress(self.name, node.name, "waiting for it to go down")
                    self._wait_down(ctx, node, details.status_url, restarted,
                                    command=details.command, drained=drain)
            elif change.kind == "manual":
                ctx.progress(self.name, node.name, f"waiting for you to restart it: {details.command}",
                             index / total)
                # A node that was never restarted answers RUNNING at once; only a node seen
                # leaving RUNNING and coming back has really been restarted by the admin.
                self._wait_down(ctx, node, details.status_url, restarted, drained=drain)
            self._wait_running(ctx, node, details.status_url, restarted, drained=drain)
            if change.kind != "undrain":
                # Recorded once RUNNING, so a roll stopped by a node that did not come back
                # restarts that node again next time, and not the ones before it.
                journal.changed(target=node.name, kind="restart",
                                summary=f"restarted with {details.command}",
                                command=details.command)
            if details.heartbeat_url:
                self._wait_heartbeat(ctx, node, details.heartbeat_url, restarted, drained=drain)
            if not drain and details.left_drained:
                # Drained by an earlier roll behind a balancer that is no longer live (rolled back,
                # or another kind now) or can no longer drain: there is nothing the wizard can put
                # back, and the record says so.
                journal.changed(target=node.name, kind="undrain",
                                summary="the balancer is no longer live or can no longer drain: nothing to put back")
            if drain:
                ctx.progress(self.name, node.name, "putting it back in the balancer")
                try:
                    kind.undrain(ctx, node)
                except WizardError as exc:
                    raise StepFailedError(
                        f"{node.name} restarted and answers, but putting it back in the balancer failed: "
                        f"{exc.message} {node.name} STAYS DRAINED (the balancer sends it no users). "
                        + _so_far(restarted),
                        (exc.hint + " " if exc.hint else "")
                        + f"Then `confluence-lb-wizard restart --node {node.name}` puts it back.") from exc
                journal.changed(target=node.name, kind="undrain", summary="put back in the balancer")
            restarted.append(node.name)
            ctx.progress(self.name, node.name, "RUNNING", (index + 1) / total)
        how = "drained, restarted and put back" if any(isinstance(c.details, NodeRestart) and c.details.drain
                                                       for c in plan.changes) \
            else "restarted"
        return f"{how}: {', '.join(restarted)}, one at a time; each answered RUNNING"

    def _drain(self, ctx: Context, kind: Any, node: Node, journal: Journal, restarted: list[str]) -> None:
        # Recorded before the balancer is touched: a roll killed from here on finds the node
        # drained (or about to be) and resumes with it; a second drain changes nothing.
        journal.changed(target=node.name, kind="drain", summary=f"drained in the balancer ({kind.drain_summary})")
        ctx.progress(self.name, node.name, "draining it in the balancer")
        try:
            kind.drain(ctx, node)
        except WizardError as exc:
            journal.changed(target=node.name, kind="drain-failed", summary=f"not drained: {exc.message}")
            raise StepFailedError(f"Draining {node.name} in the balancer failed, so it was not restarted: "
                                  f"{exc.message} " + _so_far(restarted), exc.hint) from exc

    def _wait_heartbeat(self, ctx: Context, node: Node, url: str, restarted: list[str], *, drained: bool) -> None:
        """Until the node's own Synchrony answers its heartbeat: a node back without its Synchrony
        would take editors it cannot serve."""
        deadline = time.monotonic() + ctx.answers.restart_timeout
        while True:
            ctx.check_cancelled()
            answer = http_get(url, timeout=5.0)
            if heartbeat_ok(answer):
                return
            if time.monotonic() >= deadline:
                raise StepFailedError(
                    f"{node.name} answers RUNNING, but its Synchrony did not answer {url} within "
                    f"{ctx.answers.restart_timeout} s (last seen: {answer.seen}). The roll stopped here"
                    + (f"; {node.name} STAYS DRAINED (the balancer sends it no users). " if drained else ". ")
                    + _so_far(restarted),
                    f"Look at {node.name}'s atlassian-synchrony.log (in the Confluence home's logs folder); when "
                    f"its heartbeat answers, `confluence-lb-wizard restart --node {node.name}` "
                    + ("puts it back and restarts the remaining nodes." if drained else
                       "restarts the remaining nodes."))
            ctx.progress(self.name, node.name, f"waiting for Synchrony ({answer.seen})")
            time.sleep(POLL_SECONDS)

    def _wait_down(self, ctx: Context, node: Node, url: str, restarted: list[str],
                   command: str | None = None, *, drained: bool = False) -> None:
        """Until ``url`` stops answering RUNNING (refused, STARTING, an error page...).

        ``command`` is the restart command that just returned, or None when the admin
        restarts the node by hand.
        """
        deadline = time.monotonic() + ctx.answers.restart_timeout
        while confluence_state(http_get(url, timeout=5.0)) == "RUNNING":
            ctx.check_cancelled()
            if time.monotonic() >= deadline:
                so_far = (f"Restarted so far: {', '.join(restarted)}." if restarted
                          else "No node was restarted.") + _left_drained(node, drained)
                if command is None:
                    raise StepFailedError(
                        f"{node.name} kept answering RUNNING for {ctx.answers.restart_timeout} s: it was not "
                        f"restarted, so its Connector change is not in effect yet. {so_far}",
                        f"Restart Confluence on {node.name}, then run the step again"
                        + (f" (`confluence-lb-wizard restart --node {node.name}`)." if drained else "."))
                raise StepFailedError(
                    f"{node.name} kept answering RUNNING for {ctx.answers.restart_timeout} s after `{command}` "
                    "returned: the command does not seem to restart Confluence (or the restart was too quick "
                    f"to be seen), so its Connector change may not be in effect. The roll stopped here. {so_far}",
                    f"Run the restart command by hand on {node.name} and check that Confluence stops and "
                    "starts again (or fix nodes[].restart_command); then run the step again"
                    + (f" (`confluence-lb-wizard restart --node {node.name}`)." if drained else "."))
            time.sleep(MANUAL_POLL_SECONDS)

    def _wait_running(self, ctx: Context, node: Node, url: str, restarted: list[str], *,
                      drained: bool = False) -> None:
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
                    + (f"already restarted: {', '.join(restarted)}." if restarted else "no other node was restarted.")
                    + _left_drained(node, drained),
                    f"Look at {node.name}'s atlassian-confluence.log (in the Confluence home's logs folder); "
                    + (f"when it answers RUNNING, `confluence-lb-wizard restart --node {node.name}` waits for it, "
                       "puts it back in the balancer, and a run of the step restarts the remaining nodes."
                       if drained else
                       "when it answers RUNNING, run the step again to restart the remaining nodes."))
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

        found = ctx.for_each_node(check)
        drained, _ = left_drained(ctx.previous.get(self.name))
        for name in drained:
            found.append(Check("node back in the balancer", name, False,
                               "a rolling restart drained it and stopped before putting it back: the balancer "
                               "sends it no users",
                               f"When it answers RUNNING, run `confluence-lb-wizard restart --node {name}`: it "
                               "waits for it and puts it back."))
        return found


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


def _stopped_hint(restarted: list[str], node: Node, drained: bool = False) -> str:
    done = f"Already restarted: {', '.join(restarted)}. " if restarted else ""
    return (f"{done}{_left_drained(node, drained).strip()} Run the restart command by hand on {node.name} to see "
            "why it fails, or set nodes[].restart_command; then run "
            + (f"`confluence-lb-wizard restart --node {node.name}`." if drained else "the step again.")).replace(
                "  ", " ")


def _left_drained(node: Node, drained: bool) -> str:
    """What a stopped roll says of the node it drained: the admin must know it is out of the balancer."""
    if not drained:
        return ""
    return (f" {node.name} STAYS DRAINED: the balancer sends it no users until "
            f"`confluence-lb-wizard restart --node {node.name}` sees it back and puts it back.")


def _so_far(restarted: list[str]) -> str:
    return f"Restarted so far: {', '.join(restarted)}." if restarted else "No node was restarted."


STEP = RestartStep()
