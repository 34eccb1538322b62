"""Put, lease and confirm throughput of each queue backend, one process, same run.

    .venv/bin/python scripts/queue_throughput.py [messages] [--pg URL] [--redis URL]

Each message is stored and queued for one destination in its own unit of work (the
writer groups concurrent units into transactions, as under load); then the queue is
drained in leases of 100, each entry confirmed in its own unit of work. Figures are
messages per second of wall time and milliseconds of this process's CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.events import Event, Kind
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

DEST = "bench/out"


async def run(url: str, make, n: int, folder: Path) -> tuple[float, float, float, float]:
    keys = KeyRing.load(folder / "keys")
    db = open_database(url)
    writer = Writer(db, keys.audit)
    writer.start()
    store = MessageStore(db, Vault(keys))
    q = make(db)

    async def put(i: int) -> None:
        mid = f"B{i:025d}"
        uow = UnitOfWork()
        store.add_message(uow, {
            "id": mid, "channel": "bench", "received_at": time.time(), "status": "accepted",
            "standard": "hl7v2", "message_type": "ADT^A01", "control_id": str(i),
            "sender": "A^B", "peer": "127.0.0.1:1", "patient": None, "content_hash": "h",
            "error": None}, b"MSH|^~\\&|" + mid.encode() + b"|" * 200)
        q.put(uow, DEST, mid, None, time.time())
        uow.record(Event(kind=Kind.RECEIVED, channel="bench", message_id=mid))
        await writer.commit(uow)

    async def ack(entry_id: int) -> None:
        uow = UnitOfWork()
        q.ack(uow, entry_id)
        uow.record(Event(kind=Kind.SENT, channel="bench", destination="out"))
        await writer.commit(uow)

    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, 200):
        await asyncio.gather(*(put(i) for i in range(start, min(start + 200, n))))
    t1, c1 = time.perf_counter(), time.process_time()
    drained = 0
    while batch := await writer.commit(q.lease(DEST, 100)):
        await asyncio.gather(*(ack(e.id) for e in batch))
        drained += len(batch)
    t2, c2 = time.perf_counter(), time.process_time()
    assert drained == n, (drained, n)
    await writer.close()
    db.dispose()
    return n / (t1 - t0), (c1 - c0) * 1000 / n, n / (t2 - t1), (c2 - c1) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("messages", type=int, nargs="?", default=5000)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    prefix = f"conduit-bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(args.redis)
    print(f"{args.messages} messages, one destination; put = store + queue, drain = lease "
          "+ confirm")
    print(f"{'store':10} {'queue':6} {'put/s':>8} {'ms CPU':>7} {'drain/s':>8} {'ms CPU':>7}")
    try:
        for store in ("sqlite", "postgresql"):
            for name in ("sql", "redis"):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    if store == "sqlite":
                        url = f"sqlite:///{folder / 'bench.db'}"
                    else:
                        dbname = f"conduit_bench_{uuid.uuid4().hex[:8]}"
                        with admin.connect() as conn:
                            conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
                        url = args.pg.rsplit("/", 1)[0] + f"/{dbname}"

                    def make(db, name=name):
                        if name == "sql":
                            return SqlQueue(db, owner="bench:1")
                        return RedisStreamsQueue(db, args.redis, owner="bench:1",
                                                 prefix=prefix)
                    try:
                        put_s, put_cpu, drain_s, drain_cpu = asyncio.run(
                            run(url, make, args.messages, folder))
                    finally:
                        if store != "sqlite":
                            with admin.connect() as conn:
                                conn.exec_driver_sql(
                                    f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
                    print(f"{store:10} {name:6} {put_s:8.0f} {put_cpu:7.3f} {drain_s:8.0f} "
                          f"{drain_cpu:7.3f}", flush=True)
    finally:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        admin.dispose()


if __name__ == "__main__":
    main()
