"""Where a balancer sends each node's traffic, read from the nodes' own files (every kind that
writes a file builds its routes from these)."""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Node
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.probes import url_host
from wizard.engine.step import Context


@dataclass(frozen=True)
class NodeTarget:
    """Where the balancer sends one node's traffic, from the node's own files."""

    name: str
    host: str  # ready for a URL (IPv6 in brackets)
    confluence_port: int
    synchrony_port: int
    context_path: str
    #: Where the Synchrony port was read (the plan says it when the port is not the default).
    synchrony_port_source: str = ""


def read_targets(ctx: Context) -> tuple[NodeTarget, ...]:
    """Every node's target, read in parallel (read-only)."""

    def target(node: Node) -> NodeTarget:
        fact = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
        return NodeTarget(node.name, url_host(node.address), fact.confluence_port, fact.synchrony_port,
                          fact.context_path, fact.synchrony_port_source)

    return tuple(ctx.for_each_node(target))
