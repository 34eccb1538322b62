"""Revisions in the store (engine.change.revisions) on SQLite and PostgreSQL: numbers and
the one live revision under two racing processes, the approval rules, rollback, and the
audit chain that records each change."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from engine import group_controls
from engine.change.revisions import (
    LIVE,
    PENDING,
    REJECTED,
    SUPERSEDED,
    NoSuchRevision,
    RevisionRefused,
    RevisionStore,
)
from engine.change.snapshot import Snapshot
from engine.store import audit as audit_chain
from engine.store.database import open_database
from engine.store.schema import audit, revisions
from tests.e2e.support import REPO

KEY = b"k" * 32


@pytest.fixture
def store(db_url):
    db = open_database(db_url)
    yield RevisionStore(db, KEY)
    db.dispose()


def snap(text: str, mapping: str = "h1") -> Snapshot:
    return Snapshot({"adt.yaml": text}, {"adt-to-fhir@1": mapping})


def admin_events(store: RevisionStore) -> list[dict]:
    with store._db.connect() as conn:
        rows = conn.execute(sa.select(audit.c.actor, audit.c.detail)
                            .where(audit.c.kind == "admin").order_by(audit.c.seq)).all()
    return [{"actor": actor, **json.loads(detail)} for actor, detail in rows]


def test_without_approvals_each_revision_goes_live_and_supersedes_the_last(store):
    first = store.make(snap("a: 1\n"), author="os:ann", actor="cli:ann", reason="first",
                       approvals=0)
    second = store.make(snap("a: 2\n"), author="os:ann", actor="cli:ann", reason="second",
                        approvals=0)
    assert (first.number, second.number) == (1, 2)
    assert store.get(1).state == SUPERSEDED and store.live().number == 2
    assert store.get(2).based_on == 1
    events = admin_events(store)
    assert [e["action"] for e in events] == ["revision-made", "revision-live",
                                             "revision-made", "revision-live"]
    assert events[2]["reason"] == "second" and events[2]["channels"] == {
        "adt.yaml": snap("a: 2\n").channel_hashes["adt.yaml"]}
    assert events[2]["mappings"] == {"adt-to-fhir@1": "h1"}
    assert events[3] == {"actor": "cli:ann", "action": "revision-live", "revision": 2,
                         "digest": second.digest, "previous": 1}
    with store._db.connect() as conn:
        assert audit_chain.verify(conn, KEY).broken is None


def test_approval_by_another_admin_only(store):
    store.make(snap("a: 1\n"), author="ann", actor="cli:ann", reason="boot", approvals=0,
               force_live=True)
    pending = store.make(snap("a: 2\n"), author="ann", actor="cli:ann", reason="change",
                         approvals=1)
    assert pending.state == PENDING and store.live().number == 1
    with pytest.raises(RevisionRefused, match="another admin"):
        store.approve(2, approver="ann", is_admin=True, actor="cli:ann", approvals=1)
    with pytest.raises(RevisionRefused, match="admin role"):
        store.approve(2, approver="nick", is_admin=False, actor="cli:nick", approvals=1)
    assert store.get(2).state == PENDING and store.get(2).approvals == []
    done = store.approve(2, approver="bob", is_admin=True, actor="cli:bob", approvals=1)
    assert done.state == LIVE and done.approvals == ["bob"] and done.decided_by == "bob"
    assert store.live().number == 2 and store.get(1).state == SUPERSEDED
    with pytest.raises(RevisionRefused, match="not pending"):
        store.approve(2, approver="cy", is_admin=True, actor="cli:cy", approvals=1)
    with pytest.raises(NoSuchRevision):
        store.approve(9, approver="cy", is_admin=True, actor="cli:cy", approvals=1)
    actions = [(e["action"], e["actor"]) for e in admin_events(store)][-2:]
    assert actions == [("revision-approved", "cli:bob"), ("revision-live", "cli:bob")]


def test_two_approvals_need_two_other_admins(store):
    store.make(snap("a: 1\n"), author="ann", actor="a", reason="r", approvals=2)
    assert store.approve(1, approver="bob", is_admin=True, actor="b",
                         approvals=2).state == PENDING
    with pytest.raises(RevisionRefused, match="already approved"):
        store.approve(1, approver="bob", is_admin=True, actor="b", approvals=2)
    rev = store.approve(1, approver="cy", is_admin=True, actor="c", approvals=2)
    assert rev.state == LIVE and rev.approvals == ["bob", "cy"]


def test_rejected_revisions_never_go_live_and_older_pending_ones_lapse(store):
    store.make(snap("a: 1\n"), author="ann", actor="a", reason="r", approvals=0)
    store.make(snap("a: 2\n"), author="ann", actor="a", reason="r", approvals=1)
    store.make(snap("a: 3\n"), author="ann", actor="a", reason="r", approvals=1)
    store.make(snap("a: 4\n"), author="ann", actor="a", reason="r", approvals=1)
    assert store.reject(3, by="bob", is_admin=True, actor="b", reason="typo").state == REJECTED
    with pytest.raises(RevisionRefused, match="admin role"):
        store.reject(2, by="nick", is_admin=False, actor="n")
    store.approve(4, approver="bob", is_admin=True, actor="b", approvals=1)
    # revision 2 was made against revision 1: once 4 is live it can no longer be approved
    assert [store.get(n).state for n in (1, 2, 3, 4)] == [SUPERSEDED, SUPERSEDED, REJECTED,
                                                          LIVE]
    with pytest.raises(RevisionRefused, match="superseded"):
        store.approve(2, approver="bob", is_admin=True, actor="b", approvals=1)


def test_rollback_is_a_new_revision_with_the_old_content(store):
    store.make(snap("a: 1\n"), author="ann", actor="a", reason="r", approvals=0)
    store.make(snap("a: 2\n", "h2"), author="ann", actor="a", reason="r", approvals=0)
    old = store.get(1).snapshot
    back = store.make(old, author="bob", actor="b", reason="bad", approvals=0, rollback_of=1)
    assert back.number == 3 and back.rollback_of == 1 and back.state == LIVE
    assert back.digest == store.get(1).digest and back.snapshot == old
    made = [e for e in admin_events(store) if e["action"] == "rollback"]
    assert made and made[0]["to"] == 1 and made[0]["revision"] == 3


def test_each_channel_shows_the_revision_that_last_changed_it(store):
    store.make(Snapshot({"a.yaml": "1", "b.yaml": "1"}), author="ann", actor="a",
               reason="r", approvals=0)
    store.make(Snapshot({"a.yaml": "2", "b.yaml": "1"}), author="bob", actor="b",
               reason="r", approvals=0)
    store.make(Snapshot({"a.yaml": "3", "b.yaml": "1"}), author="cy", actor="c",
               reason="r", approvals=1)  # pending: not what runs
    live = store.channel_revisions()
    assert {k: (v["revision"], v["author"]) for k, v in live.items()} == {
        "a": (2, "bob"), "b": (1, "ann")}


_RACER = textwrap.dedent("""
    import sys
    from engine.change.revisions import RevisionStore
    from engine.change.snapshot import Snapshot
    from engine.store.database import open_database
    url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = RevisionStore(open_database(url), b"k" * 32)
    sys.stdin.readline()  # both start together
    for i in range(n):
        store.make(Snapshot({"adt.yaml": f"{tag}: {i}\\n"}), author=tag, actor=tag,
                   reason="race", approvals=0)
""")


def test_two_processes_deploying_at_once_get_distinct_numbers_and_one_live(db_url):
    open_database(db_url).dispose()  # tables first, so both racers find them
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, db_url, tag, "8"], cwd=REPO,
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
              for tag in ("one", "two")]
    for p in racers:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    for p in racers:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    db = open_database(db_url)
    try:
        with db.connect() as conn:
            rows = conn.execute(sa.select(revisions.c.number, revisions.c.state,
                                          revisions.c.author)).all()
            assert sorted(r.number for r in rows) == list(range(1, 17))
            assert [r.number for r in rows if r.state == LIVE] == [16]
            assert {r.author for r in rows} == {"one", "two"}
            assert audit_chain.verify(conn, KEY).broken is None
    finally:
        db.dispose()


def test_a_channel_removed_while_paused_starts_afresh_when_deployed_again(store):
    """A process joining a group (a restarted worker, another host) starts each channel
    as the group holds it. A channel paused, removed by a revision and later deployed
    again under the same name runs started in every process that applied those
    revisions; the joining one must start it so too, not paused as it was left."""
    both = Snapshot({"adt.yaml": "name: adt\n", "lab.yaml": "name: lab\n"}, {})
    store.make(both, author="os:ann", actor="cli:ann", reason="both", approvals=0)
    with store._db.begin() as conn:
        group_controls.remember(conn, "adt", "paused")
        group_controls.remember(conn, "lab", "stopped")
    store.make(Snapshot({"lab.yaml": "name: lab\n"}, {}), author="os:ann", actor="cli:ann",
               reason="adt retired", approvals=0)
    pending = store.make(both, author="os:ann", actor="cli:ann", reason="adt back",
                         approvals=1)
    assert asyncio.run(_held(store)) == {"lab": "stopped"}  # removed, not yet back
    store.approve(pending.number, approver="bob", is_admin=True, actor="api:bob",
                  approvals=1)
    assert asyncio.run(_held(store)) == {"lab": "stopped"}


async def _held(store: RevisionStore) -> dict[str, str]:
    """What a joining process reads to start its channels: channel -> held state."""
    async def apply(channel: str, action: str) -> None:
        raise AssertionError("nothing to follow")
    return await group_controls.ControlFollower(store._db, apply).seed()
