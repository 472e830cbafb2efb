"""Draining a node by rewriting a served kind's one file (nginx): the file with the node taken
out, tested, gracefully reloaded; and back the same way.

Open-source nginx has no runtime API, but its reload is graceful: the new workers take the new
connections and the old ones finish the requests under way (a WebSocket stays on its old worker
until it closes). So a file with the node ``down`` everywhere, tested and reloaded, is a drain.

The file is only rewritten when it is exactly what the balancer step writes (with the nodes
already drained): a file edited by hand, or one whose apply was not finished, is refused,
untouched. The write is atomic and checked against what was read (no backup: the undo of a drain
is its undrain, and the bytes read are at hand to put back), then the server's own test, then the reload watched until a new generation of processes
serves: a failed test or reload puts the previous bytes back (and reloads with them), so the
server keeps serving what it served. The rolling restart records the drain in its own state
before calling this, so the lasting undo of a drain is its undrain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wizard.balancers.reloading import ReloadChange
from wizard.engine.files import rewrite_unchanged
from wizard.engine.step import Context
from wizard.errors import CommandFailedError, StepFailedError, WizardError

if TYPE_CHECKING:
    from wizard.balancers.served import ServedFileKind


class DrainRefusedError(WizardError):
    """The file is not the wizard's as the balancer step wrote it: nothing was changed."""


def set_drained(kind: ServedFileKind, ctx: Context, node: str, drained: bool) -> bool:
    """Take ``node`` out of the kind's file (or put it back), tested and reloaded; False when it
    already was so. Raises ``DrainRefusedError`` (nothing changed) or ``StepFailedError`` (the
    previous file back and serving)."""
    answers = ctx.answers
    facts = kind.inspect(ctx)
    server = facts.server
    current = server.current
    now = kind.drained_in(current.decode("utf-8", "replace")) if current is not None else frozenset()
    what = f"{'drain' if drained else 'undrain'} {node}"
    if current is None or facts.pending_reload or current != kind.render_drained(answers, facts, now).encode("utf-8"):
        raise DrainRefusedError(
            f"{server.config_path} is not what the balancer step writes for these answers (it was edited by hand, "
            f"the answers changed, or an apply was not finished), so the wizard does not rewrite it to {what}. "
            "Nothing was changed.",
            "Run `confluence-lb-wizard plan --only balancer` to see the difference, apply it "
            "(`confluence-lb-wizard apply --only balancer`), then run the restart again.")
    wanted = (now | {node}) if drained else (now - {node})
    if wanted == now:
        return False
    new = kind.render_drained(answers, facts, wanted).encode("utf-8")
    host = ctx.hosts.balancer()
    rewrite_unchanged(host, server.config_path, read=current, new=new)

    def put_back() -> None:
        host.write_atomic(server.config_path, current)

    try:
        kind.config_test(host, server.configtest, after_change=True)
    except StepFailedError as exc:
        put_back()
        raise StepFailedError(f"{kind.product}'s test refused the file that would {what}; the previous file is "
                              f"back and {kind.product} was not reloaded. {exc.message}",
                              "Fix what it names above, then run the restart again.") from exc
    reload = ReloadChange(configtest=server.configtest, reload=server.reload, pid_file=server.pid_file,
                          resume_reload_id=None)
    try:
        kind.reloader(host, reload)()
    except StepFailedError as exc:
        put_back()
        try:
            host.run_checked(server.reload, timeout=120.0, what=f"Reloading {kind.product} with the previous file")
        except CommandFailedError:
            pass  # the error below is the one the admin needs; the server's log says the rest
        raise StepFailedError(f"{kind.product} did not reload to {what}: {exc.message} The previous file is back "
                              f"and {kind.product} was reloaded with it.",
                              f"Look at {kind.product}'s error log, fix what it says, then run the restart "
                              "again.") from exc
    return True
