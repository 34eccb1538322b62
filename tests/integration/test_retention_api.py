"""A message whose content retention pruned, as people meet it over the real API: the id
still resolves (metadata, hops), asking for its content or reprocessing it answers 410
with a JSON reason (and records no read), and the channel says its retention."""

from __future__ import annotations

import time

import aiohttp
import sqlalchemy as sa

from engine.store.schema import audit
from tests.harness import adt, exchange, free_port
from tests.integration.test_api_access import audit_rows
from tests.integration.test_api_operations import Api, WebHarness

DAY = 86400.0


def channel(port: int, out) -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 2s}}
    retention: 30d
    destinations:
      - {{name: files, type: file, directory: "{out}"}}
    """


async def test_a_pruned_message_resolves_and_its_content_answers_gone(tmp_path):
    web = WebHarness(tmp_path)
    try:
        port = free_port()
        engine = await web.start({"adt": channel(port, tmp_path / "out")})
        tokens = web.add_users()
        await exchange(port, [adt("R1", "MRN5550001", family="QUILLFEATHER")])
        svc = engine.services
        await web.settle(lambda: svc.stats.count("sent") == 1)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            analyst = Api(client, web.base, tokens["analyst"])
            viewer = Api(client, web.base, tokens["viewer"])
            assert (await viewer.get("/api/channels/adt"))["retention"] == "30d"
            [listed] = (await viewer.get("/api/messages", control_id="R1"))["messages"]
            mid = listed["id"]
            assert (await analyst.get(f"/api/messages/{mid}"))["pruned"] is False

            # The engine's own pruner, a month and a day later by its clock.
            [result] = await engine.pruner(clock=lambda: time.time() + 31 * DAY).run_once()
            assert (result.channel, result.messages) == ("adt", 1)

            detail = await analyst.get(f"/api/messages/{mid}")
            assert detail["pruned"] is True and detail["control_id"] == "R1"
            hops = [h["kind"] for h in detail["hops"]]
            assert hops[0] == "received" and "sent" in hops  # the audit trail stays
            status, body = await analyst.call(
                "GET", f"/api/messages/{mid}", params={"content": "1", "reason": "INC-9"})
            assert status == 410
            assert body["error"] == "content-pruned"
            assert "pruned under its channel's retention" in body["message"]
            assert not audit_rows(engine, audit.c.kind == "viewed")  # nothing was read
            status, body = await analyst.call("POST", f"/api/messages/{mid}/reprocess")
            assert (status, body["error"]) == (410, "content-pruned")
            # still found by search, under its metadata
            found = (await viewer.get("/api/messages", control_id="R1"))["messages"]
            assert [m["id"] for m in found] == [mid]
            assert "QUILLFEATHER" not in str(detail)
        with svc.db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(audit)
                                .where(audit.c.kind == "admin",
                                       audit.c.detail.contains("retention-pruned"))).scalar() == 1
    finally:
        await web.stop()
