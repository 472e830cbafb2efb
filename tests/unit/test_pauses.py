"""screens/pauses.py: full collections wait while a job runs, and come back after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from screens import pauses


def churn() -> list[list]:
    """Enough new long-lived containers that Python would run a full collection on its own
    (one runs when those waiting for it outnumber a quarter of the older ones)."""
    return [[] for _ in range(max(400_000, len(gc.get_objects()) // 2))]


@contextmanager
def collections_seen() -> Iterator[list[int]]:
    """The generation of every collection that ends inside the block."""
    seen: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        yield seen
    finally:
        gc.callbacks.remove(watch)


def test_churn_makes_python_run_a_full_collection_on_its_own() -> None:
    """The check below could not fail if this did not hold."""
    with collections_seen() as seen:
        churn()
    assert 2 in seen


def test_full_collections_wait_for_the_end_of_the_job_and_then_happen() -> None:
    before = gc.get_threshold()
    try:
        with collections_seen() as seen:
            pauses.hold_full_collections()
            pauses.hold_full_collections()  # a second hold changes nothing (one job at a time)
            assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 100_000
            churn()
            assert seen and 2 not in seen, "a full collection ran during the job"
            seen.clear()
            pauses.release_full_collections()
            assert gc.get_threshold() == before and seen == [2]
            pauses.release_full_collections()  # idempotent: no second collection
            assert seen == [2]
    finally:
        pauses.release_full_collections()
        gc.set_threshold(*before)
