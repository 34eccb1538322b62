"""The result side of HL7 v2 (chapter 7) as FHIR: OBX values, units, reference ranges,
abnormal flags and statuses, and the Observation and DiagnosticReport they make.

Code tables follow the HL7 v2-to-FHIR IG's concept maps (0078, 0085, 0123); where the IG
leaves a code unmapped the choice is written beside it. Orders and specimens come from
`v2_orders`, which results build on; coded values from `v2_codes`.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import cwe_to_codeable_concept, first_concept
from engine.maplib.v2_documents import encapsulated_data
from engine.maplib.v2_fhir import annotations
from engine.maplib.v2_orders import keyed, section_categories

V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# R4 DiagnosticReport has no note; R5 added one, and this is the standard R4 extension
# that carries an R5 element, so a report's own comments (NTE after OBR) are not lost.
REPORT_NOTE_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"

# Table 0085 observation result status -> Observation.status (IG concept map: A, C, D, F,
# P, X, W). The IG leaves the others unmapped; Observation.status is required, so:
OBSERVATION_STATUS: dict[str, str] = {
    "A": "amended",
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "P": "preliminary",
    "X": "cancelled",
    "W": "entered-in-error",
    "B": "amended",  # appended: a final result with information added
    "I": "registered",  # specimen in lab, results pending
    "O": "registered",  # order detail only, no result yet
    "R": "preliminary",  # a value exists but is not verified: preliminary, not registered
    "S": "preliminary",  # partial (withdrawn in 2.6)
    "N": "cancelled",  # not asked: the observation was not sought
    "U": "final",  # status changed to final without retransmitting the value
    "V": "final",  # verified
}
# Table 0123 result status -> DiagnosticReport.status (IG concept map; A is ours).
REPORT_STATUS: dict[str, str] = {
    "O": "registered",
    "I": "registered",
    "S": "registered",
    "A": "partial",  # some, but not all, results available
    "P": "preliminary",
    "C": "corrected",
    "R": "partial",
    "F": "final",
    "X": "cancelled",
}
_OBSERVATION_STATUSES = frozenset(OBSERVATION_STATUS.values()) | {"unknown"}

# Table 0078 abnormal flags -> v3 ObservationInterpretation (the IG maps each code to the
# same code); codes the v3 value set retired (AC, HM, OBX, QCF, TOX) become text.
INTERPRETATION: dict[str, str] = {
    "<": "Off scale low", ">": "Off scale high", "A": "Abnormal", "AA": "Critical abnormal",
    "B": "Better", "CAR": "Carrier", "D": "Significant change down", "DET": "Detected",
    "E": "Equivocal", "EX": "outside threshold", "EXP": "Expected", "H": "High",
    "HH": "Critical high", "HU": "Significantly high", "I": "Intermediate",
    "IE": "Insufficient evidence", "IND": "Indeterminate", "L": "Low", "LL": "Critical low",
    "LU": "Significantly low", "MS": "moderately susceptible", "N": "Normal",
    "NCL": "No CLSI defined breakpoint", "ND": "Not detected", "NEG": "Negative",
    "NR": "Non-reactive", "NS": "Non-susceptible", "POS": "Positive", "R": "Resistant",
    "RR": "Reactive", "S": "Susceptible", "SDD": "Susceptible-dose dependent",
    "SYN-R": "Synergy - resistant", "SYN-S": "Synergy - susceptible",
    "U": "Significant change up", "UNE": "Unexpected", "VS": "very susceptible",
    "W": "Worse", "WR": "Weakly reactive",
}

# ---- units ---------------------------------------------------------------------------------

# UCUM atoms a lab sends, split into those that take a metric prefix and those that do
# not. Not the whole of UCUM on purpose: a unit outside this list is sent as text, which
# is true, where a wrong UCUM code would be read by machines (K is left out, as "K/uL"
# means thousands, not kelvin).
_METRIC_ATOMS = frozenset(
    {"m", "s", "g", "L", "l", "mol", "eq", "U", "[IU]", "[iU]", "Pa", "Hz", "kat", "osm",
     "Cel", "bar", "Bq", "Gy", "Sv", "m[Hg]", "m[H2O]", "cal", "t"}
)
_PLAIN_ATOMS = frozenset(
    {"%", "min", "h", "d", "wk", "mo", "a", "10*", "10^", "[ppm]", "[ppb]", "[ppth]", "[pH]",
     "[degF]", "[in_i]", "[ft_i]", "[lb_av]", "[oz_av]", "[drp]", "[HPF]", "[LPF]", "[arb'U]",
     "[CFU]", "[mi_i]", "''", "'", "deg", "[iU]"}
)
_PREFIXES = ("da", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m", "u", "n",
             "p", "f", "a", "z", "y")
_UCUM_TOKEN = re.compile(r"\{[^{}]*\}|[./()]|[^./(){}]+")
_EXPONENT = re.compile(r"(.*?)([+-]?\d+)\Z")


def looks_like_ucum(unit: str) -> bool:
    """Whether a unit parses as case-sensitive UCUM made of common atoms: "mg/dL",
    "10*3/uL", "mL/min/{1.73_m2}", "%", "mm[Hg]" do; "mEq/L", "K/uL", "IU/L" do not."""
    if not unit or " " in unit:
        return False
    tokens = _UCUM_TOKEN.findall(unit)
    if "".join(tokens) != unit:
        return False
    depth, expect_term = 0, True
    for i, token in enumerate(tokens):
        if token in (".", "/"):
            if expect_term and not (token == "/" and i == 0):
                return False
            expect_term = True
        elif token == "(":
            if not expect_term:
                return False
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0 or expect_term:
                return False
        elif token.startswith("{"):
            expect_term = False  # an annotation alone, or attached to the unit before it
        elif not expect_term or not _ucum_component(token):
            return False
        else:
            expect_term = False
    return depth == 0 and not expect_term


def _ucum_component(token: str) -> bool:
    """One UCUM component: a number, or [prefix]atom[exponent]."""
    if token.isdecimal():
        return True
    m = _EXPONENT.match(token)
    if m and m.group(1) and not m.group(1).endswith(("*", "^")):
        token = m.group(1)
    elif m and m.group(1) in ("10*", "10^"):
        return True
    if token in _PLAIN_ATOMS or token in _METRIC_ATOMS:
        return True
    return any(token.startswith(p) and token[len(p):] in _METRIC_ATOMS for p in _PREFIXES)


class Unit(NamedTuple):
    """OBX-6 as the parts of a FHIR Quantity: unit text, and system/code when UCUM."""

    unit: str = ""
    system: str = ""
    code: str = ""

    def quantity(self, value: Decimal, comparator: str = "") -> dict:
        return compact({
            "value": value, "comparator": comparator, "unit": self.unit,
            "system": self.system, "code": self.code,
        })


def obx_unit(obx: Segment) -> Unit:
    """OBX-6: a UCUM coding when the sender says UCUM or the code parses as UCUM, else the
    unit's text alone (a local unit is information for people, not a code)."""
    code, text, system = (dt.present(obx.value(6, c)) for c in (1, 2, 3))
    alt_code, alt_system = dt.present(obx.value(6, 4)), dt.present(obx.value(6, 6))
    if alt_system.upper() == "UCUM" and alt_code and system.upper() != "UCUM":
        return Unit(text or code or alt_code, tables.UCUM, alt_code)
    if code and (system.upper() == "UCUM" or looks_like_ucum(code)):
        return Unit(text or code, tables.UCUM, code)
    return Unit(text or code)


# ---- OBX-5 by OBX-2 -----------------------------------------------------------------------


class ObxContext(NamedTuple):
    """What reading one OBX needs from around it."""

    facility: str
    offset: str | None


def observation_value(obx: Segment, ctx: ObxContext) -> dict:
    """Observation.value[x] from OBX-5 as OBX-2 (value type) says; {} when OBX-5 is empty.

    NM: valueQuantity with the digits sent ("5.10" stays 5.10: they are the lab's
    precision), but a non-number such as "TNP" stays valueString: it is what the lab
    said. SN: valueQuantity with comparator, valueRange (10-20) or valueRatio (1:128).
    ST/TX/FT: valueString, repetitions as lines. CE/CWE: valueCodeableConcept. DT, TS,
    DTM: valueDateTime. TM: valueTime. Any other type: its text as valueString.
    """
    reps = [r for r in obx.repetitions(5) if dt.present(r.text)]
    if not reps:
        return {}
    kind = dt.present(obx.value(2)).upper()
    if kind == "NM":
        return _numeric(reps[0], obx_unit(obx))
    if kind == "SN":
        return _structured_numeric(reps[0], obx_unit(obx))
    if kind in ("CE", "CWE", "CNE"):
        concept = cwe_to_codeable_concept(reps[0], ctx.facility)
        return {"valueCodeableConcept": concept} if concept else {}
    if kind in ("DT", "TS", "DTM"):
        return {"valueDateTime": dt.to_fhir_datetime(reps[0].value(1), "OBX-5", ctx.offset)}
    if kind == "TM":
        return _time(reps[0].value(1))
    return {"valueString": "\n".join(_rep_text(r) for r in reps)}


def _rep_text(rep: Repetition) -> str:
    """A repetition's components as text: one for ST/TX/FT, joined by spaces otherwise."""
    parts = [dt.present(rep.value(i)) for i in range(1, len(rep.components()) + 1)]
    return " ".join(p for p in parts if p)


def _numeric(rep: Repetition, unit: Unit) -> dict:
    text = dt.present(rep.value(1))
    value = dt.parse_nm(text)
    if value is None:
        return {"valueString": text}
    return {"valueQuantity": unit.quantity(value)}


_COMPARATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "", "": ""}


def _structured_numeric(rep: Repetition, unit: Unit) -> dict:
    """SN = comparator ^ num1 ^ separator/suffix ^ num2, per the v2 standard."""
    comparator, num1, separator, num2 = (dt.present(rep.value(i)) for i in (1, 2, 3, 4))
    first, second = dt.parse_nm(num1), dt.parse_nm(num2)
    fhir_comparator = _COMPARATORS.get(comparator)
    text = "".join((comparator, num1, separator, num2))
    if first is None or fhir_comparator is None:
        return {"valueString": text}
    if separator == "-" and second is not None and not fhir_comparator:
        return {"valueRange": {"low": unit.quantity(first), "high": unit.quantity(second)}}
    if separator in (":", "/") and second is not None:
        numerator = compact({"value": first, "comparator": fhir_comparator})
        return {"valueRatio": {"numerator": numerator, "denominator": {"value": second}}}
    if not separator and not num2:
        return {"valueQuantity": unit.quantity(first, fhir_comparator)}
    return {"valueString": text}  # a categorical suffix such as "2+"


def _time(value: str) -> dict:
    """A v2 TM as a FHIR time (`datatypes.to_fhir_time`); other forms stay text."""
    time = dt.to_fhir_time(value)
    return {"valueTime": time} if time else {"valueString": dt.present(value)}


def is_encapsulated(obx: Segment) -> bool:
    """Whether the OBX carries a document (ED), which is a report's form, not a value."""
    return dt.present(obx.value(2)).upper() == "ED"


def presented_form(obx: Segment) -> dict | None:
    """An ED OBX-5 as an Attachment of its MIME type with its data as canonical Base64 (see
    `v2_documents.encapsulated_data`); None when it is empty. Data that is not valid in its
    declared encoding (ED.4: Base64, Hex or A) fails naming OBX-5."""
    rep = dt.first_rep(obx, 5)
    found = encapsulated_data(rep, "OBX-5") if rep is not None else None
    if found is None:
        return None
    data, mime = found
    return {"contentType": mime, "data": base64.b64encode(data).decode("ascii")}


# ---- reference range, flags, status --------------------------------------------------------

_NUMBER = r"([+-]?(?:\d+\.?\d*|\.\d+))"
_RANGE = re.compile(rf"\s*{_NUMBER}\s*-\s*{_NUMBER}\s*\Z")
_BOUND = re.compile(rf"\s*(<=|>=|<|>)\s*{_NUMBER}\s*\Z")


def reference_range(obx: Segment, unit: Unit) -> list[dict]:
    """OBX-7 as a reference range: text always (it is exactly what the lab printed), and
    low/high when it reads as "3.5-5.0", "<200" or ">=10" ("<200" gives high 200: FHIR
    ranges are inclusive, the text keeps the strictness)."""
    text = dt.present(obx.value(7))
    if not text:
        return []
    bounds: dict = {}
    m = _RANGE.match(text)
    if m:
        bounds = {"low": _bound(m.group(1), unit), "high": _bound(m.group(2), unit)}
    elif (m := _BOUND.match(text)) is not None:
        side = "high" if m.group(1).startswith("<") else "low"
        bounds = {side: _bound(m.group(2), unit)}
    return [compact({**bounds, "text": text})]


def _bound(number: str, unit: Unit) -> dict:
    value = dt.parse_nm(number)
    return unit.quantity(value) if value is not None else {}


def interpretations(obx: Segment) -> list[dict]:
    """OBX-8 abnormal flags (repeating from v2.5) through table 0078; a flag outside it is
    kept as text."""
    found: list[dict] = []
    for rep in obx.repetitions(8):
        code = dt.present(rep.value(1))
        if not code:
            continue
        display = INTERPRETATION.get(code.upper())
        if display is None:
            found.append({"text": dt.present(rep.value(2)) or code})
            continue
        coding = {"system": V3_INTERPRETATION, "code": code.upper(), "display": display}
        found.append({"coding": [coding]})
    return found


def observation_status(obx: Segment, report_status: str) -> str:
    """OBX-11 through table 0085; when it is empty or unknown, the report's status if that
    is also an observation status (final, corrected, ...), else "unknown"."""
    status = OBSERVATION_STATUS.get(dt.present(obx.value(11)).upper())
    if status:
        return status
    return report_status if report_status in _OBSERVATION_STATUSES else "unknown"


def report_status(obr: Segment) -> str:
    """OBR-25 through table 0123; "unknown" when empty or outside the table (required)."""
    return REPORT_STATUS.get(dt.present(obr.value(25)).upper(), "unknown")


def observation_category(section: str) -> list[dict]:
    """Observation.category laboratory for lab sections (or none sent); else nothing."""
    code = dt.present(section).upper()
    if code and code not in tables.LAB_SECTIONS:
        return []
    coding = {"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
    return [{"coding": [coding]}]


# ---- resources -----------------------------------------------------------------------------


class ResultContext(NamedTuple):
    """What every resource of one order group shares."""

    facility: str
    offset: str | None
    patient_id: str
    report_key: dict  # the report's identifier key (see `keyed`)
    section: str  # OBR-24
    report_status: str
    effective: str | None  # OBR-7, for OBX without OBX-14
    issued: str | None  # OBR-22 as an instant


def observation(
    obxs: list[Segment], notes: list[Segment], key: str, ctx: ResultContext,
    specimen_id: str | None,
) -> dict:
    """One Observation from an OBX (or consecutive text OBX lines of one test, joined):
    code OBX-3, value OBX-5, unit OBX-6, range OBX-7, flags OBX-8, status OBX-11,
    effective OBX-14 (else OBR-7), method OBX-17, performer OBX-16/OBX-23, notes NTE."""
    obx = obxs[0]
    code = first_concept(obx, 3, ctx.facility)
    if code is None:
        raise MappingError("is empty, so the result has no test code", field="OBX-3")
    oc = ObxContext(ctx.facility, ctx.offset)
    value = observation_value(obx, oc)
    if len(obxs) > 1:
        lines = [observation_value(o, oc).get("valueString", "") for o in obxs]
        value = {"valueString": "\n".join(lines)}
    unit = obx_unit(obx)
    resource = {
        "resourceType": "Observation",
        "id": resource_id("Observation", ctx.facility, keyed(ctx.report_key, "OBX", key)),
        "identifier": _instance_identifier(obx, ctx.facility),
        "status": observation_status(obx, ctx.report_status),
        "category": observation_category(ctx.section),
        "code": code,
        "subject": {"reference": f"urn:uuid:{ctx.patient_id}"},
        "effectiveDateTime": dt.to_fhir_datetime(obx.value(14), "OBX-14", ctx.offset)
        or ctx.effective,
        "issued": ctx.issued,
        "performer": _performers(obx),
        **value,
        "interpretation": interpretations(obx),
        "note": annotations(notes),
        "method": first_concept(obx, 17, ctx.facility),
        "specimen": {"reference": f"urn:uuid:{specimen_id}"} if specimen_id else None,
        "referenceRange": reference_range(obx, unit),
    }
    return compact(resource)


def _instance_identifier(obx: Segment, facility: str) -> list[dict]:
    """OBX-21 observation instance identifier (v2.6+), an EI."""
    identifier = dt.ei_to_identifier(dt.first_rep(obx, 21), facility)
    return [identifier] if identifier else []


def _performers(obx: Segment) -> list[dict]:
    """OBX-16 responsible observer, then OBX-23 performing organization, by display."""
    found = [dt.xcn_reference(dt.first_rep(obx, 16))]
    org = dt.present(obx.value(23, 1))
    found.append({"display": org} if org else None)
    return [p for p in found if p]


def diagnostic_report(
    obr: Segment, identifiers: list[dict], ctx: ResultContext, *, placer: dict | None,
    results: list[str], specimens: list[str], notes: list[Segment], forms: list[dict],
) -> dict:
    """The DiagnosticReport of one OBR: identifiers (placer/filler), status OBR-25,
    category OBR-24 (LAB by default), code OBR-4, effective OBR-7, issued OBR-22,
    resultsInterpreter OBR-32, its results, specimens, notes and presented forms."""
    code = first_concept(obr, 4, ctx.facility)
    if code is None:
        raise MappingError("is empty, so the report has no test code", field="OBR-4")
    report = {
        "resourceType": "DiagnosticReport",
        "id": resource_id("DiagnosticReport", ctx.facility, ctx.report_key),
        "extension": [{"url": REPORT_NOTE_EXTENSION, "valueAnnotation": a}
                      for a in annotations(notes)],
        "identifier": identifiers,
        "basedOn": [{"type": "ServiceRequest", "identifier": placer}] if placer else [],
        "status": ctx.report_status,
        "category": section_categories(ctx.section),
        "code": code,
        "subject": {"reference": f"urn:uuid:{ctx.patient_id}"},
        "effectiveDateTime": ctx.effective,
        "issued": ctx.issued,
        "resultsInterpreter": _interpreters(obr),
        "specimen": [{"reference": f"urn:uuid:{s}"} for s in specimens],
        "result": [{"reference": f"urn:uuid:{r}"} for r in results],
        "presentedForm": forms,
    }
    return compact(report)


def _interpreters(obr: Segment) -> list[dict]:
    """OBR-32 principal result interpreter (NDL: its name is in the subcomponents of the
    first component), by display."""
    names = []
    for rep in obr.repetitions(32):
        parts = [dt.present(rep.value(1, s)) for s in (6, 3, 4, 2, 5)]
        name = " ".join(p for p in parts if p)
        degree = dt.present(rep.value(1, 7))
        if name:
            names.append({"display": f"{name}, {degree}" if degree else name})
    return names


def report_times(obr: Segment, offset: str | None) -> tuple[str | None, str | None]:
    """OBR-7 (effective) and OBR-22 (issued, only when it can be an instant)."""
    return (
        dt.to_fhir_datetime(obr.value(7), "OBR-7", offset),
        dt.to_fhir_instant(obr.value(22), "OBR-22", offset),
    )
