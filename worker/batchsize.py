"""Batch size tuned by measured transaction time, within a lock-hold target.

A batch's rows stay locked for as long as its transaction runs. With a target T (the
mapping's `batch_seconds`), each batch's size follows the time the last one took:

    took < T / 2          → twice as many rows next (at most `ceiling`)
    took > T              → the rows that fit in T at the rate just measured (at least 1)
    otherwise             → the same size

It starts at the mapping's `batch_size`. Doubling is the fastest growth that cannot
overshoot T by more than twice the time of a batch that took T / 2, i.e. one batch of at
most T; a shrink is proportional, so one slow batch (a busy server) is enough to come back
under T. Without a target the size stays `batch_size` (the behaviour before tuning existed).

What a rule learned is kept for the next run on the same database and table
(`LearnedSizes`, one per process): the customers of one shared product database then start
where the last one left off instead of at `batch_size` again, each paying the small first
batches once per process rather than once per customer. A customer whose rows are slower
(more dependents) overshoots T at most in its first batch, which the proportional shrink
corrects; when that batch fails instead (the statement timeout), the size is forgotten and
the next run starts at `batch_size` again (`BatchSizer.failed`). The daemon keeps one
`LearnedSizes` until a configuration reload; `run --once` one for its pairs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class BatchSizer:
    """The size of the next batch (rows); `observe` each applied batch's rows and seconds.

    `target_seconds` None keeps `size` fixed. `ceiling` bounds growth (the connector's key
    limit, the configuration's 50,000). Durations are measured by the caller with a
    monotonic clock (seconds); `observe` reads no clock itself.
    """

    size: int
    ceiling: int
    target_seconds: float | None = None
    # Told every new size (LearnedSizes.keeper): the next run on this table starts there.
    # Told None after a failed batch (`failed`): the next run starts at `batch_size` again.
    keep: Callable[[int | None], None] | None = None

    def __post_init__(self) -> None:
        self.size = max(1, min(self.size, self.ceiling))

    def observe(self, rows: int, seconds: float) -> int:
        """Take one batch's `rows` and transaction `seconds` into account; the next size."""
        target = self.target_seconds
        if target is None or rows <= 0 or seconds < 0:
            return self.size
        if seconds > target:
            fits = int(rows * target / seconds) if seconds > 0 else rows
            self.size = max(1, min(self.size, fits))
        elif seconds < target / 2 and rows >= self.size:
            # Only a full batch says how long a full batch takes: a short last page does not.
            self.size = min(self.ceiling, self.size * 2)
        if self.keep is not None:
            self.keep(self.size)
        return self.size

    def failed(self) -> None:
        """A batch failed (a statement or lock timeout, an error): its time is unknown, so
        what was learned is not trusted. The next run starts at the mapping's `batch_size`
        again rather than at a size that may be the one that timed out (a carried-over size
        is never shrunk by a batch that did not finish)."""
        if self.keep is not None:
            self.keep(None)


class LearnedSizes:
    """The last tuned batch size per key (database, table, action, mapping's size and
    target), shared by the runs of one process; thread-safe (the daemon runs pairs in
    parallel). Sizes are rows; nothing is stored but the key and the number."""

    def __init__(self) -> None:
        self._sizes: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def start(self, key: Hashable, default: int) -> int:
        """The size the next run on `key` starts at: the last one learned, else `default`."""
        with self._lock:
            return self._sizes.get(key, default)

    def keeper(self, key: Hashable) -> Callable[[int | None], None]:
        """A `BatchSizer.keep` that stores each new size under `key` (None forgets it)."""

        def keep(size: int | None) -> None:
            with self._lock:
                if size is None:
                    self._sizes.pop(key, None)
                else:
                    self._sizes[key] = size

        return keep
