"""Backing up and restoring the embedded store: `conduit backup` and `conduit restore`.

A backup is a folder holding a consistent snapshot of the SQLite store and its manifest
(engine.store.snapshot). It is written under a temporary name, verified (integrity, the
audit chain with the keys, the manifest), and only then renamed into place, so a
backup that exists is one that passed; a failed one leaves nothing. The keys never go
into it: they are copied to a folder of their own (engine.security.key_backup).

A restore checks the backup the same way before it touches the data folder, keeps the
store it replaces beside it, and puts the snapshot in place under a temporary name and
a rename, so a crash leaves either the old store or the restored one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from engine.errors import ConduitError, path_error
from engine.fsync import fsync_dir, fsync_file, new_folder
from engine.security.keys import KeyRing
from engine.store import snapshot
from engine.store.database import PRIVATE_FILE, make_private_folder
from engine.store.snapshot import Manifest


def target_folder(dest: Path, prefix: str, taken_at: float) -> Path:
    """A new folder named by the time inside `dest` if it is a folder, else `dest`."""
    if (dest / snapshot.MANIFEST).exists():
        raise ConduitError(f"{dest} is a backup; give a new folder, or the folder that "
                           "holds the backups")
    if dest.is_dir():
        return dest / time.strftime(f"{prefix}-%Y%m%dT%H%M%SZ", time.gmtime(taken_at))
    if dest.exists():
        raise ConduitError(f"{dest} exists and is not a folder")
    _check_can_make(dest)
    return dest


def _check_can_make(dest: Path) -> None:
    """Refuse a destination that could never be made (under a file, in a folder we may
    not write) before anything is taken: found at the copy, it was a traceback, and for
    --keys-to a data backup already made without its keys."""
    above = dest.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise ConduitError(f"cannot make {dest}: {above} is not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ConduitError(f"cannot make {dest}: no permission to write in {above}")


def check_apart(data_dir: Path, backup: Path, keys_to: Path | None) -> None:
    """A backup must survive the loss of the data folder, and its keys live elsewhere."""
    if _within(backup, data_dir):
        raise ConduitError(f"{backup} is inside the data folder {data_dir}: it would be "
                           "lost with it; back up to another disk or host")
    if keys_to is not None:
        if _within(keys_to, data_dir):
            raise ConduitError(f"{keys_to} is inside the data folder {data_dir}")
        if _within(keys_to, backup) or _within(backup, keys_to):
            raise ConduitError("the keys must be kept apart from the data backup: give "
                               "--keys-to a folder outside it (another disk, a vault)")


def take(db_path: Path, keys: KeyRing, folder: Path) -> Manifest:
    """Snapshot the store at `db_path` into the new backup folder `folder`, verified."""
    if folder.exists():
        raise ConduitError(f"{folder} already exists")
    try:
        return _take(db_path, keys, folder)
    except OSError as exc:  # a disk full or a folder we may not write, met midway
        raise path_error(f"write the backup {folder}", exc) from None


def _take(db_path: Path, keys: KeyRing, folder: Path) -> Manifest:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with new_folder(folder) as partial:
        taken_at = time.time()
        snapshot.copy_store(db_path, partial / snapshot.SNAPSHOT)
        snapshot.write_manifest(partial, snapshot.describe(partial / snapshot.SNAPSHOT,
                                                           keys, taken_at))
        try:
            manifest = snapshot.verify(partial, keys)  # read back from disk
        except snapshot.BackupInvalid as exc:
            said = str(exc).replace(str(partial), str(folder))
            raise snapshot.BackupInvalid(f"the backup failed its check and was not kept: "
                                         f"{said}") from exc
    return manifest


def restore(backup: Path, db_path: Path, keys: KeyRing, *, force: bool) -> Manifest:
    """Put the verified snapshot of `backup` in place of the store at `db_path`. A store
    holding anything is replaced only with `force`, and kept as
    conduit.db.before-restore-<time> (with its -wal) beside it. The caller holds the
    data folder's lock."""
    manifest = snapshot.verify(backup, keys)
    if not force and not snapshot.store_is_empty(db_path):
        raise ConduitError(f"{db_path} already holds a store; restore --force replaces it "
                           "(the old one is kept beside it)")
    try:
        _put_in_place(backup, manifest, db_path)
    except OSError as exc:
        raise path_error(f"restore to {db_path.parent}", exc) from None
    return manifest


def _put_in_place(backup: Path, manifest: Manifest, db_path: Path) -> None:
    """The snapshot copied beside the store, checked, and renamed over it; the old
    store and its journal kept as conduit.db.before-restore-<time>."""
    make_private_folder(db_path.parent)
    incoming = db_path.with_name(f".{db_path.name}.restoring-{os.getpid()}")
    try:
        _copy_private(backup / manifest.snapshot, incoming)
        fsync_file(incoming)
        if snapshot.sha256_of(incoming) != manifest.sha256:
            raise ConduitError(f"the copy of {backup} to {incoming} differs from it "
                               "(disk error?); nothing was replaced")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for suffix in ("", "-wal", "-shm"):  # the old store and its journal, together
            old = Path(f"{db_path}{suffix}")
            if old.exists():
                kept = Path(f"{db_path}.before-restore-{stamp}{suffix}")
                os.rename(old, kept)
                os.chmod(kept, PRIVATE_FILE)  # the whole old store: its owner's only
        os.rename(incoming, db_path)
        fsync_dir(db_path.parent)
    finally:
        incoming.unlink(missing_ok=True)


def _copy_private(source: Path, target: Path) -> None:
    """Copy `source` to the new file `target`, made 0600 whatever the umask: it becomes
    the store."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)


def _within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents
