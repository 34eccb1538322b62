"""Structure validation of HL7v2 messages against hl7apy's rules (engine.formats.hl7v2.validation).

Real messages come from the committed mapping fixtures; broken ones are made here from two
small conformant messages, one edit each, so every test names the rule it breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from engine.formats.hl7v2 import Hl7Message, decode_text
from engine.formats.hl7v2.validation import validate
from engine.message import Problem

ROOT = Path(__file__).resolve().parents[2]
ADT_FIXTURES = ROOT / "mappings" / "hl7v2-adt-to-fhir" / "fixtures" / "v1"

MSH_ADT = "MSH|^~\\&|ADT1|GENHOSP|CONDUIT|HIE|20240312084512-0500||ADT^A01^ADT_A01|CTL0001|P|2.5"
EVN = "EVN|A01|20240312084500-0500"
PID = ("PID|1||MRN448812^^^GENHOSP^MR||OKONKWO^MIREILLE^A^^^^L||19780502|F|||"
       "12 HARBOR ST^^PORTLAND^ME^04101^USA^H||^PRN^PH^^1^207^5550121")
PV1 = "PV1|1|I|4W^401^A^GENHOSP||||1234^WELBY^MARCUS^^^DR^MD"
ADT = [MSH_ADT, EVN, PID, PV1]

MSH_ORU = ("MSH|^~\\&|LAB|GENHOSP|CONDUIT|HIE|20240312101500-0500||ORU^R01^ORU_R01|LAB0042|P"
           "|2.5.1")
OBR = "OBR|1|ORD88^EPIC|LAB77^LAB|24323-8^Comprehensive metabolic panel^LN|||20240312081500"
OBX = [f"OBX|{n}|NM|{code}^{name}^LN||{value}|mg/dL^^ISO+|{ref}|N|||F"
       for n, (code, name, value, ref) in enumerate([
           ("2345-7", "Glucose", "98", "70-99"), ("3094-0", "Urea nitrogen", "14", "7-20"),
           ("2160-0", "Creatinine", "0.92", "0.60-1.10")], start=1)]
ORU = [MSH_ORU, PID, OBR, *OBX]

# Values from the messages above that must never appear in a problem's text.
PHI = ["MRN448812", "OKONKWO", "MIREILLE", "19780502", "HARBOR", "5550121", "WELBY"]


def check(segments: list[str], level: str = "strict") -> list[Problem]:
    return validate(Hl7Message.parse("\r".join(segments) + "\r"), level)


def errors(problems: list[Problem]) -> set[tuple[str, str | None, int | None]]:
    """(code, segment, field) of every error: what an AR's ERR segments would carry."""
    return {(p.code, p.segment, p.field) for p in problems if p.severity == "E"}


def replace(segments: list[str], name: str, field: int, value: str) -> list[str]:
    """The message with field `field` of the first `name` segment set to `value`."""
    out = list(segments)
    index = next(i for i, s in enumerate(out) if s.startswith(name))
    parts = out[index].split("|")
    offset = 1 if name == "MSH" else 0  # MSH-1 is the separator itself
    parts += [""] * (field - offset + 1 - len(parts))
    parts[field - offset] = value
    out[index] = "|".join(parts)
    return out


def fixture(name: str) -> Hl7Message:
    return Hl7Message.parse(decode_text((ADT_FIXTURES / name).read_bytes()))


# -- real messages ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "epic_a01_admit.hl7",  # 2.5.1, MSH-9.3 given
    "epic_a03_discharge.hl7",
    "a01_pid3_no_type_code.hl7",  # 2.4
    "a11_cancel_admit.hl7",  # ADT_A09
    "a31_update_person_names.hl7",  # ADT_A05
    "custom_delimiters_a01.hl7",  # $%*\! delimiters
    "escapes_a08_preadmit.hl7",
    "latin1_a01.hl7",
    "meditech_a08_update.hl7",  # \n segment endings, no MSH-9.3: A08 -> ADT_A01
    "cerner_a04_register.hl7",  # 2.3, A04 -> ADT_A01
])
def test_conformant_vendor_messages_pass_strict(name):
    assert errors(validate(fixture(name), "strict")) == set()


@pytest.mark.parametrize(("name", "expected"), [
    # A28 without PV1: 2.5's ADT_A05 requires PV1 (senders use a PV1 with PV1-2 "N").
    ("a28_add_person_no_pv1.hl7", {("100", "PV1", None)}),
    # PV1-2 patient class is R in 2.5; this sender leaves it empty.
    ("empty_trailing_fields_a04.hl7", {("101", "PV1", 2)}),
    # The lab result lacks OBX-11 (R from 2.5 on).
    ("oru_not_adt_error.hl7", {("101", "OBX", 11)}),
    # No PV1 after PID, and a birth date of 31 February.
    ("a08_invalid_birth_date_error.hl7", {("100", "PV1", None), ("102", "PID", 7)}),
    # GT1 belongs before the insurance group in ADT_A01, and IN1-4 (company name, XON)
    # holds an address, so its ID-number components are not numbers.
    ("v231_a08_deceased_with_nk1_al1_dg1_in1.hl7",
     {("100", "GT1", None), ("102", "IN1", 4)}),
])
def test_nonconformant_vendor_messages_are_located(name, expected):
    assert errors(validate(fixture(name), "strict")) == expected


def test_an_empty_pid3_id_number_is_not_a_structure_problem():
    # PID-3 is present (assigning authority and type, no number): hl7apy does not know
    # component optionality, so the mapping, not validation, rejects this one.
    assert errors(validate(fixture("a01_missing_pid3_error.hl7"), "strict")) == set()


def test_every_fixture_validates_without_crashing_or_leaking_values():
    files = sorted((ROOT / "mappings").glob("*/fixtures/*/*.hl7"))
    assert files
    for path in files:
        message = Hl7Message.parse(decode_text(path.read_bytes()))
        strict = validate(message, "strict")
        lenient = validate(message, "lenient")
        assert [(p.text, p.code, p.segment, p.field) for p in lenient] == \
            [(p.text, p.code, p.segment, p.field) for p in strict], path.name
        assert all(p.severity == "W" for p in lenient)
        values = {message.value(f"{seg}-{field}.{comp}")
                  for seg in ("PID", "NK1") for field in (3, 5, 7, 11, 13, 19)
                  for comp in (1, 2)}
        values |= {obx.value(5) for obx in message.all("OBX")}
        for problem in strict:
            leaked = [v for v in values if len(v) >= 4 and v in problem.text]
            assert not leaked, (path.name, problem.text)


# -- the two reference messages --------------------------------------------------------

def test_reference_messages_are_valid():
    assert check(ADT) == []
    assert check(ORU) == []


def test_missing_required_segment():
    problems = check([MSH_ADT, PID, PV1])
    assert errors(problems) == {("100", "EVN", None)}
    assert "required segment EVN is missing from ADT_A01 (HL7 2.5)" in problems[0].text


def test_segments_out_of_order_are_reported_once():
    problems = check([MSH_ADT, PID, EVN, PV1])
    assert errors(problems) == {("100", "EVN", None)}
    assert len(problems) == 1
    assert "out of sequence" in problems[0].text


def test_a_segment_repeated_beyond_its_cardinality():
    problems = check([MSH_ADT, EVN, PID, PID, PV1])
    assert errors(problems) == {("100", "PID", None)}
    assert "PID[2] repeats more often than ADT_A01 (HL7 2.5) allows (at most 1)" \
        in problems[0].text


def test_a_segment_foreign_to_the_structure():
    problems = check([MSH_ADT, EVN, PID, "RXA|0|1", PV1])
    assert errors(problems) == {("100", "RXA", None)}  # and its own fields are not checked
    assert "not part of message structure ADT_A01" in problems[0].text


def test_a_missing_required_group_names_its_first_segment():
    problems = check([MSH_ORU, PID])
    assert errors(problems) == {("100", "OBR", None)}
    assert "segment group ORDER_OBSERVATION (beginning with OBR)" in problems[0].text


def test_repeating_groups_and_optional_segments():
    second_order = [OBR.replace("OBR|1", "OBR|2"), "NTE|1||second panel", OBX[0]]
    assert errors(check([*ORU, "NTE|1||hemolyzed", *second_order])) == set()


@pytest.mark.parametrize(("segments", "where"), [
    (replace(ADT, "PID", 3, ""), ("101", "PID", 3)),
    (replace(ADT, "MSH", 10, ""), ("101", "MSH", 10)),
    (replace(ADT, "PV1", 2, ""), ("101", "PV1", 2)),
])
def test_missing_required_field(segments, where):
    assert errors(check(segments)) == {where}


def test_required_fields_follow_the_declared_version():
    no_time = replace(ADT, "MSH", 7, "")
    assert errors(check(no_time)) == {("101", "MSH", 7)}  # R from 2.4 on
    assert errors(check(replace(no_time, "MSH", 12, "2.3"))) == set()  # O in 2.3


@pytest.mark.parametrize(("segments", "where"), [
    (replace(ORU, "OBX", 5, "positive"), ("102", "OBX", 5)),  # OBX-2 says NM
    (replace(ADT, "PID", 7, "19780231"), ("102", "PID", 7)),  # DTM: no 31 February
    (replace(ADT, "PID", 1, "one"), ("102", "PID", 1)),  # SI
    (replace(ADT, "PID", 8, "F~M"), ("102", "PID", 8)),  # not a repeating field
])
def test_data_type_errors(segments, where):
    problems = check(segments)
    assert errors(problems) == {where}
    assert all(value not in problems[0].text for value in ("positive", "19780231", "one"))


def test_obx5_is_checked_as_the_type_obx2_names():
    assert errors(check(replace(replace(ORU, "OBX", 2, "ST"), "OBX", 5, "positive"))) == set()
    as_date = replace(replace(ORU, "OBX", 2, "DT"), "OBX", 5, "20241301")
    assert errors(check(as_date)) == {("102", "OBX", 5)}


def test_unknown_table_value_is_a_warning_even_when_strict():
    problems = check(replace(ADT, "PID", 8, "Q"))  # table 0001 administrative sex
    assert errors(problems) == set()
    assert [(p.code, p.segment, p.field, p.severity) for p in problems] == \
        [("103", "PID", 8, "W")]
    assert "HL7 table 0001" in problems[0].text


def test_table_patterns_such_as_hl7nnnn_are_codes_of_the_table():
    coded = replace(ADT, "PID", 10, "2106-3^White^HL70005")  # table 0396 lists HL7nnnn
    assert check(coded) == []


def test_unknown_version_is_one_problem():
    problems = check([*replace(ADT, "MSH", 12, "9.9")[:1], "XYZ|bad", EVN])
    assert [(p.code, p.segment, p.field) for p in problems] == [("203", "MSH", 12)]
    assert "HL7 version 9.9 cannot be validated" in problems[0].text


def test_unknown_message_type_is_one_problem():
    problems = check(replace(ADT, "MSH", 9, "ZZZ^Z99"))
    assert [(p.code, p.segment, p.field) for p in problems] == [("200", "MSH", 9)]


def test_structure_comes_from_type_and_event_when_msh_9_3_is_absent():
    assert check(replace(ADT, "MSH", 9, "ADT^A04")) == []  # A04 shares ADT_A01
    a28 = replace(ADT, "MSH", 9, "ADT^A28")
    assert check(a28) == []  # ADT_A05 in 2.5
    assert check(replace(a28, "MSH", 12, "2.3.1")) == []  # ADT_A01 before 2.4
    missing = check([line for line in a28 if not line.startswith("PV1")])
    assert "ADT_A05" in missing[0].text


def test_z_segments_pass_anywhere():
    assert check([MSH_ADT, "ZMS|1", EVN, PID, "ZPD|1|VIP^^L|x~y", PV1, "ZV1|x"]) == []
    assert check([*ORU[:3], "ZLB|1", *ORU[3:]]) == []


def test_line_endings_and_delimiters_do_not_change_the_verdict():
    broken = replace(ADT, "PID", 3, "")
    custom = [s.replace("|", "#").replace("^", "%") for s in broken]
    expected = errors(check(broken))
    assert errors(validate(Hl7Message.parse("\n".join(broken)), "strict")) == expected
    assert errors(validate(Hl7Message.parse("\r\n".join(custom)), "strict")) == expected


def test_lenient_reports_the_same_problems_as_warnings():
    broken = replace(replace(ADT, "PID", 3, ""), "PID", 8, "Q")
    strict, lenient = check(broken, "strict"), check(broken, "lenient")
    assert {p.severity for p in strict} == {"E", "W"}
    assert [(p.text, p.code) for p in lenient] == [(p.text, p.code) for p in strict]
    assert {p.severity for p in lenient} == {"W"}


def test_off_checks_nothing_and_unknown_levels_are_refused():
    assert check(replace(ADT, "MSH", 12, "9.9"), "off") == []
    with pytest.raises(ValueError, match="validation level"):
        check(ADT, "paranoid")


def test_problem_texts_name_places_never_values():
    broken = [MSH_ADT, PID, EVN, PID, "RXA|0|1",
              PV1.replace("PV1|1|I", "PV1|one|")]
    broken = replace(replace(broken, "PID", 7, "19780231"), "PID", 8, "F~M")
    problems = check(broken)
    assert len(problems) >= 5
    for problem in problems:
        assert not [v for v in PHI if v in problem.text], problem.text


def test_agrees_with_hl7apy_where_hl7apy_stops():
    """hl7apy's own Validator raises on the first error it meets; ours finds the same."""
    cases = [(replace(ADT, "MSH", 9, "ADT^A28^ADT_A05")[:3], ("100", "PV1", None)),
             (replace(ORU, "OBX", 11, ""), ("101", "OBX", 11))]
    for segments, where in cases:
        with pytest.raises(ValidationError):
            Validator.validate(parse_message("\r".join(segments) + "\r"))
        assert where in errors(check(segments))
    for segments in (ADT, ORU):
        assert Validator.validate(parse_message("\r".join(segments) + "\r"))
