"""The nginx file as data, then text (pure): ``build`` decides, ``templates/nginx/confluence-lb.conf.j2`` renders.

Open-source nginx has no sticky-cookie directive (and Debian 12 ships no sticky module),
so stickiness is built from what nginx 1.22 has:

* one upstream per node, that node first and every other node as ``backup`` (a user whose
  node is down is served by another one), and one round-robin upstream over every node
  for requests without a cookie;
* ``map $cookie_ROUTEID`` choosing the upstream: the node the cookie names, else round robin;
* ``map $upstream_addr`` naming the node that answered (the last address tried), and a
  ``Set-Cookie: ROUTEID=<node>`` added (``always``) only when that differs from the cookie
  the request carried.

The same per-node upstreams exist for Synchrony (direct mode), chosen by the same cookie, so
a user's Synchrony WebSocket runs on the node of their Confluence session. A Synchrony answer
never sets ROUTEID (only Confluence's ports are in the ``$upstream_addr`` map): when the user's
node's Synchrony is down and another node's answers, their Confluence session stays put.

A node drained for a rolling restart (``wizard.balancers.file_drain``) is ``down`` in every
upstream it is in: nginx sends it no new request, whatever the cookie says (its own upstream
then has only the other nodes, its backups), and the requests under way finish on the old
workers after the graceful reload. The file's header names the drained nodes.

A standalone Synchrony cluster (``synchrony.mode: standalone``) gets one round-robin upstream
over its machines (``synchrony.nodes``) and no cookie, as the Apache kind does: the machines
share the editing state among themselves (Synchrony's own cluster), so any of them can take any
request, and an editor's WebSocket is one connection that stays where it opened. Their
addresses are not in the ``$upstream_addr`` map, so a Synchrony answer never sets or changes
ROUTEID. Health checks are passive for them too (open-source nginx never probes a server).

Every name lives in the whole ``http {}`` of the server: upstream names must be unique (a
duplicate is an error) and so must map variables (a duplicate silently wins), so each is
prefixed with ``clbw_<setup>_`` and the plan refuses a name another file already defines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wizard.answers_model import Answers
from wizard.balancers.served import Facts, NodeTarget
from wizard.balancers.settings import ProxySettings, proxy_settings
from wizard.confluence.probes import url_host
from wizard.render import ConfigText, render

TEMPLATE = "nginx/confluence-lb.conf.j2"
WEBSOCKET_PATH = "/synchrony/v1/bayeux-sync1"


def name_prefix(setup: str) -> str:
    """``clbw_<setup>`` with every character an nginx variable name cannot hold made ``_``."""
    return "clbw_" + re.sub(r"[^A-Za-z0-9_]", "_", setup)


def regex_literal(text: str) -> ConfigText:
    """``text`` as a PCRE matching it literally, without a backslash (which configuration values may
    not hold): each character that means something in a regex goes in a bracket of its own. The text
    is the wizard's checked data (node names, addresses, ports)."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in "_-:":
            out.append(ch)
        elif ch == "]":
            out.append("[]]")
        else:
            out.append(f"[{ch}]")
    return ConfigText("".join(out))


@dataclass(frozen=True)
class Upstream:
    name: str
    #: (address:port, is a backup, is down: its node is drained)
    servers: tuple[tuple[str, bool, bool], ...]


@dataclass(frozen=True)
class Route:
    """One node's name and the address patterns (``$upstream_addr`` ends with one) that mean it answered."""

    node: str
    patterns: tuple[ConfigText, ...]
    node_pattern: ConfigText


@dataclass(frozen=True)
class NginxConfig:
    setup: str
    version: str
    prefix: str
    server_name: str
    listen_port: int
    http_port: int | None
    https_origin: str
    tls: object | None
    direct: bool
    context_path: str
    ws_path: str
    upstreams: tuple[Upstream, ...]
    #: (upstream variable, round-robin upstream, {node: its upstream})
    choosers: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]
    routes: tuple[Route, ...]
    settings: ProxySettings
    nodes: tuple[NodeTarget, ...]
    #: synchrony.mode standalone: the upstream of the Synchrony cluster's machines (else None).
    machines: Upstream | None = None
    #: The nodes a rolling restart has drained, in the answers' order.
    drained: tuple[str, ...] = ()

    @property
    def confluence_var(self) -> str:
        return f"{self.prefix}_confluence_upstream"

    @property
    def synchrony_var(self) -> str:
        return f"{self.prefix}_synchrony_upstream"

    @property
    def variables(self) -> tuple[str, ...]:
        """Every map variable the file defines (without the ``$``)."""
        return (*(chooser[0] for chooser in self.choosers), f"{self.prefix}_route", f"{self.prefix}_set_cookie",
                f"{self.prefix}_connection")


def _upstreams(prefix: str, service: str, nodes: tuple[NodeTarget, ...], port_key: str, drained: frozenset[str]
               ) -> tuple[list[Upstream], tuple[str, str, tuple[tuple[str, str], ...]]]:
    def server(node: NodeTarget, backup: bool) -> tuple[str, bool, bool]:
        return f"{node.host}:{getattr(node, port_key)}", backup, node.name in drained

    every = Upstream(f"{prefix}_{service}_all", tuple(server(n, False) for n in nodes))
    per_node = [Upstream(f"{prefix}_{service}_n{index}",
                         (server(node, False),) + tuple(server(o, True) for o in nodes if o is not node))
                for index, node in enumerate(nodes, 1)]
    chooser = (f"{prefix}_{service}_upstream", every.name,
               tuple((node.name, upstream.name) for node, upstream in zip(nodes, per_node)))
    return [every, *per_node], chooser


def build(answers: Answers, facts: Facts, server_name: str, listen_port: int, http_port: int | None,
          drained: frozenset[str] = frozenset()) -> NginxConfig:
    """The template's input for these answers on this nginx (pure). ``drained``: the nodes a rolling
    restart has taken out (the balancer step itself always writes the file with none drained)."""
    options = answers.balancer.nginx
    assert options is not None
    prefix = name_prefix(answers.name)
    synchrony = answers.synchrony
    direct = synchrony.mode == "direct"
    url = answers.public_url
    upstreams, confluence_chooser = _upstreams(prefix, "confluence", facts.nodes, "confluence_port", drained)
    choosers = [confluence_chooser]
    machines: Upstream | None = None
    if direct:
        node_synchrony, synchrony_chooser = _upstreams(prefix, "synchrony", facts.nodes, "synchrony_port", drained)
        upstreams += node_synchrony
        choosers.append(synchrony_chooser)
    elif synchrony.mode == "standalone":
        # The machines' addresses and ports are checked answers values, written as the answers give
        # them (the template's finalize refuses anything a configuration line cannot hold).
        machines = Upstream(f"{prefix}_synchrony_cluster",
                            tuple((f"{url_host(m.address)}:{synchrony.port_of(m)}", False, False)
                                  for m in synchrony.nodes))
        upstreams.append(machines)
    routes = []
    for node in facts.nodes:
        # Confluence's port only: a Synchrony answer (direct mode) must never set ROUTEID.
        routes.append(Route(node.name, (regex_literal(f"{node.host}:{node.confluence_port}"),),
                            regex_literal(node.name)))
    https_origin = ""
    if options.tls is not None:
        https_origin = f"https://{url.host}" + ("" if url.port == 443 else f":{url.port}")
    return NginxConfig(
        setup=answers.name, version=facts.server.version_string, prefix=prefix, server_name=server_name,
        listen_port=listen_port, http_port=http_port, https_origin=https_origin, tls=options.tls,
        direct=direct, context_path=url.context_path,
        ws_path=(WEBSOCKET_PATH if direct or machines is not None
                 else f"{url.context_path}/synchrony-proxy/v1/bayeux-sync1"),
        upstreams=tuple(upstreams), choosers=tuple(choosers), routes=tuple(routes),
        settings=proxy_settings(answers), nodes=facts.nodes, machines=machines,
        drained=tuple(node.name for node in facts.nodes if node.name in drained))


def render_config(config: NginxConfig) -> str:
    """The file's text (the template only renders what ``build`` decided)."""
    return render(TEMPLATE, c=config)
