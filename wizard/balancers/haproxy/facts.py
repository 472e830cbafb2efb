"""HAProxy on the balancer host: what it loads, read from its ``-f`` files and folders.

HAProxy has no ``-T``: what it loads is the list of ``-f`` arguments it is started with,
each a file or a folder whose ``*.cfg`` files are read in name order. The answers'
configtest command carries the same ``-f`` arguments as the service (``haproxy -c -f
/etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d``), so ``config_path`` must be one of
those files or a ``.cfg`` file in one of those folders. When the master process runs
(its pid file: the commands' ``-p``, the ``pidfile`` of the global section, or
``/run/haproxy.pid``) its own command line is read too: a service started without the
folder would never read the wizard's file, whatever the test says.

The other files are scanned for what would clash with the wizard's sections: a proxy of
the same name, another frontend bound to the same port (HAProxy binds both with
SO_REUSEPORT and the kernel splits the traffic between them), and for the runtime API
socket the answers name (``stats socket PATH ... level admin``).

The parsers are pure; ``read_haproxy_facts`` alone touches a host.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

from wizard.answers_model import Answers, HaproxyOptions
from wizard.balancers.served import (
    Refusal,
    ServerFacts,
    managed_setup,
    run_read,
    split_command,
)
from wizard.transport.hosts import Host

#: ``http-check send`` (the health check's request) is HAProxy 2.2's.
MINIMUM_VERSION = (2, 2, 0)
DEFAULT_PID_FILE = "/run/haproxy.pid"


@dataclass(frozen=True)
class HaproxyCommands:
    configtest: str
    reload: str
    version: str
    #: The ``-f`` arguments (files or folders), in order, and the ``-p`` pid file if given.
    loads: tuple[str, ...]
    pid_file: str | None
    program: str


def _options_of(words: list[str], flag: str) -> list[str]:
    found = []
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            found.append(words[index + 1])
        elif word.startswith(flag) and len(word) > len(flag) and word[1] == flag[1]:
            found.append(word[len(flag):])
    return found


def haproxy_commands(options: HaproxyOptions) -> HaproxyCommands:
    configtest, reload = split_command(options.configtest_command), split_command(options.reload_command)
    at = next((i for i, w in enumerate(configtest) if posixpath.basename(w) == "haproxy"), None)
    program = shlex.join(configtest[:at + 1]) if at is not None else "haproxy"
    loads = tuple(dict.fromkeys(_options_of(configtest, "-f") + _options_of(reload, "-f")))
    pids = _options_of(reload, "-p") + _options_of(configtest, "-p")
    pid = pids[0] if pids else None
    return HaproxyCommands(configtest=options.configtest_command, reload=options.reload_command,
                           version=f"{program} -vv", loads=loads, pid_file=pid, program=program)


# --------------------------------------------------------------------------- parsers (pure)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``HAProxy version 2.6.12-1+deb12u4 ...`` -> (2, 6, 12)."""
    match = re.search(r"HA-?Proxy version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


def has_feature(text: str, feature: str) -> bool:
    """``Feature list : ... +OPENSSL ...`` of ``-vv``."""
    return re.search(rf"(^|\s)\+{re.escape(feature)}(\s|$)", text) is not None


def covers(loads: tuple[str, ...], folders: frozenset[str], config_path: str) -> str | None:
    """The ``-f`` argument that makes HAProxy read ``config_path`` (a file, or a folder of .cfg), or None."""
    for item in loads:
        normal = posixpath.normpath(item)
        if normal == config_path:
            return item
        if normal in folders and posixpath.dirname(config_path) == normal and config_path.endswith(".cfg"):
            return item
    return None


@dataclass(frozen=True)
class Section:
    kind: str  # global, defaults, frontend, backend, listen, ...
    name: str
    lines: tuple[tuple[int, str], ...]
    file: str
    line: int


_SECTION_KEYWORDS = ("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
                     "mailers", "program", "http-errors", "ring", "cache", "fcgi-app")


def parse_sections(text: str, file: str) -> list[Section]:
    """A configuration file's sections, each with its lines (comments dropped)."""
    sections: list[Section] = []
    current: tuple[str, str, int] | None = None
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.split("#", 1)[0].strip() if "#" in raw else raw.strip()
        if not stripped:
            continue
        words = stripped.split()
        if words[0] in _SECTION_KEYWORDS:
            if current is not None:
                sections.append(Section(current[0], current[1], tuple(lines), file, current[2]))
            current, lines = (words[0], words[1] if len(words) > 1 else "", number), []
        elif current is not None:
            lines.append((number, stripped))
    if current is not None:
        sections.append(Section(current[0], current[1], tuple(lines), file, current[2]))
    return sections


def bound_ports(section: Section) -> list[int]:
    ports = []
    for _, line in section.lines:
        words = line.split()
        if words[0] != "bind" or len(words) < 2:
            continue
        for address in words[1].split(","):
            tail = address.rsplit(":", 1)[-1]
            if tail.isdigit():
                ports.append(int(tail))
            elif "-" in tail and all(part.isdigit() for part in tail.split("-", 1)):
                low, high = (int(part) for part in tail.split("-", 1))
                ports += list(range(low, min(high, low + 1000) + 1))
    return ports


def admin_sockets(sections: list[Section]) -> list[str]:
    """The runtime API sockets at level admin of the global sections."""
    found = []
    for section in sections:
        if section.kind != "global":
            continue
        for _, line in section.lines:
            words = line.split()
            if words[:2] == ["stats", "socket"] and len(words) > 2 and "admin" in words[3:]:
                path = words[2].removeprefix("unix@")
                found.append(path)
    return found


# --------------------------------------------------------------------------- facts (the host)


def _list_folder(host: Host, folder: str) -> list[str]:
    result = host.run(f"for f in {shlex.quote(folder)}/*.cfg; do [ -f \"$f\" ] && printf '%s\\n' \"$f\"; done; true",
                      timeout=30.0)
    return sorted(line for line in result.stdout.splitlines() if line.strip())


def read_haproxy_facts(host: Host, answers: Answers) -> ServerFacts:
    """Read what the HAProxy of the answers' commands is and loads. Read-only."""
    options = answers.balancer.haproxy
    assert options is not None
    commands = haproxy_commands(options)
    config_path = options.config_path
    version_text = run_read(host, commands.version, "Asking HAProxy its version", "HAProxy")
    version = parse_version(version_text) or (0, 0, 0)
    refusals: list[Refusal] = []
    folders = frozenset(posixpath.normpath(item) for item in commands.loads if host.is_dir(item))
    files: list[str] = []
    for item in commands.loads:
        normal = posixpath.normpath(item)
        if normal in folders:
            files += _list_folder(host, normal)
        elif host.exists(normal):
            files.append(normal)
    if not commands.loads:
        refusals.append(Refusal(
            f"balancer.haproxy.configtest_command (`{commands.configtest}`) names no -f file, so the wizard cannot "
            "tell what HAProxy loads. Nothing was changed.",
            "Give the configtest command the same -f files and folders as the service: haproxy -c -f "
            "/etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d"))
    by = covers(commands.loads, folders, config_path)
    loads_note = f"loaded by `-f {by}`" if by else ""
    if commands.loads and by is None:
        refusals.append(Refusal(
            f"HAProxy would not read {config_path}: none of the -f files or folders of the commands "
            f"({', '.join(commands.loads)}) is that file or its folder. Nothing was changed.",
            f"Add `-f {posixpath.dirname(config_path)}` to the service's options (on Debian the CONFIG or EXTRAOPTS of "
            "/etc/default/haproxy) and to balancer.haproxy.configtest_command, or set config_path to a .cfg "
            "file in a folder HAProxy loads, then run the step again."))

    sections: list[Section] = []
    for path in files:
        if path != config_path:
            sections += parse_sections(host.read_bytes(path).decode("utf-8", "replace"), path)
    pid_file = commands.pid_file or next(
        (line.split()[1] for s in sections if s.kind == "global" for _, line in s.lines
         if line.split()[0] == "pidfile" and len(line.split()) > 1), None)
    if pid_file is None and host.exists(DEFAULT_PID_FILE):
        pid_file = DEFAULT_PID_FILE
    running = _running_loads(host, pid_file) if pid_file else None
    if running is not None and by is not None:
        argv_loads = tuple(_options_of(running, "-f"))
        running_folders = frozenset(posixpath.normpath(i) for i in argv_loads if posixpath.normpath(i) in folders
                                    or host.is_dir(i))
        if covers(argv_loads, running_folders, config_path) is None:
            refusals.append(Refusal(
                f"The running HAProxy (pid file {pid_file}) was started with {' '.join(running)[:300]}: none of its "
                f"-f arguments loads {config_path}, so a reload would not read the wizard's file although the test "
                "does. Nothing was changed.",
                f"Start the service with `-f {posixpath.dirname(config_path)}` too (on Debian: EXTRAOPTS in "
                "/etc/default/haproxy, then `systemctl restart haproxy`), then run the step again."))
        else:
            loads_note += f"; the running HAProxy reads it too (pid file {pid_file})"
    if options.admin_socket and options.admin_socket not in admin_sockets(sections):
        refusals.append(Refusal(
            f"balancer.haproxy.admin_socket {options.admin_socket} is not a runtime API socket at level admin of "
            "HAProxy's global section, so nodes could not be drained through it. Nothing was changed.",
            f"Add `stats socket {options.admin_socket} mode 660 level admin` to the global section (Debian's "
            "haproxy.cfg has one at /run/haproxy/admin.sock), or leave admin_socket out."))
    if options.tls is not None and not has_feature(version_text, "OPENSSL"):
        refusals.append(Refusal("This HAProxy was built without OpenSSL (no +OPENSSL in `haproxy -vv`), and the "
                                "public URL is https. Nothing was changed.",
                                "Install a HAProxy built with OpenSSL (the distributions' are)."))
    current = host.read_bytes(config_path) if host.exists(config_path) else None
    owner = managed_setup(current.decode("utf-8", "replace")) if current is not None else None
    return ServerFacts(
        product="HAProxy", version=version, version_text=version_text.strip().splitlines()[0] if version_text.strip()
        else "", config_path=config_path, current=current,
        config_link=host.link_target(config_path) if current is not None else None,
        configtest=commands.configtest, reload=commands.reload, pid_file=pid_file, loads_note=loads_note,
        refusals=tuple(refusals), other_owner=owner if owner and owner != answers.name else None,
        extra={"sections": tuple(sections)})


def _running_loads(host: Host, pid_file: str) -> list[str] | None:
    """The command line of the master named in ``pid_file`` (the first pid), if it runs."""
    result = host.run(f"pid=$(head -n1 {shlex.quote(pid_file)} 2>/dev/null) && [ -r \"/proc/$pid/cmdline\" ] && "
                      "tr '\\0' '\\n' < \"/proc/$pid/cmdline\"", timeout=20.0)
    words = [w for w in result.stdout.splitlines() if w]
    if not result.ok or not words or "haproxy" not in posixpath.basename(words[0]):
        return None
    return words
