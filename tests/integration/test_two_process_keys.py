"""Two engines starting at the same instant on a brand-new PostgreSQL store and one keys
folder (two `conduit run` with conf/production.yaml, CONDUIT_KEYS_DIR shared): each
makes the keys it finds missing, and both must come up with the same fixed keys.

Before, a key file was created under its own name and then written, so the second
engine could read it empty in between and refuse to start ("holds 0 bytes; a key has
32"). The first engine is held right after it creates a file in the keys folder, which
is where the operating system may switch processes, while the second one starts.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.config.keys import KeysConfig
from engine.security.keys import KeyRing, for_store
from engine.store.database import open_database


def _start(url: str, keys: Path, data: Path) -> KeyRing:
    """What an engine's start does with the store and its keys (engine.runtime.Services)."""
    db = open_database(url)
    try:
        return for_store(KeysConfig(directory=str(keys)), data, db, writes=True)
    finally:
        db.dispose()


def test_two_engines_starting_together_share_one_set_of_keys(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    created = threading.Event()  # the first engine made a file in the keys folder
    second_done = threading.Event()
    real_open = os.open

    def held_open(path, flags, mode=0o777, *args, **kwargs):
        fd = real_open(path, flags, mode, *args, **kwargs)
        if (threading.current_thread().name == "first" and flags & os.O_CREAT
                and str(path).startswith(str(keys)) and not created.is_set()):
            created.set()
            second_done.wait(10)  # the second engine starts while this file is new
        return fd

    monkeypatch.setattr(os, "open", held_open)
    rings: dict[str, KeyRing] = {}
    errors: dict[str, BaseException] = {}

    def engine(name: str) -> None:
        try:
            rings[name] = _start(pg_url, keys, tmp_path / name)
        except BaseException as exc:  # reported by the assertion below
            errors[name] = exc
        finally:
            if name == "second":
                second_done.set()

    first = threading.Thread(target=engine, args=("first",), name="first")
    first.start()
    assert created.wait(10)
    second = threading.Thread(target=engine, args=("second",), name="second")
    second.start()
    second.join(30)
    first.join(30)

    assert errors == {}, {name: str(exc) for name, exc in errors.items()}
    a, b = rings["first"], rings["second"]
    assert a.pseudonym == b.pseudonym  # one patient, one pseudonym, whichever engine
    assert a.audit == b.audit  # one chain
    for ring, other in ((a, b), (b, a)):  # each opens what the other seals
        assert ring.find(other.current) == other.content[other.current]
    # Nothing half-made is left for a key backup to copy.
    assert not [p.name for p in keys.rglob(".*")]
