"""Real-time eligibility through a real engine channel: a caller POSTs a FHIR
CoverageEligibilityRequest, the channel sends a 270 to a payer's CAQH CORE endpoint
(tests/core_payer.py, on loopback), waits for the 271 and answers the caller with the
CoverageEligibilityResponse mapped from it; a slow payer gives the caller a 504 while the
message is still delivered; a CORE error gives the caller a 502 naming the code.

The mappings used here are small ones declared by this test (the channel's 270 writer
and 271 reader), so the test holds the request/response machinery to account and not
the real x12 mappings, which have their own tests.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from engine.events import Kind
from engine.formats.x12.build import Delimiters
from engine.formats.x12.codec import X12Codec
from engine.store import answers
from engine.store.schema import audit, messages, outputs, queue
from tests.core_payer import CorePayer
from tests.harness import EngineHarness, free_port

TO_270 = '''
from datetime import datetime, timezone

from engine.formats.x12.build import interchange
from engine.mapping import mapping


@mapping("test-fhir-to-270@1", accepts="fhir", emits="application/edi-x12")
def convert(request):
    contained = {r["resourceType"]: r for r in request.get("contained", [])}
    patient, coverage = contained["Patient"], contained["Coverage"]
    name = patient["name"][0]
    trace = request["identifier"][0]["value"]
    segments = [
        ["BHT", "0022", "13", trace, "20261203", "1015"],
        ["HL", "1", "", "20", "1"],
        ["NM1", "PR", "2", "ACME HEALTH", "", "", "", "", "PI", "ACMEHEALTH"],
        ["HL", "2", "1", "21", "1"],
        ["NM1", "1P", "2", "HARBORSIDE MEDICAL GROUP", "", "", "", "", "XX", "1234567893"],
        ["HL", "3", "2", "22", "0"],
        ["TRN", "1", trace, "9877281234"],
        ["NM1", "IL", "1", name["family"], name["given"][0], "", "", "", "MI",
         coverage["subscriberId"]],
        ["DMG", "D8", patient["birthDate"].replace("-", ""), "F"],
        ["DTP", "291", "D8", "20261203"],
        ["EQ", "30"],
    ]
    return interchange([("270", "005010X279A1", segments)], sender=("ZZ", "HARBORSIDE01"),
                       receiver=("ZZ", "ACMEHEALTH"), control_number=int(trace[-6:]),
                       when=datetime(2026, 12, 3, 10, 15, tzinfo=timezone.utc))
'''

FROM_271 = '''
from engine.mapping import mapping


@mapping("test-271-to-fhir@1", accepts="x12", emits="application/fhir+json")
def convert(message):
    active = message.find("EB", "1")
    copay = message.find("EB", "B")
    item = {"category": {"coding": [{"code": copay.element(3)}]}, "benefit": [{
        "type": {"coding": [{"code": "copay"}]},
        "allowedMoney": {"value": float(copay.element(7)), "currency": "USD"}}]}
    return {
        "resourceType": "CoverageEligibilityResponse", "status": "active",
        "purpose": ["benefits"], "outcome": "complete",
        "identifier": [{"value": message.value("TRN02")}],
        "insurer": {"display": message.value("NM1[PR]03")},
        "insurance": [{"inforce": active is not None, "item": [item]}],
    }
'''


def eligibility_request(trace: str) -> dict[str, Any]:
    """A CoverageEligibilityRequest for a fictional member, patient and coverage
    contained (what the test's 270 writer reads)."""
    return {
        "resourceType": "CoverageEligibilityRequest", "status": "active",
        "identifier": [{"system": "urn:example:trace", "value": trace}],
        "purpose": ["benefits"], "created": "2026-12-03",
        "patient": {"reference": "#pat"}, "insurer": {"display": "Acme Health"},
        "contained": [
            {"resourceType": "Patient", "id": "pat", "birthDate": "1961-07-04",
             "name": [{"family": "QUILLFEATHER", "given": ["ROSALIND"]}]},
            {"resourceType": "Coverage", "id": "cov", "status": "active",
             "subscriberId": "ACM88120457", "beneficiary": {"reference": "#pat"},
             "payor": [{"display": "Acme Health"}]},
        ],
        "insurance": [{"coverage": {"reference": "#cov"}}],
    }


class World:
    def __init__(self, harness: EngineHarness, payer: CorePayer, port: int) -> None:
        self.harness, self.payer, self.port = harness, payer, port

    async def ask(self, trace: str) -> tuple[int, Any, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.port}/fhir/CoverageEligibilityRequest",
                data=json.dumps(eligibility_request(trace)),
                headers={"Content-Type": "application/fhir+json"}) as resp:
            return resp.status, resp.headers, json.loads(await resp.read())

    def rows(self, table: sa.Table, *where: Any) -> list[Any]:
        assert self.harness.engine is not None and self.harness.engine.services is not None
        with self.harness.engine.services.db.connect() as conn:
            return list(conn.execute(sa.select(table).where(*where)))

    def kinds(self, message_id: str) -> list[str]:
        return [r.kind for r in self.rows(audit, audit.c.message_id == message_id)]


@pytest.fixture
async def payer():
    server = CorePayer(delimiters=Delimiters(element="|", repetition="^", component=">",
                                             segment="~", newline=True))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def world(tmp_path: Path, payer: CorePayer):
    mappings = tmp_path / "mappings"
    for name, text in (("test-fhir-to-270", TO_270), ("test-271-to-fhir", FROM_271)):
        (mappings / name).mkdir(parents=True)
        (mappings / name / "v1.py").write_text(textwrap.dedent(text))
    harness = EngineHarness(tmp_path, mappings_dir=mappings)
    port = free_port()
    await harness.start({"eligibility": f"""
        format: fhir
        source:
          type: fhir
          port: {port}
          auth: {{type: none}}
          resources: [CoverageEligibilityRequest]
        mapping: test-fhir-to-270@1
        respond:
          destination: payer
          timeout: 1500ms
          mapping: test-271-to-fhir@1
        destinations:
          - name: payer
            type: core
            url: {payer.url}
            sender_id: HARBORSIDE01
            receiver_id: ACMEHEALTH
            timeout: 10s
            retry: {{max_attempts: 3, initial_delay: 100ms, jitter: 0}}
    """})
    yield World(harness, payer, port)
    await harness.stop()


async def test_a_caller_gets_the_payers_answer_as_a_coverage_eligibility_response(
        world: World) -> None:
    status, headers, body = await world.ask("TRC000101")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/fhir+json")
    assert body["resourceType"] == "CoverageEligibilityResponse"
    assert body["identifier"] == [{"value": "TRC000101"}]  # the payer echoed our trace
    assert body["insurer"] == {"display": "ACME HEALTH"}
    insurance = body["insurance"][0]
    assert insurance["inforce"] is True
    benefit = insurance["item"][0]["benefit"][0]
    assert benefit["allowedMoney"] == {"value": 25.0, "currency": "USD"}

    # the payer got one CORE envelope, every field as the rule has it
    [seen] = world.payer.received
    assert seen.content_type.startswith("multipart/form-data; boundary=")
    assert {k: seen.fields[k] for k in ("ProcessingMode", "PayloadType", "SenderID",
                                         "ReceiverID", "CORERuleVersion")} == {
        "ProcessingMode": "RealTime", "PayloadType": "X12_270_Request_005010X279A1",
        "SenderID": "HARBORSIDE01", "ReceiverID": "ACMEHEALTH", "CORERuleVersion": "2.2.0"}
    sent = X12Codec().parse(seen.fields["Payload"].encode())
    assert (sent.message_type, sent.patient_id) == ("270", "ACM88120457")

    # the request, the 270 sent and the 271 received are all stored, and every hop audited
    message_id = headers["X-Conduit-Message-Id"]
    [stored] = world.rows(messages, messages.c.id == message_id)
    assert stored.status == "accepted"
    [output] = world.rows(outputs, outputs.c.message_id == message_id)
    assert output.mapping == "test-fhir-to-270@1"
    engine = world.harness.engine
    assert engine is not None and engine.services is not None
    [kept] = answers.open_for_message(engine.services.db, engine.services.vault, message_id)
    assert kept["destination"] == "eligibility/payer"
    assert X12Codec().parse(kept["content"].encode()).message_type == "271"
    await world.harness.settle(lambda: Kind.RESPONDED.value in world.kinds(message_id))
    kinds = world.kinds(message_id)
    for hop in ("received", "parsed", "mapped", "queued", "sent", "acknowledged",
                "responded"):
        assert hop in kinds, (hop, kinds)
    assert world.rows(queue) == []  # delivered, nothing left queued


async def test_a_slow_payer_times_the_caller_out_and_the_message_is_still_delivered(
        world: World) -> None:
    world.payer.delay = 3.0
    status, headers, body = await world.ask("TRC000102")
    assert status == 504
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "timeout"
    assert "stays queued" in body["issue"][0]["diagnostics"]
    message_id = headers["X-Conduit-Message-Id"]
    # nothing accepted is lost: the payer's 271 arrives later and is kept
    await world.harness.settle(lambda: "sent" in world.kinds(message_id), timeout=10)
    assert [r.answered for r in world.payer.received] == ["271"]
    assert world.rows(queue) == []
    engine = world.harness.engine
    assert engine is not None and engine.services is not None
    assert len(answers.of_message(engine.services.db, message_id)) == 1
    await world.harness.settle(lambda: "responded" in world.kinds(message_id))
    [responded] = world.rows(audit, audit.c.message_id == message_id,
                             audit.c.kind == "responded")
    assert json.loads(responded.detail)["outcome"] == "timeout"


async def test_a_core_error_gives_the_caller_a_clear_refusal(world: World) -> None:
    world.payer.error = ("SenderNotAuthorized", "this sender may not ask about this payer")
    status, headers, body = await world.ask("TRC000103")
    assert status == 502
    diagnostics = body["issue"][0]["diagnostics"]
    assert "CORE ErrorCode SenderNotAuthorized" in diagnostics
    message_id = headers["X-Conduit-Message-Id"]
    assert len(world.payer.received) == 1  # refused for good: not retried
    [entry] = world.rows(queue)
    assert entry.state == "dead"
    engine = world.harness.engine
    assert engine is not None and engine.services is not None
    [kept] = answers.open_for_message(engine.services.db, engine.services.vault, message_id)
    assert kept["reason"] == "CORE ErrorCode SenderNotAuthorized"
    assert "ErrorMessage" in kept["content"]  # the payer's own words, sealed, for the analyst


async def test_answers_are_matched_to_their_own_callers(world: World) -> None:
    results = await asyncio.gather(*(world.ask(f"TRC0002{i:02d}") for i in range(6)))
    for i, (status, _, body) in enumerate(results):
        assert status == 200, body
        assert body["identifier"] == [{"value": f"TRC0002{i:02d}"}]
    assert sorted(r.answered for r in world.payer.received) == ["271"] * 6


async def test_callers_do_not_wait_in_line_behind_each_other(world: World) -> None:
    """The core destination sends 4 inquiries at once (concurrency, default 4): four
    callers of a payer that takes a second each are answered in about a second, not
    four."""
    world.payer.delay = 1.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(world.ask(f"TRC0003{i:02d}") for i in range(1, 5)))
    took = loop.time() - started
    assert [status for status, _, _ in results] == [200] * 4
    assert took < 3.0, took


# ------------------------------------------------------------------ an X12 caller


RAW_270 = (
    "ISA*00*          *00*          *ZZ*HARBORSIDE01   *ZZ*ACMEHEALTH     *261203*1015*^*"
    "00501*000000417*0*P*:~GS*HS*HARBORSIDE01*ACMEHEALTH*20261203*1015*417*X*005010X279A1~"
    "ST*270*0001*005010X279A1~BHT*0022*13*TRC000417*20261203*1015~HL*1**20*1~"
    "NM1*PR*2*ACME HEALTH*****PI*ACMEHEALTH~HL*2*1*21*1~"
    "NM1*1P*2*HARBORSIDE MEDICAL GROUP*****XX*1234567893~HL*3*2*22*0~"
    "TRN*1*TRC000417*9877281234~NM1*IL*1*WAVERLY*THADDEUS****MI*ACM55031982~"
    "DMG*D8*19780222*M~DTP*291*D8*20261203~EQ*30~SE*13*0001~GE*1*417~IEA*1*000000417~")


@pytest.fixture
async def x12_world(tmp_path: Path, payer: CorePayer):
    harness = EngineHarness(tmp_path)
    port = free_port()
    await harness.start({"eligibility-x12": f"""
        format: x12
        source:
          type: http
          port: {port}
          path: /eligibility
          auth: {{type: none}}
        respond:
          destination: payer
          timeout: 1500ms
        destinations:
          - name: payer
            type: core
            url: {payer.url}
            sender_id: HARBORSIDE01
            receiver_id: ACMEHEALTH
            retry: {{max_attempts: 3, initial_delay: 100ms, jitter: 0}}
    """})
    yield World(harness, payer, port)
    await harness.stop()


async def post_x12(port: int, body: str) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/eligibility", data=body.encode(),
            headers={"Content-Type": "application/edi-x12"}) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_an_x12_caller_posts_a_270_and_gets_the_payers_271(x12_world: World) -> None:
    status, headers, body = await post_x12(x12_world.port, RAW_270)
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/edi-x12")
    answer = X12Codec().parse(body)  # the payer's own delimiters (| and >), as it sent them
    assert answer.message_type == "271"
    assert answer.body.value("TRN02") == "TRC000417"
    assert answer.body.find("EB", "1") is not None
    [seen] = x12_world.payer.received
    assert seen.fields["Payload"] == RAW_270  # sent as received, inside the envelope
    assert x12_world.rows(queue) == []


async def test_an_x12_caller_gets_a_504_with_a_reason_when_the_payer_is_slow(
        x12_world: World) -> None:
    x12_world.payer.delay = 3.0
    status, headers, body = await post_x12(x12_world.port, RAW_270)
    assert status == 504
    assert headers["Content-Type"].startswith("text/plain")
    assert b"no answer from payer within 1.5s" in body
    message_id = headers["X-Conduit-Message-Id"]
    await x12_world.harness.settle(lambda: "sent" in x12_world.kinds(message_id), timeout=10)


async def test_a_broken_270_is_refused_and_never_reaches_the_payer(x12_world: World) -> None:
    broken = RAW_270.replace("SE*13*0001", "SE*12*0001")  # the count lies
    status, _, body = await post_x12(x12_world.port, broken)
    assert status == 400
    assert b"999" in body or b"TA1" in body  # the X12 rejection, not a payer's answer
    assert x12_world.payer.received == []

