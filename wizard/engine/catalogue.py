"""Which steps exist: the engine runs steps it does not know by name.

The engine imports no step (they build on it). The step package registers its catalogue
here when it is imported (``wizard.steps``), and a test may register its own; the runner
asks this module for the steps of ``--only NAMES`` or for all of them.
"""

from __future__ import annotations

# `--help` loads this module (the steps register here): even `typing` stays out of it, as in
# wizard/cli.py (type checkers honour a plain TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from wizard.engine.step import Step

    Resolver = Callable[[list[str] | None], list[Step[Any]]]

_resolver: Resolver | None = None


def register(resolver: Resolver) -> None:
    """Make ``resolver`` the catalogue (``wizard.steps`` does this when it is imported)."""
    global _resolver
    _resolver = resolver


#: Where the product's own steps are found when nobody registered a catalogue: by name, the
#: way a plugin is discovered, so the engine does not depend on the steps that build on it.
DEFAULT_CATALOGUE = "wizard.steps"


def resolve(names: list[str] | None) -> list[Step[Any]]:
    """The steps for ``names`` in their running order, or every step."""
    if _resolver is None:
        from importlib import import_module

        import_module(DEFAULT_CATALOGUE)  # registers itself
    assert _resolver is not None, f"{DEFAULT_CATALOGUE} did not register its steps"
    return _resolver(names)
