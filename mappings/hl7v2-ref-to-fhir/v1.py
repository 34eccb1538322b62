"""hl7v2-ref-to-fhir@1: REF referrals (I12 new, I13 modified, I14 cancelled) as a FHIR R4
transaction Bundle.

RF1 is a ServiceRequest (category "Patient referral"): RF1-1 status (A, P active; R, E
revoked; an I14 revokes; RF1-25 D is entered-in-error), RF1-2 priority, RF1-3 type as
its code, RF1-4 disposition as orderDetail, RF1-5 category, RF1-6/RF1-11 referral ids as
identifiers (and its key, so I13/I14 update the I12's request), RF1-7/8 its period,
RF1-9 authoredOn, RF1-10 and RF1-14 reasons, RF1-24 a note. PRD providers are
Practitioners (or Organizations) with a PractitionerRole (PRD-1 role, PRD-4 location,
PRD-10 organization): the referring one (RP) its requester, the referred-to and
consulting ones (RT, CP) and RF1-19/20 its performers. AUT is a preauthorization
ClaimResponse. DG1 Conditions are its reasons, OBX (under their OBR's ServiceRequest)
and AL1/IAM its supporting info, IN1 Coverages and the ClaimResponse its insurance; PID
(with the PID-18 Account), NK1, GT1, PR1 and PV1 are mapped as in the other HL7v2
mappings, but a PR1 without a date or dated after the message is a Procedure the
referral asks for (preparation, basedOn it). A message without RF1 still maps the
patient, with a warning; only a message without a PID fails.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import ref
from engine.mapping import mapping


@mapping("hl7v2-ref-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def ref_to_fhir(message: Hl7Message):
    return convert(message, ref.build)
