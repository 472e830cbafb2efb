"""What a Confluence node's files say: server.xml, bin/setenv.sh, and the ports they imply.

Read once per node and shared by the steps that need it (connector, restart,
verify). Reading only; every fact is what the node's own files say, never a
guess (the HTTP port is 8090 from the installer but 8080 from Atlassian's
Ansible and Quick Start).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from wizard.answers_model import Answers, Node
from wizard.confluence.serverxml import (
    ServerXmlError,
    ServerXmlFacts,
    decode_server_xml,
    read_facts,
    read_synchrony_port,
)
from wizard.errors import WizardError
from wizard.transport.hosts import Host

DEFAULT_SYNCHRONY_PORT = 8091


@dataclass(frozen=True)
class NodeFacts:
    node: str
    server_xml_path: str
    server_xml: bytes
    text: str
    encoding: str
    xml: ServerXmlFacts
    confluence_port: int
    context_path: str
    synchrony_port: int
    synchrony_port_source: str
    #: ``server_xml_path`` is a symbolic link to this file (its target is what gets written).
    server_xml_link: str | None = None
    #: bin/setenv.sh as it is (None: there is none), its path, and its link target if a link.
    setenv: bytes | None = None
    setenv_path: str = ""
    setenv_link: str | None = None

    def status_url(self, address: str) -> str:
        return f"http://{_host_in_url(address)}:{self.confluence_port}{self.context_path}/status"

    def base_url(self, address: str) -> str:
        return f"http://{_host_in_url(address)}:{self.confluence_port}{self.context_path}"


def _host_in_url(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def server_xml_path(node: Node) -> str:
    return posixpath.join(node.install_dir, "conf", "server.xml")


def setenv_path(node: Node) -> str:
    return posixpath.join(node.install_dir, "bin", "setenv.sh")


def node_files(answers: Answers, target: str) -> frozenset[str]:
    """The files the wizard may change on the node ``target``: its server.xml and setenv.sh."""
    node = next((n for n in answers.nodes if n.name == target), None)
    return frozenset() if node is None else frozenset({server_xml_path(node), setenv_path(node)})


def read_node_facts(host: Host, node: Node, answers: Answers) -> NodeFacts:
    """Read and interpret a node's server.xml and setenv.sh; WizardError when they do not make sense."""
    path = server_xml_path(node)
    raw = host.read_bytes(path)
    try:
        text, encoding = decode_server_xml(raw)
        xml = read_facts(text)
    except ServerXmlError as exc:
        raise ServerXmlError(f"{node.name}: {path}: {exc.message}", exc.hint) from exc
    port = node.confluence_port or xml.confluence_port
    if port is None:
        raise WizardError(f"{node.name}: cannot tell which Connector in {path} serves Confluence: "
                          f"{xml.confluence_port_reason}.",
                          f"Set nodes[].confluence_port for {node.name} in the answers file.")
    context = xml.context_path
    if context is None:
        raise WizardError(f"{node.name}: cannot tell Confluence's context path from {path}: "
                          f"{xml.context_path_reason}.",
                          "Check the <Context path=...> element of server.xml.")
    setenv_file = setenv_path(node)
    setenv = host.read_bytes(setenv_file) if host.exists(setenv_file) else None
    synchrony_port, source = _synchrony_port(node, answers, setenv_file, setenv)
    return NodeFacts(node=node.name, server_xml_path=path, server_xml=raw, text=text,
                     encoding=encoding, xml=xml, confluence_port=port, context_path=context,
                     synchrony_port=synchrony_port, synchrony_port_source=source,
                     server_xml_link=host.link_target(path), setenv=setenv, setenv_path=setenv_file,
                     setenv_link=host.link_target(setenv_file) if setenv is not None else None)


def _synchrony_port(node: Node, answers: Answers, path: str, setenv: bytes | None) -> tuple[int, str]:
    if node.synchrony_port:
        return node.synchrony_port, "the answers (nodes[].synchrony_port)"
    if setenv is not None:
        try:
            found = read_synchrony_port(setenv.decode("utf-8", "replace"))
        except ServerXmlError as exc:
            raise ServerXmlError(f"{node.name}: {path}: {exc.message}", exc.hint) from exc
        if found:
            return found, f"{path} (-Dsynchrony.port)"
    return answers.synchrony.port, "synchrony.port in the answers (no -Dsynchrony.port in setenv.sh)"
