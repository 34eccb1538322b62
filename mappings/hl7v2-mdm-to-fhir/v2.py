"""hl7v2-mdm-to-fhir@2: a clinical document (MDM T01-T11) as a FHIR R4 transaction Bundle,
leniently.

What a receiver notices against v1:
- Every event maps. The notifications without content (T01 original, T03 status change,
  T05 addendum, T07 edit, T09 replacement) give the DocumentReference with its facts
  (type, status, docStatus, people, parent document) and an attachment carrying only the
  title, because FHIR requires content; a receiver holding the document's text from an
  earlier message should not let a notification's PUT replace it (route notifications
  apart, or ignore title-only content).
- A value that cannot be read is a warning located by field, and the rest maps: an empty
  TXA-2 gives type "unknown" (data-absent-reason); an empty TXA-12 keys the document on
  TXA-16 (file name); a T06/T10 without TXA-13 has no relatesTo; data that does not
  decode costs that attachment. Only a message without a PID fails.
- author (TXA-9 originators, then TXA-5 the primary activity provider) and
  authenticator (TXA-10, else TXA-22) are Practitioner resources, not display names.
  T05/T06 append to and T09/T10 replace the TXA-13 parent. TXA-16 is an identifier,
  TXA-24 a category, TXA-25 the description and title; TXA-3 may name the text's MIME type.
- New resources: the Encounter (PV1, referenced from context), RelatedPerson (NK1),
  ServiceRequests for ORC/OBR (context.related), Observations for OBX that are not the
  document itself (anything but ED/RP; text lines of one OBX-3 are one Observation), each
  derivedFrom the document, keyed on it and effective at TXA-4 unless OBX-14 says, and
  the message's Provenance.
- Ids are unchanged: Patient as hl7v2-adt-to-fhir@1, DocumentReference as v1 (TXA-12).
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import mdm
from engine.mapping import mapping


@mapping("hl7v2-mdm-to-fhir@2", accepts="hl7v2", emits="application/fhir+json")
def mdm_to_fhir(message: Hl7Message):
    return convert(message, mdm.build)
