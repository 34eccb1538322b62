"""A keys folder never gets new keys behind a store that has history, a command that only
reads makes none, an audit key that does not continue the chain is refused, and a
private (or read-only) folder is left as it is (issue 14: a new-user trial of the
production README)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from engine.config.keys import KeysConfig
from engine.errors import KeyError_
from engine.events import Event, Kind
from engine.security.key_providers import FileKeys, FileKms, ensure_private_dir
from engine.security.keys import (
    KeyRing,
    KeysMissing,
    WrongAuditKey,
    WrongPseudonymKey,
    for_store,
)
from engine.store.writer import UnitOfWork, Writer


def _config(folder: Path, **kw) -> KeysConfig:
    return KeysConfig(directory=str(folder), **kw)


def _one_event(db, audit_key: bytes) -> None:
    async def run() -> None:
        writer = Writer(db, audit_key)
        writer.start()
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, detail={"action": "test"}))
        await writer.commit(uow)
        await writer.close()

    asyncio.run(run())


def test_a_folder_opened_without_create_makes_nothing(tmp_path):
    folder = tmp_path / "keys"
    keys = FileKeys(folder, create=False)
    assert keys.missing() == ["a content key (k*.key)", "pseudonym.key", "audit.key"]
    with pytest.raises(KeyError_, match=f"no audit key in {folder}"):
        keys.fixed("audit")
    assert not folder.exists()
    kms = FileKms(tmp_path / "kms", create=False)
    assert "master.key" in kms.missing()
    with pytest.raises(KeyError_, match="no pseudonym key"):
        kms.fixed("pseudonym")
    assert not (tmp_path / "kms").exists()


def test_a_brand_new_store_gets_its_keys_from_a_writer(tmp_path, db):
    folder = tmp_path / "keys"
    ring = for_store(_config(folder), tmp_path, db, writes=True, env={})
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["audit.key", "pseudonym.key", f"{ring.current}.key"])
    again = for_store(_config(folder), tmp_path, db, writes=False, env={})
    assert again.audit == ring.audit and again.current == ring.current


def test_a_store_with_events_refuses_an_empty_keys_folder(tmp_path, db):
    _one_event(db, KeyRing.load(tmp_path / "right", env={}).audit)
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    with pytest.raises(KeysMissing) as refused:
        for_store(_config(empty), tmp_path, db, writes=True, env={})
    said = str(refused.value)
    assert str(empty) in said and "audit.key" in said and "keys.directory" in said
    assert "already holds audit events or messages" in said
    assert list(empty.iterdir()) == []  # nothing made


def test_a_store_with_events_refuses_a_folder_without_the_audit_key(tmp_path, db):
    right = tmp_path / "right"
    _one_event(db, KeyRing.load(right, env={}).audit)
    (right / "audit.key").unlink()
    with pytest.raises(KeysMissing, match=r"lacks audit\.key"):
        for_store(_config(right), tmp_path, db, writes=True, env={})
    assert not (right / "audit.key").exists()


def test_a_reading_command_makes_no_keys_even_for_a_new_store(tmp_path, db):
    folder = tmp_path / "keys"
    with pytest.raises(KeysMissing, match=f"no keys in {folder}.*only reads"):
        for_store(_config(folder), tmp_path, db, writes=False, env={})
    assert not folder.exists()


def test_an_audit_key_that_does_not_continue_the_chain_is_refused(tmp_path, db):
    _one_event(db, KeyRing.load(tmp_path / "right", env={}).audit)
    KeyRing.load(tmp_path / "other", env={})  # another store's keys
    with pytest.raises(WrongAuditKey, match=r"newest event, #1, was not made with it"):
        for_store(_config(tmp_path / "other"), tmp_path, db, writes=True, env={})
    # a reader may open them (audit verify then reports where the chain breaks)
    for_store(_config(tmp_path / "other"), tmp_path, db, writes=False, env={})
    ring = for_store(_config(tmp_path / "right"), tmp_path, db, writes=True, env={})
    _one_event(db, ring.audit)  # the right keys carry on


def test_the_kms_provider_is_refused_the_same_way(tmp_path, db):
    _one_event(db, KeyRing.open(FileKms(tmp_path / "kms")).audit)
    conf = KeysConfig(provider="kms", kms_directory=str(tmp_path / "nokms"))
    with pytest.raises(KeysMissing, match=r"master\.key"):
        for_store(conf, tmp_path, db, writes=True, env={})
    assert not (tmp_path / "nokms").exists()


def test_a_private_folder_is_never_chmodded(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o500)  # private and not even writable: as a mounted secret
    FileKeys(folder.parent / "seed")  # keys to copy in
    os.chmod(folder, 0o700)
    for p in (folder.parent / "seed").iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
        os.chmod(folder / p.name, 0o400)
    os.chmod(folder, 0o500)
    calls = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: calls.append(a))
    ring = KeyRing.open(FileKeys(folder))
    assert ring.audit and calls == []
    assert stat.S_IMODE(folder.stat().st_mode) == 0o500


def test_an_open_folder_is_made_private(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@contextlib.contextmanager
def _read_only_mount(folder: Path, mode: str):
    """A real read-only file system (tmpfs, remounted ro) holding `folder`'s keys, as
    systemd's ProtectSystem=strict or a Kubernetes secret volume gives it."""
    folder.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", str(folder)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a file system needs root (CAP_SYS_ADMIN)")
    def remount_ro() -> None:
        os.chmod(folder, int(mode, 8))  # as mounted, whatever making keys did
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    try:
        yield remount_ro
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("mode", ["0700", "1777"])  # a private folder; a secret volume's
def test_a_read_only_folder_holding_the_keys_opens(tmp_path, mode):
    folder = tmp_path / "keys"
    with _read_only_mount(folder, mode) as remount_ro:
        made = KeyRing.open(FileKeys(folder))
        remount_ro()
        ring = KeyRing.open(FileKeys(folder))
        assert (ring.current, ring.audit) == (made.current, made.audit)
        with pytest.raises(KeyError_, match="read-only file system") as refused:
            FileKeys(folder).create()  # conduit keys rotate
        assert "\n" not in str(refused.value)


def test_a_read_only_empty_folder_says_no_key_can_be_made(tmp_path):
    folder = tmp_path / "keys"
    with _read_only_mount(folder, "0700") as remount_ro:
        remount_ro()
        with pytest.raises(KeyError_, match=f"in the keys folder {folder}: it is on a "
                                            "read-only file system"):
            KeyRing.open(FileKeys(folder))


def test_a_folder_that_cannot_be_made_private_says_the_mode_needed(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    folder.mkdir()
    os.chmod(folder, 0o750)

    def refuse(*_a, **_k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)  # a folder owned by another user
    with pytest.raises(KeyError_, match=r"mode 0750.*needs mode 0700.*chmod 700"):
        ensure_private_dir(folder)


def test_a_pseudonym_key_other_than_the_stores_is_refused(tmp_path, db):
    right = tmp_path / "right"
    ring = for_store(_config(right), tmp_path, db, writes=True, env={})
    _one_event(db, ring.audit)
    mixed = tmp_path / "mixed"  # the right content and audit keys, another pseudonym key
    mixed.mkdir(mode=0o700)
    for key in right.iterdir():
        shutil.copy2(key, mixed / key.name)
    (mixed / "pseudonym.key").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    with pytest.raises(WrongPseudonymKey, match=f"the pseudonym key in {mixed} is not"):
        for_store(_config(mixed), tmp_path, db, writes=True, env={})
    again = for_store(_config(right), tmp_path, db, writes=True, env={})
    assert again.pseudonym == ring.pseudonym  # the right folder still opens the store
