"""The value checks of the answers file: each one a Python check and its JSON Schema, made together.

A :class:`Value` pairs the function that checks one answer (and says, for the
admin, what is wrong) with the JSON Schema fragment that editors and the
``schema`` verb use. Both are built by the same factory from the same
parameters (the same regular expression, the same range, the same choices), so
they cannot drift apart. Where the Python check knows more than JSON Schema can
say (a port range inside a URL, an IP address's own syntax), the schema holds
the structural part and :data:`Value.refines` says what the check adds.

Values reach shell command lines, Apache/nginx/HAProxy directives and XML
attributes, so the checks here are strict on purpose: paths and names are
limited to characters that need no quoting anywhere they land, and nothing an
answer holds can end a line.
"""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ANSWERS_VERSION = 1


class Bad(Exception):
    """A value failed a check; the message says what is wrong and what is expected."""


@dataclass(frozen=True)
class Value:
    """One kind of answer: ``check`` turns a raw value into the checked one or raises :class:`Bad`."""

    check: Callable[[Any], Any]
    schema: Mapping[str, Any]
    #: What the Python check verifies beyond ``schema`` (said in the schema's ``$comment``).
    refines: str = ""

    def __call__(self, value: Any) -> Any:
        return self.check(value)

    def json_schema(self) -> dict[str, Any]:
        fragment = dict(self.schema)
        if self.refines:
            fragment["$comment"] = f"plan and apply also check: {self.refines}"
        return fragment


def type_name(value: Any) -> str:
    """How a value reads in a message: "the number 3", "a list", "the text 'x'"."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the true/false value {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {shown(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut short: a 5 MB value is never echoed back whole."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


# --------------------------------------------------------------------------
# Patterns, each used by a check and by the schema
# --------------------------------------------------------------------------

# No control character (a newline would end a directive or a command line).
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
# A word: printable ASCII without spaces (user names, ssh hosts, profiles).
_WORD = r"^[!-~]+$"
# Paths that reach configuration files and command lines: characters that need
# no quoting in a shell word, an Apache/nginx/HAProxy directive or an XML attribute.
_SAFE_PATH = r"^(?!.*/\.\.(?:/|$))/[A-Za-z0-9._/+@=,:~-]*$"
_SAFE_PATH_CHARS = "letters, digits, '/', '.', '_', '-', '+', '@', '=', ',', ':' and '~'"
# One DNS label; underscores are tolerated because internal names and
# /etc/hosts entries carry them and ssh, Apache and AWS accept them.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = rf"^{_LABEL}(?:\.{_LABEL})*\.?$"
# IPv6 in its own letters (the ipaddress module checks the syntax); no zone id:
# it has no place in a balancer's configuration.
_IPV6 = r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$"
_NETWORK = r"^(?:[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(?:/[0-9]{1,3})?$"
_PATH_SEGMENT = r"[A-Za-z0-9._~!$&'()*+,=:@-]+"
_PUBLIC_URL = (rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:[^\s/?#@\[\]:]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
               rf"(?:/{_PATH_SEGMENT})*/?$")

_LABEL_RE = re.compile(_LABEL)


def _fullmatch(pattern: str, text: str) -> bool:
    # fullmatch, not search: in Python "$" also matches before a final newline ("node1\n").
    return re.fullmatch(pattern, text) is not None


def _case_insensitive(word: str) -> str:
    """A regular expression matching ``word`` in any case (JSON Schema has no flags)."""
    return "".join(f"[{ch.upper()}{ch.lower()}]" if ch.isalpha() else re.escape(ch) for ch in word)


# --------------------------------------------------------------------------
# Leaf checks
# --------------------------------------------------------------------------


def _text(value: Any, what: str = "text") -> str:
    if not isinstance(value, str):
        hint = " (put it in quotes)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise Bad(f"must be {what}, not {type_name(value)}{hint}")
    if not value.strip():
        raise Bad(f"must not be empty; give {what} or remove the key to use the default")
    if not _fullmatch(_PRINTABLE, value):
        raise Bad(f"must be {what} on one line, without control characters such as a newline or a tab")
    return value


def text(what: str = "text") -> Value:
    return Value(lambda value: _text(value, what), {"type": "string", "pattern": _PRINTABLE})


def _word(value: Any, what: str) -> str:
    text_ = _text(value, what)
    if any(ch.isspace() for ch in text_):
        raise Bad(f"must be {what} without spaces, not {shown(text_)}")
    if not _fullmatch(_WORD, text_):
        raise Bad(f"must be {what} in plain ASCII letters, digits and punctuation, not {shown(text_)}")
    return text_


def word(what: str = "a name") -> Value:
    """Text without whitespace: user names, ssh host aliases, profiles."""
    return Value(lambda value: _word(value, what), {"type": "string", "pattern": _WORD})


def command() -> Value:
    """A command line the admin chose; run through ``sh -c`` on its machine, as the admin wrote it.

    It may refer to a secret (``$TOKEN``, ``$(cat /root/token)``) but not carry one: the
    command is stored in the state and run again by rollback, and a secret inside it would be
    written to disk (or, masked, corrupt what runs).
    """
    def check(value: Any) -> str:
        from wizard.engine.command_secrets import literal_secret

        text_ = _text(value, "a command line").strip()
        found = literal_secret(text_)
        if found:
            raise Bad(f"holds a secret ({found}): the command is stored in the state and run again by rollback. "
                      "Refer to it instead, for example $(cat /root/reload-token) or an environment variable "
                      "the machine sets, and remove it from the answers")
        return text_
    return Value(check, {"type": "string", "pattern": _PRINTABLE}, refines="no literal secret (a password, a token)")


def integer(low: int, high: int, what: str) -> Value:
    def check(value: Any) -> int:
        # bool is an int in Python; "port: yes" is not a port.
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
                raise Bad(f"must be {what} from {low} to {high} written as a number, not text: "
                          f"write {value.strip()} without quotes")
            raise Bad(f"must be {what} from {low} to {high}, not {type_name(value)}")
        if not low <= value <= high:
            raise Bad(f"must be {what} from {low} to {high}, not {value}")
        return value
    return Value(check, {"type": "integer", "minimum": low, "maximum": high})


def port() -> Value:
    return integer(1, 65535, "a port number")


def boolean() -> Value:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Bad(f"must be true or false (without quotes), not {type_name(value)}")
        return value
    return Value(check, {"type": "boolean"})


def choice(*options: str) -> Value:
    def check(value: Any) -> str:
        if isinstance(value, str) and value in options:
            return value
        quoted = " or ".join(f"'{o}'" for o in options)
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), options, n=1, cutoff=0.6)
            suggestion = f" (did you mean '{close[0]}'?)" if close else ""
            raise Bad(f"must be {quoted}, not {shown(value)}{suggestion}")
        raise Bad(f"must be {quoted}, not {type_name(value)}")
    return Value(check, {"enum": list(options)})


def constant(expected: int) -> Value:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"must be the number {expected}, not {type_name(value)}")
        if value != expected:
            raise Bad(f"must be {expected}: this wizard reads version {expected} answers files, "
                      f"not version {value}")
        return value
    return Value(check, {"const": expected})


def _safe_path(value: Any, what: str) -> str:
    text_ = _text(value, what)
    if not posixpath.isabs(text_):
        raise Bad(f"must be {what} (starting with /), not {shown(text_)}")
    if not _fullmatch(_SAFE_PATH, text_):
        raise Bad(f"must be {what} made of {_SAFE_PATH_CHARS}, not {shown(text_)}: the path is written "
                  "into configuration files and command lines, where other characters would need quoting")
    parts = text_.split("/")
    if ".." in parts:
        raise Bad(f"must be {what} without '..', not {shown(text_)}")
    return text_


def absolute_path(what: str = "an absolute path") -> Value:
    return Value(lambda value: _safe_path(value, what), {"type": "string", "pattern": _SAFE_PATH})


def install_dir() -> Value:
    return Value(lambda value: _safe_path(value, "an absolute path").rstrip("/") or "/",
                 {"type": "string", "pattern": _SAFE_PATH})


def user_path() -> Value:
    """A path on this machine: absolute or under a home directory; kept as written."""
    def check(value: Any) -> str:
        text_ = _text(value, "a path")
        if not (posixpath.isabs(text_) or text_.startswith("~")):
            raise Bad(f"must be an absolute path or start with ~ (like ~/.ssh/id_ed25519), not {shown(text_)}: "
                      "a relative path would depend on the directory the wizard is started from")
        return text_
    return Value(check, {"type": "string", "pattern": r"^[/~][^\x00-\x1f\x7f]*$"})


def config_path(suffix: str, why: str) -> Value:
    """The balancer's managed file: a safe absolute path ending in ``suffix``."""
    # The file name becomes a word of a command line (a2ensite NAME on Debian): plainer still.
    pattern = rf"^(?!.*/\.\.(?:/|$))/(?:[A-Za-z0-9._/+@=,:~-]*/)?[A-Za-z0-9_][A-Za-z0-9._+@-]*{re.escape(suffix)}$"

    def check(value: Any) -> str:
        text_ = _safe_path(value, "an absolute path")
        if not text_.endswith(suffix) or text_.endswith("/" + suffix):
            raise Bad(f"must be the path of a file ending in {suffix} ({why}), not {shown(text_)}")
        if not _fullmatch(pattern, text_):
            raise Bad(f"must have a plain file name: letters, digits and ._+@- before {suffix}, not starting "
                      f"with a dot or a dash (the name becomes a word of a command line), not {shown(text_)}")
        return text_
    return Value(check, {"type": "string", "pattern": pattern})


def is_ip(text_: str) -> bool:
    """An IPv4 or IPv6 address, without a zone id (``%eth0``) and in ASCII."""
    if "%" in text_ or not text_.isascii():
        return False
    try:
        ipaddress.ip_address(text_)
    except ValueError:
        return False
    return True


def is_hostname(text_: str) -> bool:
    name = text_[:-1] if text_.endswith(".") else text_
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # all-numeric is a malformed IP address, not a name
    return all(label.isascii() and _LABEL_RE.fullmatch(label) for label in labels)


def strip_scheme(text_: str) -> str:
    """The host of a URL-looking value, for a 'write this instead' suggestion."""
    rest = text_.split("://", 1)[1]
    netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host, sep, port_ = netloc.rpartition(":")
    return host if sep and port_.isdigit() and not host.endswith(":") else netloc


def hostname(what: str = "a host name") -> Value:
    def check(value: Any) -> str:
        text_ = _text(value, what).strip()
        if "://" in text_:
            raise Bad(f"must be {what} only, without a scheme: write {shown(strip_scheme(text_))}, "
                      f"not {shown(text_)}")
        if not is_hostname(text_):
            raise Bad(f"must be {what} (like wiki.example.com), not {shown(text_)}")
        return text_
    return Value(check, {"type": "string", "pattern": _HOSTNAME}, refines="not all labels numeric")


def _address(value: Any) -> str:
    what = "a host name or IP address"
    text_ = _text(value, what)
    if text_ != text_.strip() or any(ch.isspace() for ch in text_):
        raise Bad(f"must be {what} without spaces, not {shown(text_)}")
    if "://" in text_:
        raise Bad(f"must be just {what}, without a scheme such as http://: write "
                  f"{shown(strip_scheme(text_))}; the wizard adds the scheme and port itself")
    if "/" in text_:
        raise Bad(f"must be just {what}, without a path, not {shown(text_)}")
    if text_.startswith("["):
        raise Bad(f"must be {what} without brackets or port: write an IPv6 address plainly, like fe80::1")
    if "%" in text_:
        raise Bad(f"must be {what} without a zone id (the part from %), not {shown(text_)}")
    if is_ip(text_):
        return text_
    if ":" in text_:
        host, _, port_ = text_.rpartition(":")
        if port_.isdigit() and ":" not in host:
            raise Bad(f"must be {what} without a port: write {shown(host)}; the Confluence port is read from "
                      "server.xml (or set confluence_port) and the Synchrony port from setenv.sh "
                      "(or set synchrony_port)")
    if "@" in text_:
        raise Bad(f"must be {what} without a user: write the user in access.user")
    if not is_hostname(text_):
        raise Bad(f"must be {what} (like node1.internal or 10.0.1.11), not {shown(text_)}")
    return text_


_ADDRESS_SCHEMA = {"type": "string", "anyOf": [{"pattern": _HOSTNAME}, {"pattern": _IPV6}]}


def address() -> Value:
    """Where the balancer reaches a node: a host name or an IP address, nothing else."""
    return Value(_address, _ADDRESS_SCHEMA, refines="an IP address's own syntax; host names not all numeric")


def ssh_host() -> Value:
    """An ssh destination: a host name, an IP address or a Host alias of ~/.ssh/config."""
    what = "a host name, IP address or ~/.ssh/config Host alias"

    def check(value: Any) -> str:
        text_ = _word(value, what)
        if "://" in text_:
            raise Bad(f"must be a host for ssh, without a scheme: write {shown(strip_scheme(text_))}")
        if "@" in text_:
            raise Bad("must be the host only: put the user name in 'user' (the part before @)")
        if text_.startswith("-"):
            raise Bad(f"must be a host, not an option: {shown(text_)} starts with '-'")
        return text_
    return Value(check, {"type": "string", "pattern": r"^[!-?A-~]+$", "not": {"pattern": "^-|://"}})


def _network(value: Any, what: str, everyone: str) -> str:
    if not isinstance(value, str):
        raise Bad(f"must be an IP address or CIDR network in text, not {type_name(value)}")
    text_ = value.strip()
    if text_.lower() in ("all", "any", "*", "everyone"):
        raise Bad(f"must be an IP address or CIDR network, not {shown(text_)}: {everyone}")
    if "%" in text_ or not text_.isascii() or not _fullmatch(_NETWORK, text_):
        raise Bad(f"must be an IP address or CIDR network (like 127.0.0.1 or 10.0.0.0/24), not {shown(text_)}")
    try:
        network = ipaddress.ip_network(text_, strict=False)
    except ValueError:
        raise Bad(f"must be an IP address or CIDR network (like 127.0.0.1 or 10.0.0.0/24), "
                  f"not {shown(text_)}") from None
    if network.prefixlen == 0:
        raise Bad(f"must not be {shown(text_)}: that is every address; {everyone}")
    return text_


def network(what: str, everyone: str) -> Value:
    """An allow-list entry (``Require ip``): one IP address or a CIDR network, never everyone."""
    return Value(lambda value: _network(value, what, everyone),
                 {"type": "string", "pattern": _NETWORK,
                  "not": {"enum": ["all", "any", "*", "everyone", "0.0.0.0/0", "::/0"]}},
                 refines="an IP network's own syntax; not a /0 network")


_CIDR = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(?:/[0-9]{1,3})?$"


def _cidr(value: Any) -> str:
    example = "like 203.0.113.0/24, 10.0.0.0/8, 0.0.0.0/0 or 2001:db8::/32"
    if not isinstance(value, str):
        raise Bad(f"must be an IPv4 or IPv6 CIDR network in text ({example}), not {type_name(value)}")
    # Strict: no blanks, zone ids or other scripts' digits, so what is written is what AWS gets.
    if "%" in value or not value.isascii() or not _fullmatch(_CIDR, value):
        raise Bad(f"must be an IPv4 or IPv6 CIDR network ({example}), not {shown(value)}")
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Bad(f"must be an IPv4 or IPv6 CIDR network ({example}), not {shown(value)}") from None
    if "/" in value and network.network_address != ipaddress.ip_interface(value).ip:
        # 10.0.0.1/24 is not a network: AWS refuses it, and the admin may have meant one address.
        raise Bad(f"has address bits set after its prefix: {shown(value)} is not a network; write "
                  f"{network} for the whole network, or {ipaddress.ip_interface(value).ip}/"
                  f"{network.max_prefixlen} for that one address")
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        raise Bad(f"must not be an IPv4-mapped IPv6 network ({shown(value)}): write the IPv4 network "
                  f"{network.network_address.ipv4_mapped}/{max(network.prefixlen - 96, 0)} instead")
    # Normalised: a bare address is its /32 or /128, IPv6 compressed and in lower case.
    return str(network)


def cidr() -> Value:
    """An IPv4 or IPv6 CIDR network a security group rule admits (a bare address: one host), normalised."""
    return Value(_cidr, {"type": "string", "pattern": _CIDR},
                 refines="an IP network's own syntax, without address bits after the prefix")


def pattern(regex: str, what: str, example: str) -> Value:
    """Text that matches ``regex`` whole (the same expression in the check and in the schema)."""
    anchored = f"^(?:{regex})$"

    def check(value: Any) -> str:
        text_ = _text(value, what)
        if not _fullmatch(anchored, text_):
            raise Bad(f"must be {what} (like {example}), not {shown(text_)}")
        return text_
    return Value(check, {"type": "string", "pattern": anchored})


RESERVED_NODE_NAMES = ("balancer", "workstation")
SETUP_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
ALB_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?"
CERT_ARN = r"arn:aws[A-Za-z0-9-]*:acm:(?P<region>[a-z0-9-]+):[0-9]{12}:certificate/[A-Za-z0-9/_-]+"


def setup_name() -> Value:
    def check(value: Any) -> str:
        text_ = _text(value, "a name")
        if not _fullmatch(f"^{SETUP_NAME}$", text_):
            raise Bad(f"must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                      f"(it names files and AWS tags), not {shown(text_)}")
        return text_
    return Value(check, {"type": "string", "pattern": f"^{SETUP_NAME}$"})


def node_name() -> Value:
    reserved = "|".join(_case_insensitive(name) for name in RESERVED_NODE_NAMES)

    def check(value: Any) -> str:
        text_ = _text(value, "a name")
        if not _fullmatch(r"^[A-Za-z0-9._-]{1,64}$", text_):
            raise Bad(f"must be 1 to 64 letters, digits, '.', '_' or '-', not {shown(text_)}")
        if text_.lower() in RESERVED_NODE_NAMES:
            raise Bad(f"must not be {shown(text_)}: the wizard uses that word for a machine that is not a node; "
                      "choose another name")
        return text_
    return Value(check, {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$",
                         "not": {"pattern": f"^(?:{reserved})$"}})


def alb_name_problem(text_: str) -> str | None:
    """Why ``text_`` cannot name an ALB and its target groups, or None when it can."""
    if text_.lower().startswith("internal-"):
        return "AWS reserves names starting with 'internal-'"
    if _fullmatch(f"^{ALB_NAME}$", text_):
        return None
    return ("AWS load balancer and target group names are 1 to 32 letters, digits and hyphens, "
            "not starting or ending with a hyphen")


ALB_NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": f"^{ALB_NAME}$",
                                   "not": {"pattern": f"^{_case_insensitive('internal-')}"}}


def alb_name() -> Value:
    def check(value: Any) -> str:
        text_ = _text(value, "a name")
        why = alb_name_problem(text_)
        if why:
            raise Bad(f"cannot be {shown(text_)}: {why}")
        return text_
    return Value(check, ALB_NAME_SCHEMA)


def public_url() -> Value:
    """A URL users type: http(s), a host, an optional port and an optional context path."""
    return Value(_public_url, {"type": "string", "pattern": _PUBLIC_URL},
                 refines="the host is a valid name or IP address; the port is from 1 to 65535; "
                         "no '.' or '..' segment in the context path")


def _public_url(value: Any) -> str:
    example = "https://wiki.example.com or https://wiki.example.com/confluence"
    text_ = _text(value, "a URL")
    if text_ != text_.strip() or any(ch.isspace() for ch in text_):
        raise Bad(f"must be a URL without spaces, not {shown(text_)}")
    scheme, sep, rest = text_.partition("://")
    if not sep:
        raise Bad(f"must start with https:// or http:// (like {example}), not {shown(text_)}")
    if scheme.lower() not in ("http", "https"):
        raise Bad(f"must start with https:// or http://, not {shown(scheme)}://")
    if "#" in rest:
        raise Bad("must not have a #fragment: give the address users type to reach Confluence")
    if "?" in rest:
        raise Bad("must not have a ?query: give only scheme, host, optional port and optional context path")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if "@" in netloc:
        raise Bad("must not hold a user name or password (user:password@): give only scheme, host, "
                  "optional port and optional context path")
    if not netloc:
        raise Bad(f"must name a host (like {example}), not {shown(text_)}")
    host, port_text = netloc, ""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise Bad(f"has an unclosed '[' in its host: {shown(netloc)}")
        host, after = netloc[1:end], netloc[end + 1:]
        if after and not after.startswith(":"):
            raise Bad(f"has something after the IPv6 address that is not a port: {shown(netloc)}")
        port_text = after[1:]
        if not is_ip(host) or ":" not in host:
            raise Bad(f"must have a valid IPv6 address between [ and ], not {shown(host)}")
    elif ":" in netloc:
        host, _, port_text = netloc.rpartition(":")
        if not port_text:
            raise Bad(f"has ':' after the host but no port number: {shown(netloc)}")
    if port_text or netloc.endswith(":"):
        # isascii: int() takes other scripts' digits ("٤٩٨٤٩"), a URL does not.
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise Bad(f"has port {shown(port_text)}; a port must be a number from 1 to 65535")
    if not netloc.startswith("[") and not (is_ip(host) or is_hostname(host)):
        raise Bad(f"must name a valid host (like wiki.example.com), not {shown(host)}")
    if path.strip("/"):
        for segment in path.strip("/").split("/"):
            if segment in (".", "..") or not _fullmatch(f"^{_PATH_SEGMENT}$", segment):
                raise Bad(f"has a path {shown(path)} that is not a context path: give one like /confluence "
                          "(letters, digits, '-', '_', '.'), or no path when Confluence is at the root")
        if "//" in path:
            raise Bad(f"has an empty segment in its context path {shown(path)}")
    return text_


def db_host() -> Value:
    """A PostgreSQL host as psql takes it: a host name, an IP address, or a socket folder."""
    def check(value: Any) -> str:
        text_ = _text(value, "a host name, IP address or socket folder")
        if text_.startswith("/"):
            return _safe_path(text_, "a socket folder")
        host, sep, port_ = text_.rpartition(":")
        if sep and port_.isdigit() and ":" not in host:
            raise Bad(f"must be the host only: write {shown(host)} here and put {port_} in "
                      "base_url.database.port")
        return _address(text_)
    return Value(check, {"type": "string", "anyOf": [{"pattern": _SAFE_PATH}, *_ADDRESS_SCHEMA["anyOf"]]},
                 refines="an IP address's own syntax")


@dataclass(frozen=True)
class ListOf:
    """A list answer whose items are each one :class:`Value` (or a section, see the declaration)."""

    item: Any
    what: str
    min_items: int = 0
    unique: bool = False
    #: What to say when there are fewer than ``min_items`` (an empty required list is "missing").
    too_few: str = ""
    #: What to say after "lists X more than once; " when ``unique`` does not hold.
    distinct: str = "give distinct values"
    #: At most this many items (0: no limit), and what to say when there are more.
    max_items: int = 0
    too_many: str = ""
