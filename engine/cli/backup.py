"""`conduit backup` and `conduit restore`: the embedded store, its keys kept apart."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from engine.cli.common import actor, engine_config
from engine.errors import ConduitError, StoreError

_DOCS = "docs/operations.md, Backup and restore"


def add_commands(sub: argparse._SubParsersAction) -> None:
    backup = sub.add_parser("backup", help="a verified snapshot of the embedded store, while "
                            "the engine runs; keys copied apart with --keys-to")
    backup.add_argument("path", metavar="FOLDER",
                        help="a new backup folder, or an existing folder to make one in")
    backup.add_argument("--keys-to", metavar="FOLDER",
                        help="also copy the key folder here (a new folder, or one to make "
                             "it in); keep it apart from the backup")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="put a backup in place of the embedded store "
                             "(the engine stopped)")
    restore.add_argument("backup", metavar="BACKUP", help="the backup folder")
    restore.add_argument("--keys-from", metavar="FOLDER",
                         help="the key folder saved with the backup (default: the keys "
                              "already in place)")
    restore.add_argument("--force", action="store_true",
                         help="replace a store that holds data (kept beside it)")
    restore.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    from engine.backup import check_apart, take, target_folder
    from engine.security import key_backup
    from engine.security.keys import KeyRing

    config, db_path, keys_dir = _embedded(args, "back up")
    if config.queue.type != "sql":
        print(f"conduit: warning: the queues are in {config.queue.type}, outside this "
              f"backup; see {_DOCS}")
    if not db_path.is_file():
        raise ConduitError(f"no embedded store at {db_path}: nothing to back up")
    taken_at = time.time()
    folder = target_folder(Path(args.path), "conduit-backup", taken_at)
    keys_to = (target_folder(Path(args.keys_to), "conduit-keys", taken_at)
               if args.keys_to else None)
    check_apart(Path(config.data_dir), folder, keys_to)
    keys = KeyRing.load(keys_dir)
    manifest = take(db_path, keys, folder)
    print(f"backup {folder}: {manifest.counts.get('messages', 0)} messages, "
          f"{_queued(manifest.counts)} queued, audit chain verified through event "
          f"#{manifest.audit_seq}; sha256 {manifest.sha256}")
    if keys_to is not None:
        copied = key_backup.copy_folder(keys_dir, keys_to)
        print(f"keys {keys_to}: {len(copied)} file(s); store them apart from the backup")
    else:
        print(f"the backup holds no keys: keep a copy of {keys_dir} elsewhere "
              "(conduit backup --keys-to), or it cannot be opened")
    _record(args, {"action": "backup", "through": manifest.audit_seq,
                   "sha256": manifest.sha256, "keys_copied": keys_to is not None})
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from engine import backup
    from engine.runtime import lock_data_dir
    from engine.security import key_backup
    from engine.security.keys import ENV_CONTENT_KEY, KeyRing

    config, db_path, keys_dir = _embedded(args, "restore")
    source = Path(args.backup)
    keys_from = Path(args.keys_from) if args.keys_from else None
    try:
        lock = lock_data_dir(Path(config.data_dir))
    except StoreError:
        raise ConduitError(f"an engine is running on {config.data_dir}/: stop it before "
                           "restoring") from None
    try:
        keys_source = keys_from or keys_dir
        if not key_backup.holds_keys(keys_source) and not os.environ.get(ENV_CONTENT_KEY):
            raise ConduitError(f"no keys in {keys_source}: give the key folder saved with "
                               "the backup (--keys-from)")
        keys = KeyRing.load(keys_source)
        if keys_from is not None:
            clash = key_backup.conflicts(keys_from, keys_dir)
            if clash:
                raise ConduitError(f"{keys_dir} holds other keys under the same names "
                                   f"({', '.join(map(str, clash[:3]))}); move it away first")
        manifest = backup.restore(source, db_path, keys, force=args.force)
        added = key_backup.put_back(keys_from, keys_dir) if keys_from is not None else []
    finally:
        os.close(lock)
    _record(args, {"action": "restore", "backup_created_at": manifest.created_at,
                   "through": manifest.audit_seq, "sha256": manifest.sha256})
    print(f"restored the backup of {manifest.created_at} to {db_path}: "
          f"{manifest.counts.get('messages', 0)} messages, {_queued(manifest.counts)} "
          f"queued, audit chain verified through event #{manifest.audit_seq}"
          + (f"; {len(added)} key file(s) put in {keys_dir}" if added else ""))
    print(f"messages acknowledged after {manifest.created_at} are not in it: senders "
          f"must resend them (see {_DOCS}); `conduit run` delivers what is queued")
    return 0


def _embedded(args: argparse.Namespace, verb: str):
    """The configuration, the SQLite file and the key folder; refuses an external
    store, which its database's own tools back up."""
    from engine.runtime import Services
    from engine.store.database import default_url

    config = engine_config(args)
    if not Services.store_is_embedded(config):
        raise ConduitError(f"conduit {args.command} works on the embedded SQLite store; "
                           f"{verb} this engine's database with its own tools ({_DOCS})")
    url = config.store.url or default_url(config.data_dir)
    db_path = Path(url.split(":///", 1)[-1])
    keys_dir = Path(config.keys.directory or Path(config.data_dir) / "keys")
    return config, db_path, keys_dir


def _record(args: argparse.Namespace, detail: dict) -> None:
    """The backup or restore, in the audit trail of the store (after the snapshot: a
    backup's own record is in the live chain, a restore's in the restored one)."""
    from engine.cli.common import with_services
    from engine.events import Event, Kind
    from engine.store.writer import UnitOfWork

    async def body(svc) -> int:
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, actor=actor(), detail=detail))
        await svc.writer.commit(uow)
        return 0

    try:
        with_services(args, body)
    except StoreError as exc:
        print(f"conduit: warning: the {detail['action']} is done but was not recorded in "
              f"the audit trail: {exc}")


def _queued(counts: dict[str, int]) -> int:
    return counts.get("queue_ready", 0) + counts.get("queue_leased", 0)

