"""Draining a node in Apache for a rolling restart: its members to drain mode, tested, reloaded.

Drain mode (``status=+D`` on the node's BalancerMember lines, in every balancer) is the
one that holds sticky users too: Apache sends the member no new request, whatever the
ROUTEID cookie says, and lets the requests under way finish (the ``N`` flag still sends
it its sticky users, whose requests then fail while it restarts). The flag lives in
the vhost file rather than in the balancer manager: a manager change is lost at the
next reload unless BalancerPersist is on, and the manager is closed to the wizard.

The vhost is only rewritten when it is exactly what the balancer step writes (with the
nodes already drained): a file edited by hand, or one whose apply was not finished,
is refused, untouched. The write is atomic and checked against what was read (no backup:
the undo of a drain is its undrain, and the bytes read are at hand to put back), then Apache's own test,
then a graceful reload: a failed test or reload puts the previous bytes back, so Apache
keeps serving what it served. The rolling restart records the drain in its own state
before calling this, so the lasting undo of a drain is its undrain.
"""
from __future__ import annotations

from wizard.balancers.apache.reload import ApacheReloadError, config_test, running_pid, wait_still_running
from wizard.balancers.apache.vhost import BalancerFacts, build_vhost, drained_in, render_vhost
from wizard.engine.files import rewrite_unchanged
from wizard.engine.step import Context
from wizard.errors import CommandFailedError, StepFailedError, WizardError
from wizard.transport.hosts import Host


class DrainRefusedError(WizardError):
    """The vhost is not the wizard's as the balancer step wrote it: nothing was changed."""


def set_drained(ctx: Context, facts: BalancerFacts, pid_file: str | None, node: str, drained: bool) -> bool:
    """Put ``node`` in drain mode (or out of it) in Apache; False when it already was so.

    ``facts`` were just read by the balancer step's ``inspect``; ``pid_file`` is Apache's.
    """
    apache = facts.apache
    current = apache.current
    text = current.decode("utf-8", "replace") if current is not None else ""
    now = drained_in(text)
    expected = render_vhost(build_vhost(ctx.answers, facts, now)).encode("utf-8")
    if current is None or current != expected or facts.pending_reload:
        raise DrainRefusedError(
            f"{apache.config_path} is not what the balancer step writes for these answers (it was edited by "
            "hand, the answers changed, or an apply was not finished), so the wizard does not rewrite it to "
            f"{'drain' if drained else 'undrain'} {node}. Nothing was changed.",
            "Run `confluence-lb-wizard plan --only balancer` to see the difference, apply it "
            "(`confluence-lb-wizard apply --only balancer`), then run the restart again.")
    wanted = (now | {node}) if drained else (now - {node})
    if wanted == now:
        return False
    new = render_vhost(build_vhost(ctx.answers, facts, wanted)).encode("utf-8")
    host = ctx.hosts.balancer()
    what = f"{'drain' if drained else 'undrain'} {node}"
    rewrite_unchanged(host, apache.config_path, read=current, new=new)
    commands = apache.commands

    def put_back() -> None:
        host.write_atomic(apache.config_path, current)

    try:
        config_test(host, commands.configtest, after_change=True)
    except StepFailedError as exc:
        put_back()
        raise StepFailedError(f"Apache's test refused the vhost that would {what}; the previous file is back "
                              f"and Apache was not reloaded. {exc.message}",
                              "Fix what Apache names above, then run the restart again.") from exc
    was_running = running_pid(host, pid_file) is not None if pid_file else False
    try:
        host.run_checked(commands.reload, timeout=120.0, what=f"Reloading Apache to {what}")
        if was_running and pid_file:
            wait_still_running(host, pid_file)
    except (CommandFailedError, ApacheReloadError) as exc:
        put_back()
        _reload_quietly(host, commands.reload)
        raise StepFailedError(f"Apache did not reload to {what}: {exc.message} The previous file is back and "
                              "Apache was reloaded with it.",
                              "Look at Apache's error log, fix what it says, then run the restart again.") from exc
    return True


def _reload_quietly(host: Host, command: str) -> None:
    try:
        host.run_checked(command, timeout=120.0, what="Reloading Apache with the previous file")
    except CommandFailedError:
        pass  # the error above is the one the admin needs; the log says the rest
