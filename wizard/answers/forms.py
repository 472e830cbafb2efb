"""The answers the forms ask for: one spec per field, shared by the Textual forms and the prompts.

Plain data (no UI library): the Textual face builds its forms from these, the
prompt face asks them one by one, so both ask the same questions in the same words.
Each field names a key of the answers' declaration (``wizard.answers.declaration``),
which decides how it is typed and which values a choice offers; the forms only word them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wizard.answers.declaration import ALB, ANSWERS, APACHE, HAPROXY, NGINX, NODE
from wizard.answers.shape import Key, Section
from wizard.answers.values import ListOf, Value


@dataclass(frozen=True)
class FieldSpec:
    """One answer: its dotted key within the form's section, its label and how it is typed.

    Built with :func:`ask`, which takes the kind and the choices' values from the declaration.
    """

    key: str
    label: str
    kind: str = "text"  # text | int | bool | choice | list
    choices: tuple[tuple[str, str], ...] = ()  # (shown, value) for kind "choice"
    placeholder: str = ""
    help: str = ""
    group: str = ""  # a CSS class, to show or hide related fields together


def declared_key(section: Section, dotted: str) -> Key:
    """The declaration's key at ``dotted`` (``access.port``) inside ``section``; KeyError when undeclared."""
    head, _, rest = dotted.partition(".")
    key = section.key(head)
    if not rest:
        return key
    if not isinstance(key.value, Section):
        raise KeyError(dotted)
    return declared_key(key.value, rest)


def declared_kind(key: Key) -> str:
    """How a form types the key's answer, read from its JSON Schema: choice, int, bool, list or text."""
    if isinstance(key.value, ListOf):
        return "list"
    if isinstance(key.value, Section):
        raise KeyError(f"{key.name} is a section, not one answer")
    schema = key.value.schema
    if "enum" in schema:
        return "choice"
    return {"integer": "int", "boolean": "bool"}.get(str(schema.get("type")), "text")


def ask(section: Section, key: str, label: str, *, shown: Mapping[str, str] | None = None,
        placeholder: str = "", help: str = "", group: str = "") -> FieldSpec:
    """A form field for a declared key: kind and choices from the declaration, the words from the form.

    ``shown`` words the choices for the form (a value without one is shown as it is); the
    values themselves, and their order, are the declaration's. Without a placeholder of its
    own, a typed field shows the key's example.
    """
    declared = declared_key(section, key)
    kind = declared_kind(declared)
    choices: tuple[tuple[str, str], ...] = ()
    if kind == "choice":
        assert isinstance(declared.value, Value)
        words = shown or {}
        choices = tuple((words.get(value, value), value) for value in declared.value.schema["enum"])
    elif not placeholder and kind != "bool" and declared.example is not None:
        example = declared.example
        placeholder = ", ".join(map(str, example)) if isinstance(example, list) else str(example)
    return FieldSpec(key, label, kind, choices, placeholder, help, group)


def slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")


def to_answer(spec: FieldSpec, raw: Any) -> Any:
    """What a widget holds as the answers file would hold it; None for "not answered"."""
    if spec.kind == "bool":
        return True if raw else None  # absent means the default, false
    if spec.kind == "choice":
        return None if raw in (None, "") else raw
    text = str(raw or "").strip()
    if not text:
        return None
    if spec.kind == "int":
        # A non-number is kept as typed so the check names it ("must be a number").
        return int(text) if text.isdigit() else text
    if spec.kind == "list":
        return [item for item in re.split(r"[,\s]+", text) if item]
    return text


def to_widget_text(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.kind == "list" and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


# The setup, its nodes and its balancer: the keys are the declaration's (wizard.answers.declaration),
# the labels, placeholders and help lines are the forms' own words (the declaration's help is
# written for the answers file; shown under every field it would double each form's height).

_BY_SSH = {"ssh": "ssh (from this workstation)"}

SETUP_FIELDS = [
    ask(ANSWERS, "name", "Setup name", placeholder="wiki-prod",
        help="Names this setup, its state file and its AWS resources."),
    ask(ANSWERS, "public_url", "Public URL", placeholder="https://wiki.example.com",
        help="What users type: scheme, host, optional port and context path."),
    ask(ANSWERS, "restart", "Restarts", shown={"rolling": "rolling: one at a time", "manual": "manual: you restart"}),
    ask(ANSWERS, "synchrony.mode", "Synchrony route", shown={"direct": "direct: to each node"}),
    ask(ANSWERS, "base_url.method", "Base URL change",
        shown={"guided": "guided: you change it", "postgres": "postgres: database"}),
    # The database route only (psql runs on the first node; its password comes from ~/.pgpass there).
    ask(ANSWERS, "base_url.database.host", "Database host", placeholder="localhost (as the first node sees it)",
        group="postgres"),
    ask(ANSWERS, "base_url.database.port", "Database port", placeholder="5432", group="postgres"),
    ask(ANSWERS, "base_url.database.name", "Database name", placeholder="confluence", group="postgres"),
    ask(ANSWERS, "base_url.database.user", "Database user", placeholder="confluence", group="postgres",
        help="psql reads the password from ~/.pgpass of the user it runs as; none is stored here."),
    ask(ANSWERS, "base_url.database.psql", "psql command", placeholder="psql", group="postgres"),
]

#: Which answer shows a group of fields, and the value that shows it.
GROUP_SWITCHES = {"ssh": ("access.transport", ("ssh", None)),
                  "postgres": ("base_url.method", ("postgres",))}

#: A new setup starts with the contract's defaults shown, not blanks.
NEW_SETUP = {"version": 1, "restart": "rolling", "synchrony": {"mode": "direct"},
             "base_url": {"method": "guided"}, "nodes": []}


NODE_FIELDS = [
    ask(NODE, "name", "Name", placeholder="node1", help="How the wizard names this node in checks and the runbook."),
    ask(NODE, "address", "Address", placeholder="10.0.1.11", help="Where the balancer reaches this node."),
    ask(NODE, "install_dir", "Install folder", placeholder="/opt/atlassian/confluence",
        help="The folder holding conf/server.xml (default /opt/atlassian/confluence)."),
    ask(NODE, "access.transport", "Reached by", shown={**_BY_SSH, "local": "local (this machine's own files)"}),
    ask(NODE, "access.host", "SSH host", placeholder="defaults to the address; a ~/.ssh/config alias works",
        group="ssh"),
    ask(NODE, "access.user", "SSH user", placeholder="as ssh would choose", group="ssh"),
    ask(NODE, "access.port", "SSH port", placeholder="22", group="ssh"),
    ask(NODE, "access.key_file", "SSH key file", placeholder="~/.ssh/id_ed25519 (ssh-agent is used too)",
        group="ssh"),
    ask(NODE, "access.proxy_jump", "Jump host", placeholder="bastion.example.com (optional)", group="ssh"),
    ask(NODE, "access.sudo", "Use sudo (files and commands)"),
    ask(NODE, "restart_command", "Restart command", placeholder="detected: systemd unit, init script or bin/*.sh"),
    ask(NODE, "confluence_port", "Confluence port", placeholder="read from server.xml"),
    ask(NODE, "synchrony_port", "Synchrony port", placeholder="read from bin/setenv.sh, else 8091"),
]


APACHE_FIELDS = [
    ask(APACHE, "access.transport", "Apache is reached by", shown={**_BY_SSH, "local": "local (this machine)"}),
    ask(APACHE, "access.host", "SSH host", placeholder="lb1.internal (a ~/.ssh/config alias works)", group="ssh"),
    ask(APACHE, "access.user", "SSH user", placeholder="as ssh would choose", group="ssh"),
    ask(APACHE, "access.port", "SSH port", placeholder="22", group="ssh"),
    ask(APACHE, "access.key_file", "SSH key file", placeholder="~/.ssh/id_ed25519 (ssh-agent is used too)",
        group="ssh"),
    ask(APACHE, "access.sudo", "Use sudo (files and commands)"),
    ask(APACHE, "config_path", "Virtual host file", placeholder="the distribution's sites folder",
        help="The one file the wizard writes (a backup is kept)."),
    ask(APACHE, "server_name", "ServerName", placeholder="the public URL's host"),
    ask(APACHE, "listen_port", "Listen port", placeholder="the public URL's port"),
    ask(APACHE, "tls.certificate_file", "TLS certificate file", placeholder="/etc/ssl/wiki.crt (empty: plain HTTP)"),
    ask(APACHE, "tls.key_file", "TLS key file", placeholder="/etc/ssl/wiki.key"),
    ask(APACHE, "manager_allow", "Who may open /balancer-manager", placeholder="127.0.0.1, 10.0.0.0/8 (empty: nobody)"),
    ask(APACHE, "configtest_command", "Config test command", placeholder="apache2ctl -t (detected)"),
    ask(APACHE, "reload_command", "Reload command", placeholder="apache2ctl graceful (detected)"),
]


def _served_fields(section: Section, product: str, config: str, configtest: str, reload: str) -> list[FieldSpec]:
    """The fields of a balancer the wizard reaches and writes one file on (nginx, HAProxy)."""
    return [
        ask(section, "access.transport", f"{product} is reached by", shown={**_BY_SSH, "local": "local (this machine)"}),
        ask(section, "access.host", "SSH host", placeholder="lb1.internal (a ~/.ssh/config alias works)",
            group="ssh"),
        ask(section, "access.user", "SSH user", placeholder="as ssh would choose", group="ssh"),
        ask(section, "access.port", "SSH port", placeholder="22", group="ssh"),
        ask(section, "access.key_file", "SSH key file", placeholder="~/.ssh/id_ed25519 (ssh-agent is used too)",
            group="ssh"),
        ask(section, "access.sudo", "Use sudo (files and commands)"),
        ask(section, "config_path", "Configuration file", placeholder=config,
            help="The one file the wizard writes (a backup is kept)."),
        ask(section, "server_name", "Server name", placeholder="the public URL's host"),
        ask(section, "listen_port", "Listen port", placeholder="the public URL's port"),
        ask(section, "tls.certificate_file", "TLS certificate file", placeholder="/etc/ssl/wiki.crt (empty: plain HTTP)"),
        ask(section, "tls.key_file", "TLS key file", placeholder="/etc/ssl/wiki.key"),
        ask(section, "configtest_command", "Config test command", placeholder=configtest),
        ask(section, "reload_command", "Reload command", placeholder=reload),
    ]


NGINX_FIELDS = _served_fields(NGINX, "nginx", "/etc/nginx/conf.d/confluence-lb.conf", "nginx -t", "nginx -s reload")
HAPROXY_FIELDS = [
    *_served_fields(HAPROXY, "HAProxy", "/etc/haproxy/conf.d/confluence-lb.cfg",
                    "haproxy -c -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d", "systemctl reload haproxy"),
    ask(HAPROXY, "admin_socket", "Runtime API socket",
        placeholder="/run/haproxy/admin.sock (optional: drains without a reload)"),
    ask(HAPROXY, "stats_allow", "Who may open /haproxy-stats", placeholder="127.0.0.1, 10.0.0.0/8 (empty: nobody)"),
]
#: The fields of each kind whose balancer is a machine the wizard writes a file on.
SERVED_FIELDS = {"apache": APACHE_FIELDS, "nginx": NGINX_FIELDS, "haproxy": HAPROXY_FIELDS}


ALB_FIELDS = [
    ask(ALB, "name", "Load balancer name", placeholder="the setup's name",
        help="Also names its target groups and security group; everything is tagged with the setup."),
    ask(ALB, "region", "Region", placeholder="eu-west-1"),
    ask(ALB, "profile", "AWS profile", placeholder="the standard credential chain (optional)"),
    ask(ALB, "scheme", "Scheme"),
    ask(ALB, "idle_timeout", "Idle timeout (s)", placeholder="300"),
    ask(ALB, "allowed_cidrs", "Allowed networks",
        placeholder="0.0.0.0/0 if internet-facing, else the VPC's CIDR (IPv4/IPv6 networks, comma-separated)"),
]

#: The "no certificate" choice: the ALB then serves plain HTTP.
NO_CERTIFICATE = "-"


EXPLANATIONS = {
    "apache": ("Apache httpd",
               ("On a machine you run (reached over SSH, or this one). The wizard writes one virtual host: a "
               "sticky Confluence balancer, the Synchrony route with WebSockets, /balancer-manager closed; it "
               "tests the configuration before a graceful reload and keeps a backup to roll back to.")),
    "alb": ("AWS Application Load Balancer",
            ("In your AWS account (the standard credentials: profile, SSO or role). The wizard creates and "
            "tags a security group, two target groups with stickiness and health checks, the load balancer, "
            "its listeners and the /synchrony rule; you pick the VPC, subnets, instances and certificate "
            "from lists read from AWS.")),
    "nginx": ("nginx",
              ("On a machine you run. The wizard writes one file nginx includes: a route cookie mapped to one "
               "upstream per node (open-source nginx has no sticky directive, and only passive health "
               "checks), the Synchrony route with WebSockets; it tests the configuration before a reload.")),
    "haproxy": ("HAProxy",
                ("On a machine you run. The wizard writes one file HAProxy loads: cookie stickiness, active "
                 "health checks on /status, the Synchrony route with WebSockets, the stats page closed; with "
                 "the runtime API socket a node can be drained without a reload.")),
}
