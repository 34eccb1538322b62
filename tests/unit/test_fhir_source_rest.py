"""The FHIR REST protocol pieces of the FHIR source: content negotiation, the
CapabilityStatement, status codes, subscription notifications and SMART scopes."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.connectors import fhir_source_rest as rest
from engine.connectors.fhir_source import _oversized_array, _stamp
from engine.message import MessageStatus, Problem
from engine.security.jwt import CREATE, UPDATE, grants

NOW = dt.datetime(2026, 3, 1, 10, 15, 30, 123456, tzinfo=dt.UTC)


XML = rest.FHIR_XML


@pytest.mark.parametrize(("accept", "fmt", "body", "expected"), [
    ("", None, "json", rest.FHIR_JSON),
    ("", None, "xml", XML),  # no Accept: the request's own format
    ("application/fhir+json", None, "xml", rest.FHIR_JSON),
    ("application/json", None, "json", rest.FHIR_JSON),
    ("application/fhir+json; fhirVersion=4.0", None, "json", rest.FHIR_JSON),
    ("text/html, */*;q=0.1", None, "json", rest.FHIR_JSON),
    ("text/html, */*;q=0.1", None, "xml", XML),
    ("application/fhir+xml", None, "json", XML),
    ("application/xml", None, "json", XML),
    ("application/fhir+xml, application/fhir+json;q=0", None, "json", XML),
    ("application/fhir+json;q=0.5, application/fhir+xml;q=0.9", None, "json", XML),
    ("application/fhir+xml;q=0.5, application/fhir+json;q=0.9", None, "xml", rest.FHIR_JSON),
    ("application/fhir+xml, application/fhir+json", None, "json", rest.FHIR_JSON),  # a tie
    ("application/fhir+xml, application/fhir+json", None, "xml", XML),
    ("application/fhir+json;q=0, */*", None, "json", XML),
    ("text/html", None, "json", None),
    ("application/fhir+json;q=0", None, "json", None),
    ("application/fhir+xml", "json", "json", rest.FHIR_JSON),  # _format overrides Accept
    ("application/fhir+json", "xml", "json", XML),
    ("", "xml", "json", XML),
    ("", "text/xml", "json", XML),
    ("", "application/fhir+json", "xml", rest.FHIR_JSON),
    ("", "html", "json", None),
])
def test_answer_type_follows_format_then_accept_then_the_request(accept, fmt, body, expected):
    assert rest.answer_type(accept, fmt, body) == expected


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/fhir+json", "json"), ("application/fhir+json; charset=utf-8", "json"),
    ("application/json", "json"), ("application/json+fhir", "json"),
    ("application/fhir+xml", "xml"), ("text/xml", "xml"), ("text/plain", "other"),
    ("", "other"), ("application/x-www-form-urlencoded", "other"),
])
def test_body_format(content_type, expected):
    assert rest.body_format(content_type, None) == expected


def test_capability_statement_lists_exactly_what_is_accepted():
    statement = rest.capability_statement(["Patient", "Bundle"], bundles=True,
                                          subscription=False, auth="users",
                                          base_url="http://h/fhir", now=NOW)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["json", "xml"]
    assert statement["kind"] == "instance"
    (server,) = statement["rest"]
    assert server["mode"] == "server"
    assert [r["type"] for r in server["resource"]] == ["Patient"]
    assert [i["code"] for i in server["resource"][0]["interaction"]] == ["create", "update"]
    assert [i["code"] for i in server["interaction"]] == ["transaction", "batch"]
    assert server["security"]["service"][0]["coding"][0]["code"] == "OAuth"


def test_capability_statement_without_bundles_or_auth():
    statement = rest.capability_statement(["Patient", "Observation"], bundles=False,
                                          subscription=False, auth="none",
                                          base_url="http://h/fhir", now=NOW)
    (server,) = statement["rest"]
    assert [r["type"] for r in server["resource"]] == ["Patient", "Observation"]
    assert "interaction" not in server and "security" not in server


def test_capability_statement_is_a_valid_r4_resource():
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    statement = rest.capability_statement(["Patient", "Bundle"], bundles=True,
                                          subscription=True, auth="jwt",
                                          base_url="http://h/fhir", now=NOW)
    CapabilityStatement.model_validate(statement)
    assert statement["rest"][0]["security"]["service"][0]["coding"][0]["code"] == \
        "SMART-on-FHIR"


@pytest.mark.parametrize(("status", "problems", "mid", "created", "code"), [
    (MessageStatus.ACCEPTED, (), "M1", True, 201),
    (MessageStatus.ACCEPTED, (), "M1", False, 200),
    (MessageStatus.FILTERED, (), "M1", True, 200),
    (MessageStatus.DUPLICATE, (), "M1", True, 200),
    (MessageStatus.ERROR, (Problem("mapping failed"),), "M1", True, 422),
    (MessageStatus.ERROR, (Problem("store down"),), "", True, 503),
    (MessageStatus.REJECTED, (Problem("bad date", code="value"),), "M1", True, 400),
    (MessageStatus.REJECTED, (Problem("Patient.identifier is required by this channel",
                                      code="required"),), "M1", True, 422),
    (MessageStatus.REJECTED, (Problem("Patient.identifier is required by this channel",
                                      code="required"), Problem("x", code="structure")),
     "M1", True, 400),
])
def test_http_status(status, problems, mid, created, code):
    assert rest.http_status(status, problems, mid, created) == code


def _notification(kind, *more):
    status = {"resourceType": "Parameters", "meta": {"profile": [
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
        "backport-subscription-status-r4"]},
        "parameter": [{"name": "subscription", "valueReference": {"reference": "Subscription/1"}},
                      {"name": "type", "valueCode": kind}]}
    return {"resourceType": "Bundle", "type": "history",
            "entry": [{"resource": status}, *more]}


def test_notification_types():
    assert rest.notification_type(_notification("handshake")) == "handshake"
    assert rest.notification_type(_notification("heartbeat")) == "heartbeat"
    assert rest.notification_type(_notification("event-notification")) == "event-notification"
    r4b = {"resourceType": "Bundle", "type": "subscription-notification",
           "entry": [{"resource": {"resourceType": "SubscriptionStatus", "type": "heartbeat"}}]}
    assert rest.notification_type(r4b) == "heartbeat"
    assert rest.notification_type({"resourceType": "Bundle", "type": "transaction"}) is None
    assert rest.notification_type({"resourceType": "Bundle", "type": "history",
                                   "entry": [{"resource": {"resourceType": "Patient"}}]}) is None


@pytest.mark.parametrize(("scopes", "kind", "action", "allowed"), [
    ({"system/Patient.write"}, "Patient", CREATE, True),
    ({"system/*.write"}, "Patient", UPDATE, True),
    ({"user/Patient.c"}, "Patient", CREATE, True),
    ({"user/Patient.c"}, "Patient", UPDATE, False),
    ({"system/Patient.cruds"}, "Patient", UPDATE, True),
    ({"system/*.*"}, "Patient", CREATE, True),
    ({"system/Patient.read"}, "Patient", CREATE, False),
    ({"system/Patient.rs"}, "Patient", CREATE, False),
    ({"system/Observation.write"}, "Patient", CREATE, False),
    ({"patient/Patient.write"}, "Patient", CREATE, False),  # no compartment checks here
    ({"system/Patient.c?identifier=x"}, "Patient", CREATE, False),
    ({"openid", "fhirUser"}, "Patient", CREATE, False),
])
def test_smart_scopes(scopes, kind, action, allowed):
    assert grants(scopes, kind, action) is allowed


def test_last_updated_is_stamped_only_where_missing():
    patient = {"resourceType": "Patient", "meta": {"profile": ["p"]}}
    stamped, changes = _stamp(patient, "2026-03-01T10:15:30.123Z")
    assert stamped["meta"] == {"profile": ["p"], "lastUpdated": "2026-03-01T10:15:30.123Z"}
    assert changes == ["Patient.meta.lastUpdated"]
    assert patient["meta"] == {"profile": ["p"]}  # the caller's dict is untouched
    kept = {"resourceType": "Patient", "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}
    assert _stamp(kept, "2026-03-01T10:15:30.123Z") == (kept, [])
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": kept}, {"resource": {"resourceType": "Patient"}}]}
    stamped, changes = _stamp(bundle, "2026-03-01T10:15:30.123Z")
    assert changes == ["Bundle.entry[1].resource.meta.lastUpdated"]
    assert stamped["entry"][0]["resource"] is kept
    assert rest.instant(NOW) == "2026-03-01T10:15:30.123Z"


def test_a_notifications_status_entry_is_never_stamped():
    stamped, changes = _stamp(_notification("event-notification",
                                            {"resource": {"resourceType": "Patient"}}), "T")
    assert changes == ["Bundle.entry[1].resource.meta.lastUpdated"]
    assert "meta" not in stamped["entry"][0]["resource"] or \
        "lastUpdated" not in stamped["entry"][0]["resource"]["meta"]


def test_oversized_arrays_are_found_at_any_depth():
    assert _oversized_array({"resourceType": "Patient", "name": [{"given": ["x"] * 10}]}) is None
    deep = {"resourceType": "Patient", "name": [{"given": ["x"] * 10}, {"given": [1] * 10_001}]}
    assert _oversized_array(deep) == "Patient.name[1].given"


def test_the_source_config_needs_explicit_auth_and_real_resource_types():
    import msgspec

    from engine.connectors.fhir_source import FhirSourceConfig

    def convert(**given):
        return msgspec.convert({"type": "fhir", "port": 8081, **given}, FhirSourceConfig)

    with pytest.raises(msgspec.ValidationError, match="auth"):
        convert(resources=["Patient"])
    with pytest.raises(msgspec.ValidationError, match="Pateint is not a FHIR R4 resource"):
        convert(resources=["Pateint"], auth={"type": "none"})
    with pytest.raises(msgspec.ValidationError, match="Obsrvation"):
        convert(resources=["Patient"], auth={"type": "users"},
                required={"Obsrvation": ["code"]})
    config = convert(resources=["Patient", "Bundle"], auth={"type": "users"})
    assert config.types == ["Patient", "Bundle"] and config.resources() == ["tcp:8081"]
