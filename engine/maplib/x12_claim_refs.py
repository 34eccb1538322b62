"""What `x12-837-to-fhir@2` reads that @1 left out: each service line's line item control
number (2400 REF*6R), the clearinghouse's claim number (2300 REF*D9), and an 837I's
admission hour (DTP*435 sent as DT, CCYYMMDDHHMM) and discharge hour (DTP*096, TM HHMM).

- REF*6R is the number the provider gave the line; the payer returns it on the 835's
  line (SVC REF*6R), which is how a remittance line is matched to the line billed. R4's
  Claim.item has no identifier, so it rides in Da Vinci PAS's itemTraceNumber extension,
  the one `x12-278-to-fhir@1` gives a 278 line, as an Identifier in the billing
  provider's scope (the CLM01 scope) typed by its reference qualifier.
- REF*D9 is a second Claim.identifier, in the scope of the submitter (1000A NM109, the
  intermediary that numbered it; else ISA06), typed the same way.
- X12 times carry no zone, so a dateTime cannot hold them (the admission period keeps
  its date, as in @1); the hour is an `info` supportingInfo coded by its date qualifier
  (urn:conduit:code:x12:date-qualifier 435 or 096) with the local time as sent, HH:MM,
  in valueString. A time that is not one is left out.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.maplib.x12_auth import EXT_ITEM_TRACE
from engine.maplib.x12_claim_info import DATE_QUALIFIER, INFO_CATEGORY
from engine.maplib.x12_codes import concept

REFERENCE_QUALIFIER = "urn:conduit:code:x12:reference-qualifier"
_REFERENCES = {"6R": "Line item control number",
               "D9": "Claim identifier for transmission intermediaries"}
_HOURS = {"435": "Admission", "096": "Discharge"}  # the date qualifiers' own names


def _typed(qualifier: str, scope: str, value: str) -> dict[str, Any]:
    return {"type": concept(REFERENCE_QUALIFIER, qualifier, _REFERENCES[qualifier]),
            "system": f"urn:conduit:id:x12:{scope}", "value": value}


def line_trace(line: Node, scope: str) -> list[dict[str, Any]]:
    """The line's REF*6R as Claim.item.extension (none without one)."""
    number = line.value("REF[6R]02").strip()
    return [{"url": EXT_ITEM_TRACE, "valueIdentifier": _typed("6R", scope, number)}] \
        if number else []


def intermediary_ids(message: X12Message, claim: Node) -> list[dict[str, Any]]:
    """The claim's REF*D9 as a Claim.identifier (none without one)."""
    number = claim.value("REF[D9]02").strip()
    if not number:
        return []
    tree = message.tree
    submitter = tree.first("1000A") if tree is not None else None
    scope = (submitter.value("NM109").strip() if submitter is not None else "") or \
        message.isa.element(6).strip()
    return [_typed("D9", scope, number)]


def hours(claim: Node) -> list[dict[str, Any]]:
    """An 837I's admission and discharge hours as supportingInfo facts (no sequence)."""
    found = []
    for qualifier, name in _HOURS.items():
        seg = claim.seg("DTP", qualifier)
        if seg is None:
            continue
        value = seg.element(3).strip()
        time = value[8:] if seg.element(2) == "DT" else value if seg.element(2) == "TM" \
            else ""
        if _is_time(time):
            found.append({"category": concept(INFO_CATEGORY, "info"),
                          "code": concept(DATE_QUALIFIER, qualifier, name),
                          "valueString": f"{time[:2]}:{time[2:4]}"})
    return found


def _is_time(value: str) -> bool:
    """HHMM (X12 TM, or the tail of DT) of a real time of day."""
    return len(value) == 4 and value.isdecimal() and int(value[:2]) < 24 \
        and int(value[2:]) < 60
