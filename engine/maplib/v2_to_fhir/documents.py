"""TXA and its OBX content as a DocumentReference: the document's identity, type, status,
people, confidentiality, the document it appends to or replaces, and its content (text
lines as one UTF-8 attachment, ED data as Base64, RP pointers as URLs).

The id is the one hl7v2-mdm-to-fhir@1 gave the same TXA-12 (uuid5 of the sending facility
and the unique document number), so an edit, a status change or a cancel updates the
document the first message made. The table maps (TXA-17 docStatus, TXA-18 security label)
are `v2_documents`'.
"""

from __future__ import annotations

from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts, first_concept
from engine.maplib.v2_documents import (
    DOC_STATUS,
    TEXT_CONTENT_TYPE,
    attachment,
    encapsulated_attachment,
    mime_type,
    security_label,
    text_lines,
)
from engine.maplib.v2_orders import placer_and_filler
from engine.maplib.v2_to_fhir import people
from engine.maplib.v2_to_fhir.frame import Build

US_CORE_CATEGORY = ("http://hl7.org/fhir/us/core/CodeSystem/"
                    "us-core-documentreference-category")
CLINICAL_NOTE = {"coding": [{"system": US_CORE_CATEGORY, "code": "clinical-note",
                             "display": "Clinical Note"}]}
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
UNKNOWN_TYPE = {"coding": [{"system": DATA_ABSENT, "code": "unknown", "display": "Unknown"}]}
# MDM events and the relation of the document to its TXA-13 parent.
RELATION = {"T05": "appends", "T06": "appends", "T09": "replaces", "T10": "replaces"}
CANCEL_EVENT = "T11"
TEXT_TYPES = frozenset({"TX", "FT", "ST", "TEXT", ""})
NOTIFICATION_TITLE = "Document notification (content not sent)"
CANCELLED_TITLE = "Cancelled document"


def document_reference(b: Build, txa: Segment, obxs: list[Segment], *,
                       related: list[dict] | None = None) -> dict | None:
    """The DocumentReference of a TXA and the OBX that carry its content, kept in `b`
    (without TXA-12 and TXA-16, keyed as `_fallback_key` says, with a warning)."""
    master = dt.first_ei(txa, 12, b.facility)
    key = master or _fallback_key(b, txa)
    activity = dt.to_fhir_datetime(txa.value(4), "TXA-4", b.offset)
    origination = dt.to_fhir_datetime(txa.value(6), "TXA-6", b.offset)
    title = _title(b, txa)
    document = {
        "resourceType": "DocumentReference",
        "id": resource_id("DocumentReference", b.facility, key),
        "masterIdentifier": master,
        "identifier": _identifiers(b, txa),
        "status": _status(b.event, txa),
        "docStatus": _doc_status(txa),
        "type": _type(b, txa),
        "category": [CLINICAL_NOTE, *codeable_concepts(txa, 24, b.facility)],
        "subject": b.patient_ref(),
        "date": dt.to_fhir_instant(txa.value(6), "TXA-6", b.offset)
        or dt.to_fhir_instant(txa.value(4), "TXA-4", b.offset),
        "author": _people(b, txa, 9, 5),
        "authenticator": _first_person(b, txa, 10, 22),
        "relatesTo": _relates_to(b, txa),
        "description": dt.present(txa.value(25)) or None,
        "securityLabel": security_label(txa, 18),
        "content": _content(b, txa, obxs, title, origination, key),
        "context": compact({
            "encounter": [b.encounter_ref()] if b.encounter is not None else None,
            "period": {"start": activity} if activity else None,
            "related": related or None,
        }),
    }
    return b.add(compact(document))


def _fallback_key(b: Build, txa: Segment) -> dict:
    """Without TXA-12, TXA-16 unique file name keys the document, with a warning; without
    either, the patient, the document type (TXA-2) and its activity or origination time
    (TXA-4, TXA-6), else the message control id, so a notification without a number
    still gives its document's facts (a resend updates it)."""
    name = dt.present(txa.value(16))
    if name:
        return tolerate(MappingError("is empty; the document is identified by its file "
                                     "name (TXA-16)", field="TXA-12"),
                        {"system": f"urn:conduit:document-file:{b.facility}", "value": name})
    when = (dt.present(txa.value(4)) or dt.present(txa.value(6))
            or dt.present(b.message.segments[0].value(10)))
    kind = dt.present(txa.value(2, 1)).upper()
    patient = b.patient["id"] if b.patient is not None else ""
    return tolerate(MappingError("is empty and so is TXA-16: the document is keyed on the "
                                 "patient, its type and time (else the message control id)",
                                 field="TXA-12"),
                    {"system": f"Patient/{patient}", "value": f"TXA|{kind}|{when}"})


def _identifiers(b: Build, txa: Segment) -> list[dict]:
    """TXA-14 placer and TXA-15 filler order numbers, TXA-16 unique file name."""
    found = placer_and_filler(txa, 14, 15, b.facility)
    name = dt.present(txa.value(16))
    if name:
        found.append({"type": {"text": "Unique document file name"},
                      "system": f"urn:conduit:document-file:{b.facility}", "value": name})
    return found


def _status(event: str, txa: Segment) -> str:
    """entered-in-error for a cancel (T11, TXA-19 CA), superseded when obsolete (TXA-19
    OB), else current."""
    availability = dt.present(txa.value(19)).upper()
    if event == CANCEL_EVENT or availability == "CA":
        return "entered-in-error"
    if availability == "OB":
        return "superseded"
    return "current"


def _doc_status(txa: Segment) -> str | None:
    code = dt.present(txa.value(17)).upper()
    if code and code not in DOC_STATUS:
        tolerate(MappingError("is not a completion status of table 0271; docStatus is "
                              "left out", field="TXA-17"))
    return DOC_STATUS.get(code)


def _type(b: Build, txa: Segment) -> dict:
    concept = first_concept(txa, 2, b.facility)
    if concept is not None:
        return concept
    return tolerate(MappingError("is empty, so the document type is unknown", field="TXA-2"),
                    UNKNOWN_TYPE)


def _people(b: Build, segment: Segment, *fields: int) -> list[dict]:
    found: list[dict] = []
    for number in fields:
        for rep in segment.repetitions(number):
            person = people.practitioner(b, rep)
            if person is not None and b.ref(person) not in found:
                found.append(b.ref(person))
    return found


def _first_person(b: Build, segment: Segment, *fields: int) -> dict | None:
    for number in fields:
        person = people.practitioner(b, dt.first_rep(segment, number))
        if person is not None:
            return b.ref(person)
    return None


def _relates_to(b: Build, txa: Segment) -> list[dict]:
    """T05/T06 append to, T09/T10 replace the TXA-13 parent document (a literal reference
    to the DocumentReference its own message made)."""
    code = RELATION.get(b.event)
    parent = dt.first_ei(txa, 13, b.facility)
    if code is None:
        return []
    if parent is None:
        return tolerate(MappingError(f"is empty, but MDM^{b.event} ({code} a document) "
                                     "names its parent document here; no relatesTo",
                                     field="TXA-13"), [])
    target = {"reference": "DocumentReference/"
              + resource_id("DocumentReference", b.facility, parent), "identifier": parent}
    return [{"code": code, "target": target}]


def _title(b: Build, txa: Segment) -> str | None:
    """TXA-25 document title (v2.7+), else the text of the TXA-2 document type."""
    title = dt.present(txa.value(25))
    if title:
        return title
    concept = first_concept(txa, 2, b.facility) or {}
    codings = concept.get("coding", [])
    return concept.get("text") or next((c["display"] for c in codings if "display" in c),
                                       None)


def _content(b: Build, txa: Segment, obxs: list[Segment], title: str | None,
             creation: str | None, key: dict) -> list[dict]:
    """The text OBX lines as one attachment (TXA-3 may name its MIME type), then each ED
    value and each RP pointer in order; a message without content (a notification, a
    cancel) carries the title alone, as FHIR requires content, and
    a URN naming the document at its sender as the url US Core requires (us-core-6):
    the content stays with the sender, under the number the DocumentReference keys."""
    d = b.message.delimiters
    text_type = _text_type(txa)
    lines: list[str] = []
    others: list[dict] = []
    for obx in obxs:
        kind = dt.present(obx.value(2)).upper()
        if kind in TEXT_TYPES:
            lines += text_lines(obx, d)
        elif kind == "ED":
            for rep in obx.repetitions(5):
                try:
                    found = encapsulated_attachment(rep, b.field(obx, 5))
                except MappingError as exc:
                    found = tolerate(exc)
                if found:
                    others.append(_described(b, obx, found))
        elif kind == "RP":
            pointer = dt.present(obx.value(5, 1))
            if pointer and " " not in pointer:
                others.append(_described(b, obx, {
                    "contentType": mime_type(obx.value(5, 3), obx.value(5, 4)),
                    "url": pointer}))
    text = "\n".join(lines).strip("\n")
    attachments = ([attachment(text.encode("utf-8"), text_type)]
                   if text.strip() else []) + others
    if not attachments:
        fallback = CANCELLED_TITLE if b.event == CANCEL_EVENT else NOTIFICATION_TITLE
        url = _document_urn(b, key)
        return [{"attachment": compact({"url": url, "title": title or fallback,
                                        "creation": creation})}]
    return [{"attachment": compact({**a, "title": title or a.get("title"),
                                    "creation": creation or a.get("creation")})}
            for a in attachments]


def _document_urn(b: Build, key: dict) -> str:
    """`urn:conduit:document:<facility>:<number>` (TXA-12, else the TXA-16 file name)."""
    number = quote(key["value"], safe="-._~")
    return f"urn:conduit:document:{quote(b.facility, safe='-._~')}:{number}"


def _described(b: Build, obx: Segment, found: dict) -> dict:
    """An ED/RP attachment with OBX-3's text as its title and OBX-14 as its creation
    (the document's own title and origination time win when sent)."""
    return compact({
        **found,
        "title": dt.present(obx.value(3, 2)) or dt.present(obx.value(3, 1)) or None,
        "creation": dt.to_fhir_datetime(obx.value(14), "OBX-14", b.offset),
    })


def _text_type(txa: Segment) -> str:
    """TXA-3 when it names a text MIME type (text/html, text/rtf), else plain UTF-8."""
    sent = dt.present(txa.value(3))
    kind = mime_type(sent, "") if "/" not in sent else mime_type("", sent)
    if kind.startswith("text/") and kind != "text/plain":
        return kind
    return TEXT_CONTENT_TYPE


# ---- ED and RP content as DiagnosticReports ---------------------------------------------

# OBX-11 result status (table 0085) -> DiagnosticReport.status.
REPORT_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "registered",
                 "I": "registered", "D": "entered-in-error", "W": "entered-in-error",
                 "X": "cancelled", "A": "amended"}
OTHER_SECTION = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                             "code": "OTH", "display": "Other"}]}


def reports(b: Build, txa: Segment, obxs: list[Segment], document: dict) -> list[dict]:
    """Each ED or RP OBX (an encapsulated or referenced document: a PDF, an image) also as
    a DiagnosticReport presenting it, as the reference converter makes them: code OBX-3
    (else the document type), status OBX-11 (else the document's completion, else final),
    time OBX-14 (else TXA-4, TXA-6, MSH-7), the document's authors as performers;
    category OTH (table 0074: no lab section), keyed on the document and OBX-1."""
    made: list[dict] = []
    for position, obx in enumerate(obxs, start=1):
        kind = dt.present(obx.value(2)).upper()
        if kind == "ED":
            forms = [f for f in (_quiet(rep, b.field(obx, 5)) for rep in obx.repetitions(5))
                     if f]
        elif kind == "RP" and (pointer := dt.present(obx.value(5, 1))) and " " not in pointer:
            forms = [{"contentType": mime_type(obx.value(5, 3), obx.value(5, 4)),
                      "url": pointer}]
        else:
            continue
        if not forms:
            continue
        status = (REPORT_STATUS.get(dt.present(obx.value(11)).upper())
                  or DOC_STATUS.get(dt.present(txa.value(17)).upper()) or "final")
        when = next((w for w in (
            dt.to_fhir_datetime(obx.value(14), "OBX-14", b.offset),
            dt.to_fhir_datetime(txa.value(4), "TXA-4", b.offset),
            dt.to_fhir_datetime(txa.value(6), "TXA-6", b.offset),
            dt.to_fhir_datetime(b.sent, "MSH-7", b.offset)) if w),
            None)
        key = {"system": f"urn:conduit:document-report:{document['id']}",
               "value": dt.present(obx.value(1)) or str(position)}
        report = b.add(compact({
            "resourceType": "DiagnosticReport",
            "id": resource_id("DiagnosticReport", b.facility, key),
            "status": status,
            "category": [OTHER_SECTION],
            "code": first_concept(obx, 3, b.facility) or document["type"],
            "subject": b.patient_ref(),
            "encounter": b.encounter_ref(),
            "effectiveDateTime": when,
            "performer": document.get("author"),
            "presentedForm": [_described(b, obx, f) for f in forms],
        }))
        made += [report] if report is not None else []
    return made


def _quiet(rep: Repetition, field: str) -> dict | None:
    """An ED value's attachment; one that cannot be read was already a warning."""
    try:
        return encapsulated_attachment(rep, field)
    except MappingError:
        return None

