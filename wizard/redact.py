"""Masking secrets in text that is stored, logged or put in a runbook.

server.xml can hold ``keystorePass``, ``truststorePass`` and ``password``
attributes (even in commented-out blocks), confluence.cfg.xml holds the
database password as element text, and command lines can carry passwords in
environment assignments, ``--flag value`` pairs and URLs. Whatever leaves
memory goes through ``redact`` first.

Every rule replaces a secret with ``MASK`` and leaves a masked value as it is,
so ``redact`` is idempotent: ``redact(redact(x)) == redact(x)``. The rules
start only where a name starts and never re-scan a name (possessive
quantifiers, fixed-width look-behinds), so a large diff of long tokens is
masked in linear time.
"""

from __future__ import annotations

import functools
import re

MASK = "********"

# How a name that holds a secret ends: keystorePass, PGPASSWORD, passphrase,
# aws_secret_access_key, SecretAccessKey, SessionToken, client_secret...
_ENDINGS = ["pass", "password", "passwd", "passphrase", "secret", "token", "credential", "credentials"]
_ENDINGS += [f"secret{a}access{b}key" for a in ("", "_", "-") for b in ("", "_", "-")]
# A look-behind per ending, each of fixed width, as Python's re requires.
_ENDS_SECRET = "(?:" + "|".join(f"(?<={ending})" for ending in _ENDINGS) + ")"
# A whole name (taken at once, never backtracked into) that ends like a secret.
_NAME = rf"(?<![\w.-])[\w.-]++{_ENDS_SECRET}"
# Unquoted assignments also catch names with the word inside (password_db=...),
# but a bare ``pass`` only at the end: it begins too many ordinary words (passive=).
_INNER_WORDS = r"(?:password|passwd|passphrase|secret|token|credential)"
_LOOSE_NAME = rf"(?:(?=[\w.-]*?{_INNER_WORDS})[\w.-]++|[\w.-]++(?<=pass))"

# PEM private keys: the body goes, the armour lines stay so a reader sees what it was.
_PEM_KEY = re.compile(
    r"(?P<begin>-----BEGIN (?P<kind>[A-Z0-9 ]*?)PRIVATE KEY-----)(?P<body>.*?)"
    r"(?P<end>-----END (?P=kind)PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# <property name="hibernate.connection.password">secret</property> (confluence.cfg.xml).
_SECRET_PROPERTY = re.compile(
    rf"""(?P<open><property\b[^<>]*?\bname\s*=\s*(?P<q>["'])(?=[^"'<>]*?{_INNER_WORDS})[^"'<>]*+(?P=q)[^<>]*+>)
        (?P<value>[^<]++)(?P<close></property\s*>)""",
    re.VERBOSE | re.IGNORECASE,
)
# <password>secret</password>, <keystorePass>...</keystorePass>.
_SECRET_ELEMENT = re.compile(
    rf"""<(?P<tag>[\w.:-]++{_ENDS_SECRET})(?:\s[^<>]*+)?>(?P<value>[^<]++)</(?P=tag)\s*>""",
    re.VERBOSE | re.IGNORECASE,
)
# Quoted values: XML attributes (keystorePass="..."), JSON and YAML keys
# ("password": "..."), quoted shell assignments (PGPASSWORD='...').
_SECRET_QUOTED = re.compile(
    rf"""(?P<name>{_NAME}["']?[ \t]*+[=:][ \t]*+)
        (?:"(?P<dq>(?:[^"\\\n]|\\.)*+)"|'(?P<sq>[^'\n]*+)')""",
    re.VERBOSE | re.IGNORECASE,
)
# key=value or key: value in properties, env files, YAML and command lines.
_SECRET_ASSIGNMENT = re.compile(
    rf"""(?P<name>(?<![^\s;,&?{{(\[`"'])(?P<key>{_LOOSE_NAME})["']?[ \t]*+[=:][ \t]*+)
        (?P<value>[^\s'"&;,<>}}\]]++)""",
    re.VERBOSE | re.IGNORECASE,
)
# Command-line flags followed by their value: keytool -storepass x, --password x.
_SECRET_FLAG = re.compile(
    rf"""(?P<name>(?<!\S)(?!--?no-)--?[\w-]++{_ENDS_SECRET}[ \t]++)
        (?P<value>"[^"\n]*+"|'[^'\n]*+'|(?!-)[^\s'"]++)""",
    re.VERBOSE | re.IGNORECASE,
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(
    r"""(?P<name>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://[^\s:/@'"<>]*+:)(?P<value>[^\s/@'"<>:]++)(?=@)""",
    re.IGNORECASE,
)
# Authorization: Basic dXNlcjpwYXNz (HTTP headers recorded by a probe).
_AUTHORIZATION = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization["']?[ \t]*+[:=][ \t]*+["']?
        (?:(?:basic|bearer|digest|negotiate|token)[ \t]++)?)(?P<value>[^\s"']++)""",
    re.VERBOSE | re.IGNORECASE,
)
# Settings named after a secret but holding a switch (PasswordAuthentication=no)
# say nothing secret; masking them would only hide what was configured.
_SWITCHES = frozenset({"yes", "no", "true", "false", "on", "off"})


def _masked(match: re.Match[str]) -> str:
    """The match with its ``value`` group masked (a masked value stays as it is)."""
    if match["value"] == MASK:
        return match[0]
    start, end = match.span("value")
    offset = match.start()
    whole = match[0]
    return whole[: start - offset] + MASK + whole[end - offset:]


def _masked_assignment(match: re.Match[str]) -> str:
    if match["value"].lower() in _SWITCHES and not is_secret_name(match["key"]):
        return match[0]
    return _masked(match)


def _masked_quoted(match: re.Match[str]) -> str:
    # An empty value is left empty: "no password" is worth seeing and is no secret.
    if match["dq"] is not None:
        return f'{match["name"]}"{MASK if match["dq"] else ""}"'
    return f"{match['name']}'{MASK if match['sq'] else ''}'"


def _masked_pem(match: re.Match[str]) -> str:
    return f"{match['begin']}\n{MASK}\n{match['end']}"


_SECRET_NAME = re.compile(rf"[\w.-]*+{_ENDS_SECRET}", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """Whether a key or attribute called ``name`` holds a secret (``password``, ``keystorePass``...).

    Cached: the state's few dozen key names are asked about on every save."""
    return _SECRET_NAME.fullmatch(name) is not None


# Each rule needs one of these in the text. Most of what is stored (diffs of
# proxyName, check results) has none, and a substring test is far cheaper than
# running the rules over every character.
_NAMED_SECRET_WORDS = ("pass", "secret", "token", "credential")


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by a mask."""
    if not text:
        return text
    if text.isascii():
        lowered = text.lower()
        named = any(word in lowered for word in _NAMED_SECRET_WORDS)
        authorization = "authorization" in lowered
        pem = "private key" in lowered
        url = "://" in text and "@" in text
    else:
        # Case-insensitive matching folds some non-ASCII letters onto ASCII ones
        # (the long s, the Kelvin sign): run every rule rather than guess.
        named = authorization = pem = url = True
    if pem:
        text = _PEM_KEY.sub(_masked_pem, text)
    if named:
        text = _SECRET_PROPERTY.sub(_masked, text)
        text = _SECRET_ELEMENT.sub(_masked, text)
    if authorization:
        text = _AUTHORIZATION.sub(_masked, text)
    if named:
        text = _SECRET_QUOTED.sub(_masked_quoted, text)
        text = _SECRET_ASSIGNMENT.sub(_masked_assignment, text)
        text = _SECRET_FLAG.sub(_masked, text)
    if url:
        text = _URL_PASSWORD.sub(_masked, text)
    return text
