"""Connector: tell every node's Tomcat the address users reach it by.

Behind a balancer, Tomcat must build its redirects and absolute links with the
public host, port and scheme (``proxyName``, ``proxyPort``, ``scheme``, and
``secure`` behind HTTPS), or users are sent to ``http://`` or to ``:8090``.
The edit touches only the active Connector's start tag (``wizard.confluence.serverxml``);
every other byte of server.xml stays as it was.

This step also owns the Synchrony options of ``bin/setenv.sh`` (``wizard.confluence.setenv``):
``-Dsynchrony.service.url`` for a standalone Synchrony, ``-Dsynchrony.proxy.enabled=true`` for
internal-proxy, neither for direct (removing only what this setup added). They are JVM
options, so they take effect at the same restart as the Connector's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Answers, Node
from wizard.confluence.nodes import NodeFacts, node_files, read_node_facts
from wizard.confluence.setenv import (
    PROXY_ENABLED,
    SERVICE_URL,
    SetenvError,
    decode_setenv,
    plan_setenv_edit,
    read_option,
    wanted_options,
)
from wizard.confluence.serverxml import (
    ServerXmlError,
    encode_server_xml,
    plan_connector_edit,
)
from wizard.engine.diffs import unified_diff
from wizard.engine.files import link_note, replace_file
from wizard.engine.model import Change, Check, FileChange, Plan
from wizard.engine.step import Context, Journal, Step
from wizard.errors import WizardError


@dataclass(frozen=True)
class Wanted:
    proxy_name: str
    proxy_port: int
    scheme: str

    @classmethod
    def of(cls, answers: Answers) -> Wanted:
        url = answers.public_url
        return cls(url.host, url.port, url.scheme)

    def describe(self) -> str:
        secure = ', secure="true"' if self.scheme == "https" else ""
        return f'proxyName="{self.proxy_name}", proxyPort="{self.proxy_port}", scheme="{self.scheme}"{secure}'


@dataclass(frozen=True, kw_only=True)
class ConnectorChange(FileChange):
    """A node's server.xml, its active Connector's start tag edited: each attribute as [old, new]."""

    port: int
    line: int
    attributes: dict[str, list[str | None]]


@dataclass(frozen=True, kw_only=True)
class SetenvChange(FileChange):
    """A node's bin/setenv.sh, the Synchrony options of this setup added or removed ([option, value])."""

    role = "setenv"

    added: list[list[str]]
    removed: list[list[str]]
    notes: list[str]


class ConnectorStep(Step[dict[str, NodeFacts]]):
    name = "connector"
    title = "Tomcat Connector on every node"
    explanation = ("Sets proxyName, proxyPort and scheme (and secure for HTTPS) on the Connector "
                   "that serves Confluence in each node's conf/server.xml, so Confluence builds its "
                   "links with the public address. Only that tag changes. In bin/setenv.sh it adds the "
                   "Synchrony option the mode needs (standalone: -Dsynchrony.service.url; internal-proxy: "
                   "-Dsynchrony.proxy.enabled=true), one line each. A restart makes them take effect.")
    rollback_note = ("server.xml and setenv.sh are back as they were on every node; restart the nodes "
                     "(`apply --only restart`) for Tomcat to use them.")

    def inspect(self, ctx: Context) -> dict[str, NodeFacts]:
        facts = ctx.for_each_node(lambda node: read_node_facts(ctx.hosts.node(node), node, ctx.answers))
        return {fact.node: fact for fact in facts}

    def plan(self, answers: Answers, facts: dict[str, NodeFacts]) -> Plan:
        wanted = Wanted.of(answers)
        changes: list[Change] = []
        unchanged: list[str] = []
        for node in answers.nodes:
            fact = facts[node.name]
            check_context_path(node, fact, answers)
            try:
                edit = plan_connector_edit(fact.text, port=fact.confluence_port, proxy_name=wanted.proxy_name,
                                           proxy_port=wanted.proxy_port, scheme=wanted.scheme)
            except ServerXmlError as exc:
                raise ServerXmlError(f"{node.name}: {fact.server_xml_path}: {exc.message}", exc.hint) from exc
            setenv_edit, setenv_notes = setenv_change(answers, node, fact)
            unchanged += [f"{node.name}: {note}" for note in setenv_notes]
            if setenv_edit is not None:
                changes.append(setenv_edit)
            if not edit.changed:
                unchanged.append(f"{node.name}: {edit.reason}")
                continue
            changed = ", ".join(f"{name} {old or '(none)'} -> {new or '(removed)'}"
                                for name, (old, new) in edit.attributes_changed.items())
            changes.append(Change(
                target=node.name, kind="file",
                summary=f"{fact.server_xml_path}{link_note(fact.server_xml_link)}: Connector on port {edit.port} "
                        f"(line {edit.line}): {changed}",
                diff=unified_diff(node.name, fact.server_xml_path, fact.text, edit.new_text),
                details=ConnectorChange(path=fact.server_xml_path, port=edit.port, line=edit.line,
                                        attributes={k: list(v) for k, v in edit.attributes_changed.items()}),
                payload=(fact.server_xml, encode_server_xml(edit.new_text, fact.encoding))))
        if not changes:
            return Plan(self.name, "every node's Connector is already right",
                        noop_reason=f"Every Connector already has {wanted.describe()}: " + "; ".join(unchanged))
        connectors = [c for c in changes if isinstance(c.details, ConnectorChange)]
        setenvs = [c for c in changes if isinstance(c.details, SetenvChange)]
        parts = []
        if connectors:
            parts.append(f"edit the Connector on {len(connectors)} of {len(answers.nodes)} node(s) to "
                         f"{wanted.describe()}")
        if setenvs:
            parts.append(f"edit bin/setenv.sh on {len(setenvs)} node(s) for synchrony.mode "
                         f"{answers.synchrony.mode}")
        notes = f" ({'; '.join(unchanged)})" if unchanged else ""
        return Plan(self.name, "; ".join(parts) + notes, changes)

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        return node_files(answers, target)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        by_node: dict[str, list[Change]] = {}
        for change in plan.changes:
            by_node.setdefault(change.target, []).append(change)

        def edit(node: Node) -> None:
            for change in by_node.get(node.name, []):
                assert isinstance(change.details, FileChange), f"not a file change: {change.details!r}"
                path = change.details.path
                before, after = change.payload
                ctx.check_cancelled()
                ctx.progress(self.name, node.name, f"writing {path}")
                replace_file(ctx.hosts.node(node), node.name, path, planned_from=before,
                             new=after, journal=journal, summary=change.summary)
            if node.name in by_node:
                ctx.progress(self.name, node.name, "written", 1.0)

        ctx.for_each_node(edit)
        files = len(plan.changes)
        return (f"{files} file(s) edited on {len(by_node)} node(s) (Connector, setenv.sh); a restart makes them "
                "take effect")

    def verify(self, ctx: Context) -> list[Check]:
        wanted = Wanted.of(ctx.answers)

        def checks(node: Node) -> tuple[Check, Check | None]:
            # One read of the node's files serves both checks: each read is several SSH round
            # trips, and a second pass over the nodes would wait for the slowest node twice.
            try:
                fact = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
            except WizardError as exc:
                # The Synchrony option check has nothing to add to why the files could not be read.
                return Check("Connector proxy settings", node.name, False, exc.message, exc.hint or ""), None
            return connector_check(wanted, node, fact), synchrony_option_check(ctx.answers, node, fact)

        found = ctx.for_each_node(checks)
        return [connector for connector, _ in found] + [option for _, option in found if option is not None]


def connector_check(wanted: Wanted, node: Node, fact: NodeFacts) -> Check:
    """Whether the node's Connector (as ``fact`` read it) carries the public address."""
    connector = next((c for c in fact.xml.connectors if c.port == fact.confluence_port), None)
    if connector is None:
        return Check("Connector proxy settings", node.name, False,
                     f"no active Connector on port {fact.confluence_port}",
                     "Check server.xml, then run `apply --only connector`.")
    secure_ok = connector.secure if wanted.scheme == "https" else not connector.secure
    passed = (connector.proxy_name == wanted.proxy_name and connector.proxy_port == wanted.proxy_port
              and (connector.scheme or "http") == wanted.scheme and secure_ok)
    seen = (f"port {connector.port}: proxyName={connector.proxy_name}, proxyPort={connector.proxy_port}, "
            f"scheme={connector.scheme}, secure={str(connector.secure).lower()}")
    return Check("Connector proxy settings", node.name, passed, seen,
                 "" if passed else f"Run `apply --only connector` to set {wanted.describe()}.")


SERVICE_URL_CHECK = "Synchrony service URL in setenv.sh ends in /v1"
PROXY_FLAG_CHECK = "-Dsynchrony.proxy.enabled in setenv.sh"


def synchrony_option_check(answers: Answers, node: Node, fact: NodeFacts) -> Check | None:
    """What the node's setenv.sh says about Synchrony, for the modes that need an option there."""
    mode = answers.synchrony.mode
    if mode == "direct":
        return None
    text = fact.setenv.decode("utf-8", "replace") if fact.setenv is not None else ""
    if mode == "standalone":
        wanted = wanted_options(answers)[SERVICE_URL]
        seen = read_option(text, SERVICE_URL)
        passed = seen is not None and seen.rstrip("/").endswith("/v1") and seen == wanted
        return Check(SERVICE_URL_CHECK, node.name, passed,
                     f"{fact.setenv_path}: -D{SERVICE_URL}={seen}" if seen else f"{fact.setenv_path}: not set",
                     "" if passed else f"The editor must reach Synchrony at {wanted}: run `apply --only "
                                       "connector`, then restart the node (`apply --only restart`).")
    seen = read_option(text, PROXY_ENABLED)
    passed = seen is not None
    return Check(PROXY_FLAG_CHECK, node.name, passed,
                 f"{fact.setenv_path}: -D{PROXY_ENABLED}={seen}" + ("" if seen in (None, "true") else
                                                                   " (set by the admin; left as it is)")
                 if seen else f"{fact.setenv_path}: not set",
                 "" if passed else "Without it the editor first tries /synchrony on every load: run `apply "
                                   "--only connector`, then restart the node.")


def setenv_change(answers: Answers, node: Node, fact: NodeFacts) -> tuple[Change | None, list[str]]:
    """The setenv.sh edit of this node for the Synchrony mode, or None, and what was left alone."""
    wanted = wanted_options(answers)
    path = fact.setenv_path or "bin/setenv.sh"
    if fact.setenv is None:
        if not wanted:
            return None, []
        raise SetenvError(f"{node.name}: {path} does not exist, and synchrony.mode {answers.synchrony.mode} needs "
                          f"{', '.join(f'-D{k}={v}' for k, v in wanted.items())} in it. Nothing was changed.",
                          "Check nodes[].install_dir (Confluence's installation folder holds bin/setenv.sh).")
    try:
        text = decode_setenv(fact.setenv)
        edit = plan_setenv_edit(text, setup=answers.name, wanted=wanted)
    except SetenvError as exc:
        raise SetenvError(f"{node.name}: {path}: {exc.message}", exc.hint) from exc
    if not edit.changed:
        return None, list(edit.notes)
    return Change(
        target=node.name, kind="file",
        summary=f"{path}{link_note(fact.setenv_link)}: {edit.describe()} (synchrony.mode {answers.synchrony.mode})",
        diff=unified_diff(node.name, path, text, edit.new_text),
        details=SetenvChange(path=path, added=[list(a) for a in edit.added],
                             removed=[list(r) for r in edit.removed], notes=list(edit.notes)),
        payload=(fact.setenv, edit.new_text.encode("utf-8"))), list(edit.notes)


def check_context_path(node: Node, fact: NodeFacts, answers: Answers) -> None:
    """A balancer cannot serve /wiki from a node that serves / (or the other way) without rewriting
    every link; Atlassian requires the same context path on both sides."""
    public = answers.public_url.context_path
    if fact.context_path != public:
        shown = fact.context_path or "/ (ROOT)"
        raise WizardError(
            f"{node.name} serves Confluence at {shown} (server.xml <Context path=\"{fact.context_path}\">), "
            f"but public_url {answers.public_url.url} uses {public or '/ (ROOT)'}.",
            "Use the same context path in public_url as in server.xml (or change the node's "
            "<Context path> first, following Atlassian's guide).")


STEP = ConnectorStep()
