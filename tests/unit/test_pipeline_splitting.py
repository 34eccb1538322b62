"""engine/pipeline/splitting.py: which Bundle entries become messages, what each part carries,
and what is refused whole."""

from __future__ import annotations

import json

import msgspec
import pytest

from engine.config.rules import SplitConfig
from engine.pipeline.splitting import Splitter

STATUS_PROFILE = ("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                  "backport-subscription-status-r4")


def patient(pid: str, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid,
            "identifier": [{"system": "urn:oid:1.2.3", "value": f"MRN-{pid}"}], **extra}


def entry(resource: dict | None, method: str = "POST", **extra) -> dict:
    out: dict = {"fullUrl": f"urn:uuid:{(resource or {}).get('id', 'x')}", **extra}
    if resource is not None:
        out["resource"] = resource
    out["request"] = {"method": method, "url": resource["resourceType"] if resource else
                      "Patient/9"}
    return out


def bundle(kind: str, *entries: dict, **extra) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, **extra,
                       "entry": list(entries)}).encode()


OBSERVATION = {"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "x"}}


def split(raw: bytes, resource: str = "Patient"):
    return Splitter(SplitConfig(resource)).split(raw)


def parts(result) -> list[dict]:
    return [json.loads(m) for m in result.messages]


def test_a_batch_gives_one_part_per_patient_in_entry_order():
    raw = bundle("batch", entry(patient("a")), entry(patient("b")),
                 entry(OBSERVATION), entry(patient("c")),
                 timestamp="2024-03-01T10:00:00Z")
    result = split(raw)
    assert result.problems == [] and not result.atomic
    assert [p["id"] for p in parts(result)] == ["a", "b", "c"]
    assert [result.index(i) for i in range(3)] == [0, 1, 3]
    assert [d["split_from"] for d in result.details] == [0, 1, 3]
    first = result.details[0]
    assert {k: first[k] for k in ("parts", "entries", "dropped")} == {
        "parts": 3, "entries": 4, "dropped": 1}
    assert len({d["bundle"] for d in result.details}) == 1  # siblings tied by one hash
    # the part is the resource alone: no fullUrl, no request
    assert set(parts(result)[0]) == {"resourceType", "id", "identifier", "meta"}


@pytest.mark.parametrize("kind", ["batch", "collection", "searchset", "history"])
def test_other_bundle_types_split_with_independent_parts(kind):
    result = split(bundle(kind, entry(patient("a")), entry(patient("b"))))
    assert len(result.messages) == 2 and not result.atomic


def test_the_bundle_time_and_source_are_carried_only_where_missing():
    own = patient("b", meta={"lastUpdated": "2023-01-01T00:00:00Z", "source": "#own"})
    raw = bundle("batch", entry(patient("a")), entry(own),
                 timestamp="2024-03-01T10:00:00Z", meta={"source": "urn:oid:9.8.7"})
    result = split(raw)
    a, b = parts(result)
    assert a["meta"] == {"lastUpdated": "2024-03-01T10:00:00Z", "source": "urn:oid:9.8.7"}
    assert result.details[0]["carried"] == ["meta.lastUpdated", "meta.source"]
    assert b["meta"] == own["meta"] and "carried" not in result.details[1]


def test_decimals_keep_their_digits_in_a_part():
    raw = (b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":'
           b'{"resourceType":"Observation","id":"o","valueQuantity":{"value":7.20}}}]}')
    [part] = split(raw, "Observation").messages
    assert b'"value":7.20' in part


def test_a_part_without_an_id_gets_a_control_id_from_its_content():
    anonymous = {k: v for k, v in patient("x").items() if k != "id"}
    raw = bundle("transaction", entry(patient("a")), entry(anonymous),
                 timestamp="2024-03-01T10:00:00Z")
    result = split(raw)
    assert result.control_ids[0] == ""  # the codec's: id and version
    assert result.control_ids[1].startswith("sha256:") and len(result.control_ids[1]) == 47
    assert split(raw).control_ids == result.control_ids  # a resend: the same
    later = split(raw.replace(b"2024-03-01T10", b"2024-03-02T10"))
    assert later.control_ids[1] != result.control_ids[1]  # another Bundle time: new


def test_entries_without_a_resource_are_counted_not_taken():
    raw = bundle("batch", entry(None, "DELETE"), entry(patient("a")))
    result = split(raw)
    assert [p["id"] for p in parts(result)] == ["a"]
    assert result.details[0]["split_from"] == 1 and result.details[0]["dropped"] == 1


def test_a_transaction_with_an_entry_not_taken_is_refused_naming_each_entry():
    """A transaction is all or nothing (FHIR R4 http.html#transaction): an entry of
    another type, or one without a resource, refuses the whole Bundle."""
    raw = bundle("transaction", entry(patient("a")), entry(OBSERVATION), entry(patient("b")),
                 entry(None, "DELETE"))
    result = split(raw)
    assert result.messages == []
    assert [(p.segment, p.code) for p in result.problems] == [
        ("Bundle.entry[1]", "not-supported"), ("Bundle.entry[3]", "not-supported")]
    assert "Observation" in result.problems[0].text
    only_patients = split(bundle("transaction", entry(patient("a")), entry(patient("b"))))
    assert only_patients.problems == [] and only_patients.atomic
    assert [only_patients.index(i) for i in range(2)] == [0, 1]


@pytest.mark.parametrize("status", [
    {"resourceType": "SubscriptionStatus", "id": "s", "status": "active",
     "type": "event-notification"},
    {"resourceType": "Parameters", "id": "s", "meta": {"profile": [STATUS_PROFILE]},
     "parameter": [{"name": "status", "valueCode": "active"}]},
])
def test_a_notification_status_entry_is_envelope_even_under_star(status):
    raw = bundle("history", entry(status), entry(patient("a"), "PUT"), entry(OBSERVATION))
    result = split(raw, "*")
    assert [(p["resourceType"], p["id"]) for p in parts(result)] == [
        ("Patient", "a"), ("Observation", "o1")]
    assert [d["split_from"] for d in result.details] == [1, 2]


def test_a_nested_bundle_is_one_part_under_star():
    inner = json.loads(bundle("collection", entry(patient("x"))))
    inner["id"] = "inner"
    splitter = Splitter(SplitConfig("*"))
    result = splitter.split(bundle("collection", entry(inner), entry(patient("a"))))
    nested, _ = parts(result)
    assert nested["resourceType"] == "Bundle" and nested["entry"][0]["resource"]["id"] == "x"
    assert splitter.failure(nested) is None  # taken whole as a part, not filtered


@pytest.mark.parametrize("body, problem", [
    ({"entry": {"resource": {}}}, "Bundle.entry is not a list"),
    ({"entry": [{"resource": patient("a")}, "oops"]}, "Bundle.entry[1] is not an object"),
])
def test_a_malformed_bundle_is_refused_whole(body, problem):
    result = split(json.dumps({"resourceType": "Bundle", "type": "batch", **body}).encode())
    assert result.messages == [] and [p.text for p in result.problems] == [problem]


def test_a_bundle_with_nothing_to_split_goes_through_whole_and_is_filtered():
    splitter = Splitter(SplitConfig("Patient"))
    raw = bundle("collection", entry(OBSERVATION))
    assert splitter.split(raw) is None
    assert splitter.split(bundle("collection")) is None
    assert splitter.failure(json.loads(raw)) == "split: the Bundle holds no Patient entries"
    assert Splitter(SplitConfig("*")).failure(
        {"resourceType": "Bundle", "type": "collection"}) == "split: the Bundle holds no entries"


def test_anything_but_a_bundle_passes_through():
    splitter = Splitter(SplitConfig("Patient"))
    assert splitter.split(json.dumps(patient("a")).encode()) is None
    assert splitter.split(b"not json") is None
    assert splitter.failure(patient("a")) is None


def test_one_reply_locates_each_part_and_says_what_was_not_taken():
    splitter = Splitter(SplitConfig("Patient"))
    result = splitter.split(bundle("batch", entry(patient("a")), entry(OBSERVATION),
                                   entry(patient("b"))))
    accepted = msgspec.json.encode({"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "accepted"}]})
    failed = msgspec.json.encode({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "mapping failed"}]})
    reply = json.loads(splitter.reply(result, [accepted, failed], ["M1", "M2"]))
    assert reply["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i.get("expression"), i["diagnostics"]) for i in reply["issue"]] == [
        ("information", ["Bundle.entry[0].resource"], "message M1: accepted"),
        ("error", ["Bundle.entry[2].resource"], "message M2: mapping failed"),
        ("information", None, "1 entry was not taken (not Patient entries)"),
    ]
