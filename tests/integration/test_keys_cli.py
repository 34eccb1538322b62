"""`conduit keys rotate` and `conduit keys status` on a real store and key folder: the
states and counts an operator reads, a missing key's exit code, and the environment
provider's refusal to rotate."""

from __future__ import annotations

import base64
import os
import re
import time

from engine.cli import main
from engine.config.keys import KeysConfig
from engine.security.crypto import Vault, content_hash
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer


def _conf(tmp_path, keys: str = "") -> str:
    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\n{keys}")
    return str(conf)


async def _store_one(tmp_path, raw: bytes) -> str:
    ring = KeyRing.for_config(KeysConfig(), tmp_path / "data", env={})
    db = open_database(f"sqlite:///{tmp_path / 'data' / 'conduit.db'}")
    writer = Writer(db, ring.audit)
    writer.start()
    uow = UnitOfWork()
    MessageStore(db, Vault(ring)).add_message(uow, {
        "id": "M" * 26, "channel": "adt", "received_at": time.time(), "status": "accepted",
        "peer": "", "patient": None, "content_hash": content_hash(raw), "error": None}, raw)
    await writer.commit(uow)
    await writer.close()
    db.dispose()
    return ring.current


def _status(capsys) -> dict[str, list[str]]:
    out = capsys.readouterr().out
    return {m[0]: list(m[1:]) for m in re.findall(r"^(k\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)$",
                                             out, re.M)}


async def test_status_follows_a_rotation_and_flags_a_missing_key(tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    conf = _conf(tmp_path)
    first = await _store_one(tmp_path, b"MSH|1")
    assert await _in_thread(main, ["--conf", conf, "keys", "status"]) == 0
    assert _status(capsys) == {first: ["current", "1", "0", "0"]}
    assert await _in_thread(main, ["--conf", conf, "keys", "rotate"]) == 0
    new = re.search(r"new content key (k\S+) \(file\)", capsys.readouterr().out).group(1)
    assert await _in_thread(main, ["--conf", conf, "keys", "status"]) == 0
    assert _status(capsys) == {first: ["current", "1", "0", "0"], new: ["next", "0", "0", "0"]}
    (tmp_path / "data" / "keys" / f"{first}.key").unlink()
    assert await _in_thread(main, ["--conf", conf, "keys", "status"]) == 1
    assert _status(capsys) == {new: ["current", "0", "0", "0"],
                               first: ["MISSING", "1", "0", "0"]}


async def test_environment_keys_are_not_rotated_from_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONDUIT_KEY", base64.b64encode(os.urandom(32)).decode())
    conf = _conf(tmp_path)
    assert await _in_thread(main, ["--conf", conf, "keys", "rotate"]) == 2
    assert "rotate by moving to keys.provider file or kms" in capsys.readouterr().err


async def _in_thread(fn, argv):
    """main runs its own event loop."""
    import asyncio

    return await asyncio.to_thread(fn, argv)
