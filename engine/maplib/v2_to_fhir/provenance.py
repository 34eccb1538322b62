"""MSH and EVN as what a receiver needs to trust and trace a message's facts: the
Provenance (who sent them, when they were recorded and happened, why, for which event),
the MessageHeader the reference converter also writes, and the sending organization.

Both resources are keyed on the message control id (MSH-10) within the sender, so a
resent message updates them instead of adding more. The MessageHeader is valid R4 in a
transaction: its required source endpoint, which v2 rarely sends (MSH-24), is a
Conduit URN naming the sending application within its facility.
"""

from __future__ import annotations

from urllib.parse import quote

from engine.formats.hl7v2 import Repetition, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import is_lenient
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept
from engine.maplib.v2_to_fhir.engine_zone import assumed_instant
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.people import hd_organization, local_system, practitioner

V2_0003 = "http://terminology.hl7.org/CodeSystem/v2-0003"
V2_0062 = "http://terminology.hl7.org/CodeSystem/v2-0062"
V2_0103 = "http://terminology.hl7.org/CodeSystem/v2-0103"
V2_0104 = "http://terminology.hl7.org/CodeSystem/v2-0104"
PROCESSING: dict[str, str] = {"P": "Production", "T": "Training", "D": "Debugging"}
_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_ENDPOINT = "urn:conduit:application:"

# Table 0003 event type: the displays of the events ADT and the other builders map.
EVENT_DISPLAY: dict[str, str] = {
    "A01": "ADT/ACK - Admit/visit notification",
    "A02": "ADT/ACK - Transfer a patient",
    "A03": "ADT/ACK - Discharge/end visit",
    "A04": "ADT/ACK - Register a patient",
    "A05": "ADT/ACK - Pre-admit a patient",
    "A06": "ADT/ACK - Change an outpatient to an inpatient",
    "A07": "ADT/ACK - Change an inpatient to an outpatient",
    "A08": "ADT/ACK - Update patient information",
    "A09": "ADT/ACK - Patient departing - tracking",
    "A10": "ADT/ACK - Patient arriving - tracking",
    "A11": "ADT/ACK - Cancel admit/visit notification",
    "A12": "ADT/ACK - Cancel transfer",
    "A13": "ADT/ACK - Cancel discharge/end visit",
    "A14": "ADT/ACK - Pending admit",
    "A15": "ADT/ACK - Pending transfer",
    "A16": "ADT/ACK - Pending discharge",
    "A17": "ADT/ACK - Swap patients",
    "A25": "ADT/ACK - Cancel pending discharge",
    "A26": "ADT/ACK - Cancel pending transfer",
    "A27": "ADT/ACK - Cancel pending admit",
    "A28": "ADT/ACK - Add person information",
    "A29": "ADT/ACK - Delete person information",
    "A30": "ADT/ACK - Merge person information",
    "A31": "ADT/ACK - Update person information",
    "A40": "ADT/ACK - Merge patient - patient identifier list",
    "A41": "ADT/ACK - Merge account - patient account number",
    "A45": "ADT/ACK - Move visit information - visit number",
    "A47": "ADT/ACK - Change patient identifier list",
    "A60": "ADT/ACK - Update allergy information",
    "A18": "ADT/ACK - Merge patient information",
    "A21": "ADT/ACK - Patient goes on a leave of absence",
    "A22": "ADT/ACK - Patient returns from a leave of absence",
    "A23": "ADT/ACK - Delete a patient record",
    "A24": "ADT/ACK - Link patient information",
    "A32": "ADT/ACK - Cancel patient arriving - tracking",
    "A33": "ADT/ACK - Cancel patient departing - tracking",
    "A34": "ADT/ACK - Merge patient information - patient ID only",
    "A35": "ADT/ACK - Merge patient information - account number only",
    "A36": "ADT/ACK - Merge patient information - patient ID and account number",
    "A37": "ADT/ACK - Unlink patient information",
    "A38": "ADT/ACK - Cancel pre-admit",
    "A39": "ADT/ACK - Merge person - patient ID",
    "A42": "ADT/ACK - Merge visit - visit number",
    "A43": "ADT/ACK - Move patient information - patient identifier list",
    "A44": "ADT/ACK - Move account information - patient account number",
    "A46": "ADT/ACK - Change patient ID",
    "A48": "ADT/ACK - Change alternate patient ID",
    "A49": "ADT/ACK - Change patient account number",
    "A50": "ADT/ACK - Change visit number",
    "A51": "ADT/ACK - Change alternate visit ID",
    "A52": "ADT/ACK - Cancel leave of absence for a patient",
    "A53": "ADT/ACK - Cancel patient returns from a leave of absence",
    "A54": "ADT/ACK - Change attending doctor",
    "A55": "ADT/ACK - Cancel change attending doctor",
    "A61": "ADT/ACK - Change consulting doctor",
    "A62": "ADT/ACK - Cancel change consulting doctor",
}
# Table 0062 event reason.
EVENT_REASON: dict[str, str] = {
    "01": "Patient request", "02": "Physician/health practitioner order",
    "03": "Census management", "O": "Other", "U": "Unknown",
}


def provenance(b: Build) -> dict | None:
    """The Provenance of the message (see the module docstring), or None when the message
    made nothing or says neither when (EVN-2, MSH-7, as an instant: Provenance.recorded
    is required) nor under which control id (MSH-10). Adds the MessageHeader and the
    sending Organization (MSH-4) beside it."""
    targets = [b.ref(r) for r in b.resources()
               if r["resourceType"] not in ("Provenance", "MessageHeader")]
    msh = b.message.segments[0]
    evn = b.message.segment("EVN")
    control = dt.present(msh.value(10))
    recorded = (dt.to_fhir_instant(_evn(evn, 2), "EVN-2", b.offset)
                or dt.to_fhir_instant(b.sent, "MSH-7", b.offset))
    if not targets or not control:
        return None
    if not recorded and is_lenient():  # strict: no guessing
        recorded = _in_engine_zone(evn, b.sent)
    sender = sending_organization(b)
    key = {"system": f"urn:conduit:msh:{b.facility}", "value": control}
    b.add(message_header(b, key, sender))
    made = compact({
        "resourceType": "Provenance",
        "id": resource_id("Provenance", b.facility, key),
        "target": targets,
        "occurredDateTime": dt.to_fhir_datetime(_evn(evn, 6), "EVN-6", b.offset),
        "recorded": recorded,
        "reason": [r for r in (_reason(b, evn),) if r],
        "activity": _event_concept(b),
        "agent": _agents(b, evn, sender),
        "location": _event_location(b, evn),
    })
    return made if recorded else None


def _in_engine_zone(evn: Segment | None, sent: str) -> str | None:
    """EVN-2, else MSH-7, in the engine's zone when neither has one (engine_zone)."""
    return assumed_instant([(_evn(evn, 2), "EVN-2"), (sent, "MSH-7")],
                           "Provenance.recorded", name_the_rest=True)


def sending_organization(b: Build) -> dict | None:
    """The Organization MSH-4 names (its universal id as identifier when sent), kept in
    `b`; None when MSH-4 is empty."""
    return hd_organization(b, b.message.segments[0], 4)


def message_header(b: Build, key: dict, sender: dict | None) -> dict | None:
    """The message's MessageHeader: the event, the sending application (MSH-3, SFT) and
    the receiving one (MSH-5, MSH-6), focused on the message's patient (else its first
    resource)."""
    msh = b.message.segments[0]
    if not b.event:
        return None
    application = dt.present(msh.value(3, 1)) or dt.present(msh.value(3, 2))
    sft = b.message.segment("SFT")
    receiver = hd_organization(b, msh, 6)
    receiving = dt.present(msh.value(5, 1)) or dt.present(msh.value(5, 2))
    focus = b.patient or next(iter(b.resources()), None)
    return compact({
        "resourceType": "MessageHeader",
        "id": resource_id("MessageHeader", b.facility, key),
        "meta": _tags(msh),
        "eventCoding": compact({"system": V2_0003, "code": b.event,
                                "display": EVENT_DISPLAY.get(b.event)}),
        "destination": [d for d in (compact({
            "name": receiving or None,
            "endpoint": dt.present(msh.value(25, 1)) or _endpoint(b, receiving or "receiver"),
            "receiver": b.ref(receiver) if receiver else None,
        }),) if receiving or receiver],
        "sender": b.ref(sender) if sender else None,
        "source": compact({
            "name": application or None,
            "software": dt.present(sft.value(3)) if sft is not None else None,
            "version": dt.present(sft.value(2)) if sft is not None else None,
            "endpoint": dt.present(msh.value(24, 1)) or _endpoint(b, application or "sender"),
        }),
        "focus": [b.ref(focus)] if focus else None,
    })


def _tags(msh: Segment) -> dict | None:
    """MSH-11 processing id (table 0103) and MSH-12 version (table 0104) as tags."""
    tags = []
    processing = dt.present(msh.value(11, 1)).upper()
    if processing in PROCESSING:
        tags.append({"system": V2_0103, "code": processing, "display": PROCESSING[processing]})
    version = dt.present(msh.value(12, 1))
    if version:
        tags.append({"system": V2_0104, "code": version})
    return {"tag": tags} if tags else None


def _endpoint(b: Build, application: str) -> str:
    return f"{_ENDPOINT}{quote(b.facility, safe='-._~')}:{quote(application, safe='-._~')}"


def _evn(evn: Segment | None, field: int) -> str:
    return evn.value(field) if evn is not None else ""


def _event_concept(b: Build) -> dict | None:
    """The trigger event (MSH-9.2, else EVN-1, which says the same) as the activity."""
    evn = b.message.segment("EVN")
    if evn is not None:
        evn.value(1)  # EVN-1 is the event MSH-9.2 repeats: read, so never "left behind"
    if not b.event:
        return None
    return {"coding": [compact({"system": V2_0003, "code": b.event,
                                "display": EVENT_DISPLAY.get(b.event)})]}


def _reason(b: Build, evn: Segment | None) -> dict | None:
    """EVN-4 event reason through table 0062 (a local code keeps the sender's system)."""
    if evn is None:
        return None
    rep = dt.first_rep(evn, 4)
    return cwe_to_codeable_concept(rep, b.facility, Bound(V2_0062, EVENT_REASON))


def _agents(b: Build, evn: Segment | None, sender: dict | None) -> list[dict]:
    """The author (the sending organization, else the application by name), the SFT
    software as assemblers and EVN-5's operators as enterers, these on behalf of the
    sending organization (US Core's provenance-1)."""
    msh = b.message.segments[0]
    application = dt.present(msh.value(3, 1))
    who = (b.ref(sender) if sender else
           {"display": " ".join(p for p in (application, b.facility) if p)})
    agents = [{"type": _agent_type("author", "Author"), "who": who}]
    on_behalf = b.ref(sender) if sender else None
    agents += [{"type": _agent_type("assembler", "Assembler"), "who": b.ref(device),
                "onBehalfOf": on_behalf} for device in software(b)]
    for rep in (evn.repetitions(5) if evn is not None else []):
        who = _operator(b, rep)
        if who is not None:
            agents.append({"type": _agent_type("enterer", "Enterer"), "who": who,
                           "onBehalfOf": on_behalf})
    return [compact(a) for a in agents]


def _operator(b: Build, rep: Repetition) -> dict | None:
    """An EVN-5 operator as a reference to their Practitioner; one sent as a user id
    alone (no name, which US Core's Practitioner requires) is referred to by that
    identifier instead of being made a Practitioner."""
    if not dt.present(rep.value(2)) and dt.present(rep.value(1)):
        system = (dt.hd_system(rep.value(9, 1), rep.value(9, 2), rep.value(9, 3))
                  or local_system(b, "practitioner"))
        return {"type": "Practitioner",
                "identifier": {"system": system, "value": dt.present(rep.value(1))}}
    operator = practitioner(b, rep)
    return b.ref(operator) if operator is not None else None


def software(b: Build) -> list[dict]:
    """Each SFT (the sending software: vendor SFT-1, version SFT-2, product SFT-3,
    binary id SFT-4, install date SFT-6) as a Device, kept in `b`."""
    made: list[dict] = []
    for sft in b.message.all("SFT"):
        product = dt.present(sft.value(3))
        vendor = dt.present(sft.value(1, 1))
        version = dt.present(sft.value(2))
        binary = dt.present(sft.value(4))
        if not (product or vendor):
            continue
        key = {"system": "urn:conduit:software", "value": "|".join((vendor, product, version))}
        device = b.add(compact({
            "resourceType": "Device",
            "id": resource_id("Device", b.facility, key),
            "identifier": [{"system": "urn:conduit:software-binary-id", "value": binary}]
            if binary else None,
            "manufacturer": vendor or None,
            "deviceName": [{"name": product, "type": "manufacturer-name"}] if product else None,
            "version": [{"value": version}] if version else None,
            "note": [{"text": f"Installed {installed}"}]
            if (installed := dt.to_fhir_date(sft.value(6), "SFT-6")) else None,
        }), merge=True)
        if device is not None:
            made.append(device)
    return made


def _agent_type(code: str, display: str) -> dict:
    return {"coding": [{"system": _AGENT_TYPE, "code": code, "display": display}]}


def _event_location(b: Build, evn: Segment | None) -> dict | None:
    """EVN-7 event facility (an HD) as the Location where the event happened."""
    if evn is None:
        return None
    name = dt.present(evn.value(7, 1)) or dt.present(evn.value(7, 2))
    if not name:
        return None
    key = {"system": "urn:conduit:event-facility", "value": name.upper()}
    place = b.add(compact({
        "resourceType": "Location", "id": resource_id("Location", b.facility, key),
        "name": name, "mode": "instance",
    }), merge=True)
    return b.ref(place) if place else None


def finish(b: Build) -> dict:
    """The message's transaction Bundle, with its Provenance (and MessageHeader) last:
    how every builder ends."""
    b.add(provenance(b))
    return b.transaction()
