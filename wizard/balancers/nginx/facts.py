"""nginx on the balancer host: what the running server really loads, read from nginx itself.

The answers' commands name the nginx (``nginx -t``, or a self-contained one's
``nginx -c MAIN.conf -p PREFIX -t``); the same program and ``-c``/``-p``/``-g`` options
give ``-V`` (version, build options, the compiled-in paths) and ``-T`` (the test, then
every file of the configuration as nginx read it, each under ``# configuration file
PATH:``). The dump is walked from the main file through its ``include`` lines, so the
wizard knows in which block ``config_path`` is included (it must be ``http {}``),
which upstream and map variable names other files already define (a duplicate upstream
is an error, a duplicate map variable silently wins), which servers answer for the same
name and port, and where the master's pid file is.

The parsers are pure functions of the commands' text; ``read_nginx_facts`` alone touches a host.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from wizard.answers_model import Answers, NginxOptions
from wizard.balancers.served import (
    Refusal,
    ServerFacts,
    managed_setup,
    run_read,
    split_command,
)
from wizard.transport.hosts import Host

#: The oldest nginx whose directives the file uses (``absolute_redirect``, ``map ... volatile``).
MINIMUM_VERSION = (1, 12, 0)
_CARRIED_OPTIONS = ("-c", "-p", "-g")


@dataclass(frozen=True)
class NginxCommands:
    configtest: str
    reload: str
    version: str
    dump: str
    #: The ``-c`` and ``-p`` of the answers' commands (None: nginx's compiled-in ones).
    main_config: str | None
    prefix: str | None


def nginx_commands(options: NginxOptions) -> NginxCommands:
    """The read-only commands for the nginx the answers' commands run, with the same options."""
    source = options.configtest_command
    words = split_command(source)
    if not any(posixpath.basename(w) == "nginx" for w in words):
        words = split_command(options.reload_command)
    at = next((i for i, w in enumerate(words) if posixpath.basename(w) == "nginx"), None)
    if at is None:
        prefix_words, rest = ["nginx"], []
    else:
        prefix_words, rest = words[:at + 1], words[at + 1:]
    carried: list[str] = []
    values: dict[str, str] = {}
    index = 0
    while index < len(rest):
        word = rest[index]
        if word in _CARRIED_OPTIONS and index + 1 < len(rest):
            carried += [word, rest[index + 1]]
            values[word] = rest[index + 1]
            index += 2
            continue
        index += 1
    program = shlex.join(prefix_words)
    opts = shlex.join(carried)
    def build(tail: str) -> str:
        return " ".join(f"{program} {opts} {tail}".split())

    return NginxCommands(configtest=options.configtest_command, reload=options.reload_command,
                         version=build("-V"), dump=build("-T"), main_config=values.get("-c"),
                         prefix=values.get("-p"))


# --------------------------------------------------------------------------- parsers (pure)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``nginx version: nginx/1.22.1`` -> (1, 22, 1)."""
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def configure_arguments(text: str) -> dict[str, str]:
    """The ``configure arguments:`` of ``-V``: ``--prefix=/usr/share/nginx`` -> {"--prefix": ...};
    a flag without a value maps to ""."""
    match = re.search(r"^configure arguments:(.*)$", text, re.MULTILINE)
    found: dict[str, str] = {}
    for word in split_command(match[1]) if match else []:
        name, _, value = word.partition("=")
        found[name] = value
    return found


def parse_dump(text: str) -> dict[str, str]:
    """``-T`` output -> {file: its text}, in the order nginx read them (the main file first)."""
    files: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        match = re.match(r"^# configuration file (.+):\s*$", line)
        if match:
            if current is not None:
                files.setdefault(current, "".join(lines))
            current, lines = match[1], []
        elif current is not None:
            lines.append(line)
    if current is not None:
        files.setdefault(current, "".join(lines))
    return files


@dataclass
class Directive:
    """One directive: its words, the blocks it is in (``("http", "server")``), its file and line."""

    words: list[str]
    context: tuple[str, ...]
    file: str
    line: int
    #: For a block directive, the directives inside it.
    block: list[Directive] | None = None

    @property
    def name(self) -> str:
        return self.words[0] if self.words else ""

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def tokenize(text: str) -> list[tuple[str, int, bool]]:
    """nginx's tokens: (text, line, quoted); ``{`` ``}`` ``;`` are their own tokens; comments dropped."""
    tokens: list[tuple[str, int, bool]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append((ch, line, False))
            i += 1
        elif ch in "\"'":
            start_line, j, out = line, i + 1, []
            while j < n and text[j] != ch:
                if text[j] == "\\" and j + 1 < n:
                    out.append(text[j + 1])
                    j += 2
                    continue
                if text[j] == "\n":
                    line += 1
                out.append(text[j])
                j += 1
            tokens.append(("".join(out), start_line, True))
            i = j + 1
        else:
            j, out = i, []
            while j < n:
                if text[j] == "{" and j > i and text[j - 1] == "$":  # ${variable}
                    end = text.find("}", j)
                    end = n - 1 if end < 0 else end
                    out.append(text[j:end + 1])
                    j = end + 1
                    continue
                if text[j].isspace() or text[j] in ";{}":
                    break
                out.append(text[j])
                j += 1
            tokens.append(("".join(out), line, False))
            i = j
    return tokens


def parse_config(text: str, file: str, context: tuple[str, ...] = ()) -> list[Directive]:
    """The directives of one file (blocks nested), as if included in ``context``."""
    tokens = tokenize(text)
    position = 0

    def block(ctx: tuple[str, ...]) -> list[Directive]:
        nonlocal position
        found: list[Directive] = []
        words: list[str] = []
        first_line = 0
        while position < len(tokens):
            token, line, quoted = tokens[position]
            position += 1
            if not quoted and token == ";":
                if words:
                    found.append(Directive(words, ctx, file, first_line))
                words = []
            elif not quoted and token == "{":
                directive = Directive(words, ctx, file, first_line)
                directive.block = block(ctx + (words[0] if words else "",))
                found.append(directive)
                words = []
            elif not quoted and token == "}":
                return found
            else:
                if not words:
                    first_line = line
                words.append(token)
        return found

    return block(context)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """glob(3) as nginx's include uses it: ``*`` and ``?`` never cross a ``/``."""
    out = ""
    for ch in pattern:
        out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch)
    return re.compile(out)


@dataclass
class Walk:
    """What walking the configuration from the main file found."""

    #: The block each include covering ``config_path`` sits in (``("http",)`` is the right one).
    config_contexts: list[tuple[str, ...]] = field(default_factory=list)
    #: Directives of every file other than ``config_path``, flattened, with their context.
    others: list[Directive] = field(default_factory=list)
    #: Whether the dump shows config_path itself (nginx read it).
    config_read: bool = False


def walk_dump(files: dict[str, str], conf_prefix: str, config_path: str) -> Walk:
    """Follow the includes from the main file (the dump's first), noting where config_path is included."""
    result = Walk()
    if not files:
        return result
    main = next(iter(files))
    seen: set[tuple[str, tuple[str, ...]]] = set()

    def visit(file: str, context: tuple[str, ...]) -> None:
        if (file, context) in seen or len(seen) > 2000:
            return
        seen.add((file, context))
        if file == config_path:
            result.config_read = True
        directives = parse_config(files.get(file, ""), file, context)
        flat = _flatten(directives)
        for directive in flat:
            if file != config_path:
                result.others.append(directive)
            if directive.name != "include" or len(directive.words) < 2:
                continue
            pattern = directive.words[1]
            if not pattern.startswith("/"):
                pattern = posixpath.join(conf_prefix, pattern)
            regex = _glob_regex(posixpath.normpath(pattern))
            if regex.fullmatch(config_path):
                result.config_contexts.append(directive.context)
            for candidate in files:
                if regex.fullmatch(candidate):
                    visit(candidate, directive.context)

    visit(main, ())
    return result


def _flatten(directives: list[Directive]) -> list[Directive]:
    out: list[Directive] = []
    for directive in directives:
        out.append(directive)
        if directive.block is not None:
            out += _flatten(directive.block)
    return out


@dataclass(frozen=True)
class OtherServer:
    """A ``server {}`` of another file: its ports and names."""

    ports: tuple[int, ...]
    names: tuple[str, ...]
    where: str


def other_servers(others: list[Directive]) -> list[OtherServer]:
    servers: list[OtherServer] = []
    for directive in others:
        if directive.name != "server" or directive.block is None or directive.context != ("http",):
            continue
        ports: list[int] = []
        names: list[str] = []
        for inner in directive.block:
            if inner.name == "listen" and len(inner.words) > 1:
                port = _listen_port(inner.words[1])
                if port is not None:
                    ports.append(port)
            elif inner.name == "server_name":
                names += [name.lower() for name in inner.words[1:]]
        servers.append(OtherServer(tuple(ports or [80]), tuple(names), directive.where()))
    return servers


def _listen_port(address: str) -> int | None:
    if address.startswith("unix:"):
        return None
    tail = address.rsplit("]", 1)[-1].rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else (80 if not address[:1].isdigit() and ":" not in address else None)


def answers_to(names: tuple[str, ...], wanted: str) -> bool:
    """Whether server_name values ``names`` cover the host ``wanted`` (exact, ``*.`` and ``.`` forms)."""
    wanted = wanted.lower()
    for name in names:
        if name == wanted:
            return True
        if name.startswith("*.") and wanted.endswith(name[1:]):
            return True
        if name.startswith(".") and (wanted == name[1:] or wanted.endswith(name)):
            return True
        if name.endswith(".*") and wanted.startswith(name[:-1]):
            return True
    return False


def defined_names(others: list[Directive]) -> tuple[set[str], set[str]]:
    """(upstream names, map/geo/split_clients variable names) other files define."""
    upstreams = {d.words[1] for d in others if d.name == "upstream" and len(d.words) > 1}
    variables = set()
    for directive in others:
        if directive.name in ("map", "split_clients") and len(directive.words) > 2:
            variables.add(directive.words[2].lstrip("$"))
        elif directive.name == "geo" and len(directive.words) > 1:
            variables.add(directive.words[-1].lstrip("$"))
    return upstreams, variables


# --------------------------------------------------------------------------- facts (the host)


def read_nginx_facts(host: Host, answers: Answers) -> ServerFacts:
    """Read what the nginx of the answers' commands is and loads. Read-only."""
    options = answers.balancer.nginx
    assert options is not None
    commands = nginx_commands(options)
    config_path = options.config_path
    version_text = run_read(host, commands.version, "Asking nginx its version", "nginx")
    version = parse_version(version_text)
    refusals: list[Refusal] = []
    if version is None:
        return ServerFacts("nginx", (0,), version_text.strip()[:200], config_path, None, None,
                           commands.configtest, commands.reload, None, "",
                           (Refusal(f"`{commands.version}` on {host.label} did not print an nginx version:\n"
                                    f"{version_text.strip()[:500]}",
                                    "Check that balancer.nginx.configtest_command runs nginx."),))
    arguments = configure_arguments(version_text)
    prefix = commands.prefix or arguments.get("--prefix") or "/usr/local/nginx"
    main_config = commands.main_config or arguments.get("--conf-path") or "conf/nginx.conf"
    if not main_config.startswith("/"):
        main_config = posixpath.join(prefix, main_config)
    conf_prefix = posixpath.dirname(main_config)

    dump = parse_dump(run_read(host, commands.dump, "Reading nginx's configuration (nginx -T)", "nginx"))
    walk = walk_dump(dump, conf_prefix, config_path)
    contexts = walk.config_contexts
    loads_note = ""
    if ("http",) in contexts:
        loads_note = f"included inside http {{}} of {next(iter(dump), main_config)} (nginx -T)"
    elif contexts:
        where = ", ".join(" > ".join(c) or "the main context" for c in contexts)
        refusals.append(Refusal(
            f"nginx includes {config_path} in {where}, not inside http {{}}: the wizard's file holds upstream, "
            "map and server blocks, which nginx accepts only directly inside http {}. Nothing was changed.",
            "Set balancer.nginx.config_path to a file an include inside http {} covers (conf.d/*.conf on a "
            "stock install), then run the step again."))
    else:
        refusals.append(Refusal(
            f"nginx would not read {config_path}: no include of its configuration ({next(iter(dump), main_config)}, "
            "as `nginx -T` shows it) covers that file. Nothing was changed.",
            "Set balancer.nginx.config_path to a .conf file an include inside http {} covers (on Debian and RHEL "
            "/etc/nginx/conf.d/*.conf), or add `include <folder>/*.conf;` inside http {}, then run the step again."))
    if "--without-http_map_module" in arguments or "--without-http_proxy_module" in arguments:
        refusals.append(Refusal(
            "This nginx was built without the map or proxy module (" + ", ".join(
                a for a in ("--without-http_map_module", "--without-http_proxy_module") if a in arguments)
            + " in `nginx -V`), which the wizard's file needs. Nothing was changed.",
            "Install a standard nginx build (apt-get install nginx, or dnf install nginx)."))
    tls_built = "--with-http_ssl_module" in arguments or "built with OpenSSL" in version_text
    if options.tls is not None and not tls_built:
        refusals.append(Refusal(
            "This nginx has no TLS (no --with-http_ssl_module in `nginx -V`), and the public URL is https. "
            "Nothing was changed.", "Install an nginx built with the SSL module (the distributions' are)."))

    pid_file = next((d.words[1] for d in walk.others if d.name == "pid" and d.context == () and len(d.words) > 1),
                    None) or arguments.get("--pid-path") or "logs/nginx.pid"
    if not pid_file.startswith("/"):
        pid_file = posixpath.join(prefix, pid_file)
    upstreams, variables = defined_names(walk.others)
    current = host.read_bytes(config_path) if host.exists(config_path) else None
    owner = managed_setup(current.decode("utf-8", "replace")) if current is not None else None
    return ServerFacts(
        product="nginx", version=version, version_text=version_text.strip().splitlines()[0],
        config_path=config_path, current=current,
        config_link=host.link_target(config_path) if current is not None else None,
        configtest=commands.configtest, reload=commands.reload, pid_file=pid_file, loads_note=loads_note,
        refusals=tuple(refusals), other_owner=owner if owner and owner != answers.name else None,
        extra={"upstreams": frozenset(upstreams), "variables": frozenset(variables),
               "servers": tuple(other_servers(walk.others)), "dump_command": commands.dump,
               "conf_prefix": conf_prefix, "tls_built": tls_built})


def file_is_read(host: Host, answers: Answers) -> bool:
    """After the write: ``nginx -T`` shows config_path inside http {} (nginx really reads it)."""
    options = answers.balancer.nginx
    assert options is not None
    commands = nginx_commands(options)
    text = run_read(host, commands.dump, "Reading nginx's configuration (nginx -T)", "nginx")
    arguments = configure_arguments(run_read(host, commands.version, "Asking nginx its version", "nginx"))
    prefix = commands.prefix or arguments.get("--prefix") or "/usr/local/nginx"
    main = commands.main_config or arguments.get("--conf-path") or "conf/nginx.conf"
    main = main if main.startswith("/") else posixpath.join(prefix, main)
    walk = walk_dump(parse_dump(text), posixpath.dirname(main), options.config_path)
    return walk.config_read and ("http",) in walk.config_contexts
