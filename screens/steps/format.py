"""How the Textual face words and colours what the engine reports.

Plain functions returning Rich renderables, shared by the step view, the
modals and the results screens, so a plan or a check reads the same wherever
it appears (and the same as the headless `report` module says it).
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from wizard.engine.model import Check, Plan
from wizard.engine.redact import redact


def diff_text(diff: str) -> Text:
    """A unified diff with its lines coloured (added green, removed red, hunks cyan).

    Colours are named ANSI colours so both the light and the dark theme keep
    them readable. Secrets are masked again here: a diff never shows one.
    """
    # Diff lines are never wrapped (a wrapped line reads as two); the dialog scrolls sideways.
    text = Text(no_wrap=True, overflow="ignore")
    for line in redact(diff).rstrip("\n").splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        text.append(line + "\n", style=style)
    return text


def plan_parts(plan: Plan) -> list[Text]:
    """Every change of a plan grouped by target, each with its coloured diff, as parts in
    order: prose (wraps) and diffs (``no_wrap``)."""
    parts: list[Text] = [Text(plan.summary, style="bold")]
    if plan.is_noop:
        parts.append(Text(f"Nothing to change: {plan.noop_reason or plan.summary}", style="italic"))
    for change in plan.changes:
        parts.append(Text.assemble(("\n[" + change.target + "] ", "bold magenta"), redact(change.summary)))
        if change.diff:
            parts.append(diff_text(change.diff))
        elif details := change.details.to_dict():
            shown = {k: v for k, v in details.items() if isinstance(v, (str, int, float, bool))}
            for key, value in shown.items():
                parts.append(Text(f"    {key}: {redact(str(value))}", style="dim"))
    return parts


def checks_table(checks: list[Check] | tuple[Check, ...], *, only_failed: bool = False) -> RenderableType:
    """Checks as a table: verdict, target, name, what was seen, and the fix for a failure."""
    shown = [c for c in checks if not (only_failed and c.passed)]
    if not shown:
        return Text("No checks yet.", style="italic")
    table = Table(box=None, show_header=True, header_style="bold", expand=True, padding=(0, 1))
    table.add_column("", width=4, no_wrap=True)
    table.add_column("Target", no_wrap=True, max_width=12)
    # Both text columns share the width, so neither is squeezed to nothing at 80 columns.
    table.add_column("Check", ratio=1)
    table.add_column("Seen / what to do", ratio=2)
    for check in shown:
        verdict = Text("PASS", style="bold green") if check.passed else Text("FAIL", style="bold red")
        seen = Text(redact(check.seen))
        if not check.passed and check.fix:
            seen.append("\n→ " + redact(check.fix), style="yellow")
        # Text cells: what a check saw is shown as it is, never read as markup.
        table.add_row(verdict, Text(check.target), Text(check.name), seen)
    return table


def checks_verdict(checks: list[Check] | tuple[Check, ...]) -> Text:
    failed = sum(1 for c in checks if not c.passed)
    if not checks:
        return Text("no checks", style="italic")
    if failed:
        return Text(f"{failed} of {len(checks)} check(s) failed", style="bold red")
    return Text(f"all {len(checks)} check(s) passed", style="bold green")
