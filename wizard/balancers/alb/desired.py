"""What the balancer should be, from the answers and the nodes' own files (pure).

The seeds (000, 001) and Atlassian's Quick Start give the shape: two HTTP
target groups (Confluence on the Connector port with ``/status`` under the
context path; Synchrony on its port with ``/synchrony/heartbeat``), both sticky
with an ``lb_cookie`` and checked every 20 s (timeout 10 s, healthy after 2);
every node in both; an Application Load Balancer with a 300 s idle timeout (the
default 60 s drops idle editor WebSockets); HTTPS on 443 with the certificate
and HTTP redirecting to it with a 301 that keeps host, path and query; and the
``/synchrony/*`` rule to the Synchrony group when Synchrony is routed directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from wizard.answers_model import Answers
from wizard.balancers.alb.facts import AlbFacts, NodePorts
from wizard.balancers.alb.names import (
    ROLE_CONFLUENCE_TG,
    ROLE_HTTP_LISTENER,
    ROLE_HTTPS_LISTENER,
    ROLE_SYNCHRONY_TG,
    TOOL,
    Names,
)
from wizard.transport.aws import AwsError

# The Quick Start's health-check timing.
HEALTH_INTERVAL = 20
HEALTH_TIMEOUT = 10
HEALTHY_THRESHOLD = 2
HEALTH_MATCHER = "200"
#: AWS's recommended policy (TLS 1.3 and 1.2); any ELBSecurityPolicy-TLS13-* counts as current.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
CURRENT_SSL_POLICY_PREFIX = "ELBSecurityPolicy-TLS13-"
#: balancer.settings.tls_protocols -> the ALB security policy that offers exactly those.
SSL_POLICIES = {
    frozenset({"TLSv1.2", "TLSv1.3"}): SSL_POLICY,
    frozenset({"TLSv1.3"}): "ELBSecurityPolicy-TLS13-1-3-2021-06",
    frozenset({"TLSv1.2"}): "ELBSecurityPolicy-TLS-1-2-2017-01",
}
#: Under this idle timeout the editor's WebSockets drop (the plan warns, verify fails), whatever the answers say.
IDLE_TIMEOUT_FLOOR = 300
SYNCHRONY_PATH = "/synchrony/*"
SYNCHRONY_HEALTH_PATH = "/synchrony/heartbeat"
ANYWHERE = "0.0.0.0/0"
#: Who may reach an internet-facing balancer when the answers do not say (balancer.alb.allowed_cidrs).
#: IPv4 only: apply creates the balancer with IpAddressType "ipv4", so it has no IPv6 address and
#: admitting ::/0 would admit nobody. An internal balancer defaults to its VPC's CIDR blocks instead.
DEFAULT_ALLOWED = (ANYWHERE,)
#: The first rule priority the wizard tries on a listener (low numbers stay free for the admin).
RULE_PRIORITY = 10

STICKINESS = {"stickiness.enabled": "true", "stickiness.type": "lb_cookie"}
#: How long a deregistered (drained) target keeps its requests under way: ``restart_drain``
#: (``wizard.balancers.alb.drain``).
DEREGISTRATION_DELAY_KEY = "deregistration_delay.timeout_seconds"
IDLE_TIMEOUT_KEY = "idle_timeout.timeout_seconds"


@dataclass(frozen=True)
class TargetSpec:
    node: str
    id: str
    port: int
    #: "all" for an IP outside the VPC (a peered network); None otherwise.
    availability_zone: str | None = None

    def api(self) -> dict[str, Any]:
        target: dict[str, Any] = {"Id": self.id, "Port": self.port}
        if self.availability_zone:
            target["AvailabilityZone"] = self.availability_zone
        return target

    def describe(self) -> str:
        return f"{self.node} ({self.id}:{self.port})"


@dataclass(frozen=True)
class TargetGroupSpec:
    key: str  # "confluence" or "synchrony"
    role: str
    name: str
    label: str  # "Confluence" / "Synchrony", for messages
    port: int
    vpc_id: str
    target_type: str  # "instance" or "ip"
    health_path: str
    targets: tuple[TargetSpec, ...]
    protocol: str = "HTTP"
    interval: int = HEALTH_INTERVAL
    timeout: int = HEALTH_TIMEOUT
    healthy_threshold: int = HEALTHY_THRESHOLD
    matcher: str = HEALTH_MATCHER
    attributes: dict[str, str] = field(default_factory=lambda: dict(STICKINESS))

    def health_settings(self) -> dict[str, Any]:
        """The health check as modify_target_group takes it."""
        return {"HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port",
                "HealthCheckPath": self.health_path, "HealthCheckIntervalSeconds": self.interval,
                "HealthCheckTimeoutSeconds": self.timeout, "HealthyThresholdCount": self.healthy_threshold,
                "Matcher": {"HttpCode": self.matcher}}

    def describe(self) -> str:
        delay = self.attributes.get(DEREGISTRATION_DELAY_KEY)
        return (f"{self.protocol} {self.port}, health {self.health_path} every {self.interval} s "
                f"(timeout {self.timeout} s, healthy after {self.healthy_threshold}), sticky lb_cookie, "
                + (f"deregistration delay {delay} s, " if delay is not None else "")
                + f"{self.target_type} targets")


@dataclass(frozen=True)
class IngressSpec:
    port: int
    purpose: str  # what the port is for, in the rule's description
    description: str
    #: The network admitted (the balancer's own group); None for a rule whose source is a group.
    cidr: str | None = None

    @property
    def ipv6(self) -> bool:
        return self.cidr is not None and ":" in self.cidr

    def permission(self) -> dict[str, Any]:
        """This rule as authorize/revoke_security_group_ingress take it (one network, IPv4 or IPv6)."""
        assert self.cidr is not None, "a rule from a network"
        ranges = ({"Ipv6Ranges": [{"CidrIpv6": self.cidr, "Description": self.description}]} if self.ipv6
                  else {"IpRanges": [{"CidrIp": self.cidr, "Description": self.description}]})
        return {"IpProtocol": "tcp", "FromPort": self.port, "ToPort": self.port, **ranges}


@dataclass(frozen=True)
class ListenerSpec:
    role: str
    port: int
    protocol: str  # HTTPS or HTTP
    action: str  # "forward" (to Confluence) or "redirect" (to HTTPS)
    certificate_arn: str | None = None
    ssl_policy: str | None = None
    redirect_port: int | None = None

    def default_actions(self, confluence_arn: str | None) -> list[dict[str, Any]]:
        if self.action == "redirect":
            return [{"Type": "redirect", "RedirectConfig": redirect_config(self.redirect_port or 443)}]
        return [{"Type": "forward", "TargetGroupArn": confluence_arn}]

    def describe(self) -> str:
        if self.action == "redirect":
            return (f"{self.protocol} {self.port} redirecting to HTTPS {self.redirect_port} "
                    "(301, host, path and query kept)")
        tls = f" with {self.certificate_arn} and {self.ssl_policy}" if self.protocol == "HTTPS" else ""
        return f"{self.protocol} {self.port}{tls} forwarding to Confluence"


@dataclass(frozen=True)
class RuleSpec:
    listener_port: int
    path: str = SYNCHRONY_PATH
    target: str = "synchrony"

    def conditions(self) -> list[dict[str, Any]]:
        return [{"Field": "path-pattern", "PathPatternConfig": {"Values": [self.path]}}]


@dataclass(frozen=True)
class Desired:
    names: Names
    region: str
    vpc_id: str
    scheme: str
    subnets: tuple[str, ...]
    idle_timeout: int
    #: What the balancer's own group lets in: each listener port from each allowed network.
    balancer_ingress: tuple[IngressSpec, ...]
    node_security_group: str | None
    #: What the nodes' group must let in from the balancer's group.
    node_ingress: tuple[IngressSpec, ...]
    target_groups: tuple[TargetGroupSpec, ...]
    listeners: tuple[ListenerSpec, ...]
    rule: RuleSpec | None
    context_path: str
    #: What balancer.settings become on an ALB (or why they do not apply), for the plan.
    settings_note: str = ""
    #: The networks the listener ports admit (balancer.alb.allowed_cidrs, or its default).
    allowed_cidrs: tuple[str, ...] = ()

    def target_group(self, key: str) -> TargetGroupSpec | None:
        return next((tg for tg in self.target_groups if tg.key == key), None)

    @property
    def forwarding_listener(self) -> ListenerSpec:
        return next(listener for listener in self.listeners if listener.action == "forward")


def redirect_config(port: int) -> dict[str, str]:
    """HTTP to HTTPS, permanently, keeping host, path and query (as Atlassian's "How to configure Amazon Web Service Application Load Balancer with Confluence" asks)."""
    return {"Protocol": "HTTPS", "Port": str(port), "Host": "#{host}", "Path": "/#{path}",
            "Query": "#{query}", "StatusCode": "HTTP_301"}


def build_desired(answers: Answers, facts: AlbFacts) -> Desired:
    """The balancer these answers and nodes call for; AwsError when they cannot make one."""
    alb = answers.balancer.alb
    assert alb is not None, "balancer.kind is alb"
    names = Names.of(answers)
    nodes = facts.nodes
    context_path = _context_path(nodes)
    target_type = _target_type(nodes)
    direct = answers.synchrony.mode == "direct"
    standalone = answers.synchrony.mode == "standalone"

    def targets(port_of: str) -> tuple[TargetSpec, ...]:
        return tuple(_target(node, target_type, getattr(node, port_of), facts) for node in nodes)

    # A node drained for a restart is deregistered: AWS lets its requests under way finish for
    # this long, and the roll waits for that instead of a restart_drain of its own.
    attributes = {**STICKINESS, DEREGISTRATION_DELAY_KEY: str(answers.restart_drain)}

    synchrony_group: TargetGroupSpec | None = None
    if direct:
        synchrony_group = TargetGroupSpec(
            key="synchrony", role=ROLE_SYNCHRONY_TG, name=names.synchrony_target_group, label="Synchrony",
            port=nodes[0].synchrony_port, vpc_id=alb.vpc_id, target_type=target_type,
            health_path=SYNCHRONY_HEALTH_PATH, targets=targets("synchrony_port"), attributes=dict(attributes))
    elif standalone:
        # The standalone cluster's machines: instances where every one names its instance, else addresses.
        machines = tuple(NodePorts(s.name, s.address, s.instance_id, 0, answers.synchrony.port_of(s), "")
                         for s in answers.synchrony.nodes)
        machine_type = _target_type(machines)
        synchrony_group = TargetGroupSpec(
            key="synchrony", role=ROLE_SYNCHRONY_TG, name=names.synchrony_target_group, label="Synchrony",
            port=machines[0].synchrony_port, vpc_id=alb.vpc_id, target_type=machine_type,
            health_path=SYNCHRONY_HEALTH_PATH,
            targets=tuple(_target(m, machine_type, m.synchrony_port, facts) for m in machines),
            attributes=dict(attributes))

    groups = [TargetGroupSpec(
        key="confluence", role=ROLE_CONFLUENCE_TG, name=names.confluence_target_group, label="Confluence",
        port=nodes[0].confluence_port, vpc_id=alb.vpc_id, target_type=target_type,
        health_path=f"{context_path}/status", targets=targets("confluence_port"), attributes=dict(attributes))]
    if synchrony_group is not None:
        groups.append(synchrony_group)
    settings = answers.balancer.settings
    policy = SSL_POLICIES[frozenset(settings.tls_protocols)]

    public = answers.public_url
    listeners: list[ListenerSpec] = []
    if alb.certificate_arn:
        listeners.append(ListenerSpec(role=ROLE_HTTPS_LISTENER, port=public.port, protocol="HTTPS",
                                      action="forward", certificate_arn=alb.certificate_arn,
                                      ssl_policy=policy))
        if public.port != 80:
            listeners.append(ListenerSpec(role=ROLE_HTTP_LISTENER, port=80, protocol="HTTP",
                                          action="redirect", redirect_port=public.port))
    else:
        listeners.append(ListenerSpec(role=ROLE_HTTP_LISTENER, port=public.port, protocol="HTTP",
                                      action="forward"))
    forward_port = next(listener.port for listener in listeners if listener.action == "forward")

    setup = names.setup
    allowed = allowed_networks(answers, facts)
    balancer_ingress = tuple(IngressSpec(listener.port, f"{listener.protocol} from users",
                                         balancer_ingress_description(setup, listener.protocol), cidr)
                             for listener in listeners for cidr in allowed)
    node_ports: dict[int, str] = {}
    for node in nodes:
        node_ports.setdefault(node.confluence_port, "Confluence")
        if direct:
            node_ports.setdefault(node.synchrony_port, "Synchrony")
    node_ingress = tuple(IngressSpec(port, purpose, node_ingress_description(setup, purpose))
                         for port, purpose in sorted(node_ports.items())) if alb.node_security_group_id else ()
    return Desired(names=names, region=alb.region, vpc_id=alb.vpc_id, scheme=alb.scheme,
                   subnets=tuple(sorted(alb.subnet_ids)), idle_timeout=alb.idle_timeout,
                   balancer_ingress=balancer_ingress, node_security_group=alb.node_security_group_id,
                   node_ingress=node_ingress, target_groups=tuple(groups), listeners=tuple(listeners),
                   rule=RuleSpec(listener_port=forward_port) if synchrony_group is not None else None,
                   context_path=context_path, settings_note=_settings_note(answers, policy, allowed),
                   allowed_cidrs=allowed)


def allowed_networks(answers: Answers, facts: AlbFacts) -> tuple[str, ...]:
    """balancer.alb.allowed_cidrs, or its default: anywhere (IPv4) when internet-facing, the VPC's
    IPv4 CIDR blocks (read by describe_vpcs) when internal. Normalised, each once."""
    alb = answers.balancer.alb
    assert alb is not None
    if alb.allowed_cidrs:
        return tuple(alb.allowed_cidrs)  # normalised by the answers' check
    if alb.scheme == "internal":
        return tuple(dict.fromkeys(normal_cidr(cidr) for cidr in facts.env.vpc_cidrs))
    return DEFAULT_ALLOWED


def normal_cidr(cidr: str) -> str:
    """A network in the one spelling the wizard writes (``2001:db8::/32``); anything else as it is."""
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        return cidr


def covers_everyone(cidrs: tuple[str, ...]) -> list[str]:
    """The IP versions (``0.0.0.0/0``, ``::/0``) that ``cidrs`` together cover whole, even split in parts."""
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    found = []
    if ipaddress.IPv4Network("0.0.0.0/0") in ipaddress.collapse_addresses(v4):
        found.append("0.0.0.0/0")
    if ipaddress.IPv6Network("::/0") in ipaddress.collapse_addresses(v6):
        found.append("::/0")
    return found


def balancer_ingress_description(setup: str, protocol: str) -> str:
    """The description of the rules the wizard adds to the balancer's group; it marks them as its own."""
    return f"{ingress_marker(setup)}{protocol} from users"


def ingress_marker(setup: str) -> str:
    """How every security group rule this setup made begins its description (and no other rule)."""
    return f"{TOOL} {setup}: "


def _settings_note(answers: Answers, policy: str, allowed: tuple[str, ...]) -> str:
    """balancer.settings on an ALB: what each becomes, or why it does not apply; who may reach it."""
    settings = answers.balancer.settings
    alb = answers.balancer.alb
    assert alb is not None
    parts = [_allowed_note(alb.scheme, allowed, given=bool(alb.allowed_cidrs))]
    parts += [f"TLS {' '.join(settings.tls_protocols)}: policy {policy}" if alb.certificate_arn
              else "tls_protocols: no HTTPS listener",
              f"read_timeout: an ALB has no per-request timeout; its idle timeout ({alb.idle_timeout} s) applies",
              f"max_upload_mb ({settings.max_upload_mb}): an ALB does not limit request bodies (Confluence's own "
              "attachment limit applies)",
              "X-Forwarded-For: added by the ALB"]
    if settings.hsts_max_age:
        parts.append(f"hsts_max_age ({settings.hsts_max_age}): not set on an ALB by this setup (send it from "
                     "Confluence or a response-header rule)")
    if alb.idle_timeout < IDLE_TIMEOUT_FLOOR:
        parts.append(f"WARNING: idle_timeout {alb.idle_timeout} s is under {IDLE_TIMEOUT_FLOOR} s: the editor's "
                     "WebSockets drop, and verify fails")
    if answers.synchrony.mode == "standalone":
        parts.append("the Synchrony target group registers the standalone Synchrony machines ("
                     + ", ".join(s.name for s in answers.synchrony.nodes) + "); their own security group is "
                     "not changed: let the balancer's group reach their Synchrony port")
    return "; ".join(parts)


def _allowed_note(scheme: str, allowed: tuple[str, ...], *, given: bool) -> str:
    """Who may reach the listener ports, and the warnings that go with it."""
    if given:
        where = "balancer.alb.allowed_cidrs"
    elif scheme == "internal":
        where = "the default for an internal balancer: its VPC's CIDR"
    else:
        where = "the default for an internet-facing balancer: anywhere over IPv4"
    parts = [f"listener ports open to {', '.join(allowed)} ({where})"]
    everyone = covers_everyone(allowed)
    if scheme == "internal" and everyone:
        parts.append(f"WARNING: the internal balancer is open to {' and '.join(everyone)}: everything that can "
                     "route into the VPC (peered VPCs, VPN, Direct Connect) reaches it; list only the networks that "
                     "should in balancer.alb.allowed_cidrs")
    if any(":" in cidr for cidr in allowed):
        parts.append("the balancer is IPv4 only (IpAddressType ipv4), so the IPv6 networks are admitted by its "
                     "security group but reach it only once it is made dualstack")
    return "; ".join(parts)


def node_ingress_description(setup: str, purpose: str) -> str:
    """The description the wizard gives the rules it adds to the nodes' group; it marks them as its own."""
    return f"{ingress_marker(setup)}{purpose} from the balancer"


def _context_path(nodes: tuple[NodePorts, ...]) -> str:
    paths = {node.context_path for node in nodes}
    if len(paths) > 1:
        shown = ", ".join(f"{node.node}: {node.context_path or '/'}" for node in nodes)
        raise AwsError(f"The nodes serve Confluence under different context paths ({shown}); one target "
                       "group cannot health-check them all.",
                       "Give every node the same <Context path> in server.xml.")
    return paths.pop() if paths else ""


def _target_type(nodes: tuple[NodePorts, ...]) -> str:
    with_id = [node.node for node in nodes if node.instance_id]
    if len(with_id) == len(nodes):
        return "instance"
    if not with_id:
        return "ip"
    without = [node.node for node in nodes if not node.instance_id]
    raise AwsError(f"Some nodes name an EC2 instance ({', '.join(with_id)}) and some do not "
                   f"({', '.join(without)}); a target group holds either instances or IP addresses.",
                   "Give every node its instance_id (or none, to register the addresses).")


def _target(node: NodePorts, target_type: str, port: int, facts: AlbFacts) -> TargetSpec:
    if target_type == "instance":
        assert node.instance_id is not None
        return TargetSpec(node.node, node.instance_id, port)
    try:
        address = ipaddress.ip_address(node.address)
    except ValueError:
        raise AwsError(f"{node.node}'s address {node.address} is not an IP address, and without an "
                       "instance_id the node is registered by IP.",
                       f"Set nodes[].instance_id for {node.node}, or its address to its private IP.") from None
    if address.version != 4:
        raise AwsError(f"{node.node}'s address {node.address} is IPv6; the balancer's target groups use IPv4.",
                       f"Set nodes[].instance_id for {node.node}, or its IPv4 address.")
    inside = any(address in ipaddress.ip_network(cidr) for cidr in facts.env.vpc_cidrs)
    if inside:
        return TargetSpec(node.node, node.address, port)
    if address.is_private:
        # AWS takes an IP outside the VPC (a peered or on-premises network) only in zone "all".
        return TargetSpec(node.node, node.address, port, availability_zone="all")
    raise AwsError(f"{node.node}'s address {node.address} is neither in the VPC {facts.env.vpc_id} "
                   f"({', '.join(facts.env.vpc_cidrs)}) nor a private address; an ALB cannot target it.",
                   f"Use the node's private address, or set nodes[].instance_id for {node.node}.")
