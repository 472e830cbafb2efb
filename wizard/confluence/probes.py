"""HTTP, WebSocket and TLS checks against nodes and balancers, read-only.

httpx (and cryptography, for certificates) are imported inside the functions so the
command line starts fast. Every probe returns what it saw as text an admin can read,
and never raises for a network failure: an unreachable node is an answer, not a crash.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status: int | None  # None: no HTTP answer at all
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    #: Every Set-Cookie of the answer (``headers`` keeps only one per name).
    cookies: tuple[str, ...] = ()

    @property
    def seen(self) -> str:
        if self.status is None:
            return f"{self.url}: no answer ({self.error})"
        return f"{self.url}: HTTP {self.status} {self.body[:120].strip()!r}"

    def cookie(self, name: str) -> str | None:
        """The value this answer sets for the cookie ``name``, or None."""
        for line in self.cookies:
            key, _, rest = line.partition("=")
            if key.strip() == name:
                return rest.split(";", 1)[0].strip()
        return None


def http_get(url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None,
             verify_tls: bool = True, cookies: dict[str, str] | None = None, limit: int = 4096,
             sni_hostname: str | None = None) -> HttpAnswer:
    """One GET, redirects not followed; the body is cut at ``limit`` characters.

    ``sni_hostname`` asks for a TLS name other than the URL's host (a balancer reached
    by address, asked for the public name).
    """
    import httpx

    extensions = {"sni_hostname": sni_hostname} if sni_hostname else None
    try:
        with httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False,
                          cookies=cookies) as client:
            response = client.get(url, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return HttpAnswer(url, None, error=_reason(exc))
    return HttpAnswer(url, response.status_code, response.text[:limit],
                      {k.lower(): v for k, v in response.headers.items()},
                      cookies=tuple(response.headers.get_list("set-cookie")))


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


def heartbeat_ok(answer: HttpAnswer) -> bool:
    """Synchrony's heartbeat: 200 and ``OK`` (compared case-insensitively: some versions answer ``ok``)."""
    return answer.status == 200 and answer.body.strip().lower() == "ok"


def manifest_base_url(body: str) -> str | None:
    """The ``url`` of an applinks manifest (XML, namespaced or not; JSON too), or None.

    Only the root's own ``url`` child counts: ``iconUrl`` and friends carry the base URL
    with more after it.
    """
    text = body.strip()
    if text.startswith("{"):
        return _json_text(text, "url")
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        # A cut or odd answer: the element is still recognisable on its own.
        match = re.search(r"<(?:[\w.-]+:)?url>\s*([^<]+?)\s*</(?:[\w.-]+:)?url>", text)
        return _xml_unescape(match[1]) if match else None
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "url" and child.text and child.text.strip():
            return child.text.strip()
    return None


def manifest_version(body: str) -> str | None:
    """Confluence's version from an applinks manifest (its root's ``version`` child), or None."""
    text = body.strip()
    if text.startswith("{"):
        return _json_text(text, "version")
    match = re.search(r"<(?:[\w.-]+:)?version>\s*([0-9][0-9A-Za-z.\-]*)\s*</(?:[\w.-]+:)?version>", text)
    return match[1] if match else None



def _json_text(text: str, key: str) -> str | None:
    """A JSON manifest's non-blank string ``key`` (stripped), or None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None

def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.19.2"`` as ``(7, 19, 2)``; a suffix ("-m12") is ignored, a part that is no number stops it."""
    parts: list[int] = []
    for part in version.split("-", 1)[0].split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _xml_unescape(text: str) -> str:
    from xml.sax.saxutils import unescape

    return unescape(text, {"&quot;": '"', "&apos;": "'"})


# --------------------------------------------------------------------------- the balancer


def url_host(address: str) -> str:
    """An address ready for a URL: IPv6 in brackets."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


@dataclass(frozen=True)
class Endpoint:
    """Where the workstation reaches the balancer, and the public name it asks for there.

    Like ``curl --resolve``: the connection goes to the balancer's own address while the
    Host header and the TLS name are the public URL's, so the answer is the public URL's
    answer from this very balancer, whatever the DNS says yet.
    """

    scheme: str
    address: str
    port: int
    host_header: str  # the public host, with its port when not the scheme's default
    server_name: str  # the public host: TLS name and certificate name
    #: Plain-HTTP ports that must redirect to HTTPS (only with TLS).
    http_ports: tuple[int, ...] = ()

    def url(self, path: str, *, scheme: str | None = None, port: int | None = None) -> str:
        return f"{scheme or self.scheme}://{url_host(self.address)}:{port or self.port}{path}"

    def get(self, path: str, *, cookies: dict[str, str] | None = None, scheme: str | None = None,
            port: int | None = None, timeout: float = 5.0) -> HttpAnswer:
        """GET ``path`` from the balancer as the public URL. The certificate is not checked here
        (``peer_certificate`` does that, once), so a routing check says what the route does."""
        headers = {"Host": self.host_header}
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        https = (scheme or self.scheme) == "https"
        return http_get(self.url(path, scheme=scheme, port=port), timeout=timeout, headers=headers,
                        verify_tls=False, sni_hostname=self.server_name if https else None)

    def describe(self) -> str:
        return f"{self.scheme}://{url_host(self.address)}:{self.port} as {self.host_header}"


def websocket_upgrade(address: str, port: int, path: str, host_header: str, *, tls: bool,
                      timeout: float = 5.0, server_name: str | None = None) -> tuple[int, str]:
    """Ask for a WebSocket upgrade and return (HTTP status, what was seen); 0 when there was no answer.

    A raw request, because what matters is the balancer's answer to the upgrade (101), not a
    conversation with Synchrony. ``server_name`` is the TLS name (the Host header's host by default).
    """
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    where = f"{'wss' if tls else 'ws'}://{url_host(address)}:{port}{path}"
    name = server_name or _host_only(host_header)
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # the route is checked here, not the certificate
                sock = context.wrap_socket(raw, server_hostname=name)
            sock.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
    except (OSError, ssl.SSLError) as exc:
        return 0, f"{where}: no answer ({exc})"
    line = head.split(b"\r\n", 1)[0].decode("latin-1").strip()
    match = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", line)
    if not match:
        return 0, f"{where}: no HTTP answer ({line[:80]!r})"
    return int(match[1]), f"{where}: {line}"


def _host_only(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class PeerCertificate:
    """The certificate a TLS server presented, and whether this machine trusts its chain."""

    subject: str
    issuer: str
    not_before: datetime  # UTC, timezone-aware
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    trusted: bool
    trust_error: str = ""


def peer_certificate(address: str, port: int, server_name: str, *,
                     timeout: float = 5.0) -> tuple[PeerCertificate | None, str]:
    """The certificate ``address:port`` presents for ``server_name`` (SNI), or (None, why not).

    Read without verification first, so an expired or private certificate can still be
    described; then a second handshake tells whether this machine's CA store trusts it.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    where = f"{url_host(address)}:{port}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return None, f"{where}: no TLS answer ({exc})"
    if not der:
        return None, f"{where}: the server presented no certificate"
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return None, f"{where}: an unreadable certificate ({exc})"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    if not dns and not ips:
        # Only a certificate without subjectAltName falls back to its common name (RFC 6125).
        dns = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    trusted, error = _trusted(address, port, server_name, timeout)
    return PeerCertificate(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                           dns_names=dns, ip_addresses=ips, trusted=trusted, trust_error=error), ""


def _trusted(address: str, port: int, server_name: str, timeout: float) -> tuple[bool, str]:
    context = ssl.create_default_context()
    context.check_hostname = False  # the name is compared by the check itself, with its own words
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_name):
            return True, ""
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "ConnectError" in type(exc).__name__:
        return f"connection refused or unreachable ({text})"
    if "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return "timed out"
    return text
