"""x12-837-to-fhir@2: an 837 claim set (837P, 837I, 837D) as a FHIR R4 transaction
Bundle, as x12-837-to-fhir@1 maps it (read its docstring: every choice there holds
here), plus three facts @1 leaves out (`engine/maplib/x12_claim_refs.py`):

- Line item control number (2400 REF*6R): Claim.item.extension Da Vinci PAS
  itemTraceNumber (http://hl7.org/fhir/us/davinci-pas/StructureDefinition/
  extension-itemTraceNumber), valueIdentifier in the billing provider's scope (system
  urn:conduit:id:x12:<the CLM01 scope>) typed 6R (urn:conduit:code:x12:reference-
  qualifier). The payer returns it on the 835's line, so a remittance line can be
  matched to the line billed.
- Clearinghouse claim number (2300 REF*D9): a second Claim.identifier, typed D9, in the
  submitter's scope (urn:conduit:id:x12:<1000A NM109>, else ISA06).
- 837I admission hour (DTP*435 sent as DT CCYYMMDDHHMM) and discharge hour (DTP*096, TM
  HHMM): an `info` supportingInfo each, coded 435 / 096
  (urn:conduit:code:x12:date-qualifier), the local time as sent in valueString (HH:MM),
  after the claim's other facts and before line attachments. X12 times carry no zone,
  so no dateTime holds them; the admission period keeps its date as in @1. An hour that
  is not a time of day is left out.

Warnings for values left out (CLM02, DMG02, DMG03) are @1's.
"""

from __future__ import annotations

from engine.formats.x12.message import X12Message
from engine.maplib.x12_claim_set import claims_bundle
from engine.mapping import mapping
from engine.mapping_base import Mapped


@mapping("x12-837-to-fhir@2", accepts="x12", emits="application/fhir+json")
def claims_to_fhir(message: X12Message) -> Mapped:
    """Map one 837 transaction set to a transaction Bundle of its claims, with line item
    control numbers, clearinghouse claim numbers and 837I admission/discharge hours."""
    return claims_bundle(message, version=2)
