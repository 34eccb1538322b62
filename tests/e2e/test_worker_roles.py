"""Taking messages in and delivering them in separate processes (`conduit run --workers
ingest=N,deliver=M`), as an operator runs it: on the embedded default under one
supervisor, and on PostgreSQL + Redis as two separately started groups, where an ingest
group alone acknowledges and queues but sends nothing until a deliver group starts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import (
    CountingFhirServer,
    Daemon,
    Ledger,
    adt_batch,
    daemons_on_postgres,
    eventually,
    port_accepts,
    send_all,
)
from tests.e2e.test_workers import delivered, listening, workers


def delivered_once(fhir: CountingFhirServer, expected: set[str]) -> None:
    seq = delivered(fhir)
    assert sorted(m for m, n in Counter(seq).items() if n > 1) == []
    assert set(seq) == expected


async def test_one_ingest_and_one_deliver_worker_on_the_embedded_store(
        daemon: Daemon, fhir: CountingFhirServer) -> None:
    daemon.deliver_to(fhir.url)
    await daemon.start("--workers", "ingest=1,deliver=1")
    await eventually(lambda: len(workers(daemon)) == 2, timeout=30, message="two workers")
    await eventually(lambda: len(listening(daemon.mllp_port)) == 1, timeout=30,
                     message="the ingest worker listening")
    # Only the ingest worker listens; the deliver worker takes no connection.
    assert len(listening(daemon.mllp_port) & set(workers(daemon))) == 1

    ledger = Ledger()
    await asyncio.wait_for(asyncio.gather(
        *(send_all(daemon.mllp_port, adt_batch(f"R{n}", 60), ledger) for n in range(3))), 90)
    assert len(ledger.acked) == 180, (len(ledger.acked), ledger.other)
    await eventually(lambda: ledger.acked_mrns <= set(delivered(fhir)), timeout=60,
                     interval=0.2, message="every acknowledged message at the FHIR server")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
    delivered_once(fhir, ledger.acked_mrns)
    verified = await daemon.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_one_sided_split_on_the_embedded_store_is_refused_by_name(
        daemon: Daemon) -> None:
    for spec in ("ingest=2", "deliver=1"):
        result = await daemon.cli("run", "--workers", spec)
        assert result.returncode == 2
        assert "needs a worker taking messages in and one delivering them" in result.stderr
    bad = await daemon.cli("run", "--workers", "ingest=1,send=1")
    assert bad.returncode == 2 and "'send=1' is not ROLE=N" in bad.stderr


@pytest.fixture
def halves(tmp_path: Path, pg_url: str) -> Iterator[tuple[Daemon, Daemon]]:
    """An ingest group and a deliver group sharing Redis queues (daemons_on_postgres)."""
    with daemons_on_postgres(tmp_path, pg_url, ("ingest", "deliver"), "redis") as (a, b):
        yield a, b


async def test_ingest_and_deliver_groups_on_postgres_and_redis(
        halves: tuple[Daemon, Daemon], fhir: CountingFhirServer) -> None:
    ingest, deliver = halves
    for d in halves:
        d.deliver_to(fhir.url)
    await ingest.start("--workers", "ingest=1")
    ledger = Ledger()
    await asyncio.wait_for(send_all(ingest.mllp_port, adt_batch("SA", 50), ledger), 60)
    assert len(ledger.acked) == 50, (len(ledger.acked), ledger.other)
    await asyncio.sleep(2.0)
    assert delivered(fhir) == [], "an ingest-only group sent messages"

    await deliver.start("--workers", "deliver=1")
    assert not port_accepts(deliver.mllp_port), "a deliver-only group took connections"
    await eventually(lambda: ledger.acked_mrns <= set(delivered(fhir)), timeout=30,
                     interval=0.2, message="the queued messages delivered by the deliver group")
    # While both run, what the ingest group takes in goes out promptly.
    await asyncio.wait_for(send_all(ingest.mllp_port, adt_batch("SB", 30), ledger), 60)
    await eventually(lambda: ledger.acked_mrns <= set(delivered(fhir)), timeout=15,
                     interval=0.1, message="new messages delivered while both run")
    for d in halves:
        assert await d.stop(timeout=30) == 0, d.logs()[-3000:]
    delivered_once(fhir, ledger.acked_mrns)
    assert len(ledger.acked_mrns) == 80
    verified = await ingest.cli("audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok "), verified
