"""HL7v2 pharmacy orders as FHIR: the ORC/RXE order groups of an RDE, and the code
tables and building blocks a MedicationRequest needs (status from order control and
order status, dose, timing, route, site, dispense request, substitution).

Choices, written once:
- Order status: ORC-1 (table 0119) says what happened to the order; cancel, discontinue
  and hold codes decide the status on their own. For any other code ORC-5 order status
  (table 0038), when valued, says where the order stands (CM completed, ER entered in
  error, ...). The v2-to-FHIR guide maps a CA/DC *request* to active (not yet done); an
  RDE is the pharmacy's own statement of the order, so here its cancel is cancelled and
  its discontinue stopped. An ORC-1 outside the table fails rather than being guessed.
- Doses come from RXE-3/4/5 (a range when minimum and maximum differ), not from TQ1-2,
  with the digits sent (`datatypes.to_fhir_decimal`).
  Units are UCUM when the sender says so (CWE.3 UCUM or ANS+) or the code is a common
  UCUM unit sent in capitals (MG, ML, MCG → ug, MEQ → meq, UNITS → U, ...); otherwise the
  unit is kept as text only, because a wrong UCUM code is worse than none.
- Timing: the repeat pattern (table 0335) is kept as Timing.code text, and the patterns
  with a clear meaning (Q<n>H/D/W..., QD, BID, TID, QID, <n>ID, QOD, QAM, QPM, QHS, ONCE)
  also become repeat frequency/period/when; PRN (alone, or before or after a pattern)
  is asNeededBoolean. Start and end are boundsPeriod; without them a service duration
  is boundsDuration. TQ1 segments are read (one Dosage each); a v2.3 sender's RXE-1
  (or ORC-7) quantity/timing is read the same way when there is no TQ1.
- Route (table 0162) is coded in v2-0162, plus the v3 RouteOfAdministration code where
  the v2-to-FHIR guide gives one (PO, IV, IM, SC, ID, TD); site (table 0163) in v2-0163.
  A code sent without a coding system is read in the table when the table lists it, else
  it is the sender's own; codes sent with another coding system keep it (`v2_codes`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact
from engine.maplib.v2_codes import Bound, first_concept

# ---- order groups -----------------------------------------------------------------------


class OrderGroup(NamedTuple):
    """One ORC and the segments of its order, with the names errors should use."""

    orc: Segment
    orc_name: str  # "ORC" or "ORC[2]" when the message has several
    rxe: Segment
    rxe_name: str
    timings: list[tuple[Segment, str]]  # TQ1 segments and their names
    routes: list[Segment]  # RXR
    notes: list[Segment]  # NTE


def order_groups(message: Hl7Message) -> list[OrderGroup]:
    """The ORC/RXE groups of an RDE, in order. TQ1 and RXR after the RXE (the encoded
    order) win over those after ORC/RXO (the order as placed); NTE of the order, the RXO
    or the RXE are notes (an OBX's NTE is about that OBX). Fails naming ORC-2 or RXE when
    a group cannot be read, and on a second RXE in one group, which would be lost."""
    totals = {name: len(message.all(name)) for name in ("ORC", "RXE", "TQ1")}
    seen: dict[str, int] = {}
    raw_groups: list[dict] = []
    annotated = ""  # the segment an NTE at this point would be about
    for seg in message.segments:
        seen[seg.name] = seen.get(seg.name, 0) + 1
        name = _indexed(seg.name, seen[seg.name], totals.get(seg.name, 1))
        if seg.name != "NTE":
            annotated = seg.name
        if seg.name == "ORC":
            raw_groups.append({"orc": (seg, name), "rxe": None, "before": [], "after": []})
        elif not raw_groups:
            continue
        elif seg.name == "RXE":
            if raw_groups[-1]["rxe"] is not None:
                raise MappingError(
                    "follows another RXE in one order; each order needs its own ORC",
                    field=name,
                )
            raw_groups[-1]["rxe"] = (seg, name)
        elif seg.name in ("TQ1", "RXR") or (seg.name == "NTE" and annotated in _NOTED):
            group = raw_groups[-1]
            group["after" if group["rxe"] else "before"].append((seg, name))
    if not raw_groups:
        if message.segment("RXE") is not None:
            raise MappingError(
                "the ORC segment is missing, so the order has no number", field="ORC-2"
            )
        raise MappingError("the message holds no ORC/RXE order", field="RXE")
    return [_group(g) for g in raw_groups]


# Segments whose NTE are notes on the order.
_NOTED = frozenset({"ORC", "RXO", "RXE", "RXR", "RXC", "TQ1", "TQ2"})


def _indexed(name: str, index: int, total: int) -> str:
    return f"{name}[{index}]" if total > 1 else name


def _group(raw: dict) -> OrderGroup:
    orc, orc_name = raw["orc"]
    if raw["rxe"] is None:
        raise MappingError(f"is missing from the order in {orc_name}", field="RXE")
    rxe, rxe_name = raw["rxe"]

    def pick(kind: str) -> list[tuple[Segment, str]]:
        after = [(s, n) for s, n in raw["after"] if s.name == kind]
        return after or [(s, n) for s, n in raw["before"] if s.name == kind]

    notes = [s for s, _ in raw["before"] + raw["after"] if s.name == "NTE"]
    return OrderGroup(orc, orc_name, rxe, rxe_name, pick("TQ1"), [s for s, _ in pick("RXR")], notes)


# ---- status -----------------------------------------------------------------------------

# Table 0119 order control -> MedicationRequest.status.
ORDER_CONTROL: dict[str, str] = {
    "NW": "active",  # new order
    "OK": "active",  # accepted
    "XO": "active",  # change order
    "XR": "active",  # changed as requested
    "XX": "active",  # changed, unsolicited
    "RP": "active",  # replace request: this group is the new order
    "RO": "active",  # replacement order
    "RQ": "active",  # replaced as requested
    "RU": "active",  # replaced, unsolicited
    "RL": "active",  # release previous hold
    "OE": "active",  # released
    "OR": "active",  # released as requested
    "RF": "active",  # refill
    "AF": "active",  # refill approved
    "FU": "active",  # refilled, unsolicited
    "SC": "unknown",  # status changed: ORC-5 says to what
    "CA": "cancelled",
    "CR": "cancelled",
    "OC": "cancelled",
    "DC": "stopped",
    "DR": "stopped",
    "OD": "stopped",
    "HD": "on-hold",
    "HR": "on-hold",
    "OH": "on-hold",
}
# Order control codes whose status stands whatever ORC-5 says.
DECISIVE_STATUS = frozenset({"cancelled", "stopped", "on-hold"})

# Table 0038 order status -> MedicationRequest.status.
ORDER_STATUS: dict[str, str] = {
    "A": "active",  # some, not all, results available
    "IP": "active",  # in process
    "SC": "active",  # scheduled
    "CM": "completed",
    "CA": "cancelled",
    "DC": "stopped",
    "RP": "stopped",  # replaced by another order
    "HD": "on-hold",
    "ER": "entered-in-error",
}


def order_status(orc: Segment, orc_name: str) -> str:
    """MedicationRequest.status from ORC-1, refined by ORC-5 unless ORC-1 is decisive."""
    control = dt.present(orc.value(1)).upper()
    if control not in ORDER_CONTROL:
        raise MappingError(
            "is not an order control code this mapping maps to a status "
            "(NW, XO, RP, RL, SC, CA, DC, HD and their replies)",
            field=f"{orc_name}-1",
        )
    status = ORDER_CONTROL[control]
    if status in DECISIVE_STATUS:
        return status
    return ORDER_STATUS.get(dt.present(orc.value(5)).upper(), status)


# ---- quantities -------------------------------------------------------------------------

# Units commonly sent in capitals or vendor spellings -> their UCUM code.
UCUM_UNITS: dict[str, str] = {
    "MG": "mg",
    "G": "g",
    "GM": "g",
    "KG": "kg",
    "MCG": "ug",
    "UG": "ug",
    "NG": "ng",
    "ML": "mL",
    "L": "L",
    "MEQ": "meq",
    "MMOL": "mmol",
    "U": "U",
    "UNIT": "U",
    "UNITS": "U",
    "IU": "[iU]",
    "[IU]": "[iU]",
    "%": "%",
    "MG/KG": "mg/kg",
    "MCG/KG": "ug/kg",
    "ML/H": "mL/h",
    "ML/HR": "mL/h",
    "MG/H": "mg/h",
    "MG/HR": "mg/h",
    "U/H": "U/h",
    "UNITS/H": "U/h",
    "UNITS/HR": "U/h",
    "MCG/MIN": "ug/min",
    "MCG/KG/MIN": "ug/kg/min",
}
_UCUM_SYSTEM_NAMES = frozenset({"UCUM", "ANS+"})


def quantity(value: Decimal | None, unit: Repetition | None) -> dict | None:
    """A Quantity of `value` in a CWE unit; UCUM-coded when the unit is known UCUM."""
    if value is None:
        return None
    result: dict = {"value": value}
    if unit is None:
        return result
    code, display = dt.present(unit.value(1)), dt.present(unit.value(2))
    system_name = dt.present(unit.value(3)).upper()
    ucum = code if system_name in _UCUM_SYSTEM_NAMES else UCUM_UNITS.get(code.upper())
    if display or code:
        result["unit"] = display or code
    if ucum:
        result.update({"system": tables.UCUM, "code": ucum})
    return result


def quantity_of(segment: Segment, value_field: int, unit_field: int, name: str) -> dict | None:
    """The NM at `value_field` in the CWE units at `unit_field`, as a Quantity."""
    value = dt.to_fhir_decimal(segment.value(value_field), f"{name}-{value_field}")
    return quantity(value, dt.first_rep(segment, unit_field))


def whole_number(value: str, field: str) -> int | None:
    """A v2 NM that must be a count (refills, occurrences): a non-negative integer."""
    number = dt.to_fhir_decimal(value, field)
    if number is None:
        return None
    if number.as_tuple().exponent != 0 or number < 0:
        return tolerate(MappingError("is not a whole number of zero or more", field=field))
    return int(number)


def dose_and_rate(rxe: Segment, name: str) -> list[dict]:
    """RXE-3/4 give amount (a range when min and max differ) in RXE-5 units, and
    RXE-23/24 give rate, as Dosage.doseAndRate."""
    units = dt.first_rep(rxe, 5)
    low = dt.to_fhir_decimal(rxe.value(3), f"{name}-3")
    high = dt.to_fhir_decimal(rxe.value(4), f"{name}-4")
    entry: dict = {}
    if low is not None and high is not None and high != low:
        entry["doseRange"] = {"low": quantity(low, units), "high": quantity(high, units)}
    elif low is not None or high is not None:
        entry["doseQuantity"] = quantity(low if low is not None else high, units)
    rate = dt.to_fhir_decimal(rxe.value(23), f"{name}-23")
    if rate is not None:
        entry["rateQuantity"] = quantity(rate, dt.first_rep(rxe, 24))
    return [entry] if entry else []


# ---- timing -----------------------------------------------------------------------------

_EVERY = re.compile(r"Q(\d+)([SMHDWL])\Z")
_TIMES_A_DAY = re.compile(r"(\d+)ID\Z")
# Table 0335 patterns with a fixed meaning: frequency, period, period unit, event.
_FIXED_PATTERNS: dict[str, tuple[int, int, str, str | None]] = {
    "QD": (1, 1, "d", None),
    "BID": (2, 1, "d", None),
    "TID": (3, 1, "d", None),
    "QID": (4, 1, "d", None),
    "QOD": (1, 2, "d", None),
    "QAM": (1, 1, "d", "MORN"),
    "QPM": (1, 1, "d", "EVE"),
    "QHS": (1, 1, "d", "HS"),
}


def repeat_pattern(code: str) -> tuple[dict, bool]:
    """Timing.repeat elements for a table 0335 repeat pattern, and whether it is PRN.

    A pattern without a clear meaning gives no elements (its text is kept by the caller).
    """
    code = dt.present(code).upper().replace(" ", "")
    as_needed = False
    if code.startswith("PRN"):
        as_needed, code = True, code[3:]
    elif code.endswith("PRN"):
        as_needed, code = True, code[:-3]
    if code == "ONCE":
        return {"count": 1}, as_needed
    fixed = _FIXED_PATTERNS.get(code)
    if fixed:
        frequency, period, unit, when = fixed
        repeat: dict = {"frequency": frequency, "period": period, "periodUnit": unit}
        if when:
            repeat["when"] = [when]
        return repeat, as_needed
    every = _EVERY.match(code)
    if every:
        unit = tables.TIME_UNITS[every[2]]
        return {"frequency": 1, "period": int(every[1]), "periodUnit": unit}, as_needed
    times = _TIMES_A_DAY.match(code)
    if times:
        return {"frequency": int(times[1]), "period": 1, "periodUnit": "d"}, as_needed
    return {}, as_needed


def _time_quantity(value: Decimal | None, unit_code: str) -> tuple[Decimal, str] | None:
    unit = tables.TIME_UNITS.get(dt.present(unit_code).upper())
    return (value, unit) if value is not None and unit else None


def _duration(value: Decimal | int, unit: str) -> dict:
    return {"value": value, "unit": unit, "system": tables.UCUM, "code": unit}


def time_of_day(value: str, field: str) -> str | None:
    """An explicit time (TQ1-4, TQ.2) as a FHIR time (`datatypes.to_fhir_time`; 2400 is
    midnight); None when empty, and a failure naming `field` when it is not a time."""
    if not dt.present(value):
        return None
    time = dt.to_fhir_time(value)
    if time is None:
        return tolerate(MappingError("is not a time of day (expected HHMM[SS])", field=field))
    return time


class Schedule(NamedTuple):
    """What one TQ1 (or TQ) says about when to give a dose."""

    timing: dict | None
    as_needed: bool = False
    priority: str | None = None
    text: str | None = None
    condition: str | None = None
    start: str | None = None
    end: str | None = None


def _schedule(
    pattern: tuple[str, str],
    times: list[str],
    bounds: tuple[str | None, str | None, dict | None],
    extra: dict,
    priority_code: str,
    texts: tuple[str, str],
) -> Schedule:
    """A Schedule from the parts TQ1 and TQ share."""
    code, display = (dt.present(p) for p in pattern)
    repeat, as_needed = repeat_pattern(code)
    start, end, duration = bounds
    if start or end:
        repeat["boundsPeriod"] = compact({"start": start, "end": end})
    elif duration:
        repeat["boundsDuration"] = duration
    if times:
        repeat.pop("when", None)  # FHIR allows timeOfDay or when, not both
        repeat["timeOfDay"] = times
    repeat.update(extra)
    priority_code = dt.present(priority_code).upper()
    pattern_text = {"text": display or code} if code else None
    timing = compact({"repeat": compact(repeat), "code": pattern_text})
    text, condition = (dt.present(t) or None for t in texts)
    return Schedule(
        timing or None,
        as_needed or priority_code == "PRN",
        tables.PRIORITY.get(priority_code),  # "PRN" is as needed, not urgency
        text,
        condition,
        start,
        end,
    )


def schedule_from_tq1(tq1: Segment, name: str, offset: str | None) -> Schedule:
    """TQ1: repeat pattern (3), explicit times (4), service duration (6), start and end
    (7, 8), priority (9), condition (10), text (11), occurrence duration (13) and total
    occurrences (14)."""
    times = [t for t in (time_of_day(r.value(1), f"{name}-4") for r in tq1.repetitions(4)) if t]
    service = _time_quantity(dt.to_fhir_decimal(tq1.value(6, 1), f"{name}-6"), tq1.value(6, 2))
    occurrence = _time_quantity(
        dt.to_fhir_decimal(tq1.value(13, 1), f"{name}-13"), tq1.value(13, 2)
    )
    extra = compact(
        {
            "count": whole_number(tq1.value(14), f"{name}-14"),
            "duration": occurrence[0] if occurrence else None,
            "durationUnit": occurrence[1] if occurrence else None,
        }
    )
    bounds = (
        dt.to_fhir_datetime(tq1.value(7), f"{name}-7", offset),
        dt.to_fhir_datetime(tq1.value(8), f"{name}-8", offset),
        _duration(*service) if service else None,
    )
    return _schedule(
        (tq1.value(3, 1, 1), tq1.value(3, 1, 2)),
        times,
        bounds,
        extra,
        tq1.value(9),
        (tq1.value(11), tq1.value(10)),
    )


def schedule_from_tq(rep: Repetition, field: str, offset: str | None) -> Schedule:
    """A v2.3 TQ (RXE-1 or ORC-7): interval (2: pattern & explicit times), duration
    (3: X<n> times, D<n> days, ...), start and end (4, 5), priority (6), condition (7)
    and text (8)."""
    times = [t for t in (time_of_day(v, f"{field}.2") for v in rep.value(2, 2).split(",")) if t]
    extra: dict = {}
    duration = None
    span = dt.tq_duration(rep.value(3))
    if span and span[0] == "X":
        extra["count"] = span[1]
    elif span:
        duration = _duration(span[1], span[0])
    bounds = (
        dt.to_fhir_datetime(rep.value(4, 1), f"{field}.4", offset),
        dt.to_fhir_datetime(rep.value(5, 1), f"{field}.5", offset),
        duration,
    )
    return _schedule(
        (rep.value(2, 1), ""), times, bounds, extra, rep.value(6), (rep.value(8), rep.value(7))
    )


def schedules(group: OrderGroup, offset: str | None) -> list[Schedule]:
    """Every TQ1 of the order; else RXE-1, else ORC-7 (the v2.3 quantity/timing)."""
    if group.timings:
        return [schedule_from_tq1(seg, name, offset) for seg, name in group.timings]
    for segment, name, field in ((group.rxe, group.rxe_name, 1), (group.orc, group.orc_name, 7)):
        rep = dt.first_rep(segment, field)
        if rep is not None and any(dt.present(c) for c in rep.components()):
            return [schedule_from_tq(rep, f"{name}-{field}", offset)]
    return []


# ---- route, site, method ----------------------------------------------------------------

ROUTE = Bound(tables.V2_0162, tables.ROUTE_OF_ADMINISTRATION)
SITE = Bound(tables.V2_0163, tables.ADMINISTRATIVE_SITE)


def route(rxr: Segment, facility: str) -> dict | None:
    """RXR-1 route through table 0162, plus its v3 RouteOfAdministration equivalent."""
    concept = first_concept(rxr, 1, facility, ROUTE)
    primary = (concept or {}).get("coding", [{}])[0]
    equivalent = tables.ROUTE_V3.get(primary.get("code", ""))
    if equivalent is not None and primary.get("system") == ROUTE.system:
        concept["coding"].insert(1, equivalent.as_fhir())
    return concept


def site(rxr: Segment, facility: str) -> dict | None:
    """RXR-2 administration site through table 0163 (one sent as HL70550 keeps v2-0550)."""
    return first_concept(rxr, 2, facility, SITE)


# ---- substitution -----------------------------------------------------------------------

V3_SUBSTITUTION = "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution"
# Table 0167 substitution status -> the v3 substitution code for what the order allows
# (N none, G generic, TE therapeutic alternative); the v2 code travels beside it.
SUBSTITUTION: dict[str, tuple[str, str, str]] = {
    "N": ("N", "none", "No substitute was dispensed"),
    "G": ("G", "generic composition", "A generic substitution was dispensed"),
    "T": ("TE", "therapeutic alternative", "A therapeutic substitution was dispensed"),
    "1": ("N", "none", "Substitution not allowed by prescriber"),
}


def substitution(rxe: Segment) -> dict | None:
    """RXE-9 (table 0167) as MedicationRequest.substitution; other codes are left out."""
    code = dt.present(rxe.value(9)).upper()
    if code not in SUBSTITUTION:
        return None
    v3_code, v3_display, v2_display = SUBSTITUTION[code]
    codings = [
        {"system": V3_SUBSTITUTION, "code": v3_code, "display": v3_display},
        {"system": tables.V2_0167, "code": code, "display": v2_display},
    ]
    return {"allowedCodeableConcept": {"coding": codings}}
