"""The store goes away under a running engine on PostgreSQL: its connections are
terminated (pg_terminate_backend) and, for a while, refused. Meanwhile senders get only
retryable answers (HL7 AE, HTTP 503), never an AA for something not stored and never a
rejection that would make them drop the message; once the database is back, the engine
carries on without a restart, delivers everything it acknowledged once (the store goes
while deliveries are under way, their confirmations not yet recorded), and its chain
verifies. Run with the queues in PostgreSQL and in Redis Streams (the production
example's default), whose leases and outcomes must also survive the store's absence."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import redis
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL
from tests.e2e.support import (
    CountingFhirServer,
    Daemon,
    Ledger,
    adt_batch,
    eventually,
    send_all,
    use_postgres,
)
from tests.fhir_server import Answer

_PATIENT = {"resourceType": "Patient", "name": [{"family": "OUTAGE", "given": ["Drill"]}],
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.999", "value": "OUT-1"}],
            "gender": "female", "birthDate": "1970-01-01"}


REDIS_URL = "redis://127.0.0.1:6379/0"  # the production example's default
OUTAGE = 8.0  # seconds the database is away at least


def _drop_queue_keys(database: str) -> None:
    """The Redis queue's keys of this test (use_postgres names their prefix)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{{conduit-{database}}}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _cut(database: str, allow: bool) -> int:
    """Refuse (or allow again) new connections to `database` and terminate the ones it
    has; the number terminated."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS '
                                 f'{"true" if allow else "false"}')
            if allow:
                return 0
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": database}).all())
    finally:
        admin.dispose()


async def _post_patient(daemon: Daemon, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{daemon.fhir_port}/fhir/Patient", data=json.dumps(_PATIENT),
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/fhir+json"}) as resp:
        return resp.status


def _delivered(fhir: CountingFhirServer) -> set[str]:
    return {m for r in list(fhir.requests) for m in _mrns(r.body)}


def _sends(fhir: CountingFhirServer) -> Counter[str]:
    """How many accepted requests carried each MRN."""
    return Counter(m for r in list(fhir.received) for m in set(_mrns(r.body)))


def _mrns(body: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb'"(E2E[A-Z0-9]+)"', body)]


@pytest.mark.parametrize("queue", ["sql", "redis"])
async def test_while_the_store_is_away_senders_get_retryable_answers_and_nothing_acked_is_lost(
        tmp_path: Path, pg_url: str, fhir: CountingFhirServer, queue: str) -> None:
    daemon = Daemon(tmp_path)
    use_postgres(daemon, pg_url, tmp_path / "keys")
    daemon.env["CONDUIT_QUEUE"] = queue
    database = sa.engine.make_url(pg_url).database
    assert database
    try:
        daemon.deliver_to(fhir.url)
        fhir.default = Answer(200, delay=0.2)  # a backlog still being sent at the cut
        await daemon.start()
        added = await daemon.cli("users", "add", "ehr-feed", "--role", "integration")
        assert added.returncode == 0, added.stderr
        token = (await daemon.cli("users", "token", "ehr-feed")).stdout.strip()

        before = Ledger()
        await asyncio.wait_for(send_all(daemon.mllp_port, adt_batch("OB", 40), before), 60)
        assert len(before.acked) == 40

        assert len(_delivered(fhir)) < 40, "delivery finished before the cut"
        terminated = await asyncio.to_thread(_cut, database, False)
        cut_at = asyncio.get_running_loop().time()
        assert terminated >= 1, "the engine held no connection to terminate"
        during = Ledger()
        away = adt_batch("OD", 15)
        await asyncio.wait_for(send_all(daemon.mllp_port, away, during, reply_timeout=40),
                               120)
        fhir_status = await _post_patient(daemon, token)
        assert daemon.running, "the engine died with its store"
        # Nothing could be stored: no AA; only AE (send again), no AR (drop it).
        assert not during.acked, [m.control_id for m in during.acked]
        assert set(during.other.values()) <= {"AE"} and len(during.other) == 15, during.other
        assert fhir_status == 503
        # away long enough for the heartbeat to doubt its leases and give them back
        await asyncio.sleep(max(0.0, cut_at + OUTAGE - asyncio.get_running_loop().time()))

        await asyncio.to_thread(_cut, database, True)
        after = Ledger()

        async def resent_acked() -> bool:
            await send_all(daemon.mllp_port, away[:1], after)
            return bool(after.acked)

        await eventually(resent_acked, timeout=30, interval=0.5,
                         message="the engine storing again once the database is back")
        await asyncio.wait_for(send_all(daemon.mllp_port, away[1:] + adt_batch("OA", 40),
                                        after), 60)
        assert len(after.acked) == 55 and after.acked[0].control_id == away[0].control_id
        assert await _post_patient(daemon, token) in (200, 201)

        acked = before.acked_mrns | after.acked_mrns
        await eventually(lambda: acked <= _delivered(fhir), timeout=60, interval=0.2,
                         message="every acknowledged message delivered after the outage")

        async def drained() -> bool:  # every send's outcome recorded, none left in flight
            listed = await daemon.cli("queue", "list")
            return "(no queued, retrying or dead-lettered messages)" in listed.stdout

        await eventually(drained, timeout=30, interval=1.0,
                         message="the queues empty, sends refused with the store recorded")
        twice = {mrn: n for mrn, n in _sends(fhir).items() if n > 1}
        assert not twice, f"delivered more than once: {twice}"
        assert await daemon.stop() == 0, daemon.logs()[-3000:]
        verified = await daemon.cli("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        await asyncio.to_thread(_cut, database, True)
        daemon.kill_leftover()
        _drop_queue_keys(database)
