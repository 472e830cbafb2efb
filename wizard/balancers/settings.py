"""The proxy settings every balancer kind on a machine writes (nginx, HAProxy): timeouts and sizes.

One place, so that the answers' ``balancer.settings`` block (to come) replaces the defaults by
changing ``proxy_settings`` alone.
"""

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

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_megabytes * 1024 * 1024


DEFAULT_PROXY_SETTINGS = ProxySettings()


def proxy_settings(answers: Answers) -> ProxySettings:
    """The settings for these answers (today the defaults: the answers have no settings block yet)."""
    return DEFAULT_PROXY_SETTINGS
