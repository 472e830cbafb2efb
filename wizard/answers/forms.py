"""The answers the forms ask for: one spec per field, shared by the Textual forms and the prompts.

Plain data (no UI library): the Textual face builds its forms from these, the
prompt face asks them one by one, so both ask the same questions in the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldSpec:
    """One answer: its dotted key within the form's section, its label and how it is typed."""

    key: str
    label: str
    kind: str = "text"  # text | int | bool | choice | list
    choices: tuple[tuple[str, str], ...] = ()  # (shown, value) for kind "choice"
    placeholder: str = ""
    help: str = ""
    group: str = ""  # a CSS class, to show or hide related fields together


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


# The setup, its nodes and its balancer.

SETUP_FIELDS = [
    FieldSpec("name", "Setup name", placeholder="wiki-prod",
              help="Names this setup, its state file and its AWS resources."),
    FieldSpec("public_url", "Public URL", placeholder="https://wiki.example.com",
              help="What users type: scheme, host, optional port and context path."),
    FieldSpec("restart", "Restarts", "choice",
              (("rolling: one at a time", "rolling"), ("manual: you restart", "manual"))),
    FieldSpec("synchrony.mode", "Synchrony route", "choice",
              (("direct: to each node", "direct"), ("internal-proxy", "internal-proxy"))),
    FieldSpec("base_url.method", "Base URL change", "choice",
              (("guided: you change it", "guided"), ("postgres: database", "postgres"))),
    # The database route only (psql runs on the first node; its password comes from ~/.pgpass there).
    FieldSpec("base_url.database.host", "Database host", placeholder="localhost (as the first node sees it)",
              group="postgres"),
    FieldSpec("base_url.database.port", "Database port", "int", placeholder="5432", group="postgres"),
    FieldSpec("base_url.database.name", "Database name", placeholder="confluence", group="postgres"),
    FieldSpec("base_url.database.user", "Database user", placeholder="confluence", group="postgres",
              help="psql reads the password from ~/.pgpass of the user it runs as; none is stored here."),
    FieldSpec("base_url.database.psql", "psql command", placeholder="psql", group="postgres"),
]

#: Which answer shows a group of fields, and the value that shows it.
GROUP_SWITCHES = {"ssh": ("access.transport", ("ssh", None)),
                  "postgres": ("base_url.method", ("postgres",))}

#: A new setup starts with the contract's defaults shown, not blanks.
NEW_SETUP = {"version": 1, "restart": "rolling", "synchrony": {"mode": "direct"},
             "base_url": {"method": "guided"}, "nodes": []}


NODE_FIELDS = [
    FieldSpec("name", "Name", placeholder="node1", help="How the wizard names this node in checks and the runbook."),
    FieldSpec("address", "Address", placeholder="10.0.1.11", help="Where the balancer reaches this node."),
    FieldSpec("install_dir", "Install folder", placeholder="/opt/atlassian/confluence",
              help="The folder holding conf/server.xml (default /opt/atlassian/confluence)."),
    FieldSpec("access.transport", "Reached by", "choice",
              (("ssh (from this workstation)", "ssh"), ("local (this machine's own files)", "local"))),
    FieldSpec("access.host", "SSH host", placeholder="defaults to the address; a ~/.ssh/config alias works",
              group="ssh"),
    FieldSpec("access.user", "SSH user", placeholder="as ssh would choose", group="ssh"),
    FieldSpec("access.port", "SSH port", "int", placeholder="22", group="ssh"),
    FieldSpec("access.key_file", "SSH key file", placeholder="~/.ssh/id_ed25519 (ssh-agent is used too)",
              group="ssh"),
    FieldSpec("access.proxy_jump", "Jump host", placeholder="bastion.example.com (optional)", group="ssh"),
    FieldSpec("access.sudo", "Use sudo (files and commands)", "bool"),
    FieldSpec("restart_command", "Restart command", placeholder="detected: systemd unit, init script or bin/*.sh"),
    FieldSpec("confluence_port", "Confluence port", "int", placeholder="read from server.xml"),
    FieldSpec("synchrony_port", "Synchrony port", "int", placeholder="read from bin/setenv.sh, else 8091"),
]


APACHE_FIELDS = [
    FieldSpec("access.transport", "Apache is reached by", "choice",
              (("ssh (from this workstation)", "ssh"), ("local (this machine)", "local"))),
    FieldSpec("access.host", "SSH host", placeholder="lb1.internal (a ~/.ssh/config alias works)", group="ssh"),
    FieldSpec("access.user", "SSH user", placeholder="as ssh would choose", group="ssh"),
    FieldSpec("access.port", "SSH port", "int", placeholder="22", group="ssh"),
    FieldSpec("access.key_file", "SSH key file", placeholder="~/.ssh/id_ed25519 (ssh-agent is used too)",
              group="ssh"),
    FieldSpec("access.sudo", "Use sudo (files and commands)", "bool"),
    FieldSpec("config_path", "Virtual host file", placeholder="the distribution's sites folder",
              help="The one file the wizard writes (a backup is kept)."),
    FieldSpec("server_name", "ServerName", placeholder="the public URL's host"),
    FieldSpec("listen_port", "Listen port", "int", placeholder="the public URL's port"),
    FieldSpec("tls.certificate_file", "TLS certificate file", placeholder="/etc/ssl/wiki.crt (empty: plain HTTP)"),
    FieldSpec("tls.key_file", "TLS key file", placeholder="/etc/ssl/wiki.key"),
    FieldSpec("manager_allow", "Who may open /balancer-manager", "list",
              placeholder="127.0.0.1, 10.0.0.0/8 (empty: nobody)"),
    FieldSpec("configtest_command", "Config test command", placeholder="apache2ctl -t (detected)"),
    FieldSpec("reload_command", "Reload command", placeholder="apache2ctl graceful (detected)"),
]


ALB_FIELDS = [
    FieldSpec("name", "Load balancer name", placeholder="the setup's name",
              help="Also names its target groups and security group; everything is tagged with the setup."),
    FieldSpec("region", "Region", placeholder="eu-west-1"),
    FieldSpec("profile", "AWS profile", placeholder="the standard credential chain (optional)"),
    FieldSpec("scheme", "Scheme", "choice",
              (("internet-facing", "internet-facing"), ("internal", "internal"))),
    FieldSpec("idle_timeout", "Idle timeout (s)", "int", placeholder="300"),
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
}
