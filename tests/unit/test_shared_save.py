"""wizard/engine/shared_save.py: many threads saving one state, each durable before it goes on."""

from __future__ import annotations

import threading
import time

import pytest

from wizard.engine.shared_save import SharedSave


class Disk:
    """A write that snapshots what was recorded, slowly, and notices overlapping writes."""

    def __init__(self) -> None:
        self.recorded: list[int] = []
        self.on_disk: set[int] = set()
        self.active = 0
        self.overlaps = 0
        self.lock = threading.Lock()
        self.fail_next = False

    def write(self) -> None:
        with self.lock:
            self.active += 1
            self.overlaps += self.active > 1
            snapshot = set(self.recorded)
            failing, self.fail_next = self.fail_next, False
        time.sleep(0.01)
        with self.lock:
            self.active -= 1
            if failing:
                raise OSError("disk full")
            self.on_disk = snapshot  # a later write replaces the file whole


def test_every_caller_is_on_disk_when_its_save_returns_and_writes_never_overlap() -> None:
    disk = Disk()
    shared = SharedSave(disk.write)
    missing: list[int] = []

    def node(number: int) -> None:
        for step in range(5):
            record = number * 100 + step
            with disk.lock:
                disk.recorded.append(record)
            shared.save()
            with disk.lock:
                if record not in disk.on_disk:
                    missing.append(record)

    threads = [threading.Thread(target=node, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missing == [] and disk.overlaps == 0
    assert disk.on_disk == set(disk.recorded)
    assert shared.writes < 40, "callers arriving during a write share the next one"


def test_a_failed_write_reaches_its_caller_and_the_next_caller_writes_again() -> None:
    disk = Disk()
    shared = SharedSave(disk.write)
    disk.recorded.append(1)
    disk.fail_next = True
    with pytest.raises(OSError, match="disk full"):
        shared.save()
    assert disk.on_disk == set()
    shared.save()
    assert disk.on_disk == {1} and shared.writes == 1
