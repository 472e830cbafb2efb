"""The proxy settings the balancers on a machine write (nginx, HAProxy): timeouts, sizes, TLS, HSTS,
from the answers' ``balancer.settings`` (whose defaults are Atlassian's guidance)."""

from __future__ import annotations

from dataclasses import dataclass

from wizard.answers_model import Answers


@dataclass(frozen=True)
class ProxySettings:
    """What the templates of nginx and HAProxy take from the setup beyond the nodes."""

    #: How long the balancer waits for a node's answer (Confluence's slow pages, exports).
    read_timeout_seconds: int = 300
    #: How long an idle WebSocket (the editor's Synchrony connection) is kept open; Atlassian's
    #: articles ask for at least 300 s, as the ALB's idle timeout.
    websocket_timeout_seconds: int = 300
    #: The largest request body (attachments): Confluence's default attachment limit is 100 MB,
    #: 250 MB leaves room for raised limits and imports.
    max_body_megabytes: int = 250
    #: How long the balancer waits to connect to a node before trying another.
    connect_timeout_seconds: int = 10
    #: The TLS protocols accepted when the balancer terminates TLS (the oldest is what HAProxy needs).
    tls_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
    #: Strict-Transport-Security max-age in seconds; 0: no header.
    hsts_max_age: int = 0

    @property
    def oldest_tls(self) -> str:
        """The oldest of ``tls_protocols`` (HAProxy's ``ssl-min-ver``)."""
        return min(self.tls_protocols, key=lambda name: [int(part) for part in name[4:].split(".")])

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_megabytes * 1024 * 1024


DEFAULT_PROXY_SETTINGS = ProxySettings()


def proxy_settings(answers: Answers) -> ProxySettings:
    """The settings for these answers: ``balancer.settings``, WebSockets never under 300 s."""
    settings = answers.balancer.settings
    return ProxySettings(
        read_timeout_seconds=settings.read_timeout,
        # The editor's WebSockets sit idle for minutes: never shorter than Atlassian's 300 s.
        websocket_timeout_seconds=max(DEFAULT_PROXY_SETTINGS.websocket_timeout_seconds, settings.read_timeout),
        max_body_megabytes=settings.max_upload_mb,
        tls_protocols=tuple(settings.tls_protocols),
        hsts_max_age=settings.hsts_max_age)
