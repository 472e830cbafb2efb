"""The one family of errors an admin can meet.

Every error carries a message written for the admin and the next thing to try
(``hint``). The command line prints both and exits with the error's
``exit_code``; the Textual face shows them in a dialog. Anything that is not a
``WizardError`` reaching the top is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.exit_codes import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERRUPTED,  # noqa: F401
                               EXIT_OK, EXIT_STEP_FAILED)


class WizardError(Exception):
    """An expected failure, explained for the admin."""

    exit_code = EXIT_STEP_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def for_admin(self) -> str:
        """The message and, when there is one, what to try next."""
        if self.hint:
            return f"{self.message}\n  -> {self.hint}"
        return self.message


class BadInputError(WizardError):
    """The admin's input is wrong; nothing was changed."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an answers file, named by its dotted key."""

    key: str
    message: str
    missing: bool = False

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class AnswersError(BadInputError):
    """The answers file is unreadable, invalid or incomplete."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        where = f" in {source}" if source else ""
        missing = [p for p in problems if p.missing]
        invalid = [p for p in problems if not p.missing]
        lines = []
        if invalid:
            lines.append(f"{len(invalid)} invalid answer(s){where}:")
            lines += [f"  - {p}" for p in invalid]
        if missing:
            lines.append(f"{len(missing)} missing answer(s){where}:")
            lines += [f"  - {p}" for p in missing]
        super().__init__(
            "\n".join(lines),
            "Correct the answers file and run the command again; nothing was changed.",
        )


class StateError(WizardError):
    """The state file cannot be read, written or locked."""

    exit_code = EXIT_BAD_INPUT


class StateLockedError(StateError):
    """Another run holds the state file's lock."""


class HostError(WizardError):
    """A machine could not be reached, or refused what was asked of it."""


class HostKeyError(HostError):
    """A host key is unknown or has changed; nothing was sent to the host."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None, *, host: str = "",
                 port: int = 22, key_type: str = "", fingerprint: str = "",
                 key_base64: str = "", changed: bool = False) -> None:
        super().__init__(message, hint)
        self.host = host
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.key_base64 = key_base64
        self.changed = changed


class CommandFailedError(HostError):
    """A command ran on a host and exited non-zero."""

    def __init__(self, message: str, hint: str | None = None, *, command: str = "",
                 exit_status: int | None = None, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message, hint)
        self.command = command
        self.exit_status = exit_status
        self.stdout = stdout
        self.stderr = stderr


class ChangedSincePlanError(WizardError):
    """A file changed between the plan and the apply; nothing was written."""


class StepFailedError(WizardError):
    """A step could not complete; its partial changes were undone."""


class UnknownStepError(BadInputError):
    """A step name that is not one of the contract's step names."""


class Interrupted(WizardError):
    """The admin interrupted the run; the state is saved and resumable."""

    exit_code = EXIT_INTERRUPTED
