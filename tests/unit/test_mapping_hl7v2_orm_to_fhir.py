"""hl7v2-orm-to-fhir@1: every fixture, valid FHIR, one ServiceRequest per order that every
order control updates in place, and errors without PHI."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping, MappingCatalog, Skip

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "mappings" / "hl7v2-orm-to-fhir" / "fixtures" / "v1"
ADT_FIXTURES = ROOT / "mappings" / "hl7v2-adt-to-fhir" / "fixtures" / "v1"
EXPECTED_KINDS = (".json", ".skip", ".error")
CASES = sorted(p.stem for p in FIXTURES.glob("*.hl7"))
JSON_CASES = [c for c in CASES if (FIXTURES / f"{c}.json").exists()]
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")


@pytest.fixture(scope="module")
def catalog() -> MappingCatalog:
    return MappingCatalog.discover(ROOT / "mappings")


@pytest.fixture(scope="module")
def orm(catalog: MappingCatalog) -> Mapping:
    found = catalog.get("hl7v2-orm-to-fhir@1")
    assert found is not None, "mappings/hl7v2-orm-to-fhir/v1.py was not discovered"
    return found


def run(mapping: Mapping, raw: bytes) -> bytes | Skip:
    """Parse with the codec and apply the mapping, as a channel does."""
    return mapping.apply(Hl7v2Codec().parse(raw).body)


def bundle_of(mapping: Mapping, raw: bytes) -> dict:
    out = run(mapping, raw)
    assert isinstance(out, bytes), f"expected a Bundle, got {out!r}"
    return json.loads(out)


def of_type(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def seg(name: str, fields: dict[int, str]) -> str:
    return name + "".join("|" + fields.get(i, "") for i in range(1, max(fields) + 1))


PID = "PID|1||RB7781204^^^RIVERBEND^MR||HOLLOWAY^PRUDENCE^M^^^^L||19660214|F"


def orc(**fields: str) -> str:
    """A new order ORD-1 (placer) unless `fields` (f<N>=...) say otherwise."""
    base = {1: "NW", 2: "ORD-1^EHR", 9: "20240520081400", 12: "77^OKAFOR^CHIDI^^^DR^MD"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return seg("ORC", base)


def obr(**fields: str) -> str:
    base = {1: "1", 2: "ORD-1^EHR", 4: "2160-0^Creatinine^LN"}
    base.update({int(k[1:]): v for k, v in fields.items()})
    return seg("OBR", base)


def order_message(
    *body: str, msh9: str = "ORM^O01", facility: str = "RIVERBEND_HOSP", pid: str = PID,
    receiver: str = "RIVERBEND_LAB", msh7: str = "20240520081502-0500",
) -> bytes:
    segments = [
        f"MSH|^~\\&|EHR|{facility}|LIS|{receiver}|{msh7}||{msh9}|CTRL1|P|2.5.1",
        pid,
        *(body or (orc(), obr())),
    ]
    return ("\r".join(segments) + "\r").encode()


def request_of(mapping: Mapping, *body: str, **kwargs: str) -> dict:
    (request,) = of_type(bundle_of(mapping, order_message(*body, **kwargs)), "ServiceRequest")
    return request


# ---- fixtures ---------------------------------------------------------------------------


def test_every_fixture_has_exactly_one_expected_file() -> None:
    assert len(CASES) >= 6
    for case in CASES:
        expected = [k for k in EXPECTED_KINDS if (FIXTURES / f"{case}{k}").exists()]
        assert len(expected) == 1, f"{case}.hl7 needs one of {EXPECTED_KINDS}, has {expected}"
    for path in FIXTURES.iterdir():
        assert (FIXTURES / f"{path.stem}.hl7").exists(), f"{path.name} has no input file"


@pytest.mark.parametrize("case", CASES)
def test_fixture(orm: Mapping, case: str) -> None:
    raw = (FIXTURES / f"{case}.hl7").read_bytes()
    skip, error = FIXTURES / f"{case}.skip", FIXTURES / f"{case}.error"
    if error.exists():
        with pytest.raises(MappingError) as caught:
            run(orm, raw)
        assert str(caught.value) == error.read_text().strip()
        return
    out = run(orm, raw)
    if skip.exists():
        assert out == Skip(skip.read_text().strip())
        return
    assert isinstance(out, bytes), f"{case}: expected output, got {out!r}"
    expected = json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))
    actual = json.loads(out)
    if actual != expected:
        diff = difflib.unified_diff(
            _pretty(expected).splitlines(),
            _pretty(actual).splitlines(),
            f"{case}.json (expected)",
            f"{case} (mapping output)",
            lineterm="",
        )
        pytest.fail("output differs from the fixture:\n" + "\n".join(diff), pytrace=False)


def _pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)


# ---- valid FHIR -------------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES)
def test_output_is_a_valid_r4_transaction(orm: Mapping, case: str) -> None:
    assert_valid_transaction(bundle_of(orm, (FIXTURES / f"{case}.hl7").read_bytes()))


def assert_valid_transaction(bundle: dict) -> None:
    """The Bundle and each resource validate; ids, entries and references are sound."""
    Bundle.model_validate(bundle)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(full_urls) == len(set(full_urls)), "a resource is written twice"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        rid = resource["id"]
        assert FHIR_ID.match(rid), f"{rid!r} is not a FHIR id"
        assert entry["fullUrl"] == f"urn:uuid:{rid}"
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
    for ref in _references(bundle):
        assert ref in full_urls, f"reference {ref} does not resolve inside the bundle"
    assert _empty_elements(bundle) == []


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def _empty_elements(node: Any, path: str = "$") -> list[str]:
    """Paths of empty strings, arrays or objects, which FHIR forbids."""
    if node in ("", [], {}, None):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _empty_elements(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _empty_elements(v, f"{path}[{i}]")]
    return []


# ---- deterministic ids ------------------------------------------------------------------


@pytest.mark.parametrize("case", JSON_CASES)
def test_same_input_gives_identical_bytes(orm: Mapping, case: str) -> None:
    raw = (FIXTURES / f"{case}.hl7").read_bytes()
    assert run(orm, raw) == run(orm, raw)


def test_every_order_control_updates_the_same_service_request(orm: Mapping) -> None:
    new = request_of(orm, orc(f1="NW"), obr())
    held = request_of(orm, orc(f1="HD"), obr())
    cancelled = request_of(orm, orc(f1="CA", f3="L-77^LIS"), obr(f3="L-77^LIS"))
    assert new["id"] == held["id"] == cancelled["id"]
    assert [r["status"] for r in (new, held, cancelled)] == ["active", "on-hold", "revoked"]


def test_fixtures_for_one_order_share_its_id(orm: Mapping) -> None:
    placed = bundle_of(orm, (FIXTURES / "epic_new_orders.hl7").read_bytes())
    completed = bundle_of(orm, (FIXTURES / "status_changed_completed_escapes.hl7").read_bytes())
    a1c = of_type(placed, "ServiceRequest")[1]
    assert a1c["id"] == of_type(completed, "ServiceRequest")[0]["id"]
    assert of_type(completed, "ServiceRequest")[0]["status"] == "completed"


def test_filler_number_identifies_an_order_without_a_placer_number(orm: Mapping) -> None:
    one = request_of(orm, orc(f2="", f3="L-9^LIS"), obr(f2="", f3="L-9^LIS"))
    two = request_of(orm, orc(f2="", f3="L-9^LIS", f1="DC"), obr(f2="", f3="L-9^LIS"))
    assert one["id"] == two["id"]
    assert [i["type"]["coding"][0]["code"] for i in one["identifier"]] == ["FILL"]


def test_another_facility_gets_another_order(orm: Mapping) -> None:
    here = request_of(orm, facility="RIVERBEND_HOSP")
    there = request_of(orm, facility="NORTHGATE_CLINIC")
    assert here["id"] != there["id"]


def test_patient_is_the_one_the_adt_feed_made(catalog: MappingCatalog, orm: Mapping) -> None:
    adt = catalog.get("hl7v2-adt-to-fhir@1")
    assert adt is not None
    admitted = bundle_of(adt, (ADT_FIXTURES / "cerner_a04_register.hl7").read_bytes())
    ordered = bundle_of(orm, (FIXTURES / "cerner_cancel_order.hl7").read_bytes())
    assert of_type(ordered, "Patient")[0]["id"] == of_type(admitted, "Patient")[0]["id"]


# ---- errors name fields, never values ---------------------------------------------------

PHI = ("RB7781204", "HOLLOWAY", "PRUDENCE", "19660214", "ORD-1", "OKAFOR", "Creatinine")


def _fails(mapping: Mapping, raw: bytes, field: str) -> None:
    with pytest.raises(MappingError) as caught:
        run(mapping, raw)
    assert caught.value.field == field, str(caught.value)
    text = str(caught.value).removeprefix(f"{field}:")
    for value in PHI:
        assert value not in text


@pytest.mark.parametrize("msh9", ["ORU^R01", "OML^O33", "ORM^O02", "ADT^A01", "RDE^O11"])
def test_other_message_types_fail_naming_msh9(orm: Mapping, msh9: str) -> None:
    _fails(orm, order_message(msh9=msh9), "MSH-9")


@pytest.mark.parametrize("msh9", ["ORM", "ORM^O01^ORM_O01", "OML^O21^OML_O21"])
def test_order_message_types_are_read(orm: Mapping, msh9: str) -> None:
    assert request_of(orm, msh9=msh9)["status"] == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (("NTE|1||just a note",), "ORC"),
        ((orc(f2=""), obr(f2="")), "ORC-2"),
        ((orc(), obr(), orc(f1="NW"), obr()), "ORC-2"),
        ((orc(f1="NW", f9="20240230"), obr()), "ORC-9"),
        ((orc(), seg("TQ1", {1: "1", 7: "20241301"}), obr()), "TQ1-7"),
        ((orc(), obr(), seg("SPM", {1: "1", 17: "2024x"})), "SPM-17"),
    ],
)
def test_bad_input_fails_naming_the_field_and_no_value(
    orm: Mapping, body: tuple[str, ...], field: str
) -> None:
    _fails(orm, order_message(*body), field)


def test_a_second_patient_fails_naming_pid(orm: Mapping) -> None:
    raw = order_message(orc(), obr(), "PID|2||RB0000001^^^RIVERBEND^MR||OTHER^PERSON",
                        orc(f2="ORD-2"), obr(f2="ORD-2"))
    _fails(orm, raw, "PID")


def test_missing_pid_fails_naming_pid3(orm: Mapping) -> None:
    _fails(orm, order_message(pid="PV1|1|O"), "PID-3")


def test_drug_orders_alone_are_skipped(orm: Mapping) -> None:
    raw = order_message(orc(), "RXO|197361^Amlodipine 5 MG^RXNORM|5")
    assert run(orm, raw) == Skip(
        "ORM^O01 holds only pharmacy, diet or supply orders, not mapped by this version"
    )


def test_drug_orders_beside_a_lab_order_are_left_out(orm: Mapping) -> None:
    raw = order_message(orc(f2="RX-1"), "RXO|197361^Amlodipine 5 MG^RXNORM|5", orc(), obr())
    (request,) = of_type(bundle_of(orm, raw), "ServiceRequest")
    assert request["identifier"][0]["value"] == "ORD-1"


# ---- status, intent, priority, dates ------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "order_status", "status"),
    [
        ("NW", "", "active"), ("XO", "", "active"), ("RL", "", "active"),
        ("CA", "", "revoked"), ("OC", "", "revoked"), ("DC", "", "revoked"),
        ("OD", "", "revoked"), ("CR", "", "revoked"),
        ("HD", "", "on-hold"), ("OH", "", "on-hold"), ("HR", "", "on-hold"),
        ("SC", "CM", "completed"), ("SC", "IP", "active"), ("SC", "CA", "revoked"),
        ("SC", "HD", "on-hold"), ("SC", "ER", "entered-in-error"), ("SC", "", "unknown"),
        ("NW", "HD", "on-hold"), ("ZZ", "", "unknown"), ("nw", "", "active"),
    ],
)
def test_status_follows_order_control_and_order_status(
    orm: Mapping, control: str, order_status: str, status: str
) -> None:
    request = request_of(orm, orc(f1=control, f5=order_status), obr())
    assert (request["status"], request["intent"]) == (status, "order")


@pytest.mark.parametrize(
    ("segments", "priority"),
    [
        ((orc(f7="^^^^^R"), seg("TQ1", {1: "1", 9: "S^Stat^HL70485"}), obr()), "stat"),
        ((orc(f7="^^^^^A"), obr()), "asap"),
        ((orc(), obr(f27="^^^^^R")), "routine"),
        ((orc(), obr(f5="STAT")), "stat"),
        ((orc(f7="^^^^^P"), obr()), None),
        ((orc(), obr()), None),
    ],
)
def test_priority_reads_tq1_then_the_timing_fields(
    orm: Mapping, segments: tuple[str, ...], priority: str | None
) -> None:
    assert request_of(orm, *segments).get("priority") == priority


def test_oml_reads_tq1_between_orc_and_obr(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), seg("TQ1", {1: "1", 7: "202405201000", 9: "A"}), obr(),
        "NTE|1||after the OBR", msh9="OML^O21",
    )
    assert request["priority"] == "asap"
    assert request["occurrenceDateTime"] == "2024-05-20T10:00:00-05:00"
    assert request["note"] == [{"text": "after the OBR"}]


@pytest.mark.parametrize(("control", "authored"), [("NW", True), ("RO", True), ("CA", False),
                                                   ("XO", False), ("SC", False)])
def test_authored_on_is_the_time_a_new_order_was_placed(
    orm: Mapping, control: str, authored: bool
) -> None:
    request = request_of(orm, orc(f1=control), obr())
    assert request.get("authoredOn") == ("2024-05-20T08:14:00-05:00" if authored else None)


def test_requester_is_orc12_else_obr16(orm: Mapping) -> None:
    assert request_of(orm)["requester"] == {"display": "DR CHIDI OKAFOR, MD"}
    request = request_of(orm, orc(f12=""), obr(f16="88^RUIZ^ANA^^^^MD"))
    assert request["requester"] == {"display": "ANA RUIZ, MD"}


def test_identifiers_and_requisition(orm: Mapping) -> None:
    request = request_of(orm, orc(f3="L-5", f4="G-1^EHR"), obr(f3="L-5"))
    assert request["identifier"] == [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "PLAC", "display": "Placer Identifier"}]},
         "system": "urn:conduit:id:EHR", "value": "ORD-1"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "FILL", "display": "Filler Identifier"}]},
         "system": "urn:conduit:id:RIVERBEND_LAB", "value": "L-5"},
    ]
    assert request["requisition"]["value"] == "G-1"
    assert request["requisition"]["type"]["coding"][0]["code"] == "PGN"


def test_reasons_come_from_obr31_and_dg1_once_each(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), obr(f31="E11.9^Type 2 diabetes^I10C~R53.83^Fatigue^I10"),
        "DG1|1||E11.9^Type 2 diabetes^I10C||||W",
    )
    assert [(r["coding"][0]["system"], r["coding"][0]["code"]) for r in request["reasonCode"]] == [
        ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9"),
        ("http://hl7.org/fhir/sid/icd-10", "R53.83"),
    ]


def test_notes_are_the_orders_own_comments(orm: Mapping) -> None:
    request = request_of(
        orm, orc(), "NTE|1||about the order", obr(), "NTE|2||about the test",
        "OBX|1|ST|Q^Question^L||A", "NTE|3||about the answer",
    )
    assert request["note"] == [{"text": "about the order"}, {"text": "about the test"}]


def test_specimens_from_spm_and_from_obr15(orm: Mapping) -> None:
    oml = bundle_of(orm, order_message(
        orc(), obr(), seg("SPM", {1: "1", 2: "S-1&EHR", 4: "BLD^Blood^HL70487",
                                  17: "202405200800"}), msh9="OML^O21",
    ))
    (specimen,) = of_type(oml, "Specimen")
    assert specimen["identifier"][0]["value"] == "S-1"
    assert specimen["collection"] == {"collectedDateTime": "2024-05-20T08:00:00-05:00"}
    assert of_type(oml, "ServiceRequest")[0]["specimen"] == [
        {"reference": f"urn:uuid:{specimen['id']}"}
    ]
    orm_bundle = bundle_of(orm, order_message(orc(), obr(f15="UR&Urine&HL70070")))
    assert of_type(orm_bundle, "Specimen")[0]["type"]["coding"][0]["code"] == "UR"
    assert_valid_transaction(oml)
    assert_valid_transaction(orm_bundle)


def test_a_cancel_with_only_orc_still_updates_the_order(orm: Mapping) -> None:
    request = request_of(orm, orc(f1="CA"))
    assert request["status"] == "revoked"
    assert "code" not in request
    assert request["id"] == request_of(orm)["id"]
