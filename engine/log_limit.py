"""A log line that a flood would repeat (refused peers, a store away for a minute)
written once per key and period, with a count of those held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


class RateLimitedLog:
    """At most one line per key every `every` seconds; the lines held back in between are
    counted into the next one, so a flood of refusals costs a handful of lines."""

    def __init__(self, logger: logging.Logger, every: float = 60.0, *, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._every = every
        self._max_keys = max_keys  # many distinct peers share one key beyond this
        self._clock = clock
        self._last: dict[Hashable, list] = {}  # key -> [time of last line, held back since]

    def log(self, level: int, key: Hashable, message: str, *args: object) -> None:
        now = self._clock()
        if key not in self._last and len(self._last) >= self._max_keys:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self._every}
            if len(self._last) >= self._max_keys:
                key = "(many keys)"
        entry = self._last.get(key)
        if entry is not None and now - entry[0] < self._every:
            entry[1] += 1
            return
        held = entry[1] if entry is not None else 0
        self._last[key] = [now, 0]
        if held:
            message += f" ({held} more like it in the last {self._every:g} s not logged)"
        self._logger.log(level, message, *args)
