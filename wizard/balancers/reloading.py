"""The apply order of every balancer whose configuration is files on its own machine (Apache,
nginx, HAProxy): the safety is in the order, so it is written once, here.

1. The undo of the final reload is recorded first, so it is undone last: once every file is
   back, the restored configuration is tested and the server reloaded with it.
2. A "reload pending" marker goes into the step's record before anything is written
   (``wizard.balancers.reload_marker``): an apply killed between the writes and the reload is
   finished by the next one, which plans the test and reload although the files are in place.
3. Each change in plan order, its undo recorded before it is made: a file through
   ``replace_file`` (backup, atomic replacement), any other change by the kind (Apache enables a
   site or a module).
4. The server's own configuration test. A failed test leaves the server on what it served,
   and the runner performs the undo recorded above: the previous files come back.
5. The kind's proof that the server reads the file at all.
6. The reload, recorded before it runs (one that fails half-way is still undone), then the
   kind's proof that the server runs the new configuration.
7. The "reloaded" marker: nothing is pending any more.

A kind subclasses ``ReloadingKind`` and says what differs: its reload undo, its test, its proof
that the file is read, how it reloads and watches the reload, and any change that is not a file.
"""

from __future__ import annotations

import re
import secrets
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from wizard.answers_model import Answers
from wizard.balancers.kind import BalancerKind
from wizard.balancers.reload_marker import RELOAD_DONE, RELOAD_PENDING
from wizard.engine.files import replace_file
from wizard.engine.model import BALANCER, Change, ChangeDetails, FileChange, Plan, UndoAction
from wizard.engine.redact import MASK
from wizard.engine.step import Context, FactsT, Journal
from wizard.engine.undo import UndoRecordError
from wizard.transport.hosts import Host

#: What a reload record's id may be: the hex the apply draws, or the mask older versions saved.
_RELOAD_ID = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, kw_only=True)
class ReloadChange(ChangeDetails):
    """The last change of every such plan: test the configuration, and only then reload.

    ``resume_reload_id`` names the reload of an earlier apply stopped before it reloaded (that
    apply's reload undo stays the one undone last)."""

    role = "reload"

    configtest: str
    reload: str
    pid_file: str | None
    resume_reload_id: str | None


#: Runs the reload and returns once the server runs the new configuration (or raises).
Reloader = Callable[[], None]


class ReloadingKind(BalancerKind[FactsT]):
    """A balancer kind whose configuration is files on the balancer's machine, tested and reloaded."""

    #: How the admin knows the server ("Apache", "nginx", "HAProxy").
    product: ClassVar[str]
    #: The undo kind of the final reload ("apache-reload", "nginx-reload").
    reload_undo_kind: ClassVar[str]

    # What each kind says.

    @abstractmethod
    def reload_undo(self, answers: Answers, token: str) -> UndoAction:
        """The undo of the reload ``token``: test the restored files and reload, with commands
        chosen when it is performed (never a command stored in the state file)."""

    @abstractmethod
    def config_test(self, host: Host, command: str, *, after_change: bool) -> None:
        """The server's own configuration test; a ``StepFailedError`` with its words when it fails."""

    def confirm_loaded(self, host: Host, answers: Answers, reload: ReloadChange) -> None:
        """After the test, before the reload: the server really reads the file (nothing by default)."""

    @abstractmethod
    def reloader(self, host: Host, reload: ReloadChange) -> Reloader:
        """Called just before the reload is recorded: looks at what runs now (the processes a new
        generation must differ from), and returns what runs the reload and waits for its proof."""

    def apply_other(self, ctx: Context, host: Host, change: Change, journal: Journal) -> None:
        """Make a planned change that is neither a file nor the reload, its undo recorded first.
        A kind whose plans hold only those has none."""
        raise AssertionError(f"{type(self).__name__} planned a change it cannot make: {change.details!r}")

    # The order.

    def apply(self, ctx: Context, plan: Plan, journal: Journal) -> str:
        host = ctx.hosts.balancer()
        final = next(c.details for c in plan.changes if isinstance(c.details, ReloadChange))
        resumed = final.resume_reload_id
        token = resumed or secrets.token_hex(8)
        if not resumed:
            # Recorded first, so undone last: once the files are back, test them and reload.
            journal.undo(self.reload_undo(ctx.answers, token))
            # Before any write: a kill from here on leaves a pending reload the next apply finishes.
            journal.changed(target=BALANCER, kind=RELOAD_PENDING, reload_id=token,
                            summary=f"{self.product} is to be tested and reloaded once the changes below are made")
        # Resuming: the interrupted apply's reload undo (recorded before its writes) stays the
        # last one undone, after its files and this apply's are back.
        for change in plan.changes:
            ctx.check_cancelled()
            details = change.details
            if isinstance(details, FileChange):
                before, after = change.payload
                ctx.progress(self.name, BALANCER, f"writing {details.path}")
                replace_file(host, BALANCER, details.path, planned_from=before, new=after,
                             journal=journal, summary=change.summary)
            elif not isinstance(details, ReloadChange):
                self.apply_other(ctx, host, change, journal)
        ctx.progress(self.name, BALANCER, "testing the configuration")
        self.config_test(host, final.configtest, after_change=True)
        self.confirm_loaded(host, ctx.answers, final)
        reload = self.reloader(host, final)
        # Recorded before the reload runs: a reload that fails half-way still gets undone.
        journal.changed(target=BALANCER, kind="reload", reload_id=token, command=final.reload,
                        summary=f"reloaded {self.product}: {final.reload}")
        ctx.progress(self.name, BALANCER, f"reloading {self.product}")
        reload()
        journal.changed(target=BALANCER, kind=RELOAD_DONE, reload_id=token,
                        summary=f"{self.product} serves the new configuration")
        ctx.progress(self.name, BALANCER, "reloaded", 1.0)
        if len(plan.changes) == 1:
            return f"{self.product} tested and reloaded, finishing the apply that was stopped before its reload"
        return (f"{self.product} configured, tested and reloaded ({len(plan.changes) - 1} change(s)); it serves "
                "the new configuration")

    # The reload's undo record, checked.

    def vet_reload_id(self, action: UndoAction, label: str, hint: str) -> str:
        """The id of a reload undo record read back from the state file, or ``UndoRecordError``.

        Older versions called it "token", and the state's masking turned it into MASK on both
        sides (the change and the undo): such a record matches any reload of the step."""
        if action.target != BALANCER:
            raise UndoRecordError(f"The state file's {label} ({action.kind}) names {action.target!r}, not the "
                                  "balancer; rollback refused and nothing was undone.", hint)
        token = action.data.get("reload_id", action.data.get("token"))
        if not isinstance(token, str) or not (token == MASK or _RELOAD_ID.fullmatch(token)):
            raise UndoRecordError(f"The state file's {label} (a reload of {self.product}) has no valid token; "
                                  "rollback refused and nothing was undone.", hint)
        return token

    def refuse_masked_commands(self, commands: dict[str, str | None], label: str) -> None:
        """A command of the answers that holds a masked secret cannot be run (a masked secret makes
        it something else, a syntax error at best): ``UndoRecordError`` naming the answers' key."""
        for key, command in commands.items():
            if command and MASK in command:
                raise UndoRecordError(
                    f"balancer.{self.kind}.{key} in these answers holds a masked secret ({command!r}), so it "
                    "cannot be run; rollback refused and nothing was undone.",
                    "Put the real command back in the answers held by the state file, reading the secret at "
                    "run time ($(cat FILE) or $VARIABLE) instead of writing it, then roll back again.")
