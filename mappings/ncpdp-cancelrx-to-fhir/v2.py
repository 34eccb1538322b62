"""ncpdp-cancelrx-to-fhir@2: an NCPDP SCRIPT CancelRx, and the pharmacy's
CancelRxResponse, as a FHIR R4 transaction Bundle.

Shape chosen: both a status change and a Task. The CancelRx is the prescriber's
decision, so the order's MedicationRequest is PUT again with status `cancelled` (at the
id ncpdp-newrx-to-fhir@2 gave the NewRx); the pharmacy's part (did it stop the
prescription?) is a Task, code `abort` (http://hl7.org/fhir/CodeSystem/task-code),
focus that MedicationRequest, owner the pharmacy: `requested` for the CancelRx,
`completed` when the CancelRxResponse approves, `rejected` when it denies (statusReason
its ReasonCode and DenialReason). The response's Task has the same id as the request's.

- MedicationRequest: the NewRx's, at the id ncpdp-newrx-to-fhir@2 gave it, which
  RelatesToMessageID names (`ncpdp_scope.order_id`). Its content is rebuilt from the
  CancelRx's MedicationPrescribed with the NewRx mapping's rules
  (`ncpdp_orders.medication_request`): what the CancelRx leaves out (a Sig, say) is
  left out of the rewritten request. A CancelRx without RelatesToMessageID writes no
  MedicationRequest (its id cannot be known from the order number, and one at a
  made-up id would be a second order): the Task's focus names the order by its
  PrescriberOrderNumber (assigner the prescriber's system). This is not a warning: a
  strict channel (the shipped one) fails a mapping that warns, and the CancelRx would
  then not go on to the pharmacy. A CancelRx with neither fails naming
  Header/PrescriberOrderNumber.
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
- Patient, Practitioner, Organization, Medication: `ncpdp_fhir` (same ids as every
  SCRIPT mapping). Bundle.timestamp: Header/SentTime with a time and a zone.

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
