"""Which steps exist: the engine runs steps it does not know by name.

The engine imports no step (they build on it). The step package registers its catalogue
here when it is imported (``wizard.steps``), and a test may register its own; the runner
asks this module for the steps of ``--only NAMES`` or for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wizard.engine.step import Step

Resolver = Callable[[list[str] | None], list["Step"]]

_resolver: Resolver | None = None


def register(resolver: Resolver) -> None:
    """Make ``resolver`` the catalogue (``wizard.steps`` does this when it is imported)."""
    global _resolver
    _resolver = resolver


def resolve(names: list[str] | None) -> list[Step]:
    """The steps for ``names`` in their running order, or every step."""
    if _resolver is None:
        # Every face imports wizard.steps before it runs anything; a caller that did not is a bug.
        raise RuntimeError("No step catalogue is registered: import wizard.steps first.")
    return _resolver(names)
