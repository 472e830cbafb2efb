"""What AWS holds for a setup, as plain frozen data (filled by ``wizard.balancers.alb.read``).

The plan is computed from these alone, so tests write them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Permission:
    """One ingress permission of a security group (one protocol and port range)."""

    protocol: str
    from_port: int
    to_port: int
    #: The networks it admits, IPv4 and IPv6, normalised (``2001:db8::/32``).
    cidrs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    #: (source, description) for each CIDR or group that carries a description.
    descriptions: tuple[tuple[str, str], ...] = ()

    @property
    def single_tcp_port(self) -> int | None:
        """The port of a TCP rule for one port (the only kind the wizard makes), else None."""
        if self.protocol in ("tcp", "6") and self.from_port == self.to_port:
            return self.from_port
        return None

    def allows(self, port: int, *, cidr: str | None = None, group: str | None = None) -> bool:
        """Whether this permission lets ``port`` in from ``cidr`` or from members of ``group``."""
        if self.protocol not in ("tcp", "6", "-1"):
            return False
        if self.protocol != "-1" and not self.from_port <= port <= self.to_port:
            return False
        return (cidr is not None and cidr in self.cidrs) or (group is not None and group in self.groups)


@dataclass(frozen=True)
class SecurityGroupFact:
    id: str
    name: str
    vpc_id: str
    tags: dict[str, str] = field(default_factory=dict)
    ingress: tuple[Permission, ...] = ()

    def allows(self, port: int, *, cidr: str | None = None, group: str | None = None) -> bool:
        return any(p.allows(port, cidr=cidr, group=group) for p in self.ingress)


@dataclass(frozen=True)
class InstanceFact:
    id: str
    state: str
    vpc_id: str | None
    availability_zone: str
    private_ip: str | None
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertificateFact:
    arn: str
    status: str
    domain: str
    names: tuple[str, ...] = ()
    in_use_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """The facts the setup builds on but never changes."""

    account: str
    caller_arn: str
    region: str
    vpc_id: str
    vpc_cidrs: tuple[str, ...]
    #: subnet id -> availability zone, for the subnets of the answers.
    subnets: dict[str, str]
    node_security_group: SecurityGroupFact | None = None
    certificate: CertificateFact | None = None
    #: instance id -> what EC2 says about it, for the nodes that name one.
    instances: dict[str, InstanceFact] = field(default_factory=dict)


@dataclass(frozen=True)
class NodePorts:
    """What a node's own files say the balancer must reach (``wizard.confluence.nodes``)."""

    node: str
    address: str
    instance_id: str | None
    confluence_port: int
    synchrony_port: int
    context_path: str


@dataclass(frozen=True)
class RegisteredTarget:
    """A target in a target group, with its health as AWS reports it."""

    id: str
    port: int
    state: str = "unknown"
    reason: str = ""
    description: str = ""
    availability_zone: str | None = None


@dataclass(frozen=True)
class TargetGroupFact:
    arn: str
    name: str
    protocol: str
    port: int
    vpc_id: str
    target_type: str
    health_protocol: str
    health_path: str
    health_port: str
    interval: int
    timeout: int
    healthy_threshold: int
    matcher: str
    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    targets: tuple[RegisteredTarget, ...] = ()
    load_balancers: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleFact:
    arn: str
    priority: str
    #: The path-pattern values of its conditions.
    paths: tuple[str, ...]
    #: The rule's actions, as AWS returns them.
    actions: tuple[dict[str, Any], ...]
    conditions: tuple[dict[str, Any], ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    is_default: bool = False


@dataclass(frozen=True)
class ListenerFact:
    arn: str
    port: int
    protocol: str
    certificates: tuple[str, ...] = ()
    ssl_policy: str | None = None
    default_actions: tuple[dict[str, Any], ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    rules: tuple[RuleFact, ...] = ()


@dataclass(frozen=True)
class LoadBalancerFact:
    arn: str
    name: str
    type: str
    scheme: str
    vpc_id: str
    state: str
    dns_name: str = ""
    state_reason: str = ""
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    listeners: tuple[ListenerFact, ...] = ()

    def listener(self, port: int) -> ListenerFact | None:
        return next((listener for listener in self.listeners if listener.port == port), None)


@dataclass(frozen=True)
class AlbFacts:
    """Everything ``plan`` needs: the environment, the nodes, and what this setup already made."""

    env: Environment
    nodes: tuple[NodePorts, ...]
    security_group: SecurityGroupFact | None = None
    #: "confluence" / "synchrony" -> the target group with that setup name, if it exists.
    target_groups: dict[str, TargetGroupFact | None] = field(default_factory=dict)
    load_balancer: LoadBalancerFact | None = None
