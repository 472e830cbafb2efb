"""The step registry: the contract's step names, in order, and the steps this version has.

Every face (the Textual app, the prompts, the headless commands) asks this
registry which steps exist, so a step added here appears everywhere.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not typing's: the command line imports this module for --help
if TYPE_CHECKING:
    from typing import Any

    from wizard.engine.step import Step

#: The public step names (README.md, "The steps"), in the order a setup runs them.
STEP_NAMES = ("preflight", "base-url", "connector", "restart", "balancer", "verify")

# name -> module holding a ``STEP`` instance (or the instance itself, which is
# how tests plug in a step). A contract name that is not here yet is not
# offered anywhere (and `--only` says so) rather than stubbed.
_MODULES: dict[str, "str | Step[Any]"] = {
    "preflight": "wizard.steps.preflight",
    "base-url": "wizard.steps.base_url",
    "connector": "wizard.steps.connector",
    "restart": "wizard.steps.restart",
    "balancer": "wizard.steps.balancer",
    "verify": "wizard.steps.verify",
}


def available() -> list[str]:
    """The step names this version can run, in contract order."""
    return [name for name in STEP_NAMES if name in _MODULES]


def get(name: str) -> Step[Any]:
    """The step called ``name``; UnknownStepError naming the valid ones otherwise."""
    if name not in _MODULES:
        from wizard.errors import (
            UnknownStepError,  # only on the error path: keeps --help light
        )

        if name in STEP_NAMES:
            raise UnknownStepError(f"The step {name!r} is not available in this version.",
                                   f"Steps available: {', '.join(available())}.")
        raise UnknownStepError(f"There is no step called {name!r}.",
                               f"Step names: {', '.join(STEP_NAMES)}.")
    entry = _MODULES[name]
    return import_module(entry).STEP if isinstance(entry, str) else entry


def all_steps() -> list[Step[Any]]:
    return [get(name) for name in available()]


def resolve(names: list[str] | None) -> list[Step[Any]]:
    """The steps for ``--only NAMES`` (in contract order), or all of them."""
    if not names:
        return all_steps()
    wanted = set()
    for name in names:
        get(name)  # raises a clear error for a bad name
        wanted.add(name)
    return [get(name) for name in available() if name in wanted]


def _register() -> None:
    # The engine runs steps it does not import: this package is its catalogue.
    from wizard.engine import catalogue

    catalogue.register(resolve)


_register()
