"""The store is readable by its owner only, whatever the umask: a started engine's data
folder is 0700 and conduit.db with its -wal and -shm 0600; a store left open to others
by an older version is closed at start, with a warning naming the file; a backup's
snapshot, a restored store and the store a restore set aside are 0600 too."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.database import default_url, open_database
from tests.harness import EngineHarness
from tests.integration.test_backup import Store, _conduit


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are made 0644 unless made otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def store_files(folder: Path) -> dict[str, int]:
    """The mode of every store file in `folder` (conduit.db*, the lock files aside)."""
    return {p.name: mode(p) for p in folder.iterdir()
            if p.name.startswith("conduit.db") and not p.name.endswith("lock")}


async def test_a_started_engine_keeps_its_store_to_itself(tmp_path: Path) -> None:
    harness = EngineHarness(tmp_path)
    await harness.start({})
    try:
        files = store_files(harness.data)
        assert {"conduit.db", "conduit.db-wal", "conduit.db-shm"} <= set(files)
        assert set(files.values()) == {0o600}
        assert mode(harness.data) == 0o700
    finally:
        await harness.stop()


def test_an_open_store_is_closed_at_start_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store an older version made 0644 is made 0600 the next time it is opened."""
    Store(tmp_path / "data").add(1)
    db_path = tmp_path / "data" / "conduit.db"
    os.chmod(db_path, 0o644)
    with caplog.at_level(logging.WARNING):
        open_database(default_url(tmp_path / "data")).dispose()
    assert mode(db_path) == 0o600
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(db_path) in w and "0644" in w for w in warned), warned


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    s = Store(tmp_path / "data")
    s.add(2)
    return s


def test_backups_and_restores_keep_the_store_to_its_owner(store: Store,
                                                          tmp_path: Path) -> None:
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to", str(tmp_path / "k")) == 0
    assert mode(tmp_path / "bk") == 0o700
    assert mode(tmp_path / "bk" / "conduit.db") == 0o600

    shutil.rmtree(store.data_dir)
    assert _conduit("restore", str(tmp_path / "bk"), "--keys-from", str(tmp_path / "k")) == 0
    assert mode(store.data_dir) == 0o700
    assert set(store_files(store.data_dir).values()) == {0o600}

    os.chmod(store.db_path, 0o644)  # as an older version left it
    assert _conduit("restore", str(tmp_path / "bk"), "--force") == 0
    files = store_files(store.data_dir)
    assert any(name.startswith("conduit.db.before-restore-") for name in files)
    assert set(files.values()) == {0o600}, files
