"""SCRIPT over HTTP through a real engine: a prescriber system POSTs a NewRx to the
`http` source and gets the Status or Error in the same exchange (200 either way with
`reply_status: always-ok`, as network intermediaries expect), and the `http`
destination posts it on to a test pharmacy (aiohttp on loopback) and reads the
pharmacy's own answer through the codec (`read_reply: true`): Status is delivered,
Error 900 a dead letter, Error 602 and silence retried."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from engine.events import Kind
from engine.store.schema import audit, messages, queue
from tests.harness import EngineHarness, free_port

NEWRX = (Path(__file__).parent.parent / "fixtures" / "ncpdp" / "newrx_default_ns.xml"
         ).read_bytes()
NS = "http://www.ncpdp.org/schema/SCRIPT"


def pharmacy_answer(kind: str, relates_to: str) -> bytes:
    """What a pharmacy system answers: Status 000, or Error with a code."""
    body = ("<Status><Code>000</Code></Status>" if kind == "status" else
            f"<Error><Code>{kind}</Code><DescriptionCode>1000</DescriptionCode>"
            "<Description>Patient not found at this store</Description></Error>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Message xmlns="{NS}" '
            'TransactionVersion="2017071"><Header><To Qualifier="C">HARBORSIDEEHR</To>'
            '<From Qualifier="P">7701630</From><MessageID>ph-0001</MessageID>'
            f"<RelatesToMessageID>{relates_to}</RelatesToMessageID>"
            "<SentTime>2026-12-01T14:05:23Z</SentTime></Header>"
            f"<Body>{body}</Body></Message>").encode()


class Pharmacy:
    """A pharmacy's SCRIPT endpoint: answers `mode` (status, 900, 602 or silent)."""

    def __init__(self) -> None:
        self.mode = "status"
        self.received: list[bytes] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/script", self._take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _take(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.received.append(raw)
        if self.mode == "silent":
            await asyncio.sleep(5)
        found = re.search(rb"<MessageID>([^<]+)<", raw)
        relates = found.group(1).decode() if found else ""
        return web.Response(body=pharmacy_answer(self.mode, relates),
                            content_type="application/xml")


def channel(port: int, pharmacy: int, reply_status: str = "always-ok") -> str:
    return f"""
        format: ncpdp
        validation: strict
        source:
          type: http
          port: {port}
          path: /script
          auth: {{type: none}}
          reply_status: {reply_status}
        destinations:
          - name: pharmacy
            type: http
            url: http://127.0.0.1:{pharmacy}/script
            read_reply: true
            send: received
            timeout: 1s
            retry: {{max_attempts: 4, initial_delay: 300ms, jitter: 0}}
        """


@pytest.fixture
async def world(tmp_path):
    pharmacy = Pharmacy()
    await pharmacy.start()
    harness = EngineHarness(tmp_path)
    port = free_port()
    await harness.start({"eprescribing": channel(port, pharmacy.port),
                         "strict-codes": channel(free_port(), pharmacy.port, "verdict")})
    try:
        yield harness, pharmacy, port
    finally:
        await harness.stop()
        await pharmacy.stop()


async def post(port: int, body: bytes) -> tuple[int, str, bytes, str]:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/script", data=body,
            headers={"Content-Type": "application/xml"}) as resp:
        return (resp.status, resp.content_type, await resp.read(),
                resp.headers.get("X-Conduit-Message-Id", ""))


def events(harness: EngineHarness, message_id: str) -> list[tuple[str, str]]:
    assert harness.engine is not None and harness.engine.services is not None
    with harness.engine.services.db.connect() as conn:
        return [(r.kind, r.detail) for r in conn.execute(
            sa.select(audit.c.kind, audit.c.detail).where(audit.c.message_id == message_id)
            .order_by(audit.c.seq))]


def kinds(harness: EngineHarness, message_id: str) -> list[str]:
    return [k for k, _ in events(harness, message_id)]


async def test_newrx_is_answered_status_and_the_pharmacy_gets_it_byte_for_byte(world):
    harness, pharmacy, port = world
    status, content_type, body, message_id = await post(port, NEWRX)
    assert status == 200 and content_type == "application/xml"
    assert b"<Status><Code>000</Code></Status>" in body
    assert b"<RelatesToMessageID>a3f1c2d4e5b6478899aa0011bb22cc33</RelatesToMessageID>" in body
    await harness.settle(lambda: Kind.SENT in kinds(harness, message_id))
    assert pharmacy.received == [NEWRX]
    sent = dict(events(harness, message_id))[Kind.SENT]
    assert '"code":"000"' in sent  # the pharmacy's Status, read in the same exchange
    acknowledged = dict(events(harness, message_id))[Kind.ACKNOWLEDGED]
    assert '"verdict":"accepted"' in acknowledged


async def test_a_message_missing_what_newrx_requires_is_answered_error_900(world):
    harness, pharmacy, port = world
    broken = re.sub(rb"<LastName>Lindqvist</LastName>", b"", NEWRX)
    status, content_type, body, message_id = await post(port, broken)
    assert status == 200 and content_type == "application/xml"  # a delivered Error
    assert b"<Error><Code>900</Code>" in body and b"LastName" in body
    # addressed back to the prescriber system that sent it (the channel answers a
    # refused message without its parse; the codec reads it again for the Header)
    assert b'<To Qualifier="C">HARBORSIDEEHR</To><From Qualifier="P">7701630</From>' in body
    await harness.settle(lambda: Kind.ACKNOWLEDGED in kinds(harness, message_id))
    assert '"code":"900"' in dict(events(harness, message_id))[Kind.ACKNOWLEDGED]
    assert pharmacy.received == []
    # Kept as a rejected NewRx of its sender: an analyst finds it among NewRx messages.
    with harness.engine.services.db.connect() as conn:
        row = conn.execute(sa.select(messages.c.status, messages.c.message_type,
                                     messages.c.sender)
                           .where(messages.c.id == message_id)).one()
    assert (row.status, row.message_type) == ("rejected", "NewRx") and row.sender


async def test_unreadable_xml_and_hostile_xml_get_an_error_not_a_crash(world):
    _, pharmacy, port = world
    for body in (b"<Message><Header><MessageID>x1</MessageID></Head",
                 b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaa">'
                 b'<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><Message>&b;</Message>'):
        status, content_type, answer, _ = await post(port, body)
        assert status == 200 and content_type == "application/xml"
        assert b"<Error><Code>900</Code>" in answer
        assert b"aaaaaaaa" not in answer
    assert pharmacy.received == []


async def test_reply_status_verdict_keeps_400_for_a_refused_message(world):
    harness, _, _ = world
    port = harness.engine.channels["strict-codes"].source.config.port
    status, content_type, body, _ = await post(port, b"<Message><Header></Header></Message>")
    assert status == 400 and content_type == "application/xml"
    assert b"<Error><Code>900</Code>" in body


async def test_pharmacy_error_900_is_a_dead_letter_with_its_code(world):
    harness, pharmacy, port = world
    pharmacy.mode = "900"
    _, _, body, message_id = await post(port, NEWRX)
    assert b"<Status><Code>000</Code>" in body  # we took it on; the pharmacy refused it
    await harness.settle(lambda: Kind.DEAD_LETTERED in kinds(harness, message_id))
    dead = dict(events(harness, message_id))[Kind.DEAD_LETTERED]
    assert "receiver answered Error 900 (DescriptionCode 1000)" in dead
    assert "Patient not found" not in dead  # the pharmacy's words may quote the patient
    await asyncio.sleep(0.5)
    assert len(pharmacy.received) == 1  # refused for good: not sent again


@pytest.mark.parametrize("mode", ["602", "silent"])
async def test_pharmacy_error_602_or_silence_is_retried(world, mode):
    harness, pharmacy, port = world
    pharmacy.mode = mode
    _, _, _, message_id = await post(port, NEWRX)
    await harness.settle(lambda: Kind.RETRIED in kinds(harness, message_id), timeout=15)
    retried = dict(events(harness, message_id))[Kind.RETRIED]
    assert ("receiver answered Error 602" if mode == "602" else
            "no answer within the timeout") in retried
    pharmacy.mode = "status"
    await harness.settle(lambda: Kind.SENT in kinds(harness, message_id), timeout=15)
    assert harness.engine is not None and harness.engine.services is not None
    with harness.engine.services.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(queue).where(
            queue.c.message_id == message_id)).scalar() == 0


EPCS = (Path(__file__).parent.parent / "fixtures" / "ncpdp" / "epcs_newrx_signed_crlf.xml"
        ).read_bytes()
# Another prescriber system's style: an scr: prefix on every element, spaces around the
# xmlns's "=", attributes in another order, a tab before a CRLF inside SignatureValue.
EPCS_PREFIXED = (Path(__file__).parents[2] / "mappings" / "ncpdp-newrx-to-fhir" / "fixtures"
                 / "v1" / "epcs_schedule_ii_scr_prefix_crlf_signed.xml").read_bytes()


@pytest.mark.parametrize("signed", [EPCS, EPCS_PREFIXED], ids=["default_ns", "scr_prefix"])
async def test_a_signed_controlled_substance_newrx_is_delivered_byte_for_byte(tmp_path,
                                                                              signed):
    """EPCS: the prescriber's digital signature covers the message as signed, so the
    engine passes it on exactly: CRLF line ends, tabs, single-quoted attributes in their
    order, a trailing space, UTF-8 accents and the signature elements themselves."""
    assert b"SignatureValue>" in signed and b"X509Certificate>" in signed and b"\r\n" in signed
    pharmacy = Pharmacy()
    await pharmacy.start()
    harness = EngineHarness(tmp_path)
    port, out = free_port(), tmp_path / "out"
    await harness.start({"epcs": f"""
        format: ncpdp
        validation: strict
        source: {{type: http, port: {port}, path: /script, auth: {{type: none}},
                  reply_status: always-ok}}
        destinations:
          - {{name: files, type: file, directory: "{out}"}}
          - {{name: pharmacy, type: http, url: "http://127.0.0.1:{pharmacy.port}/script",
              read_reply: true, send: received}}
        """})
    try:
        status, _, body, message_id = await post(port, signed)
        assert status == 200 and b"<Status><Code>000</Code></Status>" in body
        await harness.settle(lambda: kinds(harness, message_id).count(Kind.SENT) == 2)
        written = list(out.iterdir())
        assert len(written) == 1 and written[0].suffix == ".xml"
        assert written[0].read_bytes() == signed
        assert pharmacy.received == [signed]
    finally:
        await harness.stop()
        await pharmacy.stop()
