"""Base URL: Confluence's Server Base URL must be the public URL, or the editor spins.

Read without credentials from a node's applinks manifest (``<ctx>/rest/applinks/1.0/manifest``)
and compared with ``public_url`` by scheme, host, port and context path.

* ``guided`` (the documented way): the admin changes it in General Configuration; the
  plan names the exact page on a node. Watched by someone (``Context.interactive``), the
  step then polls the manifest until it matches, cancellable, with progress. Headless,
  it cannot wait for a person: it says what to do and fails (exit 1) until it matches.
  Nothing to undo: the admin made the change; the old value stays in the state for the
  runbook.
* ``postgres`` (the route Atlassian's own Ansible takes): over SSH on the first node,
  ``psql`` rewrites ``<baseUrl>`` in the ``bandana`` row ``_GLOBAL`` /
  ``atlassian.confluence.settings``, only while Confluence is stopped on every node
  (a running node keeps its cached settings and may write them back). The old value
  is recorded as the undo before the write, and the write happens in one transaction
  that fails if the row changed since it was read. The restart step that follows
  brings the nodes up with the new value.
"""

from __future__ import annotations

import base64
import re
import shlex
import time
from dataclasses import asdict, dataclass
from typing import Any
from xml.sax.saxutils import escape, unescape

from wizard.answers_model import Answers, Database, Node
from wizard.confluence import checks
from wizard.confluence.checks import Reading
from wizard.confluence.nodes import read_node_facts
from wizard.confluence.probes import http_get
from wizard.engine.model import Change, ChangeDetails, Check, Plan, UndoAction
from wizard.engine.redact import MASK
from wizard.engine.step import Context, Journal, Step
from wizard.errors import ChangedSincePlanError, StepFailedError, WizardError
from wizard.transport.hosts import Host

#: How often the guided step looks at the manifest while the admin changes the base URL.
POLL_SECONDS = 2.0
#: How long the guided step waits for the admin before it gives up (and can be run again).
WAIT_SECONDS = 30 * 60.0
#: The undo kind of the database route (performed by this step, see ``undo``).
UNDO_KIND = "base-url-database"
#: Where Confluence keeps its global settings (the route Atlassian's dc-deployments-automation playbooks use for PostgreSQL).
SETTINGS_WHERE = "bandanacontext = '_GLOBAL' and bandanakey = 'atlassian.confluence.settings'"
_BASE_URL_ELEMENT = re.compile(r"<baseUrl>(.*?)</baseUrl>", re.DOTALL)


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class SettingsRow:
    """Confluence's global settings row in ``bandana``, as read before a change."""

    id: int
    md5: str  # of bandanavalue as the database stores it: the guard of the write
    value: str

    @property
    def base_url(self) -> str | None:
        found = _BASE_URL_ELEMENT.findall(self.value)
        return unescape(found[0]).strip() if len(found) == 1 else None

    def with_base_url(self, url: str) -> str:
        """The settings with ``<baseUrl>`` set to ``url``, every other byte kept."""
        return _BASE_URL_ELEMENT.sub(lambda _: f"<baseUrl>{escape(url)}</baseUrl>", self.value, count=1)


@dataclass(frozen=True)
class BaseUrlFacts:
    method: str
    wanted: str  # the public URL as Confluence stores a base URL (no trailing slash)
    current: str | None
    source: str  # where ``current`` was read, for the admin
    node: str  # the node read (guided) or where psql runs (postgres)
    admin_page: str
    manifest: str
    settings: SettingsRow | None = None
    running: tuple[str, ...] = ()  # postgres: nodes whose Confluence still answers


@dataclass(frozen=True, kw_only=True)
class GuidedChange(ChangeDetails):
    """The admin changes the base URL in General Configuration; the wizard watches ``manifest``."""

    old: str | None
    new: str
    admin_page: str
    manifest: str
    read_from: str


@dataclass(frozen=True, kw_only=True)
class DatabaseChange(ChangeDetails):
    """The wizard writes the base URL into the settings row ``bandanaid`` (psql on ``psql_on``)."""

    database: dict[str, Any]
    old: str
    new: str
    bandanaid: int
    psql_on: str


def wanted_base_url(answers: Answers) -> str:
    return answers.public_url.join("")


# --------------------------------------------------------------------------- reading


def read_manifests(ctx: Context) -> list[Reading]:
    """Every node's manifest, in node order (a node whose files cannot be read says so)."""
    def read(node: Node) -> Reading:
        try:
            facts = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
        except WizardError as exc:
            return Reading(node.name, "", "", None, exc.message, False)
        return checks.read_manifest(node, facts)

    return ctx.for_each_node(read)


def running_nodes(ctx: Context) -> tuple[str, ...]:
    """The nodes whose Confluence answers /status at all (any HTTP answer means Tomcat is up)."""
    def answers(node: Node) -> str | None:
        facts = read_node_facts(ctx.hosts.node(node), node, ctx.answers)
        return node.name if http_get(facts.status_url(node.address), timeout=5.0).status is not None else None

    return tuple(name for name in ctx.for_each_node(answers) if name)


def _first_node(answers: Answers) -> Node:
    return answers.nodes[0]


def _describe(db: Database) -> str:
    return f"database {db.name} on {db.host}:{db.port} as {db.user}"


def psql_command(db: Database) -> str:
    """psql, never prompting (-w: the password comes from ~/.pgpass or PGPASSWORD on the node),
    without the user's psqlrc (-X), stopping at the first error."""
    return (f"PGCONNECT_TIMEOUT=15 {db.psql} -X -w -q -A -t -v ON_ERROR_STOP=1 -h {shlex.quote(db.host)} "
            f"-p {db.port} -U {shlex.quote(db.user)} -d {shlex.quote(db.name)}")


# One row per line: id, md5 and the value in base64 (so no byte of the XML can confuse the parsing).
_SELECT = ("select bandanaid || ' ' || md5(bandanavalue) || ' ' || "
           "translate(encode(convert_to(bandanavalue, 'UTF8'), 'base64'), E'\\n', '') "
           f"from bandana where {SETTINGS_WHERE};\n")


def read_settings(host: Host, node: str, db: Database) -> SettingsRow:
    """The settings row, read with psql on ``node``; WizardError naming what psql said."""
    result = host.run(psql_command(db), stdin=_SELECT.encode(), timeout=60.0, sudo=False)
    if not result.ok:
        said = (result.stderr or result.stdout).strip()[:500] or f"exit status {result.exit_status}"
        raise WizardError(
            f"psql on {node} could not read Confluence's settings from the {_describe(db)}: {said}",
            "Check base_url.database in the answers and that psql is installed on the node (or set "
            "base_url.database.psql). The password comes from ~/.pgpass (or PGPASSWORD) of the user the "
            "wizard logs in as on that node, never from the answers file.")
    rows = [line.split(" ") for line in result.stdout.splitlines() if line.strip()]
    if len(rows) != 1 or len(rows[0]) != 3 or not rows[0][0].isdigit():
        count = len(rows)
        raise WizardError(
            f"The {_describe(db)} holds {count} row(s) of Confluence's global settings (bandana, {SETTINGS_WHERE}); "
            "exactly one was expected.",
            "Check that base_url.database names Confluence's own database, or use base_url.method guided.")
    ident, md5, encoded = rows[0]
    value = base64.b64decode(encoded).decode("utf-8")
    return SettingsRow(int(ident), md5, value)


def write_settings(host: Host, node: str, db: Database, row: SettingsRow, value: str) -> None:
    """Replace the row's value in one transaction, only if it is still what was read (by md5)."""
    encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
    sql = ("begin;\n"
           "do $clbw$\n"
           "declare updated integer;\n"
           "begin\n"
           f"  update bandana set bandanavalue = convert_from(decode('{encoded}', 'base64'), 'UTF8')\n"
           f"   where bandanaid = {row.id} and {SETTINGS_WHERE} and md5(bandanavalue) = '{row.md5}';\n"
           "  get diagnostics updated = row_count;\n"
           "  if updated <> 1 then\n"
           "    raise exception 'confluence-lb-wizard: the settings row changed since it was read; nothing "
           "was written';\n"
           "  end if;\n"
           "end\n"
           "$clbw$;\n"
           "commit;\n")
    if not re.fullmatch(r"[0-9a-f]{32}", row.md5):
        raise WizardError(f"psql returned an unexpected checksum {row.md5!r} for the settings row.")
    result = host.run(psql_command(db), stdin=sql.encode(), timeout=120.0, sudo=False)
    if not result.ok:
        said = (result.stderr or result.stdout).strip()[:500] or f"exit status {result.exit_status}"
        if "changed since it was read" in said:
            raise ChangedSincePlanError(
                f"Confluence's settings in the {_describe(db)} changed since the wizard read them; nothing was "
                "written.", "Run the step again to read them afresh.")
        raise StepFailedError(f"psql on {node} could not write the base URL into the {_describe(db)}: {said}",
                              "Nothing was written (the update runs in one transaction). Check that the database "
                              "user may update the bandana table, then run the step again.")


def manual_sql(db: Database, old: str, new: str) -> str:
    """The psql command an admin types to make the same change by hand (Confluence stopped)."""
    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    sql = (f"update bandana set bandanavalue = replace(bandanavalue, {literal(f'<baseUrl>{escape(old)}</baseUrl>')}, "
           f"{literal(f'<baseUrl>{escape(new)}</baseUrl>')}) where {SETTINGS_WHERE};")
    return (f"psql -h {shlex.quote(db.host)} -p {db.port} -U {shlex.quote(db.user)} -d {shlex.quote(db.name)} "
            f"-c {shlex.quote(sql)}")


def _require_stopped(ctx: Context, doing: str) -> None:
    running = running_nodes(ctx)
    if running:
        raise StepFailedError(
            f"Confluence still answers on {', '.join(running)}, so the wizard did not {doing}. A running node "
            "keeps the settings it loaded and may write them back over the change.",
            "Stop Confluence on every node (for example `systemctl stop confluence`), then run the same command "
            "again; the restart step afterwards starts them one at a time.")


# --------------------------------------------------------------------------- the step


class BaseUrlStep(Step[BaseUrlFacts]):
    name = "base-url"
    title = "Confluence's base URL"
    explanation = ("Confluence must know the address users type (its Server Base URL), or the editor spins and "
                   "links break. The wizard reads it from a node's applinks manifest and compares it with the "
                   "public URL; you change it in General Configuration (guided), or the wizard writes it into "
                   "the PostgreSQL database with Confluence stopped (postgres).")
    rollback_note = ("The base URL is back to its old value in the database; start Confluence on every node "
                     "(`apply --only restart`, or your usual way) for it to take effect.")

    def inspect(self, ctx: Context) -> BaseUrlFacts:
        answers = ctx.answers
        wanted = wanted_base_url(answers)
        if answers.base_url.method == "postgres":
            node = _first_node(answers)
            db = answers.base_url.db
            ctx.progress(self.name, node.name, f"reading the settings from the {_describe(db)}")
            row = read_settings(ctx.hosts.node(node), node.name, db)
            facts = read_node_facts(ctx.hosts.node(node), node, answers)
            return BaseUrlFacts("postgres", wanted, row.base_url, f"the {_describe(db)} (psql on {node.name})",
                                node.name, checks.admin_page(node, facts), checks.manifest_url(node, facts),
                                settings=row, running=running_nodes(ctx))
        readings = read_manifests(ctx)
        reading = next((r for r in readings if r.base_url), None)
        if reading is None:
            raise WizardError(
                "No node shows Confluence's base URL: " + "; ".join(f"{r.node}: {r.seen}" for r in readings),
                "Start Confluence on the nodes (the manifest is read at <ctx>/rest/applinks/1.0/manifest, "
                "without credentials), then run the step again.")
        return BaseUrlFacts("guided", wanted, reading.base_url, f"{reading.node}'s manifest ({reading.manifest})",
                            reading.node, reading.admin_page, reading.manifest)

    def plan(self, answers: Answers, facts: BaseUrlFacts) -> Plan:
        if facts.current is not None and checks.same_base_url(facts.current, facts.wanted):
            return Plan(self.name, f"the base URL is already {facts.wanted}",
                        noop_reason=f"The base URL is already {facts.current}, read from {facts.source}.")
        if facts.method == "guided":
            summary = (f"In Confluence, go to General Configuration > Server Base URL ({facts.admin_page}) and set "
                       f"it to {facts.wanted}")
            change = Change(target=facts.node, kind="manual", summary=summary,
                            diff=f"-{facts.current}\n+{facts.wanted}\n",
                            details=GuidedChange(old=facts.current, new=facts.wanted, admin_page=facts.admin_page,
                                                 manifest=facts.manifest, read_from=facts.source))
            return Plan(self.name, f"you change the base URL from {facts.current} to {facts.wanted}", [change])
        db = answers.base_url.db
        if facts.settings is None or facts.current is None:
            raise WizardError(
                f"Confluence's settings in the {_describe(db)} hold no single <baseUrl> element, so the wizard "
                "cannot change it there.", "Use base_url.method guided and set it in General Configuration.")
        stopped = ("" if not facts.running else
                   f"; Confluence still runs on {', '.join(facts.running)}: stop it on every node before applying")
        change = Change(
            target=facts.node, kind="database",
            summary=(f"with Confluence stopped on every node: psql on {facts.node} sets <baseUrl> in the bandana row "
                     f"'_GLOBAL' / 'atlassian.confluence.settings' of the {_describe(db)} from {facts.current} to "
                     f"{facts.wanted}{stopped}"),
            diff=f"-<baseUrl>{escape(facts.current)}</baseUrl>\n+<baseUrl>{escape(facts.wanted)}</baseUrl>\n",
            details=DatabaseChange(database=asdict(db), old=facts.current, new=facts.wanted,
                                   bandanaid=facts.settings.id, psql_on=facts.node),
            payload=facts.settings)
        return Plan(self.name, f"write the base URL {facts.wanted} into the database (was {facts.current})"
                    + stopped, [change])

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        change = plan.changes[0]
        if change.kind == "manual":
            return self._guided(ctx, change, journal)
        return self._postgres(ctx, change, journal)

    # guided

    def _guided(self, ctx: Context, change: Change, journal: Journal) -> str:
        details = change.details
        assert isinstance(details, GuidedChange), f"not a guided change: {details!r}"
        old, wanted, page = details.old, details.new, details.admin_page
        if not ctx.interactive:
            raise StepFailedError(
                f"Confluence's base URL is {old}, not {wanted}. The wizard cannot change it for you with the guided "
                f"method: in Confluence, go to General Configuration > Server Base URL ({page}) and set it to "
                f"{wanted}.",
                "Then run the same command again; it goes on once the base URL matches "
                "(or use base_url.method postgres to have the wizard write it into the database).")
        node = ctx.answers.node(change.target)
        manifest = details.manifest
        ctx.progress(self.name, node.name, f"In Confluence, go to General Configuration > Server Base URL ({page}) "
                                           f"and set it to {wanted}; the wizard watches for it.")
        deadline = time.monotonic() + WAIT_SECONDS
        seen = old
        while True:
            ctx.check_cancelled()
            current, answer = checks.read_base_url(manifest)
            if current is not None and checks.same_base_url(current, wanted):
                break
            seen = current or answer.seen
            if time.monotonic() >= deadline:
                raise StepFailedError(f"The base URL did not become {wanted} within {WAIT_SECONDS / 60:.0f} "
                                      f"minutes (last seen: {seen}).",
                                      f"Set it in General Configuration ({page}), then run the step again.")
            ctx.progress(self.name, node.name, f"waiting for the base URL to become {wanted} (now: {seen})")
            if ctx.cancel.wait(POLL_SECONDS):
                ctx.check_cancelled()
        journal.changed(target=node.name, kind="manual", old=old, new=current,
                        summary=f"the admin changed the base URL from {old} to {current} in General Configuration")
        ctx.progress(self.name, node.name, f"the base URL is {current}", 1.0)
        return f"the base URL is now {current} (was {old}), changed by the admin"

    # postgres

    def _postgres(self, ctx: Context, change: Change, journal: Journal) -> str:
        db = ctx.answers.base_url.db
        node = ctx.answers.node(change.target)
        host = ctx.hosts.node(node)
        details = change.details
        assert isinstance(details, DatabaseChange), f"not a database change: {details!r}"
        old, new = details.old, details.new
        planned: SettingsRow = change.payload
        ctx.progress(self.name, node.name, "checking that Confluence is stopped on every node")
        _require_stopped(ctx, "write the base URL into the database")
        row = read_settings(host, node.name, db)
        if row.md5 != planned.md5:
            raise ChangedSincePlanError(
                f"Confluence's settings in the {_describe(db)} changed since the plan was shown; nothing was written.",
                "Run the step again to see the plan for what is there now.")
        ctx.check_cancelled()
        journal.undo(UndoAction(
            kind=UNDO_KIND, target=node.name,
            description=f"Write the base URL back to {old} in Confluence's database (with Confluence stopped on "
                        "every node).",
            manual=manual_sql(db, new, old),
            data={"database": asdict(db), "old": old, "new": new, "bandanaid": row.id}))
        ctx.progress(self.name, node.name, f"writing {new} into the {_describe(db)}")
        write_settings(host, node.name, db, row, row.with_base_url(new))
        journal.changed(target=node.name, kind="database", old=old, new=new, table="bandana",
                        summary=f"<baseUrl> in the bandana row '_GLOBAL' / 'atlassian.confluence.settings' of the "
                                f"{_describe(db)} set from {old} to {new}")
        ctx.progress(self.name, node.name, "written", 1.0)
        return (f"the base URL {new} is in the database (was {old}); Confluence is still stopped: the restart step "
                "starts the nodes one at a time (any node it has nothing to restart for, start your usual way)")

    def vet_undo(self, answers: Answers, action: UndoAction, label: str) -> UndoAction:
        """A database record is performed only against the answers' own database (the record's is
        compared, never used: its psql command would run), and with URLs for old and new."""
        if action.kind != UNDO_KIND:
            return super().vet_undo(answers, action, label)
        from wizard.engine.undo import UndoRecordError, check_target

        check_target(answers, action, label)
        data, db = action.data, answers.base_url.db
        edited = ("The state file was edited by hand or does not belong to these answers. Put the base URL back "
                  "by hand if needed (General Configuration), then remove the record from the state file.")
        if MASK in db.psql:
            raise UndoRecordError(f"base_url.database.psql in these answers holds a masked secret ({db.psql!r}), "
                                  "so it cannot be run; rollback refused and nothing was undone.",
                                  "Give psql its password through ~/.pgpass, then roll back again.")
        if data.get("database") != asdict(db) or answers.base_url.method != "postgres":
            raise UndoRecordError(f"The state file's {label} names a database that is not the one of these "
                                  "answers (base_url.database); rollback refused and nothing was undone.", edited)
        old, new = data.get("old"), data.get("new")
        if not all(isinstance(u, str) and re.fullmatch(r"https?://[^\s<>\"'\\]+", u) for u in (old, new)):
            raise UndoRecordError(f"The state file's {label} does not hold two base URLs (old and new); rollback "
                                  "refused and nothing was undone.", edited)
        assert isinstance(old, str) and isinstance(new, str)
        return UndoAction(
            kind=UNDO_KIND, target=action.target,
            description=f"Write the base URL back to {old} in Confluence's database (with Confluence stopped on "
                        "every node).",
            manual=manual_sql(db, new, old), data={"database": asdict(db), "old": old, "new": new})

    def undo(self, ctx: Context, action: UndoAction) -> None:
        if action.kind != UNDO_KIND:
            super().undo(ctx, action)
            return
        data = action.data
        db = ctx.answers.base_url.db
        node = ctx.answers.node(action.target)
        host = ctx.hosts.node(node)
        row = read_settings(host, node.name, db)
        current = row.base_url
        if current is not None and checks.same_base_url(current, data["old"]):
            return  # never written, or already put back
        if current is None or not checks.same_base_url(current, data["new"]):
            raise WizardError(
                f"The base URL in the {_describe(db)} is now {current}, not the {data['new']} the wizard wrote; it "
                "was left alone rather than overwrite someone else's change.",
                f"If {data['old']} is still wanted, set it by hand: {action.manual}")
        _require_stopped(ctx, "write the old base URL back into the database")
        write_settings(host, node.name, db, row, row.with_base_url(data["old"]))

    # verify

    def verify(self, ctx: Context) -> list[Check]:
        """Every node that answers reports the public URL; with the database route also the
        database holds it (Confluence may be stopped right after that step, and only loads
        the value when it starts)."""
        answers = ctx.answers
        public = answers.public_url
        result: list[Check] = []
        in_database = False
        if answers.base_url.method == "postgres":
            node = _first_node(answers)
            db = answers.base_url.db
            try:
                current = read_settings(ctx.hosts.node(node), node.name, db).base_url
            except WizardError as exc:
                result.append(Check(f"{checks.BASE_URL} (database)", node.name, False, exc.message, exc.hint or ""))
            else:
                in_database = current is not None and checks.same_base_url(current, public.url)
                result.append(Check(f"{checks.BASE_URL} (database)", node.name, in_database,
                                    f"<baseUrl>{current}</baseUrl> in the {_describe(db)}",
                                    "" if in_database else "Run `confluence-lb-wizard apply --only base-url`."))
        readings = read_manifests(ctx)
        answering = [r for r in readings if r.answered]
        for reading in answering:
            check = checks.base_url_check(reading, public)
            if in_database and not check.passed:
                # The database is right: this node still runs with the settings it loaded before.
                check.fix = (f"The database holds {public.join('')}, but {reading.node} loaded its settings before "
                             f"the change: restart Confluence on {reading.node}.")
            result.append(check)
        if not answering and answers.base_url.method == "guided":
            # A node that does not answer is node RUNNING's to report; only when none answers is the
            # base URL itself unknown.
            first = readings[0]
            result.append(Check(checks.BASE_URL, first.node, False,
                                "; ".join(f"{r.node}: {r.seen}" for r in readings),
                                "Start Confluence on the nodes; the base URL is read from their applinks manifest."))
        return result


STEP = BaseUrlStep()
