"""Channel actions taken in one process of a group, carried out in all of them.

An operator pauses a channel on the status page, which one process serves; the other
processes sharing the store (workers of `conduit run --workers N`, engines on other
hosts) run the same channel and would go on taking its traffic. Every action is already
an `admin` event in the audit trail, which all of them share, so each process follows
the trail's admin events and does the same to its own channel. Actions are idempotent
(pausing a paused channel does nothing), so the process that took the action meets
it again harmlessly.

A process that joins later (a worker the supervisor restarted, an engine started on
another host) missed those events: each action also leaves the channel's resulting state
in `channel_controls`, and a joining process starts each channel in that state (paused:
delivering but not accepting; stopped: not at all). A group started again as a whole
keeps them too, until an operator resumes or starts the channel or a revision removes
it; an engine alone on its store (the embedded default without --workers) starts every
channel, and clears them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from engine.every import Every
from engine.store.database import conflict_insert
from engine.store.schema import audit, audit_head, channel_controls

log = logging.getLogger("conduit.engine")

FOLLOW_EVERY = 1.0  # seconds between looks at the trail
PREFIX = "channel-"  # detail.action of a channel action: channel-pause, channel-resume...

_head = sa.select(audit_head.c.seq).where(audit_head.c.id == 1)
_admin = (sa.select(audit.c.channel, audit.c.detail)
          .where(audit.c.seq > sa.bindparam("after"), audit.c.seq <= sa.bindparam("upto"),
                 audit.c.kind == "admin", audit.c.channel.is_not(None))
          .order_by(audit.c.seq))

Apply = Callable[[str, str], Awaitable[None]]  # (channel, action such as "pause")
HELD = ("paused", "stopped")  # states a joining process starts a channel in


def cleared() -> sa.Delete:
    """What an engine alone on its store commits at start: its channels all start
    afresh, so no state an earlier group left may hold a later group's channels."""
    return channel_controls.delete()


def remember(conn: sa.Connection, channel: str, state: str) -> None:
    """Record `channel`'s state after an operator's action, in the transaction of its
    audit event (so the table and the trail agree, and the later commit wins in both)."""
    insert = conflict_insert(conn.dialect.name, channel_controls).values(
        channel=channel, state=state, at=time.time())
    conn.execute(insert.on_conflict_do_update(
        index_elements=[channel_controls.c.channel],
        set_={"state": insert.excluded.state, "at": insert.excluded.at}))


def forget_all_but(conn: sa.Connection, channels: set[str]) -> None:
    """In the transaction making a revision live: channels it no longer runs lose their
    held state, as the running processes drop them, so that one deployed again later
    under the same name starts in a joining process as it starts in the others (afresh),
    not paused or stopped as it was left before its removal."""
    conn.execute(channel_controls.delete().where(channel_controls.c.channel.not_in(channels)))


class ControlFollower:
    """Calls `apply(channel, action)` for each channel action appended after start."""

    def __init__(self, db: sa.Engine, apply: Apply, every: float = FOLLOW_EVERY) -> None:
        self._db = db
        self._apply = apply
        self.after: int | None = None
        # The store away: actions wait for it.
        self._every = Every(every, self.follow, name="group controls", log=log,
                            failure="could not read channel actions from the audit trail")

    async def seed(self) -> dict[str, str]:
        """Where following starts (the trail's head now), and the channels the group
        holds paused or stopped: channel -> state, to start them so."""
        self.after, held = await asyncio.to_thread(self._read_held)
        return held

    async def start(self) -> None:
        if self.after is None:
            await self.seed()
        self._every.start()

    async def stop(self) -> None:
        await self._every.stop()

    async def follow(self) -> int:
        """Carry out the actions appended since the last look; how many."""
        assert self.after is not None, "start() first"
        upto, actions = await asyncio.to_thread(self._read, self.after)
        for channel, action in actions:
            try:
                await self._apply(channel, action)
            except Exception:  # one channel's failure must not stop the others' actions
                log.exception("channel %s: could not %s as another process did", channel,
                              action)
        self.after = upto
        return len(actions)

    def _read_held(self) -> tuple[int, dict[str, str]]:
        # The head first: an action committed in between is in both the table and the
        # events followed after the head, and doing it twice is harmless.
        with self._db.connect() as conn:
            head = conn.execute(_head).scalar() or 0
            held = dict(conn.execute(sa.select(channel_controls.c.channel,
                                               channel_controls.c.state)
                                     .where(channel_controls.c.state.in_(HELD))).all())
        return head, held

    def _read(self, after: int) -> tuple[int, list[tuple[str, str]]]:
        with self._db.connect() as conn:
            upto = conn.execute(_head).scalar() or 0
            rows = conn.execute(_admin, {"after": after, "upto": upto}).all()
        actions = []
        for channel, detail in rows:
            action = str(json.loads(detail).get("action", ""))
            if action.startswith(PREFIX):
                actions.append((channel, action.removeprefix(PREFIX)))
        return upto, actions
