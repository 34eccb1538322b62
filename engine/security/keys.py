"""The engine's secret keys: content encryption (rotatable), patient pseudonyms and the
audit chain, from a key provider (engine.security.key_providers).

Content keys rotate without downtime: a new key becomes current for writing while every
older key stays readable (each record names its key id). A running engine picks a new
key up by `refresh` (polled), and a record under a key it has not loaded yet (another
process switched first) makes it ask the provider before giving up. The pseudonym and
audit keys do not rotate: changing them would orphan every pseudonym and break the
chain's proof.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from engine.errors import KeyError_
from engine.security.key_providers import (
    ENV_CONTENT_KEY,
    FileKeys,
    KeyProvider,
    key_time,
    provider_for,
)

if TYPE_CHECKING:
    from engine.config.keys import KeysConfig

__all__ = ["ENV_CONTENT_KEY", "KeyRing", "KeysMissing", "WrongAuditKey", "WrongPseudonymKey",
           "for_store", "rotate"]

log = logging.getLogger("conduit.keys")

_SEE = ("point keys.directory (CONDUIT_KEYS_DIR in conf/production.yaml; keys.kms_directory "
        "with the kms provider) at the folder this store was created with, or restore "
        "that folder from its backup (docs/operations.md, Backup and restore)")


class KeysMissing(KeyError_):
    """The store needs keys the configured folder does not hold, and none are made."""


class WrongAuditKey(KeyError_):
    """The audit key does not continue the store's chain: these are another store's keys."""


class WrongPseudonymKey(KeyError_):
    """The pseudonym key is not the one the store's patient pseudonyms were made with."""


class KeyRing:
    """Content keys by id, the current one for writing, and the two fixed keys."""

    def __init__(
        self, content: dict[str, bytes], current: str, pseudonym: bytes, audit: bytes,
        provider: KeyProvider | None = None, activate_after: float = 0.0,
    ) -> None:
        if current not in content:
            raise KeyError_(f"current key {current} is not among the loaded keys")
        self.content = content  # every key loaded since the start: never shrinks
        self.listed = list(content)  # the keys in service at the last look
        self.current = current
        self.pseudonym = pseudonym
        self.audit = audit
        self.provider = provider
        self.activate_after = activate_after
        self.loaded_at = time.time()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path, env: dict[str, str] | None = None) -> KeyRing:
        """Read keys from `folder`, creating it and first keys on first run; with
        CONDUIT_KEY set, that key is current and the fixed keys derive from it."""
        env = dict(os.environ if env is None else env)
        return cls.open(provider_for(None, folder, Path(folder) / "kms", env))

    @classmethod
    def for_config(cls, config: KeysConfig, data_dir: str | Path,
                   env: dict[str, str] | None = None, create: bool = True) -> KeyRing:
        """The ring of `keys:` in conf/conduit.yaml; `create`: make missing keys (an
        engine opening a store goes through `for_store`, which decides that)."""
        return cls.open(_provider(config, data_dir, env, create), config.activate_after)

    @classmethod
    def open(cls, provider: KeyProvider, activate_after: float = 0.0) -> KeyRing:
        content, current = _listing(provider, activate_after)
        return cls(content, current, provider.fixed("pseudonym"), provider.fixed("audit"),
                   provider, activate_after)

    @property
    def pending(self) -> list[str]:
        """Keys made but not current yet (newer than the current one)."""
        since = key_time(self.current)
        if since is None:  # the environment's key: current whatever was made before it
            return []
        return [k for k in self.listed if (key_time(k) or 0.0) > since]

    @property
    def current_since(self) -> float:
        """When the current key became current (at the latest)."""
        made = key_time(self.current)
        return self.loaded_at if made is None else made + self.activate_after

    def refresh(self) -> bool:
        """Re-read the provider's keys; True when the current key changed. A retired key
        stays loaded until the process ends: a delivery leased before its records were
        re-sealed holds their old ciphertext; a restart forgets it."""
        if self.provider is None:
            return False
        content, current = _listing(self.provider, self.activate_after)
        with self._lock:
            changed = current != self.current
            self.content = {**self.content, **content}  # before `current`: seal reads it second
            self.listed = list(content)
            self.current = current
        if changed:
            log.info("content key %s is now current for writing", current)
        return changed

    def find(self, key_id: str) -> bytes | None:
        """The key of `key_id`: loaded, or asked of the provider (a key another process
        switched to before this one polled, or a retired key the provider keeps)."""
        key = self.content.get(key_id)
        if key is None and self.provider is not None:
            key = self.provider.get(key_id)
        return key


def _provider(config: KeysConfig, data_dir: str | Path, env: dict[str, str] | None,
              create: bool) -> KeyProvider:
    env = dict(os.environ if env is None else env)
    folder = config.directory or str(Path(data_dir) / "keys")
    kms = config.kms_directory or str(Path(data_dir) / "kms")
    return provider_for(config.provider, folder, kms, env, create)


def for_store(config: KeysConfig, data_dir: str | Path, db: sa.Engine, *, writes: bool,
              env: dict[str, str] | None = None) -> KeyRing:
    """The ring that opens the store `db`. Keys are made only for a store with nothing
    sealed or chained yet (no audit event, no message), and only by a process that
    writes: new keys for a store that has history would seal with keys nobody else holds
    and chain with an audit key its events were not made with, breaking the chain for
    good. So a folder without the keys is refused (KeysMissing, naming the folder and
    what is missing, never key material). A writer also checks that the audit key
    continues the chain (its newest link; `conduit audit verify` checks all of it)."""
    provider = _provider(config, data_dir, env, create=False)
    missing = provider.missing()
    if missing:
        what = ", ".join(missing)
        if not writes:
            first = ("; the store has no events yet, and its first `conduit run` makes its "
                     "keys" if store_is_new(db) else "")
            raise KeysMissing(f"no keys in {provider.where} ({what} missing); this command "
                              f"only reads and makes no keys{first}: {_SEE}")
        if not store_is_new(db):
            raise KeysMissing(f"the keys folder {provider.where} lacks {what}, but the store "
                              "already holds audit events or messages, sealed and chained "
                              "with keys made before: refusing to make new keys (they would "
                              f"break the audit chain for good); {_SEE}")
        provider = _provider(config, data_dir, env, create=True)
    ring = KeyRing.open(provider, config.activate_after)
    if writes:
        check_audit_key(db, ring.audit, provider.where)
        check_pseudonym_key(db, ring.pseudonym, provider.where)
    return ring


def store_is_new(db: sa.Engine) -> bool:
    """Nothing sealed or chained yet: no audit event and no message."""
    from engine.store.database import reader

    with reader(db).connect() as conn:
        return all(conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is None
                   for table in ("audit", "messages"))


def check_audit_key(db: sa.Engine, key: bytes, where: str) -> None:
    """Raise WrongAuditKey unless `key` made the newest event's link (cheap: one row)."""
    from engine.store.audit import link_hash
    from engine.store.database import reader
    from engine.store.schema import audit

    with reader(db).connect() as conn:
        newest = conn.execute(sa.select(audit).order_by(audit.c.seq.desc()).limit(1)
                              ).mappings().first()
    if newest is not None and link_hash(key, newest["prev_hash"], dict(newest)) != newest["hash"]:
        raise WrongAuditKey(f"the audit key in {where} does not continue this store's audit "
                            f"chain (its newest event, #{newest['seq']}, was not made with it): "
                            f"these are another store's keys, or that event was altered "
                            f"(conduit audit verify tells); {_SEE}")


def check_pseudonym_key(db: sa.Engine, key: bytes, where: str) -> None:
    """Raise WrongPseudonymKey unless `key` is the one the store recorded (the first
    writer records it). The audit chain cannot tell: its events hold pseudonyms, not the
    identifiers they came from. A wrong key would make every new pseudonym differ from
    the old ones, and an accounting of disclosures would silently miss earlier events."""
    from engine.store.database import conflict_insert
    from engine.store.schema import key_checks

    value = hmac.digest(key, b"conduit: the pseudonym key of this store", "sha256").hex()
    with db.begin() as conn:  # recorded unless it was (by another process, maybe just now)
        conn.execute(conflict_insert(conn.dialect.name, key_checks)
                     .values(name="pseudonym", value=value).on_conflict_do_nothing())
        recorded = conn.execute(sa.select(key_checks.c.value)
                                .where(key_checks.c.name == "pseudonym")).scalar_one()
    if not hmac.compare_digest(recorded, value):
        raise WrongPseudonymKey(
            f"the pseudonym key in {where} is not the one this store's patient pseudonyms "
            "were made with: searches and accountings of disclosures by patient would "
            f"miss every earlier event; these are another store's keys, or a mix of two "
            f"folders; {_SEE}")


def rotate(folder: str | Path) -> str:
    """Create a new content key in a key folder."""
    return FileKeys(folder, create=False).create()


def _listing(provider: KeyProvider, activate_after: float) -> tuple[dict[str, bytes], str]:
    content: dict[str, bytes] = {}
    for key_id in provider.key_ids():
        key = provider.get(key_id)
        if key is not None:  # retired between the listing and the read
            content[key_id] = key
    current = provider.current(activate_after)
    if current not in content:
        raise KeyError_(f"current key {current} cannot be read from the {provider.name} "
                        "key provider")
    return content, current
