"""Masking secrets in text that is stored, logged, shown or put in a runbook.

server.xml can hold ``keystorePass``, ``truststorePass`` and ``password``
attributes (even in commented-out blocks), confluence.cfg.xml holds the
database password as element text, an Apache vhost can hold
``AuthLDAPBindPassword``, ``SetEnv DB_PASSWORD`` or an ``Authorization``
header, and command lines can carry passwords in environment assignments,
``--flag value`` pairs, ``curl -u user:pass``, ``sshpass -p`` and URLs.
Whatever leaves memory goes through ``redact`` first.

The families follow the plugins of Yelp's detect-secrets (keyword, basic-auth,
private-key, AWS), adapted rather than imported: detect-secrets finds secrets
line by line and reports them, it does not mask them in place, its keyword
patterns are not linear-time on hostile input, and it would be one more
dependency on a tool that runs as root.

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
# detect-secrets' keyword list adds keys (api_key, private_key...) and ``pwd``; a bare
# PWD (and OLDPWD) is the working directory, so ``pwd`` counts only after a separator
# (MYSQL_PWD, db.pwd).
_ENDINGS += [f"{word}{sep}key" for word in ("api", "auth", "private") for sep in ("", "_", "-")]
_ENDINGS += [f"{sep}pwd" for sep in ("_", "-", ".")]
# A look-behind per ending, each of fixed width, as Python's re requires.
_ENDS_SECRET = "(?:" + "|".join(f"(?<={ending})" for ending in _ENDINGS) + ")"
# A whole name (taken at once, never backtracked into) that ends like a secret.
_NAME = rf"(?<![\w.-])[\w.-]++{_ENDS_SECRET}"
# Unquoted assignments also catch names with the word inside (password_db=...),
# but a bare ``pass`` only at the end: it begins too many ordinary words (passive=).
_INNER_WORDS = r"(?:password|passwd|passphrase|secret|token|credential|api[_-]?key|auth[_-]?key|private[_-]?key)"
_LOOSE_NAME = rf"(?:(?=[\w.-]*?{_INNER_WORDS})[\w.-]++|[\w.-]++(?:(?<=pass)|(?<=[._-]pwd)))"
# A quoted value or one shell/Apache word.
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+'|[^\s"']++)"""

# PEM private keys (and PGP's and SSH2's armour, as detect-secrets' private-key plugin
# lists them): the body goes, the armour lines stay so a reader sees what it was.
_PEM_KEY = re.compile(
    r"(?P<begin>(?P<dash>-----|---- )BEGIN (?P<kind>[A-Z0-9 ]*?)PRIVATE KEY(?P<block>(?: BLOCK)?)(?: ----|-----))"
    r"(?P<body>.*?)"
    r"(?P<end>(?:-----|---- )END (?P=kind)PRIVATE KEY(?P=block)(?: ----|-----)|\Z)",
    re.DOTALL,
)
# A PuTTY key file's private part: the base64 lines after ``Private-Lines: N``.
_PUTTY_PRIVATE = re.compile(r"(?P<name>^Private-Lines:[ \t]*+\d++\r?\n)(?P<value>(?:[A-Za-z0-9+/=]++(?:\r?\n|\Z))++)",
                            re.MULTILINE | re.IGNORECASE)
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
# key=value or key: value in properties, env files, YAML and command lines
# (``Environment=DB_PASSWORD=x`` in a systemd unit too, hence ``=`` before a name).
_SECRET_ASSIGNMENT = re.compile(
    rf"""(?P<name>(?<![^\s;,&?{{(\[`"'=])(?P<key>{_LOOSE_NAME})["']?[ \t]*+[=:][ \t]*+)
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
# Authorization: Basic dXNlcjpwYXNz (HTTP headers recorded by a probe), and the header
# set by configuration: RequestHeader set Authorization "Basic x" (Apache),
# proxy_set_header Authorization "Bearer x" (nginx).
_AUTHORIZATION = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization(?:["']?[ \t]*+[:=][ \t]*+["']?|[ \t]++["'])
        (?:(?:basic|bearer|digest|negotiate|token)[ \t]++)?)(?P<value>[^\s"']++)""",
    re.VERBOSE | re.IGNORECASE,
)
# A directive whose name holds a secret word, at the start of a line (after a diff's
# marker): AuthLDAPBindPassword x, SessionCryptoPassphrase x, OIDCClientSecret x.
# The word must not begin the name (PasswordAuthentication no, "Token expired"), and a
# value starting with = or : is an assignment, left to the rules below. The name is
# looked into once and then taken whole: backtracking into it would cost its length
# for every secret word inside.
_SECRET_DIRECTIVE = re.compile(
    r"""(?P<name>^[ \t]*+[-+]?[ \t]*+(?P<key>(?=[a-z]\w*?(?:password|passwd|passphrase|secret|token))\w++)[ \t]++)
        (?P<value>"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+'|[^\s"'=:][^\n]*+)""",
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)
# Directives that only name how a secret is asked for: nothing secret in their value.
_NOT_SECRET_DIRECTIVES = frozenset({"sslpassphrasedialog"})
# A variable or header set to a value with a space between them: SetEnv DB_PASSWORD x,
# RequestHeader set X-Auth-Token x, Header always set X-Api-Key x, fastcgi_param DB_PASSWORD x.
_SECRET_SETTING = re.compile(
    rf"""(?P<name>(?<![\w-])(?:setenv|fastcgi_param|uwsgi_param|(?:proxy_set|add)_header
            |(?:request)?header(?:[ \t]++(?:always|onsuccess))?[ \t]++(?:set|add|append|merge|setifempty))
        [ \t]++(?P<key>{_LOOSE_NAME})[ \t]++)(?P<value>{_VALUE})""",
    re.VERBOSE | re.IGNORECASE,
)
# curl -u user:pass, --user user:pass, --proxy-user=user:pass, -U user:pass: the part
# after the first colon goes (without one, curl asks for the password).
_USER_OPTION = re.compile(
    r"""(?P<name>(?<![^\s"'])(?:-[uU][ \t]*+|--(?:proxy-)?user(?:[ \t]++|=))["']?(?P<user>[^\s:"'@/]*+):)
        (?P<value>[^\s"']++)""",
    re.VERBOSE,
)
# sshpass -p pass (after flags without a value: -v, -e), mysql -ppass (the password
# glued to -p; a bare -p asks for it). Bounded repetitions keep the cost linear.
_SSHPASS = re.compile(
    rf"""(?P<name>(?<![\w.-])sshpass(?:[ \t]++-(?!p)[a-oq-z]){{0,4}}[ \t]++-p[ \t]*+)(?P<value>{_VALUE})""",
    re.VERBOSE | re.IGNORECASE,
)
_MYSQL_PASSWORD = re.compile(
    r"""(?P<name>(?<![\w.-])(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)
        (?:[ \t]++(?!-p)[^\s;|&]++){0,20}?[ \t]++-p)(?P<value>[^\s"';|&]++)""",
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


def _masked_word(match: re.Match[str]) -> str:
    """The match with its ``value`` (a quoted value or one word) masked, quotes kept."""
    value = match["value"]
    if value[:1] in ("'", '"') and len(value) >= 2 and value[-1] == value[0]:
        inner = value[1:-1]
        if inner in ("", MASK):
            return match[0]
        return f"{match['name']}{value[0]}{MASK}{value[0]}"
    return _masked(match)


def _masked_directive(match: re.Match[str]) -> str:
    key = match["key"].lower()
    if key in _NOT_SECRET_DIRECTIVES:
        return match[0]
    value = match["value"]
    if value.lower() in _SWITCHES:
        return match[0]
    return _masked_word(match)


def _masked_user_option(match: re.Match[str]) -> str:
    # -u 1000:1000 (docker, ps) is a user and a group, not a password.
    if match["user"].isdigit() and match["value"].isdigit():
        return match[0]
    return _masked(match)


def _masked_putty(match: re.Match[str]) -> str:
    return f"{match['name']}{MASK}\n"


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
_NAMED_SECRET_WORDS = ("pass", "secret", "token", "credential", "pwd", "key")


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by a mask."""
    if not text:
        return text
    if text.isascii():
        lowered = text.lower()
        named = any(word in lowered for word in _NAMED_SECRET_WORDS)
        authorization = "authorization" in lowered
        pem = "private key" in lowered
        putty = "private-lines" in lowered
        url = "://" in text and "@" in text
        user_option = "-u" in lowered and ":" in text
        mysql = ("mysql" in lowered or "mariadb" in lowered) and "-p" in lowered
    else:
        # Case-insensitive matching folds some non-ASCII letters onto ASCII ones
        # (the long s, the Kelvin sign): run every rule rather than guess.
        named = authorization = pem = putty = url = user_option = mysql = True
    if pem:
        text = _PEM_KEY.sub(_masked_pem, text)
    if putty:
        text = _PUTTY_PRIVATE.sub(_masked_putty, text)
    if named:
        text = _SECRET_DIRECTIVE.sub(_masked_directive, text)
        text = _SECRET_PROPERTY.sub(_masked, text)
        text = _SECRET_ELEMENT.sub(_masked, text)
    if authorization:
        text = _AUTHORIZATION.sub(_masked, text)
    if named:
        text = _SECRET_SETTING.sub(_masked_word, text)
        text = _SECRET_QUOTED.sub(_masked_quoted, text)
        text = _SECRET_ASSIGNMENT.sub(_masked_assignment, text)
        # Before the flags: sshpass -ppass would otherwise read as a flag named -ppass.
        text = _SSHPASS.sub(_masked_word, text)
        text = _SECRET_FLAG.sub(_masked, text)
    if user_option:
        text = _USER_OPTION.sub(_masked_user_option, text)
    if mysql:
        text = _MYSQL_PASSWORD.sub(_masked, text)
    if url:
        text = _URL_PASSWORD.sub(_masked, text)
    return text
