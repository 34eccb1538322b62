"""Delivery in order per patient (issue 14), end to end: an engine with `order: patient`
takes ADT messages of several patients over MLLP and posts them to a real HTTP receiver
that is slow for one patient and turns another away at first. Each patient's messages
arrive in the order they were sent, once each, and the slow or refused patient holds up
no one else. Run on the embedded store (SQL queue) and on PostgreSQL with the Redis
Streams queue."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis
from aiohttp import web

from engine.formats.hl7v2 import Hl7Message
from tests.harness import EngineHarness, adt, exchange, free_port
from tests.loopback import LoopbackServer
from tests.mllp_receiver import MllpReceiver

REDIS_URL = "redis://127.0.0.1:6379/0"
# Seconds the receiver takes over each message of patient SLOW: long enough that the
# other patients' 16 messages, REFUSED's retries among them, are through before SLOW's
# four even on a slow host under the whole suite (at 0.25 s they once ended 27 ms after).
SLOW = 0.6


class PatientReceiver(LoopbackServer):
    """An HTTP receiver that notes (patient, control id, time) of each message it
    accepts: slow for MRN SLOW, answering 503 to the first two attempts at MRN REFUSED's
    first message, at once for the others."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[tuple[str, str, float]] = []
        self.refusals = 2
        self.paused = False  # answer 503 to everything (a receiver that is down)
        self.in_flight = 0
        self.most_in_flight = 0

    async def start(self) -> PatientReceiver:
        app = web.Application()
        app.router.add_post("/in", self._handle)
        await self.serve(app)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/in"

    async def _handle(self, request: web.Request) -> web.Response:
        msg = Hl7Message.parse((await request.read()).decode())
        mrn, control = msg.value("PID-3.1"), msg.value("MSH-10")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.paused:
                return web.Response(status=503)
            if mrn == "REFUSED" and self.refusals:
                self.refusals -= 1
                return web.Response(status=503)
            if mrn == "SLOW":
                await asyncio.sleep(SLOW)
            self.accepted.append((mrn, control, time.monotonic()))
            return web.Response(status=200)
        finally:
            self.in_flight -= 1

    def of(self, mrn: str) -> list[str]:
        return [c for m, c, _ in self.accepted if m == mrn]


@pytest.fixture(params=["sql-sqlite", "redis-postgresql"])
def store(request):
    """(store URL, queue settings) of the embedded default or PostgreSQL + Redis."""
    if request.param == "sql-sqlite":
        yield None, ""
        return
    prefix = f"conduit-test-{uuid.uuid4().hex[:12]}"
    yield (request.getfixturevalue("pg_url"),
           f'queue: {{type: redis, url: "{REDIS_URL}", prefix: {prefix}}}\n')
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
async def rig(tmp_path, store):
    """An engine harness on `store` and a PatientReceiver, both stopped after the test."""
    url, queue_conf = store
    receiver = await PatientReceiver().start()
    harness = EngineHarness(tmp_path, store_url=url, conf=queue_conf)
    try:
        yield harness, receiver
    finally:
        await harness.stop()
        await receiver.stop()


async def test_each_patient_in_order_and_a_slow_one_holds_up_no_one(rig) -> None:
    harness, receiver = rig
    port = free_port()
    patients = ["SLOW", "REFUSED", "P1", "P2", "P3"]
    sent = {p: [f"{p}-{i}" for i in range(4)] for p in patients}
    engine = await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}}}
        retry: {{initial_delay: 100ms, jitter: 0}}
        destinations:
          - {{name: ehr, type: http, url: "{receiver.url}", order: patient,
              concurrency: 4}}
        """})
    # Interleaved on one connection: the queue holds them in this order.
    payloads = [adt(sent[p][i], p) for i in range(4) for p in patients]
    acks = await exchange(port, payloads)
    assert {a.value("MSA-1") for a in acks} == {"AA"}
    await harness.settle(lambda: len(receiver.accepted) == len(payloads), timeout=20)
    await harness.settle(lambda: engine.services.queue.stats() == [], timeout=5)

    for p in patients:  # each patient's messages once each, in the order sent
        assert receiver.of(p) == sent[p], p
    # The others were through while SLOW's messages were still going one by one,
    # REFUSED's retries included: in strict order they would wait behind each.
    last_slow = max(t for m, _, t in receiver.accepted if m == "SLOW")
    first_slow = min(t for m, _, t in receiver.accepted if m == "SLOW")
    others_done = max(t for m, _, t in receiver.accepted if m != "SLOW")
    assert others_done < last_slow
    assert last_slow - first_slow >= 3 * SLOW * 0.9  # SLOW's went one at a time
    assert 1 < receiver.most_in_flight <= 4
    assert engine.services.stats.count("retried") == 2


async def test_over_mllp_sends_take_turns_on_the_one_connection(tmp_path) -> None:
    """An MLLP receiver has one connection: with order per patient and concurrency the
    exchanges wait for each other there, each acknowledgement read for its own message,
    and each patient's messages arrive in order."""
    receiver = await MllpReceiver().start()
    harness = EngineHarness(tmp_path)
    port = free_port()
    patients = ["P1", "P2", "P3"]
    sent = {p: [f"{p}-{i}" for i in range(5)] for p in patients}
    try:
        engine = await harness.start({"adt": f"""
            source: {{type: mllp, port: {port}}}
            order: patient
            destinations:
              - {{name: lis, type: mllp, host: 127.0.0.1, port: {receiver.port},
                  concurrency: 3}}
            """})
        await exchange(port, [adt(sent[p][i], p) for i in range(5) for p in patients])
        await harness.settle(lambda: engine.services.stats.count("sent") == 15)
        got = [Hl7Message.parse(m.decode()) for m in receiver.received]
        for p in patients:
            assert [m.control_id for m in got if m.value("PID-3.1") == p] == sent[p]
        assert engine.services.stats.count("retried") == 0
    finally:
        await harness.stop()
        await receiver.stop()


async def test_one_patients_messages_follow_each_other_without_pause(rig) -> None:
    """A patient's next message is leased as soon as the one before is recorded, on both
    queues (the Redis queue frees the patient only once the outcome reached Redis): a
    pause of the worker's idle look (1 s) per message would take up to 30 s here. The
    messages wait in the queue while the receiver is down, then go one after another."""
    harness, receiver = rig
    port = free_port()
    sent = [f"ONE-{i}" for i in range(30)]
    engine = await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}}}
        order: patient
        retry: {{max_attempts: 1000, initial_delay: 50ms, max_delay: 50ms, jitter: 0}}
        destinations:
          - {{name: ehr, type: http, url: "{receiver.url}", concurrency: 4}}
        """})
    receiver.paused = True
    await exchange(port, [adt(c, "P1") for c in sent])
    await harness.settle(lambda: engine.services.stats.count("retried") > 0)
    receiver.paused = False
    started = time.monotonic()
    await harness.settle(lambda: len(receiver.accepted) == len(sent), timeout=40)
    assert time.monotonic() - started < 5
    assert receiver.of("P1") == sent
    assert receiver.most_in_flight == 1


async def test_a_worker_waiting_on_a_slow_receiver_does_not_spin(rig) -> None:
    """With every place taken by a send the receiver is slow to answer, the worker
    waits: it does not loop on the commit of an outcome already done with, burning a
    core until the send returns (the engine runs in this process, so its CPU is ours)."""
    harness, receiver = rig
    port = free_port()
    sent = [f"SLOW-{i}" for i in range(6)]
    await harness.start({"adt": f"""
        source: {{type: mllp, port: {port}}}
        destinations:
          - {{name: ehr, type: http, url: "{receiver.url}", order: patient}}
        """})
    await exchange(port, [adt(c, "SLOW") for c in sent])
    await harness.settle(lambda: len(receiver.accepted) >= 1)
    wall, cpu = time.monotonic(), time.process_time()
    await harness.settle(lambda: len(receiver.accepted) == len(sent), timeout=20)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert receiver.of("SLOW") == sent
    assert cpu < wall / 2, f"{cpu:.2f} s of CPU in {wall:.2f} s of slow sends"
