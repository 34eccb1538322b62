"""Duplicate detection: a control id already taken on from the same sender within the
window is acknowledged again but not processed again.

Senders resend when an acknowledgement is late or lost; without this the receiving
systems would see the admission twice. The index lives in memory (reloaded from the store
at start) with a cap, so a flood cannot exhaust memory: past the cap the oldest entries
go first, which only shortens the window.
"""

from __future__ import annotations

import collections
import logging

log = logging.getLogger("conduit.duplicates")

DEFAULT_CAP = 500_000


class DuplicateIndex:
    def __init__(self, window: float, cap: int = DEFAULT_CAP) -> None:
        self.window = window
        self.cap = cap
        # (sender, control id) -> (message id, time); insertion order is arrival order
        self._seen: collections.OrderedDict[tuple[str, str], tuple[str, float]] = (
            collections.OrderedDict())
        self._warned = False

    def original(self, sender: str, control_id: str, now: float) -> str | None:
        """The message id that first brought this control id, if still in the window."""
        if not control_id:
            return None
        self._expire(now)
        found = self._seen.get((sender, control_id))
        return found[0] if found is not None else None

    def remember(self, sender: str, control_id: str, message_id: str, at: float) -> None:
        if not control_id:
            return
        key = (sender, control_id)
        self._seen.pop(key, None)
        self._seen[key] = (message_id, at)
        if len(self._seen) > self.cap:
            self._seen.popitem(last=False)
            if not self._warned:
                self._warned = True
                log.warning("duplicate index full (%d entries): the oldest are forgotten "
                            "before the window ends", self.cap)

    def forget(self, sender: str, control_id: str, message_id: str) -> None:
        """Undo `remember` for a message that was not stored after all."""
        key = (sender, control_id)
        if self._seen.get(key, ("",))[0] == message_id:
            del self._seen[key]

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        while self._seen:
            _, (_, at) = next(iter(self._seen.items()))
            if at >= cutoff:
                return
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
