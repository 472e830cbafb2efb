"""HTTP checks against nodes and balancers, read-only.

httpx is imported inside the functions so the command line starts fast. Every
probe returns what it saw as text an admin can read, and never raises for a
network failure: an unreachable node is an answer, not a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status: int | None  # None: no HTTP answer at all
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def seen(self) -> str:
        if self.status is None:
            return f"{self.url}: no answer ({self.error})"
        return f"{self.url}: HTTP {self.status} {self.body[:120].strip()!r}"


def http_get(url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None,
             verify_tls: bool = True, cookies: dict[str, str] | None = None) -> HttpAnswer:
    """One GET, redirects not followed."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False,
                          cookies=cookies) as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return HttpAnswer(url, None, error=_reason(exc))
    return HttpAnswer(url, response.status_code, response.text[:4096],
                      {k.lower(): v for k, v in response.headers.items()})


def confluence_state(answer: HttpAnswer) -> str | None:
    """The ``state`` of a Confluence ``/status`` answer ("RUNNING", "STARTING", ...), or None."""
    if answer.status != 200:
        return None
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    state = data.get("state") if isinstance(data, dict) else None
    return state if isinstance(state, str) else None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "ConnectError" in type(exc).__name__:
        return f"connection refused or unreachable ({text})"
    if "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return "timed out"
    return text
