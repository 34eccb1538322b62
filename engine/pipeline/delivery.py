"""A destination's worker: leases from its queue, sends in order, records each outcome.

One worker per destination, so a failing receiver holds up only its own queue. The head
of the queue is kept until it is confirmed or dead-lettered (FIFO); the RetryPolicy
decides the waits. Confirmations are written without waiting for their commit: if the
engine dies first, the entry is simply sent again (at-least-once). With a heartbeat
(engine.queue.heartbeat), nothing is sent from a batch once this process can no longer
be sure it still holds the batch's leases: the rest is given back and leased again.

A destination whose order matters only per patient (`by_patient`) leases the first
entry of each patient no one holds (engine.queue.by_key), up to `concurrency` at once:
a patient's messages go one after another, a slow or refusing patient holds back only
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from engine.connectors.base import Destination
from engine.errors import KeyError_, StoreError
from engine.events import Event, Kind
from engine.message import Delivery, Fail, Outbound, Retry, Sent
from engine.ops import tracing
from engine.queue.base import Leased, Queue
from engine.queue.heartbeat import Heartbeat
from engine.queue.retry import RetryPolicy
from engine.security.crypto import Vault, content_hash
from engine.store import answers
from engine.store.writer import UnitOfWork, Writer

log = logging.getLogger("conduit.delivery")

LEASE_BATCH = 100
# Entries due now handed at once to a destination that can send several in one go
# (`send_many`: the file destination, one fsync round per batch instead of a thread hop
# and a wait for the disk per file).
SEND_MANY = 32
IDLE_POLL = 1.0  # seconds between looks at the queue when nothing announced work
GIVE_BACK_RETRY = 1.0  # seconds between tries to give a batch back while the store refuses
OUTCOME_RETRY = 1.0  # seconds between tries to record a send's outcome the store refused
# How long shutdown waits for a send in progress before abandoning it; the abandoned
# message keeps its queue entry and is sent again after restart (at-least-once).
DRAIN_GRACE = 5.0


class DestinationWorker:
    def __init__(
        self,
        *,
        channel: str,
        name: str,
        destination: Destination,
        policy: RetryPolicy,
        timeout: float,
        queue: Queue,
        writer: Writer,
        vault: Vault,
        raw_content_type: str,
        heartbeat: Heartbeat | None = None,
        concurrency: int = 1,
        by_patient: bool = False,
        idle_poll: float = IDLE_POLL,
    ) -> None:
        self.channel = channel
        self.name = name
        self.key = f"{channel}/{name}"
        self.destination = destination
        self.policy = policy
        self.timeout = timeout
        self._queue = queue
        self._writer = writer
        self._vault = vault
        self._raw_type = raw_content_type
        self._heartbeat = heartbeat
        # A worker in a process that takes nothing in is never told of new entries, so it
        # looks more often (`conduit run --workers ingest=N,deliver=M`).
        self._idle_poll = idle_poll
        # 1 keeps the queue FIFO; more sends that many at once, each with its own
        # retries, order not kept (for messages that stand alone: real-time inquiries)
        self.concurrency = max(1, concurrency)
        # FIFO per patient: `concurrency` patients at once, each in order (_flow)
        self.by_patient = by_patient
        # by_patient: the commit recording an entry's confirmation or dead letter, by
        # entry id while it is sent; then, once the entry is done with, among the commits
        # whose end wakes _flow to lease again (see _settled)
        self._recorded: dict[int, asyncio.Future[Any]] = {}
        # Outcomes submitted and not committed yet (the store refusing them meanwhile):
        # their entries must not be given back before, or another lease sends them again
        self._unrecorded = 0
        self._settling: set[asyncio.Future[Any]] = set()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # Told (message id, delivery, reason, the commit recording it) when an entry is
        # confirmed or dead-lettered: a request/response channel's waiter
        # (engine.pipeline.respond) hooks in here.
        self.on_result: Callable[[str, Delivery, str, asyncio.Future[Any] | None],
                                 None] | None = None

    def notify(self) -> None:
        """New entries were committed for this destination."""
        self._wakeup.set()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"deliver {self.key}")

    async def stop(self) -> None:
        """Let the send in progress finish (for up to DRAIN_GRACE seconds), give back the
        rest of the lease, close."""
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=DRAIN_GRACE)
            if not done:
                log.warning("destination %s: abandoning a send still waiting after %.0fs; "
                            "it stays queued and is sent again after restart", self.key,
                            DRAIN_GRACE)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        try:
            await self.destination.open()
        except Exception as exc:
            log.error("destination %s could not open: %s", self.key, type(exc).__name__)
        try:
            if self.concurrency > 1 or self.by_patient:
                await self._flow()
            while not self._stopping.is_set():
                self._wakeup.clear()
                token = self._heartbeat.token() if self._heartbeat is not None else 0
                if token is None:  # this process may be taken for dead: lease nothing
                    await self._idle()
                    continue
                try:
                    batch: list[Leased] = await self._writer.commit(
                        self._queue.lease(self.key, LEASE_BATCH))
                except Exception as exc:
                    log.error("destination %s: cannot lease from the queue: %s", self.key, exc)
                    await self._pause(5.0)
                    continue
                if not batch:
                    await self._idle()
                    continue
                if await self._deliver_all(batch, token):
                    continue
                if not self._stopping.is_set():
                    log.warning("destination %s: leases no longer certain; giving back "
                                "the batch and leasing again", self.key)
                    await self._give_back()
        except asyncio.CancelledError:
            pass  # abandoned at shutdown (see stop); the lease is given back below
        finally:
            await self._give_back()
            with contextlib.suppress(Exception):
                await self.destination.close()

    async def _flow(self) -> None:
        """Up to `concurrency` entries in flight, each sent and retried on its own; more
        are leased as places free up, so an entry waiting for its next attempt holds one
        place, not the queue (by_patient: and its patient's later entries). Returns when
        stopping; in-flight entries are waited for (a stop lets each finish the send
        under way). When a lease is in doubt, the rest finish, everything is given back
        and leasing starts again."""
        running: set[asyncio.Future[bool]] = set()
        try:
            while not self._stopping.is_set():
                self._wakeup.clear()
                token = self._heartbeat.token() if self._heartbeat is not None else 0
                free = self.concurrency - len(running)
                if token is not None and free > 0:
                    # outcomes committed by now are behind this lease; one committed with
                    # it (the writer gathers units) wakes the wait below at once
                    self._settling = {f for f in self._settling if not f.done()}
                    try:
                        batch: list[Leased] = await self._writer.commit(
                            self._queue.lease(self.key, free, by_key=self.by_patient)
                            if self.by_patient else self._queue.lease(self.key, free))
                    except Exception as exc:
                        log.error("destination %s: cannot lease from the queue: %s",
                                  self.key, exc)
                        batch = []
                    running.update(asyncio.ensure_future(self._settled(entry, token))
                                   for entry in batch)
                waits: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(self._wakeup.wait()),
                    asyncio.ensure_future(self._stopping.wait())]
                done, _ = await asyncio.wait({*waits, *running, *self._settling},
                                             timeout=self._idle_poll,
                                             return_when=asyncio.FIRST_COMPLETED)
                self._settling -= done  # each wakes one look, not every look after it
                for w in waits:
                    w.cancel()
                finished = {t for t in running if t in done}
                running -= finished
                if any(not t.result() for t in finished) and not self._stopping.is_set():
                    log.warning("destination %s: leases no longer certain; giving back "
                                "the entries and leasing again", self.key)
                    await asyncio.gather(*running)
                    running.clear()
                    await self._give_back()
        except BaseException:  # abandoned (cancelled at shutdown) or failed: so are they
            for task in running:
                task.cancel()
            raise
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _settled(self, entry: Leased, token: int) -> bool:
        """_deliver; by_patient, the commit of its outcome then wakes _flow to lease
        again. The next lease runs at once and, in the SQL queue, sees the outcome (the
        writer commits in order); the Redis queue frees the patient only once the
        outcome's commit reached Redis, and a lease before it, or in the same commit (the
        writer gathers units), found it still held: without this wake-up its place would
        stay idle until the next look (IDLE_POLL)."""
        try:
            return await self._deliver(entry, token)
        finally:
            recorded = self._recorded.pop(entry.id, None)
            if recorded is not None and not recorded.done():
                self._settling.add(recorded)

    def _tell(self, message_id: str, delivery: Delivery, reason: str,
              stored: asyncio.Future[Any]) -> None:
        if self.on_result is not None:
            try:
                self.on_result(message_id, delivery, reason, stored)
            except Exception:  # a waiter's bug must not stop deliveries
                log.exception("destination %s: the respond hook failed", self.key)

    async def _give_back(self) -> None:
        """Return this process's leases of the destination to the queue, in place. Until
        that commits they stay this process's and its own leases skip them, so while
        the store refuses it is tried again; a stop tries once (the next start, or
        whoever takes over from this process, gets them back). Not before every outcome
        recorded so far has committed: an entry sent whose confirmation the store has not
        taken yet would otherwise be leased and sent again once the store is back."""
        while self._unrecorded:
            if not await self._pause(OUTCOME_RETRY):
                break
        while True:
            release = UnitOfWork()
            self._queue.release(release, self.key)
            try:
                await self._writer.commit(release)
                return
            except Exception:  # the writer logged it
                if not await self._pause(GIVE_BACK_RETRY):
                    return

    def _record(self, uow: UnitOfWork) -> asyncio.Future[Any]:
        """Submit a confirmation or dead letter without waiting. One the store refused is
        submitted again until it commits: till then its send goes unaudited and the entry
        stays this process's, skipped by its own leases (a retry's outcome is not: the
        next one records the attempts)."""
        stored = self._submit(uow)
        self._unrecorded += 1  # its done callback runs later, never within submit
        return stored

    def _submit(self, uow: UnitOfWork) -> asyncio.Future[Any]:
        stored = self._writer.submit(uow)
        stored.add_done_callback(functools.partial(self._refused, uow))
        return stored

    def _recording(self, entry: Leased, uow: UnitOfWork) -> asyncio.Future[Any]:
        """_record an entry's last outcome; by_patient, kept for _settled."""
        stored = self._record(uow)
        if self.by_patient:
            self._recorded[entry.id] = stored
        return stored

    def _refused(self, uow: UnitOfWork, stored: asyncio.Future[Any]) -> None:
        if not stored.cancelled() and stored.exception() is not None:
            asyncio.get_running_loop().call_later(OUTCOME_RETRY, self._record_again, uow)
        else:
            self._unrecorded -= 1

    def _record_again(self, uow: UnitOfWork) -> None:
        try:
            self._submit(uow)
        except StoreError:  # the store is closed: sent again after restart
            self._unrecorded -= 1

    def _holds(self, token: int) -> bool:
        return self._heartbeat is None or self._heartbeat.holds(token)

    async def _idle(self) -> None:
        waits = [asyncio.ensure_future(self._wakeup.wait()),
                 asyncio.ensure_future(self._stopping.wait())]
        await asyncio.wait(waits, timeout=self._idle_poll, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the sleep ran its course."""
        if seconds <= 0:
            return not self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _deliver_all(self, batch: list[Leased], token: int) -> bool:
        """Deliver a leased batch in order; False if stopped first or the lease is in
        doubt. A destination with `send_many(outbounds) -> deliveries` is handed runs of
        the entries due now: it attempts them in order and stops at the first that is not
        Sent, returning the deliveries of those it attempted; the one that failed goes on
        with its retries alone, and the rest, never attempted, follow in order."""
        send_many = getattr(self.destination, "send_many", None)
        i = 0
        while i < len(batch):
            now = time.time()
            run = []
            if send_many is not None and self.concurrency == 1:
                for entry in batch[i:i + SEND_MANY]:
                    if entry.available_at > now:
                        break
                    run.append(entry)
            outbounds = self._outbounds(run) if len(run) >= 2 else None
            if outbounds is None:  # one at a time (one that cannot be opened goes alone)
                if not await self._deliver(batch[i], token):
                    return False
                i += 1
                continue
            if self._stopping.is_set() or not self._holds(token):
                return False
            try:
                async with asyncio.timeout(self.timeout + 5.0):
                    deliveries: list[Delivery] = list(await send_many(outbounds))
            except TimeoutError:
                deliveries = [Retry("no answer within the timeout")]
            except Exception as exc:  # a connector bug must not kill the worker
                log.exception("destination %s raised while sending %d messages",
                              self.key, len(run))
                deliveries = [Retry(f"destination raised {type(exc).__name__}")]
            if not deliveries:
                deliveries = [Retry("the destination attempted nothing")]
            for entry, delivery in zip(run, deliveries, strict=False):  # a prefix of run
                i += 1
                attempts = entry.attempts + 1
                span = tracing.attempt(entry.message_id, self.channel, self.name, attempts,
                                       entry.control_id)
                due = self._outcome(entry, delivery, attempts, span)
                if due is not None and not await self._deliver(entry, token, attempts, due):
                    return False
        return True

    def _outbounds(self, run: list[Leased]) -> list[Outbound] | None:
        try:
            return [self._outbound(entry, entry.attempts + 1) for entry in run]
        except KeyError_:
            return None

    def _outbound(self, entry: Leased, attempts: int) -> Outbound:
        content = self._vault.open(entry.key_id, entry.sealed, entry.record_id)
        return Outbound(entry.id, entry.message_id, self.channel, self.name, content,
                        entry.content_type or self._raw_type, entry.control_id, attempts)

    async def _deliver(self, entry: Leased, token: int, attempts: int | None = None,
                       due: float | None = None) -> bool:
        """Send one entry until it is confirmed or dead; False if stopped first, or if
        the lease it was taken under (`token`) may have passed to another process.
        `attempts` and `due`: where an entry already attempted in a batch stands."""
        attempts = entry.attempts if attempts is None else attempts
        due = entry.available_at if due is None else due
        try:
            outbound = self._outbound(entry, attempts)
        except KeyError_ as exc:  # its key is lost: dead, saying which; replayable after
            if not self._holds(token):
                return False
            log.error("destination %s: %s", self.key, exc)  # ids only
            self._outcome(entry, Fail(str(exc)), attempts + 1, tracing.attempt(
                entry.message_id, self.channel, self.name, attempts + 1, entry.control_id))
            return True
        while True:
            if not await self._pause(due - time.time()) or not self._holds(token):
                return False
            attempts += 1
            outbound.attempts = attempts
            span = tracing.attempt(entry.message_id, self.channel, self.name, attempts,
                                   entry.control_id)
            try:
                async with asyncio.timeout(self.timeout + 5.0):  # no task per send
                    delivery = await self.destination.send(outbound)
            except TimeoutError:
                delivery = Retry("no answer within the timeout")
            except Exception as exc:  # a connector bug must not kill the worker
                log.exception("destination %s raised while sending message %s",
                              self.key, entry.message_id)
                delivery = Retry(f"destination raised {type(exc).__name__}")
            next_due = self._outcome(entry, delivery, attempts, span)
            if next_due is None:
                return True
            due = next_due

    def _outcome(self, entry: Leased, delivery: Delivery, attempts: int,
                 span: Any) -> float | None:
        """Record what attempt number `attempts` of `entry` came to (confirmed, dead or
        to retry), without waiting for its commit; the time of the next attempt, or None
        when the entry is done with."""
        decision = self.policy.decide(delivery, attempts)
        uow = UnitOfWork()
        base = {"channel": self.channel, "destination": self.name,
                "message_id": entry.message_id, "patient": entry.patient,
                "peer": self.destination.address}
        code = getattr(delivery, "code", "")
        span.done(decision.action, code)
        if decision.action == "confirm":
            self._queue.ack(uow, entry.id)
            latency_ms = round((time.time() - entry.received_at) * 1000, 1)
            detail = {"code": code, "attempt": attempts, "latency_ms": latency_ms}
            answer = delivery.answer if isinstance(delivery, Sent) else None
            if answer is not None:  # the receiver's answer is a message: kept sealed
                answers.keep(uow, self._vault, entry_id=entry.id,
                             message_id=entry.message_id, destination=self.key,
                             code=code, reason="the receiver's answer", answer=answer)
                detail["answer_bytes"] = len(answer.body)
            uow.record(Event(kind=Kind.SENT, **base, detail=detail, content_hash=(
                content_hash(answer.body) if answer is not None else None)))
            self._tell(entry.message_id, delivery, "", self._recording(entry, uow))
            return None
        self.last_error, self.last_error_at = decision.reason, time.time()
        if decision.action == "dead":
            self._queue.dead_letter(uow, entry.id, attempts, decision.reason)
            answer = getattr(delivery, "answer", None)
            if answer is not None:  # sealed: it may quote the patient back
                answers.keep(uow, self._vault, entry_id=entry.id,
                             message_id=entry.message_id, destination=self.key,
                             code=code, reason=decision.reason, answer=answer)
            uow.record(Event(kind=Kind.DEAD_LETTERED, **base,
                             detail={"code": code, "attempt": attempts,
                                     "reason": decision.reason}))
            self._tell(entry.message_id, delivery, decision.reason,
                       self._recording(entry, uow))
            return None
        due = time.time() + decision.delay
        self._queue.retry_later(uow, entry.id, attempts, due, decision.reason)
        uow.record(Event(kind=Kind.RETRIED, **base,
                         detail={"code": code, "attempt": attempts,
                                 "delay_s": round(decision.delay, 3),
                                 "reason": decision.reason}))
        self._writer.submit(uow)
        return due
