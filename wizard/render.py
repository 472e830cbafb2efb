"""Jinja2 over ``templates/``: the runbook now, the Apache vhost and others later.

The templates sit at the top of the source tree (``templates/``) and, in an
installed wheel, inside the package (``wizard/templates/``, see pyproject's
force-include), so both places are searched, the package first.

Templates whose name ends in ``.html`` (before an optional ``.j2``) are
rendered with HTML autoescaping. Templates whose name ends in ``.md`` get the
same for Markdown: every ``{{ ... }}`` is escaped for Markdown (HTML tags and
entities, emphasis, links, code, table pipes, a leading block marker) unless a
``md_*`` filter already made it safe, so a server's answer recorded in the state
(a check's ``seen`` text, an error) shows as text and never as HTML or markup.
Everything else (the Apache config) is not escaped by the environment, because
escaping would corrupt it; its template escapes each value for its place.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

import wizard
from wizard.errors import WizardError
from wizard.engine.redact import MASK, redact

STATUS_ICONS = {
    "pending": "○",
    "planned": "◔",
    "applied": "●",
    "verified": "✔",
    "failed": "✖",
    "rolled-back": "↺",
}
UNKNOWN_STATUS_ICON = "?"
NO_TIME = "—"

_HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".xml")


def _candidates() -> list[Path]:
    """Where the templates may live, in the order they are tried."""
    package_dir = Path(wizard.__file__).resolve().parent
    return [package_dir / "templates", package_dir.parent / "templates"]


def templates_dir() -> Path:
    """The templates folder: the installed package's, else the source tree's."""
    candidates = _candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise WizardError(
        "The templates of confluence-lb-wizard are missing (looked in "
        + " and ".join(str(c) for c in candidates) + ").",
        "Reinstall confluence-lb-wizard (pip install --force-reinstall confluence-lb-wizard), "
        "or run it from a complete source tree.",
    )


def _base_name(template_name: str) -> str:
    name = template_name.lower()
    return name[: -len(".j2")] if name.endswith(".j2") else name


def wants_autoescape(template_name: str) -> bool:
    """True for HTML templates (``page.html`` or ``page.html.j2``)."""
    return _base_name(template_name).endswith(_HTML_SUFFIXES)


def wants_markdown_escape(template_name: str) -> bool:
    """True for Markdown templates (``runbook.md`` or ``runbook.md.j2``)."""
    return _base_name(template_name).endswith((".md", ".markdown"))


def wants_config_escape(template_name: str) -> bool:
    """True for the balancers' configuration files (``*.conf.j2``, ``*.cfg.j2``)."""
    return _base_name(template_name).endswith((".conf", ".cfg"))


class ConfigText(str):
    """Configuration text the template made itself (a macro's lines): written as it is."""


#: What no value may bring into a configuration file: a line end or another control
#: character (a new directive), a double quote or a backslash (the end of a quoted argument).
_CONFIG_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')


class ConfigValueError(WizardError):
    """A value cannot be written into a configuration file safely."""


def conf_raw(value: Any) -> ConfigText:
    """The template's own configuration lines (a macro's output), taken as they are."""
    return ConfigText("" if value is None else str(value))


def _config_finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` of a configuration template: a value that could end its argument or
    its line is refused. The answers are checked for this when they are read; this is the
    second line, for values that come from elsewhere (a server's version, a module's path)."""
    if isinstance(value, ConfigText) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = "" if value is None else str(value)
    bad = _CONFIG_UNSAFE.search(text)
    if bad:
        raise ConfigValueError(
            f"A value for the configuration file holds {bad.group()!r}, which would end its argument or its line: "
            f"{text[:80]!r}. Nothing was written.",
            "Check the answers (paths, names, addresses) and what the balancer host reports; "
            "a value with quotes, backslashes or line breaks cannot be written safely.")
    return text


# Filters.

def redact_filter(value: Any) -> str:
    """Mask secrets in any value shown to a reader (``None`` becomes "")."""
    if value is None:
        return ""
    return redact(str(value))


def status_icon(status: Any) -> str:
    """The checklist symbol of a step status."""
    return STATUS_ICONS.get(str(status), UNKNOWN_STATUS_ICON)


def when(value: Any) -> str:
    """An ISO-8601 time as ``2026-11-20 23:28 UTC``; ``None`` or "" as an em dash.

    Times without a zone are taken as UTC (the state writes UTC). Text that is
    not a time is shown as it is rather than hidden.
    """
    if value is None or value == "":
        return NO_TIME
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class MarkdownText(str):
    """Text already safe to put in Markdown as it is (escaped, code, or the template's own)."""


# What Markdown (CommonMark and GitHub's tables) could read as markup or HTML in a line
# of text: a backslash, code, emphasis, links and images, table pipes, raw HTML and
# entities. ``_`` counts only at a word's edge (inside a word it is never emphasis,
# and paths like install_dir stay readable); the mask's asterisks stay as they are,
# as every other asterisk is escaped and the mask alone opens nothing.
_MD_SPECIAL = re.compile(r"[\\`\[\]|]|\*++|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|[<>&]")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# A heading, quote, list item, setext line or numbered item when a value starts a line.
_MD_LEADING_MARKER = re.compile(r"#{1,6}(?:[ \t]|$)|>|[-+](?:[ \t]|$)|[=-]+[ \t]*$|\d{1,9}[.)](?:[ \t]|$)")


def _md_special(match: re.Match[str]) -> str:
    found = match[0]
    if found in _HTML_ENTITIES:
        return _HTML_ENTITIES[found]
    if found.startswith("*"):
        return found if found == MASK else "\\*" * len(found)
    return "\\" + found


def md_cell(value: Any) -> MarkdownText:
    """A value made safe as one line of Markdown text, a table cell included.

    Line breaks are folded into spaces; HTML tags and entities, emphasis, code,
    links, table pipes and a leading block marker are escaped, so the text reads
    the same as it was recorded and never renders as HTML or markup.
    """
    if value is None:
        return MarkdownText("")
    if isinstance(value, MarkdownText):
        return value
    text = str(value)
    if "\n" in text or "\r" in text:
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = _MD_SPECIAL.sub(_md_special, text)
    stripped = text.lstrip(" ")
    if _MD_LEADING_MARKER.match(stripped):
        indent = len(text) - len(stripped)
        if stripped[0].isdigit():  # 1. or 1) : the escape goes before the dot
            digits = len(stripped) - len(stripped.lstrip("0123456789"))
            text = text[:indent] + stripped[:digits] + "\\" + stripped[digits:]
        else:
            text = text[:indent] + "\\" + stripped
    return MarkdownText(text)


def md_raw(value: Any) -> MarkdownText:
    """The template's own Markdown (a macro's output, an indented fence), taken as it is."""
    return MarkdownText("" if value is None else str(value))


def _markdown_finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` of a Markdown template: escaped unless a ``md_*`` filter made it safe."""
    if isinstance(value, MarkdownText):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return md_cell(value)


def md_fence(value: Any, lang: str = "") -> MarkdownText:
    """``value`` in a fenced code block whose fence no backtick run inside can close."""
    text = "" if value is None else str(value)
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    # The info string follows the fence on its line: only the template's own words go there.
    return MarkdownText(f"{fence}{lang}\n{body}{fence}")


def md_code(value: Any) -> MarkdownText:
    """``value`` as inline Markdown code, with a delimiter longer than any backtick run inside."""
    text = "" if value is None else str(value).replace("\n", " ")
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return MarkdownText(f"{ticks}{pad}{text}{pad}{ticks}")


def diff_line_class(line: str) -> str:
    """The kind of one unified-diff line: ``add``, ``del``, ``hunk``, ``file`` or ``ctx``."""
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith("@@"):
        return "hunk"
    return "ctx"


def splitlines_filter(value: Any) -> list[str]:
    return [] if value is None else str(value).splitlines()


FILTERS = {
    "redact": redact_filter,
    "status_icon": status_icon,
    "when": when,
    "md_cell": md_cell,
    "md_fence": md_fence,
    "md_code": md_code,
    "md_raw": md_raw,
    "conf_raw": conf_raw,
    "diff_line_class": diff_line_class,
    "splitlines": splitlines_filter,
}


@functools.lru_cache(maxsize=None)
def environment(autoescape: bool, markdown: bool = False, config: bool = False) -> jinja2.Environment:
    """The Jinja2 environment over ``templates_dir()``, one per flavour of escaping.

    ``autoescape`` escapes every output for HTML; ``markdown`` escapes it for Markdown
    (see ``md_cell``) unless a ``md_*`` filter already made it safe; ``config`` refuses a
    value that could end a directive's argument or line (see ``_config_finalize``).
    """
    finalize = _markdown_finalize if markdown else (_config_finalize if config else None)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.filters.update(FILTERS)
    return env


def render(template_name: str, **context: Any) -> str:
    """Render a template under ``templates/`` (autoescaped when it is HTML)."""
    env = environment(wants_autoescape(template_name), wants_markdown_escape(template_name),
                      wants_config_escape(template_name))
    try:
        return env.get_template(template_name).render(**context)
    except jinja2.TemplateNotFound as exc:
        # exc.name is the missing one: the template asked for, or one it includes.
        raise WizardError(
            f"The template {exc.name} is missing from {templates_dir()}.",
            "Reinstall confluence-lb-wizard, or restore the templates/ folder of the source tree.",
        ) from exc
