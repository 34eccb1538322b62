"""`conduit backup` and `conduit restore`: the embedded store, its keys kept apart."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from engine.cli.common import actor, engine_config
from engine.errors import ConduitError, StoreError, path_error

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

    config, db_path, folders = _embedded(args, "back up")
    if config.queue.type != "sql":
        print(f"conduit: warning: the queues are in {config.queue.type}, outside this "
              f"backup; see {_DOCS}", file=sys.stderr)
    if not db_path.is_file():
        raise ConduitError(f"no embedded store at {db_path}: nothing to back up")
    taken_at = time.time()
    folder = target_folder(Path(args.path), "conduit-backup", taken_at)
    keys_to = (target_folder(Path(args.keys_to), "conduit-keys", taken_at)
               if args.keys_to else None)
    check_apart(Path(config.data_dir), folder, keys_to)
    manifest = take(db_path, _ring(config, folders), folder)
    print(f"backup {folder}: {manifest.counts.get('messages', 0)} messages, "
          f"{_queued(manifest.counts)} queued, audit chain verified through event "
          f"#{manifest.audit_seq}; sha256 {manifest.sha256}")
    if keys_to is not None:
        try:
            copied = key_backup.copy_folders(folders, keys_to)
        except OSError as exc:
            raise path_error(f"copy the keys to {keys_to} (the data backup {folder} is "
                             "made)", exc) from None
        print(f"keys {keys_to}: {copied} file(s); store them apart from the backup")
    else:
        print(f"the backup holds no keys: keep a copy of {', '.join(map(str, folders.values()))}"
              " elsewhere (conduit backup --keys-to), or it cannot be opened")
    if _provider(config) == "env":
        print("the content key in CONDUIT_KEY is in no folder: keep it in your secret store")
    _record(args, {"action": "backup", "through": manifest.audit_seq,
                   "sha256": manifest.sha256, "keys_copied": keys_to is not None})
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from engine import backup
    from engine.runtime import lock_data_dir
    from engine.security import key_backup
    from engine.store.database import make_private_folder

    config, db_path, folders = _embedded(args, "restore")
    source = Path(args.backup)
    copy = _copy_of_keys(Path(args.keys_from), folders) if args.keys_from else None
    make_private_folder(Path(config.data_dir))  # 0700 if new; before the lock makes it
    try:
        lock = lock_data_dir(Path(config.data_dir))
    except StoreError:
        raise ConduitError(f"an engine is running on {config.data_dir}/: stop it before "
                           "restoring") from None
    try:
        keys = _ring(config, {**folders, **(copy or {})})
        clash = key_backup.conflicts(copy, folders) if copy else []
        if clash:
            raise ConduitError(f"the key folder holds other keys under the same names "
                               f"({', '.join(map(str, clash[:3]))}); move it away first")
        manifest = backup.restore(source, db_path, keys, force=args.force)
        added = sum(len(key_backup.put_back(path, folders[name]))
                    for name, path in (copy or {}).items())
    finally:
        os.close(lock)
    _record(args, {"action": "restore", "backup_created_at": manifest.created_at,
                   "through": manifest.audit_seq, "sha256": manifest.sha256})
    print(f"restored the backup of {manifest.created_at} to {db_path}: "
          f"{manifest.counts.get('messages', 0)} messages, {_queued(manifest.counts)} "
          f"queued, audit chain verified through event #{manifest.audit_seq}"
          + (f"; {added} key file(s) put back" if added else ""))
    print(f"messages acknowledged after {manifest.created_at} are not in it: senders "
          f"must resend them (see {_DOCS}); `conduit run` delivers what is queued")
    return 0


def _embedded(args: argparse.Namespace, verb: str):
    """The configuration, the SQLite file and the key folders; refuses an external
    store, which its database's own tools back up."""
    from engine.runtime import Services
    from engine.store.database import default_url

    config = engine_config(args)
    if not Services.store_is_embedded(config):
        raise ConduitError(f"conduit {args.command} works on the embedded SQLite store; "
                           f"{verb} this engine's database with its own tools ({_DOCS})")
    url = config.store.url or default_url(config.data_dir)
    return config, Path(url.split(":///", 1)[-1]), _key_folders(config)


def _provider(config) -> str:
    """The key provider in use, as engine.security.key_providers.provider_for picks it."""
    from engine.security.key_providers import ENV_CONTENT_KEY

    return config.keys.provider or ("env" if os.environ.get(ENV_CONTENT_KEY) else "file")


def _key_folders(config) -> dict[str, Path]:
    """This engine's key folders, by the name of their copy: keys/ always (with
    CONDUIT_KEY it may hold older keys), kms/ with the file-based KMS."""
    data = Path(config.data_dir)
    folders = {"keys": Path(config.keys.directory or data / "keys")}
    if _provider(config) == "kms":
        folders["kms"] = Path(config.keys.kms_directory or data / "kms")
    return folders


def _copy_of_keys(given: Path, folders: dict[str, Path]) -> dict[str, Path]:
    """The key folders in a copy made by --keys-to (or a plain key folder)."""
    if (given / "audit.key").is_file():
        return {"keys": given}
    copy = {name: given / name for name in folders if (given / name).is_dir()}
    if not copy:
        raise ConduitError(f"{given} holds no copy of this engine's keys")
    return copy


def _ring(config, folders: dict[str, Path]):
    """The configured provider's key ring over `folders`; folders without this engine's
    keys are refused, not filled with new keys."""
    import msgspec

    from engine.security.keys import KeyRing

    provider = _provider(config)
    needed = {"file": folders["keys"] / "audit.key",
              "kms": folders.get("kms", Path()) / "master.key"}.get(provider)
    if needed is not None and not needed.is_file():
        raise ConduitError(f"no keys in {needed.parent}: give the key folder saved with the "
                           "backup (--keys-from)")
    return KeyRing.for_config(msgspec.structs.replace(
        config.keys, directory=str(folders["keys"]),
        kms_directory=str(folders["kms"]) if "kms" in folders else None), config.data_dir)


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
              f"the audit trail: {exc}", file=sys.stderr)


def _queued(counts: dict[str, int]) -> int:
    return counts.get("queue_ready", 0) + counts.get("queue_leased", 0)

