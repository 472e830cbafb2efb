"""What nginx and HAProxy share as balancers: one managed file on a machine, tested, then reloaded.

Not a kind itself: ``wizard.balancers.nginx`` and ``wizard.balancers.haproxy`` subclass
``ServedFileKind`` and say what differs (how the server's facts are read, the text of the
file, what to refuse, and their own checks). The order of ``apply`` is the safety, and it is
Apache's too: ``wizard.balancers.reloading`` holds it (the undo of the final reload recorded
first, a "reload pending" marker before the write, the file replaced with its own undo
recorded first, the server's own test before the reload, the old file put back on failure).

A reload command returns before the new configuration serves (``nginx -s reload`` and
HAProxy's ``systemctl reload`` only signal the master), so after it the wizard waits for a
new generation of processes under the master of the pid file: none within
``RELOAD_SECONDS`` means the server kept its old configuration, and the apply fails (and
is undone) rather than report a change that does not serve.
"""

from __future__ import annotations

import shlex
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wizard.answers_model import Answers, HaproxyOptions, NginxOptions, Node
from wizard.balancers.file_drain import set_drained
from wizard.balancers.managed_file import HEADER_LINE as HEADER_LINE
from wizard.balancers.managed_file import drained_named as drained_named
from wizard.balancers.managed_file import managed_setup as managed_setup
from wizard.balancers.node_target import NodeTarget as NodeTarget
from wizard.balancers.node_target import read_targets
from wizard.balancers.reload_marker import pending_reload, reload_was_run
from wizard.balancers.reloading import ReloadChange, Reloader, ReloadingKind
from wizard.confluence.checks import apache_probe_address, public_host_header
from wizard.confluence.probes import Endpoint
from wizard.engine.diffs import unified_diff
from wizard.engine.files import link_note
from wizard.engine.model import BALANCER, Change, Check, FileChange, Plan, UndoAction
from wizard.engine.step import Context
from wizard.errors import CommandFailedError, StepFailedError, WizardError
from wizard.transport.hosts import Host

ServedOptions = NginxOptions | HaproxyOptions


#: How long a reloaded server may take to start the processes of its new configuration.
RELOAD_SECONDS = 15.0
#: Once the new processes run, the old ones stop accepting connections within moments.
RELOAD_SETTLE_SECONDS = 0.5

EDITED_HINT = ("The state file was edited by hand or does not belong to these answers. Find out what that change "
               "was and undo it by hand if it was made, then remove the record from the state file.")


class ServerError(WizardError):
    """The balancer's server cannot be used as it is (version, a missing feature, what it loads)."""


class ConfigTestError(StepFailedError):
    """The server's own test refused the configuration; nothing was reloaded."""


class ReloadError(StepFailedError):
    """The server did not take the new configuration after the reload."""


@dataclass(frozen=True)
class Refusal:
    """Something that stops the plan: what is wrong and what to do."""

    message: str
    hint: str


@dataclass(frozen=True)
class ServerFacts:
    """What the wizard read from the balancer's server (nginx, HAProxy), before planning."""

    product: str
    version: tuple[int, ...]
    version_text: str
    config_path: str
    current: bytes | None
    config_link: str | None
    configtest: str
    reload: str
    #: The file the master process's pid is in (None: not known; the reload is then not watched).
    pid_file: str | None
    #: How the wizard knows the server loads config_path ("" when it does not).
    loads_note: str
    #: What stops the plan, found while reading (the plan raises the first).
    refusals: tuple[Refusal, ...] = ()
    #: The setup named in our file's header, when it is not this one.
    other_owner: str | None = None
    #: Product-specific facts the kind's template and checks use (names taken, features).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def version_string(self) -> str:
        return ".".join(str(part) for part in self.version)


@dataclass(frozen=True, kw_only=True)
class ServedConfigChange(FileChange):
    """The change of the one file the server reads for this setup."""

    role = "config"

    server: str
    loaded: str
    nodes: list[dict[str, Any]]


@dataclass(frozen=True)
class Facts:
    server: ServerFacts
    nodes: tuple[NodeTarget, ...]
    #: The reload id of an earlier apply stopped after it wrote and before it reloaded.
    pending_reload: str | None = None


def split_command(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def run_read(host: Host, command: str, what: str, product: str) -> str:
    """A read-only command of the server; its output (stdout and stderr), or ``ServerError``."""
    result = host.run(command, timeout=60.0)
    if not result.ok:
        said = "\n".join((result.stderr.strip() or result.stdout.strip() or "(no output)").splitlines()[-20:])
        raise ServerError(
            f"{what} failed on {host.label} ({host.where}): `{command}` exited {result.exit_status}:\n{said}",
            f"This runs before the wizard changes anything: {product}'s configuration as it is now must pass "
            f"its own test. Fix what {product} names above (or the command in the answers), then run the step "
            "again.")
    return result.stdout + "\n" + result.stderr


def test_lines(output: str, limit: int = 20) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return "\n".join(lines[-limit:]) or "(nothing printed)"


def config_test(host: Host, command: str, product: str, *, after_change: bool) -> None:
    """The server's own configuration test; ``ConfigTestError`` (with its words) when it fails."""
    result = host.run(command, timeout=120.0)
    if result.ok:
        return
    lines = test_lines(result.stderr + "\n" + result.stdout)
    if after_change:
        raise ConfigTestError(
            f"{product}'s configuration test failed after the change, so {product} was NOT reloaded and keeps "
            f"serving its previous configuration. `{command}` said:\n{lines}",
            "The previous file is put back. Fix what it names above (a path in the answers, another file of "
            "the configuration), then run `confluence-lb-wizard apply --only balancer` again.")
    raise ConfigTestError(
        f"The restored {product} configuration fails {product}'s own test, so {product} was not reloaded with "
        f"it (it keeps serving what it runs now). `{command}` said:\n{lines}",
        "Fix what it names above by hand, then run the test and reload yourself.")


def serving_processes(host: Host, pid_file: str) -> frozenset[int]:
    """The pids in ``pid_file`` that are alive, and their children (the master and its workers),
    in one round trip; empty when the server does not run."""
    script = (
        f"pids=$(cat {shlex.quote(pid_file)} 2>/dev/null) || exit 0; "
        "for pid in $pids; do [ -d \"/proc/$pid\" ] || continue; echo \"$pid\"; "
        "for d in /proc/[0-9]*; do { read -r _ _ _ pp _ < \"$d/stat\"; } 2>/dev/null || continue; "
        "[ \"$pp\" = \"$pid\" ] && echo \"${d#/proc/}\"; done; done")
    result = host.run(script, timeout=30.0)
    return frozenset(int(word) for word in result.stdout.split() if word.isdigit())


def wait_new_generation(host: Host, pid_file: str, before: frozenset[int], product: str) -> None:
    """After a reload: a process that was not there before must serve (a new worker, or a new
    master); none within ``RELOAD_SECONDS`` means the server kept its old configuration."""
    deadline = time.monotonic() + RELOAD_SECONDS
    while True:
        now = serving_processes(host, pid_file)
        if now - before:
            time.sleep(RELOAD_SETTLE_SECONDS)
            return
        if time.monotonic() > deadline:
            running = "still runs its previous processes" if now else f"no longer runs (nothing alive in {pid_file})"
            raise ReloadError(
                f"{product} did not start serving the new configuration within {RELOAD_SECONDS:.0f} s of the "
                f"reload: it {running}. The configuration passed the test, so {product} met a problem only "
                "the running server sees (a port in use, a certificate it cannot read).",
                f"The previous file is put back and {product} reloaded with it. Look at {product}'s error log "
                "for the reason, fix it, then run the step again.")
        time.sleep(0.2)


class ServedFileKind(ReloadingKind["Facts"]):
    """A balancer kind whose whole configuration is one file on the balancer's machine."""

    sticky_cookie = "ROUTEID"
    can_drain = True
    #: How the file takes a node out, for the restart's progress ("down in every upstream").
    file_drain_words: ClassVar[str]
    #: The oldest version the kind's file works on, what needs it, and how to get a newer one.
    minimum_version: tuple[int, ...] = (0,)
    minimum_needs = ""
    upgrade_hint = ""

    # What each kind says.

    @abstractmethod
    def read_server(self, host: Host, answers: Answers) -> ServerFacts:
        """Read the server's facts (version, features, what it loads, our file). Read-only."""

    @abstractmethod
    def build_config(self, answers: Answers, facts: Facts, server_name: str, listen_port: int,
                     http_port: int | None, drained: frozenset[str] = frozenset()) -> Any:
        """The kind's model of its file for these answers and facts (pure); ``drained``: the nodes a
        rolling restart has taken out (the balancer step itself always writes none)."""

    @abstractmethod
    def render_config(self, config: Any) -> str:
        """The file's text for the kind's model of it (pure)."""

    def refusals(self, answers: Answers, facts: Facts) -> list[Refusal]:
        """What stops this plan beyond what reading found (pure): by default, a server too old."""
        return self.version_refusals(facts)

    # Built on what each kind says.

    def config(self, answers: Answers, facts: Facts, drained: frozenset[str] = frozenset()) -> Any:
        return self.build_config(answers, facts, self.server_name(answers), self.listen_port(answers),
                                 self.http_port(answers), drained)

    def render(self, answers: Answers, facts: Facts) -> str:
        """The file's text for these answers and facts (pure)."""
        return self.render_config(self.config(answers, facts))

    def version_refusals(self, facts: Facts) -> list[Refusal]:
        server = facts.server
        if server.version >= self.minimum_version:
            return []
        needs = f" ({self.minimum_needs})" if self.minimum_needs else ""
        return [Refusal(f"The balancer runs {self.product} {server.version_string}; the wizard needs {self.product} "
                        f"{'.'.join(map(str, self.minimum_version))} or later{needs}. Nothing was changed.",
                        f"{self.upgrade_hint}, then run the step again.")]

    # Draining, for the rolling restart: through the file (wizard.balancers.file_drain), unless a
    # kind drains otherwise for these answers (HAProxy with admin_socket: its runtime API).

    def drains_through_file(self, answers: Answers) -> bool:
        """Whether these answers' balancer drains a node by rewriting its file (``render_drained``)."""
        return True

    def render_drained(self, answers: Answers, facts: Facts, drained: frozenset[str]) -> str:
        """The file with the nodes ``drained`` taken out (pure)."""
        return self.render_config(self.config(answers, facts, drained))

    def drained_in(self, text: str) -> frozenset[str]:
        """The nodes the wizard's file ``text`` has drained (named in its header)."""
        return drained_named(text)

    def drain(self, ctx: Context, node: Node) -> None:
        ctx.progress("restart", BALANCER, f"draining {node.name}: {self.file_drain_words}, test, reload")
        set_drained(self, ctx, node.name, True)

    def undrain(self, ctx: Context, node: Node) -> None:
        ctx.progress("restart", BALANCER, f"undraining {node.name}: test, reload")
        set_drained(self, ctx, node.name, False)

    def own_checks(self, ctx: Context, endpoint: Endpoint) -> list[Check]:
        """The kind's checks beyond the shared ones (HAProxy's stats page)."""
        return []

    def plan_notes(self, answers: Answers, facts: Facts) -> str:
        """What the plan says of this server beyond its version (health checks, say)."""
        return ""

    # The options and where the balancer answers.

    def options(self, answers: Answers) -> ServedOptions:
        options: ServedOptions | None = getattr(answers.balancer, self.kind, None)
        if options is None:
            raise WizardError(f"The answers have no balancer.{self.kind} section, so the {self.product} balancer "
                              "cannot be set up or undone.", "Use the answers of the setup that applied it.")
        return options

    def server_name(self, answers: Answers) -> str:
        return self.options(answers).server_name or answers.public_url.host

    def listen_port(self, answers: Answers) -> int:
        return self.options(answers).listen_port or answers.public_url.port

    def http_port(self, answers: Answers) -> int | None:
        """The plain-HTTP port that redirects to HTTPS (with TLS only)."""
        options = self.options(answers)
        if options.tls is None:
            return None
        return options.http_port or 80

    def endpoint(self, ctx: Context) -> Endpoint:
        answers = ctx.answers
        options = self.options(answers)
        public = answers.public_url
        http = self.http_port(answers)
        return Endpoint("https" if options.tls is not None else "http", apache_probe_address(ctx),
                        self.listen_port(answers), public_host_header(public), public.host,
                        http_ports=(http,) if http is not None else ())

    def through_checks(self, ctx: Context, endpoint: Endpoint) -> list[Check]:
        return []  # this step's own verify makes the shared checks (status, heartbeat, WebSocket, redirect)

    # Facts.

    def inspect(self, ctx: Context) -> Facts:
        answers = ctx.answers
        host = ctx.hosts.balancer()
        ctx.progress(self.name, BALANCER, f"reading {self.product}'s configuration")
        server = self.read_server(host, answers)

        return Facts(server, read_targets(ctx),
                     pending_reload(ctx.previous.get(self.name), self.reload_undo_kind))

    # Plan (pure).

    def _refuse(self, answers: Answers, facts: Facts) -> None:
        server = facts.server
        found = list(server.refusals)
        if server.other_owner:
            found.append(Refusal(
                f"{server.config_path} is managed by confluence-lb-wizard for the setup {server.other_owner!r}, "
                f"not for {answers.name!r}. Nothing was changed.",
                f"Give this setup its own balancer.{self.kind}.config_path, or roll back the other setup's "
                "balancer step first (`confluence-lb-wizard rollback balancer` with its state file)."))
        public = answers.public_url.context_path
        for node in facts.nodes:
            if node.context_path != public:
                found.append(Refusal(
                    f"{node.name} serves Confluence at {node.context_path or '/ (ROOT)'}, but public_url "
                    f"{answers.public_url.url} uses {public or '/ (ROOT)'}. Nothing was changed.",
                    "Use the same context path in public_url as in the nodes' server.xml <Context path>."))
        found += self.refusals(answers, facts)
        if found:
            raise ServerError(found[0].message, found[0].hint)

    def plan(self, answers: Answers, facts: Facts) -> Plan:
        self._refuse(answers, facts)
        server = facts.server
        text = self.render(answers, facts)
        assert text.startswith(HEADER_LINE.format(setup=answers.name)), "the template lost its header"
        new = text.encode("utf-8")
        path = server.config_path
        changes: list[Change] = []
        node_list = ", ".join(f"{n.name} {n.host}:{n.confluence_port} (Synchrony {n.synchrony_port})"
                              for n in facts.nodes)
        notes = self.plan_notes(answers, facts)
        facts_note = f"{self.product} {server.version_string}; {node_list}" + (f". {notes}" if notes else "")
        if server.current != new:
            before = server.current.decode("utf-8", "replace") if server.current is not None else ""
            if server.current is None:
                what = "create"
            elif server.current.startswith(HEADER_LINE.format(setup=answers.name).encode()):
                what = "update (the diff shows any edit made by hand since the wizard wrote it)"
            else:
                what = "replace a file the wizard did not write (a backup is kept)"
            changes.append(Change(
                target=BALANCER, kind="file",
                summary=f"{path}{link_note(server.config_link)}: {what}: {self.product} for "
                        f"{self.server_name(answers)} on port {self.listen_port(answers)}",
                diff=unified_diff(BALANCER, path, before, text),
                details=ServedConfigChange(
                    path=path, server=f"{self.product} {server.version_string}", loaded=server.loads_note,
                    nodes=[{"name": n.name, "address": n.host, "confluence_port": n.confluence_port,
                            "synchrony_port": n.synchrony_port} for n in facts.nodes]),
                payload=(server.current, new)))
        if not changes and not facts.pending_reload:
            return Plan(self.name, f"{self.product} already has this setup's configuration",
                        noop_reason=f"{path} already holds what the wizard would write. {facts_note}")
        unfinished = (f"; an earlier apply wrote the configuration but was stopped before {self.product} was "
                      "reloaded with it" if facts.pending_reload else "")
        changes.append(Change(
            target=BALANCER, kind="command",
            summary=f"test the configuration (`{server.configtest}`), and only then reload {self.product} "
                    f"(`{server.reload}`){unfinished}",
            details=ReloadChange(configtest=server.configtest, reload=server.reload, pid_file=server.pid_file,
                                 resume_reload_id=facts.pending_reload)))
        if len(changes) == 1:
            summary = (f"finish the apply that was stopped before {self.product} was reloaded: {path} is already "
                       f"as planned; test the configuration and reload {self.product}. {facts_note}")
        else:
            summary = (f"configure {self.product} for {self.server_name(answers)}:{self.listen_port(answers)} over "
                       f"{len(facts.nodes)} node(s), then test and reload. {facts_note}")
        return Plan(self.name, summary, changes)

    # Apply (in the order of ``ReloadingKind.apply``).

    def config_test(self, host: Host, command: str, *, after_change: bool) -> None:
        config_test(host, command, self.product, after_change=after_change)

    def reloader(self, host: Host, reload: ReloadChange) -> Reloader:
        pid_file = reload.pid_file
        before = serving_processes(host, pid_file) if pid_file else frozenset()
        return lambda: self._reload(host, reload.reload, pid_file, before)

    def _reload(self, host: Host, command: str, pid_file: str | None, before: frozenset[int]) -> None:
        try:
            host.run_checked(command, timeout=120.0, what=f"Reloading {self.product}")
        except CommandFailedError as exc:
            raise ReloadError(exc.message, f"The previous configuration is put back and {self.product} reloaded "
                                           "with it. Fix what the reload said, then run the step again.") from exc
        if pid_file and before:
            wait_new_generation(host, pid_file, before, self.product)

    # Undo.

    def reload_undo(self, answers: Answers, token: str) -> UndoAction:
        """The undo of the reload: test the restored file and reload, with the answers' commands
        (chosen when it is performed, never a command stored in the state file)."""
        options = self.options(answers)
        return UndoAction(
            kind=self.reload_undo_kind, target=BALANCER,
            description=f"Test the restored {self.product} configuration ({options.configtest_command}) and "
                        f"reload {self.product} with it ({options.reload_command}).",
            manual=f"{options.configtest_command} && {options.reload_command}", data={"reload_id": token})

    def undo(self, ctx: Context, action: UndoAction) -> None:
        if action.kind != self.reload_undo_kind:
            super().undo(ctx, action)
            return
        if not reload_was_run(ctx.previous.get(self.name), str(action.data.get("reload_id"))):
            return  # that apply never reloaded: the server still runs what it ran before
        host = ctx.hosts.balancer()
        options = self.options(ctx.answers)
        config_test(host, options.configtest_command, self.product, after_change=False)
        server = self.read_server(host, ctx.answers)
        before = serving_processes(host, server.pid_file) if server.pid_file else frozenset()
        try:
            host.run_checked(options.reload_command, timeout=120.0,
                             what=f"Reloading {self.product} with the restored file")
        except CommandFailedError as exc:
            raise ReloadError(exc.message, f"Reload {self.product} by hand: {options.reload_command}") from exc
        if server.pid_file and before:
            wait_new_generation(host, server.pid_file, before, self.product)

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        if target != BALANCER or answers.balancer.kind != self.kind or getattr(answers.balancer, self.kind) is None:
            return frozenset()
        return frozenset({self.options(answers).config_path})

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """A reload record checked (its id, the balancer, commands without a masked secret) and
        rebuilt from the answers; the file records by the generic checks."""
        if action.kind != self.reload_undo_kind:
            return super().vet_undo(answers, action, label)
        token = self.vet_reload_id(action, label, EDITED_HINT)
        options = self.options(answers)
        self.refuse_masked_commands({"configtest_command": options.configtest_command,
                                     "reload_command": options.reload_command}, label)
        return self.reload_undo(answers, token)

    # Verify.

    def verify(self, ctx: Context) -> list[Check]:
        from wizard.confluence import checks

        answers = ctx.answers
        try:
            endpoint = self.endpoint(ctx)
        except WizardError as exc:
            return [Check("balancer address", BALANCER, False, exc.message, exc.hint or "")]
        found = [checks.balancer_status(endpoint, answers.public_url), checks.balancer_heartbeat(endpoint, answers),
                 checks.balancer_websocket(endpoint, answers)]
        if answers.synchrony.mode == "direct":  # the nodes' own Synchrony, reached by the session's cookie
            found.append(checks.synchrony_keeps_session(endpoint, answers, self.sticky_cookie))
        if answers.public_url.is_https:
            found.append(checks.https_redirect(endpoint, answers.public_url))
        return found + self.own_checks(ctx, endpoint)
