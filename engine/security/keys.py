"""The engine's secret keys: content encryption (rotatable), patient pseudonyms and the
audit chain, kept as 0600 files under the key folder or given by the environment.

Content keys rotate without downtime: a new key becomes current for writing while every
older key stays readable (each record names its key id). The pseudonym and audit keys do
not rotate: changing them would orphan every pseudonym and break the chain's proof.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import KeyError_

KEY_BYTES = 32
ENV_CONTENT_KEY = "CONDUIT_KEY"  # base64 of 32 bytes; for hosts that keep secrets outside files


class KeyRing:
    """Content keys by id, the current one for writing, and the two fixed keys."""

    def __init__(
        self, content: dict[str, bytes], current: str, pseudonym: bytes, audit: bytes
    ) -> None:
        if current not in content:
            raise KeyError_(f"current key {current} is not among the loaded keys")
        self.content = content
        self.current = current
        self.pseudonym = pseudonym
        self.audit = audit

    @classmethod
    def load(cls, folder: str | Path, env: dict[str, str] | None = None) -> KeyRing:
        """Read keys from `folder`, creating it and first keys on first run.

        With CONDUIT_KEY set, that key is current (id "env-" + fingerprint) and the
        pseudonym and audit keys derive from it, so a host can keep no key on disk.
        """
        env = dict(os.environ if env is None else env)
        folder = Path(folder)
        encoded = env.get(ENV_CONTENT_KEY)
        if encoded:
            master = _decode_env_key(encoded)
            key_id = "env-" + hashlib.sha256(master).hexdigest()[:12]
            content = _read_content_keys(folder) if folder.is_dir() else {}
            content[key_id] = master
            return cls(content, key_id, _derive(master, b"conduit pseudonym"),
                       _derive(master, b"conduit audit chain"))
        _ensure_private_dir(folder)
        content = _read_content_keys(folder)
        if not content:
            _new_content_key(folder)
            content = _read_content_keys(folder)
        current = max(content)  # ids sort by creation time
        return cls(content, current, _fixed_key(folder / "pseudonym.key"),
                   _fixed_key(folder / "audit.key"))


def rotate(folder: str | Path) -> str:
    """Create a new content key; it becomes current at the engine's next key load."""
    folder = Path(folder)
    _ensure_private_dir(folder)
    return _new_content_key(folder)


def _decode_env_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise KeyError_(f"{ENV_CONTENT_KEY} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyError_(f"{ENV_CONTENT_KEY} must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=purpose).derive(master)


def _ensure_private_dir(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)


def _new_content_key(folder: Path) -> str:
    # Sortable by creation time (the newest is current), to the microsecond.
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    key_id = time.strftime("k%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"{micros:06d}"
    _write_key(folder / f"{key_id}.key", os.urandom(KEY_BYTES))
    return key_id


def _write_key(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(key) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError as exc:
        raise KeyError_(f"{path} does not hold a base64 key") from exc
    if len(key) != KEY_BYTES:
        raise KeyError_(f"{path} holds {len(key)} bytes; a key has {KEY_BYTES}")
    return key


def _read_content_keys(folder: Path) -> dict[str, bytes]:
    return {p.stem: _read_key(p) for p in sorted(folder.glob("k*.key"))}


def _fixed_key(path: Path) -> bytes:
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first
            _write_key(path, os.urandom(KEY_BYTES))
    return _read_key(path)
