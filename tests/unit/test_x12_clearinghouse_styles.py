"""X12 files as clearinghouses, payers and mainframes really lay them out, tried the way
a new user tries them: each file of tests/fixtures/x12/styles/ (a layout no other
fixture has: a byte-order mark, CR alone after terminators, a DOS Ctrl-Z after two
interchanges, 80-column wrapping, space-padded fixed records, control characters as
delimiters, `+` and `{` repetition separators, several groups and sets) is read, passes
strict validation, is answered as accepted and maps to the facts it holds. Broken
variants of one batch get the TA1 or 999 that names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ParseError
from engine.formats.x12 import X12Codec
from engine.formats.x12.ack import build_ta1
from engine.formats.x12.interchange import read_interchanges
from engine.formats.x12.tokens import tokenize
from engine.message import Outcome, ProblemKind, Verdict
from tests import mapping_checks as checks
from tests.mapping_checks import of_type

STYLES = Path(__file__).parents[1] / "fixtures" / "x12" / "styles"
codec = X12Codec()

# file -> the transaction types of its sets, in order
SETS = {
    "270_bom_two_sets_oneline.x12": ["270", "270"],
    "271_bang_cr_only.x12": ["271"],
    "276_277_two_interchanges_ctrlz.x12": ["276", "277"],
    "277ca_wrapped_80_columns.x12": ["277CA"],
    "278_request_control_chars.x12": ["278"],
    "278_response_pipe_plus.x12": ["278"],
    "834_fixed_80_records.x12": ["834"],
    "835_two_groups_brace_rep.x12": ["835", "835"],
    "837d_cr_terminator.x12": ["837D"],
    "837i_caret_backslash.x12": ["837I"],
    "837p_two_sets_oneline.x12": ["837P", "837P"],
    "837p_cob_optional_loops_crlf.x12": ["837P"],
    "837p_colon_elements_nel_latin1.x12": ["837P"],
    "999_partner_partial.x12": ["999"],
    "ta1_partner_only.x12": ["TA1"],
}


def mapped(ref: str, raw: bytes) -> dict:
    return json.loads(checks.run(checks.mapping(ref), raw))


def raw_of(name: str) -> bytes:
    return (STYLES / name).read_bytes()


def messages(raw: bytes) -> list[bytes]:
    envelope = codec.split(raw)
    return [raw] if envelope is None else list(envelope.messages)


def channel_answer(raw: bytes, level: str = "strict") -> bytes:
    """What a channel answers for a file: each set answered by its own outcome (an
    envelope problem refuses every set, as the channel's batch step does), gathered
    into one answer per interchange."""
    try:
        envelope = codec.split(raw)
    except ParseError:
        envelope = None
    if envelope is None:
        try:
            parsed = codec.parse(raw)
            problems = tuple(codec.validate(parsed, level))
        except ParseError as exc:
            return codec.reply(raw, None, Outcome(Verdict.REJECTED, (
                codec.problem(ProblemKind.UNREADABLE, exc.message),)))
        errors = [p for p in problems if p.severity == "E"]
        return codec.reply(raw, parsed, Outcome(
            Verdict.REJECTED if errors else Verdict.ACCEPTED, problems))
    replies = []
    for message in envelope.messages:
        if envelope.problems:
            outcome = Outcome(Verdict.REJECTED, tuple(envelope.problems))
            parsed = None
        else:
            try:
                parsed = codec.parse(message)
                problems = tuple(codec.validate(parsed, level))
                errors = [p for p in problems if p.severity == "E"]
                outcome = Outcome(Verdict.REJECTED if errors else Verdict.ACCEPTED,
                                  problems)
            except ParseError as exc:
                parsed, outcome = None, Outcome(Verdict.REJECTED, (codec.problem(
                    ProblemKind.UNREADABLE, exc.message),))
        replies.append(codec.reply(message, parsed, outcome))
    return codec.envelope_reply(envelope, replies)


def segs(reply: bytes) -> list[list[str]]:
    return [s.elements for s in tokenize(reply.decode())]


def of_id(reply: bytes, seg_id: str) -> list[list[str]]:
    return [s for s in segs(reply) if s[0] == seg_id]


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_style_reads_validates_and_is_accepted(name):
    raw = raw_of(name)
    parsed = [codec.parse(m) for m in messages(raw)]
    assert [p.message_type for p in parsed] == SETS[name]
    for one in parsed:
        assert codec.validate(one, "strict") == [], (name, one.message_type)
        for value in (one.control_id, one.sender, one.receiver):  # no layout left in
            assert not set(value) & set("\r\n \x1a\x1c\x1d\x1e\x1f"), value
    reply = channel_answer(raw)
    if SETS[name][0] in ("999", "TA1"):
        assert reply == b""  # acknowledgements are not acknowledged
        return
    assert not of_id(reply, "TA1") or all(t[4] == "A" for t in of_id(reply, "TA1"))
    assert [s[1] for s in of_id(reply, "IK5")] == ["A"] * len(SETS[name])
    assert all(s[1] == "A" for s in of_id(reply, "AK9"))
    controls = [s[13] for s in of_id(reply, "ISA")]
    assert len(controls) == len(set(controls)), "each answering interchange its own ISA13"


def test_wrapped_and_padded_files_read_as_their_unwrapped_selves():
    wrapped = read_interchanges(raw_of("277ca_wrapped_80_columns.x12").decode())[0][0]
    assert not wrapped.codes and wrapped.isa.element(10) == "1015"
    texts = [s.text() for g in wrapped.groups for t in g.sets for s in t.segments]
    assert "NM1*QC*1*JONES*MARY****MI*111111111" in texts
    padded = read_interchanges(raw_of("834_fixed_80_records.x12").decode())[0][0]
    ids = [s.id for g in padded.groups for t in g.sets for s in t.segments]
    assert ids[:3] == ["ST", "BGN", "REF"] and all(i == i.strip() for i in ids)


def test_a_terminator_beyond_ascii_splits_latin_1_and_utf_8_files_alike():
    latin = raw_of("837p_colon_elements_nel_latin1.x12")
    utf8 = latin.decode("latin-1").encode("utf-8")  # the NEL is two bytes here
    for raw in (latin, utf8):
        ic = read_interchanges(raw.decode("utf-8", "replace") if raw is utf8
                               else raw.decode("latin-1"))[0][0]
        assert not ic.codes and ic.iea is not None
        envelope = codec.split(raw + raw)  # several sets: the byte-span path
        assert envelope is not None and not envelope.problems
        assert [codec.parse(m).patient_id for m in envelope.messages] == ["000221111A"] * 2
    bundle = mapped("x12-837-to-fhir@1", latin)
    assert of_type(bundle, "Patient")[0]["name"][0]["family"] == "MULLER"


def test_ctrl_z_after_the_last_interchange_is_the_end_of_the_file():
    raw = raw_of("276_277_two_interchanges_ctrlz.x12")
    assert raw.endswith(b"\x1a")
    reply = channel_answer(raw)
    assert [s[2] for s in of_id(reply, "AK1")] == ["501", "9501"]


def test_the_styles_map_to_the_facts_they_hold():
    bundle = mapped("x12-271-to-fhir@1", raw_of("271_bang_cr_only.x12"))
    response = of_type(bundle, "CoverageEligibilityResponse")[0]
    benefits = [(b["type"]["coding"][0]["code"], b.get("allowedMoney", {}).get("value"))
                for item in response["insurance"][0]["item"] for b in item["benefit"]]
    assert ("copay", 25) in benefits and ("deductible", 1500) in benefits

    bundle = mapped("x12-835-to-fhir@1", messages(raw_of("835_two_groups_brace_rep.x12"))[0])
    eobs = of_type(bundle, "ExplanationOfBenefit")
    assert [e["claim"]["identifier"]["value"] for e in eobs] == [
        "CLAIM-A1", "CLAIM-A2", "CLAIM-A3"]
    line = eobs[0]["item"][1]
    reasons = [a.get("reason", {}).get("coding", [{}])[0].get("code")
               for a in line["adjudication"]]
    assert "45" in reasons and "N130" in reasons and "M86" in reasons
    payment = of_type(bundle, "PaymentReconciliation")[0]
    assert payment["paymentAmount"]["value"] == 301

    bundle = mapped("x12-834-to-fhir@1", raw_of("834_fixed_80_records.x12"))
    assert len(of_type(bundle, "Patient")) == 3
    ended = [c for c in of_type(bundle, "Coverage") if c["status"] == "cancelled"]
    assert [c["period"]["end"] for c in ended] == ["2026-12-31"]

    bundle = mapped("x12-837-to-fhir@1", messages(raw_of("837p_two_sets_oneline.x12"))[0])
    assert [c["identifier"][0]["value"] for c in of_type(bundle, "Claim")] == [
        "26463774", "26463775", "26463776"]
    bundle = mapped("x12-837-to-fhir@1", raw_of("837i_caret_backslash.x12"))
    claim = of_type(bundle, "Claim")[0]
    assert [i["revenue"]["coding"][0]["code"] for i in claim["item"]] == ["0305", "0730"]
    bundle = mapped("x12-837-to-fhir@1", raw_of("837d_cr_terminator.x12"))
    teeth = [i["bodySite"]["coding"][0]["code"] for i in of_type(bundle, "Claim")[0]["item"]]
    assert teeth == ["3", "30"]


def test_a_claim_to_the_secondary_payer_lists_the_primary_first():
    bundle = mapped("x12-837-to-fhir@1", raw_of("837p_cob_optional_loops_crlf.x12"))
    coverages = {e["fullUrl"]: e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "Coverage"}
    claim = of_type(bundle, "Claim")[0]
    listed = [(i["sequence"], i["focal"], coverages[i["coverage"]["reference"]]["subscriberId"])
              for i in claim["insurance"]]
    assert listed == [(1, False, "PRIM555001"), (2, True, "000221111A")]
    assert claim["insurance"][1]["preAuthRef"] == ["PA998877"]
    assert claim["related"][0]["claim"]["identifier"]["value"] == "ORIGCLAIM0001"


# -- broken variants of one batch ---------------------------------------------------------

BATCH = raw_of("837p_two_sets_oneline.x12").decode()


def test_what_follows_the_last_iea_and_is_no_interchange_gets_a_ta1():
    reply = channel_answer((BATCH + "\nEND OF FILE\n").encode())
    assert [t[4:6] for t in of_id(reply, "TA1")] == [["R", "024"]]
    assert not of_id(reply, "IK5")


def test_a_broken_second_interchange_refuses_the_file_with_valid_codes():
    second = BATCH.replace("000000021", "000000022")[:700]
    reply = channel_answer((BATCH + "\n" + second).encode())
    ik5 = of_id(reply, "IK5")
    assert ik5 == [["IK5", "R", "5"], ["IK5", "R", "5"]]  # never a code without one
    assert [t[4:6] for t in of_id(reply, "TA1")] == [["R", "023"]]
    controls = [s[13] for s in of_id(reply, "ISA")]
    assert len(controls) == 2 and controls[0] != controls[1]


def test_a_batch_keeps_each_sets_ik3_and_ik4_in_its_999():
    broken = BATCH.replace("HL*3*1*22*1", "HL*3*9*22*1", 1)  # the second claim's parent
    reply = channel_answer(broken.encode(), level="lenient")
    assert of_id(reply, "IK3")[0] == ["IK3", "HL", "43", "2000", "8"]
    assert of_id(reply, "IK4")[0] == ["IK4", "2", "", "7"]
    assert [s[1:] for s in of_id(reply, "IK5")] == [["E", "5"], ["A"]]
    reply = channel_answer(broken.encode())
    assert [s[1:] for s in of_id(reply, "IK5")] == [["R", "5"], ["A"]]
    assert of_id(reply, "AK9")[0][1] == "P"


def test_a_group_whose_trailer_lies_gives_no_set_a_wrong_ik502():
    reply = channel_answer(BATCH.replace("GE*2*21~", "GE*2*12~").encode())
    assert [s[1:] for s in of_id(reply, "IK5")] == [["R", "5"], ["R", "5"]]
    assert of_id(reply, "AK9")[0][1:] == ["R", "2", "2", "0", "4"]


def test_answers_made_in_one_millisecond_have_their_own_control_numbers():
    interchange = read_interchanges(BATCH)[0][0]
    numbers = {segs(build_ta1(interchange, "R", "024").encode())[0][13] for _ in range(50)}
    assert len(numbers) == 50


def test_a_repetition_separator_that_is_another_delimiter_refuses_the_interchange():
    raw = BATCH.replace("*^*00501*", "*:*00501*", 1).encode()  # ISA11 = ISA16
    reply = channel_answer(raw)
    assert [t[4:6] for t in of_id(reply, "TA1")] == [["R", "022"]]
    assert not of_id(reply, "IK5")


def test_a_space_is_no_segment_terminator():
    with pytest.raises(ParseError) as caught:
        codec.parse(BATCH.replace("~", " ").encode())
    assert caught.value.code == "004"


@pytest.mark.parametrize(("change", "note"), [
    (("000000021", "ABCDEFGHI"), "018"),  # ISA13 and IEA02 alike, of the right width
    (("*261204*1015*^", "*261399*1015*^"), "014"),
    (("*261204*1015*^", "*261204*2599*^"), "015"),
    (("*0*P*:~", "*7*P*:~"), "019"),
    (("*0*P*:~", "*0*Q*:~"), "020"),
])
def test_isa_values_of_the_right_width_that_cannot_be_right_get_a_ta1(change, note):
    reply = channel_answer(BATCH.replace(*change).encode())
    assert [t[4:6] for t in of_id(reply, "TA1")] == [["R", note]]


def test_a_set_control_number_repeated_in_its_group_is_refused_alone():
    text = BATCH.replace("*0022*", "*0021*").replace("SE*58*0022", "SE*58*0021")
    reply = channel_answer(text.encode())
    assert [s[1:] for s in of_id(reply, "IK5")] == [["A"], ["R", "23"]]
    assert of_id(reply, "AK9")[0][1] == "P"


def test_a_group_control_number_that_is_not_digits_refuses_the_group():
    text = BATCH.replace("*1015*21*X*", "*1015*2A*X*").replace("GE*2*21~", "GE*2*2A~")
    reply = channel_answer(text.encode())
    assert of_id(reply, "AK9")[0][1:] == ["R", "2", "2", "0", "6"]


def test_a_set_without_st01_is_named_by_its_group_in_the_999():
    reply = channel_answer(BATCH.replace("ST*837*0022*", "ST**0022*").encode())
    assert [s[1:3] for s in of_id(reply, "AK2")] == [["837", "0021"], ["837", "0022"]]
    assert [s[1:] for s in of_id(reply, "IK5")] == [["A"], ["R", "6"]]


@pytest.mark.parametrize(("broken", "note"), [
    (BATCH.replace("*P*:~", "*P*::", 1), "004"),  # terminator = component separator
    (BATCH.replace("*", "A"), "026"),  # a letter as element separator
])
def test_an_isa_with_unusable_delimiters_is_still_answered_with_a_ta1(broken, note):
    reply = channel_answer(broken.encode())
    assert [t[1:] for t in of_id(reply, "TA1")] == [["000000021", "261204", "1015", "R", note]]
    assert [(s[6].strip(), s[8].strip()) for s in of_id(reply, "ISA")] == [
        ("66783JJT", "TGJ23")]
