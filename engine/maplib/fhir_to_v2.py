"""FHIR R4 as HL7 v2.5.1: the building blocks of the mappings that emit HL7v2 (finding the
resources an input carries, MSH, PID, coded values, OBX values, dates and statuses).

Where v2-to-FHIR has a rule (`formats/hl7v2/datatypes.py`) this module writes its inverse,
so a Patient that hl7v2-adt-to-fhir made comes back as the PID it came from: an Identifier
system urn:oid:X is the assigning authority &X&ISO, urn:conduit:id:X the namespace X,
us-ssn the namespace SSA with type SS; HumanName.use is XPN.7 (table 0200); a phone
number v2-to-FHIR formatted ("+1 (608) 555-0142 ext. 204") goes back into XTN.5-8 and any
other number into XTN.1, as written.

Everything here is deterministic: nothing reads the clock, so the same resource always
gives the same bytes (MSH-7 and MSH-10 come from the resource; see `message_time` and
`control_id`). Errors name the FHIR path of the offending element, never its value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import unquote

import msgspec

from engine.errors import MappingError
from engine.formats.hl7v2 import datatypes as dt
from engine.formats.hl7v2 import tables
from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import v2_clinical as clinical
from engine.maplib import v2_codes

V2_VERSION = "2.5.1"
SENDING_APPLICATION = "CONDUIT"
US_SSN = dt.US_SSN_SYSTEM
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# Identifier systems with a well-known v2 assigning authority (namespace, OID, ISO).
KNOWN_AUTHORITIES: dict[str, tuple[str, str, str]] = {
    US_SSN: ("SSA", "", ""),
    "http://hl7.org/fhir/sid/us-npi": ("NPI", "2.16.840.1.113883.4.6", "ISO"),
}
# FHIR system URI -> table 0396 coding system name (CWE.3): the inverse of the v2-to-FHIR
# map, each system by its first (preferred) name there.
SYSTEM_NAMES: dict[str, str] = {
    system: name for name, system in reversed(tables.CODING_SYSTEMS.items())
}
_V2_TABLE = re.compile(re.escape(tables.V2_SYSTEM) + r"(\d{4})\Z")

# FHIR -> v2 tables, the inverse of the v2-to-FHIR ones.
SEX: dict[str, str] = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
NAME_TYPE: dict[str, str] = {
    "official": "L", "usual": "D", "maiden": "M", "nickname": "N", "anonymous": "S",
    "temp": "TEMP", "old": "NOUSE",
}
ADDRESS_USE: dict[str, str] = {"home": "H", "work": "B", "temp": "C", "old": "BA"}
ADDRESS_TYPE: dict[str, str] = {"postal": "M", "physical": "SH"}
TELECOM_USE: dict[str, str] = {"home": "PRN", "work": "WPN", "mobile": "PRN", "temp": "VHN"}
EQUIPMENT: dict[str, str] = {"phone": "PH", "fax": "FX", "pager": "BP", "sms": "CP"}
# Observation.status -> OBX-11 (table 0085); "unknown" has no equivalent.
RESULT_STATUS: dict[str, str] = {
    "registered": "I", "preliminary": "P", "final": "F", "amended": "C", "corrected": "C",
    "cancelled": "X", "entered-in-error": "W",
}
# DiagnosticReport.status -> OBR-25 (table 0123); entered-in-error and unknown have none.
REPORT_STATUS: dict[str, str] = {
    "registered": "I", "partial": "A", "preliminary": "P", "final": "F", "amended": "C",
    "corrected": "C", "appended": "C", "cancelled": "X",
}
# Table 0078 abnormal flags that v3 ObservationInterpretation shares code for code.
ABNORMAL_FLAGS = frozenset({
    "L", "H", "LL", "HH", "<", ">", "N", "A", "AA", "U", "D", "B", "W", "S", "R", "I",
    "MS", "VS", "POS", "NEG", "IND", "DET", "ND",
})

_DATE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?\Z")
_DATETIME = re.compile(
    r"(?P<date>\d{4}(?:-\d{2}(?:-\d{2})?)?)"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2}))?\Z"
)
_TIME = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?\Z")
# The phone formats datatypes.xtn_to_contact_point writes from XTN.5-8.
_FORMATTED_PHONE = re.compile(
    r"(?:\+(?P<country>\d{1,3}) )?(?:\((?P<area>\d{1,5})\) )?(?P<local>\d{3}-\d{4}|\d{4,12})"
    r"(?: ext\. (?P<ext>\d+))?\Z"
)

Component = str | list[str]  # a component, or its subcomponents


# ---- reading the input -------------------------------------------------------------------


def dicts(value: Any) -> list[dict]:
    """The objects of a FHIR array (anything else in it, or a non-array, is ignored)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def text(value: Any) -> str:
    """A FHIR string as text; "" for anything that is not a non-blank string."""
    return value.strip() if isinstance(value, str) else ""


class Located(NamedTuple):
    """A resource and the FHIR path where the input holds it, for error messages."""

    resource: dict
    path: str


def focus(resource: dict, index: Resources, kind: str, noun: str, sends: str) -> Located:
    """What a mapping sends: the input itself when it is a `kind`, else the Bundle's first
    `kind` in entry order (one message per input). Fails naming Bundle.entry when the
    Bundle holds none ("so there is no <noun> to send"), and resourceType for any other
    input ("this mapping sends <sends>")."""
    found = resource.get("resourceType")
    if found == kind:
        return Located(resource, kind)
    if found == "Bundle":
        first = next(index.of_type(kind), None)
        if first is None:
            raise MappingError(f"holds no {kind}, so there is no {noun} to send",
                               field="Bundle.entry")
        return first
    raise MappingError(f"is not {kind} or Bundle; this mapping sends {sends}",
                       field="resourceType")


class Resources:
    """The resources an input carries, found by reference: a Bundle's entries (by fullUrl
    and by Type/id) and each resource's contained ones (by #id)."""

    def __init__(self, root: dict) -> None:
        self.root = root
        self._by_ref: dict[str, Located] = {}
        self._all: list[Located] = []
        if root.get("resourceType") == "Bundle":
            for n, entry in enumerate(dicts(root.get("entry"))):
                resource = entry.get("resource")
                if isinstance(resource, dict):
                    self._add(Located(resource, f"Bundle.entry[{n}].resource"),
                              text(entry.get("fullUrl")))
        else:
            self._add(Located(root, str(root.get("resourceType", "resource"))), "")

    def _add(self, found: Located, full_url: str) -> None:
        self._all.append(found)
        kind, rid = text(found.resource.get("resourceType")), text(found.resource.get("id"))
        for key in (full_url, f"{kind}/{rid}" if kind and rid else ""):
            if key:
                self._by_ref.setdefault(key, found)

    def of_type(self, kind: str) -> Iterator[Located]:
        """Every top-level resource of a type, in input order."""
        return (f for f in self._all if f.resource.get("resourceType") == kind)

    def resolve(self, reference: Any, holder: Located) -> Located | None:
        """What a Reference points at: #id in the holder's contained resources, else a
        Bundle entry by fullUrl, by Type/id, or by the Type/id at the end of a URL."""
        ref = text(reference.get("reference")) if isinstance(reference, dict) else ""
        if not ref:
            return None
        if ref.startswith("#"):
            for n, inner in enumerate(dicts(holder.resource.get("contained"))):
                if text(inner.get("id")) == ref[1:]:
                    return Located(inner, f"{holder.path}.contained[{n}]")
            return None
        found = self._by_ref.get(ref)
        if found is None:
            parts = ref.split("/_history/")[0].rstrip("/").split("/")
            found = self._by_ref.get("/".join(parts[-2:])) if len(parts) >= 2 else None
        return found


# ---- dates -------------------------------------------------------------------------------


def to_dt(value: Any, field: str) -> str:
    """A FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) as a v2 DT; "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str) or not _DATE.match(value):
        raise MappingError("is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", field=field)
    return _checked(value.replace("-", ""), field)


def to_dtm(value: Any, field: str) -> str:
    """A FHIR dateTime or instant as a v2 DTM, keeping its precision and its zone
    (Z becomes +0000); fractions of a second keep at most the four digits v2 allows."""
    if value is None:
        return ""
    m = _DATETIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise MappingError("is not a FHIR dateTime (YYYY-MM-DDThh:mm:ss+zz:zz)", field=field)
    dtm = m["date"].replace("-", "")
    if m["hour"]:
        dtm += m["hour"] + m["minute"] + (m["second"] or "")
        if m["second"] and m["fraction"]:
            dtm += "." + m["fraction"][:4]
        dtm += "+0000" if m["zone"] == "Z" else m["zone"].replace(":", "")
    return _checked(dtm, field)


def _checked(dtm: str, field: str) -> str:
    """The DTM, once every part is known to be a real date and time."""
    dt.parse_dtm(dtm, field)
    return dtm


def to_tm(value: Any, field: str) -> str:
    """A FHIR time (hh:mm:ss) as a v2 TM."""
    m = _TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise MappingError("is not a FHIR time (hh:mm:ss)", field=field)
    return "".join(p for p in m.groups() if p)


def meta(resource: Any) -> dict:
    """A resource's meta, or {} when it has none."""
    found = resource.get("meta") if isinstance(resource, dict) else None
    return found if isinstance(found, dict) else {}


def bundle_times(root: dict) -> list[tuple[Any, str]]:
    """A Bundle's own times, Bundle.timestamp then Bundle.meta.lastUpdated, as (value,
    FHIR path) for `message_time`: the fallbacks for MSH-7 (none for a bare resource).
    The v2-to-FHIR mappings write Bundle.timestamp from MSH-7, so their Bundles have one."""
    if root.get("resourceType") != "Bundle":
        return []
    return [(root.get("timestamp"), "Bundle.timestamp"),
            (meta(root).get("lastUpdated"), "Bundle.meta.lastUpdated")]


def message_time(*candidates: tuple[Any, str]) -> str:
    """MSH-7: the first of (value, FHIR path) that is valued, as a DTM.

    The message time must come from the input, never the clock, so the same resource
    always gives the same message; when none is valued it fails naming the first path.
    """
    for value, path in candidates:
        if value is not None:
            return to_dtm(value, path)
    others = " and ".join(path for _, path in candidates[1:])
    raise MappingError(
        f"is missing{f', as is {others}' if others else ''}: the message time (MSH-7) "
        "is taken from the input, never the clock, so that the same resource always gives "
        "the same message",
        field=candidates[0][1],
    )


def control_id(*parts: str) -> str:
    """MSH-10: 20 hex digits of SHA-256 over what identifies this version of the input,
    so a resent version keeps its control id and every new version gets a new one."""
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:20].upper()


def resource_control_id(resource: dict, when: str) -> str:
    """MSH-10 for the message about one resource: over (type, id, meta.versionId, MSH-7),
    and over the resource's canonical JSON when it has no id."""
    rid = text(resource.get("id"))
    parts = [text(resource.get("resourceType")), rid, text(meta(resource).get("versionId")), when]
    if not rid:
        parts.append(canonical(resource))
    return control_id(*parts)


_canonical = msgspec.json.Encoder(decimal_format="number", order="sorted").encode


def canonical(resource: Any) -> str:
    """The resource as JSON with sorted keys and numbers as sent: the same content, the
    same text."""
    return _canonical(resource).decode("utf-8")


# ---- writing -----------------------------------------------------------------------------


def put(builder: MessageBuilder, field_path: str, components: list[Component] | None) -> None:
    """Write one repetition's components (a list item may be a list of subcomponents) at
    `field_path` ("PID-3[2]", "OBX[4]-5"); empty values are left empty."""
    for c, comp in enumerate(components or [], start=1):
        if isinstance(comp, list):
            for s, sub in enumerate(comp, start=1):
                builder.set(f"{field_path}.{c}.{s}", sub)
        else:
            builder.set(f"{field_path}.{c}", comp)


def put_all(builder: MessageBuilder, field_path: str, reps: list[list[Component]]) -> None:
    """Write each item of `reps` as one repetition of the field."""
    seg, _, field = field_path.partition("-")
    for n, comps in enumerate(reps, start=1):
        put(builder, f"{seg}-{field}[{n}]", comps)


def encode(builder: MessageBuilder) -> str:
    """The message text; MSH-18 says UNICODE UTF-8 when any value is not ASCII (v2's
    default character set is ASCII, and the engine sends text as UTF-8)."""
    message = builder.encode()
    if not message.isascii():
        builder.set("MSH-18", "UNICODE UTF-8")
        message = builder.encode()
    return message


class Header(NamedTuple):
    """What MSH says beyond the constants: sender facility, time, type, control id."""

    facility: list[Component]
    time: str
    message_type: tuple[str, str, str]
    control_id: str


def write_msh(builder: MessageBuilder, header: Header) -> None:
    """MSH for a v2.5.1 production message from CONDUIT (MSH-5/6 are the channel's)."""
    builder.set("MSH-3", SENDING_APPLICATION)
    put(builder, "MSH-4", header.facility)
    builder.set("MSH-7", header.time)
    put(builder, "MSH-9", list(header.message_type))
    builder.set("MSH-10", header.control_id)
    builder.set("MSH-11", "P")
    builder.set("MSH-12", V2_VERSION)


def source_facility(meta: Any) -> list[Component]:
    """MSH-4 from meta.source (where the resource came from): a URI as HD's universal id
    (type URI), anything else as its namespace; the #fragment (a request id) is dropped."""
    source = text(meta.get("source")).split("#")[0] if isinstance(meta, dict) else ""
    if not source:
        return []
    return ["", source, "URI"] if ":" in source else [source]


# ---- PID ---------------------------------------------------------------------------------


def write_pid(builder: MessageBuilder, patient: Located) -> None:
    """PID from a Patient: identifiers, names, birth date, sex, race, address, telecom,
    ethnicity and death; fails naming <path>.identifier when no identifier has a value."""
    resource, path = patient
    identifiers = [c for c in map(cx, dicts(resource.get("identifier"))) if c]
    if not identifiers:
        raise MappingError("has no identifier with a value, and PID-3 needs one",
                           field=f"{path}.identifier")
    builder.set("PID-1", "1")
    put_all(builder, "PID-3", identifiers)
    put_all(builder, "PID-5", xpns(dicts(resource.get("name"))))
    builder.set("PID-7", to_dt(resource.get("birthDate"), f"{path}.birthDate"))
    builder.set("PID-8", _sex(resource.get("gender"), f"{path}.gender"))
    put_all(builder, "PID-10", race_reps(resource, clinical.US_CORE_RACE))
    put_all(builder, "PID-11", [a for a in map(xad, dicts(resource.get("address"))) if a])
    home, work = _telecoms(dicts(resource.get("telecom")))
    put_all(builder, "PID-13", home)
    put_all(builder, "PID-14", work)
    put_all(builder, "PID-22", race_reps(resource, clinical.US_CORE_ETHNICITY))
    _write_death(builder, resource, path)


def _sex(gender: Any, field: str) -> str:
    if gender is None:
        return ""
    if gender not in SEX:
        raise MappingError("is not a FHIR administrative gender (male, female, other, "
                           "unknown)", field=field)
    return SEX[gender]


def _write_death(builder: MessageBuilder, patient: dict, path: str) -> None:
    """PID-29 death time with PID-30 Y, or PID-30 Y/N from deceasedBoolean."""
    when = patient.get("deceasedDateTime")
    if when is not None:
        builder.set("PID-29", to_dtm(when, f"{path}.deceasedDateTime"))
        builder.set("PID-30", "Y")
    elif isinstance(patient.get("deceasedBoolean"), bool):
        builder.set("PID-30", "Y" if patient["deceasedBoolean"] else "N")


def authority(system: str) -> list[str]:
    """The HD (namespace, universal id, type) for an Identifier.system: the inverse of
    `datatypes.hd_system`, plus the well-known systems; [] for none."""
    if not system:
        return []
    if system in KNOWN_AUTHORITIES:
        return list(KNOWN_AUTHORITIES[system])
    if system.startswith(dt.CONDUIT_ID_PREFIX):
        return [unquote(system.removeprefix(dt.CONDUIT_ID_PREFIX))]
    if system.startswith("urn:oid:"):
        return ["", system.removeprefix("urn:oid:"), "ISO"]
    if system.startswith("urn:uuid:"):
        return ["", system.removeprefix("urn:uuid:"), "UUID"]
    return ["", system, "URI"]


def cx(identifier: dict) -> list[Component] | None:
    """An Identifier as a CX (id ^^^ authority ^ type); None without a value."""
    value = text(identifier.get("value"))
    if not value:
        return None
    system = text(identifier.get("system"))
    type_code = _identifier_type(identifier)
    if system == US_SSN:
        type_code = type_code or "SS"
    return [value, "", "", authority(system), type_code]


def _identifier_type(identifier: dict) -> str:
    """CX.5 from Identifier.type: its v2-0203 code, else a code-like text."""
    concept = identifier.get("type") if isinstance(identifier.get("type"), dict) else {}
    for coding in dicts(concept.get("coding")):
        if coding.get("system") == tables.V2_0203 and text(coding.get("code")):
            return text(coding["code"])
    label = text(concept.get("text"))
    return label.upper() if re.fullmatch(r"[A-Za-z0-9_]{1,10}", label) else ""


def xpn(name: dict) -> list[Component] | None:
    """A HumanName as an XPN: family ^ first given ^ other given ^ suffix ^ prefix ^
    second suffix ^ name type; None without family or given."""
    family = text(name.get("family"))
    given = [g for g in map(text, name.get("given") or []) if g]
    if not family and not given:
        return None
    suffix = [s for s in map(text, name.get("suffix") or []) if s]
    prefix = [p for p in map(text, name.get("prefix") or []) if p]
    return [
        family,
        given[0] if given else "",
        " ".join(given[1:]),
        suffix[0] if suffix else "",
        " ".join(prefix),
        " ".join(suffix[1:]),
        NAME_TYPE.get(text(name.get("use")), ""),
    ]


def xpns(names: list[dict]) -> list[list[Component]]:
    """Each HumanName with parts as an XPN. A patient whose names have none, only `text`
    (apps send {"text": "Jane Q Public"}), gets the first such text whole in the family
    name, where receivers look, rather than split by a guess or sent with no name."""
    found = [n for n in map(xpn, names) if n]
    if found:
        return found
    whole = next((n for n in names if text(n.get("text"))), None)
    named = xpn({"family": whole["text"], "use": whole.get("use")}) if whole else None
    return [named] if named else []


def xad(address: dict) -> list[Component] | None:
    """An Address as an XAD: street ^ other designation (further lines) ^ city ^ state ^
    zip ^ country ^ type (table 0190) ^^ county; None when it has no part."""
    lines = [line for line in map(text, address.get("line") or []) if line]
    parts = [
        lines[0] if lines else "",
        ", ".join(lines[1:]),
        text(address.get("city")),
        text(address.get("state")),
        text(address.get("postalCode")),
        text(address.get("country")),
    ]
    if not any(parts) and not text(address.get("district")):
        return None
    kind = ADDRESS_USE.get(text(address.get("use"))) or ADDRESS_TYPE.get(
        text(address.get("type")), ""
    )
    return [*parts, kind, "", text(address.get("district"))]


def _telecoms(points: list[dict]) -> tuple[list[list[Component]], list[list[Component]]]:
    """ContactPoints as XTNs: work ones for PID-14, every other one for PID-13."""
    home: list[list[Component]] = []
    work: list[list[Component]] = []
    for point in points:
        rep = xtn(point)
        if rep is not None:
            (work if point.get("use") == "work" else home).append(rep)
    return home, work


def xtn(point: dict) -> list[Component] | None:
    """A ContactPoint as a v2.5 XTN (use code, equipment, email or number parts); a
    number not in v2-to-FHIR's format stays in XTN.1 as written. None for a URL (XTN has
    no place for one) or an empty value."""
    value, system, use = text(point.get("value")), text(point.get("system")), text(point.get("use"))
    if not value or system == "url":
        return None
    use_code = TELECOM_USE.get(use, "")
    if system == "email":
        return ["", "NET", "Internet", value]
    equipment = "CP" if use == "mobile" else EQUIPMENT.get(system, "")
    m = _FORMATTED_PHONE.match(value)
    if m is None or not (m["area"] or "-" in m["local"]):
        return [value, use_code, equipment]
    local = m["local"].replace("-", "")
    return ["", use_code, equipment, "", m["country"] or "", m["area"] or "", local,
            m["ext"] or ""]


def race_reps(patient: dict, url: str) -> list[list[Component]]:
    """PID-10 / PID-22 from a US Core race or ethnicity extension: each ombCategory and
    detailed coding as a CWE (CDCREC, or NULLFL for UNK/ASKU), else its text alone."""
    for ext in dicts(patient.get("extension")):
        if ext.get("url") != url:
            continue
        parts = dicts(ext.get("extension"))
        codings = [p.get("valueCoding") for p in parts
                   if p.get("url") in ("ombCategory", "detailed")]
        reps = [r for r in (coded(c) for c in codings if isinstance(c, dict)) if r]
        label = next((text(p.get("valueString")) for p in parts if p.get("url") == "text"), "")
        return reps or ([["", label]] if label else [])
    return []


# ---- coded values ------------------------------------------------------------------------


def system_name(system: str) -> str:
    """CWE.3 for a FHIR system: the table 0396 name, HL7nnnn for v2 tables, the sender's
    own name for a Conduit local system (none when it had none: `local`, or the older form
    without a name), else L (local)."""
    if not system:
        return ""
    if system in SYSTEM_NAMES:
        return SYSTEM_NAMES[system]
    table = _V2_TABLE.match(system)
    if table:
        return f"HL7{table[1]}"
    if system.startswith(v2_codes.LOCAL_CODE_PREFIX):
        _, _, name = system.removeprefix(v2_codes.LOCAL_CODE_PREFIX).partition(":")
        name = unquote(name)
        return "" if name == v2_codes.LOCAL_NAME else name
    return "L"


def coded(coding: dict) -> list[Component] | None:
    """A Coding as a CWE triplet (code ^ display ^ system name); None without a code."""
    code = text(coding.get("code"))
    if not code:
        return None
    return [code, text(coding.get("display")), system_name(text(coding.get("system")))]


def cwe(concept: Any, *, original_text: bool = True) -> list[Component] | None:
    """A CodeableConcept as a CE (first two codings) or, with `original_text`, a CWE whose
    CWE.9 keeps the concept's text; text alone goes to component 2. None when empty."""
    if not isinstance(concept, dict):
        return None
    triplets = [t for t in map(coded, dicts(concept.get("coding"))) if t][:2]
    label = text(concept.get("text"))
    if not triplets:
        return ["", label] if label else None
    comps: list[Component] = [*triplets[0], *(triplets[1] if len(triplets) > 1 else [])]
    if not comps[1] and label:
        comps[1] = label
    if original_text and label and label != comps[1]:
        comps += [""] * (8 - len(comps)) + [label]
    return comps


# ---- observation values ------------------------------------------------------------------


class ObxValue(NamedTuple):
    """OBX-2 value type, OBX-5 components and OBX-6 units of one value[x]."""

    value_type: str
    value: list[Component]
    units: list[Component] | None = None


def number(value: Any, field: str) -> str:
    """A JSON number as v2 NM text with the digits it was sent with (the FHIR codec reads
    7.20 as Decimal("7.20"), so OBX-5 says 7.20), never in exponent form (1e-05 is
    0.00001)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MappingError("is not a number", field=field)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(value, "f")


def obx_value(element: dict, path: str) -> ObxValue | None:
    """OBX-2/5/6 for an Observation's (or component's) value[x]; None when it has none.

    Quantity is NM with UCUM units, or SN when it has a comparator; string is ST (FT when
    it has line breaks, TX beyond 199 characters); CodeableConcept and boolean are CWE;
    dateTime DTM, time TM, integer NM, Range and Ratio SN. Any other type fails naming it.
    """
    for key, write in _VALUE_WRITERS.items():
        if key in element:
            return write(element[key], f"{path}.{key}")
    unknown = next((k for k in element if k.startswith("value")), None)
    if unknown is not None:
        raise MappingError("is a value type this mapping cannot write in an OBX",
                           field=f"{path}.{unknown}")
    return None


def _quantity(q: Any, field: str) -> ObxValue:
    q = q if isinstance(q, dict) else {}
    amount = number(q.get("value"), f"{field}.value")
    comparator = text(q.get("comparator"))
    if comparator:
        return ObxValue("SN", [comparator, amount], units(q))
    return ObxValue("NM", [amount], units(q))


def units(q: dict) -> list[Component] | None:
    """OBX-6 from a Quantity: UCUM code ^ unit ^ UCUM, else the unit as written."""
    code, unit = text(q.get("code")), text(q.get("unit"))
    if code and q.get("system") == tables.UCUM:
        return [code, unit or code, "UCUM"]
    return [unit or code] if unit or code else None


def _string(value: Any, field: str) -> ObxValue:
    if not isinstance(value, str):
        raise MappingError("is not a string", field=field)
    kind = "FT" if "\n" in value or "\r" in value else "TX" if len(value) > 199 else "ST"
    return ObxValue(kind, [value])


def _concept(value: Any, field: str) -> ObxValue:
    comps = cwe(value)
    if comps is None:
        raise MappingError("has neither a coding nor a text", field=field)
    return ObxValue("CWE", comps)


def _boolean(value: Any, field: str) -> ObxValue:
    if not isinstance(value, bool):
        raise MappingError("is not a boolean", field=field)
    return ObxValue("CWE", ["Y", "Yes", "HL70136"] if value else ["N", "No", "HL70136"])


def _range(value: Any, field: str) -> ObxValue:
    value = value if isinstance(value, dict) else {}
    low, high = value.get("low"), value.get("high")
    low_n = number(low.get("value"), f"{field}.low.value") if isinstance(low, dict) else ""
    high_n = number(high.get("value"), f"{field}.high.value") if isinstance(high, dict) else ""
    if low_n and high_n:
        return ObxValue("SN", ["", low_n, "-", high_n], units(low))
    if low_n:
        return ObxValue("SN", [">=", low_n], units(low))
    if high_n:
        return ObxValue("SN", ["<=", high_n], units(high))
    raise MappingError("has neither low nor high", field=field)


def _ratio(value: Any, field: str) -> ObxValue:
    value = value if isinstance(value, dict) else {}
    parts = [value.get(k) if isinstance(value.get(k), dict) else {} for k in ("numerator",
                                                                             "denominator")]
    numerator = number(parts[0].get("value"), f"{field}.numerator.value")
    denominator = number(parts[1].get("value"), f"{field}.denominator.value")
    return ObxValue("SN", ["", numerator, ":", denominator])


_VALUE_WRITERS = {
    "valueQuantity": _quantity,
    "valueString": _string,
    "valueCodeableConcept": _concept,
    "valueBoolean": _boolean,
    "valueInteger": lambda v, f: ObxValue("NM", [number(v, f)]),
    "valueDateTime": lambda v, f: ObxValue("DTM", [to_dtm(v, f)]),
    "valueTime": lambda v, f: ObxValue("TM", [to_tm(v, f)]),
    "valueRange": _range,
    "valueRatio": _ratio,
}


def reference_range(element: dict, path: str) -> str:
    """OBX-7 from the first referenceRange: its text, else "low-high", ">low", "<high"
    (v2's own forms)."""
    ranges = dicts(element.get("referenceRange"))
    if not ranges:
        return ""
    first, field = ranges[0], f"{path}.referenceRange[0]"
    if text(first.get("text")):
        return text(first["text"])
    bounds = []
    for key in ("low", "high"):
        q = first.get(key)
        value = q.get("value") if isinstance(q, dict) else None
        bounds.append(number(value, f"{field}.{key}.value") if value is not None else "")
    low, high = bounds
    if low and high:
        return f"{low}-{high}"
    return f">{low}" if low else f"<{high}" if high else ""


def abnormal_flags(element: dict, path: str) -> list[str]:
    """OBX-8 from interpretation: the v3 / v2-0078 codes table 0078 shares. An
    interpretation that cannot be written fails: a dropped abnormal flag would tell the
    receiver a result is normal when its sender said it is not."""
    flags: list[str] = []
    for n, concept in enumerate(dicts(element.get("interpretation"))):
        codes = [
            text(c.get("code")) for c in dicts(concept.get("coding"))
            if c.get("system") in (V3_INTERPRETATION, tables.V2_0078)
            and text(c.get("code")) in ABNORMAL_FLAGS
        ]
        if not codes:
            raise MappingError("has no code from HL7 table 0078 (abnormal flags)",
                               field=f"{path}.interpretation[{n}]")
        flags += [c for c in codes[:1] if c not in flags]
    return flags


def status(value: Any, table: dict[str, str], table_name: str, field: str) -> str:
    """A FHIR status through a v2 table; a status with no v2 equivalent fails."""
    if value not in table:
        raise MappingError(f"has no equivalent in HL7 table {table_name}", field=field)
    return table[value]
