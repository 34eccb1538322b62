"""engine/leniency.py and engine/maplib/v2_conversion.py: under a lenient conversion a
value that cannot be read is a located warning and the rest still maps; outside one
(every released mapping version) the same reader still raises."""

from __future__ import annotations

import pytest

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import Note, guard, lenient, tolerate
from engine.maplib.v2_conversion import convert, per_segment
from engine.mapping_base import Mapped, Mapping, Skip

MSH = "MSH|^~\\&|LAB|MERCY|EHR|MERCY|20240601120000-0500||ORU^R01|C1|P|2.5.1"


def message(*segments: str) -> Hl7Message:
    return Hl7Message.parse("\r".join([MSH, *segments]) + "\r")


def test_outside_a_lenient_conversion_a_bad_value_still_fails_naming_the_field():
    with pytest.raises(MappingError) as caught:
        dt.to_fhir_date("20241345", "PID-7")
    assert caught.value.field == "PID-7"


def test_inside_one_it_is_a_warning_and_reads_as_absent():
    with lenient() as notes:
        assert dt.to_fhir_date("20241345", "PID-7") is None
        assert dt.to_fhir_decimal("about 7", "OBX-5") is None
    assert notes.warnings == [Note("PID-7", "holds a date/time that does not exist"),
                              Note("OBX-5", "is not a number")]


def test_a_time_zone_that_does_not_exist_is_dropped_and_the_time_kept():
    with lenient() as notes:
        # read in the sender's zone (MSH-7) when it has one; a date alone when not, as
        # FHIR wants a zone with any time of day
        assert dt.to_fhir_datetime("202406011230+2500", "OBX-14", "-0500") == (
            "2024-06-01T12:30:00-05:00")
        assert dt.to_fhir_datetime("202406011230+2500", "OBX-14", None) == "2024-06-01"
    # the second time also loses its time of day, and says so
    assert [w.at for w in notes.warnings] == ["OBX-14", "OBX-14"]
    assert "does not exist" in notes.warnings[0].text
    assert "only the date is kept" in notes.warnings[1].text


def test_warnings_are_located_at_the_segment_occurrence_being_converted():
    def convert_one(value: str) -> None:
        dt.to_fhir_decimal(value, "OBX-5")

    with lenient() as notes:
        for n, value in enumerate(["1", "x", "2", "y"], start=1):
            guard("OBX", n, lambda v=value: convert_one(v))
    assert [w.at for w in notes.warnings] == ["OBX[2]-5", "OBX[4]-5"]


def test_a_segment_that_gives_up_costs_only_itself():
    msg = message("OBX|1|NM|A||1", "OBX|2|NM|B||2", "OBX|3|NM|C||3")

    def one(obx, n):
        if n == 2:
            raise MappingError("is empty, so the result has no test code", field="OBX-3")
        return obx.value(3)

    with lenient() as notes:
        found = per_segment(msg, "OBX", one)
    assert found == ["A", "C"]
    assert [str(w) for w in notes.warnings] == [
        "OBX[2]-3: is empty, so the result has no test code"]
    with pytest.raises(MappingError):  # strictly, it is still a failure
        per_segment(msg, "OBX", one)


def test_tolerate_gives_the_fallback_leniently():
    with lenient():
        assert tolerate(MappingError("odd", field="SCH-11"), "fallback") == "fallback"


def test_convert_reports_warnings_and_what_no_rule_read():
    msg = message("PID|1||123^^^MERCY^MR||DOE^JANE||19800230|F",
                  "ZPI|one|two")

    def build(m: Hl7Message) -> dict:
        pid = m.segment("PID")
        return {"id": pid.value(3), "birthDate": dt.to_fhir_date(pid.value(7), "PID-7")}

    result = convert(msg, build)
    assert isinstance(result, Mapped)
    assert result.output == {"id": "123", "birthDate": None}
    assert [str(w) for w in result.warnings] == ["PID-7: holds a date/time that does not exist"]
    # PID-5 and PID-8 held values nobody read; so did the whole ZPI and MSH's routing
    assert {"PID-5", "PID-8", "ZPI-1", "ZPI-2", "MSH-9", "MSH-10"} <= set(result.left_behind)
    assert "PID-3" not in result.left_behind and "PID-7" not in result.left_behind
    assert "PID-1" not in result.left_behind  # a Set ID is structure, not a fact


def test_a_skip_passes_through_convert_and_run():
    ref = Mapping("skipper", 1, "hl7v2", "application/fhir+json",
                  lambda m: convert(m, lambda _: Skip("not ours")))
    assert ref.run(message()) == Skip("not ours")


def test_run_encodes_a_mapped_output_and_keeps_its_notes():
    notes = (Note("PV1-44", "is not an HL7 date/time"),)
    ref = Mapping("noted", 1, "hl7v2", "application/fhir+json",
                  lambda m: Mapped({"resourceType": "Patient"}, notes, ("PV1-39",)))
    result = ref.run(message())
    assert result == Mapped(b'{"resourceType":"Patient"}', notes, ("PV1-39",))
    assert ref.apply(message()) == b'{"resourceType":"Patient"}'


def test_warnings_never_quote_the_value_that_could_not_be_read():
    with lenient() as notes:
        dt.to_fhir_date("SECRET-1980", "PID-7")
        dt.to_fhir_decimal("SECRET", "OBX-5")
    assert notes.warnings and not any("SECRET" in str(w) for w in notes.warnings)


def test_a_field_already_located_is_not_located_twice():
    with lenient() as notes:
        guard("RXD", 2, lambda: dt.to_fhir_decimal("x", "RXD[2]-4"))
    assert [w.at for w in notes.warnings] == ["RXD[2]-4"]
