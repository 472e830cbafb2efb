"""What the inventory reads from a node: its server.xml and setenv.sh, as the steps will read them.

Runs in a thread worker (it may reach the node over SSH, and may ask about an
unknown host key through the modals). Reading only; nothing is changed.
"""

from __future__ import annotations

import copy
from typing import Any

from wizard.answers import validate
from wizard.confluence.nodes import read_node_facts
from wizard.errors import WizardError
from wizard.transport.pool import HostPool
from wizard.transport.prompts import NO_PROMPTS, Prompts

# A stand-in for the rest of the answers while only one node is known: the node is
# read exactly as the steps will read it, and these values are never used for it.
_PROBE: dict[str, Any] = {"name": "inventory", "public_url": "http://inventory.invalid",
          "balancer": {"kind": "apache", "apache": {"access": {"transport": "local"}}}}


def read_node(node: dict[str, Any], synchrony: dict[str, Any] | None = None,
              prompts: Prompts = NO_PROMPTS) -> tuple[bool, str]:
    """(True, what was read) or (False, why it could not be read and what to do).

    ``prompts`` answers SSH's questions (the face's own; nobody is asked by default).
    """
    raw = copy.deepcopy(_PROBE)
    raw["nodes"] = [copy.deepcopy(node)]
    if synchrony:
        raw["synchrony"] = copy.deepcopy(synchrony)
    try:
        answers = validate(raw, source="this node's answers")
    except WizardError:
        return False, "Complete the node's answers first."
    target = answers.nodes[0]
    pool = HostPool(answers, prompts=prompts)
    try:
        facts = read_node_facts(pool.node(target), target, answers)
    except WizardError as exc:
        return False, exc.message + (f" Next: {exc.hint}" if exc.hint else "")
    finally:
        pool.close()
    connector = next((c for c in facts.xml.connectors if c.port == facts.confluence_port), None)
    lines = [f"server.xml  {facts.server_xml_path}",
             f"Confluence  port {facts.confluence_port}, context path {facts.context_path or '/'}",
             f"Synchrony   port {facts.synchrony_port} (from {facts.synchrony_port_source})"]
    if connector is not None:
        proxy = (f"proxyName={connector.proxy_name} proxyPort={connector.proxy_port} scheme={connector.scheme}"
                 if connector.proxy_name else "no proxyName/proxyPort yet (the connector step sets them)")
        lines.append(f"Connector   {proxy}")
    return True, "\n".join(lines)


def one_line(summary: str) -> str:
    """The first fact of a reading, for the inventory's table."""
    for line in summary.splitlines():
        if line.startswith("Confluence"):
            return line.removeprefix("Confluence").strip()
    return summary.splitlines()[0] if summary else ""
