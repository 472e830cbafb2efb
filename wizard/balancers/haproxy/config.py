"""The HAProxy file as data, then text (pure): ``build`` decides, ``templates/haproxy/confluence-lb.cfg.j2`` renders.

Stickiness is HAProxy's own: ``cookie ROUTEID insert indirect nocache`` with ``cookie
<node>`` on each server, the same names in the Confluence and the Synchrony backends so a
user's Synchrony WebSocket runs on the node of their session; ``option redispatch`` sends
a user whose node is down to another one. Health checks are active: ``option httpchk`` on
``<ctx>/status`` expecting RUNNING (Synchrony: its heartbeat). WebSockets need ``timeout
tunnel``. Section names start with ``clbw-<setup>-`` so they cannot clash with the admin's.

A standalone Synchrony cluster (``synchrony.mode: standalone``) gets the Synchrony backend
over its own machines (``synchrony.nodes``), with no cookie at all, as the Apache kind does:
the machines share the editing state among themselves (Synchrony's own cluster), so any of
them can take any request, and an editor's WebSocket is one connection that stays on the
machine it opened on. A cookie there would only add a second one to the user's browser; the
Confluence backend's ROUTEID is never set or changed by a Synchrony answer because only the
Confluence backend inserts it. Its health check is the machines' heartbeat, like direct mode's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Answers
from wizard.balancers.served import Facts, NodeTarget
from wizard.balancers.settings import ProxySettings, proxy_settings
from wizard.confluence.probes import url_host
from wizard.render import render

TEMPLATE = "haproxy/confluence-lb.cfg.j2"
STATS_PATH = "/haproxy-stats"


def section_prefix(setup: str) -> str:
    return f"clbw-{setup}"


def backend_names(setup: str, direct: bool) -> tuple[str, ...]:
    """The backends whose servers are the Confluence nodes (what drain and ready act on). In
    standalone mode the Synchrony backend's servers are the Synchrony machines, which a node's
    restart leaves alone: pass ``direct=False`` there."""
    prefix = section_prefix(setup)
    return (f"{prefix}-confluence",) + ((f"{prefix}-synchrony",) if direct else ())


def synchrony_backend(setup: str, mode: str) -> str | None:
    """The backend /synchrony goes to: the nodes' (direct), the standalone machines' (standalone),
    or none (internal-proxy: Confluence's own synchrony-proxy, in the Confluence backend)."""
    return f"{section_prefix(setup)}-synchrony" if mode in ("direct", "standalone") else None


@dataclass(frozen=True)
class Server:
    """One ``server`` line: its name, ``address:port``, and its cookie value (None: no cookie)."""

    name: str
    address: str
    cookie: str | None
    #: Its node is drained for a rolling restart: the server starts in maintenance (``disabled``).
    disabled: bool = False


@dataclass(frozen=True)
class Backend:
    """One backend of the file: its servers, the health check, and whether it is sticky (ROUTEID)."""

    name: str
    servers: tuple[Server, ...]
    check_path: str
    expect: str
    sticky: bool
    #: Whether its answers set ROUTEID (Confluence's). The nodes' Synchrony backend only reads it: a
    #: Synchrony failover to another node must not move the user's Confluence session.
    sets_cookie: bool = True


@dataclass(frozen=True)
class HaproxyConfig:
    setup: str
    version: str
    prefix: str
    server_name: str
    listen_port: int
    http_port: int | None
    https_origin: str
    #: The PEM HAProxy loads (certificate and key, or the key beside it as <pem>.key).
    pem: str | None
    direct: bool
    context_path: str
    stats_allow: tuple[str, ...]
    settings: ProxySettings
    nodes: tuple[NodeTarget, ...]
    #: The Synchrony backend first (when /synchrony has one), then Confluence's.
    backends: tuple[Backend, ...] = ()
    #: The backend /synchrony goes to, or None (internal-proxy).
    synchrony_backend: str | None = None
    #: synchrony.mode standalone: the backend's servers are the Synchrony cluster's machines.
    standalone: bool = False
    #: The nodes a rolling restart has drained through this file, in the answers' order.
    drained: tuple[str, ...] = ()

    @property
    def sections(self) -> tuple[str, ...]:
        """Every frontend and backend name the file defines."""
        names = [self.prefix] + ([f"{self.prefix}-http"] if self.http_port else [])
        names += [backend.name for backend in self.backends]
        if self.stats_allow:
            names.append(f"{self.prefix}-stats")
        return tuple(names)

    @property
    def stats_path(self) -> str:
        return STATS_PATH


def build(answers: Answers, facts: Facts, server_name: str, listen_port: int, http_port: int | None,
          drained: frozenset[str] = frozenset()) -> HaproxyConfig:
    """The template's input for these answers on this HAProxy (pure). ``drained``: the nodes a rolling
    restart has taken out through the file (without admin_socket): their servers are ``disabled``, in
    maintenance, which sends them no request, sticky users included (their cookie is ignored and
    ``option redispatch`` sends them elsewhere). The balancer step itself always writes none drained."""
    options = answers.balancer.haproxy
    assert options is not None
    url = answers.public_url
    https_origin = ""
    if options.tls is not None:
        https_origin = f"https://{url.host}" + ("" if url.port == 443 else f":{url.port}")
    synchrony = answers.synchrony
    prefix = section_prefix(answers.name)
    backends: list[Backend] = []
    to_synchrony = synchrony_backend(answers.name, synchrony.mode)
    if to_synchrony and synchrony.mode == "standalone":
        # The machines' addresses and ports are checked answers values, written as the answers
        # give them (the template's finalize refuses anything a config line cannot hold).
        backends.append(Backend(to_synchrony, tuple(Server(machine.name, f"{url_host(machine.address)}:"
                                                                         f"{synchrony.port_of(machine)}", None)
                                                    for machine in synchrony.nodes),
                                "/synchrony/heartbeat", "status 200", sticky=False))
    elif to_synchrony:
        backends.append(Backend(to_synchrony, tuple(Server(n.name, f"{n.host}:{n.synchrony_port}", n.name,
                                                           n.name in drained)
                                                    for n in facts.nodes),
                                "/synchrony/heartbeat", "status 200", sticky=True, sets_cookie=False))
    backends.append(Backend(f"{prefix}-confluence", tuple(Server(n.name, f"{n.host}:{n.confluence_port}", n.name,
                                                                 n.name in drained)
                                                          for n in facts.nodes),
                            f"{url.context_path}/status", "string RUNNING", sticky=True))
    return HaproxyConfig(
        setup=answers.name, version=facts.server.version_string, prefix=prefix,
        server_name=server_name, listen_port=listen_port, http_port=http_port, https_origin=https_origin,
        pem=options.tls.certificate_file if options.tls else None, direct=synchrony.mode == "direct",
        context_path=url.context_path, stats_allow=tuple(options.stats_allow), settings=proxy_settings(answers),
        nodes=facts.nodes, backends=tuple(backends), synchrony_backend=to_synchrony,
        standalone=synchrony.mode == "standalone",
        drained=tuple(n.name for n in facts.nodes if n.name in drained))


def render_config(config: HaproxyConfig) -> str:
    return render(TEMPLATE, c=config)
