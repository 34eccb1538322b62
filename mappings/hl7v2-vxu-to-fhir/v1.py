"""hl7v2-vxu-to-fhir@1: a VXU^V04 as a FHIR R4 transaction Bundle (Patient, Immunization).

Reads v2.5.1 as CDC's immunization implementation guide profiles it, and the v2.3.1/2.4
registry submissions before it (RXA groups without ORC, VFC eligibility in PV1-20). A
message that is not VXU fails naming MSH-9; a VXU event other than V04 is skipped.

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`: the same id and content hl7v2-adt-to-fhir@1 makes
  for the same PID from the same facility, so both feeds update one Patient.
- One Immunization per RXA. Its id is uuid5 of (Immunization, sending facility, filler
  order number ORC-3 with its system), else the placer number ORC-2. CDC's placeholder
  9999 is not an id: without a real order number the id comes from the patient, RXA-3 as
  sent and the RXA-5 code, so a dose re-sent or deleted the same way finds its resource.
  A message holding the same dose twice fails naming the field the ids came from.
- status: RXA-21 D (delete) is entered-in-error (a PUT of the same id: the receiver keeps
  the record, marked, with what the delete message repeats); else RXA-20 through table
  0322 (a code outside it fails naming RXA-20): CP or empty completed, RE and NA not-done
  with statusReason from RXA-18 (NIP002, plus v3 ActReason PATOBJ/RELIG), PA completed
  with isSubpotent, subpotentReason "partial" and a note.
- RXA-9 (NIP001): 00 is primarySource true; 01-08 are primarySource false, reportOrigin
  carrying the NIP001 code and, where one fits, the immunization-origin code (02
  provider, 03/06 record, 04 recall, 07 school). No RXA-9 writes neither.
- vaccineCode from RXA-5, both CWE triplets: CVX -> http://hl7.org/fhir/sid/cvx, NDC ->
  http://hl7.org/fhir/sid/ndc, CPT; a code without a system is CVX (RXA-5's table 0292).
  Other named systems are kept, a sender's own as urn:conduit:code:<facility>:<name>
  (the form every v2 mapping uses, `v2_codes`); CDC's NIP001/NIP002 as
  urn:conduit:code:NIPnnn.
- doseQuantity from RXA-6/RXA-7; 999 (amount unknown) writes none; units carry the UCUM
  system only when RXA-7 names UCUM. manufacturer is a logical reference (MVX code as
  identifier, name as display); lotNumber RXA-15; expirationDate RXA-16 (a date).
- route RXR-1 (v2-0162) and site RXR-2 (v2-0163); other systems the sender names (NCIT)
  are kept as sent. performer: RXA-10 as AP and ORC-12 as OP (v2-0443), display only.
  location: RXA-11's facility by display. recorded: RXA-22, for adds only.
- OBX: 64994-7 programEligibility (v2-0064; v2.3.1's PV1-20 V code when a non-historical
  dose has none), 30963-3 fundingSource, and per OBX-4 sub-id one education entry (VIS
  document 69764-9 or vaccine type 30956-7 as documentType, 29768-9 publicationDate,
  29769-7 presentationDate). Other OBX (contraindications, reactions, dose number) are
  not mapped. note: NTE after the RXA, and RXA-9 repetitions that are free text.
- Dates follow `datatypes.to_fhir_datetime` (a time without a zone takes MSH-7's, else
  only its date is kept); a malformed date fails naming its field, e.g. RXA[2]-3.
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.maplib import v2_immunization as imm
from engine.maplib.v2_fhir import bundle, patient_of, sender_offset, sending_facility, trigger_event
from engine.mapping import Skip, mapping


@mapping("hl7v2-vxu-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def vxu_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one VXU^V04 to a transaction Bundle of its Patient and Immunizations."""
    event = trigger_event(message, "VXU", default="V04")
    if event != "V04":
        return Skip(f"VXU^{event} is not mapped by this version")
    facility = sending_facility(message)
    offset = sender_offset(message)
    person = patient_of(message)
    from_visit = imm.visit_eligibility(message)
    resources = [person]
    seen: set[str] = set()
    for group in imm.dose_groups(message):
        rid, source = imm.immunization_id(group, facility, person["id"])
        if rid in seen:
            raise MappingError(
                "names a dose that this message already holds; each dose must be sent once",
                field=source,
            )
        seen.add(rid)
        resources.append(
            imm.immunization(
                group,
                facility=facility,
                patient=person,
                sender_offset=offset,
                eligibility_from_visit=from_visit,
            )
        )
    return bundle(message, resources)
