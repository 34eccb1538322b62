"""ncpdp-cancelrx-to-fhir@2: an NCPDP SCRIPT CancelRx, and the pharmacy's
CancelRxResponse, as a FHIR R4 transaction Bundle.

Shape chosen: both a status change and a Task. The CancelRx is the prescriber's
decision, so the order's MedicationRequest gets status `cancelled`, by a PATCH (a JSON
Patch replacing /status, in a Binary; `engine.maplib.fhir_patch`) and not a PUT: the
MedicationRequest keeps everything the NewRx said (dosage, dispense request, notes),
whatever the CancelRx repeats of it. The pharmacy's part (did it stop the
prescription?) is a Task, code `abort` (http://hl7.org/fhir/CodeSystem/task-code),
focus that MedicationRequest, owner the pharmacy: `requested` for the CancelRx,
`completed` when the CancelRxResponse approves, `rejected` when it denies (statusReason
its ReasonCode and DenialReason).

- Which order: the one whose NewRx RelatesToMessageID names, `PATCH
  MedicationRequest/<id>` at the id ncpdp-newrx-to-fhir@2 gave it
  (`ncpdp_scope.order_id`), whatever order number the CancelRx carries. Without
  RelatesToMessageID the id cannot be derived, so the PATCH is conditional:
  `MedicationRequest?identifier=urn:conduit:id:ncpdp:PrescriberOrderNumber|<number>&
  subject=Patient/<id>` (the order number for this patient, whose id is scoped to the
  prescriber's system); the Task's focus then names the order by that number (assigner
  the prescriber's system). A PATCH of an order the server does not hold, or a
  conditional one matching none or several, fails the transaction: a CancelRx never
  makes an order up. (HAPI and Azure take a conditional PATCH in a transaction; a
  server that does not answers 4xx, a dead letter for that destination.) Not a
  warning: a strict channel (the shipped one) fails a mapping that warns, and would
  then not send the CancelRx on to the pharmacy. A CancelRx with neither fails naming
  Header/PrescriberOrderNumber.
- Written whole: only the Task (the CancelRx is its source). The Patient, prescriber,
  pharmacy and Medication the NewRx wrote are named by literal references
  (`Patient/<id>`), not PUT again with what the CancelRx repeats of them.
- CancelRxResponse: a PATCH of the CancelRx's Task (status, businessStatus, statusReason
  when rejected, lastModified, note), so the Task keeps its identifier, authoredOn,
  focus and parties; a response to a CancelRx the server never got fails (404) rather
  than make a Task without its request.
- Task id: the CancelRx's MessageID within its sender (Header/From); the response
  reaches it by its RelatesToMessageID and Header/To. identifier the CancelRx's
  MessageID; authoredOn the CancelRx's SentTime, lastModified the response's;
  requester the prescriber, owner the pharmacy, for the patient; businessStatus the
  Response element (Approved, Denied) in urn:conduit:code:ncpdp:Response:CancelRxResponse;
  note the response's Note.
- A CancelRx without a patient with a name fails naming CancelRx/Patient; without a
  prescriber, CancelRx/Prescriber; without MedicationPrescribed,
  CancelRx/MedicationPrescribed. A CancelRxResponse without a Response choice fails
  naming CancelRxResponse/Response, without RelatesToMessageID naming
  Header/RelatesToMessageID. Any other message type fails naming Body.
- Patient, Practitioner, Organization: their ids as `ncpdp_fhir` gives them (as every
  SCRIPT mapping), named, not written (above). Bundle.timestamp: Header/SentTime with
  a time and a zone.

Changed from @1 (ids differ, so this is a new version; @1 keeps its output):
- Identity within the prescriber's system: an identifier only its assigner keeps unique
  (the MRN, a state license, any identifier without a national system, and the name
  fallbacks) is keyed within the prescriber's system, Header From with its Qualifier
  ("HARBORSIDEEHR^C"; Header To of a message the pharmacy sends), and the Identifier
  says so in assigner.display. Two clinics' patients with the same MRN are two
  Patients; @1 made them one, and the second clinic's NewRx replaced the first's
  patient. National identifiers (SSN, MBI, NPI, DEA, NCPDPID) are keyed as before. See
  `engine.maplib.ncpdp_scope`.
- The order's MedicationRequest id is the NewRx's MessageID within the prescriber's
  system (`ncpdp_scope.order_id`; an approved RxRenewalResponse's renewed order: the
  response's MessageID), not the order number: a CancelRx or RxFill names its NewRx in
  RelatesToMessageID (the NewRx's MessageID, as SCRIPT says), with or without the order
  number, or with another one. @1 derived it from the order number, and a CancelRx
  naming its NewRx only by RelatesToMessageID cancelled a new MedicationRequest while
  the real order stayed active. A message naming the order only by
  PrescriberOrderNumber gets a logical reference (identifier: the PLAC order number,
  assigner the prescriber's system), since the id cannot be derived from it.
"""

from __future__ import annotations

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.ncpdp_cancelrx_v2 import cancelrx_to_fhir as _cancelrx_to_fhir
from engine.mapping import mapping


@mapping("ncpdp-cancelrx-to-fhir@2", accepts="ncpdp", emits="application/fhir+json")
def cancelrx_to_fhir(message: ScriptMessage) -> dict:
    """The rules above, kept in `engine.maplib.ncpdp_cancelrx_v2` so ncpdp-to-fhir@2 uses the
    same code."""
    return _cancelrx_to_fhir(message)
