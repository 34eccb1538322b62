"""ncpdp-rxfill-to-fhir@2: an NCPDP SCRIPT RxFill (the pharmacy telling the prescriber
what became of a prescription) as a FHIR R4 transaction Bundle: MedicationDispense,
Patient, Organization (the pharmacy), Practitioner (the prescriber) and Medication.

- status by FillStatus: Dispensed -> completed; PartiallyDispensed -> in-progress (part
  of the quantity was handed over, the rest is still owed); NotDispensed -> declined
  (e.g. not picked up, returned to stock); Transferred -> cancelled (this pharmacy will
  not dispense it: another one will). The FillStatus Note is statusReason's text for
  declined and cancelled, and a note otherwise. An RxFill without a FillStatus choice
  fails naming RxFill/FillStatus.
- id: the pharmacy's prescription number (Header/RxReferenceNumber), the fill date
  (LastFillDate) and the quantity dispensed, within the pharmacy: a NotDispensed sent
  after a Dispensed for the same fill (returned to stock) updates that dispense, while
  a partial fill and the rest handed over later are two dispenses. Without
  RxReferenceNumber, the RxFill's own MessageID within its sender. identifier RxReferenceNumber
  (urn:conduit:id:ncpdp:RxReferenceNumber) and the MessageID.
- authorizingPrescription: the order's MedicationRequest, id as ncpdp-newrx-to-fhir@2
  gave it from RelatesToMessageID (the NewRx's MessageID, within the prescriber's
  system, Header To), a literal `MedicationRequest/<id>` reference (it is not in this
  Bundle: a server enforcing references needs the NewRx first); without
  RelatesToMessageID a logical reference by Header/PrescriberOrderNumber (identifier,
  assigner the prescriber's system); left out when it names no order.
- medication: MedicationDispensed (else MedicationPrescribed) as a Medication
  (`ncpdp_fhir.medication`); quantity and daysSupply (UCUM d) from MedicationDispensed;
  dosageInstruction its Sig; substitution.wasSubstituted true when the dispensed
  drug's codes share none with the prescribed drug's, false when they share one
  (left out when either is not coded).
- whenPrepared LastFillDate; whenHandedOver DeliveredOnDate, else LastFillDate, and only
  for Dispensed and PartiallyDispensed (nothing was handed over otherwise).
- performer the pharmacy; subject the patient (an RxFill without a patient with a name
  fails naming RxFill/Patient; without MedicationDispensed or MedicationPrescribed,
  naming RxFill/MedicationDispensed). Any other message type fails naming Body.
- Bundle.timestamp Header/SentTime with a time and zone. Not mapped: the
  MedicationPrescribed beyond its codes (the order is the NewRx's), Supervisor,
  benefits.

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
- Written whole: the MedicationDispense (the RxFill is its source), the pharmacy's
  Organization (the pharmacy describes itself) and the Medication (its content is the
  drug's codes, the same from every message, and a dispensed product may be new). The
  Patient and prescriber are named by literal references (`Patient/<id>`,
  `Practitioner/<id>`), not PUT: the prescriber's NewRx wrote them, and the pharmacy's
  echo (often without a telephone or address) would replace them with less. A server
  enforcing references refuses an RxFill whose NewRx it never got, as it already
  refused its authorizingPrescription.
"""

from __future__ import annotations

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.ncpdp_rxfill import rxfill_to_fhir as _rxfill_to_fhir
from engine.mapping import mapping


@mapping("ncpdp-rxfill-to-fhir@2", accepts="ncpdp", emits="application/fhir+json")
def rxfill_to_fhir(message: ScriptMessage) -> dict:
    """The rules above, kept in `engine.maplib.ncpdp_rxfill` so ncpdp-to-fhir@2 uses the
    same code."""
    return _rxfill_to_fhir(message, version=2)
