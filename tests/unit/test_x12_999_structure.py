"""The 999's structure (005010X231A1): the engine's own 999s, for good and bad 837s and
270s, read back by the codec without a structure issue and with their loops where a
reader looks for them (2000 per set, 2100 per segment in error, 2110 per element);
partners' 999s in other clearinghouse styles (CTX segments, several sets, partial
acceptance) read the same way; a 999 that breaks its own rules is reported; TA1s, which
stand outside any set, are read and never answered."""

from __future__ import annotations

import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12.message import X12Message
from engine.message import Fail, Outbound, Outcome, Retry, Sent, Verdict
from tests.unit.test_x12_codec import CLAIM_837P, ELIGIBILITY_270, one, style

codec = X12Codec()
SENT = Outbound(1, "m1", "c", "d", b"", "application/edi-x12",
                control_id="000000101-1-0001")


def read_999(raw: bytes) -> X12Message:
    parsed = codec.parse(raw)
    assert parsed.message_type == "999"
    assert isinstance(parsed.body, X12Message)
    return parsed.body


def engine_999(raw: bytes, level: str = "strict") -> bytes:
    """What the engine answers for `raw`, as a channel would: the set's structure
    problems make it rejected (strict)."""
    parsed = codec.parse(raw)
    problems = tuple(codec.validate(parsed, level))
    outcome = Outcome(Verdict.REJECTED, problems) if problems else Outcome(Verdict.ACCEPTED)
    return codec.reply(raw, parsed, outcome)


# ---- the engine's own 999s ------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "body"), [("270", ELIGIBILITY_270), ("837", CLAIM_837P)])
def test_the_engine_999_for_a_good_set_reads_clean(kind: str, body: list[str]) -> None:
    raw = one(kind, body).encode()
    answer = read_999(codec.reply(raw, codec.parse(raw), Outcome(Verdict.ACCEPTED)))
    assert answer.issues == []
    tree = answer.tree
    assert tree is not None
    (response,) = tree.all("2000")
    assert response.value("AK201") == kind and response.value("IK501") == "A"
    assert tree.value("AK901") == "A" and tree.value("AK101") in ("HS", "HC")


def test_the_engine_999_for_a_bad_270_nests_its_notes_and_reads_clean() -> None:
    body = [s for s in ELIGIBILITY_270 if not s.startswith("NM1*IL")]
    body[0] = body[0].replace("*13*", "*99*")  # BHT02 outside the 270's codes
    answer = read_999(engine_999(one("270", body).encode()))
    assert answer.issues == []
    (response,) = answer.tree.all("2000")
    assert response.value("IK501") == "R"
    notes = response.kids("2100")
    assert {n.value("IK301") for n in notes} >= {"BHT", "NM1"}
    bht = next(n for n in notes if n.value("IK301") == "BHT")
    (element,) = bht.kids("2110")
    assert element.value("IK401") == "2" and element.value("IK403") == "7"
    missing = next(n for n in notes if n.value("IK301") == "NM1")
    assert missing.value("IK304") == "3" and missing.kids("2110") == []
    assert answer.tree.value("AK901") == "R"


def test_a_segment_with_several_bad_elements_is_one_ik3_with_an_ik4_each() -> None:
    """Strict validation (our checks and pyx12's) finds SV102, SV103, DMG02 and DMG03
    one by one; the 999 names each segment once, in the set's order, its elements
    beneath it."""
    body = [s.replace("SV1*HC:99213*100*UN*", "SV1*HC:99213*1O0*XX*") for s in CLAIM_837P]
    body.insert(8, "DMG*D8*19801301*X")  # the subscriber's, after NM1*IL
    raw = engine_999(one("837", body).encode())
    answer = read_999(raw)
    assert answer.issues == []
    notes = answer.tree.all("2100")
    named = [(n.value("IK301"), n.value("IK302")) for n in notes]
    assert len(named) == len(set(named))  # no segment named twice
    assert [int(position) for _, position in named] == sorted(int(p) for _, p in named)
    by_segment = {n.value("IK301"): n for n in notes}
    assert [(k.value("IK401"), k.value("IK403")) for k in by_segment["SV1"].kids("2110")
            ] == [("2", "6"), ("3", "7")]
    assert [(k.value("IK401"), k.value("IK403")) for k in by_segment["DMG"].kids("2110")
            ] == [("2", "8"), ("3", "7")]
    assert by_segment["SV1"].value("IK304") == by_segment["DMG"].value("IK304") == "8"


def test_the_engine_999_for_a_bad_837_envelope_reads_clean() -> None:
    raw = one("837", CLAIM_837P).replace("SE*16*0001", "SE*99*0001").encode()
    answer = read_999(codec.reply(raw, None, Outcome(Verdict.REJECTED)))
    assert answer.issues == []
    (response,) = answer.tree.all("2000")
    assert response.value("IK501") == "R" and response.value("IK502") == "4"


@pytest.mark.parametrize("name", ["pipe", "caret-crlf", "bang-newline"])
def test_the_engine_answers_in_the_senders_style_and_reads_its_own_999(name: str) -> None:
    delimiters = {"pipe": ("|", "}", "^", "~", ""), "caret-crlf": ("^", "{", ":", "~", "\r\n"),
                  "bang-newline": ("!", "{", "\\", "'", "\n")}[name]
    raw = style(one("270", [s.replace("*13*", "*99*") if s.startswith("BHT") else s
                            for s in ELIGIBILITY_270]), *delimiters)
    answer = read_999(engine_999(raw, "lenient"))
    assert answer.delimiters.element == delimiters[0]
    assert answer.issues == []
    assert answer.tree.first("2110") is not None  # the BHT02 note, even accepted


# ---- partners' 999s -------------------------------------------------------------------------


def partner(body: list[str], element: str = "*", component: str = ":", terminator: str = "~",
            newline: str = "", repetition: str = "^") -> bytes:
    """A partner's 999 interchange in its own style; body in * : notation."""
    segments = ["ST*999*0001*005010X231A1", *body]
    segments.append(f"SE*{len(segments) + 1}*0001")
    isa = ("ISA*00*          *00*          *ZZ*ACMECLEARING   *ZZ*NORTHWIND      *260302*"
           f"0810*{repetition}*00501*000004012*0*P*{component}")
    text = [isa, "GS*FA*ACMECLEARING*NORTHWIND*20260302*0810*4012*X*005010X231A1",
            *segments, "GE*1*4012", "IEA*1*000004012"]
    out = []
    for seg in text:
        if seg.startswith("ISA"):
            out.append(seg.replace("*", element))
        else:
            out.append(seg.replace("*", element).replace(":", component))
    return ((terminator + newline).join(out) + terminator + newline).encode()


REJECTED_WITH_CONTEXT = [
    "AK1*HC*101*005010X222A1", "AK2*837*0001*005010X222A1",
    "IK3*NM1*8*2010BA*8", "CTX*CLM01:PATCTL55120", "IK4*9*67*7*ZZ99",
    "CTX*SITUATIONAL TRIGGER*NM1*8**8",
    "IK3*REF*12*2300*3", "IK5*R*5", "AK9*R*1*1*0"]
PARTIAL_TWO_SETS = [
    "AK1*HC*77*005010X222A1", "AK2*837*0001*005010X222A1", "IK5*A",
    "AK2*837*0002*005010X222A1", "IK3*SV1*14*2400*8", "IK4*2**1", "IK5*R*5",
    "AK9*P*2*2*1"]
ACCEPTED_WITH_ERRORS = [
    "AK1*HS*9*005010X279A1", "AK2*270*0001*005010X279A1", "IK3*DTP*11*2100C*2", "IK5*E*5",
    "AK9*E*1*1*1"]


@pytest.mark.parametrize(("body", "style_"), [
    (REJECTED_WITH_CONTEXT, {}),
    (REJECTED_WITH_CONTEXT, {"element": "|", "component": ">", "newline": "\n"}),
    (PARTIAL_TWO_SETS, {"element": "^", "repetition": "{", "newline": "\r\n"}),
    (ACCEPTED_WITH_ERRORS, {"element": "!", "component": "\\", "terminator": "'"}),
])
def test_partner_999s_in_other_styles_read_without_structure_issues(body, style_) -> None:
    answer = read_999(partner(body, **style_))
    assert answer.issues == []
    sets = answer.tree.all("2000")
    assert len(sets) == sum(1 for s in body if s.startswith("AK2"))
    notes = answer.tree.all("2100")
    assert len(notes) == sum(1 for s in body if s.startswith("IK3"))


def test_context_segments_stay_with_their_segment_and_element_notes() -> None:
    answer = read_999(partner(REJECTED_WITH_CONTEXT, element="|", component=">"))
    first = answer.tree.all("2100")[0]
    assert [s.id for s in first.segments] == ["IK3", "CTX"]
    (element,) = first.kids("2110")
    assert [s.id for s in element.segments] == ["IK4", "CTX"]
    assert element.value("IK404") == "ZZ99"


@pytest.mark.parametrize(("body", "verdict"), [
    (REJECTED_WITH_CONTEXT, Fail), (ACCEPTED_WITH_ERRORS, Sent)])
def test_partner_999s_decide_what_was_sent(body, verdict) -> None:
    raw = partner(body, element="|")
    assert isinstance(codec.read_reply(raw, SENT), verdict)


def test_a_partner_999_that_breaks_its_own_rules_is_reported() -> None:
    odd = ["AK1*HC*5*005010X222A1", "AK2*837*0001", "IK5*Q", "AK9*A*1*1*1"]
    problems = {(i.segment, i.code, i.element_code) for i in read_999(partner(odd)).issues}
    assert ("IK5", "8", "7") in problems  # IK501 Q is no acknowledgment code
    no_trailer = ["AK1*HC*5*005010X222A1", "AK2*837*0001", "IK5*A"]
    assert ("AK9", "3") in {(i.segment, i.code) for i in read_999(partner(no_trailer)).issues}
    assert isinstance(codec.read_reply(partner(no_trailer), SENT), Sent)


# ---- TA1 ------------------------------------------------------------------------------------


def ta1(code: str, note: str, element: str = "*", newline: str = "") -> bytes:
    repetition = "{" if element == "^" else "^"
    parts = [("ISA*00*          *00*          *ZZ*ACMECLEARING   *ZZ*NORTHWIND      *260302*"
              f"0811*{repetition}*00501*000004013*0*P*:"),
             f"TA1*000000101*260301*0915*{code}*{note}", "IEA*0*000004013"]
    return ("".join(p.replace("*", element) + "~" + newline for p in parts)).encode()


@pytest.mark.parametrize("element", ["*", "|", "^"])
def test_a_ta1_needs_no_set_definition_and_is_read_in_any_style(element: str) -> None:
    refused, accepted = ta1("R", "022", element, "\n"), ta1("A", "000", element)
    parsed = codec.parse(refused)
    assert parsed.message_type == "TA1" and parsed.body.issues == []
    assert isinstance(codec.read_reply(refused, SENT), Fail)
    assert isinstance(codec.read_reply(accepted, SENT), Sent)
    assert codec.reply(refused, parsed, Outcome(Verdict.ACCEPTED)) == b""  # never answered


def test_an_unreadable_acknowledgement_is_retried_not_a_crash() -> None:
    assert isinstance(codec.read_reply(ta1("R", "022")[:60], SENT), Retry)
