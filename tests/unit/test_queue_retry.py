"""The retry policy: backoff, jitter bounds, Retry-After, permanent failures."""

from engine.config.base import RetryConfig
from engine.config.types import Duration
from engine.message import Fail, Retry, Sent
from engine.queue.retry import RetryPolicy

CFG = RetryConfig(max_attempts=5, initial_delay=Duration(1), max_delay=Duration(10),
                  multiplier=2.0, jitter=0.2)


def test_exponential_backoff_capped_at_max_delay():
    policy = RetryPolicy(CFG, rng=lambda: 0.5)  # the middle of the jitter band
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 8, 10]


def test_jitter_stays_within_its_band():
    low = RetryPolicy(CFG, rng=lambda: 0.0)
    high = RetryPolicy(CFG, rng=lambda: 0.999999)
    assert low.delay(3) == 4 * 0.8
    assert 4.79 < high.delay(3) <= 4.8


def test_decisions():
    policy = RetryPolicy(CFG, rng=lambda: 0.5)
    assert policy.decide(Sent("200"), 1).action == "confirm"
    assert policy.decide(Fail("HTTP 400"), 1).action == "dead"
    retry = policy.decide(Retry("HTTP 503"), 2)
    assert (retry.action, retry.delay) == ("retry", 2)
    gave_up = policy.decide(Retry("HTTP 503"), 5)
    assert gave_up.action == "dead" and "after 5 attempts" in gave_up.reason


def test_retry_after_is_honoured_but_capped():
    policy = RetryPolicy(CFG, rng=lambda: 0.5)
    assert policy.decide(Retry("429", after=7), 1).delay == 7
    assert policy.decide(Retry("429", after=3600), 1).delay == 10
