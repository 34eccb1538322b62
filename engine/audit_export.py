"""A signed, verifiable export of the audit chain for a period, and its check on a
machine with no access to the store or the engine's secret keys.

The chain's links are HMACs under the secret audit key, which an auditor does not hold.
So the engine verifies the whole HMAC chain first (and refuses to export a broken one),
then signs the export with its Ed25519 key: the signature stands for the HMACs, and the
links (each row's prev_hash equal to the hash of the row before it, the first linking to
the recorded starting hash) show nothing was dropped, added or reordered inside it.

The file is JSON: {"payload": {...}, "signature": {"algorithm", "key", "value"}}; the
signature covers the payload's canonical form (keys sorted, no spaces, ASCII only:
json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from engine.security.signing import fingerprint, load_public, verifies

FORMAT = "conduit-audit-export/1"
ROW_KEYS = ("seq", "at_us", "kind", "actor", "channel", "destination", "message_id", "peer",
            "content_hash", "patient", "detail", "prev_hash", "hash")
EXPORT_ACTION = "audit-export"  # the admin event recorded when an export is made


class ExportRefused(Exception):
    """The chain does not verify; an export of it would vouch for tampered rows."""


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def build(conn: Any, audit_key: bytes, signer: Any, since_us: int, until_us: int,
          meta: dict[str, Any]) -> dict[str, Any]:
    """The signed export of the events recorded in [since_us, until_us): the contiguous
    run from the first event at or after `since_us` to the last before `until_us`. Run
    in one read transaction, so the verified chain, its head and the rows agree."""
    import sqlalchemy as sa

    from engine.store import audit as chain
    from engine.store.schema import audit, audit_head

    verified = chain.verify(conn, audit_key)
    if verified.broken is not None:
        b = verified.broken
        raise ExportRefused(f"the audit chain is broken at event #{b.seq} ({b.kind}): "
                            f"{b.reason}; nothing exported")
    head_seq, head_hash = conn.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    first = conn.execute(sa.select(sa.func.min(audit.c.seq))
                         .where(audit.c.at_us >= since_us)).scalar()
    last = conn.execute(sa.select(sa.func.max(audit.c.seq))
                        .where(audit.c.at_us < until_us)).scalar()
    rows: list[dict[str, Any]] = []
    if first is not None and last is not None and first <= last:
        rows = [{k: r[k] for k in ROW_KEYS} for r in conn.execute(
            sa.select(audit).where(audit.c.seq.between(first, last)).order_by(audit.c.seq)
        ).mappings()]
    start_seq = rows[0]["seq"] - 1 if rows else head_seq
    start_hash = conn.execute(sa.select(audit.c.hash).where(audit.c.seq == start_seq)
                              ).scalar() or chain.GENESIS
    payload = {
        "format": FORMAT, **meta,
        "period": {"from_us": since_us, "to_us": until_us},
        "chain_head": {"seq": head_seq, "hash": head_hash},
        "start": {"seq": start_seq, "hash": start_hash},
        "events": len(rows), "rows": rows,
    }
    public = signer.public_key()
    return {"payload": payload, "signature": {
        "algorithm": "Ed25519", "key": fingerprint(public),
        "value": base64.b64encode(signer.sign(canonical(payload))).decode()}}


def check(data: bytes, public_pem: bytes) -> tuple[list[str], dict[str, Any]]:
    """(problems, payload) of an export file checked against the engine's public key;
    no problems means it is intact and signed by that key."""
    public = load_public(public_pem)
    try:
        doc = json.loads(data)
        payload, sig = doc["payload"], doc["signature"]
        signature = base64.b64decode(sig["value"], validate=True)
    except (ValueError, KeyError, TypeError):
        return ["the file is not an audit export (unreadable JSON or no signature)"], {}
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return [f"the file is not a {FORMAT} export"], {}
    problems = []
    ours = fingerprint(public)
    if sig.get("key") != ours:
        problems.append(f"signed by another key ({sig.get('key')}); the key given is {ours}")
    elif not verifies(public, signature, canonical(payload)):
        problems.append("the signature does not match: the file was changed after it was "
                        "signed")
    try:
        problems += _links(payload)
    except TypeError:  # numbers or hashes of the wrong type: edited by hand
        problems.append("the export's start, chain head or rows are malformed")
    return problems, payload


def _links(payload: dict[str, Any]) -> list[str]:
    """What is wrong with the rows' order and links, if anything."""
    try:
        rows = payload["rows"]
        prev_seq, prev_hash = payload["start"]["seq"], payload["start"]["hash"]
        head_seq, head_hash = payload["chain_head"]["seq"], payload["chain_head"]["hash"]
    except (KeyError, TypeError):
        return ["the export lacks its rows, start or chain head"]
    problems = []
    if payload.get("events") != len(rows):
        problems.append(f"the export says {payload.get('events')} events but holds "
                        f"{len(rows)}")
    for row in rows:
        if not isinstance(row, dict) or any(k not in row for k in ROW_KEYS):
            problems.append("a row lacks some of its columns")
            break
        seq = row["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(f"a row after event #{prev_seq} has no event number")
            break
        if seq != prev_seq + 1:
            what = "missing" if seq > prev_seq + 1 else "out of order"
            problems.append(f"event #{prev_seq + 1} is {what} (found #{seq} after "
                            f"#{prev_seq})")
        if row["prev_hash"] != prev_hash:
            problems.append(f"event #{seq} does not link to the event before it")
        prev_seq, prev_hash = seq, row["hash"]
    if prev_seq > head_seq:
        problems.append(f"event #{prev_seq} is after the chain head #{head_seq}")
    elif prev_seq == head_seq and prev_hash != head_hash:
        problems.append(f"the last event #{prev_seq} is not the recorded chain head")
    return problems
