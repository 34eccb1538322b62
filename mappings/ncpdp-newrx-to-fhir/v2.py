"""ncpdp-newrx-to-fhir@2: an NCPDP SCRIPT NewRx (2017071 or 2023011; any namespace or
prefix) as a FHIR R4 transaction Bundle: MedicationRequest, Patient, Practitioner (the
prescriber), Organization (the pharmacy) and Medication.

A message that is not a NewRx fails naming Body; a NewRx without a patient (or a
patient without a name) fails naming NewRx/Patient, without a prescriber
NewRx/Prescriber, without MedicationPrescribed NewRx/MedicationPrescribed.

Choices a receiver will notice:
- A veterinarian's NewRx (NonHumanPatient, Prescriber/Veterinarian) maps too: the
  animal is a Patient with the core patient-animal extension (species its Species
  code, NCI), named as SCRIPT names it (the owner's last name, the animal's first).
- Patient, Practitioner, Organization and Medication come from
  `engine.maplib.ncpdp_fhir`, with ids scoped "ncpdp": the same patient, prescriber,
  pharmacy and drug are the same resources from every SCRIPT message.
- MedicationRequest: status active, intent order; id from the NewRx's MessageID within
  the prescriber's system (`ncpdp_scope.order_id`), which a CancelRx and an RxFill name
  in RelatesToMessageID; identifier Header/PrescriberOrderNumber (type PLAC, assigner
  the Header/From system, as @1 wrote it) and Header/MessageID
  (urn:conduit:id:ncpdp:MessageID, assigner the prescriber's system); subject, requester,
  medicationReference (always a Medication resource, also for a compound or a
  free-text drug without codes: its code is then the description only); authoredOn
  WrittenDate (a date, or a dateTime when sent with a zone).
- dosageInstruction: one Dosage, text SigText always; dose, route, method and
  frequency from Sig/Instruction where present (`ncpdp_fhir.dosage`); Sig/CodeSystem
  (the SNOMED CT and FMT versions a structured Sig is coded in) in the extension
  urn:conduit:fhir:extension:ncpdp-sig-code-system, one sub-extension per element
  (url SNOMEDVersion, FMTVersion), so the NewRx written back says them again.
  FrequencyUnits and IntervalUnits are read by their NCI code (a Qualifier sent with
  them is not kept).
- dispenseRequest: quantity (NCI unit code, CodeListQualifier kept in an extension),
  numberOfRepeatsAllowed NumberOfRefills, expectedSupplyDuration DaysSupply in days
  (UCUM d), performer the pharmacy Organization.
- substitution: Substitutions 0 (substitution allowed) -> allowedBoolean true, 1
  (substitution not allowed by the prescriber, dispense as written) -> allowedBoolean
  false; any other code -> allowedCodeableConcept in urn:conduit:code:ncpdp:Substitutions.
- note: MedicationPrescribed/Note; reasonCode: Diagnosis Primary and Secondary (Code
  with Qualifier ABF ICD-10-CM, LD SNOMED CT, DX ICD-9-CM, else
  urn:conduit:code:ncpdp:<Qualifier>; the Description as display and text).
- Controlled substances: DrugCoded/DEASchedule (NCI code) is the Medication extension
  urn:conduit:fhir:extension:ncpdp-dea-schedule (not an extra coding in
  Medication.code: a schedule is not a name of the drug); the prescriber's DEA number
  is a Practitioner identifier (urn:oid:2.16.840.1.113883.4.814). Header
  DigitalSignature is not mapped (it signs the SCRIPT message, not the FHIR one; the
  engine keeps the message itself byte for byte).
- Bundle.timestamp: Header/SentTime when it has a time and a zone.
- Not mapped: SenderSoftware, Supervisor, Facility, Observation, PriorAuthorization,
  benefits, DrugUseEvaluation, AllergyOrAdverseEvent, a second Sig/Instruction (its
  text is in SigText), a compound's CompoundInformation (its ingredients and final
  dosage form: the Medication is the compound's DrugDescription; the pharmacy gets
  them in the SCRIPT message itself). `conduit map --report` does not list them
  (left behind is reported for HL7v2 mappings only).

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
- Every resource is written whole (PUT): the NewRx is the source of the order, and the
  fullest description of the patient and prescriber. Later messages about the order
  (ncpdp-cancelrx-, -rxfill-, -rxrenewal-to-fhir@2) change it by PATCH and only name
  the Patient and Practitioner, so they do not undo what the NewRx wrote.
"""

from __future__ import annotations

from engine.formats.ncpdp.message import ScriptMessage
from engine.maplib.ncpdp_newrx import newrx_to_fhir as _newrx_to_fhir
from engine.mapping import mapping


@mapping("ncpdp-newrx-to-fhir@2", accepts="ncpdp", emits="application/fhir+json")
def newrx_to_fhir(message: ScriptMessage) -> dict:
    """The rules above, kept in `engine.maplib.ncpdp_newrx` so ncpdp-to-fhir@2 uses the
    same code."""
    return _newrx_to_fhir(message, version=2)
