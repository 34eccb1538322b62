"""The destination worker (engine.pipeline.delivery) on its own: a scripted in-memory destination,
the real SQL queue on SQLite and the writer. What happens when several processes share
the queue is in tests/integration/test_queue_leasing.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from engine.config.base import RetryConfig
from engine.config.types import Duration
from engine.events import Event, Kind
from engine.message import Answer, Delivery, Fail, Outbound, Retry, Sent
from engine.pipeline import delivery
from engine.pipeline.delivery import DestinationWorker
from engine.queue.retry import RetryPolicy
from engine.queue.sql import SqlQueue
from engine.security.crypto import Vault
from engine.security.keys import KeyRing
from engine.store import answers
from engine.store.database import open_database
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork, Writer

KEY = "adt/ehr"
RAW_TYPE = "x-application/hl7-v2+er7"
FAST = RetryConfig(max_attempts=4, initial_delay=Duration(0.05), max_delay=Duration(1.0),
                   multiplier=2.0, jitter=0.0)


class Scripted:
    """A destination that answers each send with the next Delivery of its script (Sent
    once the script is used up), and records what it was sent and when."""

    address = "test:scripted"

    def __init__(self, *script: Delivery | Callable[[], object]) -> None:
        self.script = list(script)
        self.sent: list[tuple[str, int, float]] = []  # message id, attempt, time
        self.outbound: list[Outbound] = []
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def healthcheck(self) -> str | None:
        return None

    async def send(self, outbound: Outbound) -> Delivery:
        self.sent.append((outbound.message_id, outbound.attempts, time.monotonic()))
        self.outbound.append(outbound)
        step = self.script.pop(0) if self.script else Sent("200")
        if callable(step):  # a coroutine function: wait for the test, then answer
            return await step()
        return step

    def ids(self) -> list[str]:
        return [mid for mid, _, _ in self.sent]


class Env:
    def __init__(self, tmp_path) -> None:
        keys = KeyRing.load(tmp_path / "keys")
        self.vault = Vault(keys)
        self.db = open_database(f"sqlite:///{tmp_path / 'conduit.db'}")
        self.events: list[Event] = []
        self.writer = Writer(self.db, keys.audit, on_committed=self.events.extend)
        self.store = MessageStore(self.db, self.vault)
        self.queue = SqlQueue(self.db, owner="host:1:unit")
        self.workers: list[DestinationWorker] = []
        self._n = 0

    async def add(self, n: int, output: bool = False) -> list[str]:
        ids = []
        for _ in range(n):
            self._n += 1
            mid = f"M{self._n:025d}"
            uow = UnitOfWork()
            self.store.add_message(uow, {
                "id": mid, "channel": "adt", "received_at": time.time(),
                "status": "accepted", "standard": "hl7v2", "message_type": "ADT^A01",
                "control_id": f"C{self._n}", "sender": "A^B", "peer": "127.0.0.1:1",
                "patient": None, "content_hash": "h", "error": None}, b"MSH|" + mid.encode())
            out = (self.store.add_output(uow, mid, "adt@1", "application/fhir+json", b"{}")
                   if output else None)
            self.queue.put(uow, KEY, mid, out, time.time())
            await self.writer.commit(uow)
            ids.append(mid)
        return ids

    def worker(self, destination: Scripted, config: RetryConfig = FAST,
               concurrency: int = 1) -> DestinationWorker:
        w = DestinationWorker(
            channel="adt", name="ehr", destination=destination,
            policy=RetryPolicy(config, rng=lambda: 0.5), timeout=5.0, queue=self.queue,
            writer=self.writer, vault=self.vault, raw_content_type=RAW_TYPE,
            concurrency=concurrency)
        self.workers.append(w)
        return w

    def kinds(self, *kinds: Kind) -> list[tuple[Kind, str | None, dict]]:
        return [(e.kind, e.message_id, e.detail) for e in self.events if e.kind in kinds]

    def counts(self) -> tuple[int, int, int, int]:
        stats = {s.destination: s for s in self.queue.stats()}
        s = stats.get(KEY)
        return (s.ready, s.leased, s.retrying, s.dead) if s else (0, 0, 0, 0)


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@pytest.fixture
async def env(tmp_path):
    e = Env(tmp_path)
    e.writer.start()
    yield e
    for w in e.workers:
        await w.stop()
    await e.writer.close()
    e.db.dispose()


async def test_a_confirmed_entry_leaves_the_queue_and_is_recorded_sent(env):
    [raw, mapped] = [*await env.add(1), *await env.add(1, output=True)]
    dest = Scripted(Sent("AA"))
    env.worker(dest).start()
    await until(lambda: len(env.kinds(Kind.SENT)) == 2)
    assert env.queue.stats() == []
    assert dest.opened
    (_, m1, d1), (_, m2, d2) = env.kinds(Kind.SENT)
    assert (m1, d1["code"], d1["attempt"]) == (raw, "AA", 1)
    assert (m2, d2["code"], d2["attempt"]) == (mapped, "200", 1)
    assert d1["latency_ms"] >= 0
    first, second = dest.outbound
    assert (first.channel, first.destination, first.control_id) == ("adt", "ehr", "C1")
    assert (first.content, first.content_type) == (b"MSH|" + raw.encode(), RAW_TYPE)
    assert (second.content, second.content_type) == (b"{}", "application/fhir+json")
    [sent] = [e for e in env.events if e.kind == Kind.SENT and e.message_id == raw]
    assert (sent.channel, sent.destination, sent.peer) == ("adt", "ehr", "test:scripted")


async def test_retry_waits_as_the_policy_says_then_sends_again(env):
    [mid] = await env.add(1)
    dest = Scripted(Retry("HTTP 503", code="503"), Retry("HTTP 503", code="503"), Sent("200"))
    env.worker(dest).start()
    await until(lambda: env.kinds(Kind.SENT))
    assert [(m, a) for m, a, _ in dest.sent] == [(mid, 1), (mid, 2), (mid, 3)]
    times = [t for _, _, t in dest.sent]
    assert times[1] - times[0] >= 0.05 * 0.9  # initial_delay, no jitter
    assert times[2] - times[1] >= 0.10 * 0.9  # times the multiplier
    retried = env.kinds(Kind.RETRIED)
    assert [(d["attempt"], d["delay_s"], d["reason"], d["code"]) for _, _, d in retried] == [
        (1, 0.05, "HTTP 503", "503"), (2, 0.1, "HTTP 503", "503")]
    [(_, _, sent)] = env.kinds(Kind.SENT)
    assert sent["attempt"] == 3
    await until(lambda: env.queue.stats() == [])


async def test_a_receivers_retry_after_is_honoured(env):
    await env.add(1)
    dest = Scripted(Retry("HTTP 429", after=0.3), Sent("200"))
    env.worker(dest).start()
    await until(lambda: len(dest.sent) == 2)
    assert dest.sent[1][2] - dest.sent[0][2] >= 0.3 * 0.9


async def test_fail_dead_letters_with_the_reason_and_moves_on(env):
    ids = await env.add(2)
    dest = Scripted(Fail("HTTP 400", code="400",
                         answer=Answer(b'{"issue": "bad"}', "application/fhir+json")))
    worker = env.worker(dest)
    worker.start()
    await until(lambda: env.kinds(Kind.SENT))
    assert dest.ids() == ids  # no second attempt at the failed one
    [(_, mid, detail)] = env.kinds(Kind.DEAD_LETTERED)
    assert (mid, detail["reason"], detail["code"], detail["attempt"]) == (
        ids[0], "HTTP 400", "400", 1)
    [dead] = env.queue.dead_letters(KEY)
    assert (dead.message_id, dead.attempts, dead.last_error, dead.answer_kept) == (
        ids[0], 1, "HTTP 400", True)
    [kept] = answers.of_message(env.db, ids[0])
    assert (kept["code"], kept["reason"]) == ("400", "HTTP 400")
    assert worker.last_error == "HTTP 400" and worker.last_error_at is not None
    await until(lambda: env.counts() == (0, 0, 0, 1))


async def test_retries_run_out_into_the_dead_letters(env):
    [mid] = await env.add(1)
    dest = Scripted(*[Retry("HTTP 503")] * 4)
    env.worker(dest).start()
    await until(lambda: env.kinds(Kind.DEAD_LETTERED))
    assert [a for _, a, _ in dest.sent] == [1, 2, 3, 4]  # max_attempts
    [dead] = env.queue.dead_letters(KEY)
    assert (dead.message_id, dead.attempts, dead.last_error) == (
        mid, 4, "gave up after 4 attempts: HTTP 503")


async def test_a_destination_that_raises_is_retried(env):
    [mid] = await env.add(1)

    async def boom() -> Delivery:
        raise ConnectionResetError("peer went away")

    dest = Scripted(boom, Sent("200"))
    env.worker(dest).start()
    await until(lambda: env.kinds(Kind.SENT))
    [(_, _, retried)] = env.kinds(Kind.RETRIED)
    assert retried["reason"] == "destination raised ConnectionResetError"
    assert dest.ids() == [mid, mid]


async def test_the_head_holds_back_the_rest(env):
    ids = await env.add(3)
    dest = Scripted(Retry("HTTP 503"), Retry("HTTP 503"), Sent("200"), Sent("200"),
                    Sent("200"))
    env.worker(dest).start()
    await until(lambda: len(env.kinds(Kind.SENT)) == 3)
    assert dest.ids() == [ids[0]] * 3 + ids[1:]
    assert [m for _, m, _ in env.kinds(Kind.SENT)] == ids


async def test_new_entries_are_sent_when_announced(env, monkeypatch):
    monkeypatch.setattr(delivery, "IDLE_POLL", 60.0)  # only the announcement can wake it
    dest = Scripted()
    worker = env.worker(dest)
    worker.start()
    await until(lambda: dest.opened)
    await asyncio.sleep(0.1)  # the worker found nothing and waits
    [mid] = await env.add(1)
    worker.notify()
    await until(lambda: env.kinds(Kind.SENT), timeout=5.0)
    assert dest.ids() == [mid]


async def test_stop_gives_the_lease_back_and_keeps_the_retry(env):
    ids = await env.add(3)
    slow = RetryConfig(max_attempts=4, initial_delay=Duration(60.0), jitter=0.0)
    dest = Scripted(Retry("HTTP 503"))
    worker = env.worker(dest, slow)
    worker.start()
    await until(lambda: env.kinds(Kind.RETRIED))
    assert env.counts() == (0, 3, 1, 0)  # the batch is leased; the head waits 60 s
    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 2.0  # the wait is cut short
    assert dest.closed
    assert env.counts() == (3, 0, 1, 0)
    [retrying] = env.queue.retrying(KEY)
    assert (retrying.message_id, retrying.attempts) == (ids[0], 1)
    assert dest.ids() == ids[:1]


async def test_stop_abandons_a_send_that_hangs_and_the_entry_stays_queued(env, monkeypatch):
    monkeypatch.setattr(delivery, "DRAIN_GRACE", 0.2)
    [mid] = await env.add(1)
    hang = asyncio.Event()

    async def never() -> Delivery:
        await hang.wait()
        return Sent("200")

    dest = Scripted(never)
    worker = env.worker(dest)
    worker.start()
    await until(lambda: dest.sent)
    await worker.stop()
    assert dest.closed
    assert env.counts() == (1, 0, 0, 0)
    assert env.kinds(Kind.SENT, Kind.RETRIED) == []
    assert ids_of(await env.writer.commit(env.queue.lease(KEY, 10))) == [mid]


async def test_a_send_that_outlasts_the_timeout_is_given_up_and_retried(env):
    [mid] = await env.add(1)
    hang = asyncio.Event()

    async def never() -> Delivery:
        await hang.wait()
        return Sent("200")

    dest = Scripted(never)  # then Sent
    worker = env.worker(dest)
    worker.timeout = -4.9  # the worker waits timeout + 5 s for a send: 0.1 s here
    worker.start()
    await until(lambda: env.kinds(Kind.SENT))
    await worker.stop()
    assert [(k, m, d["reason"]) for k, m, d in env.kinds(Kind.RETRIED)] == [
        (Kind.RETRIED, mid, "no answer within the timeout")]
    assert dest.ids() == [mid, mid] and env.counts() == (0, 0, 0, 0)


def ids_of(entries) -> list[str]:
    return [e.message_id for e in entries]


# ------------------------------------------------- concurrency: messages that stand alone


async def test_with_concurrency_that_many_are_in_flight_at_once(env):
    ids = await env.add(5)
    release = asyncio.Event()
    in_flight: list[int] = []

    async def held() -> Delivery:
        in_flight.append(1)
        await release.wait()
        return Sent("200")

    dest = Scripted(*[held] * 5)
    env.worker(dest, concurrency=3).start()
    await until(lambda: len(dest.sent) == 3)
    await asyncio.sleep(0.1)
    assert len(dest.sent) == 3  # no fourth while three are under way
    release.set()
    await until(lambda: len(env.kinds(Kind.SENT)) == 5)
    assert sorted(dest.ids()) == ids and env.queue.stats() == []


async def test_with_concurrency_an_entry_waiting_to_retry_holds_back_no_other(env):
    ids = await env.add(3)
    slow = RetryConfig(max_attempts=4, initial_delay=Duration(60.0), jitter=0.0)
    dest = Scripted(Retry("HTTP 503"))
    env.worker(dest, slow, concurrency=2).start()
    # the head waits a minute for its next attempt, holding one of the two places; the
    # other place sends the second, then the third
    await until(lambda: len(env.kinds(Kind.SENT)) == 2)
    assert sorted(m for _, m, _ in env.kinds(Kind.SENT)) == ids[1:]
    assert dest.ids() == ids and env.counts() == (0, 1, 1, 0)


async def test_with_concurrency_results_reach_the_hook_and_stop_keeps_the_rest(env):
    ids = await env.add(3)
    told: list[tuple[str, str]] = []
    slow = RetryConfig(max_attempts=4, initial_delay=Duration(60.0), jitter=0.0)
    dest = Scripted(Sent("200", Answer(b"ISA*271~")), Fail("refused", "R"),
                    Retry("HTTP 503"))
    worker = env.worker(dest, slow, concurrency=3)
    worker.on_result = lambda mid, d, reason, stored: told.append((mid, type(d).__name__))
    worker.start()
    await until(lambda: env.kinds(Kind.RETRIED) and len(told) == 2)
    assert sorted(told) == [(ids[0], "Sent"), (ids[1], "Fail")]
    started = time.monotonic()
    await worker.stop()
    assert time.monotonic() - started < 2.0
    assert env.counts() == (1, 0, 1, 1)  # the retrying one is back, ready; one dead
    [kept] = answers.of_message(env.db, ids[0])  # the receiver's answer kept with it
    assert kept["reason"] == "the receiver's answer"


class ScriptedMany(Scripted):
    """A destination that takes several entries at once (send_many, as the file
    destination does): it attempts them in order, each answered by the script, and stops
    at the first that is not Sent."""

    def __init__(self, *script: Delivery) -> None:
        super().__init__(*script)
        self.calls: list[list[str]] = []

    async def send_many(self, outbounds: list[Outbound]) -> list[Delivery]:
        self.calls.append([o.message_id for o in outbounds])
        deliveries: list[Delivery] = []
        for outbound in outbounds:
            deliveries.append(await self.send(outbound))
            if not isinstance(deliveries[-1], Sent):
                break
        return deliveries


async def test_entries_due_together_go_to_a_destination_that_takes_several_at_once(env):
    ids = await env.add(5)
    dest = ScriptedMany()
    env.worker(dest).start()
    await until(lambda: len(env.kinds(Kind.SENT)) == 5)
    assert dest.calls == [ids]  # one hand-over, in queue order
    assert [(m, d["attempt"]) for _, m, d in env.kinds(Kind.SENT)] == [(i, 1) for i in ids]
    assert env.queue.stats() == []


async def test_a_failure_inside_several_at_once_holds_back_the_rest_until_it_passes(env):
    ids = await env.add(4)
    dest = ScriptedMany(Sent("written"), Retry("disk full"), Retry("disk full"))
    env.worker(dest).start()
    await until(lambda: len(env.kinds(Kind.SENT)) == 4)
    # the second is retried alone; the last two are attempted only once it went through
    assert dest.ids() == [ids[0], ids[1], ids[1], ids[1], ids[2], ids[3]]
    assert [m for _, m, _ in env.kinds(Kind.SENT)] == ids
    assert [(m, d["attempt"]) for _, m, d in env.kinds(Kind.RETRIED)] == [(ids[1], 1),
                                                                         (ids[1], 2)]
    assert dest.calls[0] == ids and dest.calls[-1] == ids[2:]
