"""engine/pipeline/respond.py: the caller's answer is the destination's answer to its own
message, mapped; an answer that comes while the message is still being committed is not
lost; nothing to wait for when the message was not taken on; a timeout, a refusal and
an answer the mapping cannot read each say so; "responded" is audited once written."""

from __future__ import annotations

import asyncio

from engine.config.respond import RespondConfig
from engine.config.types import Duration
from engine.errors import MappingError, ParseError
from engine.events import Kind
from engine.mapping_base import Mapping
from engine.message import (
    Answer,
    Fail,
    MessageStatus,
    Parsed,
    Receipt,
    Sent,
)
from engine.pipeline.respond import Responder
from engine.store.writer import UnitOfWork


class FakeWriter:
    def __init__(self) -> None:
        self.submitted: list[UnitOfWork] = []

    def submit(self, uow: UnitOfWork) -> asyncio.Future:
        self.submitted.append(uow)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def read(raw: bytes) -> Parsed:
    if not raw.startswith(b"ANSWER"):
        raise ParseError("not an answer", segment="ISA", code="024")
    return Parsed("test", body=raw.decode().split(":", 1)[1])


def to_json(body: str) -> dict:
    if body == "boom":
        raise MappingError("no benefit segment", field="EB")
    return {"resourceType": "CoverageEligibilityResponse", "outcome": body}


MAPPING = Mapping("answer-to-json", 1, "test", "application/fhir+json", to_json)


def responder(writer: FakeWriter, timeout: float = 1.0) -> Responder:
    config = RespondConfig(destination="payer", timeout=Duration(timeout),
                           mapping="answer-to-json@1")
    return Responder("elig", config, mapping=MAPPING, read=read,
                     writer=writer)  # type: ignore[arg-type]


async def committed(receipt: Receipt, meanwhile=None) -> Receipt:
    if meanwhile is not None:
        meanwhile()  # the worker answers while the commit is still under way
    await asyncio.sleep(0)
    return receipt


def accepted(message_id: str = "M1") -> Receipt:
    return Receipt(message_id, MessageStatus.ACCEPTED, replies=(b"ACK",))


async def test_the_caller_gets_its_own_messages_answer_mapped():
    writer = FakeWriter()
    step = responder(writer)
    waiting = [asyncio.ensure_future(step.answer(mid, committed(accepted(mid))))
               for mid in ("M1", "M2")]
    await asyncio.sleep(0.01)
    assert step.waiting == 2
    step.delivered("M2", Sent("200", Answer(b"ANSWER:two", "application/edi-x12")), "", None)
    step.delivered("M1", Sent("200", Answer(b"ANSWER:one", "application/edi-x12")), "", None)
    step.delivered("M9", Sent("200"), "", None)  # nobody waits for it: nothing happens
    one, two = await asyncio.gather(*waiting)
    assert one.response is not None and two.response is not None
    assert one.response.outcome == "answered"
    assert one.response.content_type == "application/fhir+json"
    assert b'"outcome":"one"' in one.response.body and b'"outcome":"two"' in two.response.body
    assert step.waiting == 0
    one.replied()
    [uow] = writer.submitted
    [event] = uow.events
    assert event.kind is Kind.RESPONDED and event.message_id == "M1"
    assert event.detail == {"outcome": "answered", "code": "200", "mapping": "answer-to-json@1"}
    assert event.content_hash


async def test_an_answer_during_the_commit_is_not_lost():
    step = responder(FakeWriter())
    answer = Sent("200", Answer(b"ANSWER:early"))
    receipt = await step.answer("M1", committed(
        accepted(), lambda: step.delivered("M1", answer, "", None)))
    assert receipt.response is not None and receipt.response.outcome == "answered"


async def test_a_message_not_taken_on_keeps_its_usual_answer():
    step = responder(FakeWriter())
    rejected = Receipt("M1", MessageStatus.REJECTED, replies=(b"NAK",))
    receipt = await step.answer("M1", committed(rejected))
    assert receipt is rejected and receipt.response is None
    assert step.waiting == 0


async def test_no_answer_in_time_is_a_timeout_that_says_the_message_stays_queued():
    step = responder(FakeWriter(), timeout=0.05)
    receipt = await step.answer("M1", committed(accepted()))
    assert receipt.response is not None and receipt.response.outcome == "timeout"
    assert "stays queued" in receipt.response.reason and "M1" in receipt.response.reason
    assert step.waiting == 0


async def test_the_answer_waits_for_its_own_commit():
    step = responder(FakeWriter(), timeout=0.2)
    stored: asyncio.Future = asyncio.get_running_loop().create_future()
    receipt_task = asyncio.ensure_future(step.answer("M1", committed(accepted())))
    await asyncio.sleep(0.01)
    step.delivered("M1", Sent("200", Answer(b"ANSWER:x")), "", stored)
    await asyncio.sleep(0.05)
    assert not receipt_task.done()  # not before the answer is on record
    stored.set_result(None)
    receipt = await receipt_task
    assert receipt.response is not None and receipt.response.outcome == "answered"


async def test_a_refusal_and_an_unreadable_answer_each_say_so():
    step = responder(FakeWriter())
    refused = asyncio.ensure_future(step.answer("M1", committed(accepted("M1"))))
    garbled = asyncio.ensure_future(step.answer("M2", committed(accepted("M2"))))
    unmappable = asyncio.ensure_future(step.answer("M3", committed(accepted("M3"))))
    await asyncio.sleep(0.01)
    step.delivered("M1", Fail("CORE ErrorCode SenderNotAuthorized", "SenderNotAuthorized"),
                   "CORE ErrorCode SenderNotAuthorized", None)
    step.delivered("M2", Sent("200", Answer(b"<html>")), "", None)
    step.delivered("M3", Sent("200", Answer(b"ANSWER:boom")), "", None)
    first, second, third = [r.response for r in await asyncio.gather(
        refused, garbled, unmappable)]
    assert first is not None and first.outcome == "refused"
    assert first.code == "SenderNotAuthorized" and "SenderNotAuthorized" in first.reason
    assert second is not None and second.outcome == "bad-answer"
    assert third is not None and third.outcome == "bad-answer"
    assert "answer-to-json@1" in third.reason and "EB" in third.reason
