"""Duplicate detection: a control id already taken on from the same sender within the
window is acknowledged again but not processed again.

Senders resend when an acknowledgement is late or lost; without this the receiving
systems would see the admission twice. The index lives in memory (reloaded from the store
at start) as 64-bit digests of (sender, control id) with their arrival time, about a
hundred bytes each, under a cap: past it the oldest entries go first, which only shortens
the window. Which stored message came first is asked of the store, on the rare hit.
"""

from __future__ import annotations

import collections
import hashlib
import logging

log = logging.getLogger("conduit.duplicates")

DEFAULT_CAP = 200_000


def _key(sender: str, control_id: str) -> int:
    digest = hashlib.blake2b(f"{sender}\x1f{control_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class DuplicateIndex:
    def __init__(self, window: float, cap: int = DEFAULT_CAP) -> None:
        self.window = window
        self.cap = cap
        self._seen: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._warned = False

    def seen(self, sender: str, control_id: str, now: float) -> bool:
        """Whether this control id was taken on from this sender within the window."""
        if not control_id:
            return False
        self._expire(now)
        return _key(sender, control_id) in self._seen

    def remember(self, sender: str, control_id: str, at: float) -> None:
        if not control_id:
            return
        key = _key(sender, control_id)
        self._seen.pop(key, None)
        self._seen[key] = at
        if len(self._seen) > self.cap:
            self._seen.popitem(last=False)
            if not self._warned:
                self._warned = True
                log.warning("duplicate index full (%d entries): the oldest are forgotten "
                            "before the window ends", self.cap)

    def forget(self, sender: str, control_id: str) -> None:
        """Undo `remember` for a message that was not stored after all."""
        self._seen.pop(_key(sender, control_id), None)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if at >= cutoff:
                return
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)
