"""hl7v2-mdm-to-fhir@1: a clinical document (MDM) as a FHIR R4 transaction Bundle with the
Patient and a DocumentReference.

Events T02 (original), T04 (status change), T06 (addendum), T08 (edit) and T10
(replacement), which carry the document, and T11 (cancel) are mapped. The notifications
without content (T01, T03, T05, T07, T09) are skipped with a reason: a DocumentReference
must have content, and a PUT without it would erase the document already sent. A
message that is not MDM fails naming MSH-9.

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`'s, so its id is the one hl7v2-adt-to-fhir gives
  the same PID from the same facility. The DocumentReference id is uuid5 of (facility
  MSH-4, else MSH-3, and the TXA-12 unique document number): an edit (T08), a status
  change (T04) or a cancel (T11) of a document updates the same resource. Entries are
  PUT, so redelivery never duplicates.
- masterIdentifier is TXA-12; identifier holds TXA-14 placer (type PLAC) and TXA-15
  filler (type FILL) order numbers. An EI without an authority is scoped to the facility.
- type is TXA-2 as sent. Table 0270 is user-defined (HL7 suggests PN for "procedure
  note"; many sites send it for "progress note"), so a code without a coding system is
  the sender's: `urn:conduit:code:<facility>:local`; LN is LOINC, HL70270 is v2-0270
  (see `engine.maplib.v2_codes`). category is US Core's clinical-note.
- status: T11, or TXA-19 availability CA, is entered-in-error; TXA-19 OB (obsolete) is
  superseded; otherwise current. docStatus from TXA-17 (table 0271): AU, DO and LA are
  final; DI, IN, IP and PA preliminary; another code is left out, not guessed.
- relatesTo: T06 appends, T10 replaces the TXA-13 parent document, which this message
  does not carry: the target is the literal `DocumentReference/<id>` that the parent's
  own message made, with the parent's number as identifier. Neither event is mapped
  without TXA-13. The parent itself is not rewritten (that would need its content).
- date (an instant) is TXA-6 origination, else TXA-4 activity, when it has a time and a
  zone (see `datatypes.to_fhir_datetime`; MSH-7 supplies the sender's zone); TXA-4 is
  also context.period.start and TXA-6 attachment.creation, at whatever precision was sent.
- author is every TXA-9 originator, authenticator the first TXA-10, else TXA-22, each as
  a display name only (no Practitioner resource is made). TXA-18 confidentiality is a
  v3 Confidentiality security label (U usual control is N normal).
- content: all text OBX (TX, FT, ST) lines form one text/plain UTF-8 attachment; each ED
  value is an attachment of its own type (see `v2_documents`); OBX of other value types
  are not document content and are left out. attachment.title is TXA-25, else TXA-2's
  text. A T11 without content gets an attachment with the title only, because FHIR
  requires content and the cancelled content must not stay visible.
- context.encounter is a literal reference to the Encounter hl7v2-adt-to-fhir made for
  PV1-19 (`v2_fhir.encounter_reference`), with the visit number as identifier.
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.v2_codes import first_concept
from engine.maplib.v2_documents import (
    DOC_STATUS,
    TEXT_TYPES,
    encapsulated_attachment,
    security_label,
    text_attachment,
    text_lines,
)
from engine.maplib.v2_fhir import (
    bundle,
    encounter_reference,
    patient_of,
    sender_offset,
    sending_facility,
    trigger_event,
)
from engine.maplib.v2_orders import placer_and_filler
from engine.mapping import Skip, mapping

CONTENT_EVENTS = frozenset({"T02", "T04", "T06", "T08", "T10"})
CANCEL_EVENT = "T11"
RELATION = {"T06": "appends", "T10": "replaces"}

CLINICAL_NOTE = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
            "code": "clinical-note",
            "display": "Clinical Note",
        }
    ]
}
CANCELLED_TITLE = "Cancelled document"


@mapping("hl7v2-mdm-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def mdm_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one MDM message to a transaction Bundle, or skip a notification without content."""
    event = trigger_event(message, "MDM")
    if event not in CONTENT_EVENTS and event != CANCEL_EVENT:
        return Skip(f"MDM^{event} is not mapped by this version (it carries no document)")
    person = patient_of(message)
    txa = message.segment("TXA")
    if txa is None:
        raise MappingError("the TXA segment is missing, so there is no document", field="TXA-12")
    return bundle(message, [person, _document(message, txa, event, person)])


def _document(message: Hl7Message, txa: Segment, event: str, person: dict) -> dict:
    """The DocumentReference of the TXA and its OBX content."""
    facility, offset = sending_facility(message), sender_offset(message)
    master = dt.first_ei(txa, 12, facility)
    if master is None:
        raise MappingError(
            "has no unique document number, so the document cannot be identified",
            field="TXA-12",
        )
    activity = dt.to_fhir_datetime(txa.value(4), "TXA-4", offset)
    origination = dt.to_fhir_datetime(txa.value(6), "TXA-6", offset)
    encounter = encounter_reference(message, facility)
    document = {
        "resourceType": "DocumentReference",
        "id": resource_id("DocumentReference", facility, master),
        "masterIdentifier": master,
        "identifier": placer_and_filler(txa, 14, 15, facility),
        "status": _status(event, txa),
        "docStatus": DOC_STATUS.get(dt.present(txa.value(17)).upper()),
        "type": first_concept(txa, 2, facility),
        "category": [CLINICAL_NOTE],
        "subject": reference(person),
        "date": dt.to_fhir_instant(txa.value(6), "TXA-6", offset)
        or dt.to_fhir_instant(txa.value(4), "TXA-4", offset),
        "author": [a for a in map(dt.xcn_reference, txa.repetitions(9)) if a],
        "authenticator": dt.xcn_reference(dt.first_rep(txa, 10) or dt.first_rep(txa, 22)),
        "relatesTo": _relates_to(event, txa, facility),
        "securityLabel": security_label(txa, 18),
        "content": _content(message, event, _title(txa, facility), origination),
        "context": compact(
            {
                "encounter": [encounter] if encounter else None,
                "period": {"start": activity} if activity else None,
            }
        ),
    }
    return compact(document)


def _status(event: str, txa: Segment) -> str:
    """current, unless the event or TXA-19 availability says cancelled or obsolete."""
    availability = dt.present(txa.value(19)).upper()
    if event == CANCEL_EVENT or availability == "CA":
        return "entered-in-error"
    if availability == "OB":
        return "superseded"
    return "current"


def _relates_to(event: str, txa: Segment, facility: str) -> list[dict]:
    """For an addendum or a replacement, the link to the TXA-13 parent document."""
    code = RELATION.get(event)
    if code is None:
        return []
    parent = dt.first_ei(txa, 13, facility)
    if parent is None:
        raise MappingError(
            f"is empty, but MDM^{event} ({code} a document) needs the parent document number",
            field="TXA-13",
        )
    target = {
        "reference": f"DocumentReference/{resource_id('DocumentReference', facility, parent)}",
        "identifier": parent,
    }
    return [{"code": code, "target": target}]


def _title(txa: Segment, facility: str) -> str | None:
    """TXA-25 document title (v2.7+), else the text of the TXA-2 document type."""
    title = dt.present(txa.value(25))
    if title:
        return title
    concept = first_concept(txa, 2, facility)
    if not concept:
        return None
    codings = concept.get("coding", [])
    return concept.get("text") or next((c["display"] for c in codings if "display" in c), None)


def _content(
    message: Hl7Message, event: str, title: str | None, creation: str | None
) -> list[dict]:
    """One text attachment from the text OBX lines, then one per ED value, in order."""
    lines: list[str] = []
    encapsulated: list[dict] = []
    for index, obx in enumerate(message.all("OBX"), start=1):
        kind = dt.present(obx.value(2)).upper()
        if kind in TEXT_TYPES:
            lines += text_lines(obx, message.delimiters)
        elif kind == "ED":
            field = f"OBX[{index}]-5"
            encapsulated += [
                a for a in (encapsulated_attachment(r, field) for r in obx.repetitions(5)) if a
            ]
    text = text_attachment(lines)
    attachments = ([text] if text else []) + encapsulated
    if not attachments:
        if event == CANCEL_EVENT:
            return [{"attachment": {"title": title or CANCELLED_TITLE}}]
        raise MappingError(
            "no OBX holds document text (TX, FT, ST) or encapsulated data (ED)",
            field="OBX-5",
        )
    described = ({**a, "title": title, "creation": creation} for a in attachments)
    return [{"attachment": compact(a)} for a in described]
