"""After a key rotation: re-seal stored content under the current key, in the background,
then retire the old keys once no record uses them.

Each round walks the three sealed tables in id order (a cursor per table, so a pass ends
however much traffic arrives) and re-seals up to `batch` records per short transaction.
Each update is a compare-and-set on the record's key id and sealed bytes: a record
changed meanwhile (pruned, re-sealed by another host's engine) is left as it is. At the
end of a full pass it counts the records under each key; an old key with none left, and
whose successor has been current for `retire_after` (every process has long stopped
writing with it, and no lease taken before the pass still holds its ciphertext), is
retired by the provider. Every batch and every retirement is an audited admin event,
ids and counts only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from engine.config.keys import KeysConfig
from engine.errors import KeyError_
from engine.events import Event, Kind
from engine.every import Every
from engine.ops.leader import ClusterLease
from engine.security.crypto import PRUNED, Vault
from engine.store.database import reader
from engine.store.schema import dead_letter_answers, messages, outputs
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.keys")

SEALED: dict[str, sa.Table] = {"messages": messages, "outputs": outputs,
                               "answers": dead_letter_answers}
ROUND_SECONDS = 1.0  # at most this long re-sealing per round, then traffic has the writer
# A pass that found nothing to re-seal, its old keys too young to retire, is not repeated
# (each is a scan of the three tables) until they may retire, or this long at most.
IDLE_REST = 60.0


def key_uses(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """How many records of each sealed table each key id seals."""
    uses: dict[str, dict[str, int]] = {}
    with reader(engine).connect() as conn:
        for name, table in SEALED.items():
            for key_id, n in conn.execute(sa.select(table.c.key_id, sa.func.count())
                                          .where(table.c.key_id != PRUNED)
                                          .group_by(table.c.key_id)):
                uses.setdefault(key_id, dict.fromkeys(SEALED, 0))[name] = n
    return uses


class Rekeyer:
    """One engine's re-encrypter; `round` is what engine.every.Every repeats."""

    def __init__(self, engine: sa.Engine, writer: Writer, vault: Vault, *, batch: int = 200,
                 retire_after: float = 600.0) -> None:
        self._engine = engine
        self._writer = writer
        self._vault = vault
        self._batch = batch
        self._retire_after = retire_after
        self._cursors: dict[str, str] = dict.fromkeys(SEALED, "")
        self._unreadable: set[tuple[str, str]] = set()  # (table, id) seen this pass
        # The first pass after a start runs whatever the keys: it re-seals records left
        # under a key no longer in service (a restored backup, a process that lagged).
        self._first_pass = True
        self._pass_work = 0  # records re-sealed or found unreadable in this pass
        self._rest_until = 0.0  # time.time() before which no new pass starts

    async def round(self) -> dict[str, int]:
        """Re-seal batches for up to ROUND_SECONDS; at the end of a pass, retire what
        nothing uses. Returns the records re-sealed per table."""
        done = dict.fromkeys(SEALED, 0)
        ring = self._vault.keys
        if not self._first_pass and not self._old_keys() and not self._unreadable:
            return done
        if time.time() < self._rest_until:
            return done
        until = time.monotonic() + ROUND_SECONDS
        while time.monotonic() < until:
            todo = [name for name in SEALED if self._cursors[name] is not None]
            if not todo:
                break
            name = todo[0]
            n = await self._batch_of(name, ring.current)
            if n is None:
                self._cursors[name] = None  # type: ignore[assignment]  # this pass is done
            else:
                done[name] += n
                self._pass_work += n
        if all(c is None for c in self._cursors.values()):
            retire_at = await self._retire_unused()
            if retire_at is not None and not self._pass_work:
                self._rest_until = min(retire_at, time.time() + IDLE_REST)
            self._pass_work = 0
            self._cursors = dict.fromkeys(SEALED, "")
            self._unreadable.clear()
            self._first_pass = False
        return done

    def _old_keys(self) -> list[str]:
        ring = self._vault.keys
        return [k for k in ring.listed if k != ring.current and k not in ring.pending]

    async def _batch_of(self, name: str, current: str) -> int | None:
        """Re-seal the next batch of `name`; None when the pass reached its end."""
        table = SEALED[name]
        keep = [current, *self._vault.keys.pending, PRUNED]
        rows = await asyncio.to_thread(self._select, table, self._cursors[name], keep)
        if not rows:
            return None
        self._cursors[name] = rows[-1].id
        changes: list[dict[str, Any]] = []
        unreadable: list[str] = []
        for row in rows:
            try:
                plain = self._vault.open(row.key_id, row.content, row.id)
            except KeyError_:
                if (name, row.id) not in self._unreadable:
                    self._unreadable.add((name, row.id))
                    unreadable.append(row.key_id)
                    self._pass_work += 1
                continue
            key_id, sealed = self._vault.seal(plain, row.id)
            changes.append({"rid": row.id, "old_key": row.key_id, "old": row.content,
                            "new_key": key_id, "new": sealed})
        if unreadable:
            log.warning("re-encryption: %d %s record(s) under keys no provider holds: %s",
                        len(unreadable), name, ", ".join(sorted(set(unreadable))))
        if not changes and not unreadable:
            return 0
        return await self._writer.commit(self._unit(name, table, changes, unreadable))

    def _select(self, table: sa.Table, after: str, keep: Sequence[str]) -> list[Any]:
        with reader(self._engine).connect() as conn:
            return list(conn.execute(
                sa.select(table.c.id, table.c.key_id, table.c.content)
                .where(table.c.id > after, table.c.key_id.not_in(keep))
                .order_by(table.c.id).limit(self._batch)))

    @staticmethod
    def _unit(name: str, table: sa.Table, changes: list[dict[str, Any]],
              unreadable: list[str]) -> UnitOfWork:
        update = (table.update()
                  .where(table.c.id == sa.bindparam("rid"),
                         table.c.key_id == sa.bindparam("old_key"),
                         table.c.content == sa.bindparam("old"))
                  .values(key_id=sa.bindparam("new_key"), content=sa.bindparam("new")))
        uow = UnitOfWork()

        def run(conn: sa.Connection) -> int:
            # One by one: an executemany's row count is not reliable on every driver, and
            # the count of records left alone belongs in the audit event.
            resealed = sum(conn.execute(update, change).rowcount for change in changes)
            detail: dict[str, Any] = {
                "action": "key-reencrypt", "table": name, "resealed": resealed,
                "changed_meanwhile": len(changes) - resealed,
                "from": ",".join(sorted({c["old_key"] for c in changes})),
                "to": changes[0]["new_key"] if changes else ""}
            if unreadable:
                detail["unreadable"] = len(unreadable)
                detail["missing_keys"] = ",".join(sorted(set(unreadable)))
            uow.record(Event(kind=Kind.ADMIN, detail=detail))  # appended after the query
            return resealed

        uow.query = run
        return uow

    async def _retire_unused(self) -> float | None:
        """Retire the old keys no record uses; the time they may retire at when that is
        still to come."""
        ring = self._vault.keys
        provider = ring.provider
        old = self._old_keys()
        if provider is None or not old:
            return None
        retire_at = ring.current_since + self._retire_after
        if time.time() < retire_at:
            return retire_at
        uses = await asyncio.to_thread(key_uses, self._engine)
        for key_id in old:
            if sum(uses.get(key_id, {}).values()):
                continue
            # Audited first: a retirement that then fails is tried again next pass, but
            # one done while the store refused its event would go unrecorded.
            uow = UnitOfWork()
            uow.record(Event(kind=Kind.ADMIN, detail={
                "action": "key-retire", "key_id": key_id, "provider": provider.name,
                "how": provider.retires_by, "current": ring.current}))
            await self._writer.commit(uow)
            await asyncio.to_thread(provider.retire, key_id)
            log.info("content key %s retired (%s): no record uses it", key_id,
                     provider.retires_by)
        await asyncio.to_thread(ring.refresh)
        return None


class KeyUpkeep:
    """What an engine process repeats for its keys: every process looks for new keys
    (so all switch within `poll`); the primary also re-encrypts and retires. On a store
    shared with other hosts (`cluster_owner` given) only the primary holding the cluster's
    `rekey` lease does, so a retirement is done and audited once."""

    def __init__(self, config: KeysConfig, engine: sa.Engine, writer: Writer, vault: Vault,
                 *, primary: bool, cluster_owner: str | None = None) -> None:
        ring = vault.keys
        self._tasks = [Every(config.poll, lambda: asyncio.to_thread(ring.refresh),
                             name="look for new keys", log=log,
                             failure="could not read the key provider")]
        self.rekeyer: Rekeyer | None = None
        self._lease: ClusterLease | None = None
        if primary and config.reencrypt:
            self.rekeyer = Rekeyer(engine, writer, vault, batch=config.reencrypt_batch,
                                   retire_after=config.retire_after)
            if cluster_owner is not None:
                self._lease = ClusterLease(writer, "rekey", cluster_owner)
            self._tasks.append(Every(config.reencrypt_every, self._round,
                                     name="re-encrypt under the current key", log=log,
                                     failure="re-encryption round failed"))

    async def _round(self) -> None:
        if self.rekeyer is not None and (self._lease is None or self._lease.held):
            await self.rekeyer.round()

    async def start(self) -> None:
        if self._lease is not None:
            await self._lease.start()
        for task in self._tasks:
            task.start()

    async def stop(self) -> None:
        for task in self._tasks:
            await task.stop()
        if self._lease is not None:
            await self._lease.stop()
