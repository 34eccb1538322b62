"""The same engine with its store, queues and audit trail in PostgreSQL."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from engine.store import audit
from tests.fhir_server import Answer, FhirTestServer
from tests.harness import EngineHarness, adt, exchange, free_port


async def test_engine_on_postgresql_delivers_retries_and_audits(tmp_path, pg_url):
    fhir = await FhirTestServer().start()
    fhir.script.append(Answer(503))
    harness = EngineHarness(tmp_path, store_url=pg_url)
    port = free_port()
    try:
        engine = await harness.start({"adt": f"""
            source: {{type: mllp, port: {port}}}
            mapping: hl7v2-adt-to-fhir@1
            retry: {{initial_delay: 50ms, jitter: 0}}
            destinations:
              - {{name: fhir, type: fhir, url: "{fhir.url}"}}
            """})
        batches = [[adt(f"PG{c}-{i}", f"MRNPG{c}{i}") for i in range(10)] for c in range(4)]
        results = await asyncio.gather(*(exchange(port, b) for b in batches))
        assert {a.value("MSA-1") for acks in results for a in acks} == {"AA"}
        await fhir.wait_for(40)
        await harness.settle(lambda: engine.services.stats.count("sent") == 40)
        assert engine.services.stats.count("retried") == 1
        assert engine.services.db.dialect.name == "postgresql"
        with engine.services.db.connect() as conn:
            verified = audit.verify(conn, engine.services.keys.audit)
            kinds = conn.execute(sa.text("SELECT kind, count(*) FROM audit GROUP BY kind"))
            counts = dict(kinds.all())
        assert verified.broken is None
        assert counts["received"] == counts["mapped"] == counts["sent"] == 40
    finally:
        await harness.stop()
        await fhir.stop()
