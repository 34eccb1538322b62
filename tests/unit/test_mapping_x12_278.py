"""x12-278-to-fhir@1 and fhir-to-x12-278@1: every fixture as `conduit test` runs it, the
outputs valid FHIR R4 (PAS-shaped collection Bundles) or X12 the codec reads without a
structure issue, request and response told apart, the decisions (HCR) and rejections
(AAA) a provider acts on, and the round trip 278 -> FHIR -> 278 keeping the facts."""

from __future__ import annotations

import json

import pytest

from engine.errors import MappingError
from engine.formats.x12 import X12Codec
from engine.formats.x12.message import X12Message
from engine.formats.x12.sets.x278 import REVIEW
from engine.formats.x12.structure import Loop
from engine.message import Outcome, Verdict
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, run

TO_FHIR = checks.Fixtures("x12-278-to-fhir@1", input_ext=".x12", output_ext=".json")
TO_X12 = checks.Fixtures("fhir-to-x12-278@1", input_ext=".json", output_ext=".x12")
PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
ACTION = "https://codesystem.x12.org/005010/306"
codec = X12Codec()

to_fhir = checks.mapping_fixture(TO_FHIR.ref, accepts="x12", emits="application/fhir+json")
to_x12 = checks.mapping_fixture(TO_X12.ref, accepts="fhir", emits="application/edi-x12")


def check_pas_bundle(bundle: dict) -> None:
    """A valid R4 collection Bundle: the Claim or ClaimResponse (use preauthorization)
    first, every resource valid with a FHIR id, every urn:uuid reference resolving inside,
    no empty element anywhere."""
    checks.check_valid(bundle)
    assert bundle["type"] == "collection"
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] in ("Claim", "ClaimResponse")
    assert first["use"] == "preauthorization"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls), "a resource twice in the Bundle"
    for entry in bundle["entry"]:
        checks.check_resource(entry["resource"])
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    for ref in checks.references(bundle):
        assert ref in urls, f"reference {ref} does not resolve inside the bundle"
    assert not checks.empty_elements(bundle)


def x12_of(raw: bytes) -> X12Message:
    parsed = codec.parse(raw)
    assert isinstance(parsed.body, X12Message)
    return parsed.body


def fixture(case: str) -> bytes:
    return TO_FHIR.input(case)


def main(bundle: dict) -> dict:
    return bundle["entry"][0]["resource"]


def resources(bundle: dict, kind: str) -> list[dict]:
    return checks.of_type(bundle, kind)


# ---- fixtures ---------------------------------------------------------------------------

TestFixtures = checks.fixture_tests(TO_FHIR, min_cases=9, min_outputs=7, output=check_pas_bundle)


class TestReverseFixtures(checks.fixture_tests(TO_X12, min_cases=5, min_outputs=2)):  # type: ignore[misc]
    """fhir-to-x12-278@1's fixtures (compared element by element of the set)."""


@pytest.mark.parametrize("case", TO_FHIR.cases)
def test_each_278_fixture_reads_without_structure_issues(case: str) -> None:
    message = x12_of(fixture(case))
    assert message.tree is not None
    assert [i.text for i in message.issues] == []


@pytest.mark.parametrize("case", TO_X12.output_cases)
def test_each_written_278_reads_without_structure_issues_and_is_accepted(case: str) -> None:
    raw = TO_X12.input(case)
    written = run(checks.mapping(TO_X12.ref), raw)
    assert isinstance(written, bytes)
    parsed = codec.parse(written)
    assert codec.validate(parsed, "strict") == []
    reply = codec.reply(written, parsed, Outcome(Verdict.ACCEPTED)).decode()
    assert "IK5*A" in reply and "AK9*A*1*1*1" in reply


# ---- what the receiver sees ---------------------------------------------------------------


def test_a_request_is_a_pas_claim_with_its_parties(to_fhir) -> None:
    bundle = bundle_of(to_fhir, fixture("inpatient_admission_request"))
    claim = main(bundle)
    assert claim["resourceType"] == "Claim"
    assert claim["identifier"] == [{"system": "urn:conduit:id:x12:1760854442",
                                    "value": "NWMC-ADM-55120"}]
    assert claim["type"]["coding"][0]["code"] == "institutional"
    assert claim["subType"]["coding"][0]["code"] == "AR"
    assert claim["priority"]["coding"][0]["code"] == "stat"  # UM06 U
    by_id = {r["id"]: r for r in (e["resource"] for e in bundle["entry"])}
    insurer = by_id[claim["insurer"]["reference"].removeprefix("urn:uuid:")]
    assert insurer["name"] == "ACME HEALTH PLAN"
    assert insurer["type"][0]["coding"][0]["code"] == "pay"
    provider = by_id[claim["provider"]["reference"].removeprefix("urn:uuid:")]
    assert provider["name"] == "NORTHWIND MEDICAL CENTER"
    assert {"system": "phone", "value": "5035550142"} in provider["telecom"]
    patient = by_id[claim["patient"]["reference"].removeprefix("urn:uuid:")]
    assert patient["birthDate"] == "1958-04-12"
    coverage = resources(bundle, "Coverage")[0]
    assert coverage["relationship"]["coding"][0]["code"] == "self"
    assert coverage["class"][0]["value"] == "GRP77310"
    assert [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim["diagnosis"]] \
        == ["I25.10", "E11.9", "I10"]
    assert claim["diagnosis"][0]["type"][0]["coding"][0]["code"] == "admitting"
    roles = [m["role"]["coding"][0]["code"] for m in claim["careTeam"]]
    assert roles == ["71", "FA"]


def test_each_service_is_an_item_with_its_code_dates_and_quantity(to_fhir) -> None:
    claim = main(bundle_of(to_fhir, fixture("outpatient_services_dependent_pipe")))
    first, second = claim["item"]
    assert first["productOrService"]["coding"][0] == {
        "system": "http://www.ama-assn.org/go/cpt", "code": "73721"}
    assert first["modifier"][0]["coding"][0]["code"] == "26"
    assert first["servicedDate"] == "2026-04-20"
    assert first["quantity"] == {"value": 1}
    assert first["net"] == {"value": 1200, "currency": "USD"}
    assert first["locationCodeableConcept"]["coding"][0]["code"] == "22"  # event's UM04
    # units from HSD when the line has none; a period of service
    assert second["quantity"] == {"value": 12, "system": "https://codesystem.x12.org/005010/673",
                                  "code": "VS"}
    assert second["servicedPeriod"] == {"start": "2026-04-22", "end": "2026-05-31"}
    assert second["category"]["coding"][0]["code"] == "PT"
    trace = [e for e in second["extension"] if e["url"] == PAS + "extension-itemTraceNumber"]
    assert trace[0]["valueIdentifier"]["value"] == "RBO-SV-2"


def test_a_dependent_is_the_patient_and_the_subscriber_holds_the_coverage(to_fhir) -> None:
    bundle = bundle_of(to_fhir, fixture("outpatient_services_dependent_pipe"))
    claim, coverage = main(bundle), resources(bundle, "Coverage")[0]
    patients = {p["id"]: p for p in resources(bundle, "Patient")}
    patient = patients[claim["patient"]["reference"].removeprefix("urn:uuid:")]
    subscriber = patients[coverage["subscriber"]["reference"].removeprefix("urn:uuid:")]
    assert patient["name"][0]["given"] == ["LUCY"]
    assert subscriber["name"][0]["given"] == ["THOMAS"]
    assert coverage["relationship"]["coding"][0]["code"] == "child"
    assert coverage["subscriberId"] == "ACM300219877"


def test_an_event_without_services_is_one_item_of_its_service_type(to_fhir) -> None:
    claim = main(bundle_of(to_fhir, fixture("specialty_referral_caret_crlf")))
    (item,) = claim["item"]
    assert item["productOrService"]["coding"][0] == {
        "system": "https://codesystem.x12.org/005010/1365", "code": "3"}
    assert item["quantity"]["value"] == 3 and item["quantity"]["code"] == "VS"
    assert claim["subType"]["coding"][0]["code"] == "SC"


def review_action(adjudication: dict) -> dict:
    (action,) = [e for e in adjudication["extension"] if e["url"] == PAS + "extension-reviewAction"]
    return {part["url"].removeprefix(PAS): part.get("valueString") or
            part["valueCodeableConcept"]["coding"][0]["code"] for part in action["extension"]}


def test_a_certified_response_carries_the_authorization_number_and_period(to_fhir) -> None:
    answer = main(bundle_of(to_fhir, fixture("certified_response")))
    assert answer["resourceType"] == "ClaimResponse"
    assert answer["outcome"] == "complete"
    assert answer["preAuthRef"] == "ACM-AUTH-7781201"
    assert answer["preAuthPeriod"] == {"start": "2026-03-03", "end": "2026-03-06"}
    assert review_action(answer["adjudication"][0]) == {
        "extension-reviewActionCode": "A1", "number": "ACM-AUTH-7781201"}
    assert review_action(answer["item"][0]["adjudication"][0])["number"] == \
        "ACM-AUTH-7781201-1"
    # the request it answers, by the trace number the provider sent (TRN01 2)
    assert answer["request"]["identifier"]["value"] == "NWMC-ADM-55120"


def test_a_denial_says_not_certified_with_its_reason_per_service(to_fhir) -> None:
    answer = main(bundle_of(to_fhir, fixture("denied_response_pipe")))
    assert review_action(answer["adjudication"][0]) == {
        "extension-reviewActionCode": "A3", "reasonCode": "0V"}
    decisions = [review_action(i["adjudication"][0]) for i in answer["item"]]
    assert [d["extension-reviewActionCode"] for d in decisions] == ["A3", "A1"]
    assert decisions[0]["reasonCode"] == "0V"
    assert answer["disposition"].startswith("IMAGING NOT SUPPORTED")
    assert "preAuthRef" not in answer  # nothing certified at the event level


def test_a_pended_review_is_queued(to_fhir) -> None:
    answer = main(bundle_of(to_fhir, fixture("pended_response_caret")))
    assert answer["outcome"] == "queued"
    assert review_action(answer["adjudication"][0])["extension-reviewActionCode"] == "A4"


def test_a_rejected_request_is_an_error_naming_the_reason_and_its_loop(to_fhir) -> None:
    answer = main(bundle_of(to_fhir, fixture("rejected_subscriber_not_found")))
    assert answer["outcome"] == "error"
    (error,) = answer["error"]
    assert [c["code"] for c in error["code"]["coding"]] == ["75", "C"]
    assert error["extension"][0]["valueString"] == "2010C"


def test_a_response_refused_before_the_event_is_an_error_at_the_umo(to_fhir, to_x12) -> None:
    bundle = bundle_of(to_fhir, fixture("umo_unavailable_response"))
    answer = main(bundle)
    assert answer["outcome"] == "error" and "item" not in answer
    (error,) = answer["error"]
    assert [c["code"] for c in error["code"]["coding"]] == ["42", "Y"]
    assert error["extension"][0]["valueString"] == "2000A"
    written = x12_of(run(to_x12, bundle))
    assert written.hl("EV") == [] and written.hl("22")[0].segments[0].element(4) == "0"
    assert written.tree.first("2000A").value("AAA03") == "42"


def test_same_member_is_the_same_patient_in_request_and_response(to_fhir) -> None:
    asked = bundle_of(to_fhir, fixture("inpatient_admission_request"))
    answered = bundle_of(to_fhir, fixture("certified_response"))
    assert main(asked)["patient"] == main(answered)["patient"]
    assert main(asked)["insurer"] == main(answered)["insurer"]


def test_a_request_carrying_a_decision_is_read_as_a_response(to_fhir) -> None:
    """HCR tells a response even when BHT02 says otherwise; the structure reader, which
    follows BHT02, reports the HCR as unexpected in a request."""
    raw = fixture("pended_response_caret").replace(b"^11^", b"^13^", 1)
    assert main(bundle_of(to_fhir, raw))["resourceType"] == "ClaimResponse"
    issues = x12_of(raw).issues
    assert [(i.segment, i.code) for i in issues] == [("HCR", "2")]


# ---- the structure: request and response under one definition ----------------------------


def test_request_and_response_tables_differ_where_the_guide_says() -> None:
    response, request = REVIEW.root.body  # BHT02 11 first; any other BHT is a request
    assert response.trigger.qualifiers == ("11",) and not request.trigger.qualifiers
    assert {item.id for item in _event(request).body} >= {"2010EB", "2010EC"}
    assert _names(request)["2010EB"] == "Patient event transport information"
    assert _names(response)["2010EB"] == "Additional patient information contact name"
    assert "HCR" not in {item.id for item in _event(request).body}
    raw = fixture("certified_response")
    tree = x12_of(raw).tree
    assert tree is not None
    assert [n.id for n in tree.children] == ["ST"]  # the response header
    assert tree.children[0].loop.name == "278 response header"
    event = tree.first("2000E")
    assert event is not None and event.seg("HCR") is not None


def _loops(loop: Loop) -> list[Loop]:
    """A definition's loop and every loop in it."""
    return [loop, *(inner for item in loop.body if isinstance(item, Loop)
                    for inner in _loops(item))]


def _event(table: Loop) -> Loop:
    return next(loop for loop in _loops(table) if loop.id == "2000E")


def _names(table: Loop) -> dict[str, str]:
    return {loop.id: loop.name for loop in _loops(_event(table))}


def test_a_bad_bht01_gets_an_ik4_and_the_999_names_no_loop_for_the_header() -> None:
    raw = fixture("certified_response").replace(b"BHT*0007", b"BHT*0019", 1)
    parsed = codec.parse(raw)
    problems = codec.validate(parsed, "strict")
    assert [p.where[:4] for p in problems] == [("BHT", "2", "ST", "8")]
    reply = codec.reply(raw, parsed, Outcome(Verdict.REJECTED, tuple(problems))).decode()
    assert "IK3*BHT*2**8~" in reply.replace("\n", "") and "IK4*1**7" in reply


def test_odd_values_are_mapped_around_never_crash(to_fhir) -> None:
    raw = fixture("outpatient_services_dependent_pipe")
    raw = raw.replace(b"SV1|HC^73721^26|1200|UN|1", b"SV1||ABC|UN|many")
    raw = raw.replace(b"DTP|472|D8|20260420", b"DTP|472|D8|20261340")
    raw = raw.replace(b"HI|ABK^M25561|ABF^S83241A", b"HI|XX^M25561|ABF")
    bundle = bundle_of(to_fhir, raw)
    check_pas_bundle(bundle)
    item = main(bundle)["item"][0]
    assert "servicedDate" not in item and "quantity" not in item
    assert item["productOrService"]["coding"][0]["code"] == "73"  # the service type


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", TO_FHIR.output_cases)
def test_278_to_fhir_to_278_keeps_the_facts(case: str, to_fhir, to_x12) -> None:
    original = fixture(case)
    first = run(to_fhir, original)
    written = run(to_x12, first)
    assert isinstance(first, bytes) and isinstance(written, bytes)
    assert x12_of(written).issues == []
    assert run(to_fhir, written) == first  # the same review, byte for byte in FHIR
    before, after = x12_of(original), x12_of(written)
    assert facts(after) == facts(before)


_FACTS = {"NM1": (1, 3, 4, 9), "HCR": (1, 2, 3), "HI": tuple(range(1, 13)), "SV1": (1, 2),
          "SV2": (1, 2, 3), "UM": (1, 2, 3), "TRN": (2,), "AAA": (3, 4), "DMG": (2, 3),
          "DTP": (1, 2, 3), "MSG": (1,), "INS": (2,)}
# A response keeps each UM whole (UM04 facility, UM06 level of service too) and its
# lines but for their charges, which ClaimResponse has no place for (x12-278-to-fhir/v1.py).
_RESPONSE_LINES = {"SV1": (1, 3, 4), "SV2": (1, 2, 4, 5), "UM": (1, 2, 3, 4, 6)}
_EVENT_PROVIDERS = ("71", "72", "73", "77", "AAJ", "DD", "DK", "DN", "G3", "P3", "SJ")


def facts(message: X12Message) -> dict[str, list[str]]:
    """What a 278 says that both sides act on, by segment (not by position): names and
    ids, the decision, the review's and each service's UM, the codes asked for or
    authorized, the dates (certification dates as one period), the messages."""
    response = message.value("BHT02") == "11"
    out: dict[str, list[str]] = {}
    for seg in message.segments:
        if seg.id not in _FACTS:
            continue
        if response and seg.id == "NM1" and seg.element(1) in _EVENT_PROVIDERS:
            continue
        if seg.id == "INS" and seg.element(1) == "Y":
            continue  # the subscriber's own INS*Y*18 is Coverage.relationship self
        if response and seg.id == "DTP" and seg.element(1) not in ("007", "036", "472"):
            continue
        elements = _RESPONSE_LINES.get(seg.id, _FACTS[seg.id]) if response else \
            _FACTS[seg.id]
        values = [seg.element(i).replace(seg.delimiters.component, ":") for i in elements]
        out.setdefault(seg.id, []).append("|".join(values))
    if "DTP" in out:
        out["DTP"] = _one_period(out["DTP"])
    return out


def _one_period(values: list[str]) -> list[str]:
    """Certification dates as one period: 007 D8 and 036 D8 say what 007 RD8 says."""
    effective = next((v for v in values if v.startswith("007|D8|")), "")
    expires = next((v for v in values if v.startswith("036|D8|")), "")
    if effective and expires:
        values = [v for v in values if v not in (effective, expires)]
        values.append(f"007|RD8|{effective[7:]}-{expires[7:]}")
    return sorted(values)


def test_a_pas_request_to_278_and_back_keeps_the_claim(to_fhir, to_x12) -> None:
    sent = json.loads(TO_X12.input("pas_request_knee_arthroscopy"))
    back = bundle_of(to_fhir, run(to_x12, sent))
    claim, original = main(back), sent["entry"][0]["resource"]
    for element in ("use", "subType", "priority", "diagnosis", "supportingInfo"):
        assert claim[element] == original[element], element
    item, asked = claim["item"][0], original["item"][0]
    for element in ("productOrService", "modifier", "servicedDate", "category",
                    "locationCodeableConcept", "quantity"):
        assert item[element] == asked[element], element
    assert item["net"]["value"] == asked["net"]["value"]
    assert claim["identifier"] == original["identifier"]
    patient = resources(back, "Patient")[0]
    assert patient["name"][0]["family"] == "HOLLIS" and patient["birthDate"] == "1966-08-30"


def test_a_payer_answers_with_a_278_response_the_provider_reads_back(to_fhir, to_x12) -> None:
    sent = json.loads(TO_X12.input("pas_response_modified"))
    written = run(to_x12, sent)
    assert isinstance(written, bytes)
    assert x12_of(written).value("BHT02") == "11"
    answer = main(bundle_of(to_fhir, written))
    original = sent["entry"][0]["resource"]
    for element in ("preAuthRef", "preAuthPeriod", "disposition", "outcome", "request",
                    "identifier"):
        assert answer[element] == original[element], element
    assert review_action(answer["item"][0]["adjudication"][0]) == {
        "extension-reviewActionCode": "A6", "number": "ACM-AUTH-8830114-1",
        "reasonCode": "0P"}


def test_the_written_interchange_is_deterministic_and_dated_from_the_input(to_x12) -> None:
    sent = json.loads(TO_X12.input("pas_request_knee_arthroscopy"))
    written = run(to_x12, sent)
    assert written == run(to_x12, checks.reversed_keys(sent))
    message = x12_of(written)
    assert message.value("BHT04") == "20260601" and message.value("ISA09") == "260601"
    assert message.value("GS01") == "HI" and message.value("ST03") == "005010X217"


def _request_bundle() -> dict:
    raw = (TO_X12.folder / "pas_request_knee_arthroscopy.json").read_bytes()
    return json.loads(raw)


def test_a_separator_typed_in_a_name_becomes_a_space_not_a_failure(to_x12) -> None:
    bundle = _request_bundle()
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["name"][0]["family"] = "O*BRIEN~SMITH"
    written = x12_of(run(to_x12, bundle))
    assert "O BRIEN SMITH" in [s.element(3) for s in written.segments if s.id == "NM1"]
    assert codec.validate(codec.parse(run(to_x12, bundle)), "strict") == []


def test_an_identifier_holding_a_separator_fails_naming_its_element(to_x12) -> None:
    bundle = _request_bundle()
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    patient["identifier"][0]["value"] = "MEM*0042"
    with pytest.raises(MappingError) as failed:
        run(to_x12, bundle)
    assert "NM109" in str(failed.value) and "MEM*0042" not in str(failed.value)


def test_a_response_keeps_each_services_um_dates_line_and_the_diagnoses(to_fhir) -> None:
    answer = main(run_json(to_fhir, fixture("modified_response_services_hi")))
    urls = {e["url"]: e for e in answer["extension"]}
    assert urls[PAS + "extension-certificationType"]["valueCodeableConcept"]["coding"][0][
        "code"] == "I"
    assert [e["valueCodeableConcept"]["coding"][0]["code"] for e in answer["extension"]
            if e["url"] == PAS + "extension-communicatedDiagnosis"] == ["M17.11", "M25.561"]
    therapy = {e["url"]: e for e in answer["item"][1]["extension"]}
    assert therapy["urn:conduit:fhir:extension:x12-service-date"]["valuePeriod"] == {
        "start": "2026-08-10", "end": "2026-10-10"}
    detail = {p["url"]: p for p in therapy[PAS + "extension-itemAuthorizedDetail"]["extension"]}
    assert detail["productOrServiceCode"]["valueCodeableConcept"]["coding"][0]["code"] == \
        "97110"
    assert detail["modifier"]["valueCodeableConcept"]["coding"][0]["code"] == "GP"
    assert detail["quantity"]["valueQuantity"]["value"] == 8
    assert therapy["urn:conduit:fhir:extension:x12-facility"]["valueCodeableConcept"][
        "coding"][0]["code"] == "11"


def run_json(mapping, raw: bytes) -> dict:
    out = run(mapping, raw)
    return out if isinstance(out, dict) else json.loads(out)
