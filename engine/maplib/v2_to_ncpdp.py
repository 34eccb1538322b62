"""HL7v2 pharmacy orders as NCPDP SCRIPT: the parts of a NewRx read from an RDE (PID as
the patient, the ordering provider's XCN as the prescriber, RXE-40/41 as the pharmacy,
RXE-2 as the drug, RXE-10/11 as the quantity, days supply and Sig), written as the
nested data `engine.formats.ncpdp.build.message` serialises.

Choices, written once (the mapping's docstring lists what a receiver notices):
- Identifiers in an XCN: the NPI is the repetition whose assigning authority (XCN.9
  namespace or universal id 2.16.840.1.113883.4.6) or identifier type (XCN.13) says
  NPI; the DEA number the one that says DEA (OID 2.16.840.1.113883.4.814); RXE-13 is
  the ordering provider's DEA number by definition, whatever its authority says.
- Units: RXE-11 sent as NCI codes (coding system NCI/NCIT, or a code shaped C12345) are
  kept; the common EHR spellings of tablet, capsule, millilitre, gram and each get their
  NCI code; anything else is C38046 Unspecified, with the unit as sent kept in the
  NewRx Note (a pharmacist reads it; nothing is guessed).
- Days supply: SCRIPT needs it and RXE (v2.5.1) has no field for it; it is the TQ1-6
  (or TQ.3) service duration in days, else the days from TQ1-7 start to TQ1-8 end, else
  dispense amount / (dose x doses a day) when the dose (RXE-3, RXE-5) is in the
  dispense unit (RXE-11) and the pattern says how often; only a whole number is written.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir_to_ncpdp import postal_code
from engine.maplib.ncpdp_fhir import NCI_UNIT_WORDS
from engine.maplib.v2_codes import coding_system
from engine.maplib.v2_pharmacy import OrderGroup, Schedule

NPI_OID = "2.16.840.1.113883.4.6"
DEA_OID = "2.16.840.1.113883.4.814"
UNSPECIFIED = "C38046"
# EHR spellings of dispense units -> NCI Thesaurus codes SCRIPT quantities carry.
NCI_UNITS = NCI_UNIT_WORDS
_NCI_CODE = re.compile(r"C\d{4,6}\Z")
# Table 0477 controlled substance schedule -> the NCI code of the DEA schedule.
DEA_SCHEDULES = {"I": "C48672", "II": "C48675", "III": "C48676", "IV": "C48677",
                 "V": "C48679"}
# Table 0001 administrative sex -> SCRIPT Gender (M, F, U).
GENDERS = {"M": "M", "F": "F"}
_DIGITS = re.compile(r"\D")
_NPI = re.compile(r"\d{10}\Z")
_NCPDP_ID = re.compile(r"\d{7}\Z")
_PHARMACY_ID_SYSTEMS = {"NCPDP": "NCPDPID", "NCPDPID": "NCPDPID", "NABP": "NCPDPID",
                        "NPI": "NPI"}
_DAYS = {"d": Decimal(1), "wk": Decimal(7)}
_PERIOD_DAYS = {"h": Decimal(1) / 24, **_DAYS}


def _get(rep: Repetition | None, component: int, subcomponent: int = 1) -> str:
    return dt.present(rep.value(component, subcomponent)) if rep is not None else ""


# ---- people -----------------------------------------------------------------------------


def name(rep: Repetition | None) -> dict:
    """An XPN or XCN name (family at .1/.2, given after it) as a SCRIPT Name."""
    return {"LastName": _get(rep, 1), "FirstName": _get(rep, 2),
            "MiddleName": _get(rep, 3), "Suffix": _get(rep, 4), "Prefix": _get(rep, 5)}


def xcn_name(rep: Repetition) -> dict:
    """An XCN's name (XCN.2 family, .3 given, .4 middle, .5 suffix, .6 prefix)."""
    return {"LastName": _get(rep, 2), "FirstName": _get(rep, 3),
            "MiddleName": _get(rep, 4), "Suffix": _get(rep, 5), "Prefix": _get(rep, 6)}


def address(rep: Repetition | None) -> dict:
    """An XAD as a SCRIPT Address (the US country code when the sender leaves it out
    and the address has a state)."""
    if rep is None or not any(_get(rep, i) for i in (1, 3, 4, 5)):
        return {}
    country = _get(rep, 6).upper()
    country = {"USA": "US", "": "US" if _get(rep, 4) else ""}.get(country, country)
    return {"AddressLine1": _get(rep, 1), "AddressLine2": _get(rep, 2),
            "City": _get(rep, 3), "StateProvince": _get(rep, 4),
            "PostalCode": postal_code(_get(rep, 5)), "CountryCode": country}


def phone(reps: list[Repetition]) -> dict:
    """The first XTN that is a telephone, as CommunicationNumbers with the digits only
    (v2.5 XTN.6/7 parts or v2.3 free text in XTN.1)."""
    for rep in reps:
        if _get(rep, 2).upper() == "NET" or _get(rep, 3).upper() in ("INTERNET", "X.400"):
            continue
        number = _get(rep, 6) + _get(rep, 7) if _get(rep, 7) else _get(rep, 1)
        digits = _DIGITS.sub("", number.split("X")[0].split("x")[0])
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) == 10:
            return {"PrimaryTelephone": {"Number": digits}}
    return {}


def medical_record_number(pid: Segment) -> str:
    """PID-3's medical record number (type MR), else its first id."""
    reps = [r for r in pid.repetitions(3) if _get(r, 1)]
    chosen = next((r for r in reps if _get(r, 5).upper() == "MR"), reps[0] if reps else None)
    return _get(chosen, 1)


def gender(pid: Segment) -> str:
    """PID-8 as M or F; anything else, or nothing, is U (unknown), which SCRIPT allows."""
    return GENDERS.get(dt.present(pid.value(8)).upper(), "U")


def birth_date(pid: Segment) -> str:
    """PID-7 as YYYY-MM-DD; fails naming PID-7 when empty or not a whole date (a NewRx
    needs the patient's date of birth to find the right patient)."""
    value = dt.to_fhir_date(pid.value(7), "PID-7")
    if value is None or len(value) != 10:
        raise MappingError("is empty or not a whole date: a NewRx needs the patient's "
                           "date of birth", field="PID-7")
    return value


def _says(rep: Repetition, namespace: str, oid: str) -> bool:
    return (_get(rep, 9, 1).upper() == namespace or _get(rep, 9, 2) == oid
            or _get(rep, 13).upper() == namespace)


def npi_of(reps: list[Repetition]) -> str:
    """The id of the XCN repetition whose authority or type says NPI."""
    return next((_get(r, 1) for r in reps if _get(r, 1) and _says(r, "NPI", NPI_OID)), "")


def dea_of(reps: list[Repetition], rxe13: list[Repetition]) -> str:
    """RXE-13's id, else the XCN repetition whose authority or type says DEA."""
    found = next((_get(r, 1) for r in rxe13 if _get(r, 1)), "")
    return found or next((_get(r, 1) for r in reps if _get(r, 1) and _says(r, "DEA", DEA_OID)),
                         "")


def check_npi(npi: str, field: str) -> str:
    if not npi:
        raise MappingError("names no NPI (an XCN whose assigning authority or identifier "
                           "type is NPI): a NewRx needs the prescriber's NPI", field=field)
    if not _NPI.match(npi):
        raise MappingError("holds an NPI that is not 10 digits", field=field)
    return npi


# ---- the pharmacy -----------------------------------------------------------------------


def pharmacy_ids(rxe: Segment, field: str) -> dict[str, str]:
    """RXE-40 dispensing pharmacy's ids: CWE triplets whose coding system is NCPDP (or
    NCPDPID, NABP) or NPI; a code sent without one is an NCPDP id when it has 7 digits
    and an NPI when it has 10."""
    rep = dt.first_rep(rxe, 40)
    found: dict[str, str] = {}
    for first in (1, 4):
        code, system = _get(rep, first), _get(rep, first + 2).upper().replace(" ", "")
        kind = _PHARMACY_ID_SYSTEMS.get(system)
        if kind is None and not system:
            kind = "NCPDPID" if _NCPDP_ID.match(code) else "NPI" if _NPI.match(code) else None
        if code and kind and kind not in found:
            found[kind] = code
    if "NCPDPID" not in found:
        raise MappingError("names no pharmacy NCPDP id (a code whose coding system is "
                           "NCPDP): a NewRx is addressed to the pharmacy by it", field=field)
    return found


def pharmacy_name(rxe: Segment, field: str) -> str:
    rep = dt.first_rep(rxe, 40)
    text = _get(rep, 2) or _get(rep, 5) or _get(rep, 9)
    if not text:
        raise MappingError("has no pharmacy name (RXE-40.2)", field=field)
    return text


# ---- the drug ---------------------------------------------------------------------------


def drug_coded(rxe: Segment, facility: str, schedule: str) -> dict:
    """RXE-2's NDC as ProductCode (qualifier ND) and its RxNorm code as DrugDBCode
    (qualifier SCD: the HL7 field does not say the RxNorm term type; SCD, the clinical
    drug, is what EHRs prescribe by), with the DEA schedule."""
    rep = dt.first_rep(rxe, 2)
    product = db = None
    for first in (1, 4):
        code, system_name = _get(rep, first), _get(rep, first + 2)
        if not code or not system_name:
            continue
        system = coding_system(system_name, facility)
        if system == tables.NDC and product is None:
            product = {"Code": _DIGITS.sub("", code), "Qualifier": "ND"}
        elif system == tables.RXNORM and db is None:
            db = {"Code": code, "Qualifier": "SCD"}
    return {"ProductCode": product, "DrugDBCode": db,
            "DEASchedule": {"Code": schedule} if schedule else None}


def drug_description(rxe: Segment, field: str) -> str:
    rep = dt.first_rep(rxe, 2)
    text = _get(rep, 2) or _get(rep, 5) or _get(rep, 9)
    if not text:
        raise MappingError("has no drug name (RXE-2.2): a NewRx needs the drug's "
                           "description", field=field)
    return text


def dea_schedule(rxe: Segment, field: str) -> str:
    """RXE-35 (table 0477) as the NCI code of its DEA schedule; "" when not scheduled."""
    code = dt.present(rxe.value(35)).upper()
    if not code:
        return ""
    if code not in DEA_SCHEDULES:
        raise MappingError("is not a federal DEA schedule (I to V)", field=field)
    return DEA_SCHEDULES[code]


def unit_code(rep: Repetition | None) -> tuple[str, str]:
    """RXE-11 as (NCI code, the unit as sent when it had to be Unspecified)."""
    code, text, system = _get(rep, 1), _get(rep, 2), _get(rep, 3).upper()
    if code and (system in ("NCI", "NCIT") or _NCI_CODE.match(code)):
        return code, ""
    for word in (code, text):
        if word.upper() in NCI_UNITS:
            return NCI_UNITS[word.upper()], ""
    return UNSPECIFIED, text or code


def number(value: Decimal) -> str:
    """A decimal as SCRIPT writes it: digits as sent, no exponent."""
    return format(value, "f")


# ---- days supply ------------------------------------------------------------------------


def days_supply(group: OrderGroup, plans: list[Schedule], quantity: Decimal) -> int | None:
    """The days an order lasts (see the module docstring), or None when not computable."""
    service = _service_days(group)
    if service is not None:
        return service
    for plan in plans:
        bounds = (plan.timing or {}).get("repeat", {}).get("boundsPeriod", {})
        if len(bounds.get("start", "")) >= 10 and len(bounds.get("end", "")) >= 10:
            start = datetime.date.fromisoformat(bounds["start"][:10])
            end = datetime.date.fromisoformat(bounds["end"][:10])
            if end > start:
                return (end - start).days
    return _by_doses(group, plans, quantity)


def _service_days(group: OrderGroup) -> int | None:
    """TQ1-6 service duration (else a v2.3 TQ.3 in RXE-1 or ORC-7) in whole days."""
    for tq1, _ in group.timings:
        value = dt.parse_nm(tq1.value(6, 1))
        unit = tables.TIME_UNITS.get(dt.present(tq1.value(6, 2)).upper())
        if value is not None and unit in _DAYS:
            return _whole(value * _DAYS[unit])
    if group.timings:
        return None
    for segment, field in ((group.rxe, 1), (group.orc, 7)):
        rep = dt.first_rep(segment, field)
        span = dt.tq_duration(rep.value(3)) if rep is not None else None
        if span is not None and span[0] in _DAYS:
            return _whole(span[1] * _DAYS[span[0]])
    return None


def _by_doses(group: OrderGroup, plans: list[Schedule], quantity: Decimal) -> int | None:
    rxe = group.rxe
    dose = dt.parse_nm(rxe.value(3))
    give, dispense = unit_code(dt.first_rep(rxe, 5)), unit_code(dt.first_rep(rxe, 11))
    if not dose or dose <= 0 or not _get(dt.first_rep(rxe, 5), 1) or give != dispense:
        return None
    per_day = Decimal(0)
    for plan in plans:
        repeat = (plan.timing or {}).get("repeat", {})
        unit = repeat.get("periodUnit")
        if (plan.as_needed or "frequency" not in repeat or unit not in _PERIOD_DAYS
                or not repeat.get("period")):
            return None
        per_day += Decimal(repeat["frequency"]) / (Decimal(repeat["period"])
                                                   * _PERIOD_DAYS[unit])
    if not per_day:
        return None
    return _whole(quantity / (dose * per_day))


def _whole(value: Decimal) -> int | None:
    return int(value) if value >= 1 and value == value.to_integral_value() else None


# ---- dates ------------------------------------------------------------------------------


def sent_time(value: str) -> str:
    """MSH-7 as SentTime: in UTC with milliseconds when it carries a zone; as the
    sender's local time (no zone) when it does not. Fails naming MSH-7 without a time."""
    found = dt.parse_dtm(value, "MSH-7")
    if found is None or not found.hour:
        raise MappingError("has no time of day: a SCRIPT Header needs SentTime",
                           field="MSH-7")
    moment = datetime.datetime(int(found.year), int(found.month), int(found.day),
                               int(found.hour), int(found.minute or 0),
                               int(found.second or 0),
                               int((found.fraction or "0").ljust(6, "0")[:6]))
    if not found.offset:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    sign = -1 if found.offset[0] == "-" else 1
    zone = datetime.timezone(sign * datetime.timedelta(hours=int(found.offset[1:3]),
                                                       minutes=int(found.offset[3:5])))
    utc = moment.replace(tzinfo=zone).astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
