"""fhir-to-ncpdp-newrx@1: a FHIR R4 MedicationRequest as an NCPDP SCRIPT 2017071 NewRx;
the inverse of ncpdp-newrx-to-fhir@1 (NewRx -> FHIR -> NewRx keeps every element both
map).

Input: a MedicationRequest whose Patient, Practitioner, Organization (the pharmacy)
and Medication are contained in it ("#id") or are entries of the Bundle it comes in
(by fullUrl or "Type/id"); a Bundle's first MedicationRequest is mapped. Anything else
fails naming resourceType; a Bundle without one fails naming Bundle.entry.

Choices a receiver will notice:
- Header: To the pharmacy's NCPDPID, Qualifier P (dispenseRequest.performer; without a
  pharmacy with an NCPDPID it fails naming MedicationRequest.dispenseRequest.performer:
  SCRIPT routes by it); From Qualifier C, the prescriber system that assigned the order
  number (the PLAC identifier's assigner.display, what ncpdp-newrx-to-fhir@1 writes),
  else CONDUIT; MessageID the first 32 hex digits of sha256 of the request's id (so a
  resend of the same request is the same message); SentTime authoredOn in UTC
  (a date is its midnight UTC); PrescriberOrderNumber the PLAC identifier (system
  urn:conduit:id:ncpdp:PrescriberOrderNumber first), else the EHR's own order
  identifier (the official one first, any that fits SCRIPT's 35 characters), else the
  request's id (when longer than 35 characters, as a uuid is, 32 hex digits of its
  sha256). Without
  authoredOn it fails naming MedicationRequest.authoredOn (WrittenDate is required).
- Patient (subject), Prescriber/NonVeterinarian (requester), Pharmacy, by
  `engine.maplib.fhir_to_ncpdp`; a missing subject or requester fails naming it. A
  Patient with the core patient-animal extension is a NonHumanPatient (its species
  code as Species) and its prescriber a Veterinarian.
- MedicationPrescribed: DrugDescription and DrugCoded from medicationReference (its
  DEA schedule extension as DEASchedule) or medicationCodeableConcept; a drug without
  a description (code.text, else a coding's display) fails naming
  MedicationRequest.medication[x]. Elements the request lacks (a quantity, a Sig) are
  left out: a strict channel's validation then says which (lenient ones pass it on). Quantity,
  DaysSupply (expectedSupplyDuration in days), WrittenDate (authoredOn, a Date or a
  DateTime as given), Substitutions (allowedBoolean true 0, false 1; the
  urn:conduit:code:ncpdp:Substitutions code as sent; unsaid 0), NumberOfRefills
  (numberOfRepeatsAllowed, else 0), Diagnosis (reasonCode pairs as Primary and
  Secondary, ClinicalInformationQualifier 1; ICD-10-CM ABF, SNOMED CT LD, ICD-9-CM DX),
  Note (the notes joined), Sig (the first dosageInstruction).
- Sig/Instruction timing: repeat.frequency per 1 periodUnit as Frequency, once every
  period as Interval; n times every m units (m > 1) is said in SigText only. A UCUM
  dose or dispense unit is its NCI code when `fhir_to_ncpdp.nci_unit` knows it (else
  the dose unit's text alone, the quantity C38046 Unspecified).
- Telephone numbers, ZIP+4 codes and the country are written SCRIPT's way
  (`engine.maplib.fhir_to_ncpdp`'s docstring). The pharmacy's NCPDP id is read from
  THO's naming system or an alias senders use for it (NCPDP_ID_ALIASES).
- Text is escaped by the XML writer; a control character XML cannot carry fails
  naming the element.
"""

from __future__ import annotations

from engine.maplib.fhir_ncpdp_newrx import request_to_newrx as _newrx
from engine.mapping import mapping


@mapping("fhir-to-ncpdp-newrx@1", accepts="fhir", emits="application/xml")
def request_to_newrx(resource: dict) -> bytes:
    """The NewRx that orders what the MedicationRequest orders (the rules above, kept
    in `engine.maplib.fhir_ncpdp_newrx`)."""
    return _newrx(resource)
