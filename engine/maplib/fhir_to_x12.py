"""FHIR to X12 segment writers for the name loops (NM1 with its N3/N4, DMG and PER), so
a party written into one X12 set reads back as the same resource through x12_fhir.

Each writer returns segments as lists of elements for engine.formats.x12.build and
writes values as FHIR holds them, unchecked: build refuses a value holding a separator,
so a caller cleans the free text first (`plain_text`: a name such as "O*BRIEN" must not
fail the whole message) and lets an identifier holding one fail naming its element.
fhir-to-x12-270@1 writes its own name loops (it cleans text, and its released choices
differ: no NM106, one suffix, N4 without a US country, DMG only with a birth date).

- NM108/NM109: the resource's first identifier with a value; NPI is XX, EIN FI, SSN 34,
  an id this engine read from X12 as urn:conduit:id:x12:<two-letter qualifier> that
  qualifier, anything else the caller's `own` qualifier (MI for a member, PI for a
  payer).
- NM103-NM107: an Organization's name; a person's first name: family, first and second
  given, prefixes and suffixes (each joined by spaces).
- N3/N4: the first address, two lines at most; N4 city, state, postal code, country.
- DMG: D8 birth date (a full date only) and gender M, F or U.
- PER: phone TE, fax FX, email EM, at most three numbers; a phone written "number
  xEXT" (as x12_fhir.telecom reads an EX) gets its EX pair when it fits.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.build import DEFAULT
from engine.maplib.x12_fhir import EIN, NPI

_X12_PREFIX = "urn:conduit:id:x12:"
_QUALIFIERS = {NPI: "XX", EIN: "FI", "http://hl7.org/fhir/sid/us-ssn": "34"}
_X12_GENDER = {"male": "M", "female": "F", "unknown": "U"}
_PER = {"phone": "TE", "fax": "FX", "email": "EM"}
# Free-text elements (names, address lines, city, contact name, message text): a
# separator typed in one becomes a space.
_TEXT = {"NM1": (3, 4, 5, 6, 7), "N3": (1, 2), "N4": (1,), "PER": (2,), "MSG": (1,),
         "NTE": (2,)}
# what build refuses in a plain string element (components and repetitions may be meant)
_SEPARATORS = (DEFAULT.element, DEFAULT.segment, "\r", "\n")


def plain_text(segments: list[list[Any]]) -> list[list[Any]]:
    """The segments with every separator in their free-text elements made a space (in
    place, and returned)."""
    for segment in segments:
        for index in _TEXT.get(str(segment[0]), ()):
            if index < len(segment) and isinstance(segment[index], str):
                value = segment[index]
                for separator in _SEPARATORS:
                    value = value.replace(separator, " ")
                segment[index] = " ".join(value.split())
    return segments


def id_elements(resource: dict[str, Any], own: str) -> list[str]:
    """NM108/NM109 (see the module docstring); [] without an identifier."""
    for ident in resource.get("identifier") or []:
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        system = str(ident.get("system") or "")
        qualifier = _QUALIFIERS.get(system)
        if qualifier is None:
            suffix = system.removeprefix(_X12_PREFIX)
            qualifier = suffix if system != suffix and len(suffix) == 2 and \
                suffix.isupper() else own
        return [qualifier, str(ident["value"])]
    return []


def nm1(entity: str, resource: dict[str, Any], own: str) -> list[Any]:
    """NM1 for a Patient, Practitioner (NM102 1) or Organization (2)."""
    ids = id_elements(resource, own)
    if resource.get("resourceType") == "Organization":
        names = [str(resource.get("name") or ""), "", "", "", ""]
        kind = "2"
    else:
        name = next((n for n in resource.get("name") or [] if isinstance(n, dict)), {})
        given = [str(g) for g in name.get("given") or []]
        names = [str(name.get("family") or ""), given[0] if given else "",
                 given[1] if len(given) > 1 else "",
                 " ".join(name.get("prefix") or []), " ".join(name.get("suffix") or [])]
        kind = "1"
    return ["NM1", entity, kind, *names, *ids]


def address_segments(resource: dict[str, Any]) -> list[list[Any]]:
    """N3 and N4 from the resource's first address."""
    found = next((a for a in resource.get("address") or [] if isinstance(a, dict)), None)
    if found is None:
        return []
    lines = [str(line) for line in found.get("line") or []][:2]
    out: list[list[Any]] = [["N3", *lines]] if lines else []
    place = [str(found.get(k) or "") for k in ("city", "state", "postalCode", "country")]
    if any(place):
        out.append(["N4", *place])
    return out


def dmg(patient: dict[str, Any]) -> list[list[Any]]:
    """DMG from birthDate and gender; [] when it has neither."""
    birth = str(patient.get("birthDate") or "").replace("-", "")
    gender = _X12_GENDER.get(str(patient.get("gender") or ""), "")
    if len(birth) != 8 and not gender:
        return []
    return [["DMG", "D8" if len(birth) == 8 else "", birth if len(birth) == 8 else "",
             gender]]


def per_elements(points: Any) -> list[str]:
    """ContactPoints as PER03.. pairs (at most three, as PER holds)."""
    out: list[str] = []
    for point in points or []:
        if not isinstance(point, dict):
            continue
        qualifier = _PER.get(point.get("system", ""))
        value = str(point.get("value") or "")
        if not qualifier or not value:
            continue
        number, _, ext = value.partition(" x")
        out += [qualifier, number]
        if ext and len(out) < 6:
            out += ["EX", ext]
        if len(out) >= 6:
            break
    return out[:6]
