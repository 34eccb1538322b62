"""Retention: the content of a channel's messages older than its `retention` is pruned.

What goes: the sealed raw message (`messages.content`), its mapped outputs
(`outputs.content`) and the receivers' answers kept with its dead letters
(`dead_letter_answers.content`). What stays: every metadata row (ids, type, control id,
status, hashes, the keyed patient pseudonym) and the audit trail, which holds no PHI, so
the status page, search and `conduit audit show` still resolve the id. A pruned record
has `key_id` PRUNED and empty content; whatever would open it says so instead.

A message is never pruned while any queue still holds an entry for it (ready, leased,
retrying or dead): the `queue` table (SQL queue), the `queue_outbox` (entries not yet
published to an outside queue) and, through `holds`, the outside queue itself (Redis
Streams). Those are listed in `retention_held` and looked at again on every pass.

The pruner moves through each channel's messages in id order (ids sort by the time the
engine took the message on) in batches of BATCH, one short transaction each through the
Writer, so it never holds the store's write lock long. `retention_marks` remembers how
far it got. On PostgreSQL each batch takes a per-channel advisory lock without waiting:
two engines pruning one store take turns, and a batch finds the other's work done.
Every batch that pruned something records one audit event (Kind.ADMIN, action
"retention-pruned": channel, cut-off, counts and the message ids).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.errors import ConduitError
from engine.events import Event, Kind
from engine.message import message_id_floor
from engine.security.crypto import PRUNED
from engine.store.schema import (
    dead_letter_answers,
    messages,
    outputs,
    queue,
    queue_outbox,
    retention_held,
    retention_marks,
)
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.retention")

BATCH = 500  # messages a transaction looks at
PASS_SECONDS = 300.0  # how often the running engine prunes
ACTOR = "retention"

# (connection, channel, message ids) -> the ids an outside queue still holds, or None
# when it cannot tell now (unreachable, or busy: try again on the next pass).
Holds = Callable[[sa.Connection, str, list[str]], "set[str] | None"]


class ContentPruned(ConduitError):
    """The content asked for was removed under its channel's retention."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(f"the content of message {message_id} was pruned under its "
                         "channel's retention; its metadata and audit trail remain")


def is_pruned(key_id: str) -> bool:
    return key_id == PRUNED


def describe(seconds: float | None) -> str | None:
    """A retention as an analyst writes it: 30d, 12h, 90m, 45s; None: kept for ever."""
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Batch(NamedTuple):
    examined: int  # messages looked at
    pruned: list[str]  # ids whose content went in this batch
    outputs: int
    answers: int
    held: int  # kept: still queued or dead-lettered
    busy: bool  # another process had the channel, or the outside queue could not tell


class Result(NamedTuple):
    """One channel's pass."""

    channel: str
    cutoff: float
    messages: int
    outputs: int
    answers: int
    held: int  # messages kept because a queue still holds them (now listed as held)
    batches: int
    busy: bool


def _lock_key(channel: str) -> int:
    digest = hashlib.blake2b(f"conduit.retention:{channel}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _candidates(conn: sa.Connection, channel: str, floor: str, phase: str, after: str,
                limit: int) -> list[tuple[str, str]]:
    """(id, key_id) of the next messages to look at, in id order."""
    if phase == "held":
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.key_id)
            .select_from(retention_held.join(messages,
                                             messages.c.id == retention_held.c.message_id))
            .where(retention_held.c.channel == channel, retention_held.c.message_id > after,
                   retention_held.c.message_id < floor)
            .order_by(retention_held.c.message_id).limit(limit)).all()
    else:
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.key_id)
            .where(messages.c.channel == channel, messages.c.id > after,
                   messages.c.id < floor)
            .order_by(messages.c.id).limit(limit)).all()
    return [(r.id, r.key_id) for r in rows]


def _mark(conn: sa.Connection, channel: str) -> str:
    return conn.execute(sa.select(retention_marks.c.through)
                        .where(retention_marks.c.channel == channel)).scalar() or ""


def _set_mark(conn: sa.Connection, channel: str, through: str) -> None:
    moved = conn.execute(retention_marks.update().where(retention_marks.c.channel == channel)
                         .values(through=through)).rowcount
    if not moved:
        conn.execute(retention_marks.insert().values(channel=channel, through=through))


def _wipe(conn: sa.Connection, table: sa.Table, ids: list[str]) -> int:
    return conn.execute(table.update().where(table.c.message_id.in_(ids),
                                             table.c.key_id != PRUNED)
                        .values(key_id=PRUNED, content=b"")).rowcount


def step(conn: sa.Connection, uow: UnitOfWork, *, channel: str, cutoff: float,
         retention: float, phase: str, after: str, limit: int = BATCH,
         holds: Holds | None = None) -> tuple[Batch, str]:
    """One batch, in the writer's transaction: returns it and where the next one starts
    (`after`: the last id looked at in `phase` "held"; in "new" the stored mark)."""
    uow.events[:] = []  # assigned: the writer may run this again after a failure
    if conn.dialect.name == "postgresql" and not conn.execute(
            sa.select(sa.func.pg_try_advisory_xact_lock(_lock_key(channel)))).scalar():
        return Batch(0, [], 0, 0, 0, True), after
    if phase == "new":
        after = _mark(conn, channel)
    found = _candidates(conn, channel, message_id_floor(cutoff), phase, after, limit)
    if not found:
        return Batch(0, [], 0, 0, 0, False), after
    ids = [i for i, key_id in found if not is_pruned(key_id)]
    outside: set[str] = set()
    if ids and holds is not None:
        told = holds(conn, channel, ids)
        if told is None:
            return Batch(0, [], 0, 0, 0, True), after
        outside = told
    free = [i for i in ids if i not in outside]
    pruned: list[str] = []
    if free:
        # The queue tables are asked in the same statement: an entry put back meanwhile
        # (a dead letter requeued) keeps its message.
        pruned = list(conn.execute(
            messages.update()
            .where(messages.c.id.in_(free), messages.c.key_id != PRUNED,
                   messages.c.id.not_in(sa.select(queue.c.message_id)
                                        .where(queue.c.message_id.in_(free))),
                   messages.c.id.not_in(sa.select(queue_outbox.c.message_id)
                                        .where(queue_outbox.c.message_id.in_(free))))
            .values(key_id=PRUNED, content=b"").returning(messages.c.id)).scalars())
    n_outputs = _wipe(conn, outputs, pruned) if pruned else 0
    n_answers = _wipe(conn, dead_letter_answers, pruned) if pruned else 0
    done = set(pruned)
    held = [i for i in ids if i not in done]
    last = found[-1][0]
    if phase == "new":
        listed = set(conn.execute(sa.select(retention_held.c.message_id)
                                  .where(retention_held.c.message_id.in_(held))).scalars()
                     ) if held else set()
        new_held = [{"message_id": i, "channel": channel} for i in held if i not in listed]
        if new_held:
            conn.execute(retention_held.insert(), new_held)
        _set_mark(conn, channel, last)
    else:
        gone = [i for i, key_id in found if is_pruned(key_id) or i in done]
        if gone:
            conn.execute(retention_held.delete().where(retention_held.c.message_id.in_(gone)))
    if pruned:
        uow.events[:] = [Event(kind=Kind.ADMIN, actor=ACTOR, channel=channel, detail={
            "action": "retention-pruned", "retention": describe(retention),
            "cutoff": round(cutoff, 3), "messages": len(pruned), "outputs": n_outputs,
            "answers": n_answers, "ids": sorted(pruned)})]
    return Batch(len(found), pruned, n_outputs, n_answers, len(held), False), last


class Pruner:
    """Prunes every channel with a retention, batch by batch, through the Writer.

    `retention()` gives each channel's retention in seconds (channels without one are
    left out), read at every pass so a deployed change applies at the next one."""

    def __init__(self, writer: Writer, retention: Callable[[], dict[str, float]], *,
                 holds: Holds | None = None, batch: int = BATCH,
                 clock: Callable[[], float] = time.time) -> None:
        self._writer = writer
        self._retention = retention
        self._holds = holds
        self._batch = batch
        self._clock = clock

    async def run_once(self) -> list[Result]:
        """One pass over every channel: the held messages again, then the new ones."""
        results = []
        for channel, seconds in sorted(self._retention().items()):
            results.append(await self.prune_channel(channel, seconds))
        for r in results:
            if r.messages or r.busy:
                log.info("retention %s: %d message(s) pruned, %d held (queued), %s",
                         r.channel, r.messages, r.held, "busy" if r.busy else "done")
        return results

    async def prune_channel(self, channel: str, seconds: float) -> Result:
        cutoff = self._clock() - seconds
        totals = [0, 0, 0, 0, 0]
        busy = False
        held_now = 0
        for phase in ("held", "new"):
            after = ""
            while True:
                batch, after = await self._one(channel, cutoff, seconds, phase, after)
                totals[0] += len(batch.pruned)
                totals[1] += batch.outputs
                totals[2] += batch.answers
                totals[3] += 1
                held_now += batch.held
                if batch.busy:
                    busy = True
                    break
                if batch.examined < self._batch:
                    break
            if busy:
                break
        return Result(channel, cutoff, totals[0], totals[1], totals[2], held_now, totals[3],
                      busy)

    async def _one(self, channel: str, cutoff: float, seconds: float, phase: str,
                   after: str) -> tuple[Batch, str]:
        uow = UnitOfWork()

        def run(conn: sa.Connection) -> Any:
            return step(conn, uow, channel=channel, cutoff=cutoff, retention=seconds,
                        phase=phase, after=after, limit=self._batch, holds=self._holds)

        uow.query = run
        return await self._writer.commit(uow)


def retention_of(channels: list[Any], default: float | None) -> dict[str, float]:
    """Each channel's retention in seconds (its own, else the engine's); channels with
    neither keep content for ever and are left out."""
    found = {c.name: c.retention if c.retention is not None else default for c in channels}
    return {name: float(s) for name, s in found.items() if s is not None}


def pruned(engine: sa.Engine, message_id: str) -> bool:
    """Whether a message's content was pruned (False for an unknown id)."""
    with engine.connect() as conn:
        key_id = conn.execute(sa.select(messages.c.key_id)
                              .where(messages.c.id == message_id)).scalar()
    return key_id is not None and is_pruned(key_id)
