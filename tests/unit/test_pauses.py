"""screens/pauses.py: full collections wait while a job runs, and come back after it."""

from __future__ import annotations

import gc

from screens import pauses


def churn() -> list[list]:
    """Enough long-lived containers that Python would run a full collection on its own."""
    return [[] for _ in range(400_000)]


def test_churn_makes_python_run_a_full_collection_on_its_own() -> None:
    """The check below could not fail if this did not hold."""
    collected: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        churn()
    finally:
        gc.callbacks.remove(watch)
    assert 2 in collected


def test_full_collections_wait_for_the_end_of_the_job_and_then_happen() -> None:
    before = gc.get_threshold()
    collected: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        pauses.hold_full_collections()
        pauses.hold_full_collections()  # a second hold changes nothing (one job at a time)
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > 100_000
        churn()
        assert collected and 2 not in collected, "a full collection ran during the job"
        collected.clear()
        pauses.release_full_collections()
        assert gc.get_threshold() == before and collected == [2]
        pauses.release_full_collections()  # idempotent: no second collection
        assert collected == [2]
    finally:
        gc.callbacks.remove(watch)
        pauses.release_full_collections()
        gc.set_threshold(*before)
