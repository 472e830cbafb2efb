"""bin/setenv.sh: the Synchrony options this setup adds, as minimal edits (pure).

Which JVM options a Synchrony mode needs on every Confluence node (Atlassian's "Possible
Confluence and Synchrony configurations"):

* ``standalone``: ``-Dsynchrony.service.url=<public origin>/synchrony/v1``, so the editor
  finds the separate Synchrony cluster behind the balancer;
* ``internal-proxy``: ``-Dsynchrony.proxy.enabled=true``, else the editor first tries
  ``/synchrony`` on every load;
* ``direct``: none of them.

Each option the wizard adds is one line of Atlassian's own style, marked with the setup's
name, inserted after the file's last top-level ``CATALINA_OPTS=`` assignment; every other
byte of the file stays as it was (tests/unit/test_setenv.py checks this with generated
files). What the wizard removes is only a line it added itself (its marker, its form). An
option the admin already sets is left alone (the same value: nothing to do; another value
of the proxy flag: said in the plan; another service URL: refused, since the editor would
go somewhere else than the balancer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wizard.answers_model import Answers
from wizard.errors import BadInputError

SERVICE_URL = "synchrony.service.url"
PROXY_ENABLED = "synchrony.proxy.enabled"
#: The options this module may add or remove, and nothing else.
OPTIONS = (SERVICE_URL, PROXY_ENABLED)

MARKER = "# added by confluence-lb-wizard for the setup {setup}"
# What a value the wizard writes may hold: a URL built from checked parts, or "true".
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._:/\[\]-]+")
_OURS = re.compile(
    r'^CATALINA_OPTS="-D(?P<name>synchrony\.service\.url|synchrony\.proxy\.enabled)=(?P<value>[A-Za-z0-9._:/\[\]-]+)'
    r' \$\{CATALINA_OPTS\}"  # added by confluence-lb-wizard for the setup (?P<setup>[A-Za-z0-9._-]+)\r?$')
_ASSIGNMENT = re.compile(r"^(?:export[ \t]+)?CATALINA_OPTS=")


class SetenvError(BadInputError):
    """bin/setenv.sh is not what the wizard expects to edit; nothing was changed."""


@dataclass(frozen=True)
class SetenvEdit:
    """The planned text of setenv.sh and what changes in it."""

    new_text: str
    added: tuple[tuple[str, str], ...] = ()    # (option, value) inserted
    removed: tuple[tuple[str, str], ...] = ()  # (option, value) of the wizard's own lines taken out
    #: Why an option was left as it is (the admin sets it already, ...), for the plan.
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        parts = [f"add -D{name}={value}" for name, value in self.added]
        parts += [f"remove -D{name}={value} (added by this setup)" for name, value in self.removed]
        return ", ".join(parts)


def service_url(answers: Answers) -> str:
    """Where the editor reaches a standalone Synchrony: the balancer's ``/synchrony/v1``.

    The balancer serves /synchrony at the root of the public address whatever Confluence's
    context path (as it does for direct routing), so the URL is the public origin's, not
    ``public_url`` + ``/synchrony/v1``. With a context path the longer URL would break the
    editor on machines the wizard does not manage: each standalone Synchrony machine checks
    the JWT audience Confluence derives from this URL against its own
    ``-Dsynchrony.service.url`` (``<origin>/synchrony`` as Atlassian's setup guide has it;
    a mismatch is Synchrony's ``jwt/invalid-aud``), and serves under its own
    ``synchrony.context.path`` (``/synchrony``), which an ALB cannot rewrite a path to.
    """
    url = answers.public_url
    netloc = url.host if url.default_port else f"{url.host}:{url.port}"
    if ":" in url.host:  # IPv6
        netloc = f"[{url.host}]" if url.default_port else f"[{url.host}]:{url.port}"
    return f"{url.scheme}://{netloc}/synchrony/v1"


def wanted_options(answers: Answers) -> dict[str, str]:
    """The options this Synchrony mode needs in every node's setenv.sh."""
    mode = answers.synchrony.mode
    if mode == "standalone":
        return {SERVICE_URL: service_url(answers)}
    if mode == "internal-proxy":
        return {PROXY_ENABLED: "true"}
    return {}


def option_line(setup: str, name: str, value: str) -> str:
    """The line the wizard inserts for ``-D<name>=<value>`` (without its newline)."""
    assert name in OPTIONS and _SAFE_VALUE.fullmatch(value), (name, value)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", setup), setup
    return f'CATALINA_OPTS="-D{name}={value} ${{CATALINA_OPTS}}"  {MARKER.format(setup=setup)}'


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Line:
    start: int      # offset of the line's first character
    end: int        # offset after its newline (or the end of the file)
    text: str       # without its newline
    top_level: bool  # it starts outside quotes and continuations


def _lines(text: str) -> list[_Line]:
    """The file's lines, each marked whether it starts a new shell command (not inside a quote,
    a ``$(...)`` or after a backslash continuation), so an insertion never lands inside one."""
    lines: list[_Line] = []
    quote = ""
    depth = 0  # open $( ... ) or ${ ... } outside quotes
    continued = False
    position = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        top = not quote and depth == 0 and not continued
        lines.append(_Line(position, position + len(raw), body, top))
        quote, depth, continued = _scan(body, quote, depth)
        position += len(raw)
    if quote or depth or continued:
        raise SetenvError(
            "it ends inside a quote, a $( ... ) or a backslash continuation, so the wizard cannot tell "
            "where a new line would start.",
            "Check the file with `sh -n bin/setenv.sh`, fix it, then run the step again; nothing was changed.")
    return lines


def _scan(line: str, quote: str, depth: int) -> tuple[str, int, bool]:
    """The quote and nesting state after ``line``, and whether it ends with a continuation."""
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\":
            if i + 1 >= n:
                return quote, depth, True
            i += 2
            continue
        elif quote == '"':
            if ch == '"':
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|()"):
            break
        elif ch == "$" and i + 1 < n and line[i + 1] in "({":
            depth += 1
            i += 2
            continue
        elif ch in ")}" and depth:
            depth -= 1
        i += 1
    return quote, depth, False


def read_option(text: str, name: str) -> str | None:
    """The value of the last active ``-D<name>=...`` in setenv.sh (commented lines do not count)."""
    from wizard.confluence.serverxml import _last_option

    return _last_option(text, name)


def decode_setenv(data: bytes) -> str:
    """setenv.sh as text; refused when it is not a text file the wizard can keep byte for byte."""
    if b"\x00" in data:
        raise SetenvError("it holds NUL bytes: it is not a shell script.",
                          "Check that nodes[].install_dir is Confluence's installation folder; nothing was changed.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SetenvError(f"it is not UTF-8 (byte {exc.start}), so it cannot be edited keeping every other byte.",
                          "Convert it to UTF-8 (or ASCII), or add the option by hand; nothing was changed.") from None


# --------------------------------------------------------------------------- the edit


def plan_setenv_edit(text: str, *, setup: str, wanted: dict[str, str]) -> SetenvEdit:
    """The minimal edit that leaves exactly ``wanted`` among this setup's own lines (pure).

    SetenvError when the file is not what the wizard expects: no top-level ``CATALINA_OPTS=``
    to insert after, an unfinished quote, or (standalone) another service URL set by the admin.
    """
    lines = _lines(text)
    ours = [(line, match) for line in lines if line.top_level and (match := _OURS.match(line.text))
            and match["setup"] == setup]
    removed: list[tuple[str, str]] = []
    kept: set[tuple[str, str]] = set()
    drop: list[_Line] = []
    for line, match in ours:
        key = (match["name"], match["value"])
        if wanted.get(key[0]) == key[1] and key not in kept:
            kept.add(key)
        else:
            drop.append(line)
            removed.append(key)
    new_text = text
    for line in reversed(drop):
        start, end = line.start, line.end
        if end == len(text) and not text.endswith("\n") and start > 0:
            start -= 2 if text[start - 2:start] == "\r\n" else 1  # the last line: take the newline before it
        new_text = new_text[:start] + new_text[end:]
    without_ours = "".join(line.text + "\n" for line in lines if not (line.top_level and _OURS.match(line.text)))
    added: list[tuple[str, str]] = []
    notes: list[str] = []
    for name, value in wanted.items():
        if (name, value) in kept:
            notes.append(f"-D{name}={value} is already there (added by this setup)")
            continue
        admins = read_option(without_ours, name)
        if admins is not None:
            if admins == value:
                notes.append(f"-D{name}={value} is already set by the admin: left as it is")
                continue
            if name == SERVICE_URL:
                raise SetenvError(
                    f"it already sets -D{name}={admins}, but these answers need {value} (the balancer's "
                    "/synchrony/v1): the editor would not reach the Synchrony cluster behind the balancer.",
                    f"Change that option to {value} (or remove it and let the wizard add it), then run "
                    "`apply --only connector` again; nothing was changed.")
            notes.append(f"-D{name}={admins} is set by the admin: left as it is (this setup would set {value})")
            continue
        new_text = _insert(new_text, option_line(setup, name, value))
        added.append((name, value))
    return SetenvEdit(new_text, tuple(added), tuple(removed), tuple(notes))


def _insert(text: str, line: str) -> str:
    """``text`` with ``line`` inserted after its last top-level ``CATALINA_OPTS=`` assignment."""
    lines = _lines(text)
    anchors = [index for index, item in enumerate(lines) if item.top_level and _ASSIGNMENT.match(item.text)]
    if not anchors:
        raise SetenvError(
            "it has no top-level CATALINA_OPTS= line (Confluence's own setenv.sh sets CATALINA_OPTS), so the "
            "wizard does not know where an option would take effect.",
            "Check that nodes[].install_dir is Confluence's installation folder, or add the option to "
            "CATALINA_OPTS by hand; nothing was changed.")
    anchor = anchors[-1]
    # After the whole command the assignment starts (a quote may span lines): the next top-level line.
    following = next((item for item in lines[anchor + 1:] if item.top_level), None)
    newline = "\r\n" if text[lines[anchor].start:lines[anchor].end].endswith("\r\n") else "\n"
    if following is not None:
        return text[:following.start] + line + newline + text[following.start:]
    if text.endswith("\n"):
        return text + line + newline
    return text + newline + line
