"""The message store: sealed raw messages and mapped outputs, and audited reading."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import sqlalchemy as sa

from engine.errors import StoreError
from engine.events import Event, Kind
from engine.message import message_id_floor, new_message_id
from engine.security.crypto import Vault, content_hash
from engine.store import correlation
from engine.store.claims import taken
from engine.store.database import KeptReader, reader
from engine.store.retention import ContentPruned, is_pruned
from engine.store.schema import messages, outputs
from engine.store.writer import UnitOfWork


class StoredMessage(msgspec.Struct):
    """A message's metadata as stored; no content."""

    id: str
    channel: str
    received_at: float
    status: str
    standard: str
    message_type: str
    control_id: str
    sender: str
    peer: str
    patient: str | None
    size: int
    content_hash: str
    error: str | None


# Whether messages were resends, asked for the duplicate index's "maybe"s
# (engine.pipeline.duplicates), for all the control ids asked meanwhile at once: built
# once, so each asking only binds its values; through the control id's index (see
# engine.store.claims.taken), so the rows are sorted here.
_TAKEN_WITH_CONTROL_IDS = taken(messages.c.id, messages.c.content_hash, messages.c.sender,
                                messages.c.control_id).limit(sa.bindparam("limit"))


class MessageStore:
    def __init__(self, engine: sa.Engine, vault: Vault) -> None:
        # Every read here goes through the reader: on SQLite a writing connection would
        # take the write turn and BEGIN IMMEDIATE, queueing each read behind the
        # writer's commits (changes go through units of work, never through this).
        self._engine = reader(engine)
        self._vault = vault
        self._resend_reads = KeptReader(engine)  # asked once a message on a shared store

    def close(self) -> None:
        self._resend_reads.close()

    def add_message(self, uow: UnitOfWork, row: dict[str, Any], raw: bytes) -> None:
        """Seal `raw` into a new messages row (the row dict carries the metadata)."""
        key_id, sealed = self._vault.seal(raw, row["id"])
        row.update(key_id=key_id, content=sealed, size=len(raw))
        uow.insert(messages, row)

    def add_output(
        self, uow: UnitOfWork, message_id: str, mapping: str, content_type: str, content: bytes
    ) -> str:
        output_id = new_message_id()
        key_id, sealed = self._vault.seal(content, output_id)
        uow.insert(outputs, {
            "id": output_id, "message_id": message_id, "mapping": mapping,
            "content_type": content_type, "created_at": time.time(),
            "content_hash": content_hash(content), "key_id": key_id, "content": sealed,
        })
        return output_id

    @staticmethod
    def set_status(uow: UnitOfWork, message_id: str, status: str, error: str | None) -> None:
        uow.execute(messages.update().where(messages.c.id == message_id)
                    .values(status=status, error=error))

    @staticmethod
    def set_patient(uow: UnitOfWork, message_id: str, patient: str) -> None:
        uow.execute(messages.update().where(messages.c.id == message_id)
                    .values(patient=patient))

    def outputs_of(self, message_id: str) -> list[dict[str, Any]]:
        """Metadata of every output a message has had (one per mapping run)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outputs.c.id, outputs.c.mapping, outputs.c.content_type,
                          outputs.c.created_at, outputs.c.content_hash)
                .where(outputs.c.message_id == message_id).order_by(outputs.c.id)
            ).mappings().all()
        return [dict(r) for r in rows]

    def open_raw(self, message_id: str) -> bytes | None:
        """Decrypt a message for the engine's own use (reprocessing); not a read by a
        person, so the caller records why it needed it."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(messages.c.key_id, messages.c.content)
                               .where(messages.c.id == message_id)).first()
        if row is not None and is_pruned(row.key_id):
            raise ContentPruned(message_id)
        return self._vault.open(row.key_id, row.content, message_id) if row else None

    def open_outputs(self, message_id: str) -> list[tuple[str, str, bytes]]:
        """(mapping, content type, content) of each output, decrypted."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outputs.c.id, outputs.c.mapping, outputs.c.content_type,
                          outputs.c.key_id, outputs.c.content)
                .where(outputs.c.message_id == message_id).order_by(outputs.c.id)
            ).all()
        return [(r.mapping, r.content_type, self._vault.open(r.key_id, r.content, r.id))
                for r in rows if not is_pruned(r.key_id)]

    def recent_control_ids(self, channel: str, since: float) -> list[tuple[str, str, str, float]]:
        """(sender, control id, message id, received at) of the messages a channel took
        on since `since`, oldest first: what duplicate detection must remember."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(messages.c.sender, messages.c.control_id, messages.c.id,
                          messages.c.received_at)
                .where(messages.c.channel == channel,
                       messages.c.status.in_(("accepted", "filtered")),
                       messages.c.id >= message_id_floor(since))
                .order_by(messages.c.id)
            ).all()
        return [tuple(r) for r in rows]

    def taken_with_control_ids(self, channel: str, keys: list[tuple[str, str]],
                               since: float, limit: int = 50
                               ) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(message id, content hash) of the messages a channel took on since `since`
        under each (sender, control id) key, oldest first: a resend matches one's
        content. One query for all the keys; at most `limit` rows a key (a sender
        reusing one id all day stops there)."""
        rows = self._resend_reads.read(lambda conn: conn.execute(_TAKEN_WITH_CONTROL_IDS, {
            "control_ids": sorted({control_id for _, control_id in keys}),
            "channels": [channel], "floor": message_id_floor(since),
            "limit": limit * len(keys)}).all())
        wanted = set(keys)
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in sorted(rows):  # by id: oldest first
            key = (r.sender, r.control_id)
            if key in wanted and len(found.setdefault(key, [])) < limit:
                found[key].append((r.id, r.content_hash))
        return found

    def original_of(self, control_id: str, answered: str = "") -> tuple[str, str] | None:
        """(message id, channel) of the stored message an answer relates to, preferring
        one from `answered` (the answer's receiver)."""
        return correlation.original_of(self._engine, control_id, answered)

    def get(self, message_id: str) -> StoredMessage | None:
        cols = [messages.c[f] for f in StoredMessage.__struct_fields__]
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(*cols).where(messages.c.id == message_id)).first()
        return StoredMessage(*row) if row is not None else None

    async def read(self, writer: Any, message_id: str, actor: str, reason: str) -> bytes:
        """Decrypt a message's raw content; the access is audited before it is returned."""
        if not reason.strip():
            raise StoreError("reading message content needs a stated reason")
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(messages.c.key_id, messages.c.content, messages.c.channel,
                          messages.c.patient, messages.c.content_hash)
                .where(messages.c.id == message_id)
            ).first()
        if row is None:
            raise StoreError(f"no message {message_id}")
        if is_pruned(row.key_id):  # nothing is read, so no access to record
            raise ContentPruned(message_id)
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.VIEWED, actor=actor, channel=row.channel,
                         message_id=message_id, patient=row.patient,
                         content_hash=row.content_hash, detail={"reason": reason[:200]}))
        await writer.commit(uow)
        return self._vault.open(row.key_id, row.content, message_id)
