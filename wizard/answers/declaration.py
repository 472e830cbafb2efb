"""The answers file, declared once: every key, its check, its help line and when it is needed.

Validation (:mod:`wizard.answers.checking`), the dataclasses it builds
(:mod:`wizard.answers_model`, whose field defaults are the documented defaults),
the JSON Schema of the ``schema`` verb (:mod:`wizard.answers.schema`) and the
commented file of ``init`` (:mod:`wizard.answers.template`) all read this
declaration, so none of them can say something the others do not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wizard.answers import values as v
from wizard.answers.shape import Key, Rule, Section
from wizard.answers.values import ListOf
from wizard.answers_model import (
    Access,
    AlbOptions,
    Answers,
    ApacheOptions,
    Balancer,
    BalancerSettings,
    BaseUrl,
    Database,
    HaproxyOptions,
    NginxOptions,
    Node,
    PublicUrl,
    Synchrony,
    SynchronyNode,
    Tls,
)

if TYPE_CHECKING:
    from wizard.answers.checking import Checker

BALANCER_KINDS = ("apache", "alb", "nginx", "haproxy")


def _access(host_required: str | None) -> Section:
    """An ``access`` block; the balancer's needs a host (a node's defaults to its address)."""
    return Section(build=Access, keys=(
        Key("transport", v.choice("ssh", "local"),
            "ssh: over SSH; local: this machine's own files and commands"),
        Key("host", v.ssh_host(),
            "the host to reach: a host name, IP address or ~/.ssh/config Host alias"
            + ("" if host_required else " (default: the node's address)"),
            required=host_required, required_when=("transport", ("ssh",)) if host_required else None,
            example="lb1.internal" if host_required else "node1.internal"),
        Key("user", v.word("a user name"), "the ssh user (default: ~/.ssh/config, else your user name)",
            example="confluence"),
        Key("port", v.port(), "the ssh port (default: ~/.ssh/config, else 22)", example=22),
        Key("key_file", v.user_path(), "the private key file (default: ssh-agent and ~/.ssh/config)",
            example="~/.ssh/id_ed25519"),
        Key("known_hosts", v.user_path(), "the known_hosts file host keys are checked against "
            "(default: ~/.ssh/known_hosts)", example="~/.ssh/known_hosts"),
        Key("proxy_jump", v.word("an ssh jump host"), "a jump host, as ssh -J takes it",
            example="bastion.example.com"),
        Key("sudo", v.boolean(), "run commands and write files through passwordless sudo"),
    ))


NODE_ACCESS = _access(None)
BALANCER_ACCESS = _access("the Apache machine's host name or ssh alias (there is no node address to "
                          "default to)")
NGINX_ACCESS = _access("the nginx machine's host name or ssh alias (there is no node address to default to)")
HAPROXY_ACCESS = _access("the HAProxy machine's host name or ssh alias (there is no node address to default to)")

NODE = Section(build=Node, what="a mapping describing one node (name, address, ...)", keys=(
    Key("name", v.node_name(), "names the node in the plan, the checks and the runbook",
        required="the node's name, like node1", example="node1"),
    Key("address", v.address(), "where the balancer reaches this node: a host name or IP address",
        required="the host name or IP address where the balancer reaches this node", example="10.0.1.11"),
    Key("instance_id", v.pattern(r"i-[0-9a-f]{8,17}", "an EC2 instance id: i- and 8 or 17 hex digits",
                                 "i-0123456789abcdef0"),
        "ALB only: the EC2 instance to register; without it the address is registered as an ip target",
        example="i-0123456789abcdef0"),
    Key("install_dir", v.install_dir(), "Confluence's installation folder (conf/server.xml, bin/setenv.sh)"),
    Key("confluence_port", v.port(), "the Connector's port (default: read from conf/server.xml)", example=8090),
    Key("synchrony_port", v.port(), "Synchrony's port (default: -Dsynchrony.port in bin/setenv.sh, "
        "else synchrony.port)", example=8091),
    Key("restart_command", v.command(), "how to restart Confluence on the node (default: the confluence "
        "service, else the install's stop/start scripts)", example="sudo systemctl restart confluence"),
    Key("access", NODE_ACCESS, "how the wizard reaches this node's files and commands"),
))

TLS = Section(build=Tls, keys=(
    Key("certificate_file", v.absolute_path(), "the certificate (PEM) on the balancer machine",
        required="the absolute path of the certificate (PEM) on the balancer", example="/etc/ssl/wiki.crt"),
    Key("key_file", v.absolute_path(), "its private key (PEM) on the balancer machine; never copied or read",
        required="the absolute path of the certificate's private key (PEM) on the balancer",
        example="/etc/ssl/wiki.key"),
))

APACHE = Section(build=ApacheOptions, keys=(
    Key("access", BALANCER_ACCESS, "how the wizard reaches the Apache machine",
        required="how the wizard reaches the Apache machine (transport, host, user), like "
                 "{transport: ssh, host: lb1.internal}"),
    Key("config_path", v.config_path(".conf", "Apache only includes *.conf files from sites-available/conf.d"),
        "the vhost file the wizard manages (default: the distribution's sites-available or conf.d)",
        example="/etc/apache2/sites-available/confluence-lb.conf"),
    Key("server_name", v.hostname(), "the vhost's ServerName (default: the public URL's host)",
        example="wiki.example.com"),
    Key("listen_port", v.port(), "the port Apache serves users on (default: the public URL's port)",
        example=443),
    Key("http_port", v.port(), "with tls: the plain-HTTP port that redirects to HTTPS (default: 80)",
        example=80),
    Key("tls", TLS, "Apache terminates TLS with these files (required for an https:// public URL)"),
    Key("manager_allow", ListOf(v.network("an IP address or CIDR network",
                                          "/balancer-manager lets whoever opens it disable nodes, so it must be "
                                          "restricted (for example 127.0.0.1 or 10.0.0.0/24); leave "
                                          "manager_allow out to allow nobody"),
                                "IP addresses or CIDR networks (like [127.0.0.1, 10.0.0.0/24])"),
        "who may open /balancer-manager (default: nobody)", example=["127.0.0.1"]),
    Key("configtest_command", v.command(), "tests Apache's configuration (default: apache2ctl -t or httpd -t)",
        example="apache2ctl -t"),
    Key("reload_command", v.command(), "reloads Apache gracefully (default: apache2ctl graceful or "
        "apachectl graceful)", example="apache2ctl graceful"),
))

def _served_keys(product: str, access: Section, suffix: str, why: str, example_path: str) -> tuple[Key, ...]:
    """The keys nginx and HAProxy share with Apache's (access, the managed file, names, ports, TLS)."""
    return (
        Key("access", access, f"how the wizard reaches the {product} machine",
            required=f"how the wizard reaches the {product} machine (transport, host, user), like "
                     "{transport: ssh, host: lb1.internal}"),
        Key("config_path", v.config_path(suffix, why), f"the file the wizard manages, one {product} loads",
            example=example_path),
        Key("server_name", v.hostname(), "the public host name served (default: the public URL's host)",
            example="wiki.example.com"),
        Key("listen_port", v.port(), f"the port {product} serves users on (default: the public URL's port)",
            example=443),
        Key("http_port", v.port(), "with tls: the plain-HTTP port that redirects to HTTPS (default: 80)",
            example=80),
    )


NGINX = Section(build=NginxOptions, keys=(
    *_served_keys("nginx", NGINX_ACCESS, ".conf", "nginx includes it inside http {}, by name or by a glob",
                  "/etc/nginx/conf.d/confluence-lb.conf"),
    Key("tls", TLS, "nginx terminates TLS with these files (required for an https:// public URL)"),
    Key("configtest_command", v.command(), "tests nginx's configuration (a self-contained nginx: "
        "nginx -c MAIN.conf -p PREFIX -t)", example="nginx -t"),
    Key("reload_command", v.command(), "reloads nginx (a self-contained nginx: nginx -c MAIN.conf -p PREFIX "
        "-s reload)", example="nginx -s reload"),
))

_EVERYONE_STATS = ("the stats page shows every node and its state, so it must be restricted (for example "
                   "127.0.0.1 or 10.0.0.0/24); leave stats_allow out for no stats page")

HAPROXY = Section(build=HaproxyOptions, keys=(
    *_served_keys("HAProxy", HAPROXY_ACCESS, ".cfg", "HAProxy loads it as one of its -f files, or from a -f "
                  "folder of *.cfg files", "/etc/haproxy/conf.d/confluence-lb.cfg"),
    Key("tls", TLS, "HAProxy terminates TLS (required for an https:// public URL): one PEM per certificate, "
        "certificate_file holding certificate and key (key_file the same path), or key_file "
        "<certificate_file>.key"),
    Key("admin_socket", v.absolute_path(), "HAProxy's runtime API (a `stats socket ... level admin` of its "
        "global section), used to drain a node without a reload", example="/run/haproxy/admin.sock"),
    Key("stats_allow", ListOf(v.network("an IP address or CIDR network", _EVERYONE_STATS),
                              "IP addresses or CIDR networks (like [127.0.0.1, 10.0.0.0/24])"),
        "who may open /haproxy-stats on the balancer's port (default: nobody, and no stats page)",
        example=["127.0.0.1"]),
    Key("configtest_command", v.command(), "tests HAProxy's configuration; its -f files and folders are what "
        "HAProxy loads", example="haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d"),
    Key("reload_command", v.command(), "reloads HAProxy", example="systemctl reload haproxy"),
))

_SUBNETS_WHY = "an ALB needs subnets in at least two availability zones"
#: Two listener ports (HTTPS and its redirect) times 30 networks stays within AWS's default of 60
#: inbound rules per security group and IP version.
MAX_ALLOWED_CIDRS = 30

ALB = Section(build=AlbOptions, keys=(
    Key("name", v.alb_name(), "names the balancer and its target groups (default: the setup's name)",
        example="confluence"),
    Key("region", v.pattern(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]", "an AWS region name", "eu-west-1"),
        "the AWS region", required="the AWS region of the balancer, like eu-west-1", example="eu-west-1"),
    Key("profile", v.word("an AWS profile name"), "an AWS profile (default: the standard credential chain)",
        example="prod"),
    Key("vpc_id", v.pattern(r"vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})", "a VPC id: vpc- and 8 or 17 hex digits",
                            "vpc-0123456789abcdef0"),
        "the VPC the nodes are in", required="the id of the VPC the nodes are in, like vpc-0123456789abcdef0",
        example="vpc-0123456789abcdef0"),
    Key("subnet_ids", ListOf(v.pattern(r"subnet-[0-9a-f]+", "a subnet id: subnet- and hex digits",
                                       "subnet-0123456789abcdef0"),
                             "subnet ids (like [subnet-0a..., subnet-0b...])", min_items=2, unique=True,
                             too_few=f"must list at least two subnets, in different availability zones: "
                                     f"{_SUBNETS_WHY}",
                             distinct=f"give distinct subnets ({_SUBNETS_WHY})"),
        "the balancer's subnets, in at least two availability zones",
        required=f"the balancer's subnet ids, at least two ({_SUBNETS_WHY})",
        example=["subnet-0a1b2c3d", "subnet-0e1f2a3b"]),
    Key("scheme", v.choice("internet-facing", "internal"), "internet-facing or internal"),
    Key("certificate_arn", v.pattern(v.CERT_ARN, "an ACM certificate ARN",
                                     "arn:aws:acm:eu-west-1:123456789012:certificate/abcd-1234"),
        "the ACM certificate of the HTTPS listener (required for an https:// public URL)",
        example="arn:aws:acm:eu-west-1:123456789012:certificate/abcd-1234"),
    Key("node_security_group_id", v.pattern(r"sg-[0-9a-f]+", "a security group id: sg- and hex digits",
                                            "sg-0123456789abcdef0"),
        "the nodes' security group, opened to the balancer on the Confluence and Synchrony ports",
        example="sg-0123456789abcdef0"),
    Key("idle_timeout", v.integer(1, 4000, "a number of seconds"),
        "seconds an idle connection stays open; below 300 the editor's WebSockets drop (the plan warns, "
        "verify fails)"),
    Key("allowed_cidrs", ListOf(v.cidr(), "IPv4 or IPv6 CIDR networks (like [203.0.113.0/24, 2001:db8::/32])",
                                min_items=1, unique=True, max_items=MAX_ALLOWED_CIDRS,
                                too_few="must list at least one network; leave allowed_cidrs out for the default "
                                        "(anywhere when internet-facing, the VPC's CIDR when internal)",
                                distinct="give each network once",
                                too_many=f"at most {MAX_ALLOWED_CIDRS}: each network is one security group rule "
                                         "per listener port (two with HTTPS), and AWS allows 60 inbound rules "
                                         "per group and IP version; merge networks into wider ones"),
        "who may reach the balancer on every listener port, IPv4 or IPv6 (default: anywhere when "
        "internet-facing, the VPC's CIDR when internal); rules this setup made that are no longer listed "
        "are revoked", example=["0.0.0.0/0"]),
))

SETTINGS = Section(build=BalancerSettings, keys=(
    Key("read_timeout", v.integer(1, 3600, "a number of seconds"),
        "seconds an ordinary request may wait for its node (then 502 or 504: Apache answers 502); "
        "WebSockets keep their own longer timeout"),
    Key("max_upload_mb", v.integer(1, 102400, "a number of megabytes"),
        "the largest request body (attachments): 413 above it for a request that declares its length; "
        "where a kind cannot limit chunked uploads, the plan says so"),
    Key("tls_protocols", ListOf(v.choice("TLSv1.2", "TLSv1.3"), "TLS protocols (like [TLSv1.2, TLSv1.3])",
                                min_items=1, unique=True, too_few="must list at least one protocol"),
        "Apache/nginx/HAProxy when they terminate TLS (the ALB: its policy)"),
    Key("hsts_max_age", v.integer(0, 63072000, "a number of seconds"),
        "seconds; 0: no header; else exactly `Strict-Transport-Security: max-age=N` (over HTTPS)"),
))


BALANCER = Section(build=Balancer, keys=(
    Key("kind", v.choice(*BALANCER_KINDS), "which balancer to set up",
        required="the kind of balancer: apache, alb, nginx or haproxy", example="apache"),
    Key("apache", APACHE, "kind apache: the Apache httpd settings",
        required="the Apache settings (access, and optionally config_path, tls, ...)",
        required_when=("kind", ("apache",)), only_when=("kind", ("apache",)),
        misplaced=lambda kind: f"is for kind apache, but balancer.kind is {kind}: remove it or change kind"),
    Key("alb", ALB, "kind alb: the AWS Application Load Balancer settings",
        required="the ALB settings (region, vpc_id, subnet_ids, ...)",
        required_when=("kind", ("alb",)), only_when=("kind", ("alb",)),
        misplaced=lambda kind: f"is for kind alb, but balancer.kind is {kind}: remove it or change kind"),
    Key("nginx", NGINX, "kind nginx: the nginx (open source) settings",
        required="the nginx settings (access, and optionally config_path, tls, ...)",
        required_when=("kind", ("nginx",)), only_when=("kind", ("nginx",)),
        misplaced=lambda kind: f"is for kind nginx, but balancer.kind is {kind}: remove it or change kind"),
    Key("haproxy", HAPROXY, "kind haproxy: the HAProxy 2.x settings",
        required="the HAProxy settings (access, and optionally config_path, tls, ...)",
        required_when=("kind", ("haproxy",)), only_when=("kind", ("haproxy",)),
        misplaced=lambda kind: f"is for kind haproxy, but balancer.kind is {kind}: remove it or change kind"),
    Key("settings", SETTINGS, "what every balancer kind applies the same way: timeouts, uploads, TLS, HSTS"),
))

DATABASE = Section(build=Database, keys=(
    Key("host", v.db_host(), "the database host as the first node sees it (a folder: a Unix socket)"),
    Key("port", v.port(), "the database port"),
    Key("name", v.word("a database name"), "the database name"),
    Key("user", v.word("a database user name"), "the database user; psql reads its password from "
        "~/.pgpass (or PGPASSWORD) on the first node"),
    Key("psql", v.command(), "the psql command on the first node"),
))

BASE_URL = Section(build=BaseUrl, keys=(
    Key("method", v.choice("guided", "postgres"),
        "guided: you change it in Confluence and the wizard checks; postgres: the database route, "
        "Confluence stopped"),
    Key("database", DATABASE, "method postgres only: where psql finds Confluence's database",
        only_when=("method", ("postgres",)),
        misplaced=lambda method: "is only for method postgres (the database route); with guided the admin "
                                 "sets the base URL in Confluence: remove it, or set base_url.method to postgres"),
))

SYNCHRONY_NODE = Section(build=SynchronyNode, what="a mapping describing one Synchrony machine (name, address, ...)",
                         keys=(
    Key("name", v.node_name(), "names the Synchrony machine in the plan and the checks",
        required="the Synchrony machine's name, like synchrony1", example="synchrony1"),
    Key("address", v.address(), "where the balancer reaches it: a host name or IP address",
        required="the host name or IP address where the balancer reaches this Synchrony machine",
        example="10.0.2.21"),
    Key("port", v.port(), "its Synchrony port (default: synchrony.port)", example=8091),
    Key("instance_id", v.pattern(r"i-[0-9a-f]{8,17}", "an EC2 instance id: i- and 8 or 17 hex digits",
                                 "i-0123456789abcdef0"),
        "ALB only: the EC2 instance to register; without it the address is registered as an ip target",
        example="i-0123456789abcdef0"),
))

SYNCHRONY = Section(build=Synchrony, keys=(
    Key("mode", v.choice("direct", "internal-proxy", "standalone"),
        "direct: the balancer sends /synchrony to each node's Synchrony port; internal-proxy: "
        "Confluence's own synchrony-proxy (sets -Dsynchrony.proxy.enabled=true in setenv.sh); standalone: a "
        "separate Synchrony cluster (synchrony.nodes) behind /synchrony, each node's setenv.sh gets "
        "-Dsynchrony.service.url"),
    Key("port", v.port(), "Synchrony's port on the nodes (and the standalone machines' default)"),
    Key("nodes", ListOf(SYNCHRONY_NODE, "Synchrony machines (each '- name: ...' with an address)", min_items=1,
                        too_few="must list at least one Synchrony machine"),
        "mode standalone: the machines of the Synchrony cluster the balancer sends /synchrony to",
        required="the standalone Synchrony machines, a list with one entry (name, address) per machine",
        required_when=("mode", ("standalone",)), only_when=("mode", ("standalone",)),
        misplaced=lambda mode: f"is only for mode standalone, but synchrony.mode is {mode}: remove it or set "
                               "synchrony.mode to standalone"),
))

ANSWERS = Section(build=Answers, keys=(
    Key("version", v.constant(v.ANSWERS_VERSION), "the answers file's format"),
    Key("name", v.setup_name(), "names this setup: its state file and its AWS tags",
        required="a short name for this setup, like wiki-prod (letters, digits, '.', '_', '-')",
        example="wiki-prod"),
    Key("public_url", v.public_url(), "what users type: scheme, host, optional port, optional context path",
        required="the address users type to reach Confluence, like https://wiki.example.com",
        example="https://wiki.example.com", convert=PublicUrl.parse),
    Key("synchrony", SYNCHRONY, "how the editor's Synchrony traffic reaches the nodes"),
    Key("restart", v.choice("rolling", "manual"),
        "rolling: one node at a time, waited for; manual: the wizard tells you and watches"),
    Key("restart_timeout", v.integer(10, 7200, "a number of seconds"),
        "seconds one node may take to answer RUNNING again"),
    Key("restart_drain", v.integer(0, 3600, "a number of seconds"),
        "seconds a drained node gets to finish its requests under way before it restarts"),
    Key("base_url", BASE_URL, "how Confluence's base URL is set to the public URL"),
    Key("nodes", ListOf(NODE, "nodes (each '- name: ...' with an address)", min_items=1,
                        too_few="must list at least one node"),
        "the Confluence Data Center nodes",
        required="the Confluence Data Center nodes, a list with one entry (name, address, ...) per node"),
    Key("balancer", BALANCER, "the load balancer in front of the nodes",
        required="which balancer to set up (kind: apache, alb, nginx or haproxy) and its settings"),
))


# --------------------------------------------------------------------------
# Rules across keys
# --------------------------------------------------------------------------

def _kind_rule(kind: str, section: str, key: str, need: str, refuse: str) -> Rule:
    """An https:// public URL needs the balancer's certificate; an http:// one must not have one."""

    def check(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
        url = checked.get("public_url")
        balancer = raw.get("balancer")
        options = balancer.get(section) if isinstance(balancer, dict) else None
        if url is None or not isinstance(options, dict) or (checked.get("balancer") or {}).get("kind") != kind:
            return
        given = options.get(key) is not None
        if url.lower().startswith("https://") and not given:
            ck.require(f"balancer.{section}.{key}", need)
        elif url.lower().startswith("http://") and given:
            ck.add(f"balancer.{section}.{key}", refuse)

    def when(scheme: str) -> dict[str, Any]:
        return {"required": ["public_url", "balancer"],
                "properties": {"public_url": {"pattern": f"^{scheme}://"},
                               "balancer": {"required": ["kind", section],
                                            "properties": {"kind": {"const": kind}}}}}

    https = "[Hh][Tt][Tt][Pp][Ss]"
    http = "[Hh][Tt][Tt][Pp]"
    schema = {"allOf": [
        {"if": when(https), "then": {"properties": {"balancer": {"properties": {
            section: {"required": [key]}}}}}},
        {"if": when(http), "then": {"properties": {"balancer": {"properties": {
            section: {"properties": {key: {"not": {}}}}}}}}},
    ]}
    return Rule(f"kind {kind}: an https:// public_url needs balancer.{section}.{key}; an http:// one must "
                f"not have it", check, schema)


def _alb_name_rule() -> Rule:
    def check(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
        balancer = checked.get("balancer") or {}
        alb = raw.get("balancer", {}).get("alb") if isinstance(raw.get("balancer"), dict) else None
        name = checked.get("name")
        if balancer.get("kind") != "alb" or not isinstance(alb, dict) or alb.get("name") is not None or not name:
            return
        why = v.alb_name_problem(name)
        if why:
            ck.require("balancer.alb.name", f"the ALB's name, because the setup's name {name!r} cannot be used "
                                            f"for it ({why}); set balancer.alb.name")

    schema = {"if": {"required": ["name", "balancer"],
                     "properties": {"name": {"not": v.ALB_NAME_SCHEMA},
                                    "balancer": {"required": ["kind", "alb"],
                                                 "properties": {"kind": {"const": "alb"}}}}},
              "then": {"properties": {"balancer": {"properties": {"alb": {"required": ["name"]}}}}}}
    return Rule("kind alb: balancer.alb.name is needed when the setup's name cannot name an ALB", check, schema)


def _certificate_region(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
    alb = (checked.get("balancer") or {}).get("alb") or {}
    arn, region = alb.get("certificate_arn"), alb.get("region")
    if arn and region:
        match = re.fullmatch(v.CERT_ARN, arn)
        cert_region = match["region"] if match else None
        if cert_region and cert_region != region:
            ck.add("balancer.alb.certificate_arn",
                   f"is a certificate in region {cert_region}, but the balancer is in {region}: an ALB can "
                   f"only use an ACM certificate from its own region; request or import it in {region}")


def _unique_nodes(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
    items = raw.get("nodes")
    if not isinstance(items, list):
        return

    # Names label hosts and checks, addresses and instances are targets.
    def unique(field_name: str, what: str, fold: bool, *, port_sets_apart: bool = False) -> None:
        seen: list[tuple[str, Any, int]] = []
        for index, item in enumerate(items):
            value = item.get(field_name) if isinstance(item, dict) else None
            if not isinstance(value, str) or not value.strip():
                continue
            folded = value.lower() if fold else value
            port = item.get("confluence_port")
            for other_value, other_port, other_index in seen:
                # Several nodes may share one machine (a lab, a test rig) when each
                # has its own Confluence port: the balancer targets address:port.
                apart = port_sets_apart and port is not None and other_port is not None and port != other_port
                if other_value == folded and not apart:
                    extra = " (or, on one machine, its own confluence_port)" if port_sets_apart else ""
                    ck.add(f"nodes[{index}].{field_name}",
                           f"{v.shown(value)} is already the {what} of nodes[{other_index}]; "
                           f"each node needs its own{extra}")
                    break
            else:
                seen.append((folded, port, index))

    unique("name", "name (names are compared ignoring case)", True)
    unique("address", "address", True, port_sets_apart=True)
    unique("instance_id", "instance_id", False)


def _unique_synchrony_nodes(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
    """Each standalone Synchrony machine once: by name (ignoring case) and by address and port."""
    synchrony = raw.get("synchrony")
    if not isinstance(synchrony, dict) or not isinstance(synchrony.get("nodes"), list):
        return
    items = synchrony["nodes"]
    default_port = synchrony.get("port", 8091)
    names: dict[str, int] = {}
    places: dict[tuple[str, Any], int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        name, address = item.get("name"), item.get("address")
        if isinstance(name, str) and name.strip():
            if name.lower() in names:
                ck.add(f"synchrony.nodes[{index}].name", f"{v.shown(name)} is already the name of "
                                                         f"synchrony.nodes[{names[name.lower()]}]; each needs its own")
            names.setdefault(name.lower(), index)
        if isinstance(address, str) and address.strip():
            place = (address.lower(), item.get("port", default_port))
            if place in places:
                ck.add(f"synchrony.nodes[{index}].address",
                       f"{v.shown(address)} on port {place[1]} is already synchrony.nodes[{places[place]}]; "
                       "each Synchrony machine once (or give it its own port)")
            places.setdefault(place, index)


def _allow_list_not_everyone(section: str, key: str, why: str) -> Rule:
    """Networks that together cover every address (0.0.0.0/1 and 128.0.0.0/1) are everyone too."""

    def check(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
        allowed = ((checked.get("balancer") or {}).get(section) or {}).get(key) or []
        networks = [ipaddress.ip_network(entry.strip(), strict=False) for entry in allowed]
        v4 = [net for net in networks if isinstance(net, ipaddress.IPv4Network)]
        v6 = [net for net in networks if isinstance(net, ipaddress.IPv6Network)]
        for version, everything, of_version in ((4, ipaddress.ip_network("0.0.0.0/0"), v4),
                                                (6, ipaddress.ip_network("::/0"), v6)):
            collapsed: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network] = (
                list(ipaddress.collapse_addresses(v4)) if version == 4 else list(ipaddress.collapse_addresses(v6)))
            if of_version and everything in collapsed:
                ck.add(f"balancer.{section}.{key}",
                       f"together covers every IPv{version} address ({', '.join(map(str, of_version))}): {why}")

    return Rule(f"balancer.{section}.{key} does not cover every address, even split into parts", check)


def _haproxy_pem(ck: Checker, raw: Mapping[str, Any], checked: Mapping[str, Any]) -> None:
    """HAProxy reads one PEM per certificate: the key inside it, or beside it as ``<certificate>.key``."""
    tls = ((checked.get("balancer") or {}).get("haproxy") or {}).get("tls") or {}
    cert, key = tls.get("certificate_file"), tls.get("key_file")
    if cert and key and key not in (cert, cert + ".key"):
        ck.add("balancer.haproxy.tls.key_file",
               f"must be {cert} (a PEM holding the certificate and its key) or {cert}.key (the key beside the "
               f"certificate, where HAProxy looks for it), not {v.shown(key)}: HAProxy loads one PEM per "
               "certificate, and the wizard never copies a private key")


RULES: tuple[Rule, ...] = (
    Rule("node names (ignoring case), addresses (unless their confluence_port differs) and "
         "instance ids are unique", _unique_nodes),
    _kind_rule("apache", "apache", "tls",
               "the certificate for HTTPS: public_url starts with https:// and Apache terminates TLS, so give "
               "tls with certificate_file and key_file (absolute paths on the Apache machine), or use an "
               "http:// public_url",
               "is given, but public_url starts with http://: Apache would serve HTTPS while users and "
               "Confluence's base URL use plain HTTP; use an https:// public_url, or remove tls"),
    _kind_rule("nginx", "nginx", "tls",
               "the certificate for HTTPS: public_url starts with https:// and nginx terminates TLS, so give "
               "tls with certificate_file and key_file (absolute paths on the nginx machine), or use an "
               "http:// public_url",
               "is given, but public_url starts with http://: nginx would serve HTTPS while users and "
               "Confluence's base URL use plain HTTP; use an https:// public_url, or remove tls"),
    _kind_rule("haproxy", "haproxy", "tls",
               "the certificate for HTTPS: public_url starts with https:// and HAProxy terminates TLS, so give "
               "tls with certificate_file (a PEM with the certificate and its key) and key_file, or use an "
               "http:// public_url",
               "is given, but public_url starts with http://: HAProxy would serve HTTPS while users and "
               "Confluence's base URL use plain HTTP; use an https:// public_url, or remove tls"),
    Rule("kind haproxy: tls.key_file is tls.certificate_file or <certificate_file>.key", _haproxy_pem),
    _kind_rule("alb", "alb", "certificate_arn",
               "the ARN of the ACM certificate for HTTPS, because public_url starts with https:// and the ALB "
               "terminates TLS; or use an http:// public_url",
               "is given, but public_url starts with http://: the ALB would redirect users to HTTPS while "
               "Confluence's base URL uses plain HTTP; use an https:// public_url, or remove certificate_arn"),
    _alb_name_rule(),
    Rule("balancer.alb.certificate_arn is in the balancer's region", _certificate_region),
    _allow_list_not_everyone("apache", "manager_allow",
                             "/balancer-manager lets whoever opens it disable nodes, so it must be restricted (for "
                             "example 127.0.0.1 or 10.0.0.0/24); leave manager_allow out to allow nobody"),
    _allow_list_not_everyone("haproxy", "stats_allow", _EVERYONE_STATS),
    Rule("standalone Synchrony machines are unique by name (ignoring case) and by address and port",
         _unique_synchrony_nodes),
)


def child_sections(section: Section) -> dict[str, tuple[str, ...]]:
    """The key names of the sections nested in ``section``: an unknown key that belongs one level
    down (``nodes[0].user`` for ``nodes[0].access.user``) is pointed there."""
    children: dict[str, tuple[str, ...]] = {}
    for key in section.keys:
        inner = key.value.item if isinstance(key.value, ListOf) else key.value
        if isinstance(inner, Section):
            children[key.name] = inner.names()
    return children
