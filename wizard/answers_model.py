"""The answers as typed data (every key: ``confluence-lb-wizard init``; docs/reference.md).

``wizard.answers`` turns a YAML document into these, validating every key; the
rest of the core reads only these dataclasses, never the raw dictionary.
No field ever holds a secret: passphrases are asked for at run time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

Transport = Literal["ssh", "local"]


@dataclass
class Access:
    """How the wizard reaches a machine's files and commands."""

    transport: Transport = "ssh"
    host: str | None = None  # defaults to the node's address
    user: str | None = None
    port: int | None = None  # None: ~/.ssh/config or 22
    key_file: str | None = None
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    proxy_jump: str | None = None
    sudo: bool = False


@dataclass
class Node:
    name: str
    address: str
    access: Access = field(default_factory=Access)
    instance_id: str | None = None
    install_dir: str = "/opt/atlassian/confluence"
    confluence_port: int | None = None  # None: read from server.xml
    synchrony_port: int | None = None  # None: read from bin/setenv.sh, else synchrony.port
    restart_command: str | None = None  # None: detected


@dataclass
class SynchronyNode:
    """One machine of a standalone Synchrony cluster (``synchrony.mode: standalone``)."""

    name: str
    address: str
    port: int | None = None  # None: synchrony.port
    instance_id: str | None = None  # ALB only: registered as an instance rather than by address


@dataclass
class Synchrony:
    mode: Literal["direct", "internal-proxy", "standalone"] = "direct"
    port: int = 8091
    #: Only for ``standalone``: the machines of the separate Synchrony cluster.
    nodes: list[SynchronyNode] = field(default_factory=list)

    def port_of(self, node: SynchronyNode) -> int:
        """The port a standalone Synchrony machine answers on."""
        return node.port or self.port


@dataclass
class Database:
    """Where ``psql``, run over SSH on the first node, finds Confluence's PostgreSQL database
    (the base-url step's ``postgres`` method). No password here: psql takes it from
    ``~/.pgpass`` (or ``PGPASSWORD``) of the user it runs as on that node."""

    host: str = "localhost"  # as the node sees it; a folder (starting with /) means a Unix socket
    port: int = 5432
    name: str = "confluence"
    user: str = "confluence"
    psql: str = "psql"  # the client's command on the node


@dataclass
class BaseUrl:
    method: Literal["guided", "postgres"] = "guided"
    #: Only for ``postgres``; None there means the defaults of ``Database``.
    database: Database | None = None

    @property
    def db(self) -> Database:
        """The database to use (the defaults when the answers give none)."""
        return self.database or Database()


@dataclass
class Tls:
    certificate_file: str
    key_file: str


@dataclass
class ApacheOptions:
    access: Access
    config_path: str | None = None  # None: the distribution's default (wizard.balancers.apache.facts facts)
    server_name: str | None = None  # None: the public URL's host
    listen_port: int | None = None  # None: the public URL's port
    #: With TLS, the plain-HTTP port whose vhost redirects to HTTPS. None: every port this
    #: Apache already serves plain HTTP on (80 on a stock install), or 80.
    http_port: int | None = None
    tls: Tls | None = None
    manager_allow: list[str] = field(default_factory=list)
    configtest_command: str | None = None
    reload_command: str | None = None


@dataclass
class NginxOptions:
    """nginx (open source) as the balancer: one file of ``server`` blocks included inside ``http {}``."""

    access: Access
    config_path: str = "/etc/nginx/conf.d/confluence-lb.conf"
    server_name: str | None = None  # None: the public URL's host
    listen_port: int | None = None  # None: the public URL's port
    #: With TLS, the plain-HTTP port that redirects to HTTPS (None: 80).
    http_port: int | None = None
    tls: Tls | None = None
    configtest_command: str = "nginx -t"
    reload_command: str = "nginx -s reload"


@dataclass
class HaproxyOptions:
    """HAProxy 2.x as the balancer: one file of frontends and backends loaded by one of HAProxy's ``-f``."""

    access: Access
    config_path: str = "/etc/haproxy/conf.d/confluence-lb.cfg"
    server_name: str | None = None  # None: the public URL's host
    listen_port: int | None = None  # None: the public URL's port
    #: With TLS, the plain-HTTP port that redirects to HTTPS (None: 80).
    http_port: int | None = None
    #: One PEM per certificate: certificate_file holds certificate and key, or key_file is
    #: ``<certificate_file>.key`` (HAProxy loads it from beside the certificate).
    tls: Tls | None = None
    #: HAProxy's runtime API (a ``stats socket ... level admin``): drains a node without a reload.
    admin_socket: str | None = None
    #: Who may open /haproxy-stats; empty: there is no stats page.
    stats_allow: list[str] = field(default_factory=list)
    configtest_command: str = "haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d"
    reload_command: str = "systemctl reload haproxy"


#: Options of a balancer the wizard reaches as a machine (its files and commands).
HostBalancerOptions = ApacheOptions | NginxOptions | HaproxyOptions


@dataclass
class AlbOptions:
    region: str
    vpc_id: str
    subnet_ids: list[str]
    name: str | None = None  # None: the setup's name
    profile: str | None = None
    scheme: Literal["internet-facing", "internal"] = "internet-facing"
    certificate_arn: str | None = None
    node_security_group_id: str | None = None
    idle_timeout: int = 300
    #: Who may reach the listener ports (CIDRs, normalised). None: anywhere when internet-facing,
    #: the VPC's CIDR blocks when internal (read from AWS at plan time).
    allowed_cidrs: list[str] | None = None


@dataclass
class BalancerSettings:
    """What every balancer kind applies the same way (defaults from Atlassian's guidance)."""

    #: Seconds an ordinary request may wait for its node (WebSockets keep their own, longer, timeout).
    read_timeout: int = 300
    #: The largest request body (attachments) in MB; larger ones that declare their length get 413.
    max_upload_mb: int = 250
    #: The TLS protocols a balancer that terminates TLS accepts (the ALB: its security policy).
    tls_protocols: list[str] = field(default_factory=lambda: ["TLSv1.2", "TLSv1.3"])
    #: Strict-Transport-Security max-age in seconds; 0: no header.
    hsts_max_age: int = 0

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


@dataclass
class Balancer:
    kind: Literal["apache", "alb", "nginx", "haproxy"]
    apache: ApacheOptions | None = None
    alb: AlbOptions | None = None
    nginx: NginxOptions | None = None
    haproxy: HaproxyOptions | None = None
    settings: BalancerSettings = field(default_factory=BalancerSettings)

    @property
    def host_options(self) -> HostBalancerOptions | None:
        """The options of a balancer that runs on a machine the wizard reaches (not an ALB)."""
        options = {"apache": self.apache, "nginx": self.nginx, "haproxy": self.haproxy}.get(self.kind)
        return options


@dataclass
class PublicUrl:
    """The address users type, split into what the steps need."""

    url: str
    scheme: str
    host: str
    port: int
    context_path: str  # "" or "/wiki", never a trailing slash

    @property
    def is_https(self) -> bool:
        return self.scheme == "https"

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.is_https else 80)

    def join(self, path: str) -> str:
        """The public URL of ``path`` (which starts with '/'), under the context path."""
        netloc = self.host if self.default_port else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.context_path}{path}"

    @classmethod
    def parse(cls, url: str) -> PublicUrl:
        """Split a URL that ``wizard.answers`` has already validated."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        return cls(url=url, scheme=scheme, host=(parts.hostname or "").lower(), port=port,
                   context_path=parts.path.rstrip("/"))


@dataclass
class Answers:
    name: str
    public_url: PublicUrl
    nodes: list[Node]
    balancer: Balancer
    synchrony: Synchrony = field(default_factory=Synchrony)
    restart: Literal["rolling", "manual"] = "rolling"
    #: How long one node may take to answer RUNNING again after its restart.
    restart_timeout: int = 900
    #: How long a node drained in a live balancer gets to finish the requests under way before
    #: the rolling restart restarts it.
    restart_drain: int = 30
    base_url: BaseUrl = field(default_factory=BaseUrl)
    version: int = 1

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The answers as an answers file would hold them (no secret is ever among them)."""
        data = asdict(self)
        data["public_url"] = self.public_url.url
        if not data["synchrony"]["nodes"]:
            del data["synchrony"]["nodes"]  # only standalone has (and may have) its machines
        return data
