"""RetryPolicy: the only retry logic in the engine.

Destinations report what happened (Sent, Retry, Fail); this decides what to do next:
confirm, try again after a delay (exponential backoff with jitter, at least the
receiver's Retry-After, never over max_delay), or give up into the dead-letter queue.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from engine.config.base import RetryConfig
from engine.message import Delivery, Fail, Retry, Sent


class Decision(NamedTuple):
    action: str  # "confirm" | "retry" | "dead"
    delay: float = 0.0
    reason: str = ""


class RetryPolicy:
    def __init__(self, config: RetryConfig, rng: Callable[[], float] = random.random) -> None:
        self.config = config
        self._rng = rng

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        cfg = self.config
        base = min(cfg.max_delay, cfg.initial_delay * cfg.multiplier ** (attempts - 1))
        spread = base * cfg.jitter
        return max(0.0, min(cfg.max_delay, base - spread + 2 * spread * self._rng()))

    def decide(self, delivery: Delivery, attempts: int) -> Decision:
        """`attempts` counts this attempt too."""
        if isinstance(delivery, Sent):
            return Decision("confirm")
        if isinstance(delivery, Fail):
            return Decision("dead", reason=delivery.reason)
        assert isinstance(delivery, Retry)
        if attempts >= self.config.max_attempts:
            return Decision("dead", reason=f"gave up after {attempts} attempts: {delivery.reason}")
        wait = self.delay(attempts)
        if delivery.after is not None:
            wait = max(wait, min(delivery.after, self.config.max_delay))
        return Decision("retry", wait, delivery.reason)
