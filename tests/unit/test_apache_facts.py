"""The Apache host's facts from fixture text, the Debian/RHEL layouts as data, and the balancer
step's plan and apply order against a scripted host (no Apache needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from wizard.answers import validate
from wizard.balancers.apache.facts import (LAYOUTS, ApacheConfigError, ApacheError, ApacheFacts, Directive, Layout,
                           commands_for, include_patterns, is_included, listen_port, managed_setup,
                           parse_depends, parse_includes, parse_modules, parse_server_settings, parse_version,
                           read_apache_facts, scan_config)
from wizard.errors import WizardError
from wizard.transport.hosts import CommandResult, FileInfo, Host
from wizard.engine.model import UndoAction
from wizard.balancers.apache import reload as apache_reload
from wizard.balancers.apache.reload import ApacheConfigTestError
from wizard.balancers.apache.step import STEP
from wizard.balancers.apache.undo import RELOAD_UNDO, pending_reload
from wizard.balancers.apache.vhost import ALL_MODULES, BalancerFacts, NodeTarget
from wizard.engine.state import StepRecord
from wizard.engine.step import Context, Journal

# --------------------------------------------------------------------------- fixture text

DEBIAN_V = "Server version: Apache/2.4.62 (Debian)\nServer built:   2024-10-04T15:21:08\n"
RHEL_V = "Server version: Apache/2.4.57 (Red Hat Enterprise Linux)\nServer built:   Aug  5 2024 00:00:00\n"

DEBIAN_M = """Loaded Modules:
 core_module (static)
 so_module (static)
 watchdog_module (static)
 http_module (static)
 log_config_module (static)
 logio_module (static)
 version_module (static)
 unixd_module (static)
 access_compat_module (shared)
 alias_module (shared)
 authz_core_module (shared)
 authz_host_module (shared)
 mpm_event_module (shared)
 setenvif_module (shared)
 mime_module (shared)
"""

DEBIAN_INCLUDES = """Included configuration files:
  (*) /etc/apache2/apache2.conf
    (146) /etc/apache2/mods-enabled/alias.load
    (146) /etc/apache2/mods-enabled/authz_core.load
    (146) /etc/apache2/mods-enabled/authz_host.load
    (146) /etc/apache2/mods-enabled/mpm_event.load
    (146) /etc/apache2/mods-enabled/setenvif.load
    (146) /etc/apache2/mods-enabled/mime.load
    (150) /etc/apache2/ports.conf
    (222) /etc/apache2/conf-enabled/security.conf
    (225) /etc/apache2/sites-enabled/000-default.conf
"""

DEBIAN_S = """VirtualHost configuration:
*:80                   is a NameVirtualHost
         default server lb1.internal (/etc/apache2/sites-enabled/000-default.conf:1)
         port 80 namevhost lb1.internal (/etc/apache2/sites-enabled/000-default.conf:1)
         port 80 namevhost intranet.example.com (/etc/apache2/sites-enabled/intranet.conf:3)
                 alias www.intranet.example.com
                 wild alias *.wiki.example.org
*:443                  secure.example.com (/etc/apache2/sites-enabled/secure.conf:2)
ServerRoot: "/etc/apache2"
Main DocumentRoot: "/var/www/html"
Main ErrorLog: "/var/log/apache2/error.log"
Mutex default: dir="/var/run/apache2/" mechanism=default
PidFile: "/var/run/apache2/apache2.pid"
Define: DUMP_VHOSTS
User: name="www-data" id=33
"""

APACHE2_CONF = """# This is the main Apache server configuration file.
ServerRoot "/etc/apache2"
PidFile ${APACHE_PID_FILE}
Timeout 300
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
Include ports.conf
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
"""

PORTS_CONF = """# If you just change the port or add more ports here, you will likely also
# have to change the VirtualHost statement in /etc/apache2/sites-enabled/000-default.conf
Listen 80

<IfModule ssl_module>
\tListen 443
</IfModule>
"""

SECURITY_CONF = """ServerTokens OS
ServerSignature On
#ProxyErrorOverride On
TraceEnable Off
"""


def load_line(module: str, depends: str = "") -> str:
    head = f"# Depends: {depends}\n" if depends else ""
    return f"{head}LoadModule {module}_module /usr/lib/apache2/modules/mod_{module}.so\n"


DEBIAN_DEPENDS = {"proxy": "", "proxy_http": "proxy", "proxy_wstunnel": "proxy", "headers": "",
                  "proxy_balancer": "proxy alias slotmem_shm", "slotmem_shm": "", "lbmethod_byrequests": "proxy_balancer",
                  "rewrite": "", "ssl": "setenvif mime socache_shmcb", "socache_shmcb": "", "authz_core": "",
                  "authz_host": "authz_core", "alias": "", "setenvif": "", "mime": "", "mpm_event": "",
                  "proxy_hcheck": "proxy"}


# --------------------------------------------------------------------------- a scripted host


class ScriptedHost(Host):
    """A host whose files are a dict and whose commands are answered from a script."""

    def __init__(self, files: dict[str, str], commands: dict[str, str | Callable[[], CommandResult]],
                 dirs: tuple[str, ...] = ()) -> None:
        self.label, self.where = "balancer", "scripted"
        self.files = {path: text.encode() for path, text in files.items()}
        self.dirs = set(dirs)
        self.commands = commands
        #: Answers any command the script does not name (None: exit 127, as a shell would).
        self.fallback: Callable[[str], CommandResult] | None = None
        self.ran: list[str] = []

    def run(self, command: str, *, timeout: float = 60.0, sudo: bool | None = None,
            stdin: bytes | None = None) -> CommandResult:
        self.ran.append(command)
        answer = self.commands.get(command)
        if answer is None and self.fallback is not None:
            return self.fallback(command)
        if answer is None:
            return CommandResult(command, 127, "", f"{command}: not scripted")
        if callable(answer):
            return answer()
        return CommandResult(command, 0, answer, "")

    def read_bytes(self, path: str) -> bytes:
        if path not in self.files:
            raise WizardError(f"no {path}")
        return self.files[path]

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def is_dir(self, path: str) -> bool:
        return path in self.dirs

    def stat(self, path: str) -> FileInfo:
        return FileInfo(0o644, 0, 0, len(self.files[path]))

    def write_atomic(self, path: str, data: bytes, *, mode: int | None = None,
                     owner: tuple[int, int] | None = None) -> None:
        self.ran.append(f"write {path}")
        self.files[path] = data

    def copy(self, source: str, destination: str) -> None:
        self.ran.append(f"copy {source}")
        self.files[destination] = self.files[source]

    def link_target(self, path: str) -> str | None:
        return None  # a scripted host has no links

    def remove(self, path: str) -> None:
        self.files.pop(path, None)


def debian_host(*, extra_files: dict[str, str] | None = None, vhosts: str = DEBIAN_S,
                version: str = DEBIAN_V) -> ScriptedHost:
    files = {"/etc/apache2/apache2.conf": APACHE2_CONF, "/etc/apache2/ports.conf": PORTS_CONF,
             "/etc/apache2/conf-enabled/security.conf": SECURITY_CONF,
             "/etc/apache2/sites-enabled/000-default.conf": "<VirtualHost *:80>\n</VirtualHost>\n"}
    for module in ("alias", "authz_core", "authz_host", "mpm_event", "setenvif", "mime"):
        files[f"/etc/apache2/mods-enabled/{module}.load"] = load_line(module, DEBIAN_DEPENDS[module])
    for module, depends in DEBIAN_DEPENDS.items():
        files[f"/etc/apache2/mods-available/{module}.load"] = load_line(module, depends)
    files.update(extra_files or {})
    commands: dict = {"apache2ctl -v": version, "apache2ctl -M": DEBIAN_M,
                      "apache2ctl -t -D DUMP_INCLUDES": DEBIAN_INCLUDES, "apache2ctl -S": vhosts}
    return ScriptedHost(files, commands, dirs=("/usr/lib/apache2/modules", "/etc/apache2/sites-available"))


def answers_of(public_url: str = "http://wiki.example.com", **apache):
    options = {"access": {"transport": "local"}, **apache}
    if public_url.startswith("https") and "tls" not in options:
        options["tls"] = {"certificate_file": "/etc/ssl/wiki.crt", "key_file": "/etc/ssl/wiki.key"}
    return validate({"name": "facts", "public_url": public_url,
                     "nodes": [{"name": "node1", "address": "10.0.0.1"}, {"name": "node2", "address": "10.0.0.2"}],
                     "balancer": {"kind": "apache", "apache": options}})


NODES = (NodeTarget("node1", "10.0.0.1", 8090, 8091, "", "test"),
         NodeTarget("node2", "10.0.0.2", 8090, 8091, "", "test"))


def plan_for(host: ScriptedHost, answers=None):
    answers = answers or answers_of()
    facts = BalancerFacts(read_apache_facts(host, answers, ALL_MODULES), NODES)
    return STEP.plan(answers, facts), facts


# --------------------------------------------------------------------------- parsers


@pytest.mark.parametrize("text,expected", [
    (DEBIAN_V, (2, 4, 62)), (RHEL_V, (2, 4, 57)),
    ("Server version: Apache/2.2.15 (Unix)\n", (2, 2, 15)), ("apache2: command not found", None)])
def test_version_parsing(text: str, expected) -> None:
    assert parse_version(text) == expected


def test_module_list_parsing_keeps_static_and_shared() -> None:
    modules = parse_modules(DEBIAN_M + " proxy_http_module (shared)\n")
    assert modules["unixd"] == "static" and modules["authz_core"] == "shared"
    assert modules["proxy_http"] == "shared" and "Loaded" not in modules


def test_includes_parsing_lists_every_file_main_first() -> None:
    files = parse_includes("AH00558: apache2: Could not reliably determine...\n" + DEBIAN_INCLUDES)
    assert files[0] == "/etc/apache2/apache2.conf" and files[-1] == "/etc/apache2/sites-enabled/000-default.conf"
    assert len(files) == 10


def test_server_settings_parsing_finds_vhosts_with_aliases_and_paths() -> None:
    settings = parse_server_settings(DEBIAN_S)
    names = [(v.port, v.name, v.where()) for v in settings.vhosts]
    assert (80, "intranet.example.com", "/etc/apache2/sites-enabled/intranet.conf:3") in names
    assert (443, "secure.example.com", "/etc/apache2/sites-enabled/secure.conf:2") in names
    intranet = next(v for v in settings.vhosts if v.name == "intranet.example.com")
    assert intranet.answers_to("www.intranet.example.com") and intranet.answers_to("a.wiki.example.org")
    assert not intranet.answers_to("wiki.example.com")
    assert settings.server_root == "/etc/apache2" and settings.pid_file == "/var/run/apache2/apache2.pid"
    assert settings.error_log == "/var/log/apache2/error.log"


def test_scan_finds_proxy_error_override_with_file_and_line_and_skips_comments() -> None:
    text = ("# ProxyErrorOverride On\n<VirtualHost *:80>\n    ProxyErrorOverride Off\n"
            "    ProxyErrorOverride \\\n      on 404\n</VirtualHost>\n")
    found = [d for d in scan_config("/etc/httpd/conf.d/old.conf", text) if d.name == "proxyerroroverride"]
    assert [(d.line, d.arguments) for d in found] == [(3, ("Off",)), (4, ("on", "404"))]
    assert found[1].where() == "/etc/httpd/conf.d/old.conf:4"


def test_listen_parsing() -> None:
    scanned = scan_config("/p", "Listen 80\nListen 10.0.0.5:8443 https\nListen [::1]:8080\nListen ${PORT}\n")
    assert [listen_port(d) for d in scanned] == [(80, None), (8443, "https"), (8080, None), None]


def test_include_globs_decide_what_apache_reads() -> None:
    patterns = include_patterns(scan_config("/etc/apache2/apache2.conf", APACHE2_CONF), "/etc/apache2")
    assert "/etc/apache2/sites-enabled/*.conf" in patterns and "/etc/apache2/ports.conf" in patterns
    assert is_included("/etc/apache2/sites-enabled/confluence-lb.conf", patterns)
    assert not is_included("/etc/apache2/sites-available/confluence-lb.conf", patterns)
    assert not is_included("/etc/apache2/sites-enabled/sub/x.conf", patterns)
    assert is_included("/etc/httpd/conf.d/x.conf", ["/etc/httpd/conf.d"])


def test_header_names_the_owning_setup() -> None:
    header = "# Managed by confluence-lb-wizard for the setup wiki-prod. Do not edit by hand.\n"
    assert managed_setup(header + "<VirtualHost *:80>\n") == "wiki-prod"
    assert managed_setup("<VirtualHost *:80>\n") is None


def test_debian_depends_line() -> None:
    assert parse_depends(load_line("proxy_balancer", "proxy alias slotmem_shm")) == ("proxy", "alias", "slotmem_shm")
    assert parse_depends(load_line("headers")) == ()


# --------------------------------------------------------------------------- the layouts are data


def test_every_layout_says_the_same_things_differently() -> None:
    for layout in LAYOUTS.values():
        assert isinstance(layout, Layout)
        for field in ("configtest", "reload", "modules_command", "vhosts_command", "includes_command",
                      "version_command", "module_source"):
            assert getattr(layout, field), (layout.name, field)
        assert layout.module_mechanism in ("a2enmod", "modules-file", "vhost")
    debian, rhel = LAYOUTS["debian"], LAYOUTS["rhel"]
    assert debian.module_enable == "a2enmod -q {module}" and rhel.module_enable is None
    assert rhel.modules_file == "/etc/httpd/conf.modules.d/99-{stem}.conf" and debian.modules_file is None
    assert debian.enabler_for("/etc/apache2/sites-available/x.conf").enable == "a2ensite -q {name}"
    assert rhel.enabler_for("/etc/httpd/conf.d/x.conf") is None
    assert rhel.module_packages["ssl"] == "mod_ssl"


def test_self_contained_commands_carry_the_main_file() -> None:
    answers = answers_of(config_path="/srv/apache/sites/lb.conf",
                         configtest_command="sudo apache2ctl -t -f /srv/apache/main.conf",
                         reload_command="apache2 -f /srv/apache/main.conf -k graceful")
    commands = commands_for(LAYOUTS["self-contained"], answers.balancer.apache)
    assert commands.configtest == "sudo apache2ctl -t -f /srv/apache/main.conf"
    assert commands.modules == "sudo apache2ctl -f /srv/apache/main.conf -M"
    assert commands.includes == "sudo apache2ctl -f /srv/apache/main.conf -t -D DUMP_INCLUDES"
    assert commands.vhosts == "sudo apache2ctl -f /srv/apache/main.conf -S"
    only_reload = answers_of(config_path="/srv/a/lb.conf", reload_command="/usr/sbin/httpd -d /srv/a -f conf/m.conf -k graceful")
    built = commands_for(LAYOUTS["self-contained"], only_reload.balancer.apache)
    assert built.configtest == "/usr/sbin/httpd -d /srv/a -f conf/m.conf -t"


# --------------------------------------------------------------------------- facts and plans on Debian


def test_debian_facts() -> None:
    facts = read_apache_facts(debian_host(), answers_of(), ALL_MODULES)
    assert facts.layout.name == "debian" and facts.version == (2, 4, 62)
    assert facts.config_path == "/etc/apache2/sites-available/confluence-lb.conf"
    assert facts.read_path == "/etc/apache2/sites-enabled/confluence-lb.conf" and facts.reads_config()
    assert {"authz_core", "authz_host", "alias", "unixd"} <= facts.loaded_elsewhere
    assert "proxy" not in facts.loaded_elsewhere
    assert facts.sources["proxy_balancer"].depends == ("proxy", "alias", "slotmem_shm")
    assert facts.listened_ports() == {80: None, 443: None}
    assert not facts.error_overrides  # the commented-out line in security.conf does not count


def test_debian_plan_enables_modules_in_dependency_order_then_the_site_then_tests_and_reloads() -> None:
    plan, _ = plan_for(debian_host())
    saved = [c.details.to_dict() for c in plan.changes]  # as the state and the runbook hold them
    roles = [(d["role"], d.get("module") or d.get("command", d.get("path"))) for d in saved]
    assert roles[0] == ("vhost", "/etc/apache2/sites-available/confluence-lb.conf")
    modules = [value for role, value in roles if role == "module"]
    # rewrite: the upload limit of balancer.settings.max_upload_mb; proxy_hcheck: the health checks.
    assert modules == ["headers", "rewrite", "proxy", "proxy_http", "slotmem_shm", "proxy_balancer",
                       "lbmethod_byrequests", "proxy_hcheck"]
    assert roles[-2] == ("site", "a2ensite -q confluence-lb")
    assert roles[-1][0] == "reload"
    enable = next(c for c in plan.changes if getattr(c.details, "module", None) == "proxy_http")
    assert enable.details.undo == "a2dismod -q -f proxy_http"
    final = plan.changes[-1].details
    assert final.configtest == "apache2ctl -t" and final.reload == "apache2ctl graceful"
    assert plan.changes[0].diff.startswith("--- balancer:/etc/apache2/sites-available/confluence-lb.conf")


def test_debian_tls_needs_ssl_and_its_dependencies() -> None:
    host = debian_host(extra_files={"/etc/ssl/wiki.crt": "PEM", "/etc/ssl/wiki.key": "PEM"})
    host.fallback = lambda command: CommandResult(command, 3, "", "")  # no openssl on that host
    plan, facts = plan_for(host, answers_of("https://wiki.example.com"))
    assert "not parsed (no openssl" in facts.apache.tls.note
    modules = [c.details.module for c in plan.changes if c.details.role == "module"]
    assert modules.index("socache_shmcb") < modules.index("ssl") and "rewrite" in modules
    assert "setenvif" not in modules  # loaded already


def test_second_run_is_a_noop_with_a_reason() -> None:
    host = debian_host()
    plan, _ = plan_for(host)
    # What the apply would leave behind: the file, the modules loaded, the site enabled.
    host.files["/etc/apache2/sites-available/confluence-lb.conf"] = plan.changes[0].payload[1]
    host.files["/etc/apache2/sites-enabled/confluence-lb.conf"] = plan.changes[0].payload[1]
    loaded = DEBIAN_M + "".join(f" {m}_module (shared)\n" for m in
                                ("headers", "rewrite", "proxy", "proxy_http", "slotmem_shm", "proxy_balancer",
                                 "lbmethod_byrequests", "proxy_hcheck"))
    host.commands["apache2ctl -M"] = loaded
    host.commands["apache2ctl -t -D DUMP_INCLUDES"] = DEBIAN_INCLUDES + "".join(
        f"    (146) /etc/apache2/mods-enabled/{m}.load\n" for m in
        ("headers", "rewrite", "proxy", "proxy_http", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests",
         "proxy_hcheck")) + \
        "    (225) /etc/apache2/sites-enabled/confluence-lb.conf\n"
    for module in ("headers", "rewrite", "proxy", "proxy_http", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests",
                   "proxy_hcheck"):
        host.files[f"/etc/apache2/mods-enabled/{module}.load"] = load_line(module, DEBIAN_DEPENDS[module]).encode()
    again, _ = plan_for(host)
    assert again.is_noop and "already holds what the wizard would write" in again.noop_reason
    assert "site is enabled" in again.noop_reason


def test_an_edit_by_hand_is_shown_as_a_diff() -> None:
    host = debian_host()
    plan, _ = plan_for(host)
    edited = plan.changes[0].payload[1].replace(b"ProxyPreserveHost On", b"ProxyPreserveHost Off")
    host.files["/etc/apache2/sites-available/confluence-lb.conf"] = edited
    again, _ = plan_for(host)
    vhost = again.changes[0]
    assert "update" in vhost.summary
    assert "-    ProxyPreserveHost Off" in vhost.diff and "+    ProxyPreserveHost On" in vhost.diff


def test_proxy_error_override_is_refused_naming_file_and_line() -> None:
    host = debian_host(extra_files={"/etc/apache2/conf-enabled/security.conf": SECURITY_CONF + "ProxyErrorOverride On\n"})
    with pytest.raises(ApacheConfigError) as caught:
        plan_for(host)
    assert "/etc/apache2/conf-enabled/security.conf:5" in caught.value.message
    assert "ProxyErrorOverride Off" in caught.value.hint and "line 5" in caught.value.hint


def test_a_rival_vhost_for_the_same_name_and_port_is_refused() -> None:
    rival = DEBIAN_S.replace("intranet.example.com (", "wiki.example.com (")
    with pytest.raises(ApacheConfigError) as caught:
        plan_for(debian_host(vhosts=rival))
    assert "/etc/apache2/sites-enabled/intranet.conf:3" in caught.value.message
    assert "a2dissite intranet" in caught.value.hint and "config_path" in caught.value.hint
    # The same name on another port is no rival.
    other_port = DEBIAN_S.replace("secure.example.com (", "wiki.example.com (")
    plan, _ = plan_for(debian_host(vhosts=other_port))
    assert not plan.is_noop


def test_a_file_of_another_setup_is_not_taken_over() -> None:
    owned = "# Managed by confluence-lb-wizard for the setup other-wiki. Do not edit by hand.\n"
    host = debian_host(extra_files={"/etc/apache2/sites-available/confluence-lb.conf": owned})
    with pytest.raises(ApacheConfigError, match="other-wiki"):
        plan_for(host)


def test_apache_2_2_is_refused() -> None:
    with pytest.raises(ApacheError, match="needs Apache httpd 2.4"):
        plan_for(debian_host(version="Server version: Apache/2.2.34 (Unix)\n"))


def test_a_config_path_apache_does_not_read_is_refused_before_any_change() -> None:
    with pytest.raises(ApacheConfigError, match="would not read /srv/elsewhere/lb.conf"):
        plan_for(debian_host(), answers_of(config_path="/srv/elsewhere/lb.conf"))


def test_a_broken_current_configuration_stops_before_any_change() -> None:
    host = debian_host()
    host.commands["apache2ctl -M"] = lambda: CommandResult(
        "apache2ctl -M", 1, "", "AH00526: Syntax error on line 3 of /etc/apache2/sites-enabled/x.conf:\n"
                                "Invalid command 'Bogus'")
    with pytest.raises(ApacheError) as caught:
        plan_for(host)
    assert "Invalid command 'Bogus'" in caught.value.message and "before the wizard changes anything" in caught.value.hint


@pytest.mark.parametrize("status,stdout,expected", [
    (4, "", "is not a PEM certificate"),
    (5, "CERTKEY\n----clbw-key----\n", "is not an unencrypted PEM private key"),
    (0, "CERTKEY\n----clbw-key----\nOTHERKEY\n", "does not belong to the key"),
])
def test_tls_files_apache_could_not_load_are_refused_before_any_change(status: int, stdout: str,
                                                                       expected: str) -> None:
    host = debian_host(extra_files={"/etc/ssl/wiki.crt": "PEM", "/etc/ssl/wiki.key": "PEM"})
    host.fallback = lambda command: CommandResult(command, status, stdout, "unable to load")
    with pytest.raises(ApacheError, match=expected) as caught:
        plan_for(host, answers_of("https://wiki.example.com"))
    assert "Nothing was changed" in caught.value.message
    host.fallback = lambda command: CommandResult(command, 0, "SAME\n----clbw-key----\nSAME\n", "")
    plan, facts = plan_for(host, answers_of("https://wiki.example.com"))
    assert facts.apache.tls.note == "certificate and key parsed and matching (openssl)" and not plan.is_noop


def test_tls_files_that_do_not_exist_are_refused() -> None:
    with pytest.raises(ApacheError, match="/etc/ssl/wiki.crt does not exist"):
        plan_for(debian_host(), answers_of("https://wiki.example.com"))


# --------------------------------------------------------------------------- RHEL


def rhel_host(loaded_extra: str = "") -> ScriptedHost:
    rhel_m = DEBIAN_M.replace(" access_compat_module (shared)\n", "") + " proxy_module (shared)\n" + \
        " proxy_http_module (shared)\n headers_module (shared)\n" + loaded_extra
    base = ("LoadModule authz_core_module modules/mod_authz_core.so\nLoadModule authz_host_module modules/mod_authz_host.so\n"
            "LoadModule headers_module modules/mod_headers.so\nLoadModule mpm_event_module modules/mod_mpm_event.so\n"
            "LoadModule alias_module modules/mod_alias.so\nLoadModule setenvif_module modules/mod_setenvif.so\n"
            "LoadModule mime_module modules/mod_mime.so\n")
    proxy = "LoadModule proxy_module modules/mod_proxy.so\nLoadModule proxy_http_module modules/mod_proxy_http.so\n"
    files = {"/etc/httpd/conf/httpd.conf": 'ServerRoot "/etc/httpd"\nListen 80\nInclude conf.modules.d/*.conf\n'
                                           "IncludeOptional conf.d/*.conf\n",
             "/etc/httpd/conf.modules.d/00-base.conf": base, "/etc/httpd/conf.modules.d/00-proxy.conf": proxy}
    for module in ALL_MODULES:
        if module != "ssl":
            files[f"/usr/lib64/httpd/modules/mod_{module}.so"] = "ELF"
    includes = ("Included configuration files:\n  (*) /etc/httpd/conf/httpd.conf\n"
                "    (3) /etc/httpd/conf.modules.d/00-base.conf\n    (3) /etc/httpd/conf.modules.d/00-proxy.conf\n")
    settings = 'VirtualHost configuration:\nServerRoot: "/etc/httpd"\nPidFile: "/run/httpd/httpd.pid"\n'
    return ScriptedHost(files, {"httpd -v": RHEL_V, "httpd -M": rhel_m, "httpd -t -D DUMP_INCLUDES": includes,
                                "httpd -S": settings}, dirs=("/usr/lib64/httpd/modules", "/etc/httpd/conf.d"))


def test_rhel_plan_writes_a_modules_file_of_ours_for_what_is_missing() -> None:
    plan, facts = plan_for(rhel_host())
    assert facts.apache.layout.name == "rhel"
    assert facts.apache.config_path == "/etc/httpd/conf.d/confluence-lb.conf"
    roles = [c.details.role for c in plan.changes]
    assert roles == ["vhost", "modules-file", "reload"]  # nothing to enable on RHEL: conf.d is read
    modules_file = plan.changes[1]
    assert modules_file.details.path == "/etc/httpd/conf.modules.d/99-confluence-lb.conf"
    assert modules_file.details.modules == ["rewrite", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests",
                                               "proxy_hcheck"]
    text = modules_file.payload[1].decode()
    assert "<IfModule !proxy_balancer_module>" in text
    assert "LoadModule proxy_balancer_module /usr/lib64/httpd/modules/mod_proxy_balancer.so" in text
    assert plan.changes[-1].details.configtest == "httpd -t"
    assert plan.changes[-1].details.reload == "apachectl graceful"


def test_rhel_modules_file_stays_the_same_on_the_next_run() -> None:
    host = rhel_host()
    plan, _ = plan_for(host)
    host.files["/etc/httpd/conf.d/confluence-lb.conf"] = plan.changes[0].payload[1]
    host.files["/etc/httpd/conf.modules.d/99-confluence-lb.conf"] = plan.changes[1].payload[1]
    # Apache now loads them, but only through the wizard's own file: still planned, so unchanged.
    host.commands["httpd -M"] = host.commands["httpd -M"] + "".join(
        f" {m}_module (shared)\n" for m in ("rewrite", "slotmem_shm", "proxy_balancer", "lbmethod_byrequests", "proxy_hcheck"))
    host.commands["httpd -t -D DUMP_INCLUDES"] += ("    (3) /etc/httpd/conf.modules.d/99-confluence-lb.conf\n"
                                                   "    (4) /etc/httpd/conf.d/confluence-lb.conf\n")
    again, _ = plan_for(host)
    assert again.is_noop, [c.summary for c in again.changes]


def test_rhel_missing_mod_ssl_names_the_package() -> None:
    host = rhel_host()
    host.files["/etc/ssl/wiki.crt"] = host.files["/etc/ssl/wiki.key"] = b"PEM"
    with pytest.raises(ApacheError) as caught:
        plan_for(host, answers_of("https://wiki.example.com"))
    assert "module ssl is not installed" in caught.value.message and "mod_ssl" in caught.value.hint


# --------------------------------------------------------------------------- apply order


def balancer_apache_pid_command(pid_file: str) -> str:
    """The command the step runs to find a live Apache from its pid file (as the step builds it)."""
    recorder = ScriptedHost({}, {})
    apache_reload.running_pid(recorder, pid_file)
    return recorder.ran[-1]


class Recorder:
    def __init__(self, host: ScriptedHost) -> None:
        self.host = host
        self.events: list[tuple[str, object]] = []
        self.undo: list[UndoAction] = []
        self.changes: list[dict] = []

    def journal(self) -> Journal:
        def undo(action: UndoAction) -> None:
            self.undo.append(action)
            self.events.append(("undo", action.kind, len(self.host.ran)))

        def change(data: dict) -> None:
            self.changes.append(data)
            self.events.append(("change", data.get("kind"), len(self.host.ran)))

        return Journal(undo, change)


class Pool:
    def __init__(self, host: Host) -> None:
        self.host = host

    def balancer(self) -> Host:
        return self.host


def test_apply_records_every_undo_first_tests_then_reloads(monkeypatch) -> None:
    monkeypatch.setattr(apache_reload, "RELOAD_SETTLE_SECONDS", 0)
    host = debian_host()
    plan, _ = plan_for(host)
    host.commands.update({"apache2ctl -t": "Syntax OK", "apache2ctl graceful": "",
                          balancer_apache_pid_command("/var/run/apache2/apache2.pid"): "4242\n"})
    for change in plan.changes:
        if change.details.role in ("module", "site"):
            host.commands[change.details.command] = ""
    host.commands["apache2ctl -t -D DUMP_INCLUDES"] += "    (225) /etc/apache2/sites-enabled/confluence-lb.conf\n"
    recorder = Recorder(host)
    ctx = Context(answers=answers_of(), hosts=Pool(host))  # type: ignore[arg-type]
    STEP.apply(ctx, plan, recorder.journal())
    assert recorder.undo[0].kind == RELOAD_UNDO  # recorded first, so undone last
    # Every change was made only after its undo was recorded.
    recorded = [e[2] for e in recorder.events if e[0] == "undo"]
    for action, ran_before in zip(recorder.undo, recorded):
        if action.kind == "run":
            done = action.manual.replace("a2dismod -q -f", "a2enmod -q").replace("a2dissite", "a2ensite")
        elif action.kind == "remove-file":
            done = f"write {action.data['path']}"
        else:
            continue
        assert host.ran.index(done) >= ran_before, action
    test_at, reload_at = host.ran.index("apache2ctl -t"), host.ran.index("apache2ctl graceful")
    assert test_at < reload_at
    assert host.ran.index("write /etc/apache2/sites-available/confluence-lb.conf") < test_at
    # A reload marked pending before the first write, and marked done once Apache runs it.
    (first, _, ran), (second, kind, ran_too) = recorder.events[:2]
    assert (first, second, kind) == ("undo", "change", "reload-pending")
    assert ran == ran_too <= host.ran.index("write /etc/apache2/sites-available/confluence-lb.conf")
    assert [c["kind"] for c in recorder.changes][-2:] == ["reload", "reloaded"]
    assert len({c["reload_id"] for c in recorder.changes if "reload_id" in c}) == 1


def _record(changes: list[dict], undo: list[dict]) -> StepRecord:
    # As the state file holds them, read back as the runner reads them.
    return StepRecord.from_dict({"name": "balancer", "changes": changes,
                                 "undo": [{"target": "balancer", **entry} for entry in undo]})


def test_pending_reload_is_an_apply_stopped_between_its_marker_and_its_end() -> None:
    undo = [{"kind": RELOAD_UNDO, "data": {"reload_id": "t1"}, "undone": None}]
    pending = {"kind": "reload-pending", "reload_id": "t1"}
    written = {"kind": "file", "path": "/etc/apache2/sites-available/confluence-lb.conf"}
    assert pending_reload(_record([pending, written], undo)) == "t1"  # killed before the reload
    assert pending_reload(_record([pending, written, {"kind": "reload", "reload_id": "t1"}], undo)) == "t1"
    done = [pending, written, {"kind": "reload", "reload_id": "t1"}, {"kind": "reloaded", "reload_id": "t1"}]
    assert pending_reload(_record(done, undo)) is None
    # Rolled back (or undone by a failure): the files are back, nothing is pending.
    assert pending_reload(_record([pending, written], [{**undo[0], "undone": "2026-01-01T00:00:00"}])) is None
    assert pending_reload(_record([written], undo)) is None  # a state from before the marker existed
    assert pending_reload(None) is None


def test_a_pending_reload_is_planned_and_finished_under_the_interrupted_applys_undo(monkeypatch) -> None:
    monkeypatch.setattr(apache_reload, "RELOAD_SETTLE_SECONDS", 0)
    host = debian_host()
    _, facts = plan_for(host)
    plan = STEP.plan(answers_of(), dataclasses.replace(facts, pending_reload="t1"))
    [reload] = [c for c in plan.changes if c.details.role == "reload"]
    assert reload.details.resume_reload_id == "t1" and "stopped before Apache was reloaded" in reload.summary
    host.commands.update({"apache2ctl -t": "Syntax OK", "apache2ctl graceful": "",
                          balancer_apache_pid_command("/var/run/apache2/apache2.pid"): "4242\n"})
    for change in plan.changes:
        if change.details.role in ("module", "site"):
            host.commands[change.details.command] = ""
    host.commands["apache2ctl -t -D DUMP_INCLUDES"] += "    (225) /etc/apache2/sites-enabled/confluence-lb.conf\n"
    recorder = Recorder(host)
    STEP.apply(Context(answers=answers_of(), hosts=Pool(host)), plan, recorder.journal())  # type: ignore[arg-type]
    # The interrupted apply's reload undo, recorded before its writes, stays the one undone last.
    assert RELOAD_UNDO not in [action.kind for action in recorder.undo]
    assert "reload-pending" not in [c["kind"] for c in recorder.changes]
    assert [(c["kind"], c["reload_id"]) for c in recorder.changes if "reload_id" in c] == [("reload", "t1"), ("reloaded", "t1")]
    assert "apache2ctl graceful" in host.ran


def test_a_failed_config_test_never_reloads_and_shows_apaches_lines(monkeypatch) -> None:
    host = debian_host()
    plan, _ = plan_for(host)
    for change in plan.changes:
        if change.details.role in ("module", "site"):
            host.commands[change.details.command] = ""
    host.commands["apache2ctl -t"] = lambda: CommandResult(
        "apache2ctl -t", 1, "", "AH00526: Syntax error on line 12 of /etc/apache2/sites-enabled/confluence-lb.conf:\n"
                                "Invalid command 'ProxyPass', perhaps misspelled\n")
    recorder = Recorder(host)
    ctx = Context(answers=answers_of(), hosts=Pool(host))  # type: ignore[arg-type]
    with pytest.raises(ApacheConfigTestError) as caught:
        STEP.apply(ctx, plan, recorder.journal())
    assert "Invalid command 'ProxyPass'" in caught.value.message and "NOT reloaded" in caught.value.message
    assert "apache2ctl graceful" not in host.ran
    assert not any(c.get("kind") == "reload" for c in recorder.changes)


def test_the_reload_undo_runs_only_when_that_apply_reloaded() -> None:
    host = debian_host()
    host.commands.update({"apache2ctl -t": "Syntax OK", "apache2ctl graceful": ""})
    action = UndoAction(RELOAD_UNDO, "balancer", "reload", "apache2ctl -t && apache2ctl graceful",
                        {"configtest": "apache2ctl -t", "reload": "apache2ctl graceful", "token": "abc"})

    def record(*changes: dict) -> StepRecord:
        return StepRecord.from_dict({"name": "balancer", "changes": list(changes)})

    never = Context(answers=answers_of(), hosts=Pool(host), previous={"balancer": record()})  # type: ignore[arg-type]
    STEP.undo(never, action)
    assert "apache2ctl graceful" not in host.ran
    reloaded = Context(answers=answers_of(), hosts=Pool(host),  # type: ignore[arg-type]
                       previous={"balancer": record({"kind": "reload", "token": "abc"})})
    STEP.undo(reloaded, action)
    assert host.ran[-2:] == ["apache2ctl -t", "apache2ctl graceful"]
    host.commands["apache2ctl -t"] = lambda: CommandResult("apache2ctl -t", 1, "", "AH00526: broken")
    with pytest.raises(ApacheConfigTestError, match="not reloaded"):
        STEP.undo(reloaded, action)


def test_facts_are_plain_data() -> None:
    facts = read_apache_facts(debian_host(), answers_of(), ALL_MODULES)
    assert isinstance(facts, ApacheFacts) and all(isinstance(d, Directive) for d in facts.directives)
