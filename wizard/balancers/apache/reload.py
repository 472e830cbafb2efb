"""Testing and reloading Apache: the configuration test before every reload, and proof that the
reloaded server runs (a graceful reload that fails after the test ends the server within a second)."""
from __future__ import annotations

import shlex
import time

from wizard.balancers.apache.facts import config_test_lines, parse_includes
from wizard.errors import StepFailedError
from wizard.transport.hosts import Host

#: How long a reloaded Apache must stay up before the reload counts as done. A graceful
#: reload that fails after the test (a port taken, a key Apache cannot use) ends the
#: server within a fraction of a second.
RELOAD_SETTLE_SECONDS = 1.0


#: How long a reload command that restarts Apache (rather than reloading it) may take to
#: bring the new server up.
RESTART_SECONDS = 10.0


class ApacheConfigTestError(StepFailedError):
    """Apache's own test refused the configuration; nothing was reloaded."""


class ApacheReloadError(StepFailedError):
    """Apache did not come back from the reload."""


def config_test(host: Host, command: str, *, after_change: bool) -> None:
    result = host.run(command, timeout=120.0)
    if result.ok:
        return
    lines = config_test_lines(result.stderr + "\n" + result.stdout)
    if after_change:
        raise ApacheConfigTestError(
            f"Apache's configuration test failed after the change, so Apache was NOT reloaded and keeps "
            f"serving its previous configuration. `{command}` said:\n{lines}",
            "The previous files are put back. Fix what Apache names above (a path in the answers, a module, "
            "another file of the configuration), then run `confluence-lb-wizard apply --only balancer` again.")
    raise ApacheConfigTestError(
        f"The restored Apache configuration fails Apache's own test, so Apache was not reloaded with it "
        f"(it keeps serving what it runs now). `{command}` said:\n{lines}",
        "Fix what Apache names above by hand, then run the test and reload yourself.")


def check_included(host: Host, includes: str, owned: list[str]) -> None:
    """Apache must actually read the file; a config_path outside every Include does nothing.
    ``includes`` lists the files Apache reads; ``owned`` are the wizard's, config_path first."""
    result = host.run(includes, timeout=60.0)
    included = set(parse_includes(result.stdout + "\n" + result.stderr))
    if result.ok and not included.intersection(owned):
        raise StepFailedError(
            f"Apache does not read {owned[0]}: no Include of its configuration covers that file, "
            "so the new configuration would have no effect. Nothing was reloaded.",
            "Put config_path in a folder Apache includes (sites-available on Debian, which the wizard "
            "enables; conf.d on RHEL; the IncludeOptional folder of a self-contained main file).")


def running_pid(host: Host, pid_file: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive, in one round trip.

    kill -0 fails for another user's process even when it lives (/proc tells then), and
    succeeds for a dead server its parent has not reaped yet (a zombie, which /proc shows).
    """
    result = host.run(
        f"pid=$(cat {shlex.quote(pid_file)} 2>/dev/null) && [ -n \"$pid\" ] && "
        f"( kill -0 \"$pid\" 2>/dev/null || test -d \"/proc/$pid\" ) && "
        f"! grep -qs '^State:[[:space:]]*Z' \"/proc/$pid/status\" && echo \"$pid\"", timeout=20.0)
    text = result.stdout.strip()
    return int(text) if result.ok and text.isdigit() else None


def wait_still_running(host: Host, pid_file: str) -> None:
    """After the settle time, the pid file must name a live Apache (the same one after a graceful
    reload, a new one, within RESTART_SECONDS, when the reload command restarts)."""
    time.sleep(RELOAD_SETTLE_SECONDS)
    deadline = time.monotonic() + RESTART_SECONDS
    while running_pid(host, pid_file) is None:
        if time.monotonic() > deadline:
            raise ApacheReloadError(
                f"Apache stopped after the reload (no live process in {pid_file}): the new configuration "
                "passed the test but Apache could not start with it (a port in use, a certificate it cannot use).",
                "The previous configuration is put back and Apache started again with it. Look at Apache's "
                "error log for the reason, fix it, then run the step again.")
        time.sleep(0.2)

