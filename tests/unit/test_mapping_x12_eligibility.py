"""x12-270-to-fhir@1, fhir-to-x12-270@1 and x12-271-to-fhir@1: every fixture (as
`conduit test` runs it), valid R4 out, determinism, 270 -> FHIR -> 270 keeping the
facts, a 271 naming the request and the Patient its 270 made, and what a payer's answer
says (copays, deductibles, coinsurance, inactive coverage, rejections)."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from engine.errors import MappingError
from engine.formats.x12 import X12Codec
from engine.formats.x12.build import interchange
from engine.formats.x12.message import X12Message
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import bundle_of, of_type, run

INQUIRY = checks.Fixtures("x12-270-to-fhir@1", input_ext=".x12")
BUILD = checks.Fixtures("fhir-to-x12-270@1", input_ext=".json", output_ext=".x12")
RESPONSE = checks.Fixtures("x12-271-to-fhir@1", input_ext=".x12")
FHIR = "application/fhir+json"
X12 = "application/edi-x12"
CONTAINED = re.compile(r"#\w+\Z")
codec = X12Codec()

to_fhir = checks.mapping_fixture(INQUIRY.ref, accepts="x12", emits=FHIR)
to_270 = checks.mapping_fixture(BUILD.ref, accepts="fhir", emits=X12)
answers = checks.mapping_fixture(RESPONSE.ref, accepts="x12", emits=FHIR)


def _valid_request_bundle(bundle: dict) -> None:
    checks.check_transaction(bundle, CONTAINED)
    for request in of_type(bundle, "CoverageEligibilityRequest"):
        assert request["contained"][0]["id"] == "coverage"


TestInquiryFixtures = checks.fixture_tests(INQUIRY, min_cases=5, min_outputs=4,
                                           output=_valid_request_bundle)
TestBuildFixtures = checks.fixture_tests(BUILD, min_cases=5, min_outputs=3)
TestResponseFixtures = checks.fixture_tests(RESPONSE, min_cases=6, min_outputs=5,
                                            output=checks.check_transaction)


def _parse_270(out: bytes | Skip) -> X12Message:
    assert isinstance(out, bytes), out
    parsed = codec.parse(out)
    assert parsed.message_type == "270"
    assert parsed.body.issues == [], [i.text for i in parsed.body.issues]
    return parsed.body


# ---- fhir-to-x12-270 --------------------------------------------------------------------


@pytest.mark.parametrize("case", BUILD.output_cases)
def test_each_270_written_reads_back_with_no_structure_issue(to_270: Mapping, case: str
                                                             ) -> None:
    out = run(to_270, BUILD.input(case))
    assert isinstance(out, bytes)
    message = _parse_270(out)
    assert message.convention == "005010X279A1"
    assert codec.split(out) is None  # one interchange, one group, one set: counts agree


def _request(**changes: Any) -> dict:
    bundle = json.loads(BUILD.input("bundle_subscriber_practitioner_items"))
    for entry in bundle["entry"]:
        kind = entry["resource"]["resourceType"]
        if kind in changes:
            entry["resource"].update(changes[kind])
    return bundle


def test_a_subscriber_is_asked_about_at_the_subscriber_level(to_270: Mapping) -> None:
    tree: Any = _parse_270(run(to_270, _request())).tree
    subscriber = tree.first("2000C")
    assert subscriber.first("2000D") is None
    assert subscriber.value("TRN02") == "LV-27001"
    assert subscriber.value("TRN03") == "1416093725"
    name = subscriber.first("2100C")
    assert (name.value("NM103"), name.value("NM108"), name.value("NM109")) == (
        "Strand", "MI", "NSM4420018801")
    assert name.value("DMG02") == "19790823"
    assert name.value("DTP[291]03") == "20261206"
    assert [(eq.value("EQ01"), eq.value("EQ02-2")) for eq in name.kids("2110C")] == [
        ("30", ""), ("AL", "92014"), ("MH", "")]
    provider = tree.first("2100B")
    assert (provider.value("NM102"), provider.value("NM108"), provider.value("NM109")) == (
        "1", "XX", "1003987650")


def test_a_dependent_is_asked_about_below_the_subscriber(to_270: Mapping) -> None:
    tree: Any = _parse_270(run(to_270, BUILD.input("contained_dependent_spouse_period"))).tree
    subscriber = tree.first("2000C")
    assert subscriber.first("2100C").value("NM109") == "SHA900221450"
    assert subscriber.value("TRN02") == ""
    dependent = subscriber.kids("2000D")[0]
    assert dependent.value("TRN02") == "cer-spouse-77"
    name = dependent.first("2100D")
    assert (name.value("NM103"), name.value("NM104"), name.value("INS02")) == (
        "Vanterpool", "Renata", "01")
    assert name.value("DTP[291]02") == "RD8"
    assert [eq.value("EQ01") for eq in name.kids("2110D")] == ["35"]


def test_same_request_same_bytes_and_created_is_the_only_clock(to_270: Mapping) -> None:
    first = run(to_270, _request())
    later = run(to_270, _request(CoverageEligibilityRequest={
        "created": "2026-12-08T09:45:00-06:00"}))
    assert isinstance(first, bytes) and isinstance(later, bytes)
    assert first == run(to_270, _request())
    assert b"*261206*1130*" in first and b"*261208*0945*" in later
    without = copy.deepcopy(_request())
    del without["entry"][4]["resource"]["created"]
    checks.check_error(to_270, without, "CoverageEligibilityRequest.created")


def test_an_identifier_holding_a_separator_fails_naming_it_never_showing_it(
        to_270: Mapping) -> None:
    bad = _request(Coverage={"subscriberId": "NSM44*2001"})
    checks.check_error(to_270, bad, "Coverage.subscriberId", phi=["NSM44*2001", "Strand"])


def test_a_request_without_a_provider_fails_naming_it(to_270: Mapping) -> None:
    bad = _request()
    del bad["entry"][4]["resource"]["provider"]
    checks.check_error(to_270, bad, "CoverageEligibilityRequest.provider")


def test_a_subscriber_without_id_or_name_and_birth_date_fails(to_270: Mapping) -> None:
    bad = _request(Coverage={"subscriberId": None}, Patient={"birthDate": None})
    bad = json.loads(json.dumps(bad).replace(', "subscriberId": null', "").replace(
        ', "birthDate": null', ""))
    for entry in bad["entry"]:
        entry["resource"] = {k: v for k, v in entry["resource"].items() if v is not None}
    checks.check_error(to_270, bad, "Coverage.subscriberId", phi=["Strand"])


# ---- 270 -> FHIR -> 270 -----------------------------------------------------------------


def _facts(message: X12Message) -> list[dict[str, Any]]:
    """What a 270 asks, per person asked about: who asks whom, about whom, for what."""
    tree: Any = message.tree
    payer = tree.first("2100A")
    out = []
    for receiver in tree.all("2000B"):
        provider = receiver.first("2100B")
        for subscriber in receiver.kids("2000C"):
            sub_name = subscriber.first("2100C")
            people: list[Any] = [(d, d.first("2100D"), "D")
                                 for d in subscriber.kids("2000D")]
            if sub_name.kids("2110C") or not people:
                people.insert(0, (subscriber, sub_name, "C"))
            for level, name, letter in people:
                eqs = name.kids(f"2110{letter}")
                out.append({
                    "payer": (payer.value("NM103"), payer.value("NM109")),
                    "provider": tuple(provider.value(f"NM1{i:02d}") for i in range(2, 10)),
                    "provider_address": (provider.value("N301"), provider.value("N401")),
                    "member_id": sub_name.value("NM109"),
                    "dependent": letter == "D",
                    "name": tuple(name.value(f"NM1{i:02d}") for i in (3, 4, 5, 7)),
                    "address": (name.value("N301"), name.value("N302"), name.value("N401"),
                                name.value("N402"), name.value("N403")),
                    "dmg": (name.value("DMG02"), name.value("DMG03")),
                    "relationship": name.value("INS02"),
                    "date": (name.value("DTP[291]02") or "", name.value("DTP[291]03")),
                    "asks": [(code, eq.value("EQ02-1"), eq.value("EQ02-2"))
                             for eq in eqs for code in
                             (eq.seg("EQ").elements[1].split(eq.seg("EQ").delimiters.repetition)
                              if eq.value("EQ01") else [""])],
                    "trace": (level.value("TRN02"), level.value("TRN03")),
                })
    return out


def _one_request_bundles(bundle: dict) -> list[dict]:
    requests = [e for e in bundle["entry"]
                if e["resource"]["resourceType"] == "CoverageEligibilityRequest"]
    others = [e for e in bundle["entry"] if e not in requests]
    return [{**bundle, "entry": [*others, request]} for request in requests]


@pytest.mark.parametrize("case", INQUIRY.output_cases)
def test_270_to_fhir_to_270_keeps_the_facts(to_fhir: Mapping, to_270: Mapping,
                                            case: str) -> None:
    original = codec.parse(INQUIRY.input(case)).body
    bundle = bundle_of(to_fhir, INQUIRY.input(case))
    again = [fact for single in _one_request_bundles(bundle)
             for fact in _facts(_parse_270(run(to_270, single)))]
    assert again == _facts(original)


# ---- x12-270-to-fhir --------------------------------------------------------------------


def test_a_dependent_inquiry_names_the_subscriber_as_its_coverage_holder(
        to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, INQUIRY.input("availity_dependent_practitioner"))
    [request] = of_type(bundle, "CoverageEligibilityRequest")
    subscriber, dependent = of_type(bundle, "Patient")
    coverage = request["contained"][0]
    assert request["patient"] == {"reference": f"urn:uuid:{dependent['id']}"}
    assert coverage["subscriber"] == {"reference": f"urn:uuid:{subscriber['id']}"}
    assert coverage["subscriberId"] == "SHA900221450"
    assert coverage["relationship"]["coding"][0]["code"] == "child"
    assert [i["category"]["coding"][0]["code"] for i in request["item"]] == [
        "30", "98", "UC"]
    assert [i["value"] for i in request["identifier"]] == ["AV-552-0091", "CLR-88120"]
    assert of_type(bundle, "Practitioner")[0]["identifier"][0]["value"] == "1679576722"


def test_two_subscribers_give_two_requests_and_a_name_search_has_no_member_id(
        to_fhir: Mapping) -> None:
    bundle = bundle_of(to_fhir, INQUIRY.input("medicaid_two_subscribers_caret"))
    first, second = of_type(bundle, "CoverageEligibilityRequest")
    assert first["contained"][0]["subscriberId"] == "GP009918273"
    assert "subscriberId" not in second["contained"][0]
    assert second["servicedDate"] == "2026-12-05" and "servicedDate" not in first
    assert first["id"] != second["id"]


def test_a_bad_date_is_left_out_not_fatal(to_fhir: Mapping) -> None:
    raw = INQUIRY.input("cms_hets_subscriber_rd8").replace(b"20261101-20261130",
                                                           b"20261131-20261199")
    [request] = of_type(bundle_of(to_fhir, raw), "CoverageEligibilityRequest")
    assert "servicedPeriod" not in request and "servicedDate" not in request


# ---- x12-271-to-fhir --------------------------------------------------------------------


def _response(answers: Mapping, case: str) -> tuple[dict, Any, dict]:
    return _response_of(answers, RESPONSE.input(case))


def _response_of(answers: Mapping, raw: bytes) -> tuple[dict, Any, dict]:
    out = run(answers, raw)
    assert isinstance(out, bytes)
    bundle = json.loads(out, parse_float=Decimal)
    [response] = of_type(bundle, "CoverageEligibilityResponse")
    coverages = of_type(bundle, "Coverage")
    return response, coverages[0] if coverages else None, bundle


def _benefits(response: dict) -> list[tuple[str, str, str, str, Any]]:
    """(category or product, unit, network, X12 EB01, allowed) of every benefit."""
    out = []
    for item in response["insurance"][0]["item"]:
        what = item.get("category") or item["productOrService"]

        def code(concept: dict | None, system: str = "") -> str:
            return next((c["code"] for c in (concept or {}).get("coding", [])
                         if not system or c["system"] == system), "")

        for benefit in item.get("benefit", []):
            allowed = next((v for k, v in benefit.items() if k.startswith("allowed")), None)
            out.append((code(what), code(item.get("unit"), "urn:conduit:code:x12:1207"),
                        code(item.get("network")),
                        code(benefit["type"], "urn:conduit:code:x12:1390"), allowed))
    return out


def test_copays_deductibles_coinsurance_and_out_of_pocket_are_read(answers: Mapping
                                                                   ) -> None:
    response, coverage, _ = _response(answers, "commercial_many_benefits")
    usd = lambda v: {"value": Decimal(v), "currency": "USD"}  # noqa: E731
    found = _benefits(response)
    for expected in [
        ("30", "IND", "in", "C", usd("3000")), ("30", "IND", "in", "C", usd("1123.45")),
        ("30", "FAM", "in", "C", usd("6000")), ("30", "IND", "out", "C", usd("6000")),
        ("30", "IND", "in", "G", usd("7500")), ("98", "IND", "in", "B", usd("30")),
        ("UC", "IND", "in", "B", usd("75")), ("30", "IND", "in", "A", 20),
        ("30", "IND", "out", "A", 40), ("48", "IND", "in", "A", "12.5%"),
        ("AL", "IND", "in", "F", 1), ("92014", "IND", "in", "B", usd("15")),
    ]:
        assert expected in found, expected
    assert response["outcome"] == "complete" and response["insurance"][0]["inforce"] is True
    assert coverage["status"] == "active"
    assert coverage["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert [(c["type"]["coding"][0]["code"], c["value"]) for c in coverage["class"]] == [
        ("group", "GRP-77120"), ("plan", "PPO3000")]
    remaining = [i for i in response["insurance"][0]["item"]
                 if any(c["code"] == "29" for c in i.get("term", {}).get("coding", []))]
    assert remaining and remaining[0]["term"]["coding"][0]["display"] == "Remaining"


def test_the_primary_care_provider_of_an_eb_is_its_items_provider(answers: Mapping) -> None:
    response, _, bundle = _response(answers, "commercial_many_benefits")
    [doctor] = of_type(bundle, "Practitioner")
    pcp = [i for i in response["insurance"][0]["item"] if "provider" in i]
    assert pcp[0]["provider"] == {"reference": f"urn:uuid:{doctor['id']}"}
    assert doctor["identifier"][0]["value"] == "1003987650"


def test_inactive_coverage_is_cancelled_and_not_in_force(answers: Mapping) -> None:
    response, coverage, _ = _response(answers, "inactive_coverage")
    assert coverage["status"] == "cancelled"
    assert coverage["period"] == {"start": "2024-01-01", "end": "2026-08-31"}
    assert response["insurance"][0]["inforce"] is False
    assert response["disposition"] == "Inactive coverage"


def test_a_rejected_subscriber_is_an_error_with_the_payers_reasons(answers: Mapping) -> None:
    response, coverage, _ = _response(answers, "aaa_subscriber_not_found")
    assert coverage is None and "insurance" not in response
    assert response["outcome"] == "error"
    assert [e["code"]["coding"][0]["code"] for e in response["error"]] == ["75", "58"]
    assert "Subscriber/Insured Not Found (Please Correct and Resubmit)" in \
        response["disposition"]


def test_a_payer_that_could_not_answer_still_answers_its_caller(answers: Mapping) -> None:
    response, coverage, bundle = _response(answers, "payer_unable_to_respond")
    assert coverage is None and not of_type(bundle, "Patient")
    assert response["outcome"] == "error"
    assert response["error"][0]["code"]["coding"][0]["code"] == "42"
    assert response["request"] == {"identifier": {"system": "urn:conduit:id:x12:bht",
                                                  "value": "REQ-DOWN-0001"}}


def test_medicare_parts_and_another_payers_plan_are_told_apart(answers: Mapping) -> None:
    response, coverage, _ = _response(answers, "hets_medicare_pipe")
    assert coverage["type"]["coding"][0]["code"] == "MA"
    assert coverage["period"] == {"start": "2013-02-01"}  # the 291 only echoes the ask
    assert "class" not in coverage  # EB R is another payer's plan, not this coverage's
    other = [i for i in response["insurance"][0]["item"] if i.get("name") == "MEDICARE PART D"]
    assert other[0]["benefit"][0]["type"]["coding"][0]["code"] == "R"


@pytest.mark.parametrize(("inquiry", "answer"), [
    ("commercial_procedure_address_crlf", "commercial_many_benefits"),
    ("cms_hets_subscriber_rd8", "hets_medicare_pipe"),
    ("availity_dependent_practitioner", "medicaid_dependent_caret"),
])
def test_a_271_names_the_request_and_the_patient_its_270_made(
        to_fhir: Mapping, answers: Mapping, inquiry: str, answer: str) -> None:
    [request] = of_type(bundle_of(to_fhir, INQUIRY.input(inquiry)),
                        "CoverageEligibilityRequest")
    response, _, _ = _response(answers, answer)
    assert response["request"]["identifier"] in request["identifier"]
    assert response["patient"] == request["patient"]
    assert response["insurer"] == request["insurer"]


# ---- the 270/271 structure ---------------------------------------------------------------


def test_an_inquiry_with_a_referral_number_reads_clean() -> None:
    raw = INQUIRY.input("commercial_procedure_address_crlf").replace(
        b"EQ*AL~\r\n", b"EQ*AL~\r\nREF*G1*RFL-2026-0042~\r\n").replace(
        b"SE*19*", b"SE*20*")
    parsed = codec.parse(raw)
    assert parsed.body.issues == []
    tree: Any = parsed.body.tree
    assert tree.all("2110C")[1].value("REF[G1]02") == "RFL-2026-0042"


def test_a_response_with_the_receivers_address_reads_clean() -> None:
    raw = RESPONSE.input("inactive_coverage").replace(
        b"XX|1093817465~\n", b"XX|1093817465~\nN3|2200 RIVER RD~\nN4|SAINT PAUL|MN|55116~\n"
    ).replace(b"SE|15|", b"SE|17|")
    parsed = codec.parse(raw)
    assert parsed.body.issues == []
    tree: Any = parsed.body.tree
    assert tree.first("2100B").value("N401") == "SAINT PAUL"


# ---- messy senders ----------------------------------------------------------------------


def _without_each_segment(raw: bytes) -> list[bytes]:
    """The set once without each of its body segments, SE01 fitted."""
    text = raw.decode()
    element, terminator = text[3], text[105]
    segments = text.split(terminator)
    body = [i for i, s in enumerate(segments)
            if s.strip() and not s.strip().startswith(("ISA", "GS", "GE", "IEA", "ST", "SE"))]
    out = []
    for index in body:
        kept = segments[:index] + segments[index + 1:]
        count = len(body) - 1 + 2  # the body left, ST and SE
        fitted = [element.join(["SE", str(count), *s.split(element)[2:]])
                  if s.strip().startswith(f"SE{element}") else s for s in kept]
        out.append(terminator.join(fitted).encode())
    return out


@pytest.mark.parametrize("fixtures", [INQUIRY, RESPONSE], ids=["270", "271"])
def test_a_missing_segment_anywhere_maps_or_fails_cleanly(fixtures: checks.Fixtures
                                                          ) -> None:
    mapping = checks.mapping(fixtures.ref)
    for case in fixtures.output_cases:
        for raw in _without_each_segment(fixtures.input(case)):
            try:
                out = run(mapping, raw)
            except MappingError as exc:
                assert "raised" not in str(exc), (case, str(exc))
                continue
            assert isinstance(out, bytes)
            checks.check_transaction(json.loads(out), CONTAINED)


def test_a_fhir_request_and_the_payers_answer_to_its_270_are_linked(
        to_270: Mapping, answers: Mapping) -> None:
    """The real-time flow: FHIR request -> 270 -> the payer echoes its TRN in a 271 ->
    FHIR response naming the request by that trace and the same member."""
    request = json.loads(BUILD.input("bundle_subscriber_practitioner_items"))["entry"][4][
        "resource"]
    asked: Any = _parse_270(run(to_270, BUILD.input("bundle_subscriber_practitioner_items")))
    tree = asked.tree
    subscriber, name = tree.first("2000C"), tree.first("2100C")
    payer = tree.first("2100A").seg("NM1").elements
    provider = tree.first("2100B").seg("NM1").elements
    body = [["BHT", "0022", "11", asked.value("BHT03"), "20261206", "1131"],
            ["HL", "1", "", "20", "1"], payer, ["HL", "2", "1", "21", "1"], provider,
            ["HL", "3", "2", "22", "0"],
            ["TRN", "2", subscriber.value("TRN02"), subscriber.value("TRN03")],
            name.seg("NM1").elements, ["EB", "1", "IND", "30"],
            ["EB", "B", "IND", "98", "", "", "27", "25"]]
    answer = interchange([("271", "005010X279A1", body)], sender=("ZZ", "60054"),
                         receiver=("ZZ", "1003987650"), when=datetime(2026, 12, 6, 11, 31))
    response, coverage, _ = _response_of(answers, answer.encode())
    assert response["request"]["identifier"]["value"] == request["identifier"][0]["value"]
    assert response["request"]["identifier"] == request["identifier"][0]
    assert coverage["subscriberId"] == "NSM4420018801"
    assert _benefits(response)[-1] == ("98", "IND", "", "B",
                                       {"value": Decimal("25"), "currency": "USD"})


def test_a_dependent_with_a_member_number_of_their_own_is_asked_about_as_subscriber(
        to_270: Mapping) -> None:
    request = json.loads(BUILD.input("contained_dependent_spouse_period"))
    spouse = request["contained"][0]
    spouse["identifier"] = [{"type": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
        "system": "urn:conduit:id:x12:SHA77", "value": "SHA900221451"}]
    tree: Any = _parse_270(run(to_270, request)).tree
    assert tree.first("2000D") is None
    name = tree.first("2100C")
    assert (name.value("NM104"), name.value("NM109")) == ("Renata", "SHA900221451")
    assert name.seg("INS") is None
