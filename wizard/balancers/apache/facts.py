"""Apache httpd on the balancer host: the distribution layouts as data, and the facts read from it.

Three layouts are known, and every difference between them lives in ``LAYOUTS``
(certbot keeps its per-OS options the same way), never in ``if`` chains:

* ``debian``: ``/etc/apache2``, ``apache2ctl``, modules enabled with ``a2enmod``,
  sites in ``sites-available`` enabled with ``a2ensite``;
* ``rhel``: ``/etc/httpd``, ``httpd``/``apachectl``, modules loaded by ``LoadModule``
  lines in ``conf.modules.d``, every ``conf.d/*.conf`` read, nothing to enable;
* ``self-contained``: an Apache started with ``-f MAIN.conf`` (the lab, the tests, or
  an admin's own build). It is chosen when the answers' configtest or reload command
  carries ``-f``; those commands are then used as given and the others (``-M``,
  ``-S``, ``-D DUMP_INCLUDES``) are built from the same program and options.

The facts come from Apache itself wherever it can tell: the version (``-v``), the
modules it loads (``-M``), its virtual hosts with file and line (``-S``) and the
files its configuration includes (``-t -D DUMP_INCLUDES``). Those files are then
read to find ``Listen`` lines, ``LoadModule`` lines and ``ProxyErrorOverride On``
(which breaks Confluence's editor: Atlassian's "How to use Apache as a Load Balancer for Confluence Data Center", CONFSERVER-55946).

The parsers are pure functions of the commands' text so they are tested from
fixtures; ``read_apache_facts`` is the only part that touches a host.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal

from wizard.answers_model import Answers, ApacheOptions
from wizard.balancers.managed_file import HEADER_LINE as HEADER_LINE
from wizard.balancers.managed_file import managed_setup as managed_setup
from wizard.errors import WizardError
from wizard.transport.hosts import Host

#: The header line the wizard writes first in every file it owns; ``{setup}`` is the setup's name.

#: The oldest Apache that can carry WebSockets through a balancer (mod_proxy_wstunnel).
MINIMUM_VERSION = (2, 4, 5)
#: From this version mod_proxy_http tunnels WebSockets itself (``upgrade=websocket`` on
#: the members); older ones need the seed's rewrite to ``ws://`` members.
UPGRADE_PARAMETER_VERSION = (2, 4, 47)

ModuleMechanism = Literal["a2enmod", "modules-file", "vhost"]


class ApacheError(WizardError):
    """Apache on the balancer host cannot be used as it is (wrong version, missing module...)."""


class ApacheConfigError(ApacheError):
    """Something in Apache's configuration stops the wizard (ProxyErrorOverride On, a rival vhost)."""


@dataclass(frozen=True)
class SiteEnabler:
    """How a folder of available files is switched on (Debian's a2ensite/a2enconf)."""

    available_dir: str
    enabled_dir: str
    enable: str   # "{name}" is the file name without .conf
    disable: str

    def enable_command(self, name: str) -> str:
        """The command that enables the site ``name``, its name checked and quoted for the shell."""
        return self.enable.format(name=shlex.quote(checked_site_name(name)))

    def disable_command(self, name: str) -> str:
        """The command that disables the site ``name``, its name checked and quoted for the shell."""
        return self.disable.format(name=shlex.quote(checked_site_name(name)))


@dataclass(frozen=True)
class Layout:
    """One way Apache is laid out on a machine. Every distribution difference is a field here."""

    name: str
    #: A file whose presence means this layout (None: chosen by the commands, not the disk).
    marker: str | None
    #: The server binary and the control script the commands below name ("{binary}", "{ctl}").
    binary: str
    ctl: str
    #: Command templates. A self-contained Apache's use "{prog}", the program of the answers'
    #: own command, and "{opts}", the options selecting its configuration (-f, -d, -D...).
    configtest: str
    reload: str
    modules_command: str
    vhosts_command: str
    includes_command: str
    version_command: str
    #: Where the vhost goes when the answers give no config_path (None: it must be given).
    default_config_path: str | None
    #: How a missing module is switched on: a2enmod, LoadModule lines in a file of ours in
    #: a folder the main configuration includes, or LoadModule lines in the vhost itself.
    module_mechanism: ModuleMechanism
    module_enable: str | None        # "{module}" is the short name ("proxy_http")
    module_disable: str | None
    #: What must exist for a module to be available ("{module}", "{module_dir}").
    module_source: str
    module_dirs: tuple[str, ...]
    #: The file of ours holding LoadModule lines ("{stem}": config_path's name without .conf).
    modules_file: str | None
    site_enablers: tuple[SiteEnabler, ...]
    #: How to get Apache, and packages providing modules that are not in the main one.
    install_hint: str
    module_packages: dict[str, str] = field(default_factory=dict)

    def enable_module_command(self, module: str) -> str:
        """The command that switches ``module`` on (a2enmod), its name checked and quoted."""
        assert self.module_enable is not None
        return self.module_enable.format(module=shlex.quote(checked_site_name(module)))

    def disable_module_command(self, module: str) -> str:
        """The command that switches ``module`` off (a2dismod), its name checked and quoted."""
        assert self.module_disable is not None
        return self.module_disable.format(module=shlex.quote(checked_site_name(module)))

    def enabler_for(self, config_path: str) -> SiteEnabler | None:
        folder = posixpath.dirname(config_path)
        return next((e for e in self.site_enablers if e.available_dir == folder), None)


_SO_DIRS = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules",
            "/usr/local/apache2/modules")

LAYOUTS: dict[str, Layout] = {
    "debian": Layout(
        name="debian", marker="/etc/apache2/apache2.conf", binary="apache2", ctl="apache2ctl",
        # apache2ctl reads /etc/apache2/envvars first; the bare apache2 binary fails without it.
        configtest="{ctl} -t", reload="{ctl} graceful",
        modules_command="{ctl} -M", vhosts_command="{ctl} -S",
        includes_command="{ctl} -t -D DUMP_INCLUDES", version_command="{ctl} -v",
        default_config_path="/etc/apache2/sites-available/confluence-lb.conf",
        module_mechanism="a2enmod", module_enable="a2enmod -q {module}",
        module_disable="a2dismod -q -f {module}",
        module_source="/etc/apache2/mods-available/{module}.load",
        module_dirs=("/usr/lib/apache2/modules",), modules_file=None,
        site_enablers=(
            SiteEnabler("/etc/apache2/sites-available", "/etc/apache2/sites-enabled",
                        "a2ensite -q {name}", "a2dissite -q {name}"),
            SiteEnabler("/etc/apache2/conf-available", "/etc/apache2/conf-enabled",
                        "a2enconf -q {name}", "a2disconf -q {name}"),
        ),
        install_hint="apt-get install apache2"),
    "rhel": Layout(
        name="rhel", marker="/etc/httpd/conf/httpd.conf", binary="httpd", ctl="apachectl",
        # apachectl graceful becomes `systemctl reload httpd` where systemd runs it.
        configtest="{binary} -t", reload="{ctl} graceful",
        modules_command="{binary} -M", vhosts_command="{binary} -S",
        includes_command="{binary} -t -D DUMP_INCLUDES", version_command="{binary} -v",
        default_config_path="/etc/httpd/conf.d/confluence-lb.conf",
        module_mechanism="modules-file", module_enable=None, module_disable=None,
        module_source="{module_dir}/mod_{module}.so",
        module_dirs=("/usr/lib64/httpd/modules", "/usr/lib/httpd/modules"),
        modules_file="/etc/httpd/conf.modules.d/99-{stem}.conf", site_enablers=(),
        install_hint="dnf install httpd", module_packages={"ssl": "mod_ssl"}),
    "self-contained": Layout(
        name="self-contained", marker=None, binary="apache2", ctl="apache2ctl",
        configtest="{prog} {opts} -t", reload="{prog} {opts} -k graceful",
        modules_command="{prog} {opts} -M", vhosts_command="{prog} {opts} -S",
        includes_command="{prog} {opts} -t -D DUMP_INCLUDES", version_command="{prog} -v",
        default_config_path=None,
        # The main configuration is the admin's (or the lab's) own file: rather than ask them
        # to include a second file of ours, the vhost carries its LoadModule lines itself,
        # each guarded by <IfModule !x_module> so a module loaded elsewhere is not loaded twice.
        module_mechanism="vhost", module_enable=None, module_disable=None,
        module_source="{module_dir}/mod_{module}.so", module_dirs=_SO_DIRS, modules_file=None,
        site_enablers=(), install_hint="apt-get install apache2 (or dnf install httpd)"),
}


@dataclass(frozen=True)
class Commands:
    """The shell commands the wizard runs against one Apache."""

    configtest: str
    reload: str
    modules: str
    vhosts: str
    includes: str
    version: str


# Options of the httpd binary that select which configuration it reads; a self-contained
# Apache's read-only commands must carry them to look at the same server.
_CARRIED_OPTIONS = ("-f", "-d", "-D", "-C", "-c")
_PROGRAMS = ("apache2ctl", "apachectl", "apache2", "httpd")


def main_config_of(command: str | None) -> str | None:
    """The ``-f MAIN.conf`` of a command line, if it has one."""
    words = _split(command or "")
    for index, word in enumerate(words):
        if word == "-f" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("-f") and len(word) > 2:
            return word[2:]
    return None


def self_contained_main_config(options: ApacheOptions) -> str | None:
    """The ``-f MAIN.conf`` of the answers' commands, when the admin runs Apache that way."""
    return main_config_of(options.configtest_command) or main_config_of(options.reload_command)


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _program_and_options(command: str) -> tuple[list[str], list[str]]:
    """``sudo apache2ctl -f X -t`` -> (["sudo", "apache2ctl"], ["-f", "X"])."""
    words = _split(command)
    program_at = next((i for i, w in enumerate(words) if posixpath.basename(w) in _PROGRAMS), 0)
    prefix, rest = words[:program_at + 1], words[program_at + 1:]
    carried: list[str] = []
    index = 0
    while index < len(rest):
        word = rest[index]
        if word in _CARRIED_OPTIONS and index + 1 < len(rest):
            carried += [word, rest[index + 1]]
            index += 2
            continue
        if any(word.startswith(o) and len(word) > 2 for o in _CARRIED_OPTIONS):
            carried.append(word)
        index += 1
    return prefix, carried


def commands_for(layout: Layout, options: ApacheOptions) -> Commands:
    """The commands for this layout; the answers' own configtest/reload commands win."""
    prog = opts = ""
    if layout.module_mechanism == "vhost":
        source = next(c for c in (options.configtest_command, options.reload_command) if main_config_of(c))
        assert source is not None  # the self-contained layout is chosen only when one has -f
        prefix, carried = _program_and_options(source)
        prog, opts = shlex.join(prefix), shlex.join(carried)

    def build(template: str) -> str:
        return " ".join(template.format(prog=prog, opts=opts, ctl=layout.ctl, binary=layout.binary).split())

    return Commands(configtest=options.configtest_command or build(layout.configtest),
                    reload=options.reload_command or build(layout.reload),
                    modules=build(layout.modules_command), vhosts=build(layout.vhosts_command),
                    includes=build(layout.includes_command), version=build(layout.version_command))


# --------------------------------------------------------------------------- parsers (pure)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``Server version: Apache/2.4.71 (Debian)`` -> (2, 4, 71); None when not found."""
    match = re.search(r"Apache/(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def parse_modules(text: str) -> dict[str, str]:
    """``-M`` output -> {short name: "static" | "shared"}: ``proxy_http_module (shared)`` -> proxy_http."""
    modules: dict[str, str] = {}
    for match in re.finditer(r"^\s*(\w+?)_module\s+\((static|shared)\)\s*$", text, re.MULTILINE):
        modules[match[1]] = match[2]
    return modules


def parse_includes(text: str) -> list[str]:
    """``-t -D DUMP_INCLUDES`` output -> the included files, the main one first."""
    return [m[1] for m in re.finditer(r"^\s*\((?:\*|\d+)\)\s+(\S.*?)\s*$", text, re.MULTILINE)]


@dataclass(frozen=True)
class VirtualHost:
    """One virtual host as ``-S`` reports it."""

    port: int | None  # None: any port ("*")
    name: str
    file: str
    line: int
    aliases: tuple[str, ...] = ()

    def answers_to(self, name: str) -> bool:
        wanted = name.lower()
        return self.name.lower() == wanted or any(_glob_match(a.lower(), wanted) for a in self.aliases)

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _glob_match(pattern: str, name: str) -> bool:
    if "*" not in pattern and "?" not in pattern:
        return pattern == name
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, name) is not None


@dataclass(frozen=True)
class ServerSettings:
    """What ``-S`` says beyond the vhosts."""

    vhosts: tuple[VirtualHost, ...]
    server_root: str | None = None
    pid_file: str | None = None
    error_log: str | None = None


_WHERE = r"\((?P<file>.+):(?P<line>\d+)\)\s*$"


def parse_server_settings(text: str) -> ServerSettings:
    """``-S`` output -> the virtual hosts (port, name, aliases, file:line) and the main paths."""
    vhosts: list[VirtualHost] = []
    values: dict[str, str] = {}

    def port_of(token: str) -> int | None:
        return int(token) if token.isdigit() else None

    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        named = re.match(rf"^port (?P<port>\d+|\*) namevhost (?P<name>\S+) {_WHERE}", stripped)
        single = re.match(rf"^(?P<addr>\S+):(?P<port>\d+|\*)\s+(?P<name>\S+) {_WHERE}", line)
        alias = re.match(r"^(?:wild )?alias (?P<name>\S+)$", stripped)
        setting = re.match(r'^(?P<key>ServerRoot|PidFile|Main ErrorLog):\s*"(?P<value>.*)"\s*$', stripped)
        if named or single:
            found = named or single
            assert found is not None
            vhosts.append(VirtualHost(port_of(found["port"]), found["name"], found["file"],
                                      int(found["line"])))
        elif alias and vhosts:
            last = vhosts[-1]
            vhosts[-1] = VirtualHost(last.port, last.name, last.file, last.line,
                                     last.aliases + (alias["name"],))
        elif setting:
            values[setting["key"]] = setting["value"]
    return ServerSettings(tuple(vhosts), values.get("ServerRoot"), values.get("PidFile"),
                          values.get("Main ErrorLog"))


@dataclass(frozen=True)
class Directive:
    """One configuration directive found by ``scan_config``, with where it is."""

    file: str
    line: int
    name: str
    arguments: tuple[str, ...]
    text: str

    def where(self) -> str:
        return f"{self.file}:{self.line}"


#: The directives ``scan_config`` reports (lower-case).
SCANNED = ("listen", "loadmodule", "proxyerroroverride", "include", "includeoptional")


def scan_config(path: str, text: str) -> list[Directive]:
    """The scanned directives of one configuration file, with their first line number.

    Comments are skipped and backslash continuations joined, as Apache reads them.
    Conditional blocks (<IfModule>, <IfDefine>) are not evaluated: a directive inside
    one counts, which errs on the side of reporting.
    """
    found: list[Directive] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical, pending = (pending + line).strip(), ""
        if not logical or logical.startswith("#"):
            continue
        words = _split(logical)
        if words and words[0].lower() in SCANNED:
            found.append(Directive(path, start, words[0].lower(), tuple(words[1:]), logical))
    return found


def listen_port(directive: Directive) -> tuple[int, str | None] | None:
    """``Listen [addr:]port [protocol]`` -> (port, protocol); None for a port Apache would
    only know after expanding a variable."""
    if not directive.arguments:
        return None
    address = directive.arguments[0]
    port = address.rsplit(":", 1)[-1] if not address.endswith("]") else ""
    if not port.isdigit():
        return None
    protocol = directive.arguments[1].lower() if len(directive.arguments) > 1 else None
    return int(port), protocol


def include_patterns(directives: list[Directive] | tuple[Directive, ...], server_root: str | None) -> list[str]:
    """The absolute paths or globs of every Include/IncludeOptional (relative ones are under ServerRoot)."""
    patterns = []
    for directive in directives:
        if directive.name in ("include", "includeoptional") and directive.arguments:
            pattern = directive.arguments[0]
            if not posixpath.isabs(pattern) and server_root:
                pattern = posixpath.join(server_root, pattern)
            patterns.append(posixpath.normpath(pattern))
    return patterns


def is_included(path: str, patterns: list[str]) -> bool:
    """Whether an Include of ``patterns`` would read ``path`` (a glob per path segment, or a folder)."""
    for pattern in patterns:
        if not any(ch in pattern for ch in "*?["):
            if path == pattern or path.startswith(pattern.rstrip("/") + "/"):
                return True
            continue
        parts, wanted = path.split("/"), pattern.split("/")
        if len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted)):
            return True
    return False


def error_override_on(directive: Directive) -> bool:
    return (directive.name == "proxyerroroverride" and bool(directive.arguments)
            and directive.arguments[0].lower() == "on")


def module_id(module: str) -> str:
    """``proxy_http`` -> ``proxy_http_module`` (the name LoadModule and <IfModule> use)."""
    return f"{module}_module"


def parse_depends(load_file_text: str) -> tuple[str, ...]:
    """Debian's ``# Depends: proxy alias`` line of a mods-available/*.load file."""
    match = re.search(r"^#\s*Depends:\s*(.*)$", load_file_text, re.MULTILINE)
    return tuple(match[1].split()) if match else ()


# --------------------------------------------------------------------------- facts (the host)


@dataclass(frozen=True)
class ModuleSource:
    """Whether a module can be switched on here, and what it needs first (Debian's Depends)."""

    module: str
    available: bool
    path: str
    depends: tuple[str, ...] = ()


@dataclass(frozen=True)
class TlsFacts:
    """What the wizard could tell about the certificate and key before Apache reads them."""

    problem: str | None = None  # a reason Apache would fail to start with them
    note: str = ""              # how far they were checked


@dataclass(frozen=True)
class ApacheFacts:
    """Everything the balancer step reads from the Apache host."""

    layout: Layout
    commands: Commands
    version: tuple[int, int, int]
    version_text: str
    #: Modules Apache loads now, short names -> "static" | "shared".
    loaded: dict[str, str]
    #: Modules loaded by files that are not the wizard's (or compiled in): what the
    #: wizard may rely on without loading or enabling anything itself.
    loaded_elsewhere: frozenset[str]
    module_dir: str | None
    sources: dict[str, ModuleSource]
    config_path: str
    current: bytes | None
    #: The enabled-site link (Debian) and whether it is there.
    enabler: SiteEnabler | None
    site_enabled: bool
    modules_file: str | None
    modules_file_current: bytes | None
    includes: tuple[str, ...]
    settings: ServerSettings
    directives: tuple[Directive, ...]
    owned_paths: tuple[str, ...]
    #: Our file's header says another setup owns it.
    other_owner: str | None
    tls: TlsFacts
    #: ``config_path`` is a symbolic link to this file (its target is what gets written).
    config_link: str | None = None

    @property
    def version_string(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def error_overrides(self) -> list[Directive]:
        return [d for d in self.directives if error_override_on(d)]

    @property
    def read_path(self) -> str:
        """Where Apache reads the vhost from: the enabled-site link (Debian) or the file itself."""
        if self.enabler is not None:
            return posixpath.join(self.enabler.enabled_dir, posixpath.basename(self.config_path))
        return self.config_path

    def reads_config(self) -> bool:
        """Whether Apache reads (or, once written, would read) the vhost file."""
        return self.read_path in self.includes or is_included(
            self.read_path, include_patterns(self.directives, self.settings.server_root))

    def listened_ports(self) -> dict[int, str | None]:
        """Ports some file other than ours makes Apache listen on -> protocol (None: default)."""
        ports: dict[int, str | None] = {}
        for directive in self.directives:
            if directive.name == "listen" and (parsed := listen_port(directive)):
                ports.setdefault(parsed[0], parsed[1])
        return ports


def detect_layout(host: Host, options: ApacheOptions) -> Layout:
    """Which layout this Apache has: self-contained when the commands say ``-f``, else by the disk."""
    if self_contained_main_config(options):
        return LAYOUTS["self-contained"]
    for layout in LAYOUTS.values():
        if layout.marker and host.exists(layout.marker):
            return layout
    markers = " or ".join(layout.marker for layout in LAYOUTS.values() if layout.marker)
    raise ApacheError(
        f"No Apache httpd configuration was found on {host.label} ({host.where}): neither {markers} exists.",
        "Install Apache httpd 2.4 (apt-get install apache2, or dnf install httpd). For an Apache started "
        "with its own file (`apache2 -f MAIN.conf`), give balancer.apache.configtest_command and "
        "reload_command with `-f MAIN.conf` in the answers.")


#: A file name the wizard accepts for the vhost: on Debian its stem becomes a word of an
#: a2ensite/a2dissite command line, and everywhere it is matched against Include globs.
#: Letters, digits and ``._+@-``, not starting with a dash (a2ensite would read an option).
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]*\.conf")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]*")


def checked_site_name(name: str) -> str:
    """``name`` when it is a site or module name safe for a2ensite/a2enmod, else ``ApacheError``."""
    if not _SAFE_NAME.fullmatch(name):
        raise ApacheError(
            f"The name {name!r} cannot be given to a2ensite/a2dissite or a2enmod/a2dismod: only letters, digits "
            "and ._+@- are accepted, and no leading dash. Nothing was run.",
            "Rename balancer.apache.config_path's file to such a name (for example confluence-lb.conf).")
    return name


def config_files(answers: Answers) -> frozenset[str]:
    """The files the wizard may change on the Apache machine: its config_path (or the layouts'
    default) and the modules file beside it (RHEL)."""
    apache = answers.balancer.apache
    if answers.balancer.kind != "apache" or apache is None:
        return frozenset()
    configs = ({apache.config_path} if apache.config_path
               else {layout.default_config_path for layout in LAYOUTS.values() if layout.default_config_path})
    modules = {layout.modules_file.format(stem=posixpath.basename(path).removesuffix(".conf"))
               for layout in LAYOUTS.values() if layout.modules_file for path in configs}
    return frozenset(configs | modules)


def check_config_path(path: str) -> str:
    """``path`` when its file name is one the wizard accepts for the vhost, else ``ApacheError``.

    The stem of the name becomes a word of a command line on Debian (a2ensite), and a name
    with a space or a shell character would name another site or run something else.
    """
    name = posixpath.basename(path)
    if not _SAFE_FILE_NAME.fullmatch(name) or any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise ApacheError(
            f"balancer.apache.config_path {path!r} has a file name the wizard does not accept: only letters, "
            "digits and ._+@- before .conf (no spaces, quotes, semicolons or other shell characters, no "
            "leading dash). Nothing was changed.",
            "Set config_path to a plain name such as /etc/apache2/sites-available/confluence-lb.conf.")
    return path


def resolve_config_path(layout: Layout, options: ApacheOptions) -> str:
    """The vhost's path: the answers' config_path (checked) or the layout's default."""
    if options.config_path:
        return check_config_path(options.config_path)
    if layout.default_config_path:
        return layout.default_config_path
    raise ApacheError("balancer.apache.config_path is needed for an Apache started with -f MAIN.conf: "
                      "the wizard cannot guess which folder that configuration includes.",
                      "Set config_path to a .conf file in a folder MAIN.conf includes "
                      "(IncludeOptional .../*.conf).")


def _run_apache(host: Host, command: str, what: str) -> str:
    result = host.run(command, timeout=60.0)
    if not result.ok:
        said = "\n".join((result.stderr.strip() or result.stdout.strip() or "(no output)").splitlines()[-20:])
        raise ApacheError(
            f"{what} failed on {host.label} ({host.where}): `{command}` exited {result.exit_status}:\n{said}",
            "This runs before the wizard changes anything: Apache's configuration as it is now must pass "
            "its own test. Fix what Apache names above (or the command in the answers), then run the step again.")
    return result.stdout + "\n" + result.stderr


def read_apache_facts(host: Host, answers: Answers, needed: tuple[str, ...] | None = None) -> ApacheFacts:
    """Read the facts of the Apache the answers point at. Read-only.

    ``needed`` are the modules the wizard's configuration will use (short names); for each
    one not loaded elsewhere the facts say whether and how it can be switched on.
    """
    options = answers.balancer.apache
    assert options is not None
    layout = detect_layout(host, options)
    commands = commands_for(layout, options)
    config_path = resolve_config_path(layout, options)

    version_text = _run_apache(host, commands.version, "Asking Apache its version")
    version = parse_version(version_text)
    if version is None:
        raise ApacheError(f"`{commands.version}` on {host.label} did not print an Apache version:\n"
                          f"{version_text.strip()[:500]}", "Check that the command runs Apache httpd 2.4.")
    loaded = parse_modules(_run_apache(host, commands.modules, "Listing Apache's modules"))
    includes = tuple(parse_includes(_run_apache(host, commands.includes, "Listing Apache's configuration files")))
    settings = parse_server_settings(_run_apache(host, commands.vhosts, "Listing Apache's virtual hosts"))

    enabler = layout.enabler_for(config_path)
    name = posixpath.basename(config_path)
    stem = name.removesuffix(".conf")
    enabled_link = posixpath.join(enabler.enabled_dir, name) if enabler else None
    modules_file = layout.modules_file.format(stem=stem) if layout.modules_file else None
    owned = tuple(p for p in (config_path, enabled_link, modules_file) if p)

    directives: list[Directive] = []
    for path in includes:
        if path in owned:
            continue
        directives += scan_config(path, host.read_bytes(path).decode("utf-8", "replace"))

    current = host.read_bytes(config_path) if host.exists(config_path) else None
    config_link = host.link_target(config_path) if current is not None else None
    owner = managed_setup(current.decode("utf-8", "replace")) if current is not None else None
    modules_file_current = (host.read_bytes(modules_file)
                            if modules_file and host.exists(modules_file) else None)

    static = {m for m, kind in loaded.items() if kind == "static"}
    loaded_by_others = {d.arguments[0][:-len("_module")] for d in directives
                        if d.name == "loadmodule" and d.arguments and d.arguments[0].endswith("_module")}
    # -M is the truth about what is loaded; the scan says which of those a file other
    # than ours loads, so the wizard's own LoadModule lines stay planned on every run.
    elsewhere = frozenset(static | (set(loaded) & loaded_by_others))

    module_dir = next((d for d in layout.module_dirs if host.is_dir(d)), None)
    sources = _module_sources(host, layout, module_dir, needed or (), elsewhere)
    return ApacheFacts(
        layout=layout, commands=commands, version=version, version_text=version_text.strip().splitlines()[0],
        loaded=loaded, loaded_elsewhere=elsewhere, module_dir=module_dir, sources=sources,
        config_path=config_path, current=current, enabler=enabler,
        site_enabled=bool(enabled_link and host.exists(enabled_link)),
        modules_file=modules_file, modules_file_current=modules_file_current, includes=includes,
        settings=settings, directives=tuple(directives), owned_paths=owned,
        other_owner=owner if owner and owner != answers.name else None,
        tls=read_tls_facts(host, options), config_link=config_link)


def _module_sources(host: Host, layout: Layout, module_dir: str | None, needed: tuple[str, ...],
                    elsewhere: frozenset[str]) -> dict[str, ModuleSource]:
    """Availability (and Debian's dependencies, followed) of every needed module not loaded elsewhere."""
    sources: dict[str, ModuleSource] = {}
    todo = [m for m in needed if m not in elsewhere]
    while todo:
        module = todo.pop(0)
        if module in sources:
            continue
        path = layout.module_source.format(module=module, module_dir=module_dir or layout.module_dirs[0])
        available = host.exists(path)
        depends: tuple[str, ...] = ()
        if available and layout.module_mechanism == "a2enmod":
            depends = parse_depends(host.read_bytes(path).decode("utf-8", "replace"))
            todo += [d for d in depends if d not in elsewhere]
        sources[module] = ModuleSource(module, available, path, depends)
    return sources


_TLS_SPLIT = "----clbw-key----"


def read_tls_facts(host: Host, options: ApacheOptions) -> TlsFacts:
    """Check the certificate and key as far as the host allows.

    ``apache2 -t`` accepts a certificate that is garbage or does not match its key; Apache
    then dies on the reload. So the files must exist, and where ``openssl`` is installed
    on the host the certificate must parse and carry the key's public half.
    """
    tls = options.tls
    if tls is None:
        return TlsFacts(note="no TLS")
    for label, path in (("certificate", tls.certificate_file), ("private key", tls.key_file)):
        if not host.exists(path) or host.is_dir(path):
            return TlsFacts(problem=f"The TLS {label} {path} does not exist on {host.label} ({host.where}).")
    # One round trip: the certificate's public key, a marker, the key's public key. The exit
    # status says which part failed (3: no openssl, 4: the certificate, 5: the key).
    cert, key = shlex.quote(tls.certificate_file), shlex.quote(tls.key_file)
    result = host.run(
        f"PATH=\"$PATH:/usr/bin:/usr/local/bin\"; command -v openssl >/dev/null 2>&1 || exit 3; "
        f"openssl x509 -noout -pubkey -in {cert} || exit 4; echo {_TLS_SPLIT}; "
        f"openssl pkey -pubout -passin pass: -in {key} || exit 5", timeout=30.0)
    said = (result.stderr.strip() or result.stdout.strip())[:300]
    if result.exit_status == 3:
        return TlsFacts(note="files present; not parsed (no openssl on the balancer host)")
    if result.exit_status == 4:
        return TlsFacts(problem=f"{tls.certificate_file} is not a PEM certificate openssl can read: {said}")
    if result.exit_status == 5:
        return TlsFacts(problem=f"{tls.key_file} is not an unencrypted PEM private key openssl can read "
                                f"(Apache would ask for a passphrase, or fail): {said}")
    if not result.ok or _TLS_SPLIT not in result.stdout:
        return TlsFacts(note=f"files present; not parsed (openssl failed: {said})")
    cert_public, key_public = (part.strip() for part in result.stdout.split(_TLS_SPLIT, 1))
    if cert_public != key_public:
        return TlsFacts(problem=f"The certificate {tls.certificate_file} does not belong to the key "
                                f"{tls.key_file} (their public keys differ).")
    return TlsFacts(note="certificate and key parsed and matching (openssl)")


def config_test_lines(output: str, limit: int = 20) -> str:
    """Apache's own error lines from a failed config test, without the noise."""
    lines = [line for line in output.splitlines() if line.strip() and line.strip() != "Syntax OK"]
    return "\n".join(lines[-limit:]) or "(Apache printed nothing)"

