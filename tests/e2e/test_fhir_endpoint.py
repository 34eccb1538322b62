"""The shipped FHIR to HL7v2 channel, end to end: `conduit run` as a process, a real HTTP
client posting to its FHIR source, and the HL7v2 files its file destination writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from engine.formats import fhir_xml
from engine.formats.hl7v2 import Hl7Message
from tests.e2e.support import Daemon, eventually
from tests.fhir_server import FhirTestServer
from tests.harness import written
from tests.mllp_receiver import MllpReceiver

CHANNEL = "fhir-to-hl7v2"
JSON = "application/fhir+json"
XML = "application/fhir+xml"
NAME = "Quixotically"  # a family name nobody else uses, to look for in logs
MRN = "E2EFHIR4711"


def patient(mrn: str = MRN, family: str = NAME, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.999", "value": mrn}],
            "name": [{"family": family, "given": ["Zebulon"]}], "gender": "male",
            "birthDate": "1961-07-04", **more}


class Endpoint:
    """The daemon's FHIR base URL, a sending system's token and an admin's."""

    def __init__(self, daemon: Daemon, http: aiohttp.ClientSession, token: str,
                 admin: str) -> None:
        self.daemon, self.http = daemon, http
        self.base = f"http://127.0.0.1:{daemon.fhir_port}/fhir"
        self.token, self.admin = token, admin
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}

    @property
    def out(self):
        return self.daemon.data_dir / "out" / CHANNEL

    def files(self) -> list:
        return written(self.out)

    async def post(self, path: str = "/Patient", body: Any = None, *, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, method: str = "POST"
                   ) -> tuple[int, Any, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.http.request(method, self.base + path, data=data,
                                     headers={**self.headers, **(headers or {})}) as resp:
            text = await resp.read()
            return resp.status, resp.headers, answer_of(resp.headers, text)

    async def api(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.daemon.web_port}{path}"
        async with self.http.get(url, headers={"Authorization": f"Bearer {self.admin}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def stored(self) -> list[dict[str, Any]]:
        return (await self.api(f"/api/messages?channel={CHANNEL}&limit=500"))["messages"]


@pytest.fixture
async def endpoint(daemon: Daemon):
    await daemon.start()  # makes the store and its keys, so the users can be added at once
    token, admin = await asyncio.gather(daemon.user_token("ehr-feed", "integration"),
                                        daemon.user_token("root", "admin"))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        yield Endpoint(daemon, http, token, admin)
    if daemon.running:
        assert await daemon.stop() == 0


def answer_of(headers: Any, body: bytes) -> Any:
    """The answer as JSON, read from XML when the endpoint answered in XML."""
    if not body:
        return None
    if headers.get("Content-Type", "").startswith(XML):
        return fhir_xml.to_json(body)
    return json.loads(body)


def patient_xml(mrn: str = MRN, family: str = NAME) -> str:
    """A Patient as an XML-speaking EHR sends it: a primitive extension, a comment."""
    return f"""<Patient xmlns="http://hl7.org/fhir">
  <!-- sent by an XML feed -->
  <identifier><system value="urn:oid:2.16.840.1.113883.3.999"/><value value="{mrn}"/>
  </identifier>
  <name><family value="{family}"/><given value="Zebulon"/></name>
  <gender value="male"/>
  <birthDate value="1961-07-04"><extension
      url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
    <valueDateTime value="1961-07-04T06:30:00-04:00"/></extension></birthDate>
</Patient>"""


def hl7(path) -> Hl7Message:
    return Hl7Message.parse(path.read_text())


async def test_a_created_patient_is_answered_after_commit_and_becomes_an_adt_a28(endpoint):
    status, headers, body = await endpoint.post(body=patient())
    assert status == 201
    message_id = headers["X-Conduit-Message-Id"]
    # The server assigns the id (R4 http.html#create), named by Location and the body.
    assert headers["Location"] == f"{endpoint.base}/Patient/{body['id']}/_history/1"
    assert headers["ETag"] == 'W/"1"'
    assert headers["Content-Type"].startswith(JSON)
    # The representation is what was taken on, with the server's id and lastUpdated.
    assert body["resourceType"] == "Patient" and body["id"] not in ("", message_id)
    assert body["meta"]["lastUpdated"].endswith("Z")
    await eventually(lambda: len(endpoint.files()) == 1, timeout=20, message="an HL7 file")
    (written,) = endpoint.files()
    assert written.name == f"{message_id}.hl7"
    adt = hl7(written)
    assert (adt.value("MSH-9.1"), adt.value("MSH-9.2")) == ("ADT", "A28")
    assert adt.value("PID-3.1") == MRN
    assert adt.value("PID-5.1") == NAME
    # MSH-7 is the lastUpdated the source set (to the second; HL7 writes its own zone).
    stamp = body["meta"]["lastUpdated"]
    assert adt.value("MSH-7").startswith(stamp[:19].replace("-", "").replace(":", "")
                                         .replace("T", ""))
    hops = await endpoint.api(f"/api/audit?message={message_id}")
    received = [e for e in hops["events"] if e["kind"] == "received"]
    assert received and received[0]["detail"]["client"] == "user:ehr-feed"
    assert received[0]["detail"]["transport"] == "fhir"
    # The lastUpdated the source set is on record, since the stored Patient differs from
    # the bytes the client sent.
    assert received[0]["detail"]["set"] == ["Patient.meta.lastUpdated", "Patient.id",
                                            "Patient.meta.versionId"]
    # Operations see which systems post to the endpoint (names, not patients).
    channel = await endpoint.api(f"/api/channels/{CHANNEL}")
    assert channel["source"]["peers"] == ["user:ehr-feed"]


async def test_update_with_a_new_version_becomes_an_adt_a31_and_prefer_is_honoured(endpoint):
    body = patient(id="p-100", meta={"versionId": "3", "lastUpdated": "2024-03-01T10:15:00Z"})
    status, headers, answer = await endpoint.post(
        "/Patient/p-100", body, method="PUT", headers={"Prefer": "return=OperationOutcome"})
    assert status == 200
    assert headers["Location"] == f"{endpoint.base}/Patient/p-100/_history/3"
    assert headers["Last-Modified"] == "Fri, 01 Mar 2024 10:15:00 GMT"
    assert answer["resourceType"] == "OperationOutcome"
    message_id = headers["X-Conduit-Message-Id"]
    assert any(message_id in i["diagnostics"] for i in answer["issue"])
    await eventually(lambda: len(endpoint.files()) == 1, timeout=20, message="an HL7 file")
    assert hl7(endpoint.files()[0]).value("MSH-9.2") == "A31"
    status, _, answer = await endpoint.post("/Patient/p-101", patient(id="p-101"),
                                            method="PUT", headers={"Prefer": "return=minimal"})
    assert (status, answer) == (201, None)  # an update that creates (its first version)
    status, _, answer = await endpoint.post("/Patient/p-102", patient(id="p-999"),
                                            method="PUT")
    assert status == 400
    assert answer["issue"][0]["expression"] == ["Patient.id"]


async def test_a_transaction_of_three_patients_gives_three_messages(endpoint):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:0000000{i}-0000-4000-8000-000000000000",
         "resource": patient(mrn=f"E2ETX{i}", family=f"TXFAMILY{i}"),
         "request": {"method": "POST", "url": "Patient"}} for i in range(3)]}
    status, _, answer = await endpoint.post("", bundle)
    assert status == 200, answer
    assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response"
    assert len(answer["entry"]) == 3
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert all(e["response"]["status"] == "201 Created" for e in answer["entry"])
    assert len(set(locations)) == 3  # three messages, each with its own id
    await eventually(lambda: len(endpoint.files()) == 3, timeout=20, message="3 HL7 files")
    assert sorted(hl7(p).value("PID-3.1") for p in endpoint.files()) == [
        "E2ETX0", "E2ETX1", "E2ETX2"]
    ids = {p.stem for p in endpoint.files()}
    assert ids == {loc.split("/")[1] for loc in locations}
    # Each part's record names only its own entry's stamped lastUpdated.
    for index, loc in enumerate(locations):
        hops = await endpoint.api(f"/api/audit?message={loc.split('/')[1]}")
        (received,) = [e for e in hops["events"] if e["kind"] == "received"]
        assert received["detail"]["set"] == [f"Bundle.entry[{index}].resource.meta.lastUpdated"]


BAD_BODIES = [
    # (what, path, body, content type, expected status)
    ("nested 100,000 deep", "/Patient",
     b'{"resourceType":"Patient","extension":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     JSON, 400),
    ("an array of 1,000,000 items", "/Patient",
     b'{"resourceType":"Patient","name":[' + b"1," * 999_999 + b"1]}", JSON, 400),
    ("wrong JSON types", "/Patient",
     json.dumps({"resourceType": "Patient", "identifier": [{"value": MRN}],
                 "name": NAME, "birthDate": 19610704, "active": "maybe"}).encode(), JSON, 400),
    ("an unknown resource type in the body", "/Patient", b'{"resourceType":"Pateint"}', JSON,
     400),
    ("an unknown resource type in the URL", "/Pateint", b'{"resourceType":"Pateint"}', JSON,
     404),
    ("a type this channel does not take", "/Observation",
     b'{"resourceType":"Observation"}', JSON, 404),
    ("a huge string and no identifier", "/Patient",
     json.dumps({"resourceType": "Patient", "name": [{"family": "Q" * 9_000_000}]}).encode(),
     JSON, 422),
    ("not UTF-8", "/Patient", b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}',
     JSON, 400),
    ("an empty body", "/Patient", b"", JSON, 400),
    ("JSON that is not an object", "/Patient", b"[1, 2, 3]", JSON, 400),
    ("a JSON string", "/Patient", b'"Patient"', JSON, 400),
    ("malformed JSON", "/Patient", b'{"resourceType": "Patient",', JSON, 400),
    ("no resourceType", "/Patient", b'{"name": []}', JSON, 400),
    ("malformed XML", "/Patient", b'<Patient xmlns="http://hl7.org/fhir"><name>', XML, 400),
    ("XML in no namespace", "/Patient", b"<Patient/>", XML, 400),
    ("XML with an unknown element", "/Patient",
     b'<Patient xmlns="http://hl7.org/fhir"><nickname value="Zeb"/></Patient>', XML, 400),
    ("XML with an external entity", "/Patient",
     b'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&x;"/></name></Patient>',
     XML, 400),
    ("XML billion laughs", "/Patient",
     b'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY a "aaaaaaaaaa">'
     + b"".join(b'<!ENTITY %c "%s">' % (98 + i, b"&%c;" % (97 + i) * 10) for i in range(8))
     + b']><Patient xmlns="http://hl7.org/fhir"><name><family value="&i;"/></name></Patient>',
     XML, 400),
    ("XML that is valid but has no identifier", "/Patient",
     b'<Patient xmlns="http://hl7.org/fhir"/>', XML, 422),
    ("a form", "/Patient", b"a=b", "application/x-www-form-urlencoded", 415),
    ("over the size limit", "/Patient", b'{"resourceType":"Patient","x":"' + b"a" * (11 << 20)
     + b'"}', JSON, 413),
    ("a Bundle that is a document", "", b'{"resourceType":"Bundle","type":"document"}', JSON,
     400),
    ("a transaction with a DELETE", "",
     json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
         {"request": {"method": "DELETE", "url": "Patient/1"}}]}).encode(), JSON, 400),
]


async def test_bad_and_malicious_bodies_get_clean_answers_and_nothing_is_queued(endpoint):
    for what, path, raw, content_type, expected in BAD_BODIES:
        try:
            status, headers, answer = await endpoint.post(
                path, raw=raw, headers={"Content-Type": content_type})
        except aiohttp.ClientError:
            # The server may close an oversized upload before the client has sent it all;
            # that is the size limit working. Anything else is a failure.
            assert expected == 413, what
            continue
        assert status == expected, f"{what}: {status} {answer}"
        # Answered in the request's format (the client's Accept is */*).
        assert headers["Content-Type"].startswith(XML if content_type == XML else JSON), what
        assert answer["resourceType"] == "OperationOutcome", what
        issue = answer["issue"][0]
        assert issue["severity"] == "error" and issue["code"] and issue["diagnostics"], what
    # Wrong types were judged by validation, which names each element.
    status, _, answer = await endpoint.post(raw=BAD_BODIES[2][2])
    assert {e for i in answer["issue"] for e in i.get("expression", [])} >= {
        "Patient.name", "Patient.birthDate", "Patient.active"}
    # The daemon still serves, and only the one good Patient reaches the destination.
    status, _, _ = await endpoint.post(body=patient())
    assert status == 201
    await eventually(lambda: len(endpoint.files()) == 1, timeout=20, message="an HL7 file")
    stored = await endpoint.stored()
    assert [m["status"] for m in stored if m["status"] == "accepted"] == ["accepted"]
    queues = await endpoint.api("/api/queues")
    assert all(q["dead"] == 0 for q in queues), queues


async def test_refusals_are_401_or_403_audited_and_store_nothing(endpoint):
    async with endpoint.http.post(f"{endpoint.base}/Patient", json=patient(),
                                  headers={"Content-Type": JSON}) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["issue"][0]["code"] == "login"
    status, _, answer = await endpoint.post(
        body=patient(), headers={"Authorization": "Bearer cdt_not-a-real-token"})
    assert status == 401 and answer["issue"][0]["code"] == "login"
    viewer = await endpoint.daemon.user_token("watcher", "viewer")
    status, _, answer = await endpoint.post(body=patient(),
                                            headers={"Authorization": f"Bearer {viewer}"})
    assert status == 403 and answer["issue"][0]["code"] == "forbidden"
    assert await endpoint.stored() == []
    denied = (await endpoint.api("/api/audit?kind=denied"))["events"]
    mine = [e for e in reversed(denied) if e["channel"] == CHANNEL]  # oldest first
    assert [(e["detail"]["status"], e["detail"]["route"]) for e in mine] == [
        (401, "/fhir/{type}"), (401, "/fhir/{type}"), (403, "/fhir/{type}")]
    assert mine[-1]["actor"] == "anonymous" or mine[-1]["actor"].startswith("user:")
    assert "cdt_not-a-real-token" not in json.dumps(denied)
    # The CapabilityStatement needs no token, as SMART clients expect.
    async with endpoint.http.get(f"{endpoint.base}/metadata") as resp:
        assert resp.status == 200
        statement = await resp.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["rest"][0]["security"]["service"][0]["coding"][0]["code"] == "OAuth"


async def test_unsupported_interactions_are_404_or_405_with_an_outcome(endpoint):
    for method, path, expected in [("GET", "/Patient/1", 405), ("DELETE", "/Patient/1", 405),
                                   ("GET", "/Patient", 405), ("GET", "", 405),
                                   ("GET", "/Patient/1/_history/1", 404),
                                   ("POST", "/$process-message", 404)]:
        async with endpoint.http.request(method, endpoint.base + path,
                                         headers=endpoint.headers) as resp:
            assert resp.status == expected, (method, path)
            assert (await resp.json())["issue"][0]["code"] == "not-supported"
    async with endpoint.http.get(f"{endpoint.base}/metadata",
                                 headers={"Accept": "text/html"}) as resp:
        assert resp.status == 406
    async with endpoint.http.get(f"{endpoint.base}/metadata",
                                 headers={"Accept": "application/fhir+xml"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith(XML)
        statement = fhir_xml.to_json(await resp.read())
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["format"] == ["json", "xml"]


async def test_a_patient_posted_as_xml_becomes_an_adt_a28_and_is_answered_in_xml(endpoint):
    status, headers, body = await endpoint.post(
        raw=patient_xml().encode(), headers={"Content-Type": XML, "Accept": XML})
    assert status == 201, body
    assert headers["Content-Type"].startswith(XML)
    message_id = headers["X-Conduit-Message-Id"]
    assert headers["Location"] == f"{endpoint.base}/Patient/{body['id']}/_history/1"
    # The representation, read back from its XML: what was taken on, primitive
    # extension and all, with the id the server assigned.
    assert body["resourceType"] == "Patient" and body["id"] not in ("", message_id)
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert body["_birthDate"]["extension"][0]["valueDateTime"] == "1961-07-04T06:30:00-04:00"
    await eventually(lambda: len(endpoint.files()) == 1, timeout=20, message="an HL7 file")
    adt = hl7(endpoint.files()[0])
    assert (adt.value("MSH-9.2"), adt.value("PID-3.1"), adt.value("PID-5.1"),
            adt.value("PID-5.2")) == ("A28", MRN, NAME, "Zebulon")
    hops = await endpoint.api(f"/api/audit?message={message_id}")
    (received,) = [e for e in hops["events"] if e["kind"] == "received"]
    assert received["detail"]["set"] == ["converted from application/fhir+xml",
                                         "Patient.meta.lastUpdated", "Patient.id",
                                         "Patient.meta.versionId"]
    # _format overrides Accept; Accept JSON gets JSON for an XML request.
    for headers, query in (({"Accept": XML}, "?_format=json"), ({"Accept": JSON}, "")):
        status, answer_headers, body = await endpoint.post(
            f"/Patient{query}", raw=patient_xml(mrn="E2EXML2").encode(),
            headers={"Content-Type": XML, **headers})
        assert status == 201 and answer_headers["Content-Type"].startswith(JSON)
        assert body["identifier"][0]["value"] == "E2EXML2"
    # A JSON request with Accept XML is answered in XML.
    status, answer_headers, body = await endpoint.post(
        body=patient(mrn="E2EXML3"), headers={"Accept": f"{JSON};q=0.5, {XML}"})
    assert status == 201 and answer_headers["Content-Type"].startswith(XML)
    assert body["identifier"][0]["value"] == "E2EXML3"


async def test_a_transaction_in_xml_is_answered_with_a_transaction_response_in_xml(endpoint):
    entries = "".join(f"""<entry>
      <fullUrl value="urn:uuid:0000000{i}-0000-4000-8000-000000000000"/>
      <resource>{patient_xml(mrn=f"E2EXMLTX{i}", family=f"XMLFAMILY{i}")}</resource>
      <request><method value="POST"/><url value="Patient"/></request>
    </entry>""" for i in range(3))
    bundle = f'<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>{entries}</Bundle>'
    status, headers, answer = await endpoint.post(
        "", raw=bundle.encode(), headers={"Content-Type": XML})
    assert status == 200, answer
    assert headers["Content-Type"].startswith(XML)
    assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 3
    locations = [e["response"]["location"] for e in answer["entry"]]
    await eventually(lambda: len(endpoint.files()) == 3, timeout=20, message="3 HL7 files")
    assert sorted((hl7(p).value("PID-3.1"), hl7(p).value("PID-5.1"))
                  for p in endpoint.files()) == [
        (f"E2EXMLTX{i}", f"XMLFAMILY{i}") for i in range(3)]
    for index, loc in enumerate(locations):
        hops = await endpoint.api(f"/api/audit?message={loc.split('/')[1]}")
        (received,) = [e for e in hops["events"] if e["kind"] == "received"]
        assert received["detail"]["set"] == [
            "converted from application/fhir+xml",
            f"Bundle.entry[{index}].resource.meta.lastUpdated"]


async def test_subscription_notifications(endpoint):
    def notification(kind: str, *resources: dict[str, Any]) -> dict[str, Any]:
        status = {"resourceType": "Parameters", "meta": {"profile": [
            "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
            "backport-subscription-status-r4"]}, "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/7"}},
            {"name": "topic", "valueCanonical": "http://example.org/topics/patient"},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": kind}]}
        return {"resourceType": "Bundle", "type": "history", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": status,
             "request": {"method": "GET", "url": "Subscription/7/$status"},
             "response": {"status": "200"}},
            *({"resource": r, "request": {"method": "PUT", "url": f"Patient/{r['id']}"},
               "response": {"status": "200"}} for r in resources)]}

    for kind in ("handshake", "heartbeat"):
        status, _, answer = await endpoint.post("", notification(kind))
        assert status == 200 and answer["resourceType"] == "OperationOutcome", kind
    async with endpoint.http.post(endpoint.base, headers={
            "Authorization": f"Bearer {endpoint.token}"}) as resp:  # R4 ping: no body
        assert resp.status == 200
    assert await endpoint.stored() == []
    admin = (await endpoint.api("/api/audit?kind=admin"))["events"]
    assert [e["detail"]["action"] for e in reversed(admin) if e["channel"] == CHANNEL] == [
        "subscription-handshake", "subscription-heartbeat", "subscription-ping"]
    event = notification("event-notification",
                         patient(mrn="E2ESUB1", id="s1", meta={"versionId": "2"}),
                         patient(mrn="E2ESUB2", id="s2", meta={"versionId": "1"}))
    status, _, answer = await endpoint.post("", event)
    assert status == 200, answer
    await eventually(lambda: len(endpoint.files()) == 2, timeout=20, message="2 HL7 files")
    assert sorted((hl7(p).value("PID-3.1"), hl7(p).value("MSH-9.2"))
                  for p in endpoint.files()) == [("E2ESUB1", "A31"), ("E2ESUB2", "A28")]
    # Without a token a notification is refused like any request.
    async with endpoint.http.post(endpoint.base, json=notification("heartbeat"),
                                  headers={"Content-Type": JSON}) as resp:
        assert resp.status == 401


async def test_no_patient_data_reaches_the_log(endpoint):
    await endpoint.post(body=patient())
    await endpoint.post(body=patient(birthDate=f"{NAME}-not-a-date"))
    await endpoint.post(body={"resourceType": "Patient", "name": [{"family": NAME}]})
    await endpoint.post("/Patient/x", patient(id=MRN), method="PUT")
    await endpoint.post(raw=f'{{"resourceType": "{NAME}"}}'.encode())
    await endpoint.post(f"/{NAME}", patient())
    for xml in (patient_xml().replace("</Patient>", ""),  # malformed
                patient_xml().replace("<gender", f"<{NAME}"),  # an unknown element
                patient_xml().replace('value="male"', f'value="{NAME}"')):  # invalid code
        await endpoint.post(raw=xml.encode(), headers={"Content-Type": XML})
    await eventually(lambda: len(endpoint.files()) == 1, timeout=20, message="an HL7 file")
    await endpoint.daemon.stop()
    logs = endpoint.daemon.logs()
    assert "event=received" in logs  # the log was written, at debug level
    for secret in (NAME, MRN, "Zebulon", "1961-07-04", "19610704"):
        assert secret not in logs, secret


async def test_vendor_fixtures_posted_live_give_the_expected_hl7(endpoint):
    """The shipped channel's fixtures (Epic, Cerner, HAPI, Smile styles), posted to the
    running endpoint, pass its strict validation and give byte for byte the HL7 that
    `conduit test` expects of them."""
    from tests.e2e.support import REPO

    folder = REPO / "channels" / "fixtures" / CHANNEL
    expected = {}
    for case in sorted(folder.glob("*.hl7")):
        body = json.loads(case.with_suffix(".json").read_text())
        status, headers, answer = await endpoint.post(
            f"/Patient/{body['id']}", body, method="PUT")
        assert status in (200, 201), (case.name, answer)  # 201: its first version here
        expected[headers["X-Conduit-Message-Id"]] = case.read_bytes()
    assert len(expected) == 4
    await eventually(lambda: len(endpoint.files()) == 4, timeout=20, message="4 HL7 files")
    for path in endpoint.files():
        assert path.read_bytes().replace(b"\r", b"\n").strip() == \
            expected[path.stem].replace(b"\r", b"\n").strip(), path.name


async def test_with_conduit_mllp_out_set_the_adt_is_also_sent_over_mllp(daemon):
    receiver = await MllpReceiver().start()
    try:
        daemon.env["CONDUIT_MLLP_OUT"] = f"127.0.0.1:{receiver.port}"
        await daemon.start()
        token = await daemon.user_token("ehr-feed", "integration")
        url = f"http://127.0.0.1:{daemon.fhir_port}/fhir/Patient"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}
        async with aiohttp.ClientSession() as http, \
                http.post(url, json=patient(), headers=headers) as resp:
            assert resp.status == 201
        await eventually(lambda: len(receiver.received) == 1, timeout=20,
                         message="the ADT over MLLP")
        adt = Hl7Message.parse(receiver.received[0].decode())
        assert (adt.value("MSH-9.2"), adt.value("PID-3.1")) == ("A28", MRN)
        assert await daemon.stop() == 0
    finally:
        await receiver.stop()


async def test_with_a_forward_url_the_patient_also_reaches_another_fhir_server(daemon):
    """Both directions from one post: HL7v2 for the legacy system, and the Patient itself,
    as received, to another FHIR server by a conditional update on its identifier; each
    delivery is a hop in the message's audit trail."""
    server = await FhirTestServer().start()
    try:
        daemon.env["CONDUIT_FHIR_FORWARD_URL"] = server.url
        await daemon.start()
        token = await daemon.user_token("ehr-feed", "integration")
        admin = await daemon.user_token("root", "admin")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": JSON}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{daemon.fhir_port}/fhir/Patient",
                                 json=patient(), headers=headers) as resp:
                assert resp.status == 201
                message_id = resp.headers["X-Conduit-Message-Id"]
            (put,) = await server.wait_for(1, timeout=20)
            assert put.method == "PUT" and put.path == "/fhir/Patient"
            assert put.query == "identifier=urn:oid:2.16.840.1.113883.3.999|E2EFHIR4711"
            forwarded = put.json()
            assert forwarded["resourceType"] == "Patient"
            assert forwarded["name"][0]["family"] == NAME
            assert forwarded["meta"]["lastUpdated"]  # as stored: with the time it came in
            # The same message also became HL7v2 in the out folder.
            out = daemon.data_dir / "out" / CHANNEL / f"{message_id}.hl7"
            await eventually(out.exists, timeout=20, message="the HL7 file")
            assert Hl7Message.parse(out.read_text()).value("PID-3.1") == MRN

            async def sent_to() -> set[str]:
                async with http.get(f"http://127.0.0.1:{daemon.web_port}/api/audit"
                                    f"?message={message_id}",
                                    headers={"Authorization": f"Bearer {admin}"}) as r:
                    events = (await r.json())["events"]
                return {e["destination"] for e in events if e["kind"] == "sent"}

            async def both_sent() -> bool:
                return await sent_to() == {"files", "fhir-forward"}

            await eventually(both_sent, timeout=20, message="a sent hop per destination")
        assert await daemon.stop() == 0
    finally:
        await server.stop()
