"""ncpdp-rxrenewal-to-fhir@2: an NCPDP SCRIPT RxRenewalRequest (a pharmacy asks the
prescriber to renew a prescription) and the prescriber's RxRenewalResponse as a FHIR
R4 transaction Bundle, in a Task-based renewal flow.

Shape chosen: the FHIR R4 Task pattern for prescription refill/renewal requests (the
core Task example "Refill Request", focus a MedicationRequest; UK GP-system guides use
the same Task with code "Renewal of prescription") joined to the shape e-prescribing
FHIR servers give an inbound renewal request (a MedicationRequest intent `proposal`
whose priorPrescription is the order being renewed):

- RxRenewalRequest -> a MedicationRequest intent `proposal`, status active: the renewal
  the pharmacy proposes (MedicationPrescribed if sent, else MedicationDispensed, with
  the NewRx mapping's rules), numberOfRepeatsAllowed PharmacyRequestedRefills when
  sent, authoredOn the request's SentTime (the proposal's own time, not the old
  WrittenDate), requester the pharmacy, priorPrescription the order being renewed
  as a logical reference by Header/PrescriberOrderNumber (identifier, assigner the
  prescriber's system, Header To: a renewal request does not name the NewRx's
  MessageID, from which the order's id is derived; left out without an order number);
  and a Task, code `fulfill`
  (http://hl7.org/fhir/CodeSystem/task-code) with text "Prescription renewal request",
  status `requested`, intent order, focus the proposal, basedOn the prior order,
  for the patient, requester the pharmacy, owner the prescriber, authoredOn SentTime,
  identifier the request's MessageID and the pharmacy's RxReferenceNumber.
- RxRenewalResponse -> the same Task (reached by RelatesToMessageID within Header/To,
  the pharmacy's system): Approved, ApprovedWithChanges and Replace -> `completed` (the
  prescriber's decision is the task's work; `accepted` would say it was still to be
  done), with output the renewed MedicationRequest; Denied -> `rejected` with
  statusReason its ReasonCode (urn:conduit:code:ncpdp:ReasonCode) and DenialReason;
  Pending -> `accepted` (taken on, no decision yet). businessStatus the Response
  element (urn:conduit:code:ncpdp:Response:RxRenewalResponse), note its Note.
  The renewed MedicationRequest (from the response's MedicationPrescribed) is intent
  order, status active, basedOn the proposal, id from the response's MessageID within
  the prescriber's system (`ncpdp_scope.order_id`, as a NewRx's), so the RxFill and
  CancelRx for the renewed prescription reach it by RelatesToMessageID like a NewRx's.
- Failures: any other message type names Body; no patient with a name names
  <type>/Patient; a request without a drug names RxRenewalRequest/MedicationDispensed;
  a response without RelatesToMessageID names Header/RelatesToMessageID, without a
  Response choice <type>/Response; an approval without a prescriber names
  RxRenewalResponse/Prescriber (the renewed order's id needs it).
- Patient, Practitioner, Organization, Medication: `ncpdp_fhir` (the same ids from
  every SCRIPT mapping; which are written and which only named: below).
  Bundle.timestamp: Header/SentTime with a time and a zone.

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
- Written whole: what a message is the source of (the request's proposal and Task, the
  approved response's renewed MedicationRequest, the Medication, the pharmacy's
  Organization in the request). The Patient and prescriber (and, in a response, the
  pharmacy) are named by literal references, not PUT: the NewRx wrote them. The
  response decides the request's Task by a PATCH (status, businessStatus, statusReason,
  lastModified, note, output the renewed order as `MedicationRequest/<id>`), so the
  Task keeps its identifier, authoredOn, basedOn and focus.
"""

from __future__ import annotations

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.ncpdp_rxrenewal import rxrenewal_to_fhir as _rxrenewal_to_fhir
from engine.mapping import mapping


@mapping("ncpdp-rxrenewal-to-fhir@2", accepts="ncpdp", emits="application/fhir+json")
def rxrenewal_to_fhir(message: ScriptMessage) -> dict:
    """The rules above, kept in `engine.maplib.ncpdp_rxrenewal` so ncpdp-to-fhir@2 uses the
    same code."""
    return _rxrenewal_to_fhir(message, version=2)
