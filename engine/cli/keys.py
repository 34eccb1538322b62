"""`conduit keys rotate` and `conduit keys status`: a new content key, and each key with
the records it seals (from engine.store.rekey's count), so an operator sees a rotation's
re-encryption progress and which keys retire next."""

from __future__ import annotations

import argparse
import time

from engine.cli.common import actor, with_services


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from engine.events import Event, Kind
    from engine.store.writer import UnitOfWork

    async def body(svc) -> int:
        ring = svc.keys
        key_id = ring.provider.create()
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, actor=actor(), detail={
            "action": "key-rotate", "key_id": key_id, "provider": ring.provider.name}))
        await svc.writer.commit(uow)
        at = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + ring.activate_after))
        print(f"new content key {key_id} ({ring.provider.name}); running engines write with "
              f"it from {at}, then re-encrypt older content and retire the old keys")
        return 0

    return with_services(args, body)


def cmd_keys_status(args: argparse.Namespace) -> int:
    import asyncio

    from engine.store.rekey import SEALED, key_uses

    async def body(svc) -> int:
        ring = svc.keys
        uses = await asyncio.to_thread(key_uses, svc.db)
        listed = ring.provider.key_ids()
        ids = listed + sorted(k for k in uses if k not in listed)
        print(f"provider {ring.provider.name}; retiring a key: {ring.provider.retires_by}")
        print(f"{'KEY':<24} {'STATE':<10} " + " ".join(f"{n:>9}" for n in SEALED))
        for key_id in ids:
            counts = uses.get(key_id, {})
            print(f"{key_id:<24} {_state(ring, key_id, listed):<10} "
                  + " ".join(f"{counts.get(n, 0):>9}" for n in SEALED))
        return 0 if all(k in listed or ring.find(k) is not None for k in uses) else 1

    return with_services(args, body, writes=False)


def _state(ring, key_id: str, listed: list[str]) -> str:
    if key_id == ring.current:
        return "current"
    if key_id in ring.pending:
        return "next"
    if key_id in listed:
        return "old"
    return "retired" if ring.find(key_id) is not None else "MISSING"
