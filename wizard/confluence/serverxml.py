"""Reading Tomcat's ``conf/server.xml`` and editing its Connector as a minimal textual change.

Confluence reads its public address from the active ``<Connector>``: behind a
balancer it needs ``proxyName``, ``proxyPort``, ``scheme`` and, for HTTPS,
``secure="true"``. Admins diff, back up and hand-edit this file, so the wizard
never re-serialises it: an XML library would drop comments, reorder or re-quote
attributes and change line endings. Instead a small scanner finds the exact
offsets of each start tag and attribute value, and an edit replaces bytes inside
one start tag only. Every other byte (BOM, CRLF, comments, commented-out
Connectors with their ``keystorePass``, other Connectors) stays as it was.

The scanner is cross-checked against expat on every read: the file must be
well-formed, and both must see the same elements with the same attributes in the
same order. If they ever disagree the file is refused rather than edited on a
guess.

Pure logic: no I/O. Reading bytes from a host and writing them back belongs to
the caller, with :func:`decode_server_xml` and :func:`encode_server_xml` in
between so the bytes round-trip exactly. Values returned here may contain
secrets (``keystorePass`` in ``before_tag`` of an SSL Connector); pass anything
that is stored or shown through :func:`wizard.engine.redact.redact`.

Also here, because the same step needs it: reading ``-Dsynchrony.port`` and
``-Dsynchrony.service.url`` from ``bin/setenv.sh``.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
from dataclasses import dataclass, field
from xml.parsers import expat

from wizard.errors import BadInputError

__all__ = [
    "Attribute",
    "ConnectorEdit",
    "ConnectorFacts",
    "ConnectorTag",
    "ServerXmlError",
    "ServerXmlFacts",
    "decode_server_xml",
    "encode_server_xml",
    "find_connectors",
    "plan_connector_edit",
    "read_facts",
    "read_synchrony_port",
    "read_synchrony_service_url",
]


class ServerXmlError(BadInputError):
    """server.xml (or setenv.sh, or the values asked for) cannot be read or edited safely.

    Raised before anything is changed: the caller's text is never modified.
    """


# --------------------------------------------------------------------------- limits

# A stock server.xml is about 10 kB, some 30 elements, at most six deep; these caps
# are far above any real file and keep a hostile one from costing minutes or
# gigabytes (work is linear, but each element costs a few kilobytes to check).
MAX_SERVER_XML_BYTES = 4 * 1024 * 1024
MAX_SERVER_XML_DEPTH = 200
MAX_SERVER_XML_ELEMENTS = 10_000
_HINT_TOO_BIG = ("Check install_dir for this node (the file read is <install>/conf/server.xml) "
                 "and look at what made it so large; a stock server.xml is about 10 kB. Trim it, "
                 "or make the Connector edit by hand; nothing was changed.")
_HINT_TOO_DEEP = ("A real server.xml nests about six elements deep (Server, Service, Engine, "
                  "Host, Context, ...). Check install_dir for this node and repair the file, or "
                  "make the Connector edit by hand; nothing was changed.")


def _check_size(size: int, unit: str) -> None:
    if size > MAX_SERVER_XML_BYTES:
        raise ServerXmlError(
            f"server.xml is {size:,} {unit}, more than the {MAX_SERVER_XML_BYTES:,} the wizard "
            "reads; it cannot be a normal Tomcat configuration.", _HINT_TOO_BIG)


def _too_many(line: int) -> ServerXmlError:
    return ServerXmlError(
        f"server.xml has more than {MAX_SERVER_XML_ELEMENTS:,} elements (at line {line}); "
        "the wizard refuses such a file.", _HINT_TOO_BIG)


def _too_deep(line: int) -> ServerXmlError:
    return ServerXmlError(
        f"server.xml nests elements more than {MAX_SERVER_XML_DEPTH} deep (at line {line}); "
        "the wizard refuses such a file.", _HINT_TOO_DEEP)


# --------------------------------------------------------------------------- data


class _Lineage:
    """One element of a chain from a tag's parent up to the root, shared by all descendants."""

    __slots__ = ("name", "up")

    def __init__(self, name: str, up: _Lineage | None) -> None:
        self.name = name
        self.up = up

    def names(self) -> tuple[str, ...]:
        """Element names from the root down to this one (at most MAX_SERVER_XML_DEPTH)."""
        names: list[str] = []
        node: _Lineage | None = self
        while node is not None:
            names.append(node.name)
            node = node.up
        return tuple(reversed(names))


@dataclass(frozen=True)
class Attribute:
    """One attribute of a start tag, with where it sits in the text.

    Offsets index the text exactly as given (a leading BOM counts as one
    character), so ``text[value_start:value_end] == raw``.
    """

    name: str
    value: str  # decoded: entities and character references resolved, as Tomcat sees it
    raw: str  # as written between the quotes
    quote: str  # '"' or "'"
    gap_start: int  # where the whitespace before the name begins
    name_start: int
    value_start: int  # first character after the opening quote
    value_end: int  # offset of the closing quote

    @property
    def end(self) -> int:
        """Offset just past the closing quote."""
        return self.value_end + 1


@dataclass(frozen=True)
class ConnectorTag:
    """An active (not commented-out) ``<Connector ...>`` start tag."""

    start: int  # offset of '<'
    end: int  # offset just past '>' (or '/>')
    line: int  # 1-based line of '<'
    attributes: dict[str, Attribute]  # in document order
    self_closing: bool
    # Name of the enclosing <Service> ("" if it has no name); None when the tag
    # is not directly inside a Service, where Tomcat's digester ignores it.
    service: str | None
    # The enclosing element, as a chain of parents: a tuple per tag would cost
    # depth x tags, which a hostile file makes quadratic.
    lineage: _Lineage | None = field(repr=False, compare=False)  # the parent; None at the root

    @property
    def ancestors(self) -> tuple[str, ...]:
        """Element names from the root down to the parent."""
        return self.lineage.names() if self.lineage else ()

    @property
    def in_service(self) -> bool:
        """True when Tomcat will actually create this Connector (Server/Service/Connector)."""
        return self.service is not None

    def value(self, name: str) -> str | None:
        """The decoded value of attribute ``name``, or None when absent."""
        attribute = self.attributes.get(name)
        return attribute.value if attribute else None


@dataclass(frozen=True)
class ConnectorFacts:
    """What an active Connector says, in the terms the wizard cares about."""

    port: int | None  # None when absent or not a number (e.g. "${http.port}")
    port_text: str | None  # as written, for messages
    protocol: str | None
    scheme: str | None
    secure: bool
    ssl_enabled: bool
    proxy_name: str | None
    proxy_port: int | None
    redirect_port: int | None
    service: str | None
    line: int
    attributes: dict[str, str]

    @property
    def is_ajp(self) -> bool:
        """An AJP connector speaks to mod_jk/mod_proxy_ajp, not HTTP."""
        return "ajp" in (self.protocol or "").lower()

    @property
    def is_plain_http(self) -> bool:
        """A listener a balancer can send plain HTTP to: in a Service, no TLS, not AJP."""
        return (self.service is not None and not self.ssl_enabled and not self.is_ajp
                and self.port is not None)


@dataclass(frozen=True)
class ServerXmlFacts:
    """What server.xml says, read-only."""

    connectors: list[ConnectorFacts]  # every active Connector, in document order
    confluence_port: int | None  # the single active plain-HTTP Connector's port, else None
    confluence_port_reason: str  # how it was chosen, or why it could not be
    context_path: str | None  # "" for ROOT, "/wiki", ...; None when it cannot be told
    context_path_reason: str
    shutdown_port: int | None  # <Server port=...>; -1 means disabled
    service_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectorEdit:
    """The planned change to one Connector start tag (or the reason there is none).

    ``new_text == text[:start] + after_tag + text[start + len(before_tag):]``.
    """

    new_text: str
    changed: bool
    reason: str
    port: int  # the port of the Connector edited
    line: int
    start: int  # offset of the tag in both the old and the new text
    before_tag: str  # may hold secrets (keystorePass): redact before storing
    after_tag: str
    # name -> (old value or None when added, new value or None when removed)
    attributes_changed: dict[str, tuple[str | None, str | None]]

    @property
    def before_end(self) -> int:
        """Offset just past the tag in the old text."""
        return self.start + len(self.before_tag)

    @property
    def after_end(self) -> int:
        """Offset just past the tag in the new text."""
        return self.start + len(self.after_tag)


# --------------------------------------------------------------------------- scanner

# XML whitespace is exactly these four; Python's \s also matches \x0b, \x85, ...
_SPACES = re.compile(r"[ \t\r\n]*")
_NAME = re.compile(r"""[^ \t\r\n/>=<"']+""")
_END_TAG = re.compile(r"</([^ \t\r\n/>=<\"']+)[ \t\r\n]*>")
_REFERENCE = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|apos|quot);")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "apos": "'", "quot": '"'}


@dataclass(eq=False)
class _Tag:
    """A start tag as scanned, before it is checked against expat."""

    name: str
    start: int
    end: int
    attributes: list[Attribute]
    self_closing: bool
    # The enclosing start tag (None for the root): a parent pointer, not a tuple of
    # ancestors, so that memory stays linear however deep the file nests.
    parent: _Tag | None = field(repr=False)
    depth: int = 0  # number of ancestors
    lineage: _Lineage | None = field(default=None, repr=False)  # this tag, for its children

    def parent_name(self) -> str | None:
        """The enclosing element's name, or None at the root."""
        return self.parent.name if self.parent else None

    def get(self, name: str) -> str | None:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return None


class _ScanError(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what


def _line_of(text: str, offset: int) -> int:
    """The 1-based line of ``offset``: for a single message, not in a loop (see _lines_of)."""
    return text.count("\n", 0, offset) + 1


def _lines_of(text: str, offsets: list[int]) -> list[int]:
    """The 1-based line of each of ``offsets`` (ascending), counting each newline once.

    Counting from the start of the file for every offset made a file with many
    Connectors quadratic.
    """
    lines, line, previous = [], 1, 0
    for offset in offsets:
        if offset < previous:  # not ascending: start over rather than count backwards
            line, previous = 1, 0
        line += text.count("\n", previous, offset)
        previous = offset
        lines.append(line)
    return lines


def _decode_attribute(raw: str) -> str:
    """The value an XML parser reports for a CDATA attribute written as ``raw``."""
    # XML 1.0 section 3.3.3: line ends are normalised first, then each literal
    # whitespace character becomes a space; character references are not normalised.
    value = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").replace("\n", " ")

    def resolve(match: re.Match[str]) -> str:
        ref = match[1]
        if ref.startswith("#x"):
            return chr(int(ref.removeprefix("#x"), 16))
        if ref.startswith("#"):
            return chr(int(ref[1:]))
        return _PREDEFINED[ref]

    return _REFERENCE.sub(resolve, value)


def _escape_attribute(value: str, quote: str) -> str:
    """``value`` written inside ``quote`` so that a parser reads it back unchanged."""
    value = value.replace("&", "&amp;").replace("<", "&lt;")
    value = value.replace('"', "&quot;") if quote == '"' else value.replace("'", "&apos;")
    # Literal whitespace other than a space would be normalised to a space on reading.
    return value.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")


def _skip_declaration(text: str, start: int) -> int:
    """End of a ``<!DOCTYPE ...>``, skipping its internal subset (which may hold '>')."""
    i, depth, quote = start + 2, 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif text.startswith("<!--", i):
            close = text.find("-->", i + 4)
            if close < 0:
                raise _ScanError(i, "a comment '<!--' is never closed")
            i = close + 2
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == ">" and depth <= 0:
            return i + 1
        i += 1
    raise _ScanError(start, "a '<!' declaration is never closed")


def _read_start_tag(text: str, start: int, parent: _Tag | None) -> _Tag:
    name_match = _NAME.match(text, start + 1)
    if not name_match:
        raise _ScanError(start, "a '<' is not followed by an element name")
    pos = name_match.end()
    attributes: list[Attribute] = []
    while True:
        gap_start = pos
        pos = _SPACES.match(text, pos).end()  # type: ignore[union-attr]  # "*" always matches
        if pos >= len(text):
            raise _ScanError(start, f"the <{name_match[0]}> tag is never closed")
        if text.startswith("/>", pos):
            return _Tag(name_match[0], start, pos + 2, attributes, True, parent)
        if text[pos] == ">":
            return _Tag(name_match[0], start, pos + 1, attributes, False, parent)
        attribute_match = _NAME.match(text, pos)
        if pos == gap_start or not attribute_match:
            raise _ScanError(pos, f"unexpected text in the <{name_match[0]}> tag")
        name_start, pos = pos, attribute_match.end()
        pos = _SPACES.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith("=", pos):
            raise _ScanError(pos, f"attribute {attribute_match[0]} has no '='")
        pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
        if pos >= len(text) or text[pos] not in "\"'":
            raise _ScanError(pos, f"the value of {attribute_match[0]} is not quoted")
        quote = text[pos]
        close = text.find(quote, pos + 1)
        if close < 0 or "<" in text[pos + 1:close]:
            raise _ScanError(pos, f"the value of {attribute_match[0]} is never closed")
        raw = text[pos + 1:close]
        attributes.append(Attribute(
            name=attribute_match[0], value=_decode_attribute(raw), raw=raw, quote=quote,
            gap_start=gap_start, name_start=name_start, value_start=pos + 1, value_end=close))
        pos = close + 1


def _scan(text: str) -> list[_Tag]:
    """Every start tag outside comments, CDATA, processing instructions and declarations."""
    tags: list[_Tag] = []
    stack: list[_Tag] = []
    i = 1 if text.startswith("\ufeff") else 0
    while (lt := text.find("<", i)) >= 0:
        if text.startswith("<!--", lt):
            close = text.find("-->", lt + 4)
            if close < 0:
                raise _ScanError(lt, "a comment '<!--' is never closed")
            i = close + 3
        elif text.startswith("<![CDATA[", lt):
            close = text.find("]]>", lt + 9)
            if close < 0:
                raise _ScanError(lt, "a '<![CDATA[' section is never closed")
            i = close + 3
        elif text.startswith("<?", lt):
            close = text.find("?>", lt + 2)
            if close < 0:
                raise _ScanError(lt, "a '<?' instruction is never closed")
            i = close + 2
        elif text.startswith("<!", lt):
            i = _skip_declaration(text, lt)
        elif text.startswith("</", lt):
            match = _END_TAG.match(text, lt)
            if not match or not stack or stack[-1].name != match[1]:
                closing = f"</{match[1]}>" if match else "an end tag"
                opened = (f"<{stack[-1].name}> opened on line {_line_of(text, stack[-1].start)}"
                          if stack else "no open element")
                raise _ScanError(lt, f"{closing} on line {_line_of(text, lt)} closes {opened}")
            stack.pop()
            i = match.end()
        else:
            parent = stack[-1] if stack else None
            tag = _read_start_tag(text, lt, parent)
            if parent is not None:
                tag.depth = parent.depth + 1
            if tag.depth >= MAX_SERVER_XML_DEPTH:
                raise _too_deep(_line_of(text, lt))
            if len(tags) >= MAX_SERVER_XML_ELEMENTS:
                raise _too_many(_line_of(text, lt))
            tags.append(tag)
            if not tag.self_closing:
                tag.lineage = _Lineage(tag.name, parent.lineage if parent else None)
                stack.append(tag)
            i = tag.end
    return tags


# --------------------------------------------------------------------------- reading

_HINT_MALFORMED = ("Fix server.xml by hand (or restore it from its backup) so Tomcat can "
                   "start, then run the step again; nothing was changed.")


def _expat_elements(body: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every element expat reports, in document order, or ExpatError."""
    # No namespace processing: Tomcat's digester matches names like "Connector" as
    # written, and raw names compare directly with the scanner's.
    parser = expat.ParserCreate(encoding="UTF-8")  # overrides the declaration: we feed UTF-8
    parser.ordered_attributes = True
    elements: list[tuple[str, list[tuple[str, str]]]] = []
    depth = 0

    def start(name: str, attributes: list[str]) -> None:
        nonlocal depth
        depth += 1
        # Raised out of Parse: refuse before the rest of a hostile file is read.
        if depth > MAX_SERVER_XML_DEPTH:
            raise _too_deep(parser.CurrentLineNumber)
        if len(elements) >= MAX_SERVER_XML_ELEMENTS:
            raise _too_many(parser.CurrentLineNumber)
        elements.append((name, list(zip(attributes[::2], attributes[1::2]))))

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(body.encode("utf-8"), True)
    return elements


def _scan_problem(text: str) -> tuple[tuple[_Tag, str] | None, str]:
    """For a file expat refused: a tag with a repeated attribute, or the scanner's own
    account of the problem (e.g. which element is left open), to make the message useful."""
    try:
        tags = _scan(text)
    except _ScanError as exc:
        return None, f" ({exc.what})"
    except ServerXmlError:  # too deep or too many elements: expat's own message will do
        return None, ""
    for tag in tags:
        seen: set[str] = set()
        for attribute in tag.attributes:
            if attribute.name in seen:
                return (tag, attribute.name), ""
            seen.add(attribute.name)
    return None, ""


def _read(text: str) -> list[_Tag]:
    """The start tags of a well-formed server.xml, checked against expat."""
    if not isinstance(text, str):
        raise ServerXmlError("server.xml must be given as text, not bytes.",
                             "Decode it first with decode_server_xml().")
    _check_size(len(text), "characters")
    body = text.removeprefix("\ufeff")
    try:
        elements = _expat_elements(body)
    except UnicodeEncodeError as exc:
        raise ServerXmlError(
            f"server.xml holds a character that is not valid text (offset {exc.start}).",
            _HINT_MALFORMED) from None
    except expat.ExpatError as exc:
        duplicate, detail = _scan_problem(text)
        message = expat.errors.messages.get(exc.code, str(exc))
        if duplicate and message == expat.errors.XML_ERROR_DUPLICATE_ATTRIBUTE:
            tag, name = duplicate
            raise ServerXmlError(
                f"server.xml is not well-formed: the <{tag.name}> on line "
                f"{_line_of(text, tag.start)} has the attribute {name} more than once.",
                f"Keep one {name}=\"...\" on that tag (Tomcat refuses to start otherwise), "
                "then run the step again; nothing was changed.") from None
        raise ServerXmlError(
            f"server.xml is not well-formed XML: {message} "
            f"at line {exc.lineno}, column {exc.offset + 1}{detail}.",
            _HINT_MALFORMED) from None
    if elements[0][0] != "Server":
        raise ServerXmlError(
            f"This is not a Tomcat server.xml: its root element is <{elements[0][0]}>, "
            "not <Server>.",
            "Check install_dir for this node: the file read is <install>/conf/server.xml.")
    try:
        tags = _scan(text)
    except _ScanError as exc:
        raise _inconsistent(text, exc.offset, exc.what) from None
    for index, (name, attributes) in enumerate(elements):
        if index >= len(tags):
            raise _inconsistent(text, len(text), f"the parser sees more elements (<{name}>)")
        tag = tags[index]
        if tag.name != name or [(a.name, a.value) for a in tag.attributes] != attributes:
            raise _inconsistent(text, tag.start, f"they differ at <{tag.name}>")
    if len(tags) != len(elements):
        raise _inconsistent(text, tags[len(elements)].start, "the editor sees more elements")
    return tags


def _inconsistent(text: str, offset: int, what: str) -> ServerXmlError:
    # Both readers accept the same well-formed files; if they ever disagree the
    # offsets cannot be trusted, and a guessed edit could break Tomcat.
    return ServerXmlError(
        f"server.xml could not be read unambiguously near line {_line_of(text, offset)}: "
        f"the XML parser and the editor disagree ({what}).",
        "If the file declares entities in a <!DOCTYPE>, make the Connector edit by hand; "
        "otherwise report this as a bug with the file (secrets masked). Nothing was changed.")


def _service_of(tag: _Tag) -> str | None:
    # Tomcat's digester only builds Connectors matched by Server/Service/Connector.
    service = tag.parent
    if tag.depth == 2 and service and service.name == "Service" and service.parent \
            and service.parent.name == "Server":
        return service.get("name") or ""
    return None


def _connector_tags(text: str, tags: list[_Tag]) -> list[ConnectorTag]:
    connectors = [tag for tag in tags if tag.name == "Connector"]
    lines = _lines_of(text, [tag.start for tag in connectors])
    return [
        ConnectorTag(
            start=tag.start, end=tag.end, line=line,
            attributes={a.name: a for a in tag.attributes}, self_closing=tag.self_closing,
            service=_service_of(tag), lineage=tag.parent.lineage if tag.parent else None)
        for tag, line in zip(connectors, lines)
    ]


def find_connectors(text: str) -> list[ConnectorTag]:
    """Every active ``<Connector>`` start tag of server.xml, in document order.

    Connectors inside comments or CDATA are not included. ``text`` may start
    with a BOM ('\\ufeff'); offsets count it. Raises ServerXmlError when the text
    is not a well-formed server.xml.
    """
    return _connector_tags(text, _read(text))


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if re.fullmatch(r"-?[0-9]{1,6}", value) else None


def _true(value: str | None) -> bool:
    # Tomcat sets boolean properties with Boolean.valueOf: case-insensitive "true".
    return (value or "").strip().lower() == "true"


def _connector_facts(tag: ConnectorTag) -> ConnectorFacts:
    return ConnectorFacts(
        port=_int_or_none(tag.value("port")), port_text=tag.value("port"),
        protocol=tag.value("protocol"), scheme=tag.value("scheme"),
        secure=_true(tag.value("secure")), ssl_enabled=_true(tag.value("SSLEnabled")),
        proxy_name=tag.value("proxyName"), proxy_port=_int_or_none(tag.value("proxyPort")),
        redirect_port=_int_or_none(tag.value("redirectPort")), service=tag.service,
        line=tag.line, attributes={name: a.value for name, a in tag.attributes.items()})


def _ports(connectors: list[ConnectorFacts]) -> str:
    return ", ".join(c.port_text if c.port_text is not None else "(no port)" for c in connectors)


def _choose_context(text: str, tags: list[_Tag]) -> tuple[str | None, str]:
    contexts = [t for t in tags if t.name == "Context" and t.parent_name() == "Host"]
    # Confluence 6+ ships a second Context for the Synchrony proxy webapp; it is
    # not where Confluence lives.
    candidates = [t for t in contexts
                  if "synchrony-proxy" not in (t.get("docBase") or "") + (t.get("path") or "")]
    named = [t for t in candidates
             if (t.get("docBase") or "").replace("\\", "/").rstrip("/").endswith("confluence")]
    chosen = named if len(named) == 1 else candidates
    if not contexts:
        return None, "server.xml has no <Context> inside a <Host>"
    if len(chosen) != 1:
        paths = ", ".join(repr(t.get("path")) for t in candidates)
        return None, f"several <Context> elements could be Confluence's ({paths})"
    path = chosen[0].get("path")
    if path is None:
        return None, "the Confluence <Context> has no path attribute"
    # Tomcat treats "/" as the ROOT context, the same as "".
    path = "" if path.strip() in ("", "/") else path.strip().rstrip("/")
    line = _line_of(text, chosen[0].start)
    return path, f"<Context path=\"{chosen[0].get('path')}\"> on line {line}"


def read_facts(text: str) -> ServerXmlFacts:
    """What server.xml says: its active Connectors, Confluence's port and context path.

    ``confluence_port`` is the port of the single active plain-HTTP Connector
    (inside a Service, no ``SSLEnabled="true"``, not AJP). With none or several
    it is None and ``confluence_port_reason`` says why, so the caller can ask
    for ``confluence_port`` in the answers. Raises ServerXmlError when the text
    is not a well-formed server.xml.
    """
    tags = _read(text)
    connectors = [_connector_facts(tag) for tag in _connector_tags(text, tags)]
    http = [c for c in connectors if c.is_plain_http]
    if len(http) == 1:
        port: int | None = http[0].port
        port_reason = f"the only active HTTP Connector (line {http[0].line})"
    elif not http:
        port = None
        found = f"active Connectors: ports {_ports(connectors)}" if connectors else \
            "no active Connector at all"
        port_reason = f"no active plain-HTTP Connector in a <Service> ({found})"
    else:
        port = None
        port_reason = (f"several active HTTP Connectors (ports {_ports(http)}); "
                       "set confluence_port in the answers")
    context_path, context_reason = _choose_context(text, tags)
    server = tags[0]
    return ServerXmlFacts(
        connectors=connectors, confluence_port=port, confluence_port_reason=port_reason,
        context_path=context_path, context_path_reason=context_reason,
        shutdown_port=_int_or_none(server.get("port")),
        service_names=[t.get("name") or "" for t in tags
                       if t.name == "Service" and t.depth == 1])


# --------------------------------------------------------------------------- editing

# One DNS label; underscores are not valid in host names but appear in internal
# names and Tomcat accepts them, so refusing them would only get in the way.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_ORDER = ("proxyName", "proxyPort", "scheme", "secure")


def _check_inputs(port: int | None, proxy_name: str, proxy_port: int, scheme: str) -> None:
    hint_name = ("Give only the public host name, e.g. confluence.example.com; the scheme "
                 "and port come from the public URL.")
    if not isinstance(proxy_name, str) or not proxy_name:
        raise ServerXmlError("proxy_name is empty: the Connector needs the public host name.",
                             hint_name)
    if "://" in proxy_name:
        raise ServerXmlError(f"proxy_name {proxy_name!r} has a scheme; it must be a host name.",
                             hint_name)
    if "/" in proxy_name:
        raise ServerXmlError(f"proxy_name {proxy_name!r} has a path; it must be a host name.",
                             hint_name)
    if ":" in proxy_name:
        raise ServerXmlError(f"proxy_name {proxy_name!r} has a port; it must be a host name.",
                             "Put the port in proxy_port and only the host in proxy_name.")
    labels = proxy_name.split(".")
    if len(proxy_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ServerXmlError(f"proxy_name {proxy_name!r} is not a valid host name.", hint_name)
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(proxy_name)
        except ValueError:
            raise ServerXmlError(f"proxy_name {proxy_name!r} is neither a host name nor an "
                                 "IPv4 address.", hint_name) from None
    for what, value in (("proxy_port", proxy_port), ("port", port)):
        if what == "port" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ServerXmlError(f"{what} {value!r} is not a TCP port (1 to 65535).",
                                 "Use 443 behind HTTPS or 80 behind HTTP for proxy_port."
                                 if what == "proxy_port" else
                                 "Set confluence_port in the answers to the Connector's port.")
    if scheme not in ("http", "https"):
        raise ServerXmlError(f"scheme {scheme!r} is not 'http' or 'https'.",
                             "Use the scheme of the public URL users type, in lower case.")


def _choose_connector(text: str, port: int | None) -> tuple[ConnectorTag, list[ConnectorTag]]:
    """The one active Connector to edit, and every Connector (to compare after the edit)."""
    connectors = _connector_tags(text, _read(text))
    active = [c for c in connectors if c.in_service]
    facts = [_connector_facts(c) for c in active]
    if port is None:
        http = [f for f in facts if f.is_plain_http]
        if not http:
            found = f"ports {_ports(facts)}" if facts else "none: every Connector is commented out"
            raise ServerXmlError(
                "server.xml has no active plain-HTTP Connector to edit "
                f"(active Connectors: {found}).",
                "Set confluence_port in the answers to the port the balancer targets, or "
                "enable an HTTP Connector in server.xml first; nothing was changed.")
        if len({f.port for f in http}) > 1:
            raise ServerXmlError(
                f"server.xml has several active HTTP Connectors (ports {_ports(http)}); "
                "the wizard cannot tell which one the balancer targets.",
                "Set confluence_port for this node in the answers to one of "
                f"{_ports(http)}; nothing was changed.")
        port = http[0].port
    on_port = [c for c, f in zip(active, facts) if f.port == port]
    if not on_port:
        found = f"ports {_ports(facts)}" if facts else "none: every Connector is commented out"
        ignored = [c for c in connectors
                   if not c.in_service and _int_or_none(c.value("port")) == port]
        note = (f" (the <Connector> on line {ignored[0].line} is outside any <Service>, "
                "so Tomcat ignores it)") if ignored else ""
        raise ServerXmlError(
            f"server.xml has no active Connector on port {port}{note}; active Connectors: {found}.",
            "Set confluence_port in the answers to one of those ports, or uncomment the "
            f"Connector for port {port} in server.xml; nothing was changed.")
    if len(on_port) > 1:
        lines = ", ".join(str(c.line) for c in on_port)
        raise ServerXmlError(
            f"server.xml has {len(on_port)} active Connectors on port {port} (lines {lines}); "
            "Tomcat cannot bind the port twice.",
            "Comment out or remove the extra Connector so one remains on that port, "
            "then run the step again; nothing was changed.")
    return on_port[0], connectors


def _newline_and_indent(gap: str) -> str:
    """The line break (CRLF, LF or CR, as the tag has it) and indentation of ``gap``'s last line."""
    cut = max(gap.rfind("\n"), gap.rfind("\r"))
    newline = "\r\n" if gap[cut] == "\n" and gap[cut - 1:cut] == "\r" else gap[cut]
    return newline + gap[cut + 1:]


# Longer gaps are not layout to copy: repeating one for each new attribute would
# multiply a hostile file's size.
_MAX_GAP = 256


def _separators(text: str, attributes: list[Attribute], count: int) -> list[str]:
    """What goes before each of ``count`` new attributes, matching the tag's layout."""
    if not attributes:
        return [" "] * count
    gaps = [text[a.gap_start:a.name_start] for a in attributes]
    if any(len(gap) > _MAX_GAP for gap in gaps):
        return [" "] * count
    breaks = [("\n" in g or "\r" in g) for g in gaps]
    one_per_line = all(breaks[1:]) and (len(attributes) > 1 or breaks[0])
    if one_per_line:
        return [_newline_and_indent(gaps[-1])] * count
    if any(breaks):
        # Wrapped, several to a line (the stock layout): one new line at the
        # indentation of the last one, like Atlassian's documented examples.
        last_break = [g for g, b in zip(gaps, breaks) if b][-1]
        return [_newline_and_indent(last_break)] + [" "] * (count - 1)
    return [gaps[-1]] * count  # all on one line: the same spacing as the others


def plan_connector_edit(text: str, *, port: int | None, proxy_name: str, proxy_port: int,
                        scheme: str) -> ConnectorEdit:
    """The minimal change that points one active Connector at the balancer.

    Picks the active Connector on ``port`` (when None: the single active plain-HTTP
    Connector) and sets ``proxyName``, ``proxyPort`` and ``scheme``; adds
    ``secure="true"`` for https and removes ``secure`` for http (Tomcat's default
    is false). Existing attributes keep their place and quotes, only the value
    changes; new ones go after the last attribute in the tag's layout. Every
    character outside the tag is kept. When nothing needs to change,
    ``changed`` is False, ``new_text is text`` and ``reason`` says what is there.

    Raises ServerXmlError, with the text untouched, for bad values, a file that
    is not a well-formed server.xml, or no single Connector to edit.
    """
    _check_inputs(port, proxy_name, proxy_port, scheme)
    tag, connectors = _choose_connector(text, port)
    chosen_port = _int_or_none(tag.value("port"))
    assert chosen_port is not None  # chosen by its port
    desired = {"proxyName": proxy_name, "proxyPort": str(proxy_port), "scheme": scheme}
    if scheme == "https":
        desired["secure"] = "true"

    attributes = list(tag.attributes.values())
    ops: list[tuple[int, int, str]] = []
    changes: dict[str, tuple[str | None, str | None]] = {}
    added: list[tuple[str, str]] = []
    for name in _ORDER:
        current = tag.attributes.get(name)
        if name not in desired:
            if current is not None:  # only "secure", behind plain HTTP
                ops.append((current.gap_start, current.end, ""))
                changes[name] = (current.value, None)
            continue
        wanted = desired[name]
        if current is None:
            added.append((name, wanted))
            changes[name] = (None, wanted)
        elif current.value != wanted and not (name == "secure" and _true(current.value)):
            ops.append((current.value_start, current.value_end,
                        _escape_attribute(wanted, current.quote)))
            changes[name] = (current.value, wanted)

    have = (f"proxyName={proxy_name}, proxyPort={proxy_port}, scheme={scheme}"
            + (", secure=true" if scheme == "https" else ""))
    tag_text = text[tag.start:tag.end]
    if not changes:
        return ConnectorEdit(
            new_text=text, changed=False,
            reason=f"already has {have} (Connector on port {chosen_port}, line {tag.line})",
            port=chosen_port, line=tag.line, start=tag.start, before_tag=tag_text,
            after_tag=tag_text, attributes_changed={})

    if added:
        quote = attributes[-1].quote if attributes else '"'
        anchor = attributes[-1].end if attributes else tag.start + len("<Connector")
        separators = _separators(text, attributes, len(added))
        ops.append((anchor, anchor, "".join(
            f"{sep}{name}={quote}{_escape_attribute(value, quote)}{quote}"
            for sep, (name, value) in zip(separators, added))))
    # Apply in document order; a removal of the last attribute ends exactly where
    # the insertion point is, so sorting by (start, end) keeps them in sequence.
    pieces, cursor = [], tag.start
    for start, end, replacement in sorted(ops, key=lambda op: (op[0], op[1])):
        pieces += [text[cursor:start], replacement]
        cursor = end
    pieces.append(text[cursor:tag.end])
    after_tag = "".join(pieces)
    new_text = text[:tag.start] + after_tag + text[tag.end:]

    _check_result(connectors, new_text, tag, changes)
    described = "; ".join(
        f"add {name}={new}" if old is None else
        f"remove {name} (was {old})" if new is None else
        f"change {name} {old} -> {new}"
        for name, (old, new) in changes.items())
    return ConnectorEdit(
        new_text=new_text, changed=True,
        reason=f"Connector on port {chosen_port} (line {tag.line}): {described}",
        port=chosen_port, line=tag.line, start=tag.start, before_tag=tag_text,
        after_tag=after_tag, attributes_changed=changes)


def _check_result(before: list[ConnectorTag], new_text: str, tag: ConnectorTag,
                  changes: dict[str, tuple[str | None, str | None]]) -> None:
    """Re-read the edited text: the same Connectors, and only the intended values differ.

    Cheap insurance: the edit is built from offsets, and a wrong offset must be a
    refusal, never a broken server.xml on a production node.
    """
    expected = {name: a.value for name, a in tag.attributes.items()}
    for name, (_old, new) in changes.items():
        if new is None:
            expected.pop(name, None)
        else:
            expected[name] = new
    try:
        after = find_connectors(new_text)
    except ServerXmlError as exc:
        raise ServerXmlError(f"The planned Connector edit would break server.xml: {exc.message}",
                             "Report this as a bug; make the edit by hand meanwhile. "
                             "Nothing was changed.") from None
    index = [c.start for c in before].index(tag.start)
    edited = after[index] if len(after) == len(before) else None
    def values(connector: ConnectorTag) -> dict[str, str]:
        return {name: a.value for name, a in connector.attributes.items()}

    others_kept = len(after) == len(before) and all(
        values(old) == values(new)
        for i, (old, new) in enumerate(zip(before, after)) if i != index)
    if edited is None or edited.start != tag.start or not others_kept or \
            values(edited) != expected:
        raise ServerXmlError(
            "The planned Connector edit did not read back as intended.",
            "Report this as a bug; make the edit by hand meanwhile. Nothing was changed.")


# --------------------------------------------------------------------------- bytes

# Longest first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARATION = re.compile(
    rb"""<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])[^"']*\1"""
    rb"""[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2""")


def _declared_encoding(head: bytes) -> str | None:
    match = _DECLARATION.match(head)
    return match[3].decode("ascii") if match else None


def decode_server_xml(data: bytes) -> tuple[str, str]:
    """server.xml's bytes as text, and the Python codec to write it back with.

    A byte order mark decides the encoding and stays in the text as '\\ufeff';
    otherwise the XML declaration's ``encoding`` does (UTF-8 when absent).
    ``encode_server_xml(*decode_server_xml(data)) == data`` for every input that
    is accepted; anything that would not round-trip exactly is refused.
    """
    hint = ("Save server.xml as UTF-8 (or in the encoding its <?xml ...?> line names) "
            "and run the step again; nothing was changed.")
    _check_size(len(data), "bytes")
    bom_encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if bom_encoding:
        # The BOM's own codec keeps U+FEFF as the first character, so it is
        # written back by the same codec.
        encoding = bom_encoding
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ServerXmlError(f"server.xml starts with a {encoding} byte order mark but is "
                                 f"not valid {encoding} (byte {exc.start}).", hint) from None
        declared = _declared_encoding(text[1:200].encode("ascii", "replace"))
        if declared:
            try:
                declared_name = codecs.lookup(declared).name
            except LookupError:
                declared_name = declared
            # "UTF-16" names the family; the BOM tells the byte order.
            allowed = {encoding, encoding.removesuffix("-le").removesuffix("-be")}
            if declared_name not in allowed:
                raise ServerXmlError(
                    f"server.xml has a {encoding} byte order mark but declares "
                    f"encoding=\"{declared}\".", hint)
    else:
        declared = _declared_encoding(data[:200])
        encoding = "utf-8"
        if declared:
            try:
                encoding = codecs.lookup(declared).name
            except LookupError:
                raise ServerXmlError(f"server.xml declares encoding=\"{declared}\", which this "
                                     "system does not know.", hint) from None
            if "<?xml".encode(encoding, "replace") != b"<?xml":
                # A declaration readable as ASCII contradicts UTF-16/32 without a BOM.
                raise ServerXmlError(f"server.xml declares encoding=\"{declared}\" but is "
                                     "written in an ASCII-compatible encoding.", hint)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ServerXmlError(f"server.xml is not valid {encoding} (byte {exc.start}).",
                                 hint) from None
    if text.encode(encoding) != data:
        # Some codecs map several byte sequences to one character; writing back
        # would then change bytes the wizard never meant to touch.
        raise ServerXmlError(f"server.xml does not round-trip through {encoding} byte for byte.",
                             hint)
    return text, encoding


def encode_server_xml(text: str, encoding: str) -> bytes:
    """``text`` as bytes in ``encoding`` (as returned by :func:`decode_server_xml`)."""
    try:
        return text.encode(encoding)
    except LookupError:
        raise ServerXmlError(f"Unknown encoding {encoding!r} for server.xml.",
                             "Pass the encoding decode_server_xml() returned.") from None
    except UnicodeEncodeError as exc:
        raise ServerXmlError(
            f"server.xml is written in {encoding}, which cannot hold the character "
            f"{text[exc.start]!r} at offset {exc.start}.",
            "Use only characters the file's encoding can hold (host names are ASCII), "
            "or convert server.xml to UTF-8; nothing was changed.") from None


# --------------------------------------------------------------------------- setenv.sh


def _active_shell(text: str) -> str:
    """``text`` with shell comments removed (quote-aware), so commented options do not count."""
    out: list[str] = []
    i, quote, n = 0, "", len(text)
    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\" and i + 1 < n:  # an escaped character, in or out of double quotes
            out.append(text[i:i + 2])
            i += 2
            continue
        elif quote == '"':
            if ch == '"':
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\r\n;&|()"):
            end = text.find("\n", i)
            i = n if end < 0 else end  # keep the newline itself
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _last_option(setenv_text: str, name: str) -> str | None:
    """The value of the last active ``-D<name>=...`` in setenv.sh, quotes removed."""
    pattern = re.compile(r"(?<![\w.-])-D" + re.escape(name)
                         + r"""=(?:"([^"]*)"|'([^']*)'|([^\s"'\\;]*))""")
    matches = list(pattern.finditer(_active_shell(setenv_text)))
    if not matches:
        return None
    last = matches[-1]
    return next(group for group in last.groups() if group is not None)


def read_synchrony_port(setenv_text: str) -> int | None:
    """The port from the last active ``-Dsynchrony.port=NNNN`` in bin/setenv.sh, or None.

    Lines commented out with '#' do not count. Raises ServerXmlError when the
    last one is not a port number (e.g. a shell variable the wizard cannot resolve).
    """
    value = _last_option(setenv_text, "synchrony.port")
    if value is None:
        return None
    port = _int_or_none(value)
    if port is None or not 1 <= port <= 65535:
        raise ServerXmlError(
            f"bin/setenv.sh sets -Dsynchrony.port={value}, which is not a port number.",
            "Set synchrony_port for this node in the answers.")
    return port


def read_synchrony_service_url(setenv_text: str) -> str | None:
    """The value of the last active ``-Dsynchrony.service.url=...`` in bin/setenv.sh, or None."""
    return _last_option(setenv_text, "synchrony.service.url")
