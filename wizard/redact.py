"""Masking secrets in text that is stored, logged or put in a runbook.

server.xml can hold ``keystorePass``, ``truststorePass`` and ``password``
attributes (even in commented-out blocks), confluence.cfg.xml holds the
database password as element text, and command lines can carry passwords in
environment assignments, ``--flag value`` pairs and URLs. Whatever leaves
memory goes through ``redact`` first.

Every rule replaces a secret with ``MASK`` and leaves a masked value as it is,
so ``redact`` is idempotent: ``redact(redact(x)) == redact(x)``.
"""

from __future__ import annotations

import re

MASK = "********"

# The end of a name that says its value is a secret: keystorePass, PGPASSWORD,
# aws_secret_access_key, SecretAccessKey, SessionToken, client_secret...
_WORDS = r"(?:pass(?:word|phrase|wd)?|secret(?:[_-]?access[_-]?key)?|token|credentials?)"
# A secret name: anything ending in one of the words.
_NAME = rf"[\w.-]*{_WORDS}"
# A looser name for unquoted assignments (``password_db=...``), where a bare
# ``pass`` is left out because it begins too many ordinary words (passive=...).
_LOOSE_NAME = r"[\w.-]*(?:password|passwd|passphrase|secret|token|credentials?)[\w.-]*|[\w.-]*pass(?![\w.-])"

# PEM private keys: the body goes, the armour lines stay so a reader sees what it was.
_PEM_KEY = re.compile(
    r"(?P<begin>-----BEGIN (?P<kind>[A-Z0-9 ]*?)PRIVATE KEY-----)(?P<body>.*?)"
    r"(?P<end>-----END (?P=kind)PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# <property name="hibernate.connection.password">secret</property> (confluence.cfg.xml).
_SECRET_PROPERTY = re.compile(
    rf"""(?P<open><property\b[^<>]*?\bname\s*=\s*(?P<q>["'])[^"'<>]*{_WORDS}[^"'<>]*(?P=q)[^<>]*>)
        (?P<value>[^<]+)(?P<close></property\s*>)""",
    re.VERBOSE | re.IGNORECASE,
)
# <password>secret</password>, <keystorePass>...</keystorePass>.
_SECRET_ELEMENT = re.compile(
    rf"""(?P<open><(?P<tag>[\w.:-]*{_WORDS})(?:\s[^<>]*)?>)(?P<value>[^<]+)(?P<close></(?P=tag)\s*>)""",
    re.VERBOSE | re.IGNORECASE,
)
# Quoted values: XML attributes (keystorePass="..."), JSON and YAML keys
# ("password": "..."), quoted shell assignments (PGPASSWORD='...').
_SECRET_QUOTED = re.compile(
    rf"""(?P<name>\b{_NAME}["']?[ \t]*[=:][ \t]*)
        (?:"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>[^'\n]*)')""",
    re.VERBOSE | re.IGNORECASE,
)
# key=value or key: value in properties, env files, YAML and command lines.
_SECRET_ASSIGNMENT = re.compile(
    rf"""(?P<name>(?<![^\s;,&?{{(\[`"'-])(?P<key>{_LOOSE_NAME})["']?[ \t]*[=:][ \t]*)
        (?P<value>[^\s'"&;,<>}}\]]+)""",
    re.VERBOSE | re.IGNORECASE,
)
# Command-line flags followed by their value: keytool -storepass x, --password x.
_SECRET_FLAG = re.compile(
    rf"""(?P<name>(?<!\S)(?!--?no-)--?[\w-]*{_WORDS}[ \t]+)
        (?P<value>"[^"\n]*"|'[^'\n]*'|(?!-)[^\s'"]+)""",
    re.VERBOSE | re.IGNORECASE,
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(
    r"""(?P<name>\b[a-z][a-z0-9+.-]*://[^\s:/@'"<>]*:)(?P<value>[^\s/@'"<>]+)(?=@)""",
    re.IGNORECASE,
)
# Authorization: Basic dXNlcjpwYXNz (HTTP headers recorded by a probe).
_AUTHORIZATION = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?
        (?:(?:basic|bearer|digest|negotiate|token)[ \t]+)?)(?P<value>[^\s"']+)""",
    re.VERBOSE | re.IGNORECASE,
)


def _masked(match: re.Match[str]) -> str:
    """The match with its ``value`` group masked (a masked value stays as it is)."""
    value = match["value"]
    if value == MASK:
        return match[0]
    start, end = match.span("value")
    offset = match.start()
    whole = match[0]
    return whole[: start - offset] + MASK + whole[end - offset:]


# Settings named after a secret but holding a switch (PasswordAuthentication=no)
# say nothing secret; masking them would only hide what was configured.
_SWITCHES = frozenset({"yes", "no", "true", "false", "on", "off"})


def _masked_assignment(match: re.Match[str]) -> str:
    if match["value"].lower() in _SWITCHES and not is_secret_name(match["key"]):
        return match[0]
    return _masked(match)


def _masked_quoted(match: re.Match[str]) -> str:
    if match["dq"] is not None:
        return f'{match["name"]}"{MASK if match["dq"] else ""}"'
    return f"{match['name']}'{MASK if match['sq'] else ''}'"


def _masked_pem(match: re.Match[str]) -> str:
    return f"{match['begin']}\n{MASK}\n{match['end']}"


def is_secret_name(name: str) -> bool:
    """Whether a key or attribute called ``name`` holds a secret (``password``, ``keystorePass``...)."""
    return re.fullmatch(_NAME, name, re.IGNORECASE) is not None


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by a mask."""
    if not text:
        return text
    text = _PEM_KEY.sub(_masked_pem, text)
    text = _SECRET_PROPERTY.sub(_masked, text)
    text = _SECRET_ELEMENT.sub(_masked, text)
    text = _AUTHORIZATION.sub(_masked, text)
    text = _SECRET_QUOTED.sub(_masked_quoted, text)
    text = _SECRET_ASSIGNMENT.sub(_masked_assignment, text)
    text = _SECRET_FLAG.sub(_masked, text)
    text = _URL_PASSWORD.sub(_masked, text)
    return text
