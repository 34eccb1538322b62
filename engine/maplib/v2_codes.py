"""HL7 v2 codes as FHIR codes: the coding system of a CE/CWE, the one rule for a sender's
local codes, and CE/CWE as a CodeableConcept, shared by every v2-to-FHIR mapping so that
a code reads the same from every feed.

Choices, written once:
- CWE.3 (table 0396) names the coding system: a name in `tables.CODING_SYSTEMS` (LN,
  SCT/SNM, I10, CVX, NDC, RXNORM, UCUM, CPT/C4, ...) is its published URI; HL7nnnn (or
  HL7-nnnn) is http://terminology.hl7.org/CodeSystem/v2-nnnn; an OID is the URI it stands
  for (`tables.CODING_SYSTEM_OIDS`), else urn:oid:<oid>; a URI is used as it is.
- Anything else (L, 99zzz, a vendor name, nothing at all) is the sender's own code
  system: `urn:conduit:code:<facility>:<name>`, with `local` for the name when CWE.3 is
  empty. Local codes mean something only at their sender, so the system is scoped to the
  sending facility, and it is stable across messages; a standard system is never guessed.
- A field bound to a table (`Bound`: RXA-5 to CVX, RXR-1 to 0162, ...) reads a code sent
  without CWE.3 in that table when the table lists the code, or lists none (CVX), or
  the mapping reads every such code in it (`every_code`: the CDC immunization tables);
  another code without CWE.3 is the sender's own. A code of the table is written as the
  table spells it, with the table's display when the sender sent none.
- Both triplets (CWE.1-3 with version CWE.7, CWE.4-6 with CWE.8) become codings, the
  alternate only when it differs; CWE.9 (original text) is the text, else, when no
  triplet has a code, CWE.2 or CWE.5. A CE whose only component is words ("Take with
  food") is text: old senders put free text in the code's place, and a code with spaces
  in it would be an invented one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote

from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact
from engine.maplib.v2_to_fhir import rules

LOCAL_CODE_PREFIX = "urn:conduit:code:"
LOCAL_NAME = "local"  # the name of a sender's codes sent without a coding system

# Vendor spellings of table 0396 names, read as the standard name under the
# `vendor_spellings` rule (hl7v2-to-fhir@2); released versions keep them local codes.
VENDOR_SYSTEMS: dict[str, str] = {"CPT4": tables.CPT, "CPT-4": tables.CPT}

_HL7_TABLE = re.compile(r"HL7-?(\d{4})\Z")
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+\Z")
_URI = re.compile(r"(?:urn:|[A-Za-z][A-Za-z0-9+.-]*://)\S+\Z")


class Bound(NamedTuple):
    """The table a coded field is bound to: its system, its codes with their displays,
    and whether a code it does not list, sent without a system, is read in it too
    (always, for a table that lists no codes, as CVX)."""

    system: str
    codes: Mapping[str, str] = {}
    every_code: bool = False

    def spelling(self, code: str) -> str | None:
        """The table's own spelling of `code` (compared case-insensitively), or None when
        the table lists codes and this is not one of them."""
        if not self.codes:
            return code
        return next((k for k in self.codes if k.upper() == code.upper()), None)


def local_code_system(facility: str, name: str = "") -> str:
    """urn:conduit:code:<facility>:<name, or "local">, the system of a sender's own codes."""
    scope, local = quote(facility, safe="-._~"), quote(name or LOCAL_NAME, safe="-._~")
    return f"{LOCAL_CODE_PREFIX}{scope}:{local}"


def coding_system(
    name: str, facility: str, systems: Mapping[str, str] = tables.CODING_SYSTEMS
) -> str:
    """The FHIR system URI for a CWE.3 coding system name (see the module docstring);
    `systems` is `tables.CODING_SYSTEMS` unless a field reads names its own way (DG1)."""
    name = dt.present(name)
    key = name.upper().replace(" ", "")
    if key in systems:
        return systems[key]
    if key in VENDOR_SYSTEMS and rules.current().vendor_spellings:
        return VENDOR_SYSTEMS[key]
    table = _HL7_TABLE.match(key)
    if table:
        return tables.V2_SYSTEM + table[1]
    if _OID.match(key):
        return tables.CODING_SYSTEM_OIDS.get(key, f"urn:oid:{key}")
    if _URI.match(name):
        return name
    return local_code_system(facility, name)


def coding(
    parts: tuple[str, str, str, str],
    facility: str,
    bound: Bound | None = None,
    systems: Mapping[str, str] = tables.CODING_SYSTEMS,
) -> dict | None:
    """One Coding from (code, display, coding system name, version); None without a code."""
    code, display, name, version = (dt.present(p) for p in parts)
    if not code:
        return None
    table_code = bound.spelling(code) if bound is not None else None
    if name:
        system = coding_system(name, facility, systems)
    elif bound is not None and (table_code is not None or bound.every_code):
        system = bound.system
    else:
        system = local_code_system(facility)
    if table_code is not None and system == bound.system:
        code, display = table_code, display or bound.codes.get(table_code, "")
    return compact({"system": system, "version": version, "code": code, "display": display})


def cwe_to_codeable_concept(
    rep: Repetition | None,
    facility: str,
    bound: Bound | None = None,
    systems: Mapping[str, str] = tables.CODING_SYSTEMS,
) -> dict | None:
    """A CE/CWE (v2.3 CE or v2.5+ CWE) as a CodeableConcept; None when it says nothing.

    `bound` is the table the field is bound to, read for the first triplet; `systems`
    the coding-system names (see `coding_system`).
    """
    if rep is None:
        return None
    if is_free_text(rep):
        return {"text": dt.present(rep.value(1))}
    primary = coding(_triplet(rep, 1, 7), facility, bound, systems)
    alternate = coding(_triplet(rep, 4, 8), facility, None, systems)
    codings = [c for c in (primary, alternate) if c]
    if len(codings) == 2 and codings[0] == codings[1]:
        codings = codings[:1]
    text = dt.present(rep.value(9))
    if not codings and not text:
        text = dt.present(rep.value(2)) or dt.present(rep.value(5))
    return compact({"coding": codings, "text": text}) or None


def _triplet(rep: Repetition, first: int, version: int) -> tuple[str, str, str, str]:
    return rep.value(first), rep.value(first + 1), rep.value(first + 2), rep.value(version)


def is_free_text(rep: Repetition) -> bool:
    """A CE of one component holding words ("Fatigue, query deficiency")."""
    return len(rep.components()) == 1 and " " in dt.present(rep.value(1))


def first_concept(
    segment: Segment | None, field: int, facility: str, bound: Bound | None = None
) -> dict | None:
    """The first repetition of a CE/CWE field as a CodeableConcept, or None."""
    return cwe_to_codeable_concept(dt.first_rep(segment, field), facility, bound)


def codeable_concepts(segment: Segment | None, field: int, facility: str) -> list[dict]:
    """Every repetition of a CE/CWE field that carries something."""
    if segment is None:
        return []
    found = (cwe_to_codeable_concept(rep, facility) for rep in segment.repetitions(field))
    return [c for c in found if c]


def subcomponent_concept(
    segment: Segment, field: int, component: int, facility: str
) -> dict | None:
    """A CE held in the subcomponents of one component (code&text&system), as OBR-15.1."""
    parts = tuple(segment.value(field, component, s) for s in (1, 2, 3))
    found = coding((*parts, ""), facility)
    if found is None:
        text = dt.present(parts[1])
        return {"text": text} if text else None
    return {"coding": [found]}


def table_coding(code: str, system: str, displays: Mapping[str, str]) -> dict | None:
    """{system, code, display} for a code of a v2 table with its display; None when the
    code (compared in upper case) is not in the table."""
    key = dt.present(code).upper()
    if key not in displays:
        return None
    return {"system": system, "code": key, "display": displays[key]}
