"""Balancer, Apache kind: the vhost in front of the nodes, written, tested, then reloaded.

The order of ``apply`` is the safety (certbot's installer does the same): the undo is
recorded before each change, the configuration is tested with Apache's own test
before anything is reloaded, and a failed test leaves Apache serving what it served,
while the runner puts the previous files back. The first undo recorded is a reload
(undone last, so after every file is back) that only runs when this apply's
configuration was actually loaded, and only after the restored files pass the test.

An apply killed between writing the files and reloading Apache leaves the files as
planned but Apache on its old configuration. So before the first write a "reload
pending" marker goes into the step's record, and once Apache runs the new
configuration a "reloaded" one: the next apply finds the marker without its end and
plans the test and reload although every file is already in place.

The plan is pure: the vhost is rendered from the answers and the facts (Apache's
version, its modules, its listeners; each node's ports from its own files), and
compared byte for byte with what is on the host. A second apply finds everything in
place and plans nothing.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wizard.answers_model import Answers, ApacheOptions, Node, Tls
from wizard.balancers.apache.facts import (HEADER_LINE, LAYOUTS, MINIMUM_VERSION, UPGRADE_PARAMETER_VERSION, ApacheConfigError, config_files,
                           ApacheError, ApacheFacts, Layout, SiteEnabler, checked_site_name, commands_for, config_test_lines,
                           detect_layout, module_id, parse_includes, read_apache_facts, resolve_config_path)
from wizard.confluence.checks import apache_probe_address as _probe_address
from wizard.errors import CommandFailedError, StepFailedError, WizardError
from wizard.engine.files import link_note, replace_file
from wizard.transport.hosts import Host
from wizard.engine.model import BALANCER, Change, Check, Plan, UndoAction
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.probes import websocket_upgrade
from wizard.render import ConfigText, render
from wizard.engine.step import Context, Journal, Step
from wizard.steps.connector import unified_diff
from wizard.engine.redact import MASK
from wizard.engine.undo import LEGACY_RUN, UndoRecordError, legacy_command_error, perform

TEMPLATE = "apache/confluence-lb.conf.j2"
#: The undo kind of the final reload (performed by this step, see ``undo``).
RELOAD_UNDO = "apache-reload"
#: The undo kinds of enabling the vhost's site and a module (Debian): what to disable, by name;
#: the command is built from the answers' layout when it is performed.
SITE_UNDO = "apache-site"
MODULE_UNDO = "apache-module"
#: Change kinds recorded around the writes: the first before anything is written, the
#: second once Apache runs the new configuration. One without the other (same reload_id)
#: is an apply that was stopped before its reload was done.
RELOAD_PENDING = "reload-pending"
RELOAD_DONE = "reloaded"
#: How long a reloaded Apache must stay up before the reload counts as done. A graceful
#: reload that fails after the test (a port taken, a key Apache cannot use) ends the
#: server within a fraction of a second.
RELOAD_SETTLE_SECONDS = 1.0
#: How long a reload command that restarts Apache (rather than reloading it) may take to
#: bring the new server up.
RESTART_SECONDS = 10.0
#: How long a verify check retries while answers may still come from before the reload.
VERIFY_PATIENCE_SECONDS = 5.0

# What each part of the configuration needs loaded, in the order LoadModule lines must
# come (a module after the ones it builds on).
MODULE_ORDER = ("authz_core", "authz_host", "headers", "rewrite", "ssl", "proxy", "proxy_http",
                "proxy_wstunnel", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests")
BASE_MODULES = ("authz_core", "authz_host", "headers", "proxy", "proxy_http", "slotmem_shm",
                "proxy_balancer", "lbmethod_byrequests")
FEATURE_MODULES = {
    "websocket-rewrite": ("proxy_wstunnel", "rewrite"),
    "tls": ("ssl", "rewrite"),
    "context-path": ("rewrite",),
}
#: Every module any answers may need: inspect reads their availability before the plan
#: (which depends on the version it reads at the same time) chooses among them.
ALL_MODULES = MODULE_ORDER


class ApacheConfigTestError(StepFailedError):
    """Apache's own test refused the configuration; nothing was reloaded."""


class ApacheReloadError(StepFailedError):
    """Apache did not come back from the reload."""


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class NodeTarget:
    """Where the balancer sends one node's traffic, from the node's own files."""

    name: str
    host: str  # ready for a URL (IPv6 in brackets)
    confluence_port: int
    synchrony_port: int
    context_path: str
    synchrony_port_source: str


@dataclass(frozen=True)
class BalancerFacts:
    apache: ApacheFacts
    nodes: tuple[NodeTarget, ...]
    #: The reload id of an earlier apply stopped after it changed files and before Apache was
    #: reloaded with them (its undo still live), or None.
    pending_reload: str | None = None


def pending_reload(record: Any) -> str | None:
    """The reload id of the newest apply in ``record`` (the step's state record) that marked a
    reload pending and never finished it, while its reload undo is still to be done.

    An apply that failed, or was rolled back, had its undo performed: its files are back
    and nothing is pending. (Ids live under ``reload_id``, a name the state's masking of
    secret-looking keys leaves alone.)
    """
    changes = [c for c in getattr(record, "changes", None) or [] if isinstance(c, dict)]
    undo = [u for u in getattr(record, "undo", None) or [] if isinstance(u, dict)]
    finished = {c.get("reload_id") for c in changes if c.get("kind") == RELOAD_DONE}
    live = {(u.get("data") or {}).get("reload_id") for u in undo
            if u.get("kind") == RELOAD_UNDO and not u.get("undone") and isinstance(u.get("data"), dict)}
    for change in reversed(changes):
        reload_id = change.get("reload_id")
        if change.get("kind") == RELOAD_PENDING and isinstance(reload_id, str) and reload_id \
                and reload_id not in finished and reload_id in live:
            return reload_id
    return None


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def websocket_style(version: tuple[int, int, int]) -> str:
    """``upgrade`` (members with upgrade=websocket) from 2.4.47, else ``rewrite`` to ws:// members."""
    return "upgrade" if version >= UPGRADE_PARAMETER_VERSION else "rewrite"


def needed_modules(answers: Answers, version: tuple[int, int, int]) -> tuple[str, ...]:
    """The modules the wizard's configuration uses for these answers, in LoadModule order."""
    apache = answers.balancer.apache
    assert apache is not None
    wanted = set(BASE_MODULES)
    if websocket_style(version) == "rewrite":
        wanted.update(FEATURE_MODULES["websocket-rewrite"])
    if apache.tls is not None:
        wanted.update(FEATURE_MODULES["tls"])
    if answers.public_url.context_path:
        wanted.update(FEATURE_MODULES["context-path"])
    return tuple(m for m in MODULE_ORDER if m in wanted)


# --------------------------------------------------------------------------- the vhost model


@dataclass(frozen=True)
class LoadModuleLine:
    id: str
    path: str


@dataclass(frozen=True)
class Vhost:
    """Everything the template needs, computed from answers and facts (pure)."""

    setup: str
    version: str
    server_name: str
    listen_port: int
    tls: Tls | None
    direct: bool
    ws_style: str
    context_path: str
    root_redirect: str           # the context path escaped for a RewriteRule substitution
    ws_path: str
    ws_pattern: str              # ws_path escaped for a RewriteRule pattern
    nodes: tuple[dict[str, Any], ...]
    manager_allow: tuple[str, ...]
    load_modules: tuple[LoadModuleLine, ...] = ()
    listens: tuple[str, ...] = ()
    redirect_ports: tuple[int, ...] = ()
    https_origin: str = ""

    @property
    def redirect_addresses(self) -> list[str]:
        return [f"*:{port}" for port in self.redirect_ports]

    @property
    def rewrite_in_vhost(self) -> bool:
        return self.ws_style == "rewrite" or bool(self.context_path)


def _rewrite_substitution(text: str) -> ConfigText:
    # $ and % start back-references and variables in a RewriteRule substitution; the escaped
    # text is the wizard's own (the path's segments are checked), so it is written as it is.
    return ConfigText(re.sub(r"([$%\\])", r"\\\1", text))


def build_vhost(answers: Answers, facts: BalancerFacts) -> Vhost:
    """The template's input for these answers on this Apache (pure)."""
    options = answers.balancer.apache
    assert options is not None
    apache = facts.apache
    url = answers.public_url
    listen = options.listen_port or url.port
    tls = options.tls
    listened = apache.listened_ports()
    listens: list[str] = []
    if listen not in listened:
        # Apache assumes https only on 443; any other TLS port must say so.
        listens.append(f"{listen} https" if tls and listen != 443 else str(listen))
    redirect: tuple[int, ...] = ()
    if tls and options.http_port is not None:
        # The admin named the plain-HTTP port: the redirect lives there and nowhere else.
        redirect = (options.http_port,)
        if options.http_port not in listened:
            listens.append(str(options.http_port))
    elif tls:
        # The redirect serves plain HTTP wherever this Apache already listens for it
        # (80 on a stock Debian or RHEL), or on 80, made to listen, when it does not.
        plain = sorted(port for port, protocol in listened.items()
                       if port != listen and protocol in (None, "http") and not (port == 443 and protocol is None))
        if not plain:
            plain = [80]
            listens.append("80")
        redirect = tuple(plain)
    style = websocket_style(apache.version)
    direct = answers.synchrony.mode == "direct"
    ws_path = "/synchrony/v1/bayeux-sync1" if direct else f"{url.context_path}/synchrony-proxy/v1/bayeux-sync1"
    load: tuple[LoadModuleLine, ...] = ()
    if apache.layout.module_mechanism == "vhost":
        directory = apache.module_dir or apache.layout.module_dirs[0]
        load = tuple(LoadModuleLine(module_id(m), posixpath.join(directory, f"mod_{m}.so"))
                     for m in needed_modules(answers, apache.version) if apache.loaded.get(m) != "static")
    https_origin = ""
    if tls:
        https_origin = f"https://{url.host}" + ("" if url.port == 443 else f":{url.port}")
    return Vhost(
        setup=answers.name, version=apache.version_string, server_name=options.server_name or url.host,
        listen_port=listen, tls=tls, direct=direct, ws_style=style, context_path=url.context_path,
        root_redirect=_rewrite_substitution(url.context_path), ws_path=ws_path, ws_pattern=ConfigText(re.escape(ws_path)),  # a regex of checked path segments
        nodes=tuple({"name": n.name, "host": n.host, "confluence_port": n.confluence_port,
                     "synchrony_port": n.synchrony_port} for n in facts.nodes),
        manager_allow=tuple(options.manager_allow), load_modules=load, listens=tuple(listens),
        redirect_ports=redirect, https_origin=https_origin)


def render_vhost(vhost: Vhost) -> str:
    text = render(TEMPLATE, vhost=vhost)
    assert text.startswith(HEADER_LINE.format(setup=vhost.setup)), "the template lost its header"
    return text


# --------------------------------------------------------------------------- refusals (pure)


def _refuse_what_cannot_work(answers: Answers, facts: BalancerFacts, vhost: Vhost) -> None:
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


def _modules_to_enable(answers: Answers, apache: ApacheFacts) -> list[str]:
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


def _modules_file_text(answers: Answers, apache: ApacheFacts, modules: list[str]) -> str:
    directory = apache.module_dir or apache.layout.module_dirs[0]
    lines = [HEADER_LINE.format(setup=answers.name),
             f"# The modules {apache.config_path} needs that no other file loads.", ""]
    for module in modules:
        lines += [f"<IfModule !{module_id(module)}>",
                  f"    LoadModule {module_id(module)} {posixpath.join(directory, f'mod_{module}.so')}",
                  "</IfModule>"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the step


class ApacheBalancerStep(Step):
    name = "balancer"
    title = "The load balancer (Apache httpd)"
    explanation = ("Writes the Apache httpd virtual host for the setup: a sticky Confluence balancer "
                   "and Synchrony balancers (HTTP and WebSocket) over every node, TLS when the public URL "
                   "is https, and /balancer-manager closed. Apache tests it before it is reloaded.")
    rollback_note = "Apache is back on the configuration it had before, tested and reloaded."

    # Facts.

    def inspect(self, ctx: Context) -> BalancerFacts:
        answers = ctx.answers
        host = ctx.hosts.balancer()
        ctx.progress(self.name, BALANCER, "reading Apache's configuration")
        apache = read_apache_facts(host, answers, ALL_MODULES)

        def target(node: Node) -> NodeTarget:
            fact = read_node_facts(ctx.hosts.node(node), node, answers)
            return NodeTarget(node.name, _url_host(node.address), fact.confluence_port, fact.synchrony_port,
                              fact.context_path, fact.synchrony_port_source)

        return BalancerFacts(apache, tuple(ctx.for_each_node(target)),
                             pending_reload(ctx.previous.get(self.name)))

    # Plan (pure).

    def plan(self, answers: Answers, facts: BalancerFacts) -> Plan:
        apache = facts.apache
        vhost = build_vhost(answers, facts)
        _refuse_what_cannot_work(answers, facts, vhost)
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
                details={"role": "vhost", "path": path, "apache": apache.version_string,
                         "layout": apache.layout.name, "websocket_style": vhost.ws_style,
                         "nodes": [{"name": n.name, "address": n.host, "confluence_port": n.confluence_port,
                                    "synchrony_port": n.synchrony_port, "synchrony_port_from": n.synchrony_port_source}
                                   for n in facts.nodes]},
                payload=(apache.current, new)))
        modules = _modules_to_enable(answers, apache)
        changes += self._module_changes(answers, apache, modules)
        if apache.enabler and not apache.site_enabled:
            site = site_of(path)
            enable = apache.enabler.enable_command(site)
            changes.append(Change(
                target=BALANCER, kind="command", summary=f"enable the site: {enable}",
                details={"role": "site", "site": site, "command": enable,
                         "undo": apache.enabler.disable_command(site)}))
        facts_note = (f"Apache {apache.version_string} ({apache.layout.name} layout), WebSockets by "
                      f"{'upgrade=websocket members' if vhost.ws_style == 'upgrade' else 'rewrite to ws:// members'}; "
                      + ", ".join(f"{n.name} {n.host}:{n.confluence_port} (Synchrony {n.synchrony_port})"
                                  for n in facts.nodes))
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
            details={"role": "reload", "configtest": commands.configtest, "reload": commands.reload,
                     "includes": commands.includes, "owned": list(apache.owned_paths),
                     "pid_file": _absolute(apache.settings.pid_file, apache.settings.server_root),
                     "resume_reload_id": facts.pending_reload}))
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
                           details={"role": "module", "module": m,
                                    "command": layout.enable_module_command(m),
                                    "undo": layout.disable_module_command(m)})
                    for m in modules]
        if layout.module_mechanism == "modules-file":
            assert apache.modules_file is not None
            text = _modules_file_text(answers, apache, modules)
            if apache.modules_file_current == text.encode():
                return []
            before = (apache.modules_file_current or b"").decode("utf-8", "replace")
            return [Change(target=BALANCER, kind="file",
                           summary=f"{apache.modules_file}: load the module(s) {', '.join(modules)}",
                           diff=unified_diff(BALANCER, apache.modules_file, before, text),
                           details={"role": "modules-file", "path": apache.modules_file, "modules": modules},
                           payload=(apache.modules_file_current, text.encode()))]
        # "vhost": the LoadModule lines are part of the vhost file, so its change covers them.
        return []

    # Apply.

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        host = ctx.hosts.balancer()
        final = next(c for c in plan.changes if c.details.get("role") == "reload")
        details = final.details
        resumed = details.get("resume_reload_id")
        token = resumed or secrets.token_hex(8)
        if not resumed:
            # Recorded first, so undone last: once the files are back, test them and reload.
            journal.undo(_reload_undo(ctx.answers, token))
            # Before any write: a kill from here on leaves a pending reload the next apply finishes.
            journal.changed(target=BALANCER, kind=RELOAD_PENDING, reload_id=token,
                            summary="Apache is to be tested and reloaded once the changes below are made")
        # Resuming: the interrupted apply's reload undo (recorded before its writes) stays the
        # last one undone, after its files and this apply's are back.
        for change in plan.changes:
            ctx.check_cancelled()
            role = change.details["role"]
            if role in ("vhost", "modules-file"):
                before, after = change.payload
                ctx.progress(self.name, BALANCER, f"writing {change.details['path']}")
                replace_file(host, BALANCER, change.details["path"], planned_from=before, new=after,
                             journal=journal, summary=change.summary)
            elif role in ("module", "site"):
                ctx.progress(self.name, BALANCER, change.details["command"])
                journal.undo(_site_undo(ctx.answers, change.details["site"]) if role == "site"
                             else _module_undo(ctx.answers, change.details["module"]))
                host.run_checked(change.details["command"], what=f"`{change.details['command']}`")
                journal.changed(target=BALANCER, kind="command", summary=change.summary,
                                command=change.details["command"], undo=change.details["undo"])
        ctx.progress(self.name, BALANCER, "testing the configuration")
        _config_test(host, details["configtest"], after_change=True)
        _check_included(host, details)
        pid_file = details.get("pid_file")
        was_running = _running_pid(host, pid_file) is not None if pid_file else False
        # Recorded before the reload runs: a reload that fails half-way still gets undone.
        journal.changed(target=BALANCER, kind="reload", reload_id=token, command=details["reload"],
                        summary=f"reloaded Apache: {details['reload']}")
        ctx.progress(self.name, BALANCER, "reloading Apache")
        try:
            host.run_checked(details["reload"], timeout=120.0, what="Reloading Apache")
        except CommandFailedError as exc:
            raise ApacheReloadError(exc.message, "The previous configuration is put back and Apache reloaded "
                                                 "with it. Fix what the reload said, then run the step again.") from exc
        if was_running:
            _wait_still_running(host, pid_file)
        journal.changed(target=BALANCER, kind=RELOAD_DONE, reload_id=token,
                        summary="Apache runs the new configuration")
        ctx.progress(self.name, BALANCER, "reloaded", 1.0)
        if len(plan.changes) == 1:
            return "Apache tested and reloaded, finishing the apply that was stopped before its reload"
        return f"Apache configured, tested and reloaded ({len(plan.changes) - 1} change(s))"

    # Undo.

    def undo(self, ctx: Context, action: UndoAction) -> None:
        """Perform an action ``vet_undo`` returned; the commands are built here from the answers."""
        if action.kind == SITE_UNDO or action.kind == MODULE_UNDO:
            host = ctx.hosts.balancer()
            layout = detect_layout(host, _options(ctx.answers))
            command = _disable_command(layout, ctx.answers, action)
            if command is None:
                raise ApacheError(f"The {layout.name} layout of the balancer has no command to undo that "
                                  f"({action.description}).", f"Undo it by hand: {action.manual}")
            host.run_checked(command, what=f"`{command}`")
            return
        if action.kind != RELOAD_UNDO:
            perform(ctx, action)
            return
        record = ctx.previous.get(self.name)
        changes = getattr(record, "changes", None)
        reload_id = action.data.get("reload_id", action.data.get("token"))
        if changes is not None and not any(_same_reload(c, reload_id)
                                           for c in changes):
            return  # that apply never reloaded: Apache still runs what it ran before
        host = ctx.hosts.balancer()
        commands = commands_for(detect_layout(host, _options(ctx.answers)), _options(ctx.answers))
        _config_test(host, commands.configtest, after_change=False)
        host.run_checked(commands.reload, timeout=120.0, what="Reloading Apache with the restored files")

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        return config_files(answers) if target == BALANCER else frozenset()

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """The step's own kinds checked against the answers (the only site it enables is config_path's;
        a module by a plain name; a reload by its token), described afresh; the rest generic."""
        if action.kind == LEGACY_RUN:
            return _vet_legacy_run(answers, action, label)
        if action.kind not in (RELOAD_UNDO, SITE_UNDO, MODULE_UNDO):
            return super().vet_undo(answers, action, label)
        if action.target != BALANCER:
            raise UndoRecordError(f"The state file's {label} ({action.kind}) names {action.target!r}, not the "
                                  "balancer; rollback refused and nothing was undone.", _EDITED)
        data = action.data
        if action.kind == RELOAD_UNDO:
            # Older versions called it "token", and the state's masking turned it into MASK on both
            # sides (the change and the undo): such a record matches any reload of the step.
            token = data.get("reload_id", data.get("token"))
            if not isinstance(token, str) or not (token == MASK or re.fullmatch(r"[0-9a-f]{1,64}", token)):
                raise UndoRecordError(f"The state file's {label} (a reload of Apache) has no valid token; "
                                      "rollback refused and nothing was undone.", _EDITED)
            options = _options(answers)
            for key in ("configtest_command", "reload_command"):
                command = getattr(options, key)
                if command and MASK in command:
                    # A masked secret would make the command something else (a syntax error at best).
                    raise UndoRecordError(
                        f"balancer.apache.{key} in these answers holds a masked secret ({command!r}), so it "
                        "cannot be run; rollback refused and nothing was undone.",
                        "Put the real command back in the answers held by the state file, reading the secret at "
                        "run time ($(cat FILE) or $VARIABLE) instead of writing it, then roll back again.")
            return _reload_undo(answers, token)
        if action.kind == SITE_UNDO:
            site = data.get("site")
            expected = _expected_site(answers)
            if site != expected or expected is None:
                raise UndoRecordError(
                    f"The state file's {label} would disable the Apache site {site!r}, which is not the site of "
                    f"balancer.apache.config_path ({expected!r}); rollback refused and nothing was undone.", _EDITED)
            return _site_undo(answers, expected)
        module = data.get("module")
        if not isinstance(module, str) or module not in _KNOWN_MODULES:
            raise UndoRecordError(
                f"The state file's {label} would switch off the Apache module {module!r}, which the wizard never "
                "switches on; rollback refused and nothing was undone.", _EDITED)
        return _module_undo(answers, module)

    # Verify.

    def verify(self, ctx: Context) -> list[Check]:
        return ApacheChecks(ctx).run()


def _absolute(path: str | None, root: str | None) -> str | None:
    if not path:
        return None
    return path if posixpath.isabs(path) or not root else posixpath.join(root, path)


def _options(answers: Answers) -> ApacheOptions:
    options = answers.balancer.apache
    if options is None:
        raise WizardError("The answers have no balancer.apache section, so the Apache balancer cannot be undone.",
                          "Roll back with the answers of the setup that applied it.")
    return options


def site_of(config_path: str) -> str:
    """The Debian site name of the vhost file (its name without .conf), checked for a command line."""
    return checked_site_name(posixpath.basename(config_path).removesuffix(".conf"))


def _debian_config_path(answers: Answers) -> str:
    path = _options(answers).config_path or LAYOUTS["debian"].default_config_path
    assert path is not None
    return path


def _expected_site(answers: Answers) -> str | None:
    """The only site this setup enables: the one of config_path (or of the Debian default)."""
    try:
        return site_of(_debian_config_path(answers))
    except ApacheError:
        return None


def _enabler(layout: Layout, answers: Answers) -> SiteEnabler | None:
    """How config_path's folder is enabled on this layout (a2ensite, a2enconf), if it is."""
    return layout.enabler_for(_debian_config_path(answers) if layout.name == "debian"
                              else resolve_config_path(layout, _options(answers)))


#: Every module the wizard may switch on: its own, and what Debian's .load files make them need.
_KNOWN_MODULES = frozenset(MODULE_ORDER) | frozenset(
    {"socache_shmcb", "setenvif", "mime", "proxy_connect", "proxy_hcheck", "watchdog", "authn_core"})


def _reload_undo(answers: Answers, token: str) -> UndoAction:
    """The undo of the reload: test the restored files and reload, with the answers' commands (or the
    layout's, chosen when it is performed), never a command stored in the state file."""
    options = _options(answers)
    configtest = options.configtest_command or "Apache's own configuration test for its layout"
    reload = options.reload_command or "its graceful reload"
    return UndoAction(
        kind=RELOAD_UNDO, target=BALANCER,
        description=f"Test the restored Apache configuration ({configtest}) and reload Apache with it ({reload}).",
        manual=(f"{options.configtest_command} && {options.reload_command}"
                if options.configtest_command and options.reload_command
                else "apache2ctl -t && apache2ctl graceful (Debian), httpd -t && apachectl graceful (RHEL)"),
        data={"reload_id": token})


def _same_reload(change: Any, reload_id: str) -> bool:
    """Whether a recorded change is the reload of the apply that recorded ``reload_id``."""
    if not isinstance(change, dict) or change.get("kind") != "reload":
        return False
    return change.get("reload_id", change.get("token")) == reload_id


def _site_undo(answers: Answers, site: str) -> UndoAction:
    enabler = _enabler(LAYOUTS["debian"], answers) or LAYOUTS["debian"].site_enablers[0]
    command = enabler.disable_command(site)
    return UndoAction(kind=SITE_UNDO, target=BALANCER,
                      description=f"Disable the Apache site {site}, which the wizard enabled ({command}).",
                      manual=command, data={"site": site})


def _module_undo(answers: Answers, module: str) -> UndoAction:
    command = LAYOUTS["debian"].disable_module_command(module)
    return UndoAction(kind=MODULE_UNDO, target=BALANCER,
                      description=f"Switch the Apache module {module} off again, which the wizard switched on "
                                  f"({command}).",
                      manual=command, data={"module": module})


def _disable_command(layout: Layout, answers: Answers, action: UndoAction) -> str | None:
    """The command undoing a site or module record on this layout, built from checked names."""
    if action.kind == SITE_UNDO:
        enabler = _enabler(layout, answers)
        return enabler.disable_command(action.data["site"]) if enabler else None
    return layout.disable_module_command(action.data["module"]) if layout.module_disable else None


def _vet_legacy_run(answers: Answers, action: UndoAction, label: str) -> UndoAction:
    """An older version's ``run`` record: never run. When its text is exactly the command this
    version would build itself (a2dissite of the answers' site, a2dismod of a known module), the
    structured action is performed instead; anything else is refused with what to run by hand."""
    command = action.data.get("command")
    site = _expected_site(answers)
    debian = LAYOUTS["debian"]
    if action.target == BALANCER and isinstance(command, str):
        enabler = _enabler(debian, answers)
        if site is not None and enabler is not None and command == enabler.disable.format(name=site):
            return _site_undo(answers, site)
        for module in sorted(_KNOWN_MODULES):
            if command == (debian.module_disable or "").format(module=module):
                return _module_undo(answers, module)
    raise legacy_command_error(action, label)


_EDITED = ("The state file was edited by hand or does not belong to these answers. Find out what that change was "
           "and undo it by hand if it was made, then remove the record from the state file.")


def _config_test(host: Host, command: str, *, after_change: bool) -> None:
    result = host.run(command, timeout=120.0)
    if result.ok:
        return
    lines = config_test_lines(result.stderr + "\n" + result.stdout)
    if after_change:
        raise ApacheConfigTestError(
            f"Apache's configuration test failed after the change, so Apache was NOT reloaded and keeps "
            f"serving its previous configuration. `{command}` said:\n{lines}",
            "The previous files are put back. Fix what Apache names above (a path in the answers, a module, "
            "another file of the configuration), then run `confluence-lb-wizard apply --only balancer` again.")
    raise ApacheConfigTestError(
        f"The restored Apache configuration fails Apache's own test, so Apache was not reloaded with it "
        f"(it keeps serving what it runs now). `{command}` said:\n{lines}",
        "Fix what Apache names above by hand, then run the test and reload yourself.")


def _check_included(host: Host, details: dict[str, Any]) -> None:
    """Apache must actually read the file; a config_path outside every Include does nothing."""
    result = host.run(details["includes"], timeout=60.0)
    included = set(parse_includes(result.stdout + "\n" + result.stderr))
    if result.ok and not included.intersection(details["owned"]):
        raise StepFailedError(
            f"Apache does not read {details['owned'][0]}: no Include of its configuration covers that file, "
            "so the new configuration would have no effect. Nothing was reloaded.",
            "Put config_path in a folder Apache includes (sites-available on Debian, which the wizard "
            "enables; conf.d on RHEL; the IncludeOptional folder of a self-contained main file).")


def _running_pid(host: Host, pid_file: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive, in one round trip.

    kill -0 fails for another user's process even when it lives (/proc tells then), and
    succeeds for a dead server its parent has not reaped yet (a zombie, which /proc shows).
    """
    result = host.run(
        f"pid=$(cat {shlex.quote(pid_file)} 2>/dev/null) && [ -n \"$pid\" ] && "
        f"( kill -0 \"$pid\" 2>/dev/null || test -d \"/proc/$pid\" ) && "
        f"! grep -qs '^State:[[:space:]]*Z' \"/proc/$pid/status\" && echo \"$pid\"", timeout=20.0)
    text = result.stdout.strip()
    return int(text) if result.ok and text.isdigit() else None


def _wait_still_running(host: Host, pid_file: str) -> None:
    """After the settle time, the pid file must name a live Apache (the same one after a graceful
    reload, a new one, within RESTART_SECONDS, when the reload command restarts)."""
    time.sleep(RELOAD_SETTLE_SECONDS)
    deadline = time.monotonic() + RESTART_SECONDS
    while _running_pid(host, pid_file) is None:
        if time.monotonic() > deadline:
            raise ApacheReloadError(
                f"Apache stopped after the reload (no live process in {pid_file}): the new configuration "
                "passed the test but Apache could not start with it (a port in use, a certificate it cannot use).",
                "The previous configuration is put back and Apache started again with it. Look at Apache's "
                "error log for the reason, fix it, then run the step again.")
        time.sleep(0.2)


# --------------------------------------------------------------------------- checks


@dataclass
class Answer:
    """One HTTP answer through the balancer, with every Set-Cookie kept."""

    url: str
    status: int | None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def seen(self) -> str:
        if self.status is None:
            return f"{self.url}: no answer ({self.error})"
        return f"{self.url}: HTTP {self.status} {self.body[:100].strip()!r}"


class ApacheChecks:
    """The balancer's checks, made through Apache itself with the vhost's Host header."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.answers = ctx.answers
        options = ctx.answers.balancer.apache
        assert options is not None
        self.options = options
        self.url = ctx.answers.public_url
        self.server_name = options.server_name or self.url.host
        self.port = options.listen_port or self.url.port
        self.tls = options.tls is not None
        self.address = _url_host(_probe_address(ctx))
        self.base = f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"
        self.nodes = {node.name for node in ctx.answers.nodes}

    def run(self) -> list[Check]:
        checks = [self.status(), self.heartbeat(), self.websocket(), self.manager()]
        if self.tls:
            checks.append(self.redirect())
        return checks

    def get(self, path: str, *, base: str | None = None) -> Answer:
        import httpx

        url = (base or self.base) + path
        try:
            # By address with the vhost's Host header: what is checked is Apache's routing, not the
            # certificate (which names the public host, and may be self-signed in a lab).
            with httpx.Client(timeout=5.0, verify=False, follow_redirects=False) as client:
                response = client.get(url, headers={"Host": self.server_name})
        except httpx.HTTPError as exc:
            return Answer(url, None, error=str(exc) or type(exc).__name__)
        return Answer(url, response.status_code, response.text[:2000],
                      {k.lower(): v for k, v in response.headers.items()},
                      response.headers.get_list("set-cookie"))

    def patiently(self, probe: Callable[[], Answer], ok: Callable[[Answer], bool]) -> Answer:
        """Right after a graceful reload an answer may still come from the old configuration."""
        deadline = time.monotonic() + VERIFY_PATIENCE_SECONDS
        answer = probe()
        while not ok(answer) and time.monotonic() < deadline:
            time.sleep(0.25)
            answer = probe()
        return answer

    def status(self) -> Check:
        path = f"{self.url.context_path}/status"
        answer = self.patiently(lambda: self.get(path), lambda a: _state(a) == "RUNNING" and bool(_route(a)))
        running = _state(answer) == "RUNNING"
        route = _route(answer)
        sticky = route in self.nodes
        seen = answer.seen + (f"; ROUTEID route {route!r}" if route else "; no ROUTEID cookie")
        fix = ""
        if not running:
            fix = ("Check that the nodes answer RUNNING on their own (`verify`), that Apache's error log shows no "
                   "proxy errors, then run `apply --only balancer` again.")
        elif not sticky:
            fix = "Sticky sessions are not working: run `apply --only balancer` to restore the wizard's vhost."
        return Check("Confluence /status RUNNING through the balancer, with a ROUTEID cookie", BALANCER,
                     running and sticky, seen, fix)

    def heartbeat(self) -> Check:
        path = ("/synchrony/heartbeat" if self.answers.synchrony.mode == "direct"
                else f"{self.url.context_path}/synchrony-proxy/heartbeat")
        answer = self.patiently(lambda: self.get(path), _heartbeat_ok)
        fix = "" if _heartbeat_ok(answer) else (
            "Synchrony does not answer through the balancer: check that each node's Synchrony runs and that "
            "the balancer host reaches its port"
            + (" (the Synchrony port must be open to the balancer)" if self.answers.synchrony.mode == "direct"
               else "") + ", then run `apply --only balancer` again.")
        return Check(f"Synchrony heartbeat OK through the balancer ({path})", BALANCER, _heartbeat_ok(answer),
                     answer.seen, fix)

    def websocket(self) -> Check:
        path = ("/synchrony/v1/bayeux-sync1" if self.answers.synchrony.mode == "direct"
                else f"{self.url.context_path}/synchrony-proxy/v1/bayeux-sync1")
        status, seen = 0, ""
        deadline = time.monotonic() + VERIFY_PATIENCE_SECONDS
        while True:
            status, seen = websocket_upgrade(self.address.strip("[]"), self.port, path, self.server_name,
                                             tls=self.tls)
            if status == 101 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        passed = status == 101
        return Check(f"WebSocket upgrade through the balancer ({path})", BALANCER, passed, seen,
                     "" if passed else "The editor needs the WebSocket upgrade: run `apply --only balancer` to "
                                       "restore the wizard's vhost, and check the Synchrony balancer in it.")

    def manager(self) -> Check:
        answer = self.get("/balancer-manager")
        allowed = bool(self.options.manager_allow)
        passed = answer.status in (401, 403, 404) or (allowed and answer.status == 200)
        seen = answer.seen if answer.status != 200 else f"{answer.url}: HTTP 200 (the manager page)"
        if allowed and answer.status == 200:
            seen += " from this workstation, which manager_allow admits"
        return Check("/balancer-manager closed to everyone not in manager_allow", BALANCER, passed, seen,
                     "" if passed else "Anyone can disable nodes there: run `apply --only balancer` to restore "
                                       "the wizard's vhost (Require ip / Require all denied).")

    def redirect(self) -> Check:
        name = "HTTP redirects to HTTPS, keeping path and query"
        try:
            host = self.ctx.hosts.balancer()
            path = resolve_config_path(detect_layout(host, self.options), self.options)
            ports = redirect_ports_in(host.read_bytes(path).decode("utf-8", "replace")) if host.exists(path) else ()
        except WizardError as exc:
            return Check(name, BALANCER, False, exc.message, exc.hint or "")
        if not ports:
            return Check(name, BALANCER, False, f"no redirect to HTTPS in {path}",
                         "Run `apply --only balancer` to write the wizard's vhost.")
        https_origin = f"https://{self.url.host}" + ("" if self.url.port == 443 else f":{self.url.port}")
        probe = "/clbw-redirect-check?keep=1&and=2"
        answers = [self.patiently(lambda port=port: self.get(probe, base=f"http://{self.address}:{port}"),
                                  lambda a: a.status == 301) for port in ports]
        expected = https_origin + probe
        passed = all(a.status == 301 and a.headers.get("location") == expected for a in answers)
        seen = "; ".join(f"{a.url}: HTTP {a.status} -> {a.headers.get('location', a.error or '(no Location)')}"
                         for a in answers)
        return Check(name, BALANCER, passed, seen,
                     "" if passed else f"Expected 301 to {expected}: run `apply --only balancer` again.")


def redirect_ports_in(text: str) -> tuple[int, ...]:
    """The ports of the vhost in the wizard's file that redirects plain HTTP to HTTPS."""
    for match in re.finditer(r"^<VirtualHost ([^>]*)>\n(.*?)^</VirtualHost>", text, re.MULTILINE | re.DOTALL):
        if "[R=301" in match[2]:
            return tuple(int(port) for address in match[1].split()
                         if (port := address.rsplit(":", 1)[-1]).isdigit())
    return ()


def _state(answer: Answer) -> str | None:
    if answer.status != 200:
        return None
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    state = data.get("state") if isinstance(data, dict) else None
    return state if isinstance(state, str) else None


def _route(answer: Answer) -> str | None:
    for cookie in answer.cookies:
        match = re.match(r"\s*ROUTEID=\.?([^;]*)", cookie)
        if match:
            return match[1]
    return None


def _heartbeat_ok(answer: Answer) -> bool:
    return answer.status == 200 and answer.body.strip().lower() == "ok"


STEP = ApacheBalancerStep()
