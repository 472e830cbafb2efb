"""The HAProxy file as data, then text (pure): ``build`` decides, ``templates/haproxy/confluence-lb.cfg.j2`` renders.

Stickiness is HAProxy's own: ``cookie ROUTEID insert indirect nocache`` with ``cookie
<node>`` on each server, the same names in the Confluence and the Synchrony backends so a
user's Synchrony WebSocket runs on the node of their session; ``option redispatch`` sends
a user whose node is down to another one. Health checks are active: ``option httpchk`` on
``<ctx>/status`` expecting RUNNING (Synchrony: its heartbeat). WebSockets need ``timeout
tunnel``. Section names start with ``clbw-<setup>-`` so they cannot clash with the admin's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Answers
from wizard.balancers.served import Facts, NodeTarget
from wizard.balancers.settings import ProxySettings, proxy_settings
from wizard.render import render

TEMPLATE = "haproxy/confluence-lb.cfg.j2"
STATS_PATH = "/haproxy-stats"


def section_prefix(setup: str) -> str:
    return f"clbw-{setup}"


def backend_names(setup: str, direct: bool) -> tuple[str, ...]:
    """The backends whose servers are the nodes (what drain and ready act on)."""
    prefix = section_prefix(setup)
    return (f"{prefix}-confluence",) + ((f"{prefix}-synchrony",) if direct else ())


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

    @property
    def sections(self) -> tuple[str, ...]:
        """Every frontend and backend name the file defines."""
        names = [self.prefix] + ([f"{self.prefix}-http"] if self.http_port else [])
        names += list(backend_names(self.setup, self.direct))
        if self.stats_allow:
            names.append(f"{self.prefix}-stats")
        return tuple(names)

    @property
    def stats_path(self) -> str:
        return STATS_PATH


def build(answers: Answers, facts: Facts, server_name: str, listen_port: int, http_port: int | None
          ) -> HaproxyConfig:
    options = answers.balancer.haproxy
    assert options is not None
    url = answers.public_url
    https_origin = ""
    if options.tls is not None:
        https_origin = f"https://{url.host}" + ("" if url.port == 443 else f":{url.port}")
    return HaproxyConfig(
        setup=answers.name, version=facts.server.version_string, prefix=section_prefix(answers.name),
        server_name=server_name, listen_port=listen_port, http_port=http_port, https_origin=https_origin,
        pem=options.tls.certificate_file if options.tls else None, direct=answers.synchrony.mode == "direct",
        context_path=url.context_path, stats_allow=tuple(options.stats_allow), settings=proxy_settings(answers),
        nodes=facts.nodes)


def render_config(config: HaproxyConfig) -> str:
    return render(TEMPLATE, c=config)
