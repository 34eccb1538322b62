"""Delivery to a slow receiver in destination order against order per patient, on both
queue backends, one process, same run.

    .venv/bin/python scripts/bench_order.py [messages] [--patients P] [--delay S]
                                            [--pg URL] [--redis URL]

`messages` are queued for one destination, spread over `patients` patients in turn
(messages without a patient would share one key); then a destination worker drains them
to a receiver that takes `delay` seconds over each message (in this process: an
asyncio sleep, so what is measured is the queue and the worker, not HTTP). Modes:
`order: destination` one at a time, and `order: patient` with concurrency 4 and 16.
Each patient's messages must arrive in the order queued (checked). Figures are messages
per second of wall time from the worker's start to the last confirmation.
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

from engine.config.base import RetryConfig
from engine.message import Delivery, Outbound, Sent
from engine.pipeline.delivery import DestinationWorker
from engine.queue.redis_streams import RedisStreamsQueue
from engine.queue.retry import RetryPolicy
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

DEST = "bench/out"
MODES = (("destination", 1), ("patient", 4), ("patient", 16))


class SlowReceiver:
    """Takes `delay` seconds over each message; notes the order messages arrived in."""

    address = "bench:slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrived: list[str] = []

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def healthcheck(self) -> str | None:
        return None

    async def send(self, outbound: Outbound) -> Delivery:
        await asyncio.sleep(self.delay)
        self.arrived.append(outbound.message_id)
        return Sent("200")


async def run(url: str, make, n: int, patients: int, delay: float, by_patient: bool,
              concurrency: int, folder: Path) -> float:
    keys = KeyRing.load(folder / "keys")
    db = open_database(url)
    writer = Writer(db, keys.audit)
    writer.start()
    vault = Vault(keys)
    store = MessageStore(db, vault)
    q = make(db)
    patient_of = {}
    for start in range(0, n, 200):
        uow = UnitOfWork()
        for i in range(start, min(start + 200, n)):
            mid = f"B{i:025d}"
            patient_of[mid] = f"p{i % patients}"
            store.add_message(uow, {
                "id": mid, "channel": "bench", "received_at": time.time(),
                "status": "accepted", "standard": "hl7v2", "message_type": "ADT^A01",
                "control_id": str(i), "sender": "A^B", "peer": "127.0.0.1:1",
                "patient": patient_of[mid], "content_hash": "h", "error": None},
                b"MSH|^~\\&|" + mid.encode())
            q.put(uow, DEST, mid, None, time.time())
        await writer.commit(uow)
    receiver = SlowReceiver(delay)
    worker = DestinationWorker(
        channel="bench", name="out", destination=receiver,
        policy=RetryPolicy(RetryConfig()), timeout=10.0, queue=q, writer=writer,
        vault=vault, raw_content_type="x-application/hl7-v2+er7",
        concurrency=concurrency, by_patient=by_patient)
    t0 = time.perf_counter()
    worker.start()
    while len(receiver.arrived) < n:
        await asyncio.sleep(0.01)
    took = time.perf_counter() - t0
    await worker.stop()
    await writer.close()
    db.dispose()
    for p in set(patient_of.values()):
        got = [m for m in receiver.arrived if patient_of[m] == p]
        assert got == sorted(got), f"{p}: out of order"
    assert len(set(receiver.arrived)) == n
    return n / took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("messages", type=int, nargs="?", default=1000)
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.01, help="seconds per message")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
    client = redis.Redis.from_url(args.redis)
    prefixes = []
    print(f"{args.messages} messages over {args.patients} patients, receiver "
          f"{args.delay * 1000:.0f} ms per message; messages/s")
    print(f"{'store':10} {'queue':6} " + " ".join(f"{o + ' ' + str(c):>14}"
                                                  for o, c in MODES))
    try:
        for store, name in (("sqlite", "sql"), ("postgresql", "sql"),
                            ("postgresql", "redis")):
            rates = []
            for order, concurrency in MODES:
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    dbname = ""
                    if store == "sqlite":
                        url = f"sqlite:///{folder / 'bench.db'}"
                    else:
                        dbname = f"conduit_bench_{uuid.uuid4().hex[:8]}"
                        with admin.connect() as conn:
                            conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
                        url = args.pg.rsplit("/", 1)[0] + f"/{dbname}"
                    prefix = f"conduit-bench-{uuid.uuid4().hex[:8]}"
                    prefixes.append(prefix)

                    def make(db, name=name, prefix=prefix):
                        if name == "sql":
                            return SqlQueue(db, owner="bench:1")
                        return RedisStreamsQueue(db, args.redis, owner="bench:1",
                                                 prefix=prefix)
                    try:
                        rates.append(asyncio.run(run(
                            url, make, args.messages, args.patients, args.delay,
                            order == "patient", concurrency, folder)))
                    finally:
                        if dbname:
                            with admin.connect() as conn:
                                conn.exec_driver_sql(
                                    f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            print(f"{store:10} {name:6} " + " ".join(f"{r:14.0f}" for r in rates),
                  flush=True)
    finally:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
            if keys:
                client.delete(*keys)
        client.close()
        admin.dispose()


if __name__ == "__main__":
    main()
