"""The CAQH CORE destination against a payer's endpoint on loopback (tests/core_payer.py):
the envelope it writes, and what each kind of payer answer means for the queue."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import DestinationContext
from engine.connectors.core import envelope, read_envelope
from engine.formats.x12.codec import X12Codec
from engine.message import Fail, Outbound, Retry, Sent
from tests.core_payer import CorePayer

MEMBER = "ACM77100234"
X12_270 = (
    "ISA^00^          ^00^          ^ZZ^HARBORSIDE01   ^ZZ^ACMEHEALTH     ^261203^1015^{^"
    "00501^000000202^0^T^:\r\nGS^HS^HARBORSIDE01^ACMEHEALTH^20261203^1015^202^X^005010X279A1\r\n"
    "ST^270^0001^005010X279A1\r\nBHT^0022^13^TRC000202^20261203^1015\r\nHL^1^^20^1\r\n"
    "NM1^PR^2^ACME HEALTH^^^^^PI^ACMEHEALTH\r\nHL^2^1^21^1\r\n"
    "NM1^1P^2^HARBORSIDE MEDICAL GROUP^^^^^XX^1234567893\r\nHL^3^2^22^0\r\n"
    f"NM1^IL^1^BRIGHTWATER^OPHELIA^^^^MI^{MEMBER}\r\nEQ^30\r\nSE^10^0001\r\n"
    "GE^1^202\r\nIEA^1^000000202\r\n").encode()


@pytest.fixture
async def payer():
    server = CorePayer()
    await server.start()
    yield server
    await server.stop()


def destination(payer: CorePayer, **more: object):
    kind = registry.DESTINATIONS["core"]
    cfg = msgspec.convert({"type": "core", "name": "payer", "url": payer.url, "timeout": 2,
                           "sender_id": "HARBORSIDE01", "receiver_id": "ACMEHEALTH", **more},
                          kind.config, dec_hook=dec_hook, strict=False)
    return kind.factory(cfg, DestinationContext(channel="eligibility"))


async def send(payer: CorePayer, **more: object):
    dest = destination(payer, **more)
    await dest.open()
    try:
        return await dest.send(Outbound(1, "M1", "eligibility", "payer", X12_270,
                                        "application/edi-x12"))
    finally:
        await dest.close()


def test_an_envelope_reads_back_field_for_field_whatever_the_payload_holds():
    payload = "ISA*00~\r\n--not-a-boundary--\r\nNM1*IL*1*MÜLLER~".encode()
    body, content_type = envelope({"PayloadType": "X", "Payload": payload})
    assert content_type.startswith("multipart/form-data; boundary=CORE-")
    assert read_envelope(content_type, body) == {"PayloadType": b"X", "Payload": payload}
    assert read_envelope("text/plain", body) is None
    assert read_envelope("multipart/form-data; boundary=zzz", b"garbage") in (None, {})


async def test_the_271_is_the_answer_of_a_sent_delivery(payer: CorePayer):
    delivery = await send(payer)
    assert isinstance(delivery, Sent), delivery
    assert delivery.answer is not None
    assert delivery.answer.content_type == "application/edi-x12"
    answer = X12Codec().parse(delivery.answer.body)
    assert (answer.message_type, answer.patient_id) == ("271", MEMBER)
    [seen] = payer.received
    uuid.UUID(seen.fields["PayloadID"])
    assert seen.fields["Payload"].encode() == X12_270  # the payload as queued, CRs and all


async def test_each_attempt_has_its_own_payload_id(payer: CorePayer):
    await send(payer)
    await send(payer)
    assert len({r.fields["PayloadID"] for r in payer.received}) == 2


async def test_a_core_error_code_is_a_fail_naming_it_and_never_the_message(payer: CorePayer):
    payer.error = ("SenderNotAuthorized", f"member {MEMBER} unknown for this sender")
    delivery = await send(payer)
    assert isinstance(delivery, Fail), delivery
    assert delivery.code == "SenderNotAuthorized"
    assert MEMBER not in delivery.reason
    assert delivery.answer is not None and MEMBER.encode() in delivery.answer.body


async def test_an_error_code_the_payer_calls_transient_is_a_retry(payer: CorePayer):
    payer.error = ("ServerBusy", "try later")
    delivery = await send(payer, retry_codes=["ServerBusy"])
    assert isinstance(delivery, Retry) and delivery.code == "ServerBusy", delivery


async def test_an_error_code_with_a_5xx_is_a_retry(payer: CorePayer):
    payer.error, payer.status = ("InternalError", "down for maintenance"), 503
    delivery = await send(payer)
    assert isinstance(delivery, Retry), delivery
    assert "CORE ErrorCode InternalError" in delivery.reason


async def test_a_wrong_payload_type_is_refused_by_the_payer(payer: CorePayer):
    delivery = await send(payer, payload_type="X12_276_Request_005010X212")
    assert isinstance(delivery, Fail) and delivery.code == "PayloadTypeNotSupported"


async def test_a_999_instead_of_a_271_is_a_fail_with_the_999_kept(payer: CorePayer):
    dest = destination(payer)
    await dest.open()
    try:
        broken = X12_270.replace(b"SE^10^", b"SE^9^")
        delivery = await dest.send(Outbound(1, "M1", "eligibility", "payer", broken,
                                            "application/edi-x12"))
    finally:
        await dest.close()
    assert isinstance(delivery, Fail), delivery
    assert "X12_999_Response_005010X231A1" in delivery.reason
    assert delivery.answer is not None and b"AK9" in delivery.answer.body


async def test_an_answer_that_is_no_envelope_is_retried(payer: CorePayer):
    payer.script.append((200, b"<html>maintenance</html>", {"Content-Type": "text/html"}))
    delivery = await send(payer)
    assert isinstance(delivery, Retry) and "not a CORE envelope" in delivery.reason


async def test_an_answer_for_another_payload_id_is_retried(payer: CorePayer):
    body, content_type = envelope({"PayloadType": "X12_271_Response_005010X279A1",
                                   "PayloadID": str(uuid.uuid4()), "ErrorCode": "Success",
                                   "Payload": b"ISA*00~"})
    payer.script.append((200, body, {"Content-Type": content_type}))
    delivery = await send(payer)
    assert isinstance(delivery, Retry) and "PayloadID" in delivery.reason


async def test_core_credentials_come_from_the_environment(payer: CorePayer, monkeypatch):
    payer.password = "pw-from-env"
    credentials = {"username": "harborside", "password_env": "CORE_TEST_PASSWORD"}
    monkeypatch.delenv("CORE_TEST_PASSWORD", raising=False)
    delivery = await send(payer, credentials=credentials)
    assert isinstance(delivery, Retry) and "CORE_TEST_PASSWORD" in delivery.reason
    assert payer.requests == 0  # nothing sent without them
    monkeypatch.setenv("CORE_TEST_PASSWORD", "pw-from-env")
    assert isinstance(await send(payer, credentials=credentials), Sent)
    assert payer.received[-1].fields["UserName"] == "harborside"
