"""One state saved by many threads at once: every caller's record durable, in fewer writes.

The nodes of a step work in parallel, and each records its undo (and then its change)
with a save that must be on disk before it goes on. A save is a full write with two
fsyncs; done one after another under a lock, eight nodes queue for sixteen of them.
``SharedSave`` is a group commit: a caller that arrives while a write is under way
waits for the next write, which covers everything recorded by then, its own record
included. Each caller still returns only after a write that began after its call
has completed, so the rule "the undo is saved before the change" holds for each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class SharedSave:
    def __init__(self, write: Callable[[], None]) -> None:
        self._write = write
        self._condition = threading.Condition()
        self._requested = 0  # tickets handed out: one per call
        self._written = 0  # every ticket up to this one is covered by a completed write
        self._writing = False
        #: How many writes were made (the benchmark and the tests read it).
        self.writes = 0

    def save(self) -> None:
        """Return once a write that began after this call is complete; raise what it raised."""
        with self._condition:
            self._requested += 1
            ticket = self._requested
            while self._written < ticket:
                if not self._writing:
                    break  # no write under way: this caller makes the next one
                self._condition.wait()
            else:
                return  # a write that began after this call covered it
            self._writing = True
            # Everything recorded before these tickets were taken is in the state now.
            covers = self._requested
        try:
            self._write()
        except BaseException:
            with self._condition:
                self._writing = False
                self._condition.notify_all()  # a waiter tries its own write (and meets the error)
            raise
        with self._condition:
            self._writing = False
            self._written = max(self._written, covers)
            self.writes += 1
            self._condition.notify_all()
