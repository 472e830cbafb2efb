"""Reading, checking and writing answers files (CONTRACT.md, "Answers file").

An answers file is YAML (JSON is YAML too). This module is the only place that
looks at the raw dictionary: it checks every key, collects every problem at
once (so the admin fixes the file in one pass, not one error per run) and turns
a clean document into the typed dataclasses of :mod:`wizard.answers_model`.

Public functions:

* :func:`load_answers_file` -- read a file into a plain dictionary.
* :func:`find_problems` -- every problem in a dictionary; missing keys are flagged.
* :func:`missing_keys` -- just the dotted keys that are missing (for faces that ask).
* :func:`validate` -- the typed :class:`~wizard.answers_model.Answers`, or one
  :class:`~wizard.errors.AnswersError` listing every problem.
* :func:`load_answers` -- :func:`load_answers_file` then :func:`validate`.
* :func:`answers_to_yaml` -- the answers as a tidy answers file.
* :func:`merge` -- deep-merge a partial file with the admin's answers.

Keys in problems are dotted paths with 0-based list indexes, for example
``nodes[1].access.port`` or ``balancer.alb.subnet_ids[0]``.

Secrets are never read from an answers file: a key that smells like one is a
problem wherever it appears, and its value is never echoed.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from wizard.answers_model import (
    Access,
    AlbOptions,
    Answers,
    ApacheOptions,
    Balancer,
    BaseUrl,
    Database,
    Node,
    PublicUrl,
    Synchrony,
    Tls,
)
from wizard.errors import AnswersError, Problem

__all__ = [
    "answers_to_yaml",
    "find_problems",
    "load_answers",
    "load_answers_file",
    "merge",
    "missing_keys",
    "validate",
]

ANSWERS_VERSION = 1

# --------------------------------------------------------------------------
# The keys of the contract, per section. Unknown keys are checked against these.
# --------------------------------------------------------------------------

TOP_KEYS = ("version", "name", "public_url", "synchrony", "restart", "restart_timeout", "nodes", "base_url",
            "balancer")
SYNCHRONY_KEYS = ("mode", "port")
BASE_URL_KEYS = ("method", "database")
DATABASE_KEYS = ("host", "port", "name", "user", "psql")
NODE_KEYS = ("name", "address", "instance_id", "install_dir", "confluence_port", "synchrony_port",
             "restart_command", "access")
ACCESS_KEYS = ("transport", "host", "user", "port", "key_file", "known_hosts", "proxy_jump", "sudo")
BALANCER_KEYS = ("kind", "apache", "alb")
APACHE_KEYS = ("access", "config_path", "server_name", "listen_port", "http_port", "tls", "manager_allow",
               "configtest_command", "reload_command")
TLS_KEYS = ("certificate_file", "key_file")
ALB_KEYS = ("name", "region", "profile", "vpc_id", "subnet_ids", "scheme", "certificate_arn",
            "node_security_group_id", "idle_timeout")

# Sections nested in a section: an unknown key that belongs one level down
# (``nodes[0].user`` instead of ``nodes[0].access.user``) gets pointed there.
_CHILD_SECTIONS: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {
    TOP_KEYS: {"synchrony": SYNCHRONY_KEYS, "base_url": BASE_URL_KEYS, "balancer": BALANCER_KEYS},
    BASE_URL_KEYS: {"database": DATABASE_KEYS},
    NODE_KEYS: {"access": ACCESS_KEYS},
    BALANCER_KEYS: {"apache": APACHE_KEYS, "alb": ALB_KEYS},
    APACHE_KEYS: {"access": ACCESS_KEYS, "tls": TLS_KEYS},
}

# Node names label hosts and verify targets next to these fixed labels
# (wizard.model.BALANCER, WORKSTATION); a node may not take one of them.
_RESERVED_NODE_NAMES = ("balancer", "workstation")

# --------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------

_SETUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NODE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# AWS load balancer and target group names: 1-32 alphanumerics and hyphens,
# not starting or ending with a hyphen.
_ALB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
# Real VPC ids carry 8 hex digits (older) or 17 (current, and moto's).
_VPC_ID = re.compile(r"vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_SUBNET_ID = re.compile(r"subnet-[0-9a-f]+")
_SG_ID = re.compile(r"sg-[0-9a-f]+")
_CERT_ARN = re.compile(r"arn:aws[\w-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/.+")
# One DNS label; underscores are tolerated because internal names and
# /etc/hosts entries carry them and ssh, Apache and AWS accept them.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@-]+")

# Key names that smell like a secret, anywhere in the document.
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)|secret|token|credential|private_key|access_key",
                         re.IGNORECASE)
_AWS_SECRET_KEY = re.compile(r"aws|access_key|secret_key|session", re.IGNORECASE)
_PRIVATE_KEY_TEXT = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")

_ABSENT = object()


class _Bad(Exception):
    """A value failed a check; the message says what is wrong and what is expected."""


# --------------------------------------------------------------------------
# Reading a file
# --------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    Plain safe_load keeps the last of two ``name:`` lines silently; an admin who
    wrote both meant one of them, so say so instead of guessing.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<:" merge keys legitimately repeat keys of the merged mapping
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key; the base class reports it properly
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found the key {key!r} a second time (first at line {first.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_answers_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an answers file (YAML or JSON) into a plain dictionary.

    Only reads and parses; :func:`validate` checks the content. An empty file
    (or one holding only comments) is an empty partial answers file: ``{}``.

    Raises :class:`AnswersError` (never a traceback) when the file is missing or
    unreadable, is not valid YAML (the problem names the line and column), or
    its top level is not a mapping of keys to answers.
    """
    source = os.fspath(path)

    def fail(message: str) -> AnswersError:
        return AnswersError([Problem("(file)", message)], source=source)

    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise fail("does not exist: check the path given to --answers") from None
    except IsADirectoryError:
        raise fail("is a directory, not an answers file") from None
    except PermissionError:
        raise fail("cannot be read: permission denied (check the file's owner and mode)") from None
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None

    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise fail(_describe_yaml_error(exc)) from None
    except yaml.YAMLError as exc:
        raise fail(f"is not valid YAML: {exc}") from None

    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(f"must hold a mapping of answers (key: value lines such as 'name: wiki-prod'), "
                   f"not {_type_name(data)}")
    return data


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    """A YAML error as one line naming where it is (1-based line and column)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown place"
    what = exc.problem or exc.context or "syntax error"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    hint = ""
    if "\\t" in what or "\t" in what:
        hint = "; indent with spaces, not tabs"
    return f"is not valid YAML at {where}: {what}{context}{hint}"


def load_answers(path: str | os.PathLike[str]) -> Answers:
    """Read and validate an answers file; every problem is in one :class:`AnswersError`."""
    return validate(load_answers_file(path), source=os.fspath(path))


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------


class _Checker:
    """Collects problems while the sections are walked."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, key: str, message: str, *, missing: bool = False) -> None:
        self.problems.append(Problem(key, message, missing=missing))

    def require(self, key: str, what: str) -> None:
        self.add(key, f"is required: {what}", missing=True)

    def mark(self) -> int:
        """The problem count now; a section builds its dataclass only if it stays the same."""
        return len(self.problems)

    def clean_since(self, mark: int) -> bool:
        return len(self.problems) == mark

    def field(self, data: Mapping[str, Any], prefix: str, name: str,
              check: Callable[[Any], Any], *, required: str | None = None,
              default: Any = None) -> Any:
        """Check ``data[name]``: the checked value, ``default`` when absent, None on a problem.

        A null value (``port:`` with nothing after it) counts as absent, so a
        template with blank entries is a partial answers file. Blank text
        counts as absent for a required key, so it is reported as missing.
        """
        key = _join(prefix, name)
        value = data.get(name)
        absent = value is None or (required is not None and isinstance(value, str) and not value.strip())
        if absent:
            if required is not None:
                self.require(key, required)
                return None
            return default
        try:
            return check(value)
        except _Bad as exc:
            self.add(key, str(exc))
            return None

    def section(self, data: Mapping[str, Any], prefix: str, name: str, *,
                required: str | None = None) -> dict[str, Any] | None:
        """The mapping at ``data[name]``, or None when absent (reported if required) or not a mapping."""
        key = _join(prefix, name)
        value = data.get(name)
        if value is None:
            if required is not None:
                self.require(key, required)
            return None
        if not isinstance(value, dict):
            self.add(key, f"must be a mapping of keys to answers, not {_type_name(value)}")
            return None
        return value

    def unknown(self, data: Mapping[Any, Any], prefix: str, known: tuple[str, ...]) -> None:
        """Report keys that are not part of the contract here, with a suggestion when one is close."""
        for raw_key in data:
            if isinstance(raw_key, str) and raw_key in known:
                continue
            key_text = str(raw_key)
            key = _join(prefix, key_text)
            if not isinstance(raw_key, str):
                self.add(key, f"is not a valid key: keys are names, not {_type_name(raw_key)}")
                continue
            if _is_secret_key(raw_key):
                continue  # reported by _find_secrets with a better message
            self.add(key, _unknown_message(raw_key, known))


def _unknown_message(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        # Case and separators: "Public-URL" is public_url.
        normalized = key.lower().replace("-", "_").replace(" ", "_")
        if normalized in known:
            close = [normalized]
    if close:
        return f"is not a known answer here; did you mean '{close[0]}'?"
    for child, child_keys in _CHILD_SECTIONS.get(known, {}).items():
        if key in child_keys:
            return f"is not a known answer here; did you mean to put it under '{child}'?"
    return f"is not a known answer here; the answers here are: {', '.join(known)}"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the true/false value {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


# --- value checks: each returns the checked value or raises _Bad ----------------


def _text(value: Any, what: str = "text") -> str:
    if not isinstance(value, str):
        hint = " (put it in quotes)" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise _Bad(f"must be {what}, not {_type_name(value)}{hint}")
    if not value.strip():
        raise _Bad(f"must not be empty; give {what} or remove the key to use the default")
    return value


def _word(value: Any, what: str = "a name") -> str:
    """Text without whitespace: user names, ssh host aliases, profiles."""
    text = _text(value, what)
    if any(ch.isspace() for ch in text):
        raise _Bad(f"must be {what} without spaces, not {text!r}")
    return text


def _command(value: Any) -> str:
    return _text(value, "a command line").strip()


def _int(value: Any, low: int, high: int, what: str) -> int:
    # bool is an int in Python; "port: yes" is not a port.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            raise _Bad(f"must be {what} from {low} to {high} written as a number, not text: "
                       f"write {value.strip()} without quotes")
        raise _Bad(f"must be {what} from {low} to {high}, not {_type_name(value)}")
    if not low <= value <= high:
        raise _Bad(f"must be {what} from {low} to {high}, not {value}")
    return value


def _port(value: Any) -> int:
    return _int(value, 1, 65535, "a port number")


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false (without quotes), not {_type_name(value)}")
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and value in options:
            return value
        quoted = " or ".join(f"'{o}'" for o in options)
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), options, n=1, cutoff=0.6)
            suggestion = f" (did you mean '{close[0]}'?)" if close else ""
            raise _Bad(f"must be {quoted}, not {value!r}{suggestion}")
        raise _Bad(f"must be {quoted}, not {_type_name(value)}")
    return check


def _absolute_path(value: Any, what: str = "an absolute path") -> str:
    text = _text(value, what)
    if not posixpath.isabs(text):
        raise _Bad(f"must be {what} (starting with /), not {text!r}")
    return text


def _user_path(value: Any) -> str:
    """A path on this machine: absolute or under a home directory; kept as written."""
    text = _text(value, "a path")
    if not (posixpath.isabs(text) or text.startswith("~")):
        raise _Bad(f"must be an absolute path or start with ~ (like ~/.ssh/id_ed25519), not {text!r}: "
                   "a relative path would depend on the directory the wizard is started from")
    return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_hostname(text: str) -> bool:
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # all-numeric is a malformed IP address, not a name
    return all(_LABEL.fullmatch(label) for label in labels)


def _hostname(value: Any, what: str = "a host name") -> str:
    text = _text(value, what).strip()
    if "://" in text:
        raise _Bad(f"must be {what} only, without a scheme: write {_strip_scheme(text)!r}, not {text!r}")
    if not _is_hostname(text):
        raise _Bad(f"must be {what} (like wiki.example.com), not {text!r}")
    return text


def _strip_scheme(text: str) -> str:
    """The host of a URL-looking value, for a 'write this instead' suggestion."""
    rest = text.split("://", 1)[1]
    netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host, sep, port = netloc.rpartition(":")
    return host if sep and port.isdigit() and not host.endswith(":") else netloc


def _address(value: Any) -> str:
    """Where the balancer reaches a node: a host name or an IP address, nothing else."""
    what = "a host name or IP address"
    text = _text(value, what)
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise _Bad(f"must be {what} without spaces, not {text!r}")
    if "://" in text:
        raise _Bad(f"must be just {what}, without a scheme such as http://: write "
                   f"{_strip_scheme(text)!r}; the wizard adds the scheme and port itself")
    if "/" in text:
        raise _Bad(f"must be just {what}, without a path, not {text!r}")
    if text.startswith("["):
        raise _Bad(f"must be {what} without brackets or port: write an IPv6 address plainly, like fe80::1")
    if _is_ip(text):
        return text
    if ":" in text:
        host, _, port = text.rpartition(":")
        if port.isdigit() and ":" not in host:
            raise _Bad(f"must be {what} without a port: write {host!r}; the Confluence port is read from "
                       "server.xml (or set confluence_port) and the Synchrony port from setenv.sh "
                       "(or set synchrony_port)")
    if "@" in text:
        raise _Bad(f"must be {what} without a user: write the user in access.user")
    if not _is_hostname(text):
        raise _Bad(f"must be {what} (like node1.internal or 10.0.1.11), not {text!r}")
    return text


def _ssh_host(value: Any) -> str:
    """An ssh destination: a host name, an IP address or a Host alias of ~/.ssh/config."""
    text = _word(value, "a host name, IP address or ~/.ssh/config Host alias")
    if "://" in text:
        raise _Bad(f"must be a host for ssh, without a scheme: write {_strip_scheme(text)!r}")
    if "@" in text:
        raise _Bad("must be the host only: put the user name in 'user' (the part before @)")
    return text


def _network(value: Any) -> str:
    """An Apache ``Require ip`` operand: one IP address or a CIDR network."""
    if not isinstance(value, str):
        raise _Bad(f"must be an IP address or CIDR network in text, not {_type_name(value)}")
    text = value.strip()
    if text.lower() in ("all", "any", "*", "everyone"):
        raise _Bad(f"must be an IP address or CIDR network, not {text!r}: /balancer-manager lets whoever "
                   "opens it disable nodes, so it must be restricted (for example 127.0.0.1 or "
                   "10.0.0.0/24); leave manager_allow out to allow nobody")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _Bad(f"must be an IP address or CIDR network (like 127.0.0.1 or 10.0.0.0/24), "
                   f"not {text!r}") from None
    if network.prefixlen == 0:
        raise _Bad(f"must not be {text!r}: that is every address, and /balancer-manager must be restricted "
                   "(for example 127.0.0.1 or 10.0.0.0/24)")
    return text


def _pattern(regex: re.Pattern[str], what: str, example: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _text(value, what)
        if not regex.fullmatch(text):
            raise _Bad(f"must be {what} (like {example}), not {text!r}")
        return text
    return check


_instance_id = _pattern(_INSTANCE_ID, "an EC2 instance id: i- and 8 or 17 hex digits", "i-0123456789abcdef0")
_region = _pattern(_REGION, "an AWS region name", "eu-west-1")
_vpc_id = _pattern(_VPC_ID, "a VPC id: vpc- and 8 or 17 hex digits", "vpc-0123456789abcdef0")
_subnet_id = _pattern(_SUBNET_ID, "a subnet id: subnet- and hex digits", "subnet-0123456789abcdef0")
_sg_id = _pattern(_SG_ID, "a security group id: sg- and hex digits", "sg-0123456789abcdef0")
_cert_arn = _pattern(_CERT_ARN, "an ACM certificate ARN",
                     "arn:aws:acm:eu-west-1:123456789012:certificate/abcd-1234")


def _setup_name(value: Any) -> str:
    text = _text(value, "a name")
    if not _SETUP_NAME.fullmatch(text):
        raise _Bad(f"must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                   f"(it names files and AWS tags), not {text!r}")
    return text


def _node_name(value: Any) -> str:
    text = _text(value, "a name")
    if not _NODE_NAME.fullmatch(text):
        raise _Bad(f"must be 1 to 64 letters, digits, '.', '_' or '-', not {text!r}")
    if text.lower() in _RESERVED_NODE_NAMES:
        raise _Bad(f"must not be {text!r}: the wizard uses that word for a machine that is not a node; "
                   "choose another name")
    return text


def _alb_name_problem(text: str) -> str | None:
    """Why ``text`` cannot name an ALB and its target groups, or None when it can."""
    if _ALB_NAME.fullmatch(text) and not text.lower().startswith("internal-"):
        return None
    if text.lower().startswith("internal-"):
        return "AWS reserves names starting with 'internal-'"
    return ("AWS load balancer and target group names are 1 to 32 letters, digits and hyphens, "
            "not starting or ending with a hyphen")


def _alb_name(value: Any) -> str:
    text = _text(value, "a name")
    why = _alb_name_problem(text)
    if why:
        raise _Bad(f"cannot be {text!r}: {why}")
    return text


def _config_path(value: Any) -> str:
    text = _absolute_path(value)
    if not text.endswith(".conf") or text.endswith("/.conf"):
        raise _Bad(f"must be the path of a file ending in .conf (Apache only includes *.conf files from "
                   f"sites-available/conf.d), not {text!r}")
    return text


def _idle_timeout(value: Any) -> int:
    return _int(value, 1, 4000, "a number of seconds")


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be the number {ANSWERS_VERSION}, not {_type_name(value)}")
    if value != ANSWERS_VERSION:
        raise _Bad(f"must be {ANSWERS_VERSION}: this wizard reads version {ANSWERS_VERSION} answers files, "
                   f"not version {value}")
    return value


def _public_url(value: Any) -> str:
    """A URL users type: http(s), a host, an optional port and an optional context path."""
    example = "https://wiki.example.com or https://wiki.example.com/confluence"
    text = _text(value, "a URL")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise _Bad(f"must be a URL without spaces, not {text!r}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _Bad(f"must start with https:// or http:// (like {example}), not {text!r}")
    if scheme.lower() not in ("http", "https"):
        raise _Bad(f"must start with https:// or http://, not {scheme}://")
    if "#" in rest:
        raise _Bad("must not have a #fragment: give the address users type to reach Confluence")
    if "?" in rest:
        raise _Bad("must not have a ?query: give only scheme, host, optional port and optional context path")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if "@" in netloc:
        raise _Bad("must not hold a user name or password (user:password@): give only scheme, host, "
                   "optional port and optional context path")
    if not netloc:
        raise _Bad(f"must name a host (like {example}), not {text!r}")
    host, port_text = netloc, ""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _Bad(f"has an unclosed '[' in its host: {netloc!r}")
        host, after = netloc[1:end], netloc[end + 1:]
        if after and not after.startswith(":"):
            raise _Bad(f"has something after the IPv6 address that is not a port: {netloc!r}")
        port_text = after[1:]
        if not _is_ip(host) or ":" not in host:
            raise _Bad(f"must have a valid IPv6 address between [ and ], not {host!r}")
    elif ":" in netloc:
        host, _, port_text = netloc.rpartition(":")
        if not port_text:
            raise _Bad(f"has ':' after the host but no port number: {netloc!r}")
    if port_text or netloc.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise _Bad(f"has port {port_text!r}; a port must be a number from 1 to 65535")
    if not netloc.startswith("[") and not (_is_ip(host) or _is_hostname(host)):
        raise _Bad(f"must name a valid host (like wiki.example.com), not {host!r}")
    if path.strip("/"):
        for segment in path.strip("/").split("/"):
            if segment in (".", "..") or not _PATH_SEGMENT.fullmatch(segment):
                raise _Bad(f"has a path {path!r} that is not a context path: give one like /confluence "
                           "(letters, digits, '-', '_', '.'), or no path when Confluence is at the root")
        if "//" in path:
            raise _Bad(f"has an empty segment in its context path {path!r}")
    return text


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _secret_message(key: str, path: str = "") -> str:
    base = "secrets are never read from the answers file"
    if path.startswith("base_url.database."):
        return (f"{base}: psql, run on the node, takes the database password from ~/.pgpass (or PGPASSWORD) "
                "of the user it runs as there; remove this key")
    if _AWS_SECRET_KEY.search(key):
        return (f"{base}: AWS credentials come from the standard AWS credential chain (environment "
                "variables, ~/.aws with balancer.alb.profile, or an instance role); remove this key")
    return (f"{base}: the wizard asks for a passphrase or password when it needs one, and never stores "
            "it; remove this key (use key_file or ssh-agent for ssh keys)")


def _find_secrets(value: Any, prefix: str, ck: _Checker) -> None:
    """Report every secret-looking key, and inline private keys, anywhere in the document."""
    if isinstance(value, dict):
        for key, item in value.items():
            key_path = _join(prefix, str(key))
            if isinstance(key, str) and _is_secret_key(key):
                ck.add(key_path, _secret_message(key, key_path))  # the value is never echoed
                continue
            _find_secrets(item, key_path, ck)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_secrets(item, f"{prefix}[{index}]", ck)
    elif isinstance(value, str) and _PRIVATE_KEY_TEXT.search(value):
        ck.add(prefix, "holds a private key; secrets are never read from the answers file: give the "
                       "path of the key file (key_file) instead, or use ssh-agent")


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def _check_access(ck: _Checker, data: Mapping[str, Any] | None, prefix: str, *,
                  host_required: str | None = None) -> Access | None:
    """An ``access`` block; ``host_required`` says why host is needed when there is no address to default to."""
    if data is None:
        if host_required is not None:
            ck.require(_join(prefix, "host"), host_required)
            return None
        return Access()
    mark = ck.mark()
    ck.unknown(data, prefix, ACCESS_KEYS)
    transport = ck.field(data, prefix, "transport", _choice("ssh", "local"), default="ssh")
    required = host_required if transport == "ssh" else None
    values = {
        "transport": transport,
        "host": ck.field(data, prefix, "host", _ssh_host, required=required),
        "user": ck.field(data, prefix, "user", lambda v: _word(v, "a user name")),
        "port": ck.field(data, prefix, "port", _port),
        "key_file": ck.field(data, prefix, "key_file", _user_path),
        "known_hosts": ck.field(data, prefix, "known_hosts", _user_path),
        "proxy_jump": ck.field(data, prefix, "proxy_jump", lambda v: _word(v, "an ssh jump host")),
        "sudo": ck.field(data, prefix, "sudo", _bool, default=False),
    }
    if not ck.clean_since(mark):
        return None
    return Access(**values)


def _check_node(ck: _Checker, raw: Any, prefix: str) -> Node | None:
    if not isinstance(raw, dict):
        ck.add(prefix, f"must be a mapping describing one node (name, address, ...), not {_type_name(raw)}")
        return None
    mark = ck.mark()
    ck.unknown(raw, prefix, NODE_KEYS)
    name = ck.field(raw, prefix, "name", _node_name, required="the node's name, like node1")
    address = ck.field(raw, prefix, "address", _address,
                       required="the host name or IP address where the balancer reaches this node")
    values = {
        "instance_id": ck.field(raw, prefix, "instance_id", _instance_id),
        "install_dir": ck.field(raw, prefix, "install_dir",
                                lambda v: _absolute_path(v).rstrip("/") or "/",
                                default="/opt/atlassian/confluence"),
        "confluence_port": ck.field(raw, prefix, "confluence_port", _port),
        "synchrony_port": ck.field(raw, prefix, "synchrony_port", _port),
        "restart_command": ck.field(raw, prefix, "restart_command", _command),
    }
    access = _check_access(ck, ck.section(raw, prefix, "access"), _join(prefix, "access"))
    if not ck.clean_since(mark) or access is None:
        return None
    return Node(name=name, address=address, access=access, **values)


def _check_nodes(ck: _Checker, data: Mapping[str, Any]) -> list[Node] | None:
    raw = data.get("nodes")
    if raw is None or raw == []:
        ck.require("nodes", "the Confluence Data Center nodes, a list with one entry (name, address, ...) "
                            "per node")
        return None
    if not isinstance(raw, list):
        ck.add("nodes", f"must be a list of nodes (each '- name: ...' with an address), not {_type_name(raw)}")
        return None
    mark = ck.mark()
    nodes = [_check_node(ck, item, f"nodes[{index}]") for index, item in enumerate(raw)]

    # Uniqueness: names label hosts and checks, addresses and instances are targets.
    def unique(field_name: str, what: str, fold: bool, *, port_sets_apart: bool = False) -> None:
        seen: list[tuple[str, Any, int]] = []
        for index, item in enumerate(raw):
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
                           f"{value!r} is already the {what} of nodes[{other_index}]; "
                           f"each node needs its own{extra}")
                    break
            else:
                seen.append((folded, port, index))

    unique("name", "name (names are compared ignoring case)", True)
    unique("address", "address", True, port_sets_apart=True)
    unique("instance_id", "instance_id", False)
    if not ck.clean_since(mark) or any(node is None for node in nodes):
        return None
    return nodes  # type: ignore[return-value]


def _check_tls(ck: _Checker, data: Mapping[str, Any] | None, prefix: str) -> Tls | None:
    if data is None:
        return None
    mark = ck.mark()
    ck.unknown(data, prefix, TLS_KEYS)
    certificate = ck.field(data, prefix, "certificate_file", _absolute_path,
                           required="the absolute path of the certificate (PEM) on the balancer")
    key = ck.field(data, prefix, "key_file", _absolute_path,
                   required="the absolute path of the certificate's private key (PEM) on the balancer")
    if not ck.clean_since(mark):
        return None
    return Tls(certificate_file=certificate, key_file=key)


def _check_manager_allow(ck: _Checker, data: Mapping[str, Any], prefix: str) -> list[str]:
    key = _join(prefix, "manager_allow")
    raw = data.get("manager_allow")
    if raw is None:
        return []
    if not isinstance(raw, list):
        ck.add(key, f"must be a list of IP addresses or CIDR networks (like [127.0.0.1, 10.0.0.0/24]), "
                    f"not {_type_name(raw)}")
        return []
    allowed = []
    for index, item in enumerate(raw):
        try:
            allowed.append(_network(item))
        except _Bad as exc:
            ck.add(f"{key}[{index}]", str(exc))
    return allowed


def _check_apache(ck: _Checker, data: Mapping[str, Any], prefix: str) -> ApacheOptions | None:
    mark = ck.mark()
    ck.unknown(data, prefix, APACHE_KEYS)
    access_key = _join(prefix, "access")
    access_data = ck.section(data, prefix, "access",
                             required="how the wizard reaches the Apache machine "
                                      "(transport, host, user), like {transport: ssh, host: lb1.internal}")
    access = None
    if access_data is not None:
        access = _check_access(ck, access_data, access_key,
                               host_required="the Apache machine's host name or ssh alias (there is no "
                                             "node address to default to)")
    tls = _check_tls(ck, ck.section(data, prefix, "tls"), _join(prefix, "tls"))
    values = {
        "config_path": ck.field(data, prefix, "config_path", _config_path),
        "server_name": ck.field(data, prefix, "server_name", _hostname),
        "listen_port": ck.field(data, prefix, "listen_port", _port),
        "http_port": ck.field(data, prefix, "http_port", _port),
        "manager_allow": _check_manager_allow(ck, data, prefix),
        "configtest_command": ck.field(data, prefix, "configtest_command", _command),
        "reload_command": ck.field(data, prefix, "reload_command", _command),
    }
    if not ck.clean_since(mark) or access is None:
        return None
    return ApacheOptions(access=access, tls=tls, **values)


def _check_subnets(ck: _Checker, data: Mapping[str, Any], prefix: str) -> list[str] | None:
    key = _join(prefix, "subnet_ids")
    raw = data.get("subnet_ids")
    why = "an ALB needs subnets in at least two availability zones"
    if raw is None or raw == []:
        ck.require(key, f"the balancer's subnet ids, at least two ({why})")
        return None
    if not isinstance(raw, list):
        ck.add(key, f"must be a list of subnet ids (like [subnet-0a..., subnet-0b...]), not {_type_name(raw)}")
        return None
    mark = ck.mark()
    subnets = []
    for index, item in enumerate(raw):
        try:
            subnets.append(_subnet_id(item))
        except _Bad as exc:
            ck.add(f"{key}[{index}]", str(exc))
    if not ck.clean_since(mark):
        return None
    duplicates = sorted({s for s in subnets if subnets.count(s) > 1})
    if duplicates:
        ck.add(key, f"lists {', '.join(duplicates)} more than once; give distinct subnets ({why})")
        return None
    if len(subnets) < 2:
        ck.add(key, f"must list at least two subnets, in different availability zones: {why}")
        return None
    return subnets


def _check_alb(ck: _Checker, data: Mapping[str, Any], prefix: str,
               setup_name: str | None) -> AlbOptions | None:
    mark = ck.mark()
    ck.unknown(data, prefix, ALB_KEYS)
    name_key = _join(prefix, "name")
    name = ck.field(data, prefix, "name", _alb_name)
    if data.get("name") is None and setup_name is not None:
        # The setup's name is the default ALB name; it may be fine for files but not for AWS.
        why = _alb_name_problem(setup_name)
        if why:
            ck.require(name_key, f"the ALB's name, because the setup's name {setup_name!r} cannot be used "
                                 f"for it ({why}); set balancer.alb.name")
    region = ck.field(data, prefix, "region", _region, required="the AWS region of the balancer, like eu-west-1")
    values = {
        "vpc_id": ck.field(data, prefix, "vpc_id", _vpc_id,
                           required="the id of the VPC the nodes are in, like vpc-0123456789abcdef0"),
        "subnet_ids": _check_subnets(ck, data, prefix),
        "profile": ck.field(data, prefix, "profile", lambda v: _word(v, "an AWS profile name")),
        "scheme": ck.field(data, prefix, "scheme", _choice("internet-facing", "internal"),
                           default="internet-facing"),
        "certificate_arn": ck.field(data, prefix, "certificate_arn", _cert_arn),
        "node_security_group_id": ck.field(data, prefix, "node_security_group_id", _sg_id),
        "idle_timeout": ck.field(data, prefix, "idle_timeout", _idle_timeout, default=300),
    }
    arn = values["certificate_arn"]
    if arn and region:
        cert_region = _CERT_ARN.fullmatch(arn)["region"]  # type: ignore[index]
        if cert_region != region:
            ck.add(_join(prefix, "certificate_arn"),
                   f"is a certificate in region {cert_region}, but the balancer is in {region}: an ALB can "
                   f"only use an ACM certificate from its own region; request or import it in {region}")
    if not ck.clean_since(mark):
        return None
    return AlbOptions(name=name, region=region, **values)


def _db_host(value: Any) -> str:
    """A PostgreSQL host as psql takes it: a host name, an IP address, or a socket folder."""
    text = _text(value, "a host name, IP address or socket folder")
    if text.startswith("/"):
        return _absolute_path(text, "a socket folder")
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        raise _Bad(f"must be the host only: write {host!r} here and put {port} in base_url.database.port")
    return _address(text)


def _check_database(ck: _Checker, data: Mapping[str, Any] | None, method: str | None) -> Database | None:
    prefix = "base_url.database"
    if data is None:
        return None
    if method == "guided":
        ck.add(prefix, "is only for method postgres (the database route); with guided the admin sets the base "
                       "URL in Confluence: remove it, or set base_url.method to postgres")
        return None
    mark = ck.mark()
    ck.unknown(data, prefix, DATABASE_KEYS)
    values = {
        "host": ck.field(data, prefix, "host", _db_host, default="localhost"),
        "port": ck.field(data, prefix, "port", _port, default=5432),
        "name": ck.field(data, prefix, "name", lambda v: _word(v, "a database name"), default="confluence"),
        "user": ck.field(data, prefix, "user", lambda v: _word(v, "a database user name"), default="confluence"),
        "psql": ck.field(data, prefix, "psql", _command, default="psql"),
    }
    if not ck.clean_since(mark):
        return None
    return Database(**values)


def _check_base_url(ck: _Checker, data: Mapping[str, Any]) -> BaseUrl | None:
    mark = ck.mark()
    ck.unknown(data, "base_url", BASE_URL_KEYS)
    method = ck.field(data, "base_url", "method", _choice("guided", "postgres"), default="guided")
    database = _check_database(ck, ck.section(data, "base_url", "database"), method)
    if not ck.clean_since(mark):
        return None
    return BaseUrl(method=method, database=database)


def _check_balancer(ck: _Checker, data: Mapping[str, Any], setup_name: str | None,
                    public_url: str | None) -> Balancer | None:
    balancer = ck.section(data, "", "balancer",
                          required="which balancer to set up (kind: apache or alb) and its settings")
    if balancer is None:
        return None
    mark = ck.mark()
    ck.unknown(balancer, "balancer", BALANCER_KEYS)
    kind = ck.field(balancer, "balancer", "kind", _choice("apache", "alb"),
                    required="the kind of balancer: apache or alb")
    https = public_url is not None and public_url.lower().startswith("https://")
    http = public_url is not None and public_url.lower().startswith("http://")
    apache = alb = None

    if kind is not None:
        other = "alb" if kind == "apache" else "apache"
        if balancer.get(other) is not None:
            ck.add(f"balancer.{other}", f"is for kind {other}, but balancer.kind is {kind}: remove it or "
                                        f"change kind")

    if kind in (None, "apache"):
        apache_data = ck.section(balancer, "balancer", "apache",
                                 required="the Apache settings (access, and optionally config_path, tls, ...)"
                                 if kind == "apache" else None)
        if apache_data is not None:
            apache = _check_apache(ck, apache_data, "balancer.apache")
            if kind == "apache":
                tls_given = apache_data.get("tls") is not None
                if https and not tls_given:
                    ck.require("balancer.apache.tls",
                               "the certificate for HTTPS: public_url starts with https:// and Apache "
                               "terminates TLS, so give tls with certificate_file and key_file (absolute "
                               "paths on the Apache machine), or use an http:// public_url")
                elif http and tls_given:
                    ck.add("balancer.apache.tls",
                           "is given, but public_url starts with http://: Apache would serve HTTPS while "
                           "users and Confluence's base URL use plain HTTP; use an https:// public_url, or "
                           "remove tls")
    if kind in (None, "alb"):
        alb_data = ck.section(balancer, "balancer", "alb",
                              required="the ALB settings (region, vpc_id, subnet_ids, ...)"
                              if kind == "alb" else None)
        if alb_data is not None:
            alb = _check_alb(ck, alb_data, "balancer.alb", setup_name if kind == "alb" else None)
            if kind == "alb":
                arn_given = alb_data.get("certificate_arn") is not None
                if https and not arn_given:
                    ck.require("balancer.alb.certificate_arn",
                               "the ARN of the ACM certificate for HTTPS, because public_url starts with "
                               "https:// and the ALB terminates TLS; or use an http:// public_url")
                elif http and arn_given:
                    ck.add("balancer.alb.certificate_arn",
                           "is given, but public_url starts with http://: the ALB would redirect users to "
                           "HTTPS while Confluence's base URL uses plain HTTP; use an https:// public_url, "
                           "or remove certificate_arn")
    if not ck.clean_since(mark) or kind is None:
        return None
    return Balancer(kind=kind, apache=apache if kind == "apache" else None, alb=alb if kind == "alb" else None)


def _check(raw: Any) -> tuple[list[Problem], Answers | None]:
    """Every problem in ``raw``, and the Answers when there is none."""
    ck = _Checker()
    if not isinstance(raw, dict):
        ck.add("(document)", f"must be a mapping of answers (key: value), not {_type_name(raw)}")
        return ck.problems, None

    _find_secrets(raw, "", ck)
    ck.unknown(raw, "", TOP_KEYS)
    version = ck.field(raw, "", "version", _version, default=ANSWERS_VERSION)
    name = ck.field(raw, "", "name", _setup_name,
                    required="a short name for this setup, like wiki-prod (letters, digits, '.', '_', '-')")
    url = ck.field(raw, "", "public_url", _public_url,
                   required="the address users type to reach Confluence, like https://wiki.example.com")

    synchrony = None
    synchrony_data = ck.section(raw, "", "synchrony")
    if synchrony_data is None:
        synchrony = Synchrony() if raw.get("synchrony") is None else None
    else:
        mark = ck.mark()
        ck.unknown(synchrony_data, "synchrony", SYNCHRONY_KEYS)
        mode = ck.field(synchrony_data, "synchrony", "mode", _choice("direct", "internal-proxy"), default="direct")
        port = ck.field(synchrony_data, "synchrony", "port", _port, default=8091)
        if ck.clean_since(mark):
            synchrony = Synchrony(mode=mode, port=port)

    restart = ck.field(raw, "", "restart", _choice("rolling", "manual"), default="rolling")
    restart_timeout = ck.field(raw, "", "restart_timeout",
                               lambda value: _int(value, 10, 7200, "a number of seconds"), default=900)

    base_url = None
    base_url_data = ck.section(raw, "", "base_url")
    if base_url_data is None:
        base_url = BaseUrl() if raw.get("base_url") is None else None
    else:
        base_url = _check_base_url(ck, base_url_data)

    nodes = _check_nodes(ck, raw)
    balancer = _check_balancer(ck, raw, name, url)

    if ck.problems:
        return ck.problems, None
    answers = Answers(name=name, public_url=PublicUrl.parse(url), nodes=nodes,  # type: ignore[arg-type]
                      balancer=balancer, synchrony=synchrony, restart=restart,  # type: ignore[arg-type]
                      restart_timeout=restart_timeout,
                      base_url=base_url, version=version)  # type: ignore[arg-type]
    return [], answers


def find_problems(raw: Any) -> list[Problem]:
    """Every problem in an answers dictionary, section by section; missing keys have ``missing=True``.

    Never raises for bad content: wrong types, unknown keys and secrets are all
    problems. An empty list means :func:`validate` will succeed.
    """
    return _check(raw)[0]


def missing_keys(raw: Any) -> list[str]:
    """The dotted keys a face must still ask the admin for (the problems with ``missing=True``)."""
    return [p.key for p in find_problems(raw) if p.missing]


def validate(raw: Any, source: str | None = None) -> Answers:
    """The typed answers of ``raw``, or one :class:`AnswersError` listing every problem.

    ``source`` (the file's path) is named in the error message. Defaults of
    :mod:`wizard.answers_model` fill absent optional keys; ``key_file`` and
    ``known_hosts`` are kept as written (``~`` is expanded where they are used).
    """
    problems, answers = _check(raw)
    if problems or answers is None:
        raise AnswersError(problems, source=source)
    return answers


# --------------------------------------------------------------------------
# Writing and merging
# --------------------------------------------------------------------------

# The order of the contract's example, so a written file reads like the documentation.
_NODE_ORDER = ("name", "address", "instance_id", "install_dir", "confluence_port", "synchrony_port",
               "restart_command", "access")
_ALB_ORDER = ALB_KEYS


def _tidy(value: Any) -> Any:
    """``value`` without None values or empty lists (absent keys take the same defaults)."""
    if isinstance(value, dict):
        tidy = {}
        for key, item in value.items():
            item = _tidy(item)
            if item is None or item == []:
                continue
            tidy[key] = item
        return tidy
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def _ordered(data: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    result = {key: data[key] for key in order if key in data}
    result.update({key: item for key, item in data.items() if key not in result})
    return result


def answers_to_yaml(answers: Answers) -> str:
    """The answers as an answers file: contract key order, no null values.

    ``validate(yaml.safe_load(answers_to_yaml(a)))`` gives back ``a``. The
    answers hold no secret by design, so the text is safe to save and show.
    """
    data = _tidy(answers.to_dict())
    data["nodes"] = [_ordered(node, _NODE_ORDER) for node in data.get("nodes", [])]
    balancer = data.get("balancer", {})
    if "alb" in balancer:
        balancer["alb"] = _ordered(balancer["alb"], _ALB_ORDER)
    if "apache" in balancer:
        balancer["apache"] = _ordered(balancer["apache"], APACHE_KEYS)
    data = _ordered(data, TOP_KEYS)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    return f"# confluence-lb-wizard answers file (see CONTRACT.md, \"Answers file\")\n{body}"


def merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two answers dictionaries into a new one; neither input is changed.

    Mappings are merged key by key; everything else, lists included, is
    replaced by the override (a list of nodes is one answer, not items to
    combine). A None override means "not answered" and keeps the default, the
    same way a blank key in a file counts as absent.
    """
    result: dict[str, Any] = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        if value is None:
            continue
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result
