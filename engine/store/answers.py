"""The receivers' answers kept with dead letters: sealed on the way in, opened only for a
person allowed to see content.

A FHIR server's OperationOutcome says exactly what to fix, and it may quote the patient
back ("identifier MRN123 already belongs to SMITH, ALEX"), so it is stored like message
content (AES-256-GCM, its own id as associated data) and never in `queue.last_error`,
the logs or the audit trail, which keep a PHI-free summary instead.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from engine.message import Answer, new_message_id
from engine.security.crypto import Vault
from engine.store.retention import is_pruned
from engine.store.schema import dead_letter_answers as answers
from engine.store.writer import UnitOfWork

# Longer answers are cut: the head of an error page or OperationOutcome says what matters.
MAX_ANSWER_BYTES = 256 * 1024

# One statement object, so the writer runs the inserts of a batch as one executemany.
_insert = answers.insert()

_META = (answers.c.id, answers.c.destination, answers.c.queue_id, answers.c.created_at,
         answers.c.code, answers.c.reason, answers.c.content_type, answers.c.size)


def keep(uow: UnitOfWork, vault: Vault, *, entry_id: int, message_id: str, destination: str,
         code: str, reason: str, answer: Answer) -> None:
    """Seal `answer` into the same unit of work as the dead letter it explains."""
    answer_id = new_message_id()
    body = answer.body[:MAX_ANSWER_BYTES]
    key_id, sealed = vault.seal(body, answer_id)
    uow.execute(_insert, {
        "id": answer_id, "message_id": message_id, "destination": destination,
        "queue_id": entry_id, "created_at": time.time(), "code": code[:16],
        "reason": reason, "content_type": answer.content_type[:64], "size": len(body),
        "key_id": key_id, "content": sealed,
    })


def of_message(engine: sa.Engine, message_id: str) -> list[dict[str, Any]]:
    """Metadata of every answer kept for a message, oldest first; no content."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_META).where(answers.c.message_id == message_id)
                            .order_by(answers.c.id)).mappings().all()
    return [_public(r) for r in rows]


def open_for_message(engine: sa.Engine, vault: Vault, message_id: str) -> list[dict[str, Any]]:
    """Every answer kept for a message, decrypted. The caller has already recorded who
    is reading this message's content and why."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*_META, answers.c.key_id, answers.c.content)
                            .where(answers.c.message_id == message_id)
                            .order_by(answers.c.id)).mappings().all()
    return [{**_public(r),
             "content": vault.open(r["key_id"], r["content"], r["id"]).decode(
                 "utf-8", errors="replace")}
            for r in rows if not is_pruned(r["key_id"])]


def _public(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "destination": row["destination"], "at": row["created_at"],
            "code": row["code"], "reason": row["reason"], "content_type": row["content_type"],
            "size": row["size"]}
