"""hl7v2-adt-to-fhir@3: every ADT event as a FHIR R4 transaction Bundle, leniently.

Events A01-A17, A25-A31, A40, A41, A45, A47 and A60 are mapped; another event is skipped
with a reason. What changed from v2 (a shadow run shows it per path):
- A value that cannot be read (a date that does not exist, a sex outside table 0001, a
  segment with nothing to key on) is a warning located by segment, occurrence and field,
  and the rest of the message still maps; only a message without a PID fails.
- The Bundle ends with a Provenance of the message (EVN-2 or MSH-7, the event, the
  sending application), and every field with a value no rule read is reported.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import adt
from engine.mapping import mapping


@mapping("hl7v2-adt-to-fhir@3", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message):
    return convert(message, adt.build)
