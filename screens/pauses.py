"""Python's full garbage collections, kept out of the way while the engine works.

A full (generation 2) collection walks every object the process holds; with Textual,
paramiko, boto3 and the engine loaded that takes 40 to 80 ms, during which the screen
is not drawn. While a step runs the wizard redraws often (progress, the live log, the
plan dialog), so such a pause shows as a frozen screen (tests/bench/bench_ui.py
measures it). Two standard remedies, both for the Textual face only:

* ``freeze_startup_objects``: once the first screen is drawn, what exists then (modules,
  classes, the app itself) lives as long as the process; ``gc.freeze`` moves it out of
  every later collection's walk.
* ``hold_full_collections`` while a job runs: the young generations are still collected
  as usual (cheap), the full collection waits for ``release_full_collections`` at the
  job's end, when the screen is idle. A job lasts minutes at most, so the garbage held
  back meanwhile stays small.
"""

from __future__ import annotations

import gc

#: A generation-2 threshold no job reaches: full collections wait for the job's end.
_NEVER = 1_000_000

_held: tuple[int, int, int] | None = None


def freeze_startup_objects() -> None:
    gc.freeze()


def hold_full_collections() -> None:
    global _held
    if _held is None:
        _held = gc.get_threshold()
        gc.set_threshold(_held[0], _held[1], _NEVER)


def release_full_collections() -> None:
    """Back to Python's own thresholds, and the full collection that was held back, now."""
    global _held
    if _held is not None:
        gc.set_threshold(*_held)
        _held = None
        gc.collect()
