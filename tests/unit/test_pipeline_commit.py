"""engine/pipeline/commit.py: answered only after the durable commit; a store that cannot
take the message answers with the codec's error so the sender resends; workers woken for
an accepted message only; "acknowledged" recorded once the reply is written."""

from __future__ import annotations

import asyncio

from engine.events import Kind
from engine.formats.hl7v2 import Hl7v2Codec
from engine.message import MessageStatus, Parsed, Problem
from engine.ops import tracing
from engine.pipeline.commit import Committer, Taking
from engine.store.writer import UnitOfWork

ADT = (b"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|C1|P|2.5\r"
       b"PID|1||X-MRN^^^NORTH^MR||DOE^JANE\r")


class FakeWriter:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.committed: list[UnitOfWork] = []
        self.submitted: list[UnitOfWork] = []

    async def commit(self, uow: UnitOfWork) -> None:
        if self.fail:
            raise OSError("disk full")
        self.committed.append(uow)

    def submit(self, uow: UnitOfWork) -> asyncio.Future:
        self.submitted.append(uow)
        return asyncio.get_running_loop().create_future()


def taking(status: MessageStatus, problems: tuple[Problem, ...] = ()) -> Taking:
    codec = Hl7v2Codec()
    hop = {"channel": "adt", "message_id": "M1", "peer": "p", "patient": None}
    return Taking(ADT, codec.parse(ADT), UnitOfWork(), hop, status, problems, (),
                  tracing.OFF)


def committer(writer: FakeWriter) -> tuple[Committer, list, list]:
    forgotten: list[tuple[Parsed | None, str]] = []
    notified: list[MessageStatus] = []
    step = Committer("adt", Hl7v2Codec(), writer,  # type: ignore[arg-type]
                     lambda parsed, mid: forgotten.append((parsed, mid)), notified.append)
    return step, forgotten, notified


async def test_committed_then_answered_and_acknowledged_when_replied():
    writer = FakeWriter()
    step, forgotten, notified = committer(writer)
    taken = taking(MessageStatus.ACCEPTED)
    receipt, own = await step.commit_part(taken)
    assert writer.committed == [taken.uow]
    assert (receipt.message_id, receipt.status) == ("M1", MessageStatus.ACCEPTED)
    assert b"MSA|AA|C1" in receipt.replies[0] and b"MSA|AA|C1" in own
    assert forgotten == [(taken.parsed, "M1")] and notified == [MessageStatus.ACCEPTED]
    receipt.replied()
    [ack] = writer.submitted
    assert [(e.kind, e.detail) for e in ack.events] == [(Kind.ACKNOWLEDGED,
                                                         {"verdict": "accepted"})]


async def test_an_errored_message_is_answered_with_its_problems():
    step, _, notified = committer(FakeWriter())
    receipt = await step.commit(taking(MessageStatus.ERROR, (Problem("mapping"),)))
    assert receipt.status is MessageStatus.ERROR and b"MSA|AE|C1" in receipt.replies[0]
    assert receipt.problems == (Problem("mapping"),)
    assert notified == [MessageStatus.ERROR]  # the channel wakes workers on accepted only


async def test_a_commit_of_the_whole_given_is_waited_for_instead():
    writer = FakeWriter()
    step, _, _ = committer(writer)
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    receipt = await step.commit(taking(MessageStatus.ACCEPTED), done)
    assert writer.committed == [] and receipt.status is MessageStatus.ACCEPTED


async def test_a_store_that_fails_answers_an_error_so_the_sender_resends(caplog):
    step, forgotten, notified = committer(FakeWriter(fail=True))
    receipt, own = await step.commit_part(taking(MessageStatus.ACCEPTED))
    assert (receipt.message_id, receipt.status) == ("", MessageStatus.ERROR)
    assert [p.text for p in receipt.problems] == [
        "the engine could not store the message; send it again"]
    assert b"MSA|AE|C1" in receipt.replies[0] and b"MSA|AE|C1" in own
    assert [mid for _, mid in forgotten] == ["M1"] and notified == []
    assert "disk full" in caplog.text
