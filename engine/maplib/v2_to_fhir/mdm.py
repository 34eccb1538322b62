"""MDM: a clinical document (TXA with its OBX content) as a DocumentReference, with the
Patient, the Encounter (PV1), the orders it answers (ORC/OBR as ServiceRequest) and the
OBX results as Observations derived from the document.

Every event T01-T11 maps: notifications without content (T01, T03, T05, T07, T09) still
give the document's facts (type, status, people, parent) with a title-only attachment,
because FHIR requires content. An ED or RP OBX (a PDF, an image) is also a
DiagnosticReport presenting it, and each CON a Consent, as the reference converter
makes them.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.v2_orders import order_groups
from engine.maplib.v2_to_fhir import consents, documents, orders, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = tuple(f"T{n:02d}" for n in range(1, 12))
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "EpisodeOfCare",
    "Location", "Practitioner", "PractitionerRole",
    "Organization", "MessageHeader",
    "ServiceRequest", "DocumentReference", "DiagnosticReport", "Observation", "Device",
    "Consent", "Provenance",
)
# OBX-2 types that are the document itself, not results about it.
DOCUMENT_TYPES = frozenset({"ED", "RP"})


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "MDM")
    if b.event not in EVENTS:
        return Skip(f"MDM^{b.event or '(no event)'} is not a document event this mapping reads")
    people.patient(b)
    visit.encounter(b)
    people.related_persons(b)
    requests = [r for r in (
        orders.service_request(b, g.orc, g.obr) for g in order_groups(message)) if r]
    obxs = message.all("OBX")
    txa = message.segment("TXA")
    document = None
    if txa is None:
        tolerate(MappingError("the TXA segment is missing, so there is no document",
                              field="TXA-12"))
    else:
        document = documents.document_reference(
            b, txa, obxs, related=[b.ref(r) for r in requests])
        if document is not None:
            documents.reports(b, txa, obxs, document)
    measured = [o for o in obxs if dt.present(o.value(2)).upper() not in DOCUMENT_TYPES]
    # Keyed on the document, so an edit (T08) or a replacement updates its results.
    key = {"system": "urn:conduit:document", "value": document["id"]} if document else None
    # Results of the document were observed at its activity time (TXA-4) unless they say.
    when = dt.to_fhir_datetime(txa.value(4), "TXA-4", b.offset) if txa is not None else None
    made = results.observations(b, measured, based_on=requests or None,
                                context=results.Context(key=key, effective=when,
                                                        otherwise="exam"))
    if document is not None:
        for observation in made:
            observation["derivedFrom"] = [b.ref(document)]
    consents.consents(b)
    visit.episode_of_care(b)
    return finish(b)
