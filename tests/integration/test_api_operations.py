"""The operations API over real HTTP: channel actions, dead letters, reprocessing,
message search and the audit trail, each action recorded with its `web:<user>` actor."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from engine.store.schema import audit, messages
from tests.fhir_server import Answer
from tests.harness import REPO, adt, exchange, free_port
from tests.integration.test_api_access import (
    WebHarness,
    adt_channel,
    audit_rows,
    bearer,
    queue_of,
)

ADT_MAPPING = REPO / "mappings" / "hl7v2-adt-to-fhir" / "v1.py"
V2_MAPPING = '''
from engine.mapping import mapping


@mapping("hl7v2-adt-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message):
    """Version 2 for the test: tolerates what version 1 refuses (a bad birth date)."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [],
            "meta": {"tag": [{"code": "made-by-v2"}]}}
'''


class Api:
    """A signed-in caller: JSON in, (status, JSON) out."""

    def __init__(self, client: aiohttp.ClientSession, base: str, token: str) -> None:
        self._client, self._base, self.token = client, base, token
        self._headers = bearer(token)

    async def get(self, path: str, **params: Any) -> Any:
        status, body = await self.call("GET", path, params=params)
        assert status == 200, f"GET {path} {params}: {status} {body}"
        return body

    async def post(self, path: str, body: Any = None) -> Any:
        status, answer = await self.call("POST", path, json=body)
        assert status == 200, f"POST {path}: {status} {answer}"
        return answer

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        async with self._client.request(method, self._base + path, headers=headers,
                                        **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if resp.content_type.endswith("json") else text


@pytest.fixture
async def web(tmp_path):
    harness = WebHarness(tmp_path)
    yield harness
    await harness.stop()


@pytest.fixture
async def client():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def start(web: WebHarness, client: aiohttp.ClientSession, channels: dict[str, str]
                ) -> tuple[Any, dict[str, Api]]:
    engine = await web.start(channels)
    tokens = web.add_users()
    return engine, {role: Api(client, web.base, token) for role, token in tokens.items()}


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def actions_of(engine: Any, actor: str) -> list[tuple[str, str, str]]:
    rows = audit_rows(engine, audit.c.kind == "admin", audit.c.actor == actor)
    return [(json.loads(r.detail)["action"], json.loads(r.detail)["from"],
             json.loads(r.detail)["to"]) for r in rows]


# -- channel actions -------------------------------------------------------------------------

async def test_pause_resume_stop_start_over_http(web, client, fhir, tmp_path):
    port = free_port()
    engine, api = await start(web, client, {"adt": adt_channel(port, tmp_path / "out",
                                                               fhir.url)})
    operator = api["operator"]

    assert (await operator.post("/api/channels/adt/pause"))["state"] == "paused"
    assert await refused(port)
    assert (await operator.get("/api/channels/adt"))["state"] == "paused"
    status, ready = await operator.call("GET", "/readyz")  # a pause is no fault
    assert status == 200 and ready["channels"] == {"adt": "paused"}

    assert (await operator.post("/api/channels/adt/resume"))["state"] == "started"
    [ack] = await exchange(port, [adt("P1", "MRN1")])
    assert ack.value("MSA-1") == "AA"
    assert (await operator.call("GET", "/readyz"))[0] == 200

    assert (await api["admin"].post("/api/channels/adt/stop"))["state"] == "stopped"
    assert await refused(port)
    assert [c["state"] for c in await operator.get("/api/channels")] == ["stopped"]

    assert (await api["admin"].post("/api/channels/adt/start"))["state"] == "started"
    [ack] = await exchange(port, [adt("P2", "MRN2")])
    assert ack.value("MSA-1") == "AA"
    await fhir.wait_for(2)  # the restarted destination workers deliver again

    assert actions_of(engine, "web:opal") == [("channel-pause", "started", "paused"),
                                              ("channel-resume", "paused", "started")]
    assert actions_of(engine, "web:ada") == [("channel-stop", "started", "stopped"),
                                             ("channel-start", "stopped", "started")]
    status, answer = await operator.call("POST", "/api/channels/nosuch/pause")
    assert status == 404 and answer["error"] == "not-found"


async def test_paused_channel_still_delivers_what_it_queued(web, client, fhir, tmp_path):
    port = free_port()
    await start(web, client, {"adt": adt_channel(port, tmp_path / "out", fhir.url)})
    fhir.script.append(Answer(503, delay=0.1))  # the first attempt fails: a retry is due
    await exchange(port, [adt("Q1", "MRN1")])
    await web.engine.ops.control("adt", "pause", "test")
    assert await refused(port)
    await fhir.wait_for(1)  # delivered while the channel is paused
    assert web.engine.services.stats.count("retried", "adt", "fhir") == 1


# -- dead letters ----------------------------------------------------------------------------

async def test_retry_and_discard_dead_letters(web, client, fhir, tmp_path):
    fhir.default = Answer(400)  # the receiving server refuses: a dead letter at once
    port = free_port()
    engine, api = await start(web, client, {"adt": adt_channel(port, tmp_path / "out",
                                                               fhir.url)})
    operator = api["operator"]
    await exchange(port, [adt("D1", "MRN1")])

    async def dead(count: int) -> bool:
        q = await queue_of(web.base, api["viewer"].token, "adt/fhir")
        return q["dead"] == count and q["ready"] + q["leased"] == 0
    await until(lambda: dead(1))
    [first] = [m["id"] for m in (await operator.get("/api/messages"))["messages"]]
    summary = (await operator.get("/api/channels/adt"))["destinations"]
    assert {d["name"]: d["dead"] for d in summary} == {"files": 0, "fhir": 1}

    fhir.default = Answer(200)  # the server is fixed: retry
    answer = await operator.post("/api/queues/adt/fhir/retry")
    assert answer == {"destination": "adt/fhir", "requeued": 1}
    [received] = await fhir.wait_for(1)
    assert received.json()["resourceType"] == "Bundle"
    await until(lambda: dead(0))

    fhir.default = Answer(400)
    await exchange(port, [adt("D2", "MRN2")])
    await until(lambda: dead(1))
    second = (await operator.get("/api/messages", limit=1))["messages"][0]["id"]
    answer = await operator.post("/api/queues/adt/fhir/discard")
    assert answer == {"destination": "adt/fhir", "discarded": 1}
    await until(lambda: dead(0))
    assert (await operator.post("/api/queues/adt/fhir/retry"))["requeued"] == 0
    # A discarded dead letter's message stays stored, and can still be reprocessed.
    assert (await operator.get(f"/api/messages/{second}"))["status"] == "accepted"

    requeued = audit_rows(engine, audit.c.kind == "requeued")
    discarded = audit_rows(engine, audit.c.kind == "discarded")
    assert [(e.actor, e.message_id, e.destination) for e in requeued] == [
        ("web:opal", first, "fhir")]
    assert [(e.actor, e.message_id, e.destination) for e in discarded] == [
        ("web:opal", second, "fhir")]
    status, answer = await operator.call("POST", "/api/queues/adt/nosuch/retry")
    assert status == 404 and answer["error"] == "not-found"


# -- reprocessing ----------------------------------------------------------------------------

async def test_reprocess_an_errored_message_with_a_named_mapping_version(client, fhir,
                                                                         tmp_path):
    mappings = tmp_path / "mappings" / "hl7v2-adt-to-fhir"
    mappings.mkdir(parents=True)
    shutil.copy(ADT_MAPPING, mappings / "v1.py")
    (mappings / "v2.py").write_text(V2_MAPPING)
    web = WebHarness(tmp_path / "engine", mappings_dir=tmp_path / "mappings")
    web.root.mkdir()
    port, out = free_port(), tmp_path / "out"
    try:
        engine, api = await start(web, client, {"adt": adt_channel(port, out, fhir.url)})
        analyst = api["analyst"]
        bad_date = adt("R1", "MRN1").replace(b"|19700412|", b"|19701345|")
        [ack] = await exchange(port, [bad_date])
        assert ack.value("MSA-1") == "AE"
        [msg] = (await analyst.get("/api/messages", status="error"))["messages"]
        assert "PID-7" in msg["error"]

        # The channel's own mapping (v1) still fails: the message stays in error.
        again = await analyst.post(f"/api/messages/{msg['id']}/reprocess")
        assert again == {"id": msg["id"], "status": "error", "mapping": "hl7v2-adt-to-fhir@1"}

        status, answer = await analyst.call("POST", f"/api/messages/{msg['id']}/reprocess",
                                            json={"mapping": "hl7v2-adt-to-fhir@9"})
        assert status == 404 and answer["message"] == (
            "unknown mapping hl7v2-adt-to-fhir@9; available: hl7v2-adt-to-fhir@1, @2")
        status, answer = await analyst.call("POST", f"/api/messages/{msg['id']}/reprocess",
                                            data=b"{not json", headers={
                                                "Content-Type": "application/json"})
        assert status == 400

        done = await analyst.post(f"/api/messages/{msg['id']}/reprocess",
                                  {"mapping": "hl7v2-adt-to-fhir@2"})
        assert done == {"id": msg["id"], "status": "accepted", "mapping": "hl7v2-adt-to-fhir@2"}
        [received] = await fhir.wait_for(1)
        assert received.json()["meta"]["tag"] == [{"code": "made-by-v2"}]
        await web.settle(lambda: (out / f"{msg['id']}.json").exists())
        detail = await analyst.get(f"/api/messages/{msg['id']}")
        assert (detail["status"], detail["error"]) == ("accepted", None)
        assert [o["mapping"] for o in detail["outputs"]] == ["hl7v2-adt-to-fhir@2"]
        assert {h["kind"] for h in detail["hops"]} >= {"received", "errored", "reprocessed",
                                                       "mapped", "queued", "sent"}

        reprocessed = audit_rows(engine, audit.c.kind == "reprocessed")
        assert [(e.actor, e.message_id, json.loads(e.detail)["mapping"]) for e in reprocessed
                ] == [("web:ana", msg["id"], "hl7v2-adt-to-fhir@1"),
                      ("web:ana", msg["id"], "hl7v2-adt-to-fhir@2")]
    finally:
        await web.stop()


# -- search ----------------------------------------------------------------------------------

LAB = """
source: {type: mllp, port: %d}
destinations:
  - {name: files, type: file, directory: "%s"}
"""


async def test_message_search_by_every_indexed_field(web, client, fhir, tmp_path):
    adt_port, lab_port = free_port(), free_port()
    engine, api = await start(web, client, {
        "adt": adt_channel(adt_port, tmp_path / "out", fhir.url),
        "lab": LAB % (lab_port, tmp_path / "lab")})
    oru = b"ORU^R01^ORU_R01"
    await exchange(adt_port, [adt("C1", "MRN-A"), adt("C2", "MRN-A", event="A08"),
                              adt("C3", "MRN-B")])
    await exchange(lab_port, [adt("L1", "MRN-A").replace(b"ADT^A01^ADT_A01", oru)])
    await asyncio.sleep(0.01)
    middle = time.time()
    await asyncio.sleep(0.01)
    await exchange(adt_port, [
        adt("C4", "MRN-B").replace(b"|19700412|", b"|19701345|"),  # mapping error
        adt("C5", "MRN-C").replace(b"ADT^A01^ADT_A01", oru),  # filtered
        b"MSH|^^\\&|A|B|C|D|20240101||ADT^A01|C6|P|2.5\r",  # rejected
    ])
    await exchange(lab_port, [adt("L2", "MRN-C").replace(b"ADT^A01^ADT_A01", oru)])
    with engine.services.db.connect() as conn:
        rows = conn.execute(sa.select(messages.c.control_id, messages.c.id)).all()
    by_control = {c or "C6": mid for c, mid in rows}  # the rejected one has no control id
    analyst = api["analyst"]

    async def found(**params: Any) -> list[str]:
        page = await analyst.get("/api/messages", **params)
        assert page["took_ms"] >= 0
        ids = [m["id"] for m in page["messages"]]
        assert ids == sorted(ids, reverse=True), "newest first"
        control = {mid: c for c, mid in by_control.items()}
        return sorted(control[i] for i in ids)

    assert await found() == ["C1", "C2", "C3", "C4", "C5", "C6", "L1", "L2"]
    assert await found(channel="lab") == ["L1", "L2"]
    assert await found(channel="adt", status="error") == ["C4"]
    assert await found(status="filtered") == ["C5"]
    assert await found(status="rejected") == ["C6"]
    assert await found(channel="lab", status="error") == []
    assert await found(type="ADT^A08") == ["C2"]
    assert await found(type="ORU^R01") == ["C5", "L1", "L2"]
    assert await found(control_id="C3") == ["C3"]
    assert await found(patient="MRN-A") == ["C1", "C2", "L1"]
    assert await found(patient="  MRN-A ") == ["C1", "C2", "L1"]  # as typed, trimmed
    # as a CX with its authority, or a FHIR token: the value is what ingest keyed
    assert await found(patient="MRN-A^^^HOSP^MR") == ["C1", "C2", "L1"]
    assert await found(patient="urn:oid:1.2.3|MRN-A") == ["C1", "C2", "L1"]
    assert await found(patient="MRN-B", channel="adt") == ["C3", "C4"]
    assert await found(patient="MRN-Z") == []
    assert await found(until=middle) == ["C1", "C2", "C3", "L1"]
    assert await found(since=middle) == ["C4", "C5", "C6", "L2"]
    assert await found(since=middle, channel="adt") == ["C4", "C5", "C6"]
    assert await found(since=middle, until=time.time() + 1, type="ORU^R01") == ["C5", "L2"]

    # A patient search matches the keyed pseudonym; the identifier itself is stored nowhere.
    page = await analyst.get("/api/messages", patient="MRN-A")
    pseudonym = engine.services.vault.pseudonym("MRN-A")
    assert {m["patient"] for m in page["messages"]} == {pseudonym}
    assert "MRN-A" not in pseudonym
    # Roles without patient search see no pseudonyms at all.
    viewer = await api["viewer"].get("/api/messages")
    assert {m["patient"] for m in viewer["messages"]} == {None}

    # Pages continue from the last id seen: no gaps, no repeats.
    seen, before = [], None
    while True:
        params = {"limit": 3, **({"before": before} if before else {})}
        page = await analyst.get("/api/messages", **params)
        seen += [m["id"] for m in page["messages"]]
        if not (before := page["next"]):
            break
    assert seen == sorted(by_control.values(), reverse=True)

    status, answer = await analyst.call("GET", "/api/messages", params={"since": "yesterday"})
    assert status == 400 and answer["error"] == "bad-parameter"


# -- the audit trail -------------------------------------------------------------------------

async def test_audit_query_verify_and_export(web, client, fhir, tmp_path):
    port = free_port()
    engine, api = await start(web, client, {"adt": adt_channel(port, tmp_path / "out",
                                                               fhir.url)})
    await exchange(port, [adt("A1", "MRN-A"), adt("A2", "MRN-B"), adt("A3", "MRN-A")])
    await fhir.wait_for(3)
    ids = {r.control_id: r.id for r in _rows(engine)}
    await web.settle(lambda: len(audit_rows(engine, audit.c.kind == "sent")) == 6)
    await api["analyst"].get(f"/api/messages/{ids['A1']}", content="1", reason="ticket 42")
    auditor = api["auditor"]

    hops = (await auditor.get("/api/audit", message=ids["A1"]))["events"]
    assert {e["message_id"] for e in hops} == {ids["A1"]}
    assert [e["seq"] for e in hops] == sorted((e["seq"] for e in hops), reverse=True)
    assert sorted(e["kind"] for e in hops) == sorted([
        "received", "parsed", "mapped", "queued", "queued", "acknowledged", "sent", "sent",
        "viewed"])
    [viewed] = [e for e in hops if e["kind"] == "viewed"]
    assert viewed["actor"] == "web:ana" and viewed["detail"] == {"reason": "ticket 42"}

    patient_a = (await auditor.get("/api/audit", patient="MRN-A"))["events"]
    assert {e["message_id"] for e in patient_a} == {ids["A1"], ids["A3"]}
    assert {e["patient"] for e in patient_a} == {engine.services.vault.pseudonym("MRN-A")}
    assert (await auditor.get("/api/audit", patient="MRN-Q"))["events"] == []
    by_actor = (await auditor.get("/api/audit", actor="web:ana"))["events"]
    assert [(e["kind"], e["message_id"]) for e in by_actor] == [("viewed", ids["A1"])]

    first = await auditor.get("/api/audit", limit=5)
    rest = await auditor.get("/api/audit", limit=500, before=first["next"])
    total = len(audit_rows(engine))
    assert len(first["events"]) + len(rest["events"]) == total

    verified = await auditor.get("/api/audit/verify")
    assert verified["ok"] is True and verified["broken"] is None
    assert verified["events"] == total

    async with client.get(f"{web.base}/api/audit/export",
                          headers=bearer(auditor.token)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/x-ndjson")
        lines = (await resp.read()).splitlines()
    exported = [json.loads(line) for line in lines]
    # all, oldest first, down to the export's own event, recorded before the first line
    assert [e["seq"] for e in exported] == list(range(1, total + 2))
    assert json.loads(exported[-1]["detail"]) == {"action": "audit-export", "via": "api"}
    assert all(e["hash"] and e["prev_hash"] for e in exported)
    assert exported[0]["detail"]  # each line is the stored row, detail as recorded

    async with client.get(f"{web.base}/api/audit/export", params={"message": ids["A2"]},
                          headers=bearer(auditor.token)) as resp:
        one = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert {e["message_id"] for e in one} == {ids["A2"]}
    assert [e["seq"] for e in one] == sorted(e["seq"] for e in one)

    # An edited event breaks the chain, and verify names it.
    with engine.services.db.begin() as conn:
        conn.execute(audit.update().where(audit.c.seq == 3).values(actor="someone-else"))
    verified = await auditor.get("/api/audit/verify")
    assert verified["ok"] is False and verified["broken"]["seq"] == 3


def _rows(engine: Any) -> list[Any]:
    with engine.services.db.connect() as conn:
        return conn.execute(sa.select(messages.c.id, messages.c.control_id)).all()


# -- bad input is a 400 that says what was wrong, never a 500 or a broken response -----------

@pytest.mark.parametrize(("path", "query"), [
    ("/api/messages", "since=-1"),
    ("/api/messages", "since=1e30"),
    ("/api/messages", "since=nan"),
    ("/api/messages", "until=inf"),
    ("/api/audit", "since=nan"),
    ("/api/audit", "until=1e30"),
])
async def test_out_of_range_time_bounds_are_a_400(web, client, fhir, tmp_path, path, query):
    _, api = await start(web, client, {"adt": adt_channel(free_port(), tmp_path / "out",
                                                          fhir.url)})
    status, answer = await api["admin"].call("GET", f"{path}?{query}")
    assert status == 400, f"GET {path}?{query}: {status} {answer!r}"
    assert answer["error"] == "bad-parameter"


@pytest.mark.parametrize("query", ["since=yesterday", "before=x", "limit=many"])
async def test_audit_export_with_a_bad_parameter_is_a_clean_400(web, client, fhir, tmp_path,
                                                                query):
    _, api = await start(web, client, {"adt": adt_channel(free_port(), tmp_path / "out",
                                                          fhir.url)})
    try:
        status, answer = await api["auditor"].call("GET", f"/api/audit/export?{query}")
    except aiohttp.ClientError as exc:
        pytest.fail(f"GET /api/audit/export?{query}: a broken HTTP response "
                    f"({type(exc).__name__}: {getattr(exc, 'message', '')!r}); the handler "
                    "sent 200 headers before it read its parameters")
    assert status == 400 and answer["error"] == "bad-parameter"


async def test_a_page_larger_than_the_cap_still_says_where_to_continue(web, client, fhir,
                                                                      tmp_path):
    from engine.message import message_id_floor
    from engine.store.database import bulk_insert

    engine, api = await start(web, client, {"adt": adt_channel(free_port(), tmp_path / "out",
                                                               fhir.url)})
    now = time.time()
    rows = [{"id": message_id_floor(now - 600 + i)[:-4] + f"{i:04d}", "channel": "adt",
             "received_at": now - 600 + i, "status": "accepted", "standard": "hl7v2",
             "message_type": "ADT^A01", "control_id": f"B{i}", "sender": "EPIC^NORTHWING",
             "peer": "127.0.0.1", "patient": None, "size": 10, "content_hash": "0" * 64,
             "key_id": "k", "content": b"x", "error": None} for i in range(600)]
    with engine.services.db.begin() as conn:
        bulk_insert(conn, messages, rows)
    page = await api["viewer"].get("/api/messages", limit=1000)
    assert len(page["messages"]) == 500  # the cap (search.MAX_PAGE)
    assert page["next"] == page["messages"][-1]["id"], (
        "100 more messages match, but the page says there is nothing after it")


async def test_message_pages_go_both_ways_and_never_offer_an_empty_one(web, client, fhir,
                                                                      tmp_path):
    """What the status page's message browser relies on: `next` (older) and `previous`
    (newer) cursors that exist only when a matching message lies that way, with every
    filter still applied while paging."""
    from engine.message import message_id_floor
    from engine.store.database import bulk_insert

    engine, api = await start(web, client, {"adt": adt_channel(free_port(), tmp_path / "out",
                                                               fhir.url)})
    start_at = time.time() - 600
    rows = [{"id": message_id_floor(start_at + i)[:-4] + f"{i:04d}", "channel": "adt",
             "received_at": start_at + i, "status": "error" if i % 2 else "accepted",
             "standard": "hl7v2", "message_type": "ADT^A01", "control_id": f"PG{i}",
             "sender": "EPIC^NORTHWING", "peer": "127.0.0.1", "patient": None, "size": 10,
             "content_hash": "0" * 64, "key_id": "k", "content": b"x", "error": None}
            for i in range(8)]
    with engine.services.db.begin() as conn:
        bulk_insert(conn, messages, rows)
    newest_first = [r["id"] for r in reversed(rows)]
    viewer = api["viewer"]

    async def page(**params: Any) -> tuple[list[str], str | None, str | None]:
        got = await viewer.get("/api/messages", **params)
        return [m["id"] for m in got["messages"]], got["next"], got["previous"]

    assert await page(limit=3) == (newest_first[:3], newest_first[2], None)
    assert await page(limit=3, before=newest_first[2]) == (
        newest_first[3:6], newest_first[5], newest_first[3])
    # The last page is short, and offers no page after it.
    assert await page(limit=3, before=newest_first[5]) == (
        newest_first[6:], None, newest_first[6])
    # Back again: the page just newer than a page's first message, newest first.
    assert await page(limit=3, after=newest_first[6]) == (
        newest_first[3:6], newest_first[5], newest_first[3])
    assert await page(limit=3, after=newest_first[3]) == (newest_first[:3], newest_first[2],
                                                           None)
    # Exactly one full page matches: nothing either way.
    assert await page(limit=4, status="error") == (newest_first[0:8:2], None, None)
    # Filters hold while paging: errors only, in the time range of messages 2 to 5.
    errors = dict(status="error", since=start_at + 2, until=start_at + 6, limit=1)
    assert await page(**errors) == ([rows[5]["id"]], rows[5]["id"], None)
    assert await page(**errors, before=rows[5]["id"]) == ([rows[3]["id"]], None, rows[3]["id"])
    assert await page(**errors, after=rows[3]["id"]) == ([rows[5]["id"]], rows[5]["id"], None)
    assert await page(control_id="PG4") == ([rows[4]["id"]], None, None)

    status, answer = await viewer.call("GET", "/api/messages", params={"status": "errored"})
    assert status == 400 and answer["error"] == "bad-parameter"
    assert "accepted" in answer["message"]


async def test_reprocess_with_a_malformed_mapping_is_a_400(web, client, fhir, tmp_path):
    port = free_port()
    _, api = await start(web, client, {"adt": adt_channel(port, tmp_path / "out", fhir.url)})
    await exchange(port, [adt("M1", "MRN1")])
    [msg] = (await api["analyst"].get("/api/messages"))["messages"]
    status, answer = await api["analyst"].call(
        "POST", f"/api/messages/{msg['id']}/reprocess", json={"mapping": ["x"]})
    assert status == 400, f"{status} {answer!r}"
