"""fhir-to-hl7v2-oml@1: every fixture (compared parsed, field by field), determinism, valid
inputs, the OML_O21 segment order (hl7apy strict for a single order), TQ1 timing, SPM from
Specimens, errors naming FHIR paths, and the round trip of every hl7v2-oml-to-fhir@1
fixture."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, message_of, of_type, run, segment_names
from tests.order_round_trip import check_round_trip, codes

FIXTURES = checks.Fixtures("fhir-to-hl7v2-oml@1", input_ext=".json", output_ext=".hl7")
ORDERS = checks.Fixtures("hl7v2-oml-to-fhir@1")
HL7 = "x-application/hl7-v2+er7"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
STRUCTURE = re.compile(r"MSH PID (PV1 )?(ORC (TQ1 )?OBR (NTE )*(DG1 )*(OBX )*(SPM )*)+\Z")

to_oml = checks.mapping_fixture(FIXTURES.ref, accepts="fhir", emits=HL7)
to_fhir = checks.mapping_fixture(ORDERS.ref)


def order_bundle(*extra: dict, **fields: Any) -> dict:
    """A collection Bundle: an active culture order of one patient, with `fields`."""
    request = {"resourceType": "ServiceRequest", "id": "o1",
               "meta": {"lastUpdated": "2025-03-01T09:00:00-06:00"},
               "identifier": [{"system": "urn:conduit:id:BEAKER", "value": "ORD-1"}],
               "status": "active", "intent": "order",
               "code": {"coding": [{"system": LOINC, "code": "600-7",
                                    "display": "Bacteria identified in Blood by Culture"}]},
               "subject": {"reference": "Patient/p1"}, **fields}
    patient = {"resourceType": "Patient", "id": "p1",
               "identifier": [{"system": "urn:conduit:id:LAKESIDE", "value": "LK-5501"}],
               "name": [{"family": "QUILLAN", "given": ["ROSA"]}]}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (request, patient, *extra)]}


# ---- fixtures ---------------------------------------------------------------------------


TestFixtures = checks.fixture_tests(FIXTURES, min_cases=8, min_outputs=8)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_output_parses_in_oml_o21_order_with_msh_fields(to_oml: Mapping, case: str) -> None:
    out = run(to_oml, FIXTURES.input(case))
    assert isinstance(out, bytes)
    parsed = Hl7v2Codec().parse(out)
    message = parsed.body
    assert STRUCTURE.match(segment_names(message)), segment_names(message)
    assert parsed.message_type == "OML^O21" and message.value("MSH-9.3") == "OML_O21"
    assert message.value("MSH-3") == "CONDUIT" and message.value("MSH-7")
    assert message.value("MSH-11") == "P" and message.version == "2.5.1"
    for spm in message.all("SPM"):
        assert spm.value(4)


@pytest.mark.parametrize("case", FIXTURES.output_cases)
def test_single_order_output_passes_hl7apy_strict_validation(to_oml: Mapping,
                                                             case: str) -> None:
    """hl7apy parses greedily: a second ORC after an order's DG1 or SPM reads to it as
    the optional prior-results group, so only single-order messages are validated here;
    the pattern test above checks the order of every output."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    out = run(to_oml, FIXTURES.input(case))
    assert isinstance(out, bytes)
    text = out.decode("utf-8")
    if text.count("\rORC|") > 1:
        assert len(Hl7Message.parse(text).all("OBR")) > 1
        return
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()


# ---- what a receiver sees -----------------------------------------------------------------


def test_timing_is_tq1(to_oml: Mapping) -> None:
    message = message_of(to_oml, order_bundle(priority="stat", occurrencePeriod={
        "start": "2025-03-02T07:30:00-06:00", "end": "2025-03-02T08:00:00-06:00"}))
    assert [message.value(f"TQ1-{n}") for n in (1, 7, 8, 9)] == [
        "1", "20250302073000-0600", "20250302080000-0600", "S"]
    assert not message.value("ORC-7") and not message.value("OBR-27")


def test_each_specimen_is_an_spm(to_oml: Mapping) -> None:
    def specimen(sid: str, site: str, when: dict) -> dict:
        return {"resourceType": "Specimen", "id": sid,
                "identifier": [{"system": "urn:conduit:id:BEAKER", "value": f"SP-{sid}"}],
                "accessionIdentifier": {"system": "urn:conduit:id:LAB", "value": f"AC-{sid}"},
                "type": {"coding": [{"system": SCT, "code": "119297000", "display": "Blood"}]},
                "collection": {"bodySite": {"coding": [{"system": SCT, "code": site}]},
                               "quantity": {"value": 10, "unit": "mL",
                                            "system": "http://unitsofmeasure.org",
                                            "code": "mL"}, **when},
                "receivedTime": "2025-03-01T09:30:00-06:00"}
    message = message_of(to_oml, order_bundle(
        specimen("a", "368208006", {"collectedDateTime": "2025-03-01T08:40:00-06:00"}),
        specimen("b", "368209003", {"collectedPeriod": {
            "start": "2025-03-01T08:41:00-06:00", "end": "2025-03-01T08:42:00-06:00"}}),
        specimen=[{"reference": "Specimen/a"}, {"reference": "Specimen/b"}]))
    spms = message.all("SPM")
    assert [s.value(1) for s in spms] == ["1", "2"]
    assert [(s.value(2, 1), s.value(2, 2)) for s in spms] == [("SP-a", "AC-a"), ("SP-b", "AC-b")]
    assert [s.value(8) for s in spms] == ["368208006", "368209003"]
    assert (spms[0].value(12, 1), spms[0].value(12, 2)) == ("10", "mL")
    assert [s.value(17, 1) for s in spms] == ["20250301084000-0600", "20250301084100-0600"]
    assert spms[1].value(17, 2) == "20250301084200-0600"
    assert spms[0].value(18) == "20250301093000-0600"
    assert message.value("OBR-7") == "20250301084000-0600" and not message.value("OBR-15")


# ---- errors name FHIR paths -----------------------------------------------------------------


def test_errors_name_the_path_and_no_value(to_oml: Mapping) -> None:
    untyped = {"resourceType": "Specimen", "id": "s1"}
    checks.check_error(to_oml, order_bundle(untyped, specimen=[{"reference": "Specimen/s1"}]),
                       "Bundle.entry[2].resource.type")
    checks.check_error(to_oml, order_bundle(status="unknown"), "Bundle.entry[0].resource.status")
    checks.check_error(to_oml, order_bundle(priority="soon"), "Bundle.entry[0].resource.priority",
                       values=["soon"])
    checks.check_error(to_oml, order_bundle(subject={"reference": "Patient/zz"}),
                       "Bundle.entry[0].resource.subject", phi=["QUILLAN", "LK-5501"])


# ---- round trip: OML -> FHIR -> OML -> FHIR (the facts the ORM test keeps) -------------


@pytest.mark.parametrize("case", ORDERS.output_cases)
def test_oml_fixture_round_trips(to_oml: Mapping, to_fhir: Mapping, case: str) -> None:
    check_round_trip(to_fhir, to_oml, ORDERS.input(case))


def test_oml_fixtures_round_trip_specimens(to_oml: Mapping, to_fhir: Mapping) -> None:
    """SPM goes back as SPM: every Specimen type survives (OBR-15 in ORM keeps one)."""
    kept = 0
    for case in ORDERS.output_cases:
        first = bundle_of(to_fhir, ORDERS.input(case))
        if not of_type(first, "ServiceRequest") or "timestamp" not in first:
            continue
        again = bundle_of(to_fhir, run(to_oml, first))
        types = [sorted(str(codes(s.get("type"))) for s in of_type(b, "Specimen"))
                 for b in (first, again)]
        assert types[1] == types[0], case
        kept += bool(types[0])
    assert kept >= 3
