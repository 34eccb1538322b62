"""Which messages a Redis Streams queue still holds, for retention (engine.store.retention):
a message with an entry in one of its channel's streams (ready, leased or retrying) or
dead letters must keep its content.

Asked inside the pruner's transaction, after taking the outbox publishing locks of the
channel's destinations (PostgreSQL; on SQLite the transaction's write lock does the same):
no entry moves from the outbox into Redis until the prune commits, so an entry is always
seen either here or in `queue_outbox` (which the prune statement itself checks). A
requeued dead letter is in the outbox before it leaves the dead letters.

The streams are read in one Lua script, atomic in Redis. A destination with more than
MAX_SCAN entries or dead letters is not read through at all: the channel is skipped for
this pass (None), which is safe, and pruned once the backlog is down.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

import sqlalchemy as sa

from engine.store.schema import queue_outbox

MAX_SCAN = 20000

# ARGV: P, channel, max, message ids... -> {0} when a destination has more than max
# entries or dead letters, else {1, ids held...}.
HOLDING = """
local P, prefix, max = ARGV[1], ARGV[2] .. '/', tonumber(ARGV[3])
local want = {}
for i = 4, #ARGV do want[ARGV[i]] = true end
local found = {1}
for _, dest in ipairs(redis.call('SMEMBERS', P .. ':dests')) do
  if string.sub(dest, 1, #prefix) == prefix then
    local s, d = P .. ':s:' .. dest, P .. ':dead:' .. dest
    if redis.call('XLEN', s) > max or redis.call('ZCARD', d) > max then return {0} end
    for _, e in ipairs(redis.call('XRANGE', s, '-', '+')) do
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'm' and want[f[i + 1]] then found[#found + 1] = f[i + 1] end
      end
    end
    for _, m in ipairs(redis.call('ZRANGE', d, 0, -1)) do
      local id = cjson.decode(m)[2]
      if want[id] then found[#found + 1] = id end
    end
  end
end
return found
"""


def publish_lock_key(destination: str) -> int:
    """The advisory lock a lease takes while publishing a destination's outbox
    (engine.queue.redis_streams._publishable)."""
    digest = hashlib.blake2b(f"conduit.outbox:{destination}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RedisHolds:
    """`holds` for the pruner over a RedisStreamsQueue."""

    def __init__(self, q: Any, max_scan: int = MAX_SCAN) -> None:
        from redis import RedisError  # loaded with the queue

        self._errors = RedisError
        self._redis = q._redis
        self._p: str = q._p
        self._script = self._redis.register_script(HOLDING)
        self._max = max_scan

    def __call__(self, conn: sa.Connection, channel: str, ids: list[str]) -> set[str] | None:
        prefix = f"{channel}/"
        try:
            dests = {d for d in self._redis.smembers(f"{self._p}:dests")
                     if d.startswith(prefix)}
        except self._errors:
            return None
        dests |= set(conn.execute(sa.select(queue_outbox.c.destination).distinct()
                                  .where(queue_outbox.c.destination.startswith(
                                      prefix, autoescape=True))).scalars())
        if conn.dialect.name == "postgresql":
            for dest in sorted(dests):
                if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(
                        publish_lock_key(dest)))).scalar():
                    return None  # being published now: next pass
        try:
            found = self._script(keys=[f"{self._p}:ix"],
                                 args=[self._p, channel, self._max, *ids])
        except self._errors:
            return None
        if not found or int(found[0]) == 0:
            return None
        return set(found[1:])


def holds_for(q: Any) -> RedisHolds | None:
    """What the pruner must also ask besides the SQL tables: the Redis queue, if used."""
    streams = sys.modules.get("engine.queue.redis_streams")  # not loaded: no Redis queue
    return RedisHolds(q) if streams and isinstance(q, streams.RedisStreamsQueue) else None
