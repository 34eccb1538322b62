"""Where content keys come from: a folder of key files, the environment, or a KMS.

Every provider answers the same questions, the ones a real key management service
answers: which keys are in service, the key of an id (unwrapping a data key), make a new
key, retire an old one, and the two fixed keys (pseudonyms, audit chain) that never
rotate. `FileKms` is a KMS in a folder: a master key that never leaves it wraps each
data key (envelope encryption), so the tests exercise what a cloud KMS would satisfy.

Content key ids carry their creation time ("k20261206T161819123456"), so every process
computes the same current key from the same listing without asking anyone: the newest
key at least `activate_after` seconds old. A new key is therefore loaded by every process
(they poll) before any of them writes with it.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import errno
import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.errors import KeyError_
from engine.fsync import fsync_dir

KEY_BYTES = 32
ENV_CONTENT_KEY = "CONDUIT_KEY"  # base64 of 32 bytes; for hosts that keep secrets outside files
FIXED = ("pseudonym", "audit")  # keys that never rotate


class KeyProvider(Protocol):
    """A source of content keys. `retires_by` says what retire() does to a key."""

    name: str
    retires_by: str

    def key_ids(self) -> list[str]:
        """Content keys in service, oldest first."""
        ...

    def current(self, activate_after: float, now: float | None = None) -> str:
        """The key to write with now."""
        ...

    def get(self, key_id: str) -> bytes | None:
        """The key of `key_id` (a retired one too, where the provider keeps them); None
        when no such key exists any more."""
        ...

    def create(self) -> str:
        """A new content key; it becomes current `activate_after` seconds later."""
        ...

    def retire(self, key_id: str) -> None:
        """Take a key out of service once no record uses it."""
        ...

    def fixed(self, purpose: str) -> bytes:
        """The pseudonym or audit key, made on first use (by a provider that may make
        keys: see `missing`)."""
        ...

    def missing(self) -> list[str]:
        """The keys this provider has not got yet (names of files, never key material);
        empty when every key is there. A provider opened with create=False makes none of
        them: engine.security.keys.for_store decides whether a store may get new keys."""
        ...

    @property
    def where(self) -> str:
        """Where the keys live, for messages (a folder, or the environment)."""
        ...


def key_time(key_id: str) -> float | None:
    """When a content key was made, from its id; None for ids without a time (env-...)."""
    try:
        seconds = calendar.timegm(time.strptime(key_id[1:16], "%Y%m%dT%H%M%S"))
        return seconds + int(key_id[16:22]) / 1e6
    except (ValueError, IndexError):
        return None


def newest_active(ids: list[str], activate_after: float, now: float | None = None) -> str:
    """The newest key old enough to write with; the oldest when none is (a first run)."""
    if not ids:
        raise KeyError_("no content key is in service")
    now = time.time() if now is None else now
    active = [k for k in ids if (key_time(k) or 0.0) + activate_after <= now]
    return max(active, key=_order) if active else min(ids, key=_order)


def _order(key_id: str) -> tuple[float, str]:
    return (key_time(key_id) or 0.0, key_id)


def new_key_id() -> str:
    """Sortable by creation time, to the microsecond."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return time.strftime("k%Y%m%dT%H%M%S", time.gmtime(seconds)) + f"{micros:06d}"


class FileKeys:
    """Key files (base64, mode 0600) in a private folder: today's default. A retired key
    moves to retired/ rather than being destroyed: a backup taken before the rotation
    still holds records under it, and restoring one must not lose them. Delete a retired
    key file once the last backup older than its retirement has expired."""

    name = "file"
    retires_by = "moved to retired/"

    def __init__(self, folder: str | Path, create: bool = True) -> None:
        """`create`: make the folder and any missing key (a content key now, the fixed
        keys on first use). Without it nothing is written: a missing key is an error."""
        self.folder = Path(folder)
        self.creates = create
        if create:
            ensure_private_dir(self.folder)
            if not self.key_ids():
                self.create()

    @property
    def where(self) -> str:
        return str(self.folder)

    def missing(self) -> list[str]:
        gone = [] if self.key_ids() else ["a content key (k*.key)"]
        return gone + [f"{p}.key" for p in FIXED if not (self.folder / f"{p}.key").exists()]

    def key_ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted((p.stem for p in self.folder.glob("k*.key")), key=_order)

    def current(self, activate_after: float, now: float | None = None) -> str:
        return newest_active(self.key_ids(), activate_after, now)

    def get(self, key_id: str) -> bytes | None:
        for path in (self.folder / f"{key_id}.key", self.folder / "retired" / f"{key_id}.key"):
            if _safe_name(key_id) and path.exists():
                return read_key(path)
        return None

    def create(self) -> str:
        ensure_private_dir(self.folder)
        key_id = new_key_id()
        _making(self.folder, write_key, self.folder / f"{key_id}.key", os.urandom(KEY_BYTES))
        return key_id

    def retire(self, key_id: str) -> None:
        retired = self.folder / "retired"
        ensure_private_dir(retired)
        with contextlib.suppress(FileNotFoundError):  # another process retired it first
            os.replace(self.folder / f"{key_id}.key", retired / f"{key_id}.key")
        fsync_dir(self.folder)

    def fixed(self, purpose: str) -> bytes:
        path = self.folder / f"{purpose}.key"
        if not path.exists():
            if not self.creates:
                raise KeyError_(f"no {purpose} key in {self.folder} ({path.name} is missing)")
            with contextlib.suppress(FileExistsError):  # another process created it first
                _making(self.folder, write_key, path, os.urandom(KEY_BYTES))
        return read_key(path)


class EnvKeys(FileKeys):
    """CONDUIT_KEY is the current key (id "env-" + fingerprint) and the root of the fixed
    keys, so a host keeps no key on disk; keys of a folder used before stay readable.
    The host sets the environment, so `keys rotate` cannot make a new key here."""

    name = "env"

    def __init__(self, encoded: str, folder: str | Path) -> None:
        super().__init__(folder, create=False)
        self.master = _decode_env_key(encoded)
        self.env_id = "env-" + hashlib.sha256(self.master).hexdigest()[:12]

    @property
    def where(self) -> str:
        return ENV_CONTENT_KEY

    def missing(self) -> list[str]:
        return []  # every key derives from CONDUIT_KEY

    def key_ids(self) -> list[str]:
        return [*super().key_ids(), self.env_id]

    def current(self, activate_after: float, now: float | None = None) -> str:
        return self.env_id

    def get(self, key_id: str) -> bytes | None:
        return self.master if key_id == self.env_id else super().get(key_id)

    def create(self) -> str:
        raise KeyError_(f"the content key comes from {ENV_CONTENT_KEY}; rotate by moving to "
                        "keys.provider file or kms (the environment key stays readable)")

    def retire(self, key_id: str) -> None:
        if key_id != self.env_id:
            super().retire(key_id)

    def fixed(self, purpose: str) -> bytes:
        return _derive(self.master, {"pseudonym": b"conduit pseudonym",
                                     "audit": b"conduit audit chain"}[purpose])


class FileKms:
    """A key management service in a folder: master.key wraps every data key (AES-GCM,
    the key's id as associated data) in data/<id>.wrapped. A data key exists in the
    clear only in the memory of the processes using it. Retiring destroys the wrapped
    key (crypto-shredding): no copy of a record under it, in any backup, opens again;
    a real KMS does the same by scheduling the key's deletion."""

    name = "kms"
    retires_by = "destroyed"

    def __init__(self, folder: str | Path, create: bool = True) -> None:
        """`create`: make the folders, master key and missing data keys. Without it
        nothing is written: a missing master key is an error here, a missing data key
        where it is needed."""
        self.folder = Path(folder)
        self.creates = create
        if create:
            ensure_private_dir(self.folder)
            ensure_private_dir(self.folder / "data")
        master = self.folder / "master.key"
        if not master.exists() and any((self.folder / "data").glob("*.wrapped")):
            raise KeyError_(f"{master} is missing, and without it no data key in "
                            f"{self.folder}/data unwraps; restore it")
        if not master.exists() and not create:
            self._master = None
            return
        if not master.exists():
            with contextlib.suppress(FileExistsError):
                _making(self.folder, write_key, master, os.urandom(KEY_BYTES))
        self._master = AESGCM(read_key(master))
        if create and not self.key_ids():
            self.create()

    @property
    def where(self) -> str:
        return str(self.folder)

    def missing(self) -> list[str]:
        data = self.folder / "data"
        gone = [] if (self.folder / "master.key").exists() else ["master.key"]
        gone += [] if self.key_ids() else ["a data key (data/k*.wrapped)"]
        return gone + [f"data/{p}.wrapped" for p in FIXED
                       if not (data / f"{p}.wrapped").exists()]

    def key_ids(self) -> list[str]:
        return sorted((p.stem for p in (self.folder / "data").glob("k*.wrapped")), key=_order)

    def current(self, activate_after: float, now: float | None = None) -> str:
        return newest_active(self.key_ids(), activate_after, now)

    def get(self, key_id: str) -> bytes | None:
        path = self.folder / "data" / f"{key_id}.wrapped"
        if not _safe_name(key_id) or not path.exists():
            return None
        return self._unwrap(key_id, path.read_bytes())

    def create(self) -> str:
        key_id = new_key_id()
        self._store(key_id, os.urandom(KEY_BYTES))
        return key_id

    def retire(self, key_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.folder / "data" / f"{key_id}.wrapped")
        fsync_dir(self.folder / "data")

    def fixed(self, purpose: str) -> bytes:
        path = self.folder / "data" / f"{purpose}.wrapped"
        if not path.exists():
            if not self.creates:
                raise KeyError_(f"no {purpose} key in {self.folder} (data/{path.name} is "
                                "missing)")
            with contextlib.suppress(FileExistsError):
                self._store(purpose, os.urandom(KEY_BYTES))
        return self._unwrap(purpose, path.read_bytes())

    def _aead(self) -> AESGCM:
        if self._master is None:
            raise KeyError_(f"no master key in {self.folder} (master.key is missing)")
        return self._master

    def _store(self, key_id: str, key: bytes) -> None:
        nonce = os.urandom(12)
        wrapped = nonce + self._aead().encrypt(nonce, key, key_id.encode())
        _making(self.folder, _write_private, self.folder / "data" / f"{key_id}.wrapped",
                wrapped)

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        try:
            return self._aead().decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        except InvalidTag as exc:
            raise KeyError_(f"data key {key_id} does not unwrap with {self.folder}/master.key "
                            "(another master key, or the wrapped key was altered)") from exc


PRIVATE_DIR = 0o700


def ensure_private_dir(folder: Path) -> None:
    """Make `folder` (mode 0700) or check it: a folder no other user can enter (no group
    or other bits) is left as it is, so a read-only one (systemd ProtectSystem=strict, a
    mounted secret) does; one open to others is made 0700, and where that is impossible
    the error says what to do. A folder on a read-only file system that others may list
    is accepted: nobody can add or swap a key file there, and each key file's own mode
    is checked when it is read (read_key)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise KeyError_(f"cannot make the keys folder {folder}: {exc.strerror}; create it "
                        f"(mode 0700, owned by the user running conduit) or point the "
                        "engine at one that holds the keys") from None
    mode = stat.S_IMODE(folder.stat().st_mode)
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return
    try:
        os.chmod(folder, PRIVATE_DIR)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return  # read-only: nobody can plant a key; read_key checks each file's mode
        raise KeyError_(f"the keys folder {folder} is open to other users (mode "
                        f"{mode:04o}) and could not be made private ({exc.strerror}); it "
                        f"needs mode 0700 (no access for group or others): run "
                        f"chmod 700 {folder} as its owner") from None


def _making(folder: Path, write, path: Path, data: bytes) -> None:
    """write(path, data) for a new key file; a folder that cannot take one (read-only,
    not ours) is said in one line, with what to do."""
    try:
        write(path, data)
    except FileExistsError:
        raise
    except OSError as exc:
        why = ("it is on a read-only file system, so no key can be made in it: make keys "
               "where the folder's source is written, or copy the keys there before the "
               "first start" if exc.errno == errno.EROFS else exc.strerror)
        raise KeyError_(f"cannot create {path.name} in the keys folder {folder}: {why}"
                        ) from None


def write_key(path: Path, key: bytes) -> None:
    _write_private(path, base64.b64encode(key) + b"\n")


def read_key(path: Path) -> bytes:
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


def _write_private(path: Path, data: bytes) -> None:
    """A new key file, whole or not at all; FileExistsError if `path` exists.

    Processes starting at once on a new store each make the missing keys: had the file
    been created under its own name and then written, another process could read it
    empty in between and refuse to start ("holds 0 bytes"). The key is written and
    synced under a hidden name, then linked to its name, which fails, never replaces,
    if another process made it first (its key is then the one everybody reads)."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}-{os.urandom(4).hex()}")
    _write_new(partial, data)
    try:
        os.link(partial, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise  # FileExistsError: another process's key is in place
        _write_new(path, data)  # a file system without hard links: as before
    finally:
        os.unlink(partial)
    fsync_dir(path.parent)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _safe_name(key_id: str) -> bool:
    return bool(key_id) and "/" not in key_id and not key_id.startswith(".")


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


def provider_for(kind: str | None, folder: str | Path, kms_folder: str | Path,
                 env: dict[str, str], create: bool = True) -> KeyProvider:
    """The configured provider; without one, CONDUIT_KEY when it is set, else files.
    `create`: whether it may make missing keys (and their folders)."""
    encoded = env.get(ENV_CONTENT_KEY)
    if kind is None:
        kind = "env" if encoded else "file"
    if kind == "env":
        if not encoded:
            raise KeyError_(f"keys.provider is env but {ENV_CONTENT_KEY} is not set")
        return EnvKeys(encoded, folder)
    if kind == "kms":
        return FileKms(kms_folder, create)
    return FileKeys(folder, create)
