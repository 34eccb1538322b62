"""Choosing the queue backend in conf/conduit.yaml (queue:), and what the registry
builds from it."""

from __future__ import annotations

import msgspec
import pytest

from engine import registry
from engine.config.schema import EngineConfig
from engine.queue.base import Queue
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.sql import SqlQueue
from engine.store.database import open_database


def _queue(conf: dict, tmp_path) -> Queue:
    config = msgspec.convert(conf, EngineConfig)
    db = open_database(f"sqlite:///{tmp_path / 'conduit.db'}")
    return registry.QUEUES[config.queue.type](config.queue, db, "host:1:unit")


def test_the_sql_queue_is_the_default(tmp_path) -> None:
    q = _queue({}, tmp_path)
    assert isinstance(q, SqlQueue) and q.owner == "host:1:unit"


def test_redis_is_chosen_with_its_url_and_prefix(tmp_path) -> None:
    q = _queue({"queue": {"type": "redis", "url": "redis://127.0.0.1:6379/0",
                          "prefix": "site-a"}}, tmp_path)
    assert isinstance(q, RedisStreamsQueue) and isinstance(q, Queue)
    assert q.stats() == []  # it reaches that Redis, and nothing is queued under site-a


@pytest.mark.parametrize(("queue", "says"), [
    ({"type": "redis"}, "queue.url is required with type: redis"),
    ({"type": "kafka"}, "Invalid enum value 'kafka' - at `$.queue.type`"),
    ({"type": "redis", "url": "redis://x", "host": "x"}, "unknown field `host`"),
])
def test_a_queue_setting_that_cannot_work_is_refused_with_its_reason(queue, says) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert({"queue": queue}, EngineConfig)
    assert says in str(refused.value)
