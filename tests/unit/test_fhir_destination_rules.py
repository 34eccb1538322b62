"""The FHIR destination's pure rules: which request a resource becomes, how an answer is
summarised without the PHI a server may quote, and how Retry-After is read."""

from __future__ import annotations

import email.utils
import json
import time
from urllib.parse import unquote

import pytest

from engine.config.types import Duration
from engine.connectors.base import DestinationContext
from engine.connectors.fhir import FhirDestination, FhirDestinationConfig
from engine.connectors.http import Unsendable, parse_retry_after
from engine.formats import fhir_answer
from engine.message import Outbound

BASE = "https://ehr.example.org/fhir/"


def request(resource: dict | bytes, **settings) -> tuple[str, str, dict[str, str]]:
    config = FhirDestinationConfig(name="ehr", url=BASE, timeout=Duration(5.0), **settings)
    body = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    return FhirDestination(config, DestinationContext("c")).request_for(
        Outbound(1, "M", "c", "ehr", body, "application/fhir+json"))


PATIENT = {"resourceType": "Patient", "id": "p-1", "identifier": [
    {"system": "urn:a", "value": "A|1,2"}, {"system": "http://h.org/mrn", "value": "M 7"}]}


@pytest.mark.parametrize(("settings", "method", "url", "if_none_exist"), [
    ({}, "PUT", "Patient/p-1", None),
    ({"interaction": "create"}, "POST", "Patient", None),
    ({"interaction": "update"}, "PUT", "Patient/p-1", None),
    ({"interaction": "conditional-create"}, "POST", "Patient", r"identifier=urn:a|A\|1\,2"),
    ({"interaction": "conditional-create", "identifier_system": "http://h.org/mrn"},
     "POST", "Patient", "identifier=http://h.org/mrn|M 7"),
    ({"interaction": "conditional-update", "identifier_system": "http://h.org/mrn"},
     "PUT", "Patient?identifier=http://h.org/mrn|M 7", None),
])
def test_each_interaction(settings, method, url, if_none_exist):
    got_method, got_url, headers = request(PATIENT, **settings)
    assert (got_method, unquote(got_url)) == (method, BASE + url)
    assert (unquote(headers.get("If-None-Exist", "")) or None) == if_none_exist
    assert headers["Prefer"] == "return=minimal"


def test_transaction_and_batch_go_to_the_base_whatever_the_interaction():
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": []}
        assert request(bundle, interaction="update")[:2] == ("POST", BASE.rstrip("/"))
    document = {"resourceType": "Bundle", "type": "document"}
    assert request(document)[:2] == ("POST", BASE + "Bundle")


@pytest.mark.parametrize(("content", "settings", "why"), [
    (b"MSH|^~\\&|", {}, "not a FHIR JSON resource"),
    ({"resourceType": "../admin", "id": "x"}, {}, "not a FHIR JSON resource"),
    ({"resourceType": "Patient"}, {"interaction": "update"}, "needs the Patient's id"),
    ({"resourceType": "Patient", "id": "../x"}, {"interaction": "update"}, "valid FHIR id"),
    ({"resourceType": "Patient"}, {"interaction": "conditional-update"}, "needs an identifier"),
])
def test_what_can_never_be_sent_is_refused_before_sending(content, settings, why):
    with pytest.raises(Unsendable, match=why):
        request(content, **settings)


def test_an_outcome_summary_keeps_codes_and_paths_never_free_text():
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "informational", "diagnostics": "SMITH, ALEX"},
        {"severity": "error", "code": "duplicate", "diagnostics": "MRN123 exists",
         "details": {"text": "SMITH"},
         "expression": ["Patient.identifier.where(value='MRN123')", "Patient.identifier[0]"]},
    ]}
    summary = fhir_answer.outcome_summary(outcome)
    assert summary == "2 issues (error: duplicate at Patient.identifier[0])"
    weird = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "SMITH", "code": "Not A Code SMITH", "location": ["SMITH ALEX"]}]}
    assert fhir_answer.outcome_summary(weird) == "1 issue (issue: unknown)"


def test_entry_failures_are_counted_and_the_first_described():
    bundle = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "201 Created"}},
        {"response": {"status": "422 Unprocessable Entity", "outcome": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "required"}]}}},
        {"response": {"status": "garbage"}}]}
    failures = fhir_answer.failed_entries(bundle)
    assert [(f.position, f.status) for f in failures] == [(2, 422), (3, 0)]
    assert fhir_answer.entries_summary(failures, 3) == (
        "2 of 3 entries failed (entry 2: 422, 1 issue (error: required))")


def test_retry_after_as_seconds_or_an_http_date():
    assert parse_retry_after("120") == 120.0
    ahead = parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert ahead is not None and 28 <= ahead <= 30
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0.0  # naive: UTC
    for junk in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(junk) is None


def sent_body(resource: dict | bytes, **settings) -> bytes:
    config = FhirDestinationConfig(name="ehr", url=BASE, timeout=Duration(5.0), **settings)
    body = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    return FhirDestination(config, DestinationContext("c")).body_for(
        Outbound(1, "M", "c", "ehr", body, "application/fhir+json"))


def test_a_conditional_update_sends_the_resource_without_the_senders_id_and_version():
    """The sender's id and versionId are not the receiver's: a body id that differs from
    the matched resource would be refused (400), so they are left out; decimals keep
    their digits."""
    raw = (b'{"resourceType":"Observation","id":"sender-7","meta":{"versionId":"3",'
           b'"lastUpdated":"2026-03-01T10:00:00Z"},"identifier":[{"system":"urn:a",'
           b'"value":"X1"}],"valueQuantity":{"value":7.20,"unit":"mmol/L"}}')
    sent = sent_body(raw, interaction="conditional-update")
    assert b'"value":7.20' in sent
    doc = json.loads(sent)
    assert "id" not in doc and doc["meta"] == {"lastUpdated": "2026-03-01T10:00:00Z"}
    assert doc["identifier"] == [{"system": "urn:a", "value": "X1"}]
    # every other interaction sends the content exactly as queued
    for interaction in ("auto", "create", "update", "conditional-create"):
        assert sent_body(raw, interaction=interaction) == raw
