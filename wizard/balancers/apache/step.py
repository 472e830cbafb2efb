"""Balancer, Apache kind: the vhost in front of the nodes, written, tested, then reloaded.

The order of ``apply`` is the safety (certbot's installer does the same), and nginx and HAProxy
share it: ``wizard.balancers.reloading`` holds it. The undo is recorded before each change,
the configuration is tested with Apache's own test before anything is reloaded, and a failed
test leaves Apache serving what it served, while the runner puts the previous files back. The
first undo recorded is a reload (undone last, so after every file is back) that only runs when
this apply's configuration was actually loaded, and only after the restored files pass the test.
An apply killed between writing the files and reloading Apache is finished by the next one
(the "reload pending" marker). What is Apache's own is here: enabling the site and modules on
the Debian layout (each undo recorded first), the check that Apache reads the file, and how a
reload is watched.

The plan is pure: the vhost is rendered from the answers and the facts (Apache's
version, its modules, its listeners; each node's ports from its own files), and
compared byte for byte with what is on the host. A second apply finds everything in
place and plans nothing.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import Any

from wizard.answers_model import Answers, Node
from wizard.balancers.apache.checks import ApacheChecks
from wizard.balancers.apache.drain import set_drained
from wizard.balancers.apache.facts import (
    HEADER_LINE,
    MINIMUM_VERSION,
    ApacheConfigError,
    ApacheError,
    ApacheFacts,
    Layout,
    commands_for,
    config_files,
    detect_layout,
    module_id,
    read_apache_facts,
)
from wizard.balancers.apache.reload import (
    ApacheReloadError,
    check_included,
    config_test,
    running_pid,
    wait_still_running,
)
from wizard.balancers.apache.undo import (
    EDITED_HINT,
    KNOWN_MODULES,
    MODULE_UNDO,
    RELOAD_UNDO,
    SITE_UNDO,
    apache_options,
    disable_command,
    expected_site,
    module_undo,
    pending_reload,
    reload_undo,
    site_of,
    site_undo,
    vet_legacy_run,
)
from wizard.balancers.apache.vhost import (
    ALL_MODULES,
    BalancerFacts,
    Vhost,
    build_vhost,
    listen_port,
    needed_modules,
    render_vhost,
)
from wizard.balancers.node_target import read_targets
from wizard.balancers.reload_marker import reload_was_run
from wizard.balancers.reloading import ReloadChange, Reloader, ReloadingKind
from wizard.confluence.checks import apache_probe_address, public_host_header
from wizard.confluence.probes import Endpoint
from wizard.engine.diffs import unified_diff
from wizard.engine.files import link_note
from wizard.engine.model import (
    BALANCER,
    Change,
    ChangeDetails,
    Check,
    FileChange,
    Plan,
    UndoAction,
)
from wizard.engine.step import Context, Journal
from wizard.engine.undo import LEGACY_RUN, UndoRecordError, perform
from wizard.errors import CommandFailedError, WizardError
from wizard.transport.hosts import Host

# The particulars of each change the Apache plan makes (saved as the plan's details).


@dataclass(frozen=True, kw_only=True)
class VhostChange(FileChange):
    """The vhost file of the setup."""

    role = "vhost"

    apache: str
    layout: str
    websocket_style: str
    nodes: list[dict[str, Any]]
    synchrony_nodes: list[dict[str, Any]]
    settings: str


@dataclass(frozen=True, kw_only=True)
class ModulesFileChange(FileChange):
    """The file of LoadModule lines (the modules-file layout)."""

    role = "modules-file"

    modules: list[str]


@dataclass(frozen=True, kw_only=True)
class EnableChange(ChangeDetails):
    """A command that switches something on (Debian's a2ensite, a2enmod), and the one that switches
    it off again (shown only: the undo builds its own command from the answers when it runs)."""

    command: str
    undo: str


@dataclass(frozen=True, kw_only=True)
class SiteChange(EnableChange):
    role = "site"

    site: str


@dataclass(frozen=True, kw_only=True)
class ModuleChange(EnableChange):
    role = "module"

    module: str


@dataclass(frozen=True, kw_only=True)
class ApacheReloadChange(ReloadChange):
    """The test and reload, and how to see that Apache reads the vhost: ``includes`` lists the
    files Apache reads, ``owned`` are the wizard's (config_path first)."""

    includes: str
    owned: list[str]


def refuse_what_cannot_work(answers: Answers, facts: BalancerFacts, vhost: Vhost) -> None:
    apache = facts.apache
    version = apache.version
    if version[:2] != (2, 4) or version < MINIMUM_VERSION:
        raise ApacheError(
            f"The balancer runs Apache {apache.version_string}; the wizard needs Apache httpd 2.4 "
            f"({'.'.join(map(str, MINIMUM_VERSION))} or later, for WebSockets).",
            "Upgrade Apache httpd to a current 2.4 release, then run the step again.")
    if not apache.reads_config():
        raise ApacheConfigError(
            f"Apache would not read {apache.config_path}: no Include or IncludeOptional of its configuration "
            f"covers {apache.read_path}. Nothing was changed.",
            "Set balancer.apache.config_path to a .conf file in a folder Apache includes: "
            "/etc/apache2/sites-available on Debian (the wizard enables the site), /etc/httpd/conf.d on RHEL, "
            "or the IncludeOptional folder of a self-contained main file.")
    overrides = apache.error_overrides
    if overrides:
        where = "; ".join(f"{d.where()}: {d.text}" for d in overrides)
        first = overrides[0]
        raise ApacheConfigError(
            f"Apache's configuration turns ProxyErrorOverride on ({where}). Apache then replaces "
            "Synchrony's error answers with its own pages, which breaks Confluence's editor "
            "(Atlassian's Apache load balancer article, CONFSERVER-55946). Nothing was changed.",
            f"Remove that line from {first.file} (line {first.line}) or change it to `ProxyErrorOverride Off`, "
            "then run `confluence-lb-wizard apply --only balancer` again.")
    if apache.other_owner:
        raise ApacheConfigError(
            f"{apache.config_path} is managed by confluence-lb-wizard for the setup {apache.other_owner!r}, "
            f"not for {answers.name!r}. Nothing was changed.",
            "Give this setup its own balancer.apache.config_path, or roll back the other setup's balancer "
            "step first (`confluence-lb-wizard rollback balancer` with its state file).")
    ports = {vhost.listen_port, *vhost.redirect_ports}
    rivals = [v for v in apache.settings.vhosts
              if v.file not in apache.owned_paths and (v.port is None or v.port in ports)
              and v.answers_to(vhost.server_name)]
    if rivals:
        rival = rivals[0]
        name = posixpath.basename(rival.file)
        disable = ""
        if apache.layout.site_enablers:
            disable = f" (on Debian: `a2dissite {shlex.quote(name.removesuffix('.conf'))}`)"
        raise ApacheConfigError(
            f"Apache already has a virtual host for {vhost.server_name} on port "
            f"{rival.port if rival.port is not None else '*'}: {rival.where()}, which the wizard did not write "
            "for this setup. Apache would answer with only one of the two. Nothing was changed.",
            f"Disable or remove that virtual host{disable}, or set balancer.apache.config_path to {rival.file} "
            "so the wizard replaces it (a backup is kept), then run the step again.")
    if apache.tls.problem:
        raise ApacheError(
            apache.tls.problem + " Apache would stop when reloaded with it. Nothing was changed.",
            "Point balancer.apache.tls at a PEM certificate and its unencrypted PEM key on the balancer "
            "host, then run the step again.")
    public = answers.public_url.context_path
    for node in facts.nodes:
        if node.context_path != public:
            raise WizardError(
                f"{node.name} serves Confluence at {node.context_path or '/ (ROOT)'}, but public_url "
                f"{answers.public_url.url} uses {public or '/ (ROOT)'}. Nothing was changed.",
                "Use the same context path in public_url as in the nodes' server.xml <Context path>.")


def modules_to_enable(answers: Answers, apache: ApacheFacts) -> list[str]:
    """The modules to switch on, each after what it depends on (Debian's Depends lines)."""
    ordered: list[str] = []

    def add(module: str, seen: tuple[str, ...] = ()) -> None:
        if module in ordered or module in apache.loaded_elsewhere or module in seen:
            return
        source = apache.sources.get(module)
        for dependency in source.depends if source else ():
            add(dependency, seen + (module,))
        ordered.append(module)

    for module in needed_modules(answers, apache.version):
        add(module)
    for module in ordered:
        source = apache.sources.get(module)
        if source is None or not source.available:
            package = apache.layout.module_packages.get(module)
            where = source.path if source else f"mod_{module}.so"
            raise ApacheError(
                f"The Apache module {module} is not installed on the balancer host ({where} is missing).",
                f"Install it ({package if package else apache.layout.install_hint}), then run the step again.")
    return ordered


def modules_file_text(answers: Answers, apache: ApacheFacts, modules: list[str]) -> str:
    directory = apache.module_dir or apache.layout.module_dirs[0]
    lines = [HEADER_LINE.format(setup=answers.name),
             f"# The modules {apache.config_path} needs that no other file loads.", ""]
    for module in modules:
        lines += [f"<IfModule !{module_id(module)}>",
                  f"    LoadModule {module_id(module)} {posixpath.join(directory, f'mod_{module}.so')}",
                  "</IfModule>"]
    return "\n".join(lines) + "\n"


class ApacheBalancerStep(ReloadingKind[BalancerFacts]):
    kind = "apache"
    product = "Apache"
    reload_undo_kind = RELOAD_UNDO
    sticky_cookie = "ROUTEID"
    can_drain = True
    drain_summary = ("its members go to drain mode (status=+D) in every balancer, tested and gracefully "
                     "reloaded: Apache sends it no new request, sticky or not, and lets the ones under way finish")
    title = "The load balancer (Apache httpd)"
    explanation = ("Writes the Apache httpd virtual host for the setup: a sticky Confluence balancer "
                   "and Synchrony balancers (HTTP and WebSocket) over every node, TLS when the public URL "
                   "is https, and /balancer-manager closed. Apache tests it before it is reloaded.")
    rollback_note = "Apache is back on the configuration it had before, tested and reloaded."

    # What the shared checks ask of every kind.

    def endpoint(self, ctx: Context) -> Endpoint:
        options = apache_options(ctx.answers)
        public = ctx.answers.public_url
        return Endpoint("https" if options.tls is not None else "http", apache_probe_address(ctx),
                        listen_port(ctx.answers), public_host_header(public), public.host)

    def through_checks(self, ctx: Context, endpoint: Endpoint) -> list[Check]:
        # Status, heartbeat, WebSocket and the redirect are this step's own checks (made through
        # Apache, knowing the vhost's ports): nothing more to add.
        return []

    # Draining, for the rolling restart.

    def drain(self, ctx: Context, node: Node) -> None:
        ctx.progress("restart", BALANCER, f"draining {node.name}: status=+D, test, reload")
        self._set_drained(ctx, node, True)

    def undrain(self, ctx: Context, node: Node) -> None:
        ctx.progress("restart", BALANCER, f"undraining {node.name}: test, reload")
        self._set_drained(ctx, node, False)

    def _set_drained(self, ctx: Context, node: Node, drained: bool) -> None:
        facts = self.inspect(ctx)
        settings = facts.apache.settings
        set_drained(ctx, facts, _absolute(settings.pid_file, settings.server_root), node.name, drained)

    # Facts.

    def inspect(self, ctx: Context) -> BalancerFacts:
        answers = ctx.answers
        host = ctx.hosts.balancer()
        ctx.progress(self.name, BALANCER, "reading Apache's configuration")
        apache = read_apache_facts(host, answers, ALL_MODULES)

        return BalancerFacts(apache, read_targets(ctx),
                             pending_reload(ctx.previous.get(self.name)))

    # Plan (pure).

    def plan(self, answers: Answers, facts: BalancerFacts) -> Plan:
        apache = facts.apache
        vhost = build_vhost(answers, facts)
        refuse_what_cannot_work(answers, facts, vhost)
        text = render_vhost(vhost)
        new = text.encode("utf-8")
        changes: list[Change] = []
        path = apache.config_path
        if apache.current != new:
            before = apache.current.decode("utf-8", "replace") if apache.current is not None else ""
            if apache.current is None:
                what = "create"
            elif apache.current.startswith(HEADER_LINE.format(setup=answers.name).encode()):
                what = "update (the diff shows any edit made by hand since the wizard wrote it)"
            else:
                what = "replace a file the wizard did not write (a backup is kept)"
            changes.append(Change(
                target=BALANCER, kind="file",
                summary=f"{path}{link_note(apache.config_link)}: {what}: the vhost for {vhost.server_name} on port "
                        f"{vhost.listen_port}",
                diff=unified_diff(BALANCER, path, before, text),
                details=VhostChange(
                    path=path, apache=apache.version_string, layout=apache.layout.name,
                    websocket_style=vhost.ws_style,
                    nodes=[{"name": n.name, "address": n.host, "confluence_port": n.confluence_port,
                            "synchrony_port": n.synchrony_port, "synchrony_port_from": n.synchrony_port_source}
                           for n in facts.nodes],
                    synchrony_nodes=[dict(s) for s in vhost.synchrony_nodes], settings=vhost.settings_note()),
                payload=(apache.current, new)))
        modules = modules_to_enable(answers, apache)
        changes += self._module_changes(answers, apache, modules)
        if apache.enabler and not apache.site_enabled:
            site = site_of(path)
            enable = apache.enabler.enable_command(site)
            changes.append(Change(
                target=BALANCER, kind="command", summary=f"enable the site: {enable}",
                details=SiteChange(site=site, command=enable, undo=apache.enabler.disable_command(site))))
        if vhost.standalone:
            nodes_note = (", ".join(f"{n.name} {n.host}:{n.confluence_port}" for n in facts.nodes)
                          + "; /synchrony to a balancer over the standalone Synchrony cluster: "
                          + ", ".join(f"{s['name']} {s['host']}:{s['port']}" for s in vhost.synchrony_nodes))
        else:
            nodes_note = ", ".join(f"{n.name} {n.host}:{n.confluence_port} (Synchrony {n.synchrony_port})"
                                   for n in facts.nodes)
        facts_note = (f"Apache {apache.version_string} ({apache.layout.name} layout), WebSockets by "
                      f"{'upgrade=websocket members' if vhost.ws_style == 'upgrade' else 'rewrite to ws:// members'}; "
                      + nodes_note + f". Settings: {vhost.settings_note()}")
        if not changes and not facts.pending_reload:
            return Plan(self.name, "Apache already has this setup's configuration",
                        noop_reason=(f"{path} already holds what the wizard would write, every module it needs "
                                     f"is loaded{' and the site is enabled' if apache.enabler else ''}. "
                                     + facts_note))
        commands = apache.commands
        unfinished = ("; an earlier apply wrote the configuration but was stopped before Apache was "
                      "reloaded with it" if facts.pending_reload else "")
        changes.append(Change(
            target=BALANCER, kind="command",
            summary=f"test the configuration (`{commands.configtest}`), and only then reload Apache "
                    f"(`{commands.reload}`){unfinished}",
            details=ApacheReloadChange(
                configtest=commands.configtest, reload=commands.reload, includes=commands.includes,
                owned=list(apache.owned_paths),
                pid_file=_absolute(apache.settings.pid_file, apache.settings.server_root),
                resume_reload_id=facts.pending_reload)))
        if len(changes) == 1:
            summary = (f"finish the apply that was stopped before Apache was reloaded: {path} is already as "
                       f"planned; test the configuration and reload Apache. {facts_note}")
        else:
            summary = (f"configure Apache for {vhost.server_name}:{vhost.listen_port} over {len(facts.nodes)} "
                       f"node(s): {len(changes) - 1} change(s), then test and reload. {facts_note}")
        return Plan(self.name, summary, changes)

    def _module_changes(self, answers: Answers, apache: ApacheFacts, modules: list[str]) -> list[Change]:
        layout: Layout = apache.layout
        if not modules:
            return []
        if layout.module_mechanism == "a2enmod":
            assert layout.module_enable and layout.module_disable
            return [Change(target=BALANCER, kind="command",
                           summary=f"enable the module {m}: {layout.enable_module_command(m)}",
                           details=ModuleChange(module=m, command=layout.enable_module_command(m),
                                                undo=layout.disable_module_command(m)))
                    for m in modules]
        if layout.module_mechanism == "modules-file":
            assert apache.modules_file is not None
            text = modules_file_text(answers, apache, modules)
            if apache.modules_file_current == text.encode():
                return []
            before = (apache.modules_file_current or b"").decode("utf-8", "replace")
            return [Change(target=BALANCER, kind="file",
                           summary=f"{apache.modules_file}: load the module(s) {', '.join(modules)}",
                           diff=unified_diff(BALANCER, apache.modules_file, before, text),
                           details=ModulesFileChange(path=apache.modules_file, modules=modules),
                           payload=(apache.modules_file_current, text.encode()))]
        # "vhost": the LoadModule lines are part of the vhost file, so its change covers them.
        return []

    # Apply (in the order of ``ReloadingKind.apply``).

    def reload_undo(self, answers: Answers, token: str) -> UndoAction:
        return reload_undo(answers, token)

    def config_test(self, host: Host, command: str, *, after_change: bool) -> None:
        config_test(host, command, after_change=after_change)

    def apply_other(self, ctx: Context, host: Host, change: Change, journal: Journal) -> None:
        """Enable the site or a module (Debian), its undo recorded first: by name, the command that
        undoes it is built from the answers when it runs."""
        details = change.details
        assert isinstance(details, SiteChange | ModuleChange), f"not an Apache change: {details!r}"
        ctx.progress(self.name, BALANCER, details.command)
        journal.undo(site_undo(ctx.answers, details.site) if isinstance(details, SiteChange)
                     else module_undo(ctx.answers, details.module))
        host.run_checked(details.command, what=f"`{details.command}`")
        journal.changed(target=BALANCER, kind="command", summary=change.summary,
                        command=details.command, undo=details.undo)

    def confirm_loaded(self, host: Host, answers: Answers, reload: ReloadChange) -> None:
        assert isinstance(reload, ApacheReloadChange), f"not Apache's reload: {reload!r}"
        check_included(host, reload.includes, reload.owned)

    def reloader(self, host: Host, reload: ReloadChange) -> Reloader:
        pid_file = reload.pid_file
        was_running = running_pid(host, pid_file) is not None if pid_file else False

        def run() -> None:
            try:
                host.run_checked(reload.reload, timeout=120.0, what="Reloading Apache")
            except CommandFailedError as exc:
                raise ApacheReloadError(exc.message, "The previous configuration is put back and Apache reloaded "
                                                     "with it. Fix what the reload said, then run the step "
                                                     "again.") from exc
            if was_running and pid_file:
                wait_still_running(host, pid_file)

        return run

    # Undo.

    def undo(self, ctx: Context, action: UndoAction) -> None:
        """Perform an action ``vet_undo`` returned; the commands are built here from the answers."""
        if action.kind == SITE_UNDO or action.kind == MODULE_UNDO:
            host = ctx.hosts.balancer()
            layout = detect_layout(host, apache_options(ctx.answers))
            command = disable_command(layout, ctx.answers, action)
            if command is None:
                raise ApacheError(f"The {layout.name} layout of the balancer has no command to undo that "
                                  f"({action.description}).", f"Undo it by hand: {action.manual}")
            host.run_checked(command, what=f"`{command}`")
            return
        if action.kind != RELOAD_UNDO:
            perform(ctx, action)
            return
        reload_id = str(action.data.get("reload_id", action.data.get("token")))
        if not reload_was_run(ctx.previous.get(self.name), reload_id):
            return  # that apply never reloaded: Apache still runs what it ran before
        host = ctx.hosts.balancer()
        commands = commands_for(detect_layout(host, apache_options(ctx.answers)), apache_options(ctx.answers))
        config_test(host, commands.configtest, after_change=False)
        host.run_checked(commands.reload, timeout=120.0, what="Reloading Apache with the restored files")

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        return config_files(answers) if target == BALANCER else frozenset()

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """The step's own kinds checked against the answers (the only site it enables is config_path's;
        a module by a plain name; a reload by its token), described afresh; the rest generic."""
        if action.kind == LEGACY_RUN:
            return vet_legacy_run(answers, action, label)
        if action.kind not in (RELOAD_UNDO, SITE_UNDO, MODULE_UNDO):
            return super().vet_undo(answers, action, label)
        if action.kind == RELOAD_UNDO:
            token = self.vet_reload_id(action, label, EDITED_HINT)
            options = apache_options(answers)
            self.refuse_masked_commands({"configtest_command": options.configtest_command,
                                         "reload_command": options.reload_command}, label)
            return reload_undo(answers, token)
        if action.target != BALANCER:
            raise UndoRecordError(f"The state file's {label} ({action.kind}) names {action.target!r}, not the "
                                  "balancer; rollback refused and nothing was undone.", EDITED_HINT)
        data = action.data
        if action.kind == SITE_UNDO:
            site = data.get("site")
            expected = expected_site(answers)
            if site != expected or expected is None:
                raise UndoRecordError(
                    f"The state file's {label} would disable the Apache site {site!r}, which is not the site of "
                    f"balancer.apache.config_path ({expected!r}); rollback refused and nothing was undone.", EDITED_HINT)
            return site_undo(answers, expected)
        module = data.get("module")
        if not isinstance(module, str) or module not in KNOWN_MODULES:
            raise UndoRecordError(
                f"The state file's {label} would switch off the Apache module {module!r}, which the wizard never "
                "switches on; rollback refused and nothing was undone.", EDITED_HINT)
        return module_undo(answers, module)

    # Verify.

    def verify(self, ctx: Context) -> list[Check]:
        return ApacheChecks(ctx).run()


def _absolute(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    return path if posixpath.isabs(path) or not root else posixpath.join(root, path)


STEP = ApacheBalancerStep()

