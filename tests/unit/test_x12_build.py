"""Writing X12 (engine.formats.x12.build): what build writes is read back by the codec
with its envelope sound (counts, control numbers, fixed ISA widths), in the default and
in other delimiter styles; values holding a delimiter are refused by position, never
echoed; re-enveloping keeps the sets and changes only the envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12.build import Delimiters, interchange, reenvelope, render_set
from engine.formats.x12.interchange import read_interchanges
from engine.formats.x12.tokens import ISA_LENGTH, isa_width_errors, read_delimiters

codec = X12Codec()
WHEN = datetime(2026, 3, 14, 9, 26, tzinfo=UTC)
HOSP = ("ZZ", "CONDUITHOSP")
PAYER = ("ZZ", "PAYERX")

CLAIM = [
    ["BHT", "0019", "00", "BATCH7", "20260314", "0926", "CH"],
    ["NM1", "41", "2", "RIVERBEND HOSPITAL", "", "", "", "", "46", "TAX77"],
    ["NM1", "40", "2", "PAYER X", "", "", "", "", "46", "PAYERX"],
    ["HL", "1", "", "20", "1"],
    ["NM1", "85", "2", "RIVERBEND HOSPITAL", "", "", "", "", "XX", "1234567893"],
    ["HL", "2", "1", "22", "0"],
    ["SBR", "P", "18", "GRP9", "", "", "", "", "", "CI"],
    ["NM1", "IL", "1", "QUILL", "ROSALIND", "", "", "", "MI", "MBR0042"],
    ["CLM", "ACCT42", "250", "", "", ("11", "B", "1"), "Y", "A", "Y", "Y"],
    ["HI", [("ABK", "J069"), ("ABF", "R05")]],
    ["LX", "1"],
    ["SV1", ("HC", "99213", "", ""), "250", "UN", "1", "", "", "1"],
    ["DTP", "472", "D8", "20260310"],
]
INQUIRY = [
    ["BHT", "0022", "13", "Q1", "20260314", "0926"],
    ["HL", "1", "", "20", "1"], ["NM1", "PR", "2", "PAYER X", "", "", "", "", "PI", "PX1"],
    ["HL", "2", "1", "21", "1"], ["NM1", "1P", "2", "RIVERBEND", "", "", "", "", "XX",
                                  "1234567893"],
    ["HL", "3", "2", "22", "0"], ["NM1", "IL", "1", "QUILL", "ROSALIND", "", "", "", "MI",
                                  "MBR0042"],
    ["EQ", "30"],
]


def build(**kw) -> str:
    kw.setdefault("sender", HOSP)
    kw.setdefault("receiver", PAYER)
    kw.setdefault("when", WHEN)
    sets = kw.pop("sets", [("837", "005010X222A1", CLAIM)])
    return interchange(sets, **kw)


def test_render_set_counts_st_to_se_and_drops_trailing_empties():
    rendered = render_set("837", "0001", CLAIM, "005010X222A1")
    assert rendered[0] == ["ST", "837", "0001", "005010X222A1"]
    assert rendered[-1] == ["SE", str(len(CLAIM) + 2), "0001"]
    assert ["HL", "1", "", "20", "1"] in rendered  # inner empties kept
    assert ["SV1", "HC:99213", "250", "UN", "1", "", "", "1"] in rendered
    assert ["HI", "ABK:J069^ABF:R05"] in rendered
    assert render_set("270", "0001", [["EQ", "30", "", ""]])[1] == ["EQ", "30"]
    assert render_set("270", "0002", [])[0] == ["ST", "270", "0002"]  # no ST03


def test_what_build_writes_is_read_back_with_a_sound_envelope():
    text = build(control_number=4711, ack_requested=True, usage="T")
    parsed = codec.parse(text.encode())
    assert parsed.message_type == "837P"
    assert parsed.control_id == "000004711-4711-0001"
    assert parsed.sender == "CONDUITHOSP^CONDUITHOSP"
    assert parsed.receiver == "PAYERX^PAYERX"
    assert parsed.patient_id == "MBR0042"
    assert parsed.body.value("CLM05-3") == "1"
    (ic,), notes = read_interchanges(text)
    assert notes == [] and ic.codes == []
    assert len(text.split("~")[0]) + 1 == ISA_LENGTH
    assert isa_width_errors(ic.isa.elements) == []
    assert [ic.isa.element(n) for n in (9, 10, 13, 14, 15)] == [
        "260314", "0926", "000004711", "1", "T"]
    gs = ic.groups[0].gs
    assert [gs.element(n) for n in (1, 4, 5, 6, 8)] == [
        "HC", "20260314", "0926", "4711", "005010X222A1"]
    assert text.endswith("GE*1*4711~IEA*1*000004711~")
    # Deterministic: the same input and time give the same bytes.
    assert build(control_number=4711, ack_requested=True, usage="T") == text


def test_several_sets_and_groups_are_numbered_and_counted():
    text = build(sets=[("270", "005010X279A1", INQUIRY), ("270", "005010X279A1", INQUIRY),
                       ("837", "005010X222A1", CLAIM)], control_number=999_999_998,
                 application_sender="HOSPAPP", application_receiver="PAYERAPP",
                 newline=True)
    (ic,), notes = read_interchanges(text)
    assert notes == []
    assert [(g.gs.element(1), g.gs.element(6), [s.st.element(2) for s in g.sets])
            for g in ic.groups] == [("HS", "999999998", ["0001", "0002"]),
                                    ("HC", "999999999", ["0001"])]
    assert ic.groups[0].gs.element(2) == "HOSPAPP"
    assert ic.groups[0].gs.element(3) == "PAYERAPP"
    assert text.count("~\n") == text.count("~")
    envelope = codec.split(text.encode())
    assert envelope is not None and envelope.problems == []
    assert [codec.parse(m).message_type for m in envelope.messages] == ["270", "270",
                                                                          "837P"]


def test_functional_ids_come_from_st01_or_are_given():
    assert "GS*HP*" in build(sets=[("835", "005010X221A1", [["BPR", "I", "90"]])])
    assert "GS*FA*" in build(sets=[("999", "005010X231A1", [["AK1", "HC", "1"]])])
    with pytest.raises(ValueError, match="functional_id"):
        build(sets=[("123", "", [["X1", "A"]])])
    assert "GS*ZZ*" in build(sets=[("123", "", [["X1", "A"]])], functional_id="ZZ")


@pytest.mark.parametrize("delims", [
    Delimiters("|", "{", "^", "\n"), Delimiters("^", "|", ">", "'", newline=False),
    Delimiters("*", "^", ">", "~", newline=True)])
def test_other_delimiter_styles_are_read_back(delims):
    text = interchange([("837", "005010X222A1", CLAIM)], sender=HOSP, receiver=PAYER,
                       when=WHEN, delimiters=delims, control_number=12)
    assert read_delimiters(text)[0] == (delims.element, delims.repetition,
                                        delims.component, delims.segment)
    parsed = codec.parse(text.encode())
    assert parsed.control_id == "000000012-12-0001"
    assert parsed.body.value("CLM05-1") == "11"


@pytest.mark.parametrize(("segment", "where"), [
    (["NM1", "IL", "1", "O*BRIEN"], "NM103"),
    (["NM1", "IL", "1", "SMITH~JONES"], "NM103"),
    (["CLM", "A1", "250", "", "", ("11", "B:X", "1")], "CLM05-2"),
    (["HI", [("ABK", "J0^69")]], "HI01-2"),
    (["N3", "12 ELM ST\nAPT 4"], "N301"),
])
def test_a_value_holding_a_delimiter_is_refused_by_position_not_value(segment, where):
    with pytest.raises(ValueError) as info:
        build(sets=[("837", "005010X222A1", [*CLAIM, segment])])
    message = str(info.value)
    assert message.startswith(where)
    assert all(part not in message for part in ("BRIEN", "JONES", "B:X", "J0^69", "ELM"))


def test_bad_envelope_arguments_are_refused():
    for kw in ({"control_number": 0}, {"control_number": 1_000_000_000}, {"usage": "X"},
               {"sender": ("Z", "X")}, {"receiver": ("ZZ", "A" * 16)},
               {"delimiters": Delimiters("*", "*", ":", "~")}):
        with pytest.raises(ValueError):
            build(**kw)
    with pytest.raises(ValueError, match="envelope"):
        build(sets=[("837", "", [["SE", "1", "0001"]])])


def test_reenvelope_keeps_the_sets_and_changes_the_envelope():
    original = build(sets=[("837", "005010X222A1", CLAIM), ("837", "005010X222A1", CLAIM)],
                     sender=("ZZ", "MAPPER"), receiver=("ZZ", "ANYONE"), control_number=7)
    sent = reenvelope(original, sender=("ZZ", "CONDUITHOSP"), receiver=("01", "PAYERX"),
                      control_number=123456, usage="T", ack_requested=True,
                      application_sender="HOSPAPP", application_receiver="PXAPP",
                      when=WHEN)
    (ic,), notes = read_interchanges(sent)
    assert notes == []
    assert ic.isa.element(6).strip() == "CONDUITHOSP"
    assert (ic.isa.element(7), ic.isa.element(8).strip()) == ("01", "PAYERX")
    assert [ic.isa.element(n) for n in (13, 14, 15)] == ["000123456", "1", "T"]
    group = ic.groups[0]
    assert [group.gs.element(n) for n in (1, 2, 3, 6, 8)] == [
        "HC", "HOSPAPP", "PXAPP", "123456", "005010X222A1"]
    assert [s.st.element(2) for s in group.sets] == ["0001", "0002"]
    # The bodies are the same segments.
    body = [s.text() for s in read_interchanges(original)[0][0].groups[0].sets[0]
            .segments[1:-1]]
    assert [s.text() for s in group.sets[0].segments[1:-1]] == body


def test_reenvelope_keeps_the_input_style_or_translates_it():
    pipes = interchange([("837", "005010X222A1", CLAIM)], sender=HOSP, receiver=PAYER,
                        when=WHEN, delimiters=Delimiters("|", "{", "^", "~", newline=True))
    same = reenvelope(pipes, sender=HOSP, receiver=PAYER, control_number=2, when=WHEN)
    assert "|HC^99213|" in same and same.count("~\n") == same.count("~")
    star = reenvelope(pipes, sender=HOSP, receiver=PAYER, control_number=2, when=WHEN,
                      delimiters=Delimiters())
    assert "HI*ABK:J069^ABF:R05~" in star and "\n" not in star
    assert codec.parse(star.encode()).body.value("SV101-2") == "99213"


def test_reenvelope_refuses_a_broken_interchange():
    broken = build().replace("SE*15*0001", "SE*14*0001")
    with pytest.raises(ValueError, match="code 4"):
        reenvelope(broken, sender=HOSP, receiver=PAYER, control_number=3)
