"""The Apache vhost as data, then text: what the template needs from the answers and the facts (pure).

``build_vhost`` decides everything (the balancers, the WebSocket style the Apache
version needs, the modules to load, the ports), ``render_vhost`` only renders
``templates/apache/confluence-lb.conf.j2``; the plan compares that text byte for byte
with what is on the host.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from wizard.answers_model import Answers, Tls
from wizard.balancers.apache.facts import (
    HEADER_LINE,
    UPGRADE_PARAMETER_VERSION,
    ApacheFacts,
    module_id,
)
from wizard.balancers.node_target import NodeTarget as NodeTarget
from wizard.balancers.settings import proxy_settings
from wizard.confluence.probes import url_host
from wizard.render import ConfigText, render

TEMPLATE = "apache/confluence-lb.conf.j2"


# What each part of the configuration needs loaded, in the order LoadModule lines must
# come (a module after the ones it builds on).
MODULE_ORDER = ("authz_core", "authz_host", "headers", "rewrite", "ssl", "watchdog", "proxy", "proxy_http",
                "proxy_wstunnel", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests", "proxy_hcheck")


# rewrite: the upload limit (balancer.settings.max_upload_mb) is a rewrite rule.
BASE_MODULES = ("authz_core", "authz_host", "headers", "rewrite", "proxy", "proxy_http", "slotmem_shm",
                "proxy_balancer", "lbmethod_byrequests")


FEATURE_MODULES = {
    "websocket-rewrite": ("proxy_wstunnel", "rewrite"),
    "tls": ("ssl", "rewrite"),
    "context-path": ("rewrite",),
    "health-checks": ("watchdog", "proxy_hcheck"),
}


def health_checks(version: tuple[int, int, int]) -> bool:
    """Whether the members get mod_proxy_hcheck health checks: on the Apache whose WebSocket members
    are http:// (2.4.47 and later), which mod_proxy_hcheck can check like any other; older ones
    (ws:// members) keep Apache's own error detection only."""
    return websocket_style(version) == "upgrade"


#: Every module any answers may need: inspect reads their availability before the plan
#: (which depends on the version it reads at the same time) chooses among them.
ALL_MODULES = MODULE_ORDER


@dataclass(frozen=True)
class BalancerFacts:
    apache: ApacheFacts
    nodes: tuple[NodeTarget, ...]
    #: The reload id of an earlier apply stopped after it changed files and before Apache was
    #: reloaded with them (its undo still live), or None.
    pending_reload: str | None = None



def server_name(answers: Answers) -> str:
    """The vhost's ServerName: the answers' server_name, else the public URL's host."""
    options = answers.balancer.apache
    return (options.server_name if options and options.server_name else None) or answers.public_url.host


def listen_port(answers: Answers) -> int:
    """The port Apache serves users on: the answers' listen_port, else the public URL's port."""
    options = answers.balancer.apache
    return (options.listen_port if options and options.listen_port else None) or answers.public_url.port


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
    if health_checks(version):
        wanted.update(FEATURE_MODULES["health-checks"])
    return tuple(m for m in MODULE_ORDER if m in wanted)


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
    #: synchrony.mode standalone: the Synchrony cluster's machines ({name, host, port}).
    standalone: bool = False
    synchrony_nodes: tuple[dict[str, Any], ...] = ()
    # balancer.settings
    read_timeout: int = 300
    ws_timeout: int = 300
    max_upload_mb: int = 250
    ssl_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    hsts_max_age: int = 0
    health_checks: bool = False

    @property
    def redirect_addresses(self) -> list[str]:
        return [f"*:{port}" for port in self.redirect_ports]

    @property
    def rewrite_in_vhost(self) -> bool:
        return True  # the upload limit is a rewrite rule

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def settings_note(self) -> str:
        """balancer.settings as this vhost applies them, for the plan."""
        parts = [f"read timeout {self.read_timeout} s (then Apache answers 502; WebSockets {self.ws_timeout} s)",
                 f"uploads up to {self.max_upload_mb} MB (413 above it for a request that declares its length; "
                 "Apache does not limit a chunked upload here)",
                 "X-Forwarded-For to the nodes"]
        if self.tls:
            parts.append(f"TLS {' '.join(self.ssl_protocols)}")
            parts.append(f"Strict-Transport-Security max-age={self.hsts_max_age}" if self.hsts_max_age
                         else "no HSTS header")
        elif self.hsts_max_age:
            parts.append("no HSTS header (hsts_max_age needs HTTPS)")
        return ", ".join(parts)


def rewrite_substitution(text: str) -> ConfigText:
    # $ and % start back-references and variables in a RewriteRule substitution; the escaped
    # text is the wizard's own (the path's segments are checked), so it is written as it is.
    return ConfigText(re.sub(r"([$%\\])", r"\\\1", text))


def build_vhost(answers: Answers, facts: BalancerFacts, drained: frozenset[str] = frozenset()) -> Vhost:
    """The template's input for these answers on this Apache (pure).

    ``drained``: the nodes a rolling restart has put in drain mode (``status=+D`` on their
    members in every balancer: no new request, sticky or not, goes there; requests under way
    finish). The balancer step itself always writes the vhost with no node drained.
    """
    options = answers.balancer.apache
    assert options is not None
    apache = facts.apache
    url = answers.public_url
    listen = listen_port(answers)
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
    standalone = answers.synchrony.mode == "standalone"
    ws_path = ("/synchrony/v1/bayeux-sync1" if direct or standalone
               else f"{url.context_path}/synchrony-proxy/v1/bayeux-sync1")
    settings = proxy_settings(answers)
    load: tuple[LoadModuleLine, ...] = ()
    if apache.layout.module_mechanism == "vhost":
        directory = apache.module_dir or apache.layout.module_dirs[0]
        load = tuple(LoadModuleLine(module_id(m), posixpath.join(directory, f"mod_{m}.so"))
                     for m in needed_modules(answers, apache.version) if apache.loaded.get(m) != "static")
    https_origin = ""
    if tls:
        https_origin = f"https://{url.host}" + ("" if url.port == 443 else f":{url.port}")
    return Vhost(
        setup=answers.name, version=apache.version_string, server_name=server_name(answers),
        listen_port=listen, tls=tls, direct=direct, ws_style=style, context_path=url.context_path,
        root_redirect=rewrite_substitution(url.context_path), ws_path=ws_path, ws_pattern=ConfigText(re.escape(ws_path)),  # a regex of checked path segments
        nodes=tuple({"name": n.name, "host": n.host, "confluence_port": n.confluence_port,
                     "synchrony_port": n.synchrony_port, "drained": n.name in drained}
                    for n in facts.nodes),
        manager_allow=tuple(options.manager_allow), load_modules=load, listens=tuple(listens),
        redirect_ports=redirect, https_origin=https_origin, standalone=standalone,
        synchrony_nodes=tuple({"name": s.name, "host": url_host(s.address), "port": answers.synchrony.port_of(s)}
                              for s in answers.synchrony.nodes) if standalone else (),
        read_timeout=settings.read_timeout_seconds, ws_timeout=settings.websocket_timeout_seconds,
        max_upload_mb=settings.max_body_megabytes,
        ssl_protocols=settings.tls_protocols, hsts_max_age=settings.hsts_max_age,
        health_checks=health_checks(apache.version))


def render_vhost(vhost: Vhost) -> str:
    text = render(TEMPLATE, vhost=vhost)
    assert text.startswith(HEADER_LINE.format(setup=vhost.setup)), "the template lost its header"
    return text


def redirect_ports_in(text: str) -> tuple[int, ...]:
    """The ports of the vhost in the wizard's file that redirects plain HTTP to HTTPS."""
    for match in re.finditer(r"^<VirtualHost ([^>]*)>\n(.*?)^</VirtualHost>", text, re.MULTILINE | re.DOTALL):
        if "[R=301" in match[2]:
            return tuple(int(port) for address in match[1].split()
                         if (port := address.rsplit(":", 1)[-1]).isdigit())
    return ()



#: A member line the template writes for a drained node: its route, then the drain flag.
_DRAINED_MEMBER = re.compile(r'^\s*BalancerMember "[^"]*" route=(\S+)[^\n]* status=\+D\b', re.MULTILINE)


def drained_in(text: str) -> frozenset[str]:
    """The nodes the wizard's vhost ``text`` has in drain mode (by their route, the node's name)."""
    return frozenset(match[1] for match in _DRAINED_MEMBER.finditer(text))
