"""Jinja2 over ``templates/``: the runbook now, the Apache vhost and others later.

The templates sit at the top of the source tree (``templates/``) and, in an
installed wheel, inside the package (``wizard/templates/``, see pyproject's
force-include), so both places are searched, the package first.

Templates whose name ends in ``.html`` (before an optional ``.j2``) are
rendered with autoescaping; everything else (Markdown, Apache config) is not,
because escaping would corrupt it.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

import wizard
from wizard.errors import WizardError
from wizard.redact import redact

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


def wants_autoescape(template_name: str) -> bool:
    """True for HTML templates (``page.html`` or ``page.html.j2``)."""
    name = template_name.lower()
    if name.endswith(".j2"):
        name = name[: -len(".j2")]
    return name.endswith(_HTML_SUFFIXES)


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


def md_cell(value: Any) -> str:
    """A value made safe for one Markdown table cell (pipes escaped, one line)."""
    if value is None:
        return ""
    text = str(value).replace("|", "\\|")
    if "\n" in text or "\r" in text:
        text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text


def md_fence(value: Any, lang: str = "") -> str:
    """``value`` in a fenced code block whose fence no backtick run inside can close."""
    text = "" if value is None else str(value)
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{lang}\n{body}{fence}"


def md_code(value: Any) -> str:
    """``value`` as inline Markdown code, with a delimiter longer than any backtick run inside."""
    text = "" if value is None else str(value).replace("\n", " ")
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


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
    "diff_line_class": diff_line_class,
    "splitlines": splitlines_filter,
}


@functools.lru_cache(maxsize=None)
def environment(autoescape: bool) -> jinja2.Environment:
    """The Jinja2 environment over ``templates_dir()``, one per autoescape flag."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def render(template_name: str, **context: Any) -> str:
    """Render a template under ``templates/`` (autoescaped when it is HTML)."""
    env = environment(wants_autoescape(template_name))
    try:
        return env.get_template(template_name).render(**context)
    except jinja2.TemplateNotFound as exc:
        # exc.name is the missing one: the template asked for, or one it includes.
        raise WizardError(
            f"The template {exc.name} is missing from {templates_dir()}.",
            "Reinstall confluence-lb-wizard, or restore the templates/ folder of the source tree.",
        ) from exc
