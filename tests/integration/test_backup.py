"""`conduit backup` and `conduit restore` on a real embedded store: the round trip, the
keys kept out of the data backup, verification refusing damaged or foreign backups
(and leaving nothing behind when a backup fails its check), and restore refusing while
an engine holds the data folder or when it would overwrite a store."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import msgspec
import pytest

from engine.backup import restore, take
from engine.cli import main
from engine.config.keys import KeysConfig
from engine.events import Event, Kind
from engine.message import new_message_id
from engine.queue.sql import SqlQueue
from engine.runtime import lock_data_dir
from engine.security.crypto import Vault, content_hash
from engine.security.keys import KeyRing
from engine.store import audit, snapshot
from engine.store.database import default_url, open_database
from engine.store.messages import MessageStore
from engine.store.snapshot import BackupInvalid
from engine.store.writer import UnitOfWork, Writer

RAW = b"MSH|^~\\&|EPIC|NORTHWING|CONDUIT|HIE|20240301||ADT^A01|BK%04d|P|2.5.1\rPID|1||MRN%04d\r"


class Store:
    """A data folder with a real store and keys, and messages written through the
    engine's own writer, sealed, queued and audited."""

    def __init__(self, data_dir: Path, keys: KeysConfig | None = None) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / "conduit.db"
        self.keys_dir = data_dir / "keys"
        self.config = keys or KeysConfig()
        self.keys = self.ring()
        self.raw: dict[str, bytes] = {}

    def ring(self) -> KeyRing:
        """The keys now in the key folders, as the engine loads them."""
        return KeyRing.for_config(self.config, self.data_dir)

    def add(self, count: int) -> None:
        asyncio.run(self._add(count))

    async def _add(self, count: int) -> None:
        db = open_database(default_url(self.data_dir))
        writer = Writer(db, self.keys.audit)
        writer.start()
        store = MessageStore(db, Vault(self.keys))
        try:
            for _ in range(count):
                n = len(self.raw)
                raw, mid = RAW % (n, n), new_message_id()
                uow = UnitOfWork()
                store.add_message(uow, {
                    "id": mid, "channel": "adt", "received_at": time.time(),
                    "status": "received", "control_id": f"BK{n:04d}",
                    "content_hash": content_hash(raw)}, raw)
                SqlQueue.put(uow, "adt/fhir", mid, None, time.time())
                uow.record(Event(kind=Kind.RECEIVED, channel="adt", message_id=mid))
                uow.record(Event(kind=Kind.QUEUED, channel="adt", destination="fhir",
                                 message_id=mid))
                await writer.commit(uow)
                self.raw[mid] = raw
        finally:
            await writer.close()
            db.dispose()

    def opened(self) -> dict[str, bytes]:
        """Every message's content, opened with the keys now in the key folder."""
        db = open_database(default_url(self.data_dir))
        try:
            store = MessageStore(db, Vault(self.ring()))
            return {mid: store.open_raw(mid) for mid in self.raw}
        finally:
            db.dispose()

    def chain(self) -> audit.Verified:
        db = open_database(default_url(self.data_dir))
        try:
            with db.connect() as conn:
                return audit.verify(conn, self.ring().audit)
        finally:
            db.dispose()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    s = Store(tmp_path / "data")
    s.add(5)
    return s


def _conduit(*argv: str) -> int:
    return main(["--conf", str(Path(__file__).parents[2] / "conf" / "conduit.yaml"), *argv])


def test_round_trip_through_the_cli(store: Store, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Back up, lose the whole data folder (keys too), restore from the backup and the
    key copy: every message opens to its original bytes, its queue entry is back, and
    the chain verifies, ending with the restore's own event."""
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to", str(tmp_path / "k")) == 0
    said = capsys.readouterr().out
    assert "5 messages, 5 queued, audit chain verified through event #10" in said
    manifest = snapshot.read_manifest(tmp_path / "bk")
    assert (manifest.counts["messages"], manifest.counts["queue_ready"]) == (5, 5)
    assert manifest.key_ids == [store.keys.current]

    shutil.rmtree(store.data_dir)
    assert _conduit("restore", str(tmp_path / "bk"), "--keys-from", str(tmp_path / "k")) == 0
    assert "restored the backup of" in capsys.readouterr().out
    assert store.opened() == store.raw
    chain = store.chain()
    assert chain.broken is None and chain.events == 11  # the backup's 10, then the restore
    with sqlite3.connect(store.db_path) as conn:
        last = conn.execute("SELECT detail FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        ready = conn.execute("SELECT count(*) FROM queue WHERE state = 'ready'").fetchone()
    assert msgspec.json.decode(last[0])["action"] == "restore"
    assert ready == (5,)
    assert oct((store.keys_dir / "audit.key").stat().st_mode & 0o777) == "0o600"


def test_the_data_backup_holds_no_key_material(store: Store, tmp_path: Path) -> None:
    """Neither the snapshot nor the manifest contains any key, raw or as written in the
    key files; the key copy goes to its own folder, private."""
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to", str(tmp_path / "k")) == 0
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == ["conduit.db",
                                                                    "manifest.json"]
    backup = b"".join(p.read_bytes() for p in (tmp_path / "bk").iterdir())
    keys = [*store.keys.content.values(), store.keys.audit, store.keys.pseudonym]
    for key in keys:
        assert key not in backup and base64.b64encode(key) not in backup
    copied = tmp_path / "k" / "keys"
    assert sorted(p.relative_to(copied) for p in copied.rglob("*") if p.is_file()) == sorted(
        p.relative_to(store.keys_dir) for p in store.keys_dir.rglob("*") if p.is_file())
    assert {oct(p.stat().st_mode & 0o777) for p in copied.rglob("*")} == {"0o600"}
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o700"


def test_kms_keys_are_copied_and_put_back(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With the file-based KMS (its folder inside the data folder by default) the copy
    holds the KMS too, and a restore after losing the whole data folder opens every
    message again."""
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nkeys: {{provider: kms}}\n")
    store = Store(tmp_path / "data", KeysConfig(provider="kms"))
    store.add(3)
    assert (store.data_dir / "kms" / "master.key").is_file()
    assert main(["backup", str(tmp_path / "bk"), "--keys-to", str(tmp_path / "k"),
                 "--conf", str(conf)]) == 0
    assert (tmp_path / "k" / "kms" / "master.key").read_bytes() == (
        store.data_dir / "kms" / "master.key").read_bytes()
    backup = (tmp_path / "bk" / "conduit.db").read_bytes()
    assert (store.data_dir / "kms" / "master.key").read_bytes() not in backup
    shutil.rmtree(store.data_dir)
    assert main(["restore", str(tmp_path / "bk"), "--conf", str(conf)]) == 2  # no keys
    assert not store.db_path.exists()
    assert main(["restore", str(tmp_path / "bk"), "--keys-from", str(tmp_path / "k"),
                 "--conf", str(conf)]) == 0
    assert store.opened() == store.raw


def test_content_removed_by_retention_needs_no_key(store: Store, tmp_path: Path) -> None:
    """Retention empties a record and marks its key id "pruned": the backup and the
    restore check the keys of the content still there, and pass."""
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE messages SET key_id = 'pruned', content = x'' WHERE rowid = 1")
    conn.close()
    manifest = take(store.db_path, store.keys, tmp_path / "bk")
    assert manifest.key_ids == [store.keys.current]
    restore(tmp_path / "bk", tmp_path / "again" / "conduit.db", store.keys, force=False)


def test_restore_refuses_keys_that_clash_with_the_key_folder(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The key folder in place holds another audit key: the restore changes nothing."""
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to", str(tmp_path / "k")) == 0
    shutil.rmtree(store.data_dir)
    KeyRing.load(store.keys_dir)  # another installation's keys where ours go
    assert _conduit("restore", str(tmp_path / "bk"), "--keys-from", str(tmp_path / "k")) == 2
    assert "other keys under the same names" in capsys.readouterr().err
    assert not store.db_path.exists()


def test_backups_are_made_beside_each_other_not_inside_one(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing folder gets a new backup named by the time; a backup is never written
    into another backup."""
    (tmp_path / "backups").mkdir()
    assert _conduit("backup", str(tmp_path / "backups")) == 0
    [made] = list((tmp_path / "backups").iterdir())
    assert made.name.startswith("conduit-backup-") and made.name.endswith("Z")
    assert _conduit("backup", str(made)) == 2
    assert "is a backup" in capsys.readouterr().err
    assert sorted(p.name for p in made.iterdir()) == ["conduit.db", "manifest.json"]


def test_keys_must_be_kept_apart(store: Store, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to",
                    str(tmp_path / "bk" / "keys")) == 2
    assert "kept apart" in capsys.readouterr().err
    assert _conduit("backup", str(store.data_dir / "bk")) == 2
    assert "inside the data folder" in capsys.readouterr().err
    assert not (tmp_path / "bk").exists() and not (store.data_dir / "bk").exists()


def test_a_backup_taken_while_writes_go_on_is_consistent(store: Store, tmp_path: Path) -> None:
    """Another writer commits all along: each snapshot is one commit's state, so its
    chain verifies and its head matches its manifest."""
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            store.add(3)

    writing = threading.Thread(target=keep_writing)
    writing.start()
    try:
        manifests = [take(store.db_path, store.keys, tmp_path / f"bk{i}") for i in range(3)]
    finally:
        stop.set()
        writing.join(30)
    for i, m in enumerate(manifests):
        again = snapshot.verify(tmp_path / f"bk{i}", store.keys)
        assert again == m and m.counts["audit"] == m.audit_seq
        assert m.counts["messages"] * 2 == m.audit_seq  # received + queued per message


def test_a_backup_failing_its_check_is_removed(store: Store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A store whose chain was altered is not backed up as if it were sound: the command
    says where the chain breaks, exits non-zero and leaves no backup, nor a partial one."""
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE audit SET detail = '{\"x\": 1}' WHERE seq = 3")
    assert _conduit("backup", str(tmp_path / "bk")) == 2
    err = capsys.readouterr().err
    assert "the backup failed its check and was not kept" in err
    assert f"the audit chain in {tmp_path / 'bk' / 'conduit.db'} is broken at event #3" in err
    assert list(tmp_path.glob("*bk*")) == []


def test_a_backup_needs_every_content_key(store: Store, tmp_path: Path) -> None:
    """Content sealed under a key the folder no longer holds: the backup could never be
    opened, so it fails its check and is not kept."""
    old = store.keys_dir / f"{store.keys.current}.key"
    os.rename(old, tmp_path / "elsewhere.key")
    with pytest.raises(BackupInvalid, match="which the key folder given does not hold"):
        take(store.db_path, KeyRing.load(store.keys_dir), tmp_path / "bk")
    assert list(tmp_path.glob("*bk*")) == []


def test_restore_refuses_a_damaged_or_foreign_backup(store: Store, tmp_path: Path) -> None:
    take(store.db_path, store.keys, tmp_path / "bk")
    target = tmp_path / "restored" / "conduit.db"

    other = KeyRing.load(tmp_path / "other-keys")
    with pytest.raises(BackupInvalid, match="not this backup's keys"):
        restore(tmp_path / "bk", target, other, force=False)

    db = tmp_path / "bk" / "conduit.db"
    damaged = bytearray(db.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    db.write_bytes(bytes(damaged))
    with pytest.raises(BackupInvalid, match="SHA-256 differs"):
        restore(tmp_path / "bk", target, store.keys, force=False)
    assert not target.parent.exists() or not target.exists()


def test_restore_refuses_an_altered_chain_even_with_a_matching_manifest(
        store: Store, tmp_path: Path) -> None:
    """Someone edits an event in the backup and writes the file's new SHA-256 into the
    manifest: the chain, checked with the audit key, still gives it away."""
    take(store.db_path, store.keys, tmp_path / "bk")
    db = tmp_path / "bk" / "conduit.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET actor = 'someone' WHERE seq = 4")
    conn.close()
    manifest = snapshot.read_manifest(tmp_path / "bk")
    manifest.sha256 = snapshot.sha256_of(db)
    snapshot.write_manifest(tmp_path / "bk", manifest)
    with pytest.raises(BackupInvalid, match="broken at event #4"):
        restore(tmp_path / "bk", tmp_path / "restored" / "conduit.db", store.keys, force=False)


def test_restore_refuses_while_an_engine_holds_the_data_folder(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    take(store.db_path, store.keys, tmp_path / "bk")
    before = store.db_path.read_bytes()
    lock = lock_data_dir(store.data_dir)  # what a running engine holds
    try:
        assert _conduit("restore", str(tmp_path / "bk"), "--force") == 2
    finally:
        os.close(lock)
    assert "an engine is running" in capsys.readouterr().err
    assert store.db_path.read_bytes() == before


def test_restore_replaces_a_store_only_when_forced(store: Store, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Restoring over a store that holds data needs --force; the store replaced is kept
    beside the restored one, and the messages written after the backup are only there."""
    take(store.db_path, store.keys, tmp_path / "bk")
    store.add(2)  # after the backup
    assert _conduit("restore", str(tmp_path / "bk")) == 2
    assert "--force" in capsys.readouterr().err
    assert len(store.opened()) == 7

    assert _conduit("restore", str(tmp_path / "bk"), "--force") == 0
    kept = list(store.data_dir.glob("conduit.db.before-restore-*Z"))
    assert len(kept) == 1
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (5,)
    with sqlite3.connect(kept[0]) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (7,)
    assert store.chain().broken is None


def test_a_content_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """With CONDUIT_KEY the keys are in no folder: the backup says to keep that key in
    the secret store, and a restore after losing the data folder needs only the key."""
    monkeypatch.setenv("CONDUIT_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    store = Store(tmp_path / "data")
    store.add(2)
    assert _conduit("backup", str(tmp_path / "bk")) == 0
    assert "CONDUIT_KEY is in no folder" in capsys.readouterr().out
    shutil.rmtree(store.data_dir)
    assert _conduit("restore", str(tmp_path / "bk")) == 0
    assert store.opened() == store.raw
    monkeypatch.setenv("CONDUIT_KEY", base64.b64encode(os.urandom(32)).decode())
    assert _conduit("restore", str(tmp_path / "bk"), "--force") == 2
    assert "not this backup's keys" in capsys.readouterr().err
