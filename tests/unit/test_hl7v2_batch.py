"""HL7v2 batches: splitting FHS/BHS...BTS/FTS into messages, counts, and batch ACKs."""

import pytest

from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.formats.hl7v2.charsets import decode_text
from engine.message import Outcome, Problem, Verdict

codec = Hl7v2Codec()


def _msg(control_id: str, extra: str = "") -> str:
    return (f"MSH|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT^A01|{control_id}|P|2.5{extra}\r"
            f"PID|1||{control_id}-MRN^^^NORTH^MR\r")


FILE = (
    "FHS|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||FILE.HL7|nightly|F001\r"
    "BHS|^~\\&|LAB|NORTH|EHR|SOUTH|20240102||ADT|first|B001\r"
    + _msg("M1") + _msg("M2") +
    "BTS|2\rFTS|1\r"
)


def _answer(raw: bytes, verdicts: dict[str, Verdict] | None = None, **kwargs) -> str:
    batch = codec.split_batch(raw)
    assert batch is not None
    replies = []
    for message in batch.messages:
        parsed = codec.parse(message)
        verdict = (verdicts or {}).get(parsed.control_id, Verdict.ACCEPTED)
        problems = (Problem("bad"),) if verdict is not Verdict.ACCEPTED else ()
        replies.append(codec.reply(message, parsed, Outcome(verdict, problems)))
    return decode_text(codec.batch_reply(batch, replies, **kwargs))


def _segments(text: str) -> list[str]:
    return [line for line in text.split("\r") if line]


def test_a_batch_file_splits_into_its_messages_and_keeps_header_facts():
    batch = codec.split_batch(FILE.encode())
    assert batch is not None and not batch.problems
    assert batch.file_header is not None
    assert (batch.file_header.control_id, batch.file_header.name) == ("F001", "FILE.HL7")
    assert batch.file_header.sending_application == "LAB"
    assert batch.file_header.receiving_facility == "SOUTH"
    [group] = batch.groups
    assert group.header is not None and group.header.control_id == "B001"
    assert group.header.comment == "first"
    assert group.declared_count == 2
    assert batch.messages == [_msg("M1").encode(), _msg("M2").encode()]
    assert [codec.parse(m).control_id for m in batch.messages] == ["M1", "M2"]


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_a_single_message_is_not_a_batch(ending):
    assert codec.split_batch(_msg("M1").replace("\r", ending).encode()) is None
    assert codec.split_batch(b"") is None
    assert codec.split_batch(b"not hl7 at all") is None


def test_several_messages_without_envelope_are_a_batch_without_headers():
    batch = codec.split_batch((_msg("M1") + "\n" + _msg("M2")).replace("\r", "\n").encode())
    assert batch is not None and batch.file_header is None
    assert [g.header for g in batch.groups] == [None]
    assert [codec.parse(m).control_id for m in batch.messages] == ["M1", "M2"]
    assert all(b"\n" not in m for m in batch.messages)


def test_a_file_of_several_batches_keeps_them_apart():
    text = ("FHS|^~\\&|||||||||F9\rBHS|^~\\&|||||||||B1\r" + _msg("M1") + "BTS|1\r"
            "BHS|^~\\&|||||||||B2\r" + _msg("M2") + _msg("M3") + "BTS|2\rFTS|2\r")
    batch = codec.split_batch(text.encode())
    assert batch is not None and not batch.problems
    assert [g.header.control_id for g in batch.groups if g.header] == ["B1", "B2"]
    assert [len(g.messages) for g in batch.groups] == [1, 2]
    assert batch.declared_batches == 2


def test_counts_that_disagree_are_problems():
    text = FILE.replace("BTS|2", "BTS|3").replace("FTS|1", "FTS|2")
    batch = codec.split_batch(text.encode())
    assert batch is not None
    [bts, fts] = batch.problems
    assert (bts.segment, bts.field, bts.code) == ("BTS", 1, "100")
    assert "declares 3" in bts.text and "holds 2" in bts.text
    assert (fts.segment, fts.field) == ("FTS", 1)


def test_a_count_that_is_not_a_number_is_a_problem():
    batch = codec.split_batch(FILE.replace("BTS|2", "BTS|two").encode())
    assert batch is not None
    assert [(p.segment, p.field, p.code) for p in batch.problems] == [("BTS", 1, "102")]


def test_segments_outside_any_message_are_problems():
    batch = codec.split_batch(("BHS|^~\\&\rNTE|stray\r" + _msg("M1") + "BTS|1\r").encode())
    assert batch is not None
    assert [p.segment for p in batch.problems] == ["NTE"]
    assert len(batch.messages) == 1


def test_the_batch_ack_is_a_batch_answering_the_original():
    text = _answer(FILE.encode())
    segs = _segments(text)
    assert [s[:3] for s in segs] == ["FHS", "BHS", "MSH", "MSA", "MSH", "MSA", "BTS", "FTS"]
    again = codec.split_batch(text.encode())
    assert again is not None and not again.problems
    fhs, bhs = again.file_header, again.groups[0].header
    assert fhs is not None and bhs is not None
    assert fhs.reference_control_id == "F001" and bhs.reference_control_id == "B001"
    assert fhs.control_id and fhs.control_id != "F001"
    assert bhs.control_id and bhs.control_id != "B001"
    assert (bhs.sending_application, bhs.sending_facility) == ("EHR", "SOUTH")
    assert (bhs.receiving_application, bhs.receiving_facility) == ("LAB", "NORTH")
    assert again.groups[0].declared_count == 2 and again.declared_batches == 1
    acks = [Hl7Message.parse(decode_text(m)) for m in again.messages]
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("AA", "M1"), ("AA", "M2")]


def test_errors_only_leaves_out_accepted_messages():
    text = _answer(FILE.encode(), {"M2": Verdict.ERROR}, errors_only=True)
    again = codec.split_batch(text.encode())
    assert again is not None
    assert [Hl7Message.parse(decode_text(m)).value("MSA-2") for m in again.messages] == ["M2"]
    assert again.groups[0].declared_count == 1


def test_an_empty_ack_batch_means_all_were_accepted():
    text = _answer(FILE.encode(), errors_only=True)
    assert [s[:3] for s in _segments(text)] == ["FHS", "BHS", "BTS", "FTS"]
    assert "BTS|0" in text


def test_enhanced_mode_messages_choose_their_own_acks():
    raw = FILE.replace("P|2.5\r", "P|2.5|||ER|NE\r").encode()
    text = _answer(raw, {"M1": Verdict.REJECTED})
    again = codec.split_batch(text.encode())
    assert again is not None
    acks = [Hl7Message.parse(decode_text(m)) for m in again.messages]
    assert [(a.value("MSA-1"), a.value("MSA-2")) for a in acks] == [("CR", "M1")]


def test_a_batch_without_headers_still_gets_bhs_and_bts():
    text = _answer((_msg("M1") + _msg("M2")).encode())
    segs = _segments(text)
    assert segs[0].startswith("BHS|^~\\&|EHR|SOUTH|LAB|NORTH|")
    assert segs[-1] == "BTS|2"


def test_envelope_problems_are_reported_in_the_reply_header():
    raw = FILE.replace("BTS|2", "BTS|5").encode()
    batch = codec.split_batch(raw)
    assert batch is not None
    rejected = Outcome(Verdict.REJECTED, tuple(batch.problems))
    replies = [codec.reply(m, codec.parse(m), rejected) for m in batch.messages]
    again = codec.split_batch(codec.batch_reply(batch, replies))
    assert again is not None and again.groups[0].header is not None
    assert "BTS-1 declares 5" in again.groups[0].header.comment
    assert {Hl7Message.parse(decode_text(m)).value("MSA-1") for m in again.messages} == {"AR"}


def test_replies_must_line_up_with_the_messages():
    batch = codec.split_batch(FILE.encode())
    assert batch is not None
    with pytest.raises(ValueError, match="1 replies for a batch of 2"):
        codec.batch_reply(batch, [b""])


def test_utf16_batches_split_into_utf16_messages():
    text = FILE.replace("P|2.5\r", "P|2.5||||||UNICODE UTF-16\r").replace("M1-MRN", "Zoë")
    batch = codec.split_batch(text.encode("utf-16"))
    assert batch is not None and not batch.problems
    parsed = [codec.parse(m) for m in batch.messages]
    assert [p.patient_id for p in parsed] == ["Zoë", "M2-MRN"]
    replies = [codec.reply(m, p, Outcome(Verdict.ACCEPTED))
               for m, p in zip(batch.messages, parsed, strict=True)]
    answer = codec.batch_reply(batch, replies)
    assert answer.startswith(b"\xff\xfe")  # answered in the set the messages declare
    again = codec.split_batch(answer)
    assert again is not None and len(again.messages) == 2


def test_header_text_is_read_in_the_messages_character_set():
    text = FILE.replace("BHS|^~\\&|LAB", "BHS|^~\\&|LABÖ").replace(
        "P|2.5\r", "P|2.5||||||8859/1\r")
    batch = codec.split_batch(text.encode("latin-1"))
    assert batch is not None and batch.groups[0].header is not None
    assert batch.groups[0].header.sending_application == "LABÖ"
    assert batch.messages[0] == _msg("M1", "||||||8859/1").encode("latin-1")
