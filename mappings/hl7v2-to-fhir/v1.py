"""hl7v2-to-fhir@1: any HL7v2 message this engine maps, as a FHIR R4 transaction Bundle,
so a mixed feed needs one channel.

MSH-9.1 chooses the builder (ADT, BAR, DFT, REF, MDM, OMG, OML, ORM, ORU, OUL, RDE, RDS,
RAS, RGV, VXU, SIU, PPR): the output is that of the type's own mapping at the version
this one was released with (`hl7v2-adt-to-fhir@3`, ...), warnings and what was left
behind included. Any other type is skipped with a reason.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import dispatch
from engine.mapping import mapping


@mapping("hl7v2-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def hl7v2_to_fhir(message: Hl7Message):
    return convert(message, dispatch.build)
