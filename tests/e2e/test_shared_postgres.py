"""Two `conduit run` processes with the production example's settings on one PostgreSQL
database, as issue 9 found them: every acknowledged message is delivered once, in the
order each sender sent it; and when the process that is delivering is SIGKILLed, the
other takes its leases over within seconds (not after a 300 s lease) and goes on in
order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from engine.connectors.mllp import MllpClient
from engine.queue.owners import OWNER_TTL
from engine.queue.redis_scripts import GROUP
from tests.e2e.support import (
    FHIR_DESTINATION,
    Adt,
    CountingFhirServer,
    Daemon,
    Ledger,
    ack_code,
    adt_batch,
    backlog_under_way,
    daemons_on_postgres,
    delivered,
    eventually,
    send_all,
)
from tests.fhir_server import Answer

REDIS_URL = "redis://127.0.0.1:6379/0"  # the production example's default


@pytest.fixture(params=["sql", "redis"])
def pair(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str
         ) -> Iterator[tuple[Daemon, Daemon]]:
    """Two daemons sharing queues in PostgreSQL or in Redis Streams (B opens what A
    sealed); see daemons_on_postgres."""
    with daemons_on_postgres(tmp_path, pg_url, ("a", "b"), request.param) as (a, b):
        yield a, b


def leases(daemon: Daemon, pg_url: str) -> dict[int, int]:
    """pid -> entries of the FHIR destination leased by that process, in whichever queue
    the daemons share."""
    if daemon.env["CONDUIT_QUEUE"] == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            prefix = daemon.env["CONDUIT_QUEUE_PREFIX"]
            stream = f"{{{prefix}}}:s:{FHIR_DESTINATION}"
            pending = client.xpending(stream, GROUP)
        finally:
            client.close()
        rows = [(c["name"].decode(), c["pending"]) for c in pending["consumers"]]
    else:
        db = sa.create_engine(pg_url)
        try:
            with db.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT lease_owner, count(*) FROM queue WHERE destination = :d "
                    "AND state = 'leased' GROUP BY lease_owner"), {"d": FHIR_DESTINATION}).all()
        finally:
            db.dispose()
    return {int(owner.split(":")[1]): n for owner, n in rows if n}  # host:pid[:random]


async def test_two_engines_on_one_database_deliver_each_message_once(
        pair: tuple[Daemon, Daemon], fhir: CountingFhirServer) -> None:
    for d in pair:
        d.deliver_to(fhir.url)
        await d.start()
    ledger = Ledger()
    batches = {"TA": adt_batch("TA", 200), "TB": adt_batch("TB", 200)}
    await asyncio.wait_for(asyncio.gather(
        *(send_all(d.mllp_port, batch, ledger) for d, batch in zip(pair, batches.values(),
                                                                     strict=True))), 120)
    assert len(ledger.acked) == 400, (len(ledger.acked), ledger.other, len(ledger.unanswered))
    acked = ledger.acked_mrns
    await eventually(lambda: acked <= set(delivered(fhir)), timeout=90, interval=0.2,
                     message="every acknowledged message at the FHIR server")
    for d in pair:  # a second delivery still under way arrives before they exit
        assert await d.stop() == 0, d.logs()[-3000:]

    seq = delivered(fhir)
    twice = sorted(m for m, n in Counter(seq).items() if n > 1)
    assert twice == [], f"{len(twice)} messages delivered more than once"
    assert len(seq) == 400
    for prefix in batches:  # one queue, FIFO: each sender's messages in its order
        sent = [m for m in seq if m.startswith(f"E2E{prefix}")]
        assert sent == sorted(sent), f"{prefix}: delivered out of order"
    # Both appended to one hash chain all along: it verifies whole.
    verified = await pair[0].cli("audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok "), verified


async def test_after_a_sigkill_the_other_engine_takes_over_within_seconds_in_order(
        pair: tuple[Daemon, Daemon], fhir: CountingFhirServer, pg_url: str) -> None:
    """Delivery is at-least-once: the message in flight at the kill, and those whose
    confirmation the killed process had not yet made durable, may arrive twice. So the
    arrivals are the killed process's ascending run, then the survivor's ascending run
    starting at or before where the first stopped: at most one step back, never a gap."""
    for d in pair:
        d.deliver_to(fhir.url)
        await d.start()
    ledger = await backlog_under_way(fhir, pair[0].mllp_port, "KS")

    held = await asyncio.to_thread(leases, pair[0], pg_url)
    by_pid = {d.proc.pid: d for d in pair if d.proc is not None}
    holder_pid = max((pid for pid in held if pid in by_pid), key=held.__getitem__)
    holder = by_pid[holder_pid]  # (the order check below fails if both were holding)
    survivor = next(d for d in pair if d is not holder)
    await holder.crash()
    held = await asyncio.to_thread(leases, pair[0], pg_url)
    assert held.get(holder_pid, 0) > 0, "the killed engine held no lease; proves nothing"
    fhir.default = Answer()

    # Bounded well below the old 300 s lease: the survivor reclaims after OWNER_TTL.
    acked = ledger.acked_mrns
    await eventually(lambda: acked <= set(delivered(fhir)), timeout=6 * OWNER_TTL,
                     interval=0.2, message="the survivor delivering the rest")
    assert survivor.running
    assert await survivor.stop() == 0
    assert "event=reclaimed" in survivor.logs(), "the takeover left no trace in the log"

    seq = delivered(fhir)
    firsts = list(dict.fromkeys(seq))
    assert firsts == sorted(firsts), "delivered out of order"
    steps_back = [i for i in range(1, len(seq)) if seq[i] <= seq[i - 1]]
    assert len(steps_back) <= 1, f"order broken at {len(steps_back)} places"
    for i in steps_back:
        assert seq[i] in seq[:i], "a step back to a message never sent before"


async def test_copies_sent_to_both_engines_at_once_are_taken_once(
        pair: tuple[Daemon, Daemon], fhir: CountingFhirServer, pg_url: str) -> None:
    """Each engine checks its copies before the other's commit is visible; the commit
    checks again under the audit head's lock, so one copy is taken on, every other is
    stored and answered as a duplicate, and the FHIR server gets the message once."""
    for d in pair:
        d.deliver_to(fhir.url)
        await d.start()
    clients = []
    try:
        for d in (*pair, *pair, *pair):
            client = MllpClient("127.0.0.1", d.mllp_port)
            await client.connect(5)
            clients.append(client)
        for round_ in range(3):
            message = Adt(control_id=f"PGONCE00000{round_}", mrn=f"E2EPGONCE0{round_}")
            replies = await asyncio.gather(*(c.exchange(message.payload(), 15)
                                             for c in clients))
            assert [ack_code(r) for r in replies] == ["AA"] * len(clients)
            db = sa.create_engine(pg_url)
            try:
                with db.connect() as conn:
                    statuses = sorted(conn.execute(sa.text(
                        "SELECT status FROM messages WHERE control_id = :c"),
                        {"c": message.control_id}).scalars())
            finally:
                db.dispose()
            assert statuses == ["accepted"] + ["duplicate"] * (len(clients) - 1)
    finally:
        for client in clients:
            await client.close()
    await eventually(lambda: len(delivered(fhir)) >= 3, timeout=30,
                     message="the three messages at the FHIR server")
    for d in pair:
        assert await d.stop() == 0, d.logs()[-3000:]
    assert sorted(delivered(fhir)) == ["E2EPGONCE00", "E2EPGONCE01", "E2EPGONCE02"]
    verified = await pair[0].cli("audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok "), verified
