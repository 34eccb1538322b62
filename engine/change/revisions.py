"""The revision store: numbered revisions of the channels and pinned mappings, their
approvals and which one is live, each change audited in its own transaction.

Every change takes one lock first (PostgreSQL: a transaction-scoped advisory lock;
SQLite: the write lock BEGIN IMMEDIATE already takes), so two processes deploying at once
get consecutive numbers and never both make a revision live; the partial unique index on
`state = 'live'` holds that line even against a writer that skipped the lock. The audit
events go into the chain in the same transaction, so the trail and the table agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine import group_controls
from engine.change.snapshot import Snapshot, channel_name
from engine.errors import ConduitError
from engine.events import Event, Kind, log_events
from engine.store import audit as audit_chain
from engine.store.database import reader
from engine.store.schema import revision_approvals, revisions

PENDING, LIVE, SUPERSEDED, REJECTED = "pending", "live", "superseded", "rejected"
_LOCK = 0x636F6E6472657673  # "condrevs": the advisory lock every revision change holds


class RevisionRefused(ConduitError):
    """A revision change the rules do not allow (own approval, wrong role, not pending)."""


class NoSuchRevision(ConduitError):
    """No revision with that number."""


class LiveMoved(ConduitError):
    """Another process made a revision live since the caller looked at the live one."""


ANY_LIVE = -1  # make(expect_live=...): whichever revision is live (no number is -1)


@dataclass
class Revision:
    number: int
    made_at: float
    author: str
    reason: str
    state: str
    digest: str
    based_on: int | None
    rollback_of: int | None
    decided_by: str | None
    decided_at: float | None
    live_at: float | None
    content: str = field(repr=False)
    approvals: list[str] = field(default_factory=list)

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot.from_json(self.content)

    def summary(self) -> dict[str, Any]:
        """What the API and the CLI list: everything but the files' text."""
        snap = self.snapshot
        return {"number": self.number, "made_at": self.made_at, "author": self.author,
                "reason": self.reason, "state": self.state, "digest": self.digest,
                "based_on": self.based_on, "rollback_of": self.rollback_of,
                "decided_by": self.decided_by, "decided_at": self.decided_at,
                "live_at": self.live_at, "approvals": self.approvals,
                "channels": snap.channel_hashes, "mappings": snap.mappings}


class RevisionStore:
    """Revisions in the store's database; `audit_key` chains the events it records."""

    def __init__(self, db: sa.Engine, audit_key: bytes,
                 on_committed: Callable[[list[Event]], None] = log_events) -> None:
        self._db = db
        self._reader = reader(db)
        self._key = audit_key
        self._on_committed = on_committed

    # -- reading -----------------------------------------------------------------------

    def live_number(self) -> int | None:
        """The live revision's number: one indexed look, for the engine's watcher."""
        with self._reader.connect() as conn:
            return conn.execute(sa.select(revisions.c.number)
                                .where(revisions.c.state == LIVE)).scalar()

    def live(self) -> Revision | None:
        number = self.live_number()
        return self.get(number) if number is not None else None

    def get(self, number: int) -> Revision:
        with self._reader.connect() as conn:
            found = _read(conn, revisions.c.number == number)
        if not found:
            raise NoSuchRevision(f"no revision {number}")
        return found[0]

    def history(self, limit: int = 50) -> list[Revision]:
        """The newest `limit` revisions, newest first."""
        with self._reader.connect() as conn:
            return _read(conn, sa.true(), limit)

    def channel_revisions(self) -> dict[str, dict[str, Any]]:
        """For each channel file of the live revision, the revision that last changed it
        (number, when it went live, its author): what the status page shows per channel."""
        with self._reader.connect() as conn:
            went_live = _read(conn, revisions.c.live_at.is_not(None), None)
        went_live.sort(key=lambda r: (r.live_at or 0, r.number))
        by_file: dict[str, dict[str, Any]] = {}
        previous: dict[str, str] = {}
        last: Snapshot | None = None
        for rev in went_live:
            last = rev.snapshot
            hashes = last.channel_hashes
            for file, digest in hashes.items():
                if previous.get(file) != digest:
                    by_file[file] = {"revision": rev.number, "live_at": rev.live_at,
                                     "author": rev.author, "file": file}
            previous = hashes
        if last is None:
            return {}
        return {channel_name(file, text): by_file[file]
                for file, text in last.channels.items()}

    # -- changing ----------------------------------------------------------------------

    def make(self, snapshot: Snapshot, *, author: str, actor: str, reason: str,
             approvals: int, rollback_of: int | None = None,
             force_live: bool = False, expect_live: int | None = ANY_LIVE,
             unless_pending: bool = False) -> Revision:
        """A new revision of `snapshot`, live at once when no approval is needed (or
        `force_live`: the first revision, which has nothing to be compared with).
        `expect_live`: the live revision the caller decided on (None: none yet); if
        another process changed it meanwhile, LiveMoved and nothing is made, so engines
        starting together record their files once, not once each. `unless_pending`: a
        revision of the same files already waiting for approval is returned instead of a
        second one (looked for under the lock, so two deploys at once make one)."""
        def change(conn: sa.Connection, events: list[Event]) -> int:
            now = time.time()
            number = (conn.execute(sa.select(sa.func.max(revisions.c.number))).scalar()
                      or 0) + 1
            live = conn.execute(sa.select(revisions.c.number)
                                .where(revisions.c.state == LIVE)).scalar()
            if expect_live != ANY_LIVE and live != expect_live:
                raise LiveMoved(f"revision {live} went live while this one was being made; "
                                "look again (conduit deploy history)")
            if unless_pending:
                waiting = conn.execute(
                    sa.select(sa.func.max(revisions.c.number))
                    .where(revisions.c.state == PENDING,
                           revisions.c.digest == snapshot.digest)).scalar()
                if waiting is not None:
                    return int(waiting)
            conn.execute(revisions.insert().values(
                number=number, made_at=now, author=author, reason=reason, state=PENDING,
                digest=snapshot.digest, content=snapshot.to_json(), based_on=live,
                rollback_of=rollback_of))
            detail: dict[str, Any] = {
                "action": "rollback" if rollback_of is not None else "revision-made",
                "revision": number, "digest": snapshot.digest, "author": author,
                "reason": reason, "based_on": live,
                "channels": snapshot.channel_hashes, "mappings": snapshot.mappings}
            if rollback_of is not None:
                detail["to"] = rollback_of
            events.append(Event(kind=Kind.ADMIN, actor=actor, detail=detail))
            if approvals <= 0 or force_live:
                _go_live(conn, number, now, actor, events)
            return number

        return self.get(self._change(change))

    def approve(self, number: int, *, approver: str, is_admin: bool, actor: str,
                approvals: int) -> Revision:
        """`approver`'s approval of pending revision `number`; live once `approvals`
        admins other than its author have approved it."""
        def change(conn: sa.Connection, events: list[Event]) -> int:
            rev = _pending(conn, number)
            if not is_admin:
                raise RevisionRefused("only a user with the admin role may approve a "
                                      "revision")
            if approver == rev.author:
                raise RevisionRefused(f"revision {number} was made by {approver}; another "
                                      "admin must approve it")
            if approver in rev.approvals:
                raise RevisionRefused(f"{approver} already approved revision {number}")
            now = time.time()
            conn.execute(revision_approvals.insert().values(revision=number,
                                                            approver=approver, at=now))
            conn.execute(revisions.update().where(revisions.c.number == number)
                         .values(decided_by=approver, decided_at=now))
            have = len(rev.approvals) + 1
            events.append(Event(kind=Kind.ADMIN, actor=actor, detail={
                "action": "revision-approved", "revision": number, "digest": rev.digest,
                "approver": approver, "approvals": have, "needed": max(approvals, 1)}))
            if have >= max(approvals, 1):
                _go_live(conn, number, now, actor, events)
            return number

        return self.get(self._change(change))

    def reject(self, number: int, *, by: str, is_admin: bool, actor: str,
               reason: str = "") -> Revision:
        """Pending revision `number` will never go live."""
        def change(conn: sa.Connection, events: list[Event]) -> int:
            rev = _pending(conn, number)
            if not is_admin:
                raise RevisionRefused("only a user with the admin role may reject a "
                                      "revision")
            conn.execute(revisions.update().where(revisions.c.number == number).values(
                state=REJECTED, decided_by=by, decided_at=time.time()))
            events.append(Event(kind=Kind.ADMIN, actor=actor, detail={
                "action": "revision-rejected", "revision": number, "digest": rev.digest,
                "by": by, "reason": reason}))
            return number

        return self.get(self._change(change))

    def record(self, event: Event) -> None:
        """An event about revisions that changes no row (the engine swapped channels)."""
        self._change(lambda _conn, events: events.append(event))

    def _change(self, change: Callable[[sa.Connection, list[Event]], Any]) -> Any:
        events: list[Event] = []
        with self._db.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK)))
            result = change(conn, events)
            if events:
                audit_chain.append(conn, self._key, events)
        if events:
            self._on_committed(events)
        return result


def _go_live(conn: sa.Connection, number: int, now: float, actor: str,
             events: list[Event]) -> None:
    """`number` becomes the live revision: the one before it, and every pending revision
    older than it (made against what is now past), are superseded."""
    previous = conn.execute(sa.select(revisions.c.number)
                            .where(revisions.c.state == LIVE)).scalar()
    conn.execute(revisions.update().where(
        revisions.c.number != number,
        sa.or_(revisions.c.state == LIVE,
               sa.and_(revisions.c.state == PENDING, revisions.c.number < number)))
        .values(state=SUPERSEDED))
    conn.execute(revisions.update().where(revisions.c.number == number)
                 .values(state=LIVE, live_at=now))
    digest, content = conn.execute(sa.select(revisions.c.digest, revisions.c.content)
                                   .where(revisions.c.number == number)).one()
    group_controls.forget_all_but(conn, {
        channel_name(file, text) for file, text in Snapshot.from_json(content).channels.items()})
    events.append(Event(kind=Kind.ADMIN, actor=actor, detail={
        "action": "revision-live", "revision": number, "digest": digest,
        "previous": previous}))


def _pending(conn: sa.Connection, number: int) -> Revision:
    found = _read(conn, revisions.c.number == number)
    if not found:
        raise NoSuchRevision(f"no revision {number}")
    if found[0].state != PENDING:
        raise RevisionRefused(f"revision {number} is {found[0].state}, not pending")
    return found[0]


def _read(conn: sa.Connection, where: Any, limit: int | None = 1) -> list[Revision]:
    query = sa.select(revisions).where(where).order_by(revisions.c.number.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    approvals: dict[int, list[str]] = {}
    if rows:
        for number, approver in conn.execute(
                sa.select(revision_approvals.c.revision, revision_approvals.c.approver)
                .where(revision_approvals.c.revision.in_([r.number for r in rows]))
                .order_by(revision_approvals.c.at)):
            approvals.setdefault(number, []).append(approver)
    return [Revision(
        number=r.number, made_at=r.made_at, author=r.author, reason=r.reason, state=r.state,
        digest=r.digest, based_on=r.based_on, rollback_of=r.rollback_of,
        decided_by=r.decided_by, decided_at=r.decided_at, live_at=r.live_at,
        content=r.content, approvals=approvals.get(r.number, [])) for r in rows]

