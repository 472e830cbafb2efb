"""Connector: tell every node's Tomcat the address users reach it by.

Behind a balancer, Tomcat must build its redirects and absolute links with the
public host, port and scheme (``proxyName``, ``proxyPort``, ``scheme``, and
``secure`` behind HTTPS), or users are sent to ``http://`` or to ``:8090``.
The edit touches only the active Connector's start tag (``wizard.confluence.serverxml``);
every other byte of server.xml stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Answers, Node
from wizard.confluence.nodes import NodeFacts, node_files, read_node_facts
from wizard.confluence.serverxml import (
    ServerXmlError,
    encode_server_xml,
    plan_connector_edit,
    read_facts,
)
from wizard.engine.diffs import unified_diff
from wizard.engine.files import link_note, replace_file
from wizard.engine.model import Change, Check, Plan
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


class ConnectorStep(Step[dict[str, NodeFacts]]):
    name = "connector"
    title = "Tomcat Connector on every node"
    explanation = ("Sets proxyName, proxyPort and scheme (and secure for HTTPS) on the Connector "
                   "that serves Confluence in each node's conf/server.xml, so Confluence builds its "
                   "links with the public address. Only that tag changes; a restart makes it take effect.")
    rollback_note = ("server.xml is back as it was on every node; restart the nodes "
                     "(`apply --only restart`) for Tomcat to use it.")

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
                details={"path": fact.server_xml_path, "port": edit.port, "line": edit.line,
                         "attributes": {k: list(v) for k, v in edit.attributes_changed.items()}},
                payload=(fact.server_xml, encode_server_xml(edit.new_text, fact.encoding))))
        if not changes:
            return Plan(self.name, "every node's Connector is already right",
                        noop_reason=f"Every Connector already has {wanted.describe()}: " + "; ".join(unchanged))
        summary = f"edit the Connector on {len(changes)} of {len(answers.nodes)} node(s) to {wanted.describe()}"
        return Plan(self.name, summary, changes)

    def undo_paths(self, answers: Answers, target: str) -> frozenset[str]:
        return node_files(answers, target)

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        by_node = {change.target: change for change in plan.changes}

        def edit(node: Node) -> None:
            change = by_node.get(node.name)
            if change is None:
                return
            before, after = change.payload
            ctx.check_cancelled()
            ctx.progress(self.name, node.name, f"writing {change.details['path']}")
            replace_file(ctx.hosts.node(node), node.name, change.details["path"], planned_from=before,
                         new=after, journal=journal, summary=change.summary)
            ctx.progress(self.name, node.name, "written", 1.0)

        ctx.for_each_node(edit)
        return f"Connector edited on {len(by_node)} node(s); a restart makes it take effect"

    def verify(self, ctx: Context) -> list[Check]:
        wanted = Wanted.of(ctx.answers)

        def check(node: Node) -> Check:
            try:
                fact = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
            except WizardError as exc:
                return Check("Connector proxy settings", node.name, False, exc.message, exc.hint or "")
            connector = next((c for c in read_facts(fact.text).connectors if c.port == fact.confluence_port), None)
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

        return ctx.for_each_node(check)


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
