"""The final tests as small functions: each takes what it needs and returns a Check.

The verify step (``wizard.steps.verify``) gathers the inputs (the answers, each node's
facts, where the balancer answers) and calls these; the base-url step shares the base
URL comparison; the Apache balancer step shares the balancer's probe address. Every
probe goes through ``wizard.confluence.probes``, so a unit test stubs the probe and feeds answers.

Every failing check says what was seen and what to do; a check that cannot tell (a
real Confluence that sends relative redirects, nodes that do not name themselves)
passes and says what it could not see, rather than fail a healthy setup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wizard.answers_model import Answers, Node, PublicUrl, Synchrony, SynchronyNode
from wizard.confluence import probes
from wizard.confluence.nodes import NodeFacts
from wizard.engine.model import BALANCER, Check

if TYPE_CHECKING:
    from wizard.engine.step import Context

# The checks' names, so tests, faces and the runbook can find a check without repeating its words.
NODE_SYNCHRONY = "Synchrony heartbeat on the node"
#: The preflight's probe of the same heartbeat (direct mode), before the balancer points users at it.
NODE_SYNCHRONY_FIRST = "Synchrony heartbeat on the node, before the balancer points users at it"
#: The same for each machine of a standalone Synchrony cluster (synchrony.nodes).
MACHINE_SYNCHRONY_FIRST = "Synchrony heartbeat on the standalone machine, before the balancer points users at it"
CONNECTOR_IN_EFFECT = "Connector settings in effect (the node redirects to the public address)"
BASE_URL = "base URL matches public_url"
STICKY = "sticky sessions through the balancer"
ROOT_REDIRECT = "GET / stays on the public URL through the balancer"
TLS_CERTIFICATE = "TLS certificate valid and not near expiry"
BALANCER_STATUS = "Confluence /status RUNNING through the balancer"
BALANCER_HEARTBEAT = "Synchrony heartbeat OK through the balancer"
BALANCER_WEBSOCKET = "WebSocket upgrade through the balancer"
HTTPS_REDIRECT = "HTTP redirects to HTTPS, keeping path and query"
CONFLUENCE_VERSION = "Confluence version (from the applinks manifest)"

#: Before this Confluence Data Center version Synchrony only runs standalone: Confluence
#: neither manages it on the nodes (direct) nor proxies it (internal-proxy).
MANAGED_SYNCHRONY_VERSION = (6, 12)

#: A certificate with fewer days left than this fails: time to renew before users see warnings.
MIN_CERTIFICATE_DAYS = 14
#: Requests sent with the sticky cookie; every one must land on the same node.
STICKY_TRIES = 6
#: Redirects followed from ``GET /`` (the context path, then Confluence's own page).
MAX_REDIRECTS = 4
#: The header the lab's (and the test) nodes name themselves with. Confluence itself sends
#: none (it prints its node id in the page footer), so without it only the cookie is checked.
NODE_HEADER = "x-node"


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class UrlKey:
    """A URL reduced to what makes two base URLs the same: scheme, host (any case), port
    (explicit or the scheme's default) and path (without a trailing slash)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def url_key(url: str) -> UrlKey | None:
    """The comparable parts of an absolute http(s) URL, or None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if scheme == "https" else 80
    return UrlKey(scheme, parts.hostname.lower().rstrip("."), port or default, parts.path.rstrip("/"))


def same_base_url(seen: str, wanted: str) -> bool:
    """Whether two base URLs name the same place (``https://Wiki.example.com:443/`` is
    ``https://wiki.example.com``)."""
    a, b = url_key(seen), url_key(wanted)
    return a is not None and a == b


def public_origin(public: PublicUrl) -> tuple[str, str, int]:
    return public.scheme, public.host, public.port


def public_host_header(public: PublicUrl) -> str:
    """The Host header a browser sends for the public URL."""
    host = probes.url_host(public.host)
    return host if public.default_port else f"{host}:{public.port}"


def hostname_matches(name: str, dns_names: Sequence[str], ip_addresses: Sequence[str] = ()) -> bool:
    """RFC 6125 matching: exact names, or a wildcard as the whole leftmost label (one label deep)."""
    wanted = name.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        address = None
    if address is not None:
        return any(ipaddress.ip_address(ip) == address for ip in ip_addresses)
    for pattern in dns_names:
        pattern = pattern.lower().rstrip(".")
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted:
            first, rest = wanted.split(".", 1)
            if first and rest == pattern[2:] and "." in rest:
                return True
    return False


# --------------------------------------------------------------------------- node checks


def synchrony_heartbeat_url(node: Node, facts: NodeFacts, mode: str) -> str:
    """Where a node's own Synchrony answers its heartbeat: its port (direct) or Confluence's proxy."""
    host = probes.url_host(node.address)
    if mode == "direct":
        return f"http://{host}:{facts.synchrony_port}/synchrony/heartbeat"
    return f"{facts.base_url(node.address)}/synchrony-proxy/heartbeat"


def node_synchrony(node: Node, facts: NodeFacts, mode: str) -> Check:
    """The node's Synchrony answers its heartbeat where the balancer will look for it."""
    url = synchrony_heartbeat_url(node, facts, mode)
    answer = probes.http_get(url, timeout=5.0)
    passed = probes.heartbeat_ok(answer)
    if passed:
        fix = ""
    elif mode == "direct":
        fix = (f"Start Synchrony on {node.name} (it runs with Confluence unless it is standalone) and check "
               f"that port {facts.synchrony_port} ({facts.synchrony_port_source}) is open to the balancer; "
               "its log is atlassian-synchrony.log in the Confluence home's logs folder.")
    else:
        fix = (f"Confluence's synchrony-proxy on {node.name} does not answer: check that Synchrony runs "
               "(atlassian-synchrony.log in the Confluence home's logs folder).")
    return Check(NODE_SYNCHRONY, node.name, passed, answer.seen, fix)


def machine_heartbeat_url(machine: SynchronyNode, synchrony: Synchrony) -> str:
    """Where a standalone Synchrony machine answers its own heartbeat (where the balancer sends /synchrony)."""
    return f"http://{probes.url_host(machine.address)}:{synchrony.port_of(machine)}/synchrony/heartbeat"


def machine_synchrony(machine: SynchronyNode, synchrony: Synchrony) -> Check:
    """A standalone Synchrony machine answers its heartbeat on its own address and port."""
    url = machine_heartbeat_url(machine, synchrony)
    answer = probes.http_get(url, timeout=5.0)
    passed = probes.heartbeat_ok(answer)
    fix = "" if passed else (
        f"Start Synchrony on {machine.name} ({machine.address}; its log is atlassian-synchrony.log beside "
        f"start-synchrony.sh) and check that port {synchrony.port_of(machine)} is open to the balancer, or correct "
        f"synchrony.nodes (address, port) in the answers.")
    return Check(MACHINE_SYNCHRONY_FIRST, machine.name, passed, answer.seen, fix)


def connector_in_effect(node: Node, facts: NodeFacts, public: PublicUrl) -> Check | None:
    """The running Tomcat builds its redirects with the public address (a change not yet in effect:
    server.xml edited but the node not restarted).

    ``GET <ctx>/`` straight to the node, whose Location Tomcat builds from the running
    Connector's proxyName, proxyPort and scheme. None when the node does not answer at
    all: node RUNNING reports that once, rather than every node check again.
    """
    root = f"{facts.base_url(node.address)}/"
    answer = probes.http_get(root, timeout=5.0)
    if answer.status is None:
        return None
    location = answer.headers.get("location", "")
    edited = _file_has_public_address(facts, public)
    if not 300 <= answer.status < 400 or not location:
        return Check(CONNECTOR_IN_EFFECT, node.name, True,
                     f"{root}: HTTP {answer.status}, no redirect to judge by (nothing to see here)")
    target = url_key(location)
    if target is None:
        # Tomcat 8.5+ may send relative redirects (useRelativeRedirects): they carry no address.
        return Check(CONNECTOR_IN_EFFECT, node.name, True,
                     f"{root}: HTTP {answer.status} to {location} (relative: it names no address, so the "
                     "running Connector cannot be told from it)")
    passed = target.origin == public_origin(public)
    seen = f"{root}: HTTP {answer.status} to {location}"
    if passed:
        return Check(CONNECTOR_IN_EFFECT, node.name, True, seen)
    if edited:
        how = f"`{node.restart_command}`" if node.restart_command else "your usual way"
        fix = (f"server.xml on {node.name} already has the public address, but the running Tomcat does not "
               f"use it yet: restart Confluence on {node.name} ({how}). `apply --only restart` restarts only the "
               "nodes it has not restarted since the last Connector change.")
    else:
        fix = (f"The Connector on {node.name} lacks the public address: run `confluence-lb-wizard apply "
               "--only connector`, then restart the node (`apply --only restart`).")
    return Check(CONNECTOR_IN_EFFECT, node.name, False,
                 seen + f" (users would be sent to {target.scheme}://{target.host}:{target.port})", fix)


def _file_has_public_address(facts: NodeFacts, public: PublicUrl) -> bool:
    connector = next((c for c in facts.xml.connectors if c.port == facts.confluence_port), None)
    return (connector is not None and connector.proxy_name == public.host and connector.proxy_port == public.port
            and (connector.scheme or "http") == public.scheme)


def manifest_url(node: Node, facts: NodeFacts) -> str:
    """The node's applinks manifest, readable without credentials (``/rest/applinks/1.0/manifest``)."""
    return f"{facts.base_url(node.address)}/rest/applinks/1.0/manifest"


def admin_page(node: Node, facts: NodeFacts) -> str:
    """Where an admin sets the Server Base URL on this node (General Configuration)."""
    return f"{facts.base_url(node.address)}/admin/editgeneralconfig.action"


@dataclass(frozen=True)
class Reading:
    """What one node's manifest says about the base URL."""

    node: str
    manifest: str  # the manifest's address ("" when the node's files could not be read)
    admin_page: str  # where the admin changes the base URL on this node
    base_url: str | None
    seen: str  # what was seen, for the admin
    answered: bool  # the node gave an HTTP answer at all


def read_base_url(url: str) -> tuple[str | None, probes.HttpAnswer]:
    """The base URL a node's manifest reports (None when it cannot be read), and the answer."""
    answer = probes.http_get(url, timeout=5.0, headers={"Accept": "application/xml"}, limit=65536)
    if answer.status != 200:
        return None, answer
    return probes.manifest_base_url(answer.body), answer


def read_manifest(node: Node, facts: NodeFacts) -> Reading:
    url = manifest_url(node, facts)
    base, answer = read_base_url(url)
    if base is not None:
        seen = f"{base} (from {url})"
    else:
        seen = answer.seen if answer.status != 200 else f"{url}: no <url> in the manifest"
    return Reading(node.name, url, admin_page(node, facts), base, seen, answer.status is not None)


def read_version(node: Node, facts: NodeFacts) -> tuple[str | None, str]:
    """The Confluence version a node's manifest reports (None when it cannot be read), and what was seen."""
    url = manifest_url(node, facts)
    answer = probes.http_get(url, timeout=5.0, headers={"Accept": "application/xml"}, limit=65536)
    version = probes.manifest_version(answer.body) if answer.status == 200 else None
    if version:
        return version, f"Confluence {version} (from {url})"
    return None, answer.seen if answer.status != 200 else f"{url}: no <version> in the manifest"


def version_check(node: str, version: str | None, seen: str, mode: str) -> Check:
    """Whether this Confluence version has the Synchrony mode of the answers.

    Passes when the version cannot be read (a node not started yet): it is said, not judged.
    """
    if version is None:
        return Check(CONFLUENCE_VERSION, node, True, f"not known ({seen}); the Synchrony mode is not checked "
                                                     "against it")
    numbers = probes.version_tuple(version)
    if mode != "standalone" and numbers and numbers < MANAGED_SYNCHRONY_VERSION:
        return Check(CONFLUENCE_VERSION, node, False,
                     f"{seen}; synchrony.mode {mode} needs Confluence 6.12 or later",
                     f"Before 6.12 Confluence Data Center runs Synchrony only standalone: set synchrony.mode to "
                     f"standalone with synchrony.nodes (Atlassian's \"Set up a Synchrony cluster for Confluence Data "
                     f"Center\"), or upgrade Confluence on {node}.")
    return Check(CONFLUENCE_VERSION, node, True, f"{seen}; synchrony.mode {mode} exists there")


def base_url_check(reading: Reading, public: PublicUrl) -> Check:
    """The base URL a node reports is the public URL (else the editor spins)."""
    if reading.base_url is None:
        return Check(BASE_URL, reading.node, False, reading.seen,
                     f"Confluence on {reading.node} does not show its base URL; check that it runs, then compare "
                     f"General Configuration > Server Base URL ({reading.admin_page}) with {public.url}.")
    passed = same_base_url(reading.base_url, public.url)
    return Check(BASE_URL, reading.node, passed, reading.seen,
                 "" if passed else
                 f"Set General Configuration > Server Base URL to {public.join('')} ({reading.admin_page}), "
                 "or run `confluence-lb-wizard apply --only base-url`.")


# --------------------------------------------------------------------------- through the balancer


def apache_probe_address(ctx: Context) -> str:
    """Where the workstation reaches the balancer's machine (Apache, nginx, HAProxy): this machine for a
    local balancer, else the SSH host (its HostName when the answers name an ~/.ssh/config alias)."""
    options = ctx.answers.balancer.host_options
    assert options is not None
    if options.access.transport == "local":
        return "127.0.0.1"
    host = ctx.hosts.balancer()
    target = getattr(host, "target", None)  # wizard.transport.ssh.SSHHost resolves ~/.ssh/config
    return getattr(target, "hostname", None) or options.access.host or "127.0.0.1"


def synchrony_paths(answers: Answers) -> tuple[str, str]:
    """(heartbeat, WebSocket) paths users' browsers use through the balancer."""
    if answers.synchrony.mode in ("direct", "standalone"):
        return "/synchrony/heartbeat", "/synchrony/v1/bayeux-sync1"
    ctx = answers.public_url.context_path
    return f"{ctx}/synchrony-proxy/heartbeat", f"{ctx}/synchrony-proxy/v1/bayeux-sync1"


def balancer_status(endpoint: probes.Endpoint, public: PublicUrl) -> Check:
    path = f"{public.context_path}/status"
    answer = endpoint.get(path)
    state = probes.confluence_state(answer)
    passed = state == "RUNNING"
    return Check(f"{BALANCER_STATUS} ({path})", BALANCER, passed,
                 f"{endpoint.describe()}: " + (f"/status state {state}" if state else answer.seen),
                 "" if passed else "Check that the nodes answer RUNNING on their own and that the balancer "
                                   "forwards to the Confluence port (target group, listener), then run "
                                   "`apply --only balancer` again.")


def balancer_heartbeat(endpoint: probes.Endpoint, answers: Answers) -> Check:
    path, _ = synchrony_paths(answers)
    answer = endpoint.get(path)
    passed = probes.heartbeat_ok(answer)
    where = ("each standalone Synchrony machine (synchrony.nodes) runs Synchrony and that the balancer reaches "
             "its address and port" if answers.synchrony.mode == "standalone" else
             "each node's Synchrony runs and that the balancer reaches its port")
    return Check(f"{BALANCER_HEARTBEAT} ({path})", BALANCER, passed, f"{endpoint.describe()}: {answer.seen}",
                 "" if passed else f"Synchrony does not answer through the balancer: check that {where} (the "
                                   "/synchrony/* route and, for an ALB, the Synchrony target group), then run "
                                   "`apply --only balancer` again.")


#: The check that a Synchrony answer never moves the user's Confluence session (every kind's name for it).
SYNCHRONY_KEEPS_SESSION = "Synchrony's stickiness cannot move the Confluence session"


def synchrony_keeps_session(endpoint: probes.Endpoint, answers: Answers, cookie_name: str) -> Check:
    """A Synchrony request whose node is gone (as when that node's Synchrony is down) must not re-set the
    Confluence session's cookie: that would move the user's Confluence session to another node (their
    session lost, "XSRF check failed"). A cookie naming no node stands in for the failover."""
    path, _ = synchrony_paths(answers)
    answer = endpoint.get(path, cookies={cookie_name: "clbw-no-such-node"})
    reset = answer.cookie(cookie_name)
    passed = answer.status is not None and reset is None
    seen = (f"{endpoint.describe()}: {answer.seen}" if answer.status is None else
            f"a Synchrony failover re-sets {cookie_name}={reset}" if reset is not None else
            f"a Synchrony failover leaves {cookie_name} alone")
    return Check(SYNCHRONY_KEEPS_SESSION, BALANCER, passed, seen,
                 "" if passed else f"Synchrony's answers set {cookie_name}, Confluence's sticky cookie: when one "
                                   "node's Synchrony is down, a Synchrony request moves the user's Confluence session "
                                   "to another node. `confluence-lb-wizard apply --only balancer` writes a file whose "
                                   "Synchrony answers never set it.")


def balancer_websocket(endpoint: probes.Endpoint, answers: Answers) -> Check:
    _, path = synchrony_paths(answers)
    status, seen = probes.websocket_upgrade(endpoint.address, endpoint.port, path, endpoint.host_header,
                                            tls=endpoint.scheme == "https", server_name=endpoint.server_name)
    passed = status == 101
    return Check(f"{BALANCER_WEBSOCKET} ({path})", BALANCER, passed, seen,
                 "" if passed else "The editor needs the WebSocket upgrade (101) through the balancer: run "
                                   "`apply --only balancer` to restore its Synchrony route.")


def stickiness(endpoint: probes.Endpoint, public: PublicUrl, cookie_name: str, *,
               tries: int = STICKY_TRIES) -> Check:
    """The balancer sets its sticky cookie, and requests carrying it stay on one node
    (else random logouts and XSRF failures).

    First ``tries`` requests without a cookie (where they land shows the spread; the
    first one's cookie is kept), then ``tries`` with it, which must all land on that
    one node. The spread comes first because a balancer evens out its counts: after a
    run of sticky requests to one node the next newcomers all go to the others.
    """
    path = f"{public.context_path}/status"
    fix = (f"Without the {cookie_name} cookie users are logged out at random: run `apply --only balancer` "
           "to restore sticky sessions.")
    fresh = [endpoint.get(path) for _ in range(tries)]
    first = fresh[0]
    if first.status is None:
        return Check(STICKY, BALANCER, False, first.seen, "The balancer does not answer; see the checks above.")
    value = first.cookie(cookie_name)
    if value is None:
        return Check(STICKY, BALANCER, False, f"{first.url}: HTTP {first.status} without a {cookie_name} cookie",
                     fix)
    spread = sorted({name for name in map(_node_of, fresh) if name})
    jar = {cookie_name: value}
    landed = [_node_of(first)]
    moved: list[str] = []
    for _ in range(tries):
        answer = endpoint.get(path, cookies=jar)
        landed.append(_node_of(answer))
        again = answer.cookie(cookie_name)
        if again is not None and again != jar[cookie_name]:
            if cookie_name == "ROUTEID":
                # Apache re-issues ROUTEID only when it sent the request to another member.
                moved.append(again)
            jar[cookie_name] = again  # an ALB renews AWSALB on every answer; a browser keeps the newest
    nodes = sorted({name for name in landed if name})
    seen = f"{cookie_name}={_short(value)} set; {tries} requests with it answered by " + (
        ", ".join(nodes) if nodes else "nodes that do not name themselves (no X-Node header): only the cookie "
                                       "could be checked")
    if moved:
        seen += f"; the balancer moved the session to route(s) {', '.join(_short(m) for m in moved)}"
    if spread:
        seen += f"; without the cookie answered by {', '.join(spread)}"
    passed = len(nodes) <= 1 and not moved
    return Check(STICKY, BALANCER, passed, seen, "" if passed else fix)


def _node_of(answer: probes.HttpAnswer) -> str | None:
    return answer.headers.get(NODE_HEADER) if answer.status is not None else None


def _short(value: str) -> str:
    return value if len(value) <= 24 else value[:20] + "..."


def root_redirect(endpoint: probes.Endpoint, public: PublicUrl, node_addresses: Sequence[tuple[str, int]],
                  *, max_redirects: int = MAX_REDIRECTS) -> Check:
    """``GET /`` through the balancer never sends users to ``http://`` (behind HTTPS) or to a node's
    own address or port (the Connector lacks proxyName/proxyPort/scheme)."""
    hops: list[str] = []
    path = "/"
    node_ports = {port for _, port in node_addresses}
    nodes = {(host.lower(), port) for host, port in node_addresses}
    for _ in range(max_redirects + 1):
        answer = endpoint.get(path)
        if answer.status is None:
            return Check(ROOT_REDIRECT, BALANCER, False, " -> ".join(hops + [answer.seen]),
                         "The balancer does not answer; see the checks above.")
        location = answer.headers.get("location", "")
        if not 300 <= answer.status < 400 or not location:
            hops.append(f"{path}: HTTP {answer.status}")
            break
        hops.append(f"{path}: HTTP {answer.status} to {location}")
        target = url_key(location)
        if target is None:  # relative: it stays wherever the browser already is
            path = location if location.startswith("/") else "/" + location
            continue
        problem = _bad_redirect(target, public, nodes, node_ports)
        if problem:
            return Check(ROOT_REDIRECT, BALANCER, False, " -> ".join(hops) + f" ({problem})",
                         "Confluence builds this address from its Connector: run `apply --only connector`, "
                         "then restart the nodes (`apply --only restart`).")
        if target.origin != public_origin(public):
            hops.append("(elsewhere, not followed)")  # a single sign-on page, say
            break
        split = urlsplit(location)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return Check(ROOT_REDIRECT, BALANCER, True, f"{endpoint.describe()}: " + " -> ".join(hops))


def _bad_redirect(target: UrlKey, public: PublicUrl, nodes: set[tuple[str, int]], node_ports: set[int]) -> str:
    if public.is_https and target.scheme == "http":
        return "a redirect to http:// behind an HTTPS public URL"
    if (target.host, target.port) in nodes:
        return f"a redirect to the node address {target.host}:{target.port}"
    if target.host == public.host and target.port != public.port:
        what = "a node's Confluence port" if target.port in node_ports else "a port users do not use"
        return f"a redirect to port {target.port} ({what})"
    return ""


def https_redirect(endpoint: probes.Endpoint, public: PublicUrl) -> Check:
    """Plain HTTP answers 301 to the same path and query on HTTPS (Atlassian's "How to configure Amazon Web Service Application Load Balancer with Confluence")."""
    probe = "/clbw-redirect-check?keep=1&and=2"
    expected = f"{public.scheme}://{public_host_header(public)}{probe}"
    if not endpoint.http_ports:
        return Check(HTTPS_REDIRECT, BALANCER, False, "no plain-HTTP port to redirect from",
                     "Users who type http:// get nothing: run `apply --only balancer` to add the redirect.")
    seen: list[str] = []
    passed = True
    for port in endpoint.http_ports:
        answer = endpoint.get(probe, scheme="http", port=port)
        location = answer.headers.get("location", "")
        ok = answer.status in (301, 308) and url_key(location) == url_key(expected) and \
            urlsplit(location).query == urlsplit(expected).query
        passed = passed and ok
        seen.append(f"{answer.url}: " + (f"HTTP {answer.status} to {location or '(no Location)'}"
                                         if answer.status is not None else f"no answer ({answer.error})"))
    return Check(HTTPS_REDIRECT, BALANCER, passed, "; ".join(seen),
                 "" if passed else f"Expected 301 to {expected}: run `apply --only balancer` again.")


def tls_certificate(endpoint: probes.Endpoint, *, now: datetime | None = None,
                    min_days: int = MIN_CERTIFICATE_DAYS) -> Check:
    """The certificate users get: names the public host, in its validity period, not about to expire.

    Whether this workstation trusts the issuer is said, not judged: an internal wiki's
    private CA is trusted by the users' browsers, not necessarily here.
    """
    name = f"{TLS_CERTIFICATE} ({endpoint.server_name})"
    cert, error = probes.peer_certificate(endpoint.address, endpoint.port, endpoint.server_name)
    if cert is None:
        return Check(name, BALANCER, False, error,
                     "The balancer does not complete a TLS handshake: check its certificate and key, then run "
                     "`apply --only balancer` again.")
    now = now or datetime.now(UTC)
    days_left = (cert.not_after - now).days
    names = ", ".join(cert.dns_names + cert.ip_addresses) or "(none)"
    seen = (f"{cert.subject}, issued by {cert.issuer}, valid until {cert.not_after:%Y-%m-%d} "
            f"({days_left} day(s) left), names {names}; "
            + ("trusted by this machine" if cert.trusted else f"not trusted by this machine ({cert.trust_error})"))
    problems = []
    if not hostname_matches(endpoint.server_name, cert.dns_names, cert.ip_addresses):
        problems.append(f"it does not name {endpoint.server_name}")
    if cert.not_before > now:
        problems.append(f"it is not valid before {cert.not_before:%Y-%m-%d}")
    if cert.not_after <= now:
        problems.append("it has expired")
    elif days_left < min_days:
        problems.append(f"it expires in {days_left} day(s), under {min_days}")
    if not problems:
        return Check(name, BALANCER, True, seen)
    return Check(name, BALANCER, False, seen + "; " + "; ".join(problems),
                 f"Install a certificate for {endpoint.server_name} valid for more than {min_days} days on the "
                 "balancer (the files of balancer.apache.tls, or the ACM certificate of the ALB's listener).")
