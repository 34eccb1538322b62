"""A consistent copy of the embedded SQLite store taken while the engine runs, the
manifest that describes it, and the check that a copy is whole and matches it.

The copy uses SQLite's online backup API in one step: it reads the database inside one
read transaction, so it is the store as of one commit, whatever the engine writes
meanwhile (a file copy of a live WAL database is not: the newest commits sit in the
-wal file, and a checkpoint may run halfway through the copy). The copy holds sealed
content and no key: opening it needs the key folder, kept elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import sqlalchemy as sa

from engine import __version__
from engine.errors import ConduitError, KeyError_
from engine.fsync import fsync_file
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store import audit
from engine.store.database import PRIVATE_FILE

SNAPSHOT = "conduit.db"
MANIFEST = "manifest.json"
FORMAT = 1
# Tables counted in the manifest (when the snapshot has them), and the queue by state.
_COUNTED = ("messages", "outputs", "dead_letter_answers", "audit", "users", "queue_outbox")
_SEALED = ("messages", "outputs", "dead_letter_answers")  # id, key_id, content
_AUDIT_KEY_CHECK = b"conduit backup: which audit key"


class BackupInvalid(ConduitError):
    """A backup that is not whole, not what its manifest says, or not openable with the
    keys given."""


class Manifest(msgspec.Struct, kw_only=True):
    """What a backup holds, written beside the snapshot (no PHI, no key material)."""

    format: int
    created_at: str  # UTC, ISO 8601: what the backup holds was committed before this
    engine_version: str
    snapshot: str  # file name in the backup folder
    size: int
    sha256: str
    audit_seq: int  # the chain's head in the snapshot
    audit_hash: str
    counts: dict[str, int]
    key_ids: list[str]  # content keys the sealed records need (ids, never keys)
    audit_key_check: str  # an HMAC under the audit key: tells the right keys at restore


def copy_store(db_path: Path, target: Path) -> None:
    """Write a consistent copy of the SQLite database at `db_path` to `target` (a new
    file), self-contained (rollback journal, no -wal beside it) and fsynced."""
    if not db_path.is_file():
        raise ConduitError(f"no embedded store at {db_path}")
    src = sqlite3.connect(db_path, timeout=30)
    try:
        src.execute("PRAGMA query_only=1")
        # made 0600 before SQLite opens it: the copy holds what the store holds
        os.close(os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)  # all pages in one step: one read transaction
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    fsync_file(target)


def describe(snapshot: Path, keys: KeyRing, taken_at: float) -> Manifest:
    """The manifest of a snapshot file (begun at `taken_at`), read from the file itself."""
    with _read_only(snapshot) as conn:
        seq, head = conn.exec_driver_sql("SELECT seq, hash FROM audit_head WHERE id = 1").one()
        return Manifest(
            format=FORMAT,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken_at)),
            engine_version=__version__, snapshot=snapshot.name,
            size=snapshot.stat().st_size, sha256=sha256_of(snapshot),
            audit_seq=seq, audit_hash=head, counts=_counts(conn), key_ids=_key_ids(conn),
            audit_key_check=audit_key_check(keys))


def verify(folder: Path, keys: KeyRing) -> Manifest:
    """Check a backup folder against its manifest and the keys; raise BackupInvalid
    saying what is wrong. Reads the snapshot read-only: a backup is never changed."""
    manifest = read_manifest(folder)
    snapshot = folder / manifest.snapshot
    if not snapshot.is_file():
        raise BackupInvalid(f"{snapshot} is missing")
    if sha256_of(snapshot) != manifest.sha256:
        raise BackupInvalid(f"{snapshot} is not the file its manifest describes "
                            "(its SHA-256 differs): damaged or altered")
    if manifest.audit_key_check != audit_key_check(keys):
        raise BackupInvalid("the keys given are not this backup's keys (its audit key "
                            "differs); give the key folder saved with this backup")
    try:
        with _read_only(snapshot) as conn:
            problems = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupInvalid(f"{snapshot} fails SQLite's integrity check: "
                                    f"{'; '.join(problems[:3])}")
            chain = audit.verify(conn, keys.audit)
            if chain.broken is not None:
                b = chain.broken
                raise BackupInvalid(f"the audit chain in {snapshot} is broken at event "
                                    f"#{b.seq} ({b.kind}): {b.reason}")
            if (chain.events, _head(conn)) != (manifest.audit_seq, manifest.audit_hash):
                raise BackupInvalid(f"the audit chain in {snapshot} ends at event "
                                    f"#{chain.events}, its manifest at #{manifest.audit_seq}")
            counts = _counts(conn)
            differ = sorted(k for k, n in manifest.counts.items() if counts.get(k) != n)
            if differ:
                raise BackupInvalid(f"{snapshot} does not hold what its manifest counts: "
                                    f"{', '.join(differ)}")
            _check_keys(conn, keys)
    except sa.exc.DatabaseError as exc:
        raise BackupInvalid(f"{snapshot} is not a readable SQLite store: "
                            f"{str(exc.orig or exc).splitlines()[0]}") from exc
    return manifest


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        return msgspec.json.decode(path.read_bytes(), type=Manifest)
    except FileNotFoundError:
        raise BackupInvalid(f"{folder} is no conduit backup: it has no {MANIFEST}") from None
    except NotADirectoryError:
        raise BackupInvalid(f"{folder} is no conduit backup: it is not a folder") from None
    except OSError as exc:
        raise BackupInvalid(f"{path} cannot be read: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise BackupInvalid(f"{path} cannot be read: {exc}") from exc


def write_manifest(folder: Path, manifest: Manifest) -> None:
    path = folder / MANIFEST
    path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    fsync_file(path)


def store_is_empty(db_path: Path) -> bool:
    """True if there is no store, or one no engine has written anything to yet."""
    if not db_path.exists():
        return True
    db = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(
        f"file:{db_path}?mode=ro", uri=True, timeout=30))
    try:
        with db.connect() as conn:
            tables = _tables(conn)
            events = (conn.exec_driver_sql("SELECT seq FROM audit_head WHERE id = 1").scalar()
                      if "audit_head" in tables else 0)
            stored = (conn.exec_driver_sql("SELECT count(*) FROM messages").scalar()
                      if "messages" in tables else 0)
            return not events and not stored
    finally:
        db.dispose()


def audit_key_check(keys: KeyRing) -> str:
    """Tells whether two key rings hold the same audit key, revealing nothing of it."""
    return hmac.digest(keys.audit, _AUDIT_KEY_CHECK, "sha256").hex()[:32]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sa.Connection]:
    """A connection that cannot change the file (immutable: no journal, no lock)."""
    db = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(
        f"file:{path}?mode=ro&immutable=1", uri=True))
    try:
        with db.connect() as conn:
            yield conn
    finally:
        db.dispose()


def _tables(conn: sa.Connection) -> set[str]:
    return {r[0] for r in conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}


def _head(conn: sa.Connection) -> str:
    return conn.exec_driver_sql("SELECT hash FROM audit_head WHERE id = 1").scalar_one()


def _counts(conn: sa.Connection) -> dict[str, int]:
    tables = _tables(conn)
    counts = {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
              for t in _COUNTED if t in tables}
    if "queue" in tables:
        for state, n in conn.exec_driver_sql("SELECT state, count(*) FROM queue GROUP BY state"):
            counts[f"queue_{state}"] = n
    return counts


def _key_ids(conn: sa.Connection) -> list[str]:
    tables = _tables(conn)
    ids: set[str] = set()
    for t in _SEALED:
        if t in tables:
            ids.update(r[0] for r in conn.exec_driver_sql(
                f"SELECT DISTINCT key_id FROM {t} WHERE length(content) > 0"))
    return sorted(ids)


def _check_keys(conn: sa.Connection, keys: KeyRing) -> None:
    """Every content key the sealed records name is there (loaded, or kept retired by
    the provider), and opens one of them. Content retention removed is not looked at."""
    vault = Vault(keys)
    tables = _tables(conn)
    for t in _SEALED:
        if t not in tables:
            continue
        for key_id, record_id in conn.exec_driver_sql(
                f"SELECT key_id, min(id) FROM {t} WHERE length(content) > 0 "
                "GROUP BY key_id").all():
            sealed = conn.exec_driver_sql(f"SELECT content FROM {t} WHERE id = ?",
                                          (record_id,)).scalar_one()
            if keys.find(key_id) is None:
                raise BackupInvalid(f"records in {t} are sealed under content key "
                                    f"{key_id}, which the key folder given does not hold")
            try:
                vault.open(key_id, sealed, record_id)
            except KeyError_ as exc:
                raise BackupInvalid(f"content key {key_id} does not open the records "
                                    f"sealed under it ({t}): {exc}") from exc
