"""hl7v2-ppr-to-fhir@1: PPR problem list changes (PC1 add, PC2 update, PC3 delete) as a
FHIR R4 transaction Bundle.

Each PRB is a Condition with category problem-list-item: PRB-3 code, PRB-4 identifier
(and its key, so PC2/PC3 update what PC1 wrote), PRB-7 recordedDate, PRB-9 abatement,
PRB-13 confirmation as verificationStatus, PRB-14 life cycle as clinicalStatus (active
when not sent, resolved when PRB-9 is), PRB-16 onset (PRB-17 its text), PRB-26 severity,
PRB-10 classification as a second category, PRB-8 anticipated resolution and the NTEs
after it as notes. PRB-1 DE or a PC3 makes it entered-in-error, without clinicalStatus.
The OBX of a problem are Observations its evidence cites, its GOL are Goals addressing
it (with their NTE, ROL and OBX outcomes), its ROL names the asserter, and its ORC/OBR
orders are ServiceRequests with the problem as their reason. A value that cannot be read
is a located warning; only a message without a PID fails.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import ppr
from engine.mapping import mapping


@mapping("hl7v2-ppr-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def ppr_to_fhir(message: Hl7Message):
    return convert(message, ppr.build)
