"""FHIR R4 as HL7 v2.5.1, the parts the order and scheduling messages share: entity ids
by their v2-0203 type, people (XCN), places (PL), the visit (PV1), diagnoses (DG1), notes
(NTE) and the patient a resource is about.

Each is the inverse of a v2-to-FHIR rule (`engine.maplib.v2_to_fhir`), so a resource that
came from v2 goes back into the fields it came from. Like `fhir_to_v2`, nothing reads the
clock and errors name FHIR paths, never values.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.hl7v2 import datatypes as dt
from engine.formats.hl7v2 import tables
from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2

Component = v2.Component
# Encounter.class code -> PV1-2 (table 0004), the inverse of tables.PATIENT_CLASS.
PATIENT_CLASS: dict[str, str] = {c.code: k for k, c in tables.PATIENT_CLASS.items()}
PATIENT_CLASS.update({"OBSENC": "O", "SS": "O", "HH": "O", "VR": "O", "ACUTE": "I",
                      "NONAC": "I"})
# Degrees v2-to-FHIR put in HumanName.suffix from XCN.7.
DEGREES = frozenset({"MD", "DO", "RN", "NP", "PA", "PT", "OT", "DDS", "DMD", "PHD", "DPM",
                     "RDMS", "CNM", "CRNA", "LPN", "PHARMD", "RPH", "MBBS", "FNP", "DC",
                     "OD", "PSYD", "LCSW", "MPH", "PA-C"})
# Appointment / participant priority (1 most urgent) <-> table 0485, the inverse of
# v2_to_fhir.scheduling.PRIORITY; a ServiceRequest's priority likewise.
PRIORITY_CODES: dict[int, str] = {1: "S", 2: "A", 3: "R", 4: "P", 5: "C", 6: "T", 7: "PRN"}
REQUEST_PRIORITY: dict[str, str] = {"stat": "S", "asap": "A", "urgent": "A", "routine": "R"}


# ---- identifiers --------------------------------------------------------------------------


def type_code(identifier: dict) -> str:
    """An Identifier's v2-0203 type code ("" when it has none)."""
    concept = identifier.get("type")
    codings = v2.dicts(concept.get("coding")) if isinstance(concept, dict) else []
    return next((v2.text(c.get("code")) for c in codings
                 if c.get("system") == tables.V2_0203), "")


def ei(identifier: dict) -> list[Component] | None:
    """An Identifier as an EI (id ^ namespace ^ universal id ^ type); None without value."""
    value = v2.text(identifier.get("value"))
    if not value:
        return None
    return [value, *v2.authority(v2.text(identifier.get("system")))]


def numbers(resource: dict) -> tuple[list | None, list | None, list | None]:
    """(placer, filler, group) EIs: identifiers typed PLAC, FILL and PGN; an untyped one
    is the placer's (the resource is the sender's own), else the resource id."""
    typed: dict[str, list] = {}
    others: list[list] = []
    for identifier in v2.dicts(resource.get("identifier")):
        found = ei(identifier)
        if found is None:
            continue
        code = type_code(identifier)
        if code in ("PLAC", "FILL", "PGN") and code not in typed:
            typed[code] = found
        else:
            others.append(found)
    placer = typed.get("PLAC") or (others[0] if others else None)
    if placer is None and "FILL" not in typed and v2.text(resource.get("id")):
        placer = [v2.text(resource["id"])]
    return placer, typed.get("FILL"), typed.get("PGN")


# ---- what a resource points at --------------------------------------------------------------


def resolved(index: v2.Resources, holder: v2.Located, key: str, *kinds: str
             ) -> v2.Located | None:
    """The resource `holder.resource[key]` references, when the input carries it and it
    is one of `kinds`."""
    found = index.resolve(holder.resource.get(key), holder)
    if found is None or (kinds and found.resource.get("resourceType") not in kinds):
        return None
    return found


def subject(index: v2.Resources, holder: v2.Located, key: str = "subject") -> v2.Located:
    """The Patient a request is about; fails naming the path when the input lacks it:
    an order sent without its patient would be filed against nobody."""
    found = resolved(index, holder, key, "Patient")
    if found is None:
        raise MappingError("does not reference a Patient that the input carries",
                           field=f"{holder.path}.{key}")
    return found


def person(index: v2.Resources, reference: Any, holder: v2.Located) -> v2.Located | None:
    """A Practitioner, directly or through a PractitionerRole's practitioner."""
    found = index.resolve(reference, holder)
    if found is None:
        return None
    if found.resource.get("resourceType") == "PractitionerRole":
        return person(index, found.resource.get("practitioner"), found)
    return found if found.resource.get("resourceType") == "Practitioner" else None


# ---- people and places -------------------------------------------------------------------


def xcn(practitioner: dict | None, display: str = "") -> list[Component] | None:
    """A Practitioner as an XCN: id ^ family ^ given ^ middle ^ suffix ^ prefix ^ degree
    ^^ authority (XCN.9) ^^^^ identifier type (XCN.13); a display alone goes to family.
    None when it names nobody."""
    if practitioner is None:
        return [display.strip()] if display.strip() else None
    identifier = next((i for i in v2.dicts(practitioner.get("identifier"))
                       if v2.text(i.get("value"))), {})
    name = next(iter(v2.dicts(practitioner.get("name"))), {})
    family = v2.text(name.get("family"))
    given = [g for g in map(v2.text, name.get("given") or []) if g]
    if not family and not given and v2.text(name.get("text")):
        family = v2.text(name["text"])
    suffixes = [s for s in map(v2.text, name.get("suffix") or []) if s]
    degree = suffixes.pop() if suffixes and suffixes[-1].upper() in DEGREES else ""
    value = v2.text(identifier.get("value"))
    if not value and not family and not given:
        return [display.strip()] if display.strip() else None
    system = v2.text(identifier.get("system"))
    kind = type_code(identifier) or ("NPI" if system == "http://hl7.org/fhir/sid/us-npi"
                                     else "")
    prefix = [p for p in map(v2.text, name.get("prefix") or []) if p]
    return [value, family, given[0] if given else "", " ".join(given[1:]),
            suffixes[0] if suffixes else "", " ".join(prefix), degree, "",
            local_authority(system) if value else "", "", "", "", kind if value else ""]


def local_authority(system: str) -> list[str]:
    """XCN.9 for an identifier system: none for the sender's own practitioner ids (v2-to-
    FHIR names them urn:conduit:id:<facility>:practitioner, and reads an empty XCN.9 back
    the same way), else `fhir_to_v2.authority`."""
    if system.startswith(dt.CONDUIT_ID_PREFIX) and system.endswith(":practitioner"):
        return []
    return v2.authority(system)


def pl(location: dict | None, display: str = "") -> list[Component] | None:
    """A Location as a PL: its name split where v2-to-FHIR joined point of care / room /
    bed with " / ", PL.9 its description; a display alone is the description."""
    if location is None:
        return ["", "", "", "", "", "", "", "", display.strip()] if display.strip() else None
    name = v2.text(location.get("name"))
    parts = [p.strip() for p in name.split(" / ")][:3] if name else []
    description = v2.text(location.get("description"))
    if not parts and not description:
        return None
    parts += [""] * (3 - len(parts))
    return [*parts, "", "", "", "", "", description]


# ---- PV1, DG1, NTE ----------------------------------------------------------------------------


def write_pv1(builder: MessageBuilder, encounter: v2.Located | None,
              index: v2.Resources) -> None:
    """PV1 from an Encounter: PV1-2 class (table 0004), PV1-3 first location, PV1-7
    attending (first participant), PV1-19 visit number (identifier VN, else the first),
    PV1-44 period start. Without an Encounter, PV1|1|N (not applicable)."""
    builder.set("PV1-1", "1")
    if encounter is None:
        builder.set("PV1-2", "N")
        return
    resource, path = encounter
    klass = resource.get("class") if isinstance(resource.get("class"), dict) else {}
    builder.set("PV1-2", PATIENT_CLASS.get(v2.text(klass.get("code")), "U"))
    for entry in v2.dicts(resource.get("location"))[:1]:
        place = index.resolve(entry.get("location"), encounter)
        display = v2.text((entry.get("location") or {}).get("display"))
        v2.put(builder, "PV1-3", pl(place.resource if place else None, display))
    for part in v2.dicts(resource.get("participant"))[:1]:
        who = person(index, part.get("individual"), encounter)
        display = v2.text((part.get("individual") or {}).get("display"))
        v2.put(builder, "PV1-7", xcn(who.resource if who else None, display))
    visits = v2.dicts(resource.get("identifier"))
    chosen = next((i for i in visits if type_code(i) == "VN"), visits[0] if visits else {})
    identifier = v2.cx(chosen) if chosen else None
    v2.put(builder, "PV1-19", identifier)
    period = resource.get("period") if isinstance(resource.get("period"), dict) else {}
    builder.set("PV1-44", v2.to_dtm(period.get("start"), f"{path}.period.start"))


class Notes:
    """NTE segments written in message order, numbered within their group."""

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder
        self.count = 0

    def write(self, texts: list[tuple[str, str]]) -> None:
        """One NTE per (text, comment type), NTE-2 P (the placer's)."""
        for n, (note, kind) in enumerate(((t, k) for t, k in texts if t), start=1):
            self.count += 1
            seg = f"NTE[{self.count}]"
            self.builder.set(f"{seg}-1", str(n))
            self.builder.set(f"{seg}-2", "P")
            self.builder.set(f"{seg}-3", note)
            self.builder.set(f"{seg}-4", kind)


def annotations(resource: dict) -> list[tuple[str, str]]:
    """A resource's note[] texts, as general remarks (RE)."""
    return [(v2.text(n.get("text")), "RE") for n in v2.dicts(resource.get("note"))]


class Diagnoses:
    """DG1 segments numbered across the message (DG1-1)."""

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder
        self.count = 0

    def write(self, concepts: list[dict]) -> None:
        """One DG1 per concept: DG1-3 the code (CE), DG1-6 W (working: a reason given with
        an order or appointment, not a final diagnosis)."""
        for concept in concepts:
            code = v2.cwe(concept, original_text=False)
            if code is None:
                continue
            self.count += 1
            seg = f"DG1[{self.count}]"
            self.builder.set(f"{seg}-1", str(self.count))
            v2.put(self.builder, f"{seg}-3", code)
            self.builder.set(f"{seg}-6", "W")


def reasons(resource: v2.Located, index: v2.Resources) -> list[dict]:
    """reasonCode concepts, then each reasonReference Condition's code; a reason given
    both ways (v2-to-FHIR writes a DG1 as both) is written once."""
    found = v2.dicts(resource.resource.get("reasonCode"))
    for ref in v2.dicts(resource.resource.get("reasonReference")):
        condition = index.resolve(ref, resource)
        if condition is not None and isinstance(condition.resource.get("code"), dict):
            found.append(condition.resource["code"])
    unique: list[dict] = []
    seen: set[tuple] = set()
    for concept in found:
        key = tuple((c.get("system"), c.get("code")) for c in v2.dicts(concept.get("coding"))
                    ) or (("", v2.text(concept.get("text"))),)
        if key not in seen:
            seen.add(key)
            unique.append(concept)
    return unique


Located = v2.Located


def header(resource: v2.Located, root: dict, message_type: tuple[str, str, str],
           *times: tuple[Any, str], last: tuple[tuple[Any, str], ...] = ()) -> v2.Header:
    """MSH as the other FHIR-to-v2 mappings write it: MSH-7 the resource's
    meta.lastUpdated, else `times`, else the Bundle's, else `last`; MSH-10 a hash of the
    resource's version and MSH-7."""
    meta = v2.meta(resource.resource)
    when = v2.message_time((meta.get("lastUpdated"), f"{resource.path}.meta.lastUpdated"),
                           *times, *v2.bundle_times(root), *last)
    return v2.Header(
        facility=v2.source_facility(meta) or v2.source_facility(v2.meta(root)),
        time=when, message_type=message_type,
        control_id=v2.resource_control_id(resource.resource, when))
