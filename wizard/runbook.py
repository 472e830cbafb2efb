"""The runbook: what was done to this setup, written for an admin who would do it by hand.

``build_runbook`` turns the state into a plain view (dicts and lists, every
string masked by ``wizard.engine.redact``) and renders it through
``templates/runbook/runbook.{md,html}.j2``; the templates redact every free
text again, so a secret that slipped into the state still never reaches paper.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from wizard import TOOL_NAME, __version__
from wizard.errors import BadInputError
from wizard.render import render
from wizard.engine.state import DONE, State, StepRecord, now_iso, redact_state

STEP_ORDER = ["preflight", "base-url", "connector", "restart", "balancer", "verify"]

FORMATS = {"md": "runbook/runbook.md.j2", "markdown": "runbook/runbook.md.j2",
           "html": "runbook/runbook.html.j2"}

STEP_TITLES = {
    "preflight": "Preflight checks",
    "base-url": "Confluence Base URL",
    "connector": "Tomcat connector behind the proxy",
    "restart": "Restart the nodes",
    "balancer": "Load balancer",
    "verify": "Final verification",
}

# One line per contract step name: why an admin doing this by hand would do it.
STEP_PURPOSES = {
    "preflight": "Read every node and the balancer host without changing anything (reachable, Confluence "
                 "found, ports and install folders known, cluster consistent), so the later steps start "
                 "from known facts.",
    "base-url": "Make Confluence's Base URL the public URL, so the links, redirects and Synchrony "
                "connections Confluence builds use the address users type.",
    "connector": "Set proxyName, proxyPort, scheme and secure on the HTTP Connector in each node's "
                 "conf/server.xml, so Tomcat builds URLs for the public address it sits behind.",
    "restart": "Restart Confluence on the nodes (one at a time when rolling, waiting for /status to say "
               "RUNNING) so the new Connector settings take effect without an outage.",
    "balancer": "Put the load balancer in front of the nodes: sticky sessions for Confluence and a "
                "WebSocket route for Synchrony, on Apache httpd or an AWS Application Load Balancer.",
    "verify": "Test the finished setup through the public URL: each node healthy, sessions sticky, "
              "Synchrony reachable over WebSocket, and the Base URL matching what users type.",
}

BALANCER_LABELS = {"apache": "Apache httpd", "alb": "AWS Application Load Balancer", "nginx": "nginx",
                   "haproxy": "HAProxy"}

# Keys of a recorded change, in the order and with the label a reader expects.
CHANGE_FIELDS = [
    ("path", "File"),
    ("backup", "Backup"),
    ("resource_type", "Resource type"),
    ("resource_id", "Resource"),
    ("arn", "ARN"),
    ("resource_arn", "ARN"),
    ("command", "Command"),
]
_CHANGE_HEAD = {"target", "kind", "summary", "diff", "details"}


def build_runbook(state: State, fmt: str = "md", *, step_order: list[str] | None = None) -> str:
    """The runbook of ``state`` as Markdown (``fmt="md"``) or one self-contained HTML page."""
    template = FORMATS.get(str(fmt).lower())
    if template is None:
        raise BadInputError(f"Unknown runbook format {fmt!r}.", "Use --format md or --format html.")
    context = redact_state(runbook_context(state, step_order=step_order))
    return render(template, **context).rstrip("\n") + "\n"


def write_runbook(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600, like the state).

    A runbook is masked, yet it still maps the setup (hosts, paths, users, commands),
    so it is private to whoever exported it. The temporary file beside the target is
    created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, so a name planted in a shared
    folder (a symlink, a file of another user) is never opened; renaming it over the
    target replaces a symlink there rather than writing through it.
    """
    target = Path(path).expanduser()
    directory = target.parent
    if target.is_dir():
        raise BadInputError(f"{target} is a folder; the runbook needs a file name.",
                            f"Use -o {target / 'runbook.md'} or another file name.")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    descriptor = -1
    temp_name = ""
    for _ in range(16):  # another name on the rare clash with a file already there
        temp_name = str(directory / f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            descriptor = os.open(temp_name, flags, 0o600)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadInputError(f"Could not write the runbook in {directory}: {exc.strerror}.",
                                "Choose a folder that exists and that you may write to with -o.") from exc
    if descriptor < 0:
        raise BadInputError(f"Could not create a temporary file for the runbook in {directory}.",
                            "Remove the stale .*.tmp files there, or choose another folder with -o.")
    try:
        # The umask may only narrow the mode; make it exactly 0600 whatever it was.
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        try:
            os.remove(temp_name)
        except OSError:
            pass
        raise BadInputError(f"Could not write the runbook {target}: {exc.strerror}.",
                            "Free disk space or choose another file with -o.") from exc
    return target


# The view the templates render: plain data, no State objects.

def runbook_context(state: State, *, step_order: list[str] | None = None) -> dict[str, Any]:
    """Everything the runbook templates show, as plain data (not yet redacted)."""
    order = list(step_order) if step_order is not None else list(STEP_ORDER)
    names = order + [name for name in state.steps if name not in order]
    steps = [_step_view(state.steps.get(name) or StepRecord(name=name), index + 1)
             for index, name in enumerate(names)]
    answers = state.answers or {}
    runs = [_run_view(run) for run in state.runs if isinstance(run, dict)]
    counts = {status: sum(1 for s in steps if s["status"] == status)
              for status in ("pending", "planned", "applied", "verified", "failed", "rolled-back")}
    return {
        "tool": TOOL_NAME,
        "tool_version": __version__,
        "state_tool_version": state.tool_version or "",
        "generated": now_iso(),
        "setup": state.setup,
        "public_url": str(answers.get("public_url") or ""),
        "created": state.created,
        "serial": state.serial,
        "schema_version": state.schema_version,
        "runs": runs,
        "last_run": runs[-1] if runs else None,
        "answers": _answers_view(answers),
        "steps": steps,
        "counts": counts,
        "done": sum(1 for s in steps if s["status"] in DONE),
        "total": len(steps),
    }


def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    return {"command": str(run.get("command") or ""), "user": str(run.get("user") or ""),
            "host": str(run.get("host") or ""), "started": run.get("started"),
            "finished": run.get("finished"), "exit_status": run.get("exit_status")}


def _answers_view(answers: dict[str, Any]) -> dict[str, Any]:
    synchrony = answers.get("synchrony") or {}
    balancer = answers.get("balancer") or {}
    kind = str(balancer.get("kind") or "")
    options = balancer.get(kind) if kind else None
    return {
        "public_url": str(answers.get("public_url") or ""),
        "restart": str(answers.get("restart") or ""),
        "synchrony_mode": str(synchrony.get("mode") or ""),
        "synchrony_port": synchrony.get("port"),
        "base_url_method": str((answers.get("base_url") or {}).get("method") or ""),
        "nodes": [_node_view(node) for node in answers.get("nodes") or [] if isinstance(node, dict)],
        "balancer": {"kind": kind, "label": BALANCER_LABELS.get(kind, kind),
                     "settings": _settings(options if isinstance(options, dict) else {})}
        if kind else None,
    }


def _node_view(node: dict[str, Any]) -> dict[str, Any]:
    address = str(node.get("address") or "")
    return {
        "name": str(node.get("name") or ""),
        "address": address,
        "reached_by": describe_access(node.get("access") or {}, address),
        "install_dir": str(node.get("install_dir") or ""),
        "confluence_port": node.get("confluence_port"),
        "synchrony_port": node.get("synchrony_port"),
        "instance_id": node.get("instance_id") or "",
        "restart_command": node.get("restart_command") or "",
    }


def describe_access(access: dict[str, Any], default_host: str = "") -> str:
    """How a machine is reached, as an admin would say it: ``ssh root@lb1:22 via bastion``."""
    transport = str(access.get("transport") or "ssh")
    if transport == "local":
        text = "local (this machine)"
    else:
        host = str(access.get("host") or default_host or "?")
        user = access.get("user")
        port = access.get("port")
        text = f"{transport} {user + '@' if user else ''}{host}{':' + str(port) if port else ''}"
        if access.get("proxy_jump"):
            text += f" via {access['proxy_jump']}"
    if access.get("sudo"):
        text += " (sudo)"
    return text


def _settings(options: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """A balancer's options flattened to ``key: value`` rows, empty ones left out."""
    rows: list[dict[str, str]] = []
    for key, value in options.items():
        name = f"{prefix}{key}"
        if _empty(value):
            continue
        if key == "access" and isinstance(value, dict):
            rows.append({"key": name, "value": describe_access(value)})
        elif isinstance(value, dict):
            rows.extend(_settings(value, prefix=f"{name}."))
        else:
            rows.append({"key": name, "value": _text(value)})
    return rows


def _step_view(record: StepRecord, number: int) -> dict[str, Any]:
    saved = record.to_dict()  # each part as the state file holds it
    checks = [_check_view(c) for c in saved["checks"] if isinstance(c, dict)]
    plan = record.plan if isinstance(record.plan, dict) else None
    return {
        "number": number,
        "name": record.name,
        "title": STEP_TITLES.get(record.name, record.name),
        "purpose": STEP_PURPOSES.get(record.name, ""),
        "status": record.status,
        "updated": record.updated,
        "started": record.started,
        "finished": record.finished,
        "summary": record.summary or "",
        "plan": {
            "summary": str(plan.get("summary") or ""),
            "noop_reason": str(plan.get("noop_reason") or ""),
            "changes": [_change_view(c) for c in plan.get("changes") or [] if isinstance(c, dict)],
            "checks": [_check_view(c) for c in plan.get("checks") or [] if isinstance(c, dict)],
        } if plan else None,
        "changes": [_change_view(c) for c in saved["changes"] if isinstance(c, dict)],
        # Undo runs newest first, so the hand-written steps are listed that way too.
        "undo": [_undo_view(u) for u in reversed(saved["undo"]) if isinstance(u, dict)],
        "checks": checks,
        "failed_checks": sum(1 for c in checks if not c["passed"]),
        "error": _error_view(saved["error"]) if saved["error"] else None,
        "history": [{"at": h.get("at"), "status": str(h.get("status") or ""),
                     "summary": str(h.get("summary") or "")}
                    for h in saved["history"] if isinstance(h, dict)],
    }


def _change_view(change: dict[str, Any]) -> dict[str, Any]:
    """A recorded or planned change: known keys labelled, any other key shown as ``key: value``."""
    merged = {k: v for k, v in change.items() if k not in _CHANGE_HEAD}
    details = change.get("details")
    if isinstance(details, dict):
        # A plan's Change keeps its particulars under "details"; show them like a record's.
        merged.update({k: v for k, v in details.items() if k not in merged})
    elif not _empty(details):
        merged["details"] = details
    fields: list[dict[str, Any]] = []
    for key, label in CHANGE_FIELDS:
        value = merged.pop(key, None)
        if not _empty(value):
            fields.append({"key": label, "value": _text(value), "code": True})
    for key, value in merged.items():
        if not _empty(value):
            fields.append({"key": str(key), "value": _text(value), "code": False})
    return {"target": str(change.get("target") or ""), "kind": str(change.get("kind") or ""),
            "summary": str(change.get("summary") or ""), "fields": fields,
            "diff": str(change.get("diff") or "").rstrip("\n")}


def _check_view(check: dict[str, Any]) -> dict[str, Any]:
    return {"name": str(check.get("name") or ""), "target": str(check.get("target") or ""),
            "passed": bool(check.get("passed")), "seen": str(check.get("seen") or ""),
            "fix": str(check.get("fix") or "")}


def _undo_view(undo: dict[str, Any]) -> dict[str, Any]:
    raw = undo.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {"kind": str(undo.get("kind") or ""), "target": str(undo.get("target") or ""),
            "description": str(undo.get("description") or ""),
            "manual": str(undo.get("manual") or "").rstrip("\n"),
            "data": [{"key": str(k), "value": _text(v)} for k, v in data.items() if not _empty(v)]}


def _error_view(error: Any) -> dict[str, Any]:
    if not isinstance(error, dict):
        return {"message": _text(error), "hint": "", "undone": [], "extra": []}
    undone = error.get("undone") or []
    if not isinstance(undone, list):
        undone = [undone]
    return {
        "message": str(error.get("message") or ""),
        "hint": str(error.get("hint") or ""),
        "undone": [_undone_text(item) for item in undone],
        "extra": [{"key": str(k), "value": _text(v)} for k, v in error.items()
                  if k not in ("message", "hint", "undone") and not _empty(v)],
    }


def _undone_text(item: Any) -> str:
    if isinstance(item, dict):
        text = item.get("description") or item.get("summary") or ""
        target = item.get("target")
        if text and target:
            return f"{target}: {text}"
        return str(text or target or _text(item))
    return _text(item)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text(value: Any) -> str:
    """A value as one readable string: lists joined, mappings as compact JSON."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
