"""engine/store/rekey.py on SQLite and PostgreSQL: after a rotation, stored content is
re-sealed under the new key in the background and the old key retired once nothing uses
it; with writers still writing, several processes on one store, and keys from files or
the file-based KMS."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import pytest
import sqlalchemy as sa

from engine.config.keys import KeysConfig
from engine.errors import KeyError_
from engine.message import Answer, new_message_id
from engine.security.crypto import Vault, content_hash
from engine.security.key_providers import EnvKeys, FileKeys, FileKms, KeyProvider
from engine.security.keys import KeyRing
from engine.store import answers
from engine.store import audit as audit_chain
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.rekey import KeyUpkeep, Rekeyer, key_uses
from engine.store.schema import audit, dead_letter_answers, messages, outputs
from engine.store.writer import UnitOfWork, Writer


class Process:
    """What one engine process holds: its connection pool, writer and key ring."""

    def __init__(self, url: str, provider: KeyProvider, activate_after: float = 0.0) -> None:
        self.db = open_database(url)
        self.ring = KeyRing.open(provider, activate_after)
        self.vault = Vault(self.ring)
        self.store = MessageStore(self.db, self.vault)
        self.writer = Writer(self.db, self.ring.audit)
        self.writer.start()

    async def add(self, raw: bytes, *, with_output: bool = False,
                  answer: bytes | None = None, mid: str | None = None) -> str:
        mid = mid or new_message_id()
        uow = UnitOfWork()
        self.store.add_message(uow, {
            "id": mid, "channel": "adt", "received_at": time.time(), "status": "accepted",
            "peer": "", "patient": None, "content_hash": content_hash(raw), "error": None},
            raw)
        if with_output:
            self.store.add_output(uow, mid, "adt@1", "application/fhir+json", raw + b"/out")
        if answer is not None:
            answers.keep(uow, self.vault, entry_id=1, message_id=mid, destination="adt/ehr",
                         code="AE", reason="refused", answer=Answer(answer, "text/plain"))
        await self.writer.commit(uow)
        return mid

    def contents(self, mid: str) -> tuple[bytes | None, list[bytes], list[str]]:
        return (self.store.open_raw(mid), [c for _, _, c in self.store.open_outputs(mid)],
                [a["content"] for a in answers.open_for_message(self.db, self.vault, mid)])

    async def close(self) -> None:
        await self.writer.close()
        self.db.dispose()


def _key_ids(db: sa.Engine) -> set[str]:
    with db.connect() as conn:
        return {k for t in (messages, outputs, dead_letter_answers)
                for (k,) in conn.execute(sa.select(t.c.key_id).distinct())}


def _admin(db: sa.Engine, action: str) -> list[dict]:
    with db.connect() as conn:
        details = [json.loads(d) for (d,) in conn.execute(
            sa.select(audit.c.detail).where(audit.c.kind == "admin").order_by(audit.c.seq))]
    return [d for d in details if d.get("action") == action]


def _chain_ok(proc: Process) -> bool:
    with proc.db.connect() as conn:
        return audit_chain.verify(conn, proc.ring.audit).broken is None


async def _until_retired(rekeyer: Rekeyer, ring: KeyRing, key_id: str, rounds: int = 50) -> None:
    for _ in range(rounds):
        await rekeyer.round()
        if key_id not in ring.listed:
            return
    raise AssertionError(f"{key_id} not retired after {rounds} rounds")


async def test_rotation_reseals_everything_and_retires_the_old_key(db_url, tmp_path):
    keys = FileKeys(tmp_path / "keys")
    proc = Process(db_url, keys)
    try:
        old = proc.ring.current
        originals = {}
        for i in range(25):
            raw = f"MSH|^~\\&|EPIC|NW|||2024||ADT^A01|C{i}|P|2.5.1\rPID|1||MRN{i}".encode()
            mid = await proc.add(raw, with_output=i % 2 == 0,
                                 answer=b"patient MRN%d refused" % i if i % 5 == 0 else None)
            originals[mid] = proc.contents(mid)
        new = keys.create()
        proc.ring.refresh()
        assert proc.ring.current == new
        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=7, retire_after=0)
        await _until_retired(rekeyer, proc.ring, old)

        assert _key_ids(proc.db) == {new}
        fresh = Process(db_url, FileKeys(tmp_path / "keys"))  # a process started after it
        try:
            for mid, before in originals.items():
                assert proc.contents(mid) == before
                assert fresh.contents(mid) == before
        finally:
            await fresh.close()
        assert (tmp_path / "keys" / "retired" / f"{old}.key").exists()
        batches = _admin(proc.db, "key-reencrypt")
        by_table = {t: sum(b["resealed"] for b in batches if b["table"] == t)
                    for t in ("messages", "outputs", "answers")}
        assert by_table == {"messages": 25, "outputs": 13, "answers": 5}
        assert all(b["from"] == old and b["to"] == new and b["resealed"] <= 7
                   for b in batches)
        [retired] = _admin(proc.db, "key-retire")
        assert retired == {"action": "key-retire", "key_id": old, "provider": "file",
                           "how": "moved to retired/", "current": new}
        assert key_uses(proc.db) == {new: {"messages": 25, "outputs": 13, "answers": 5}}
        assert _chain_ok(proc)
        with proc.db.connect() as conn:
            trail = " ".join(d for (d,) in conn.execute(sa.select(audit.c.detail)))
        assert "MRN" not in trail
    finally:
        await proc.close()


async def test_old_key_is_retired_only_once_no_record_uses_it(db_url, tmp_path):
    """A lagging process writes under the old key behind the pass's cursor: the key stays
    until the next pass has re-sealed that record too; and never before retire_after."""
    keys = FileKeys(tmp_path / "keys")
    proc = Process(db_url, keys)
    lagging = Process(db_url, FileKeys(tmp_path / "keys"))  # never refreshes
    try:
        old = proc.ring.current
        mids = [await proc.add(b"MSH|%d" % i) for i in range(6)]
        new = keys.create()
        proc.ring.refresh()
        patient = Rekeyer(proc.db, proc.writer, proc.vault, batch=2, retire_after=3600)
        for _ in range(5):
            await patient.round()
        assert _key_ids(proc.db) == {new}
        assert old in proc.ring.listed  # nothing uses it, but its successor is too new
        assert not _admin(proc.db, "key-retire")

        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=2, retire_after=0)
        rekeyer._cursors["messages"] = mids[3]  # a pass under way
        behind = next(m for m in (mids[0][:20] + "000000", mids[0][:20] + "000001")
                      if m != mids[0])  # an id behind the pass's cursor
        late = await lagging.add(b"MSH|late", mid=behind)
        assert lagging.ring.current == old
        await rekeyer.round()  # ends the pass: one record still under the old key
        assert old in proc.ring.listed and not _admin(proc.db, "key-retire")
        assert key_uses(proc.db)[old]["messages"] == 1
        await _until_retired(rekeyer, proc.ring, old)
        assert proc.store.open_raw(late) == b"MSH|late"
        assert _key_ids(proc.db) == {new}
    finally:
        await lagging.close()
        await proc.close()


async def test_a_record_changed_meanwhile_is_not_clobbered(db_url, tmp_path):
    """Another engine re-sealed a record between this one's read and its update: the
    compare-and-set leaves that record as the other engine wrote it."""
    keys = FileKeys(tmp_path / "keys")
    proc = Process(db_url, keys)
    try:
        mids = [await proc.add(b"MSH|%d" % i) for i in range(3)]
        keys.create()
        proc.ring.refresh()
        other_vault = Vault(KeyRing.open(FileKeys(tmp_path / "keys")))

        class Raced(Rekeyer):
            def _select(self, table, after, keep):
                rows = super()._select(table, after, keep)
                if table is messages and rows:
                    key_id, sealed = other_vault.seal(b"MSH|changed", mids[1])
                    with proc.db.begin() as conn:
                        conn.execute(messages.update().where(messages.c.id == mids[1])
                                     .values(key_id=key_id, content=sealed))
                return rows

        await Raced(proc.db, proc.writer, proc.vault, batch=10, retire_after=0).round()
        assert proc.store.open_raw(mids[1]) == b"MSH|changed"
        assert [proc.store.open_raw(m) for m in (mids[0], mids[2])] == [b"MSH|0", b"MSH|2"]
        [batch] = [b for b in _admin(proc.db, "key-reencrypt") if b["table"] == "messages"]
        assert (batch["resealed"], batch["changed_meanwhile"]) == (2, 1)
    finally:
        await proc.close()


async def test_kms_end_to_end_destroys_the_retired_data_key(db_url, tmp_path):
    kms = FileKms(tmp_path / "kms")
    proc = Process(db_url, kms)
    try:
        old = proc.ring.current
        mids = [await proc.add(b"MSH|kms%d" % i, with_output=True) for i in range(5)]
        with proc.db.connect() as conn:
            before = conn.execute(sa.select(messages.c.content)
                                  .where(messages.c.id == mids[0])).scalar()
        new = kms.create()
        proc.ring.refresh()
        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=3, retire_after=0)
        await _until_retired(rekeyer, proc.ring, old)
        assert kms.key_ids() == [new] and kms.get(old) is None
        assert not (tmp_path / "kms" / "data" / f"{old}.wrapped").exists()
        assert [proc.contents(m)[:2] for m in mids] == [
            (b"MSH|kms%d" % i, [b"MSH|kms%d/out" % i]) for i in range(5)]
        # A copy of the old ciphertext (an old backup) no longer opens anywhere.
        fresh = Vault(KeyRing.open(FileKms(tmp_path / "kms")))
        with pytest.raises(KeyError_, match=f"needs content key {old}"):
            fresh.open(old, before, mids[0])
        [retired] = _admin(proc.db, "key-retire")
        assert (retired["provider"], retired["how"]) == ("kms", "destroyed")
        assert _chain_ok(proc)
    finally:
        await proc.close()


async def test_a_record_whose_key_is_lost_gives_a_clear_error(db_url, tmp_path):
    keys = FileKeys(tmp_path / "keys")
    before = Process(db_url, keys)
    lost = before.ring.current
    mid = await before.add(b"MSH|lost")
    await before.close()
    keys.create()
    (tmp_path / "keys" / f"{lost}.key").unlink()  # e.g. a key folder not copied over
    proc = Process(db_url, FileKeys(tmp_path / "keys"))
    try:
        with pytest.raises(KeyError_, match=f"record {mid} needs content key {lost}"):
            await proc.store.read(proc.writer, mid, "cli:alice", "check")
        ok = await proc.add(b"MSH|fine")
        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=10, retire_after=0)
        await rekeyer.round()  # carries on past it
        await rekeyer.round()
        assert proc.store.open_raw(ok) == b"MSH|fine"
        assert key_uses(proc.db)[lost]["messages"] == 1
        [batch] = _admin(proc.db, "key-reencrypt")
        assert batch["unreadable"] == 1 and batch["missing_keys"] == lost
    finally:
        await proc.close()


async def test_a_running_process_still_opens_what_it_leased_before_the_retirement(
        db_url, tmp_path):
    """A delivery leased before its record was re-sealed holds the old ciphertext: the
    process that leased it keeps the retired key in memory, even one the KMS destroyed;
    a process started afterwards cannot open that copy."""
    kms = FileKms(tmp_path / "kms")
    proc = Process(db_url, kms)
    try:
        old = proc.ring.current
        mid = await proc.add(b"MSH|leased")
        with proc.db.connect() as conn:
            leased = conn.execute(sa.select(messages.c.content)
                                  .where(messages.c.id == mid)).scalar()
        kms.create()
        proc.ring.refresh()
        await _until_retired(Rekeyer(proc.db, proc.writer, proc.vault, retire_after=0),
                             proc.ring, old)
        assert kms.get(old) is None
        assert proc.vault.open(old, leased, mid) == b"MSH|leased"
        with pytest.raises(KeyError_, match=f"needs content key {old}"):
            Vault(KeyRing.open(FileKms(tmp_path / "kms"))).open(old, leased, mid)
    finally:
        await proc.close()


async def test_rotation_while_two_processes_write_loses_nothing(db_url, tmp_path):
    """Two engine processes on one store keep writing while a key is made: both switch
    (polling), neither writes under a key the other cannot open, one re-seals the
    backlog and retires the old key, once, and every record opens to what was written."""
    config = KeysConfig(poll=0.05, activate_after=0.2, reencrypt_every=0.05,
                        reencrypt_batch=50, retire_after=0.3)
    keys = FileKeys(tmp_path / "keys")
    procs = [Process(db_url, FileKeys(tmp_path / "keys"), config.activate_after)
             for _ in range(2)]
    # Two hosts: each has a primary; the cluster's rekey lease lets one re-encrypt.
    upkeep = [KeyUpkeep(config, p.db, p.writer, p.vault, primary=True,
                        cluster_owner=f"host-{i}:1:test") for i, p in enumerate(procs)]
    written: dict[str, bytes] = {}
    stop = asyncio.Event()

    async def traffic(proc: Process, n: int) -> None:
        i = 0
        while not stop.is_set():
            raw = b"MSH|p%d|%d" % (n, i)
            written[await proc.add(raw, with_output=i % 3 == 0)] = raw
            i += 1
            await asyncio.sleep(0.002)

    try:
        old = procs[0].ring.current
        for u in upkeep:
            await u.start()
        writers = [asyncio.create_task(traffic(p, n)) for n, p in enumerate(procs)]
        await asyncio.sleep(0.3)
        new = keys.create()
        deadline = time.monotonic() + 20
        while old in procs[0].ring.listed or old in procs[1].ring.listed:
            assert time.monotonic() < deadline, "the old key was never retired"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # traffic under the new key only
        stop.set()
        await asyncio.gather(*writers)
        assert all(p.ring.current == new for p in procs)
        assert len(written) > 100
        with procs[0].db.connect() as conn:
            stored = set(conn.execute(sa.select(messages.c.id)).scalars())
        assert stored == set(written)
        assert _key_ids(procs[0].db) == {new}
        for p in procs:
            for mid, raw in written.items():
                assert p.store.open_raw(mid) == raw
        assert len(_admin(procs[0].db, "key-retire")) == 1
        assert _chain_ok(procs[0])
    finally:
        stop.set()
        for u in upkeep:
            await u.stop()
        for p in procs:
            await p.close()


async def test_content_removed_by_retention_is_left_alone(db_url, tmp_path):
    """Retention marks a record's key id `pruned` and empties it: no key, nothing to
    re-seal, and it keeps nothing from retiring."""
    keys = FileKeys(tmp_path / "keys")
    proc = Process(db_url, keys)
    try:
        old = proc.ring.current
        kept, pruned = await proc.add(b"MSH|kept"), await proc.add(b"MSH|pruned")
        with proc.db.begin() as conn:
            conn.execute(messages.update().where(messages.c.id == pruned)
                         .values(key_id="pruned", content=b""))
        new = keys.create()
        proc.ring.refresh()
        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=10, retire_after=0)
        await _until_retired(rekeyer, proc.ring, old)
        with proc.db.connect() as conn:
            row = conn.execute(sa.select(messages.c.key_id, messages.c.content)
                               .where(messages.c.id == pruned)).one()
        assert tuple(row) == ("pruned", b"")
        assert proc.store.open_raw(kept) == b"MSH|kept"
        assert key_uses(proc.db) == {new: {"messages": 1, "outputs": 0, "answers": 0}}
        assert "unreadable" not in _admin(proc.db, "key-reencrypt")[0]
    finally:
        await proc.close()


async def test_a_start_reseals_records_a_restored_backup_left_under_a_retired_key(
        db_url, tmp_path):
    keys = FileKeys(tmp_path / "keys")
    before = Process(db_url, keys)
    old = before.ring.current
    mid = await before.add(b"MSH|from the backup")
    await before.close()
    new = keys.create()
    keys.retire(old)  # retired long ago; the backup's rows came back under it
    proc = Process(db_url, FileKeys(tmp_path / "keys"))  # the engine started after it
    try:
        assert proc.ring.content.keys() == {new}
        started = Rekeyer(proc.db, proc.writer, proc.vault, batch=10, retire_after=0)
        await started.round()
        assert _key_ids(proc.db) == {new}
        assert proc.store.open_raw(mid) == b"MSH|from the backup"
        assert await started.round() == {"messages": 0, "outputs": 0, "answers": 0}
    finally:
        await proc.close()


async def test_moving_to_the_environment_key_reseals_and_retires_the_folder_keys(
        db_url, tmp_path):
    before = Process(db_url, FileKeys(tmp_path / "keys"))
    old = before.ring.current
    mid = await before.add(b"MSH|before")
    await before.close()
    proc = Process(db_url, EnvKeys(base64.b64encode(os.urandom(32)).decode(),
                                   tmp_path / "keys"))
    try:
        assert proc.ring.current.startswith("env-") and proc.ring.pending == []
        rekeyer = Rekeyer(proc.db, proc.writer, proc.vault, batch=10, retire_after=0)
        await _until_retired(rekeyer, proc.ring, old)
        assert _key_ids(proc.db) == {proc.ring.current}
        assert proc.store.open_raw(mid) == b"MSH|before"
        assert (tmp_path / "keys" / "retired" / f"{old}.key").exists()
    finally:
        await proc.close()
