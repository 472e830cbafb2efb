"""Finding a literal secret in a command line, so it can be refused before it is stored.

A command the wizard keeps (the answers' reload, configtest and restart commands, the
psql command) is run again later, by rollback among others; masking a secret inside it
would corrupt what runs (``RELOAD_TOKEN=$(cat f) apache2ctl graceful`` must not become
``RELOAD_TOKEN=******** f) ...``). So a command may refer to a secret (``$VAR``,
``${VAR}``, ``$(cat /root/token)``, a backquoted command: the shell fetches it when the
command runs, nothing secret is stored) but may not carry one. ``literal_secret`` says
what it found, for the answers' validation to refuse with the key named; the state's
masking (``wizard.engine.state.redact_state``) leaves a command without one untouched.
"""

from __future__ import annotations

import posixpath
import re

from wizard.engine.redact import is_secret_name

#: Shell operators that end one simple command and start the next.
_OPERATORS = (";", "&", "|", "(", ")", "\n")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
#: Programs whose short option carries a password: ``sshpass -p PW``, ``mysql -pPW``.
_PASSWORD_OPTIONS = {"sshpass": "-p", "mysql": "-p", "mysqladmin": "-p", "mysqldump": "-p"}
_USER_PASSWORD_OPTIONS = ("-u", "--user")  # curl -u user:password
#: Environment names that hold a secret beyond the usual endings (MYSQL_PWD, API_KEY, AUTH...).
_MORE_SECRET_NAMES = re.compile(r"(?:^|_)(?:PWD|PW|API_?KEY|AUTH|AUTHORIZATION|PRIVATE_KEY)$", re.IGNORECASE)


def words(command: str) -> list[list[str]]:
    """The simple commands of ``command``, each as its words with quotes kept, ``$(...)``,
    ``${...}`` and backquotes kept whole (a small shell lexer: enough to tell a value from a
    reference, not to run anything)."""
    commands: list[list[str]] = [[]]
    word = ""
    index, length = 0, len(command)

    def end_word() -> None:
        nonlocal word
        if word:
            commands[-1].append(word)
            word = ""

    while index < length:
        char = command[index]
        if char in "'\"`":
            close = _closing_quote(command, index)
            word += command[index:close + 1]
            index = close + 1
            continue
        if char == "\\" and index + 1 < length:
            word += command[index:index + 2]
            index += 2
            continue
        if char == "$" and index + 1 < length and command[index + 1] in "({":
            close = _closing_bracket(command, index + 1)
            word += command[index:close + 1]
            index = close + 1
            continue
        if char in " \t":
            end_word()
        elif char in _OPERATORS:
            end_word()
            if commands[-1]:
                commands.append([])
        else:
            word += char
        index += 1
    end_word()
    return [c for c in commands if c]


def _closing_quote(text: str, start: int) -> int:
    quote = text[start]
    index = start + 1
    while index < len(text):
        if text[index] == "\\" and quote != "'":
            index += 2
            continue
        if text[index] == quote:
            return index
        index += 1
    return len(text) - 1


def _closing_bracket(text: str, start: int) -> int:
    opening = text[start]
    closing = ")" if opening == "(" else "}"
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char in "'\"`" and opening == "(":
            index = _closing_quote(text, index) + 1
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return len(text) - 1


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def is_reference(value: str) -> bool:
    """Whether a value is fetched when the command runs (``$VAR``, ``${VAR}``, ``$(...)``,
    a backquoted command, or the same in double quotes) rather than written out."""
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        value = value[1:-1]
    return value.startswith("$") or (value.startswith("`") and value.endswith("`"))


def literal_secret(command: str) -> str | None:
    """What literal secret ``command`` carries (``"the value of RELOAD_TOKEN"``), or None.

    Looked for: an assignment to a secret's name (``PGPASSWORD=x``, ``RELOAD_TOKEN=x``), a
    long option with a secret's name (``--token x``, ``--password=x``), ``-u user:password``
    (curl), ``sshpass -p x``, ``mysql -px``, and a URL with ``user:password@``. A value that
    is a reference (``$VAR``, ``$(cat FILE)``) is no secret.
    """
    if _URL_CREDENTIALS.search(command):
        return "a password in a URL (user:password@)"
    for simple in words(command):
        program = ""
        for position, word in enumerate(simple):
            assignment = _ASSIGNMENT.fullmatch(word)
            if assignment and not program:
                name, value = assignment[1], assignment[2]
                if value and (is_secret_name(name) or _MORE_SECRET_NAMES.search(name)) and not is_reference(value):
                    return f"the value of {name}"
                continue
            if not program:
                program = posixpath.basename(_unquoted(word))
                continue
            following = simple[position + 1] if position + 1 < len(simple) else ""
            found = _option_secret(program, word, following)
            if found:
                return found
    return None


def _option_secret(program: str, word: str, following: str) -> str | None:
    bare = _unquoted(word)
    if bare.startswith("--"):
        name, equals, value = bare[2:].partition("=")
        if not equals:
            value = following
        if is_secret_name(name.replace("-", "_")) and value and not value.startswith("-") \
                and not is_reference(value):
            return f"the value of --{name}"
        if f"--{name}" in _USER_PASSWORD_OPTIONS and ":" in _unquoted(value) and not is_reference(value):
            return f"a password in --{name} user:password"
        return None
    short = _PASSWORD_OPTIONS.get(program)
    if short and bare.startswith(short):
        value = bare[len(short):] or (following if program == "sshpass" else "")
        if value and not is_reference(value):
            return f"the password given to {program} {short}"
    if bare in _USER_PASSWORD_OPTIONS and _unquoted(following).partition(":")[2] \
            and not is_reference(following):
        return f"a password in {bare} user:password"
    return None
