"""x12-837-to-fhir@1: an 837 claim set (837P professional 005010X222A1, 837I
institutional 005010X223A2, 837D dental 005010X224A2) as a FHIR R4 transaction Bundle
with one Claim per CLM and the Patient, Practitioner, Organization, Location and
Coverage resources the claims point at. A batch with many subscribers and claims gives
every claim, in the order sent. The builders are in `engine/maplib/x12_claims.py`, the
shared X12 rules in `engine/maplib/x12_fhir.py`, the loops in
`engine/formats/x12/sets/x837.py`.

Choices a receiver will notice:
- Which 837: the guide number in ST03 (else GS08): X222 professional, X223 institutional,
  X224 oral (Claim.type, http://terminology.hl7.org/CodeSystem/claim-type). Another set
  or another convention fails naming ST01 or ST03; a set without any CLM fails naming
  CLM; a claim whose subscriber (2010BA) or payer (2010BB) or billing provider (2010AA)
  is missing fails naming that loop, since a Claim needs its patient and provider.
- Claim.id is uuid5 of CLM01, the patient control number, scoped by the billing provider
  (its NPI, else REF*EI tax id, else name): Claim.identifier system
  urn:conduit:id:x12:<that id>. A corrected claim (CLM05-3 7) with the same CLM01
  updates the same Claim; a second claim under the same CLM01 in one set (two visits
  numbered by the patient's account) is keyed by `CLM01#2` and kept, with the CLM01 as
  sent for its identifier. REF*F8 (the payer's number of the original) is Claim.related
  (prior). status is active, cancelled for a void (CLM05-3 8). use is claim, priority
  normal, created is BHT04 (else GS04), total CLM02 in USD.
- Patient: the subscriber (2010BA) when SBR02 is 18, else the patient (2010CA under
  2000C). Member ids are scoped by the payer's id (2010BB NM109), so the same member is
  the same Patient as from a 270/271/834 of that payer; a patient without an id (the 837
  sends none for a dependent) is keyed by name and birth date.
- Coverage (id from payer, member id and beneficiary): subscriberId 2010BA NM109,
  beneficiary the patient, subscriber the subscriber Patient when they differ,
  relationship from SBR02 (self) or PAT01 (01 spouse, 19 child, 53 common, others
  "other", subscriber-relationship), payor the payer, class group SBR03/SBR04, order
  from SBR01 (P 1, S 2, T 3...), type SBR09 as urn:conduit:code:x12:claim-filing-indicator.
  Claim.insurance holds that coverage (focal; REF*G1 prior authorization as preAuthRef)
  and each other payer of a 2320 loop (its 2330A member and 2330B payer, not focal), in
  coordination-of-benefits order (SBR01), so a claim sent to the secondary payer lists
  the primary as sequence 1.
- provider: the billing provider (2010AA) as Organization (NM102 2) or Practitioner
  (NM102 1) by NPI, with its REF*EI tax id as a second identifier; insurer: the payer
  Organization (type pay).
- careTeam: claim providers (2310x) and line providers (2420x), each once per role, with
  the PRV taxonomy as qualification (http://nucc.org/provider-taxonomy); roles from
  CARIN's C4BBClaimCareTeamRole (attending 71, referring DN/P3, operating 72, other
  operating ZZ, rendering 82), else claimcareteamrole (supervisor DQ, assist DD, other DK/
  QB). Lines name their own 2420 providers in careTeamSequence. The service facility
  (NM1*77, FA in older dental files) is a Location and Claim.facility.
- diagnosis: HI composites ABK/ABF (ICD-10-CM, http://hl7.org/fhir/sid/icd-10-cm) and
  BK/BF (ICD-9-CM), principal and others in the order sent (so SV107/SV311 pointers 1-12
  count them), then admitting ABJ, reason for visit APR and external cause ABN. Codes get
  their dot back (J069 -> J06.9). type principal/admitting (ex-diagnosistype) or CARIN's
  other/patientreasonforvisit/externalcauseofinjury; the present-on-admission indicator
  (HI-9) is onAdmission.
- 837I: procedure from BBR (principal) and BBQ (ICD-10-PCS, with the composite's D8
  date), BR/BQ ICD-9-CM; supportingInfo (CARIN categories): typeofbill "0" + CLM05-1 +
  CLM05-3 (NUBC), admissionperiod start DTP*435, admtype/pointoforigin/discharge-status
  CL101-03, drg HI DR (MS-DRG); subType inpatient when the bill type's classification
  digit is 1 or 2, else outpatient. Claim-level NTE is supportingInfo info (all types).
- billablePeriod: DTP*434 statement dates, else a claim DTP*472, else the span of the
  lines' DTP*472.
- item per LX (sequence LX01, or the lines' order when a sender repeats or omits
  it): SV101/SV202/SV301 code: HC as CPT (numeric) or HCPCS
  (leading letter), AD as CDT (http://www.ada.org/cdt), HP as HIPPS; modifiers the
  composite's components 3-6 (numeric CPT, else HCPCS). An 837I line without a
  procedure code has productOrService data-absent-reason not-applicable and its revenue
  code SV201 (NUBC) in revenue. quantity SV104/SV205/SV306 with its unit (UCUM: UN 1, MJ
  min, DA d), net the line charge, unitPrice the charge per unit when it divides into
  whole cents (else left out). servicedDate/servicedPeriod from the line's DTP*472 (837D
  falls back to the claim's). locationCodeableConcept: place of service SV105/SV303,
  else CLM05-1 (837P and 837D; CMS POS code set). diagnosisSequence from the pointers
  that name a diagnosis; others are dropped. 2410 LIN NDC (with CTP quantity) is
  item.detail.
- 837D teeth: TOO02 (ADA universal numbering) is bodySite; a line for several teeth codes
  the first and names all in bodySite.text (R4 has one bodySite per item); TOO03
  surfaces are subSite (FDI-surface letters, others urn:conduit:code:x12:tooth-surface);
  a line without a tooth takes the SV304 oral cavity area (ADAAreaOralCavitySystem).
- accident: DTP*439 date with CLM11 AA (MVA) or EM (WPA, v3-ActCode).
- supportingInfo after the 837I facts (`engine/maplib/x12_claim_info.py`): claim dates
  DTP*431 onset (claiminformationcategory onset), 435/096 on an 837P hospitalized and
  297/296 employmentimpacted (periods), every other dated DTP (454 initial treatment,
  304 last seen, 453, 438, 455, 360/361, 090/091, 452...) as `info` coded by its
  qualifier (urn:conduit:code:x12:date-qualifier); 837I HI BH occurrence (with its date),
  BI occurrence span (period), BE value (valueQuantity without a unit: money or a count)
  and BG condition codes as `info` in NUBC's code systems; CN1 contract (`info`,
  urn:conduit:code:x12:contract-type, CN104 as text, CN102 amount else CN103 percent);
  AMT*F5 patient paid (`info`, CARIN C4BBAdjudication paidbypatient, R4 Claim has no
  patientPaid); PWK attachments (category attachment, report type PWK01 as code,
  transmission PWK02 as reason, control number PWK06 as valueReference.identifier); a
  line's PWK is pointed at by that item's informationSequence. Claim notes (NTE) last.
- Coordination of benefits (`engine/maplib/x12_claim_cob.py`): R4 Claim has no
  adjudication, so what another payer decided (2320 CAS, AMT*D paid as total benefit,
  EAF memberliability, A8 noncovered; 2430 SVD02 paid and CAS per line, by SVD01 =
  that payer's 2330B id, any 2430 when there is one other payer) is that payer's
  ClaimResponse (request the Claim, created 2330B DTP*573 else the lines' latest), and
  the Claim.insurance entry for that payer points at it in claimResponse, as FHIR's
  coordination-of-benefits examples do. A 2320 loop with no adjudication gives none.
- Not mapped: ambulance and spinal data (CR1/CR2), K3, pay-to address and plan
  (2010AB/AC), 2320 MIA/MOA remarks, line-level DTP other than 472, SVD06 bundled lines.
  Unreadable dates and amounts are left out, never failing the claim; a claim total
  (CLM02), birth date (DMG02, with DMG01 D8) or gender (DMG03) left out so is a warning
  beside the output, located as `CLM[2].02` with its loop and segment position, never
  quoting the value (`engine/maplib/x12_unread.py`).
- The Bundle has no timestamp: X12 times carry no zone.
"""

from __future__ import annotations

from engine.formats.x12.message import X12Message
from engine.maplib.x12_claim_set import claims_bundle
from engine.mapping import mapping
from engine.mapping_base import Mapped


@mapping("x12-837-to-fhir@1", accepts="x12", emits="application/fhir+json")
def claims_to_fhir(message: X12Message) -> Mapped:
    """Map one 837 transaction set to a transaction Bundle of its claims (the shared
    steps are in `engine/maplib/x12_claim_set.py`; this version's output never
    changes)."""
    return claims_bundle(message, version=1)
