"""HL7 v2 data types turned into FHIR data types: pure functions mappings share.

One function per v2 data type (DTM, TM, NM, TQ, HD, CX, EI, XPN, XAD, XTN, XCN, PL), each
returning
the FHIR value or None when the v2 value carries nothing, so a mapping can omit the
element (FHIR forbids empty strings, arrays and objects). They take the tokenizer's decoded
values, never raw text, so escape sequences are already resolved.

Dates follow one policy, written here once so every mapping agrees:
- a malformed date/time raises MappingError naming the field (never its value): a wrong
  date of birth must reach an analyst, not vanish;
- a FHIR dateTime with a time of day must carry a time zone, and v2 often sends none. v2
  says such a time is in the sender's local zone, so the caller may pass the sender's
  offset (read from MSH-7 with `dtm_offset`); without one only the date is kept, which is
  true, where inventing "+00:00" would shift the time by hours. An instant (exact, with a
  zone) is such a dateTime that has a time of day: `to_fhir_instant`.

Numbers (NM) become `decimal.Decimal`, written with the digits sent: "5.10" stays 5.10,
because the digits a lab or pharmacy reports are its precision (mappings' output is
encoded with Decimals as JSON numbers, see `engine.mapping`).

Coded values (CE/CWE) need the coding-system vocabulary and live in `engine.maplib.v2_codes`.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import quote

from engine.errors import MappingError
from engine.formats.hl7v2 import tables
from engine.formats.hl7v2.message import Repetition, Segment
from engine.leniency import notice, tolerate

# YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]; each part only after the one before it.
_DTM = re.compile(
    r"(?P<year>\d{4})(?:(?P<month>\d{2})(?:(?P<day>\d{2})(?:(?P<hour>\d{2})"
    r"(?:(?P<minute>\d{2})(?:(?P<second>\d{2})(?:\.(?P<fraction>\d{1,4}))?)?)?)?)?)?"
    r"(?P<offset>[+-]\d{4})?\Z"
)
_OID = re.compile(r"[0-2](?:\.(?:0|[1-9]\d*))+\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
_NM = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)\Z")
_TM = re.compile(r"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,4})?)?)?(?:[+-]\d{4})?\Z")
_TQ_DURATION = re.compile(r"([SMHDWLX])(\d+)\Z")

CONDUIT_ID_PREFIX = "urn:conduit:id:"
US_SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


def present(value: str) -> str:
    """The value, or "" for the v2 explicit null `""`: in a FHIR PUT an absent element is
    already removed on the receiver, so "delete this" and "not sent" map the same way."""
    return "" if value == '""' else value.strip()


class Dtm(NamedTuple):
    """A validated v2 date/time split into its parts; absent parts are ""."""

    year: str
    month: str = ""
    day: str = ""
    hour: str = ""
    minute: str = ""
    second: str = ""
    fraction: str = ""
    offset: str = ""  # "+HHMM" / "-HHMM" as sent


def parse_dtm(value: str, field: str) -> Dtm | None:
    """Split a v2 DTM/TS into parts, checking every part's range; None when empty.

    Raises MappingError naming `field` for anything that is not a real date/time. Under a
    lenient conversion (`engine.leniency`) it warns instead: a value whose only fault is
    its time zone is read without the zone, anything else is left out.
    """
    value = present(value)
    if not value:
        return None
    dtm = _read_dtm(value)
    if isinstance(dtm, Dtm):
        return dtm
    fallback = None
    if dtm == _BAD_ZONE:
        fallback = _read_dtm(value[:-5])
        fallback = fallback if isinstance(fallback, Dtm) else None
    return tolerate(MappingError(dtm, field=field), fallback)


_BAD_ZONE = "holds a time zone offset that does not exist; read without it"
_NO_ZONE = ("has a time of day but no time zone, here or in MSH-7; FHIR needs one with a "
            "time, so only the date is kept")


def _read_dtm(value: str) -> Dtm | str:
    """The parts of a non-empty DTM, or why it is not one."""
    m = _DTM.match(value)
    if m is None:
        return "is not an HL7 date/time (expected YYYY[MM[DD[HHMM[SS[.SSSS]]]]][+/-ZZZZ])"
    dtm = Dtm._make([part or "" for part in m.groups()])  # groups in Dtm's field order
    if not _in_range(dtm):
        if dtm.offset and _in_range(dtm._replace(offset="")):
            return _BAD_ZONE
        return "holds a date/time that does not exist"
    return dtm


def _in_range(d: Dtm) -> bool:
    """Whether every present part is a real calendar/clock value."""
    year = int(d.year)
    if year == 0:
        return False
    if d.month and not 1 <= int(d.month) <= 12:
        return False
    if d.day and not 1 <= int(d.day) <= calendar.monthrange(year, int(d.month))[1]:
        return False
    if d.hour and int(d.hour) > 23:
        return False
    if d.minute and int(d.minute) > 59:
        return False
    if d.second and int(d.second) > 59:
        return False
    return not d.offset or _valid_offset(d.offset)


def _valid_offset(offset: str) -> bool:
    """FHIR accepts offsets from -13:59 to +14:00."""
    hours, minutes = int(offset[1:3]), int(offset[3:5])
    return minutes <= 59 and (hours <= 13 or (hours == 14 and minutes == 0))


@functools.lru_cache(maxsize=256)
def dtm_offset(value: str) -> str | None:
    """The time zone offset of a DTM ("+HHMM"), or None when it has none or is malformed.

    Used to read the sender's zone from MSH-7; it never raises, because a bad MSH-7 must
    not fail a message whose other dates carry their own zones. Cached: a v2-to-FHIR
    mapping asks for the same MSH-7's zone several times a message.
    """
    dtm = _read_dtm(present(value)) if present(value) else None
    return dtm.offset if isinstance(dtm, Dtm) and dtm.offset else None


def to_fhir_date(value: str, field: str) -> str | None:
    """A v2 DTM as a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD), dropping any time of day.

    A birth timestamp such as 198507141230 becomes 1985-07-14: Patient.birthDate is a date.
    """
    dtm = parse_dtm(value, field)
    if dtm is None:
        return None
    return _date_part(dtm)


def _date_part(d: Dtm) -> str:
    return "-".join(p for p in (d.year, d.month, d.day) if p)


def to_fhir_datetime(value: str, field: str, default_offset: str | None = None) -> str | None:
    """A v2 DTM as a FHIR dateTime, keeping as much precision as FHIR allows.

    Partial dates stay partial (2024, 2024-03). A time of day needs a zone: the value's
    own, else `default_offset` (the sender's, from MSH-7), else only the date is kept.
    Missing minutes or seconds read as 00 because FHIR requires them once there is a time;
    fractions of a second are kept.
    """
    dtm = parse_dtm(value, field)
    if dtm is None:
        return None
    offset = dtm.offset or default_offset or ""
    if not dtm.hour:
        return _date_part(dtm)
    if not offset or not _valid_offset(offset):
        notice(MappingError(_NO_ZONE, field=field))
        return _date_part(dtm)
    time = f"{dtm.hour}:{dtm.minute or '00'}:{dtm.second or '00'}"
    if dtm.fraction:
        time += f".{dtm.fraction}"
    return f"{_date_part(dtm)}T{time}{offset[:3]}:{offset[3:]}"


def to_fhir_instant(value: str, field: str, default_offset: str | None) -> str | None:
    """A v2 DTM as a FHIR instant, or None when it is empty or has no time of day and zone
    (its own, else `default_offset`): an instant is exact, so a date alone cannot be one.
    Raises MappingError naming `field` for a malformed date/time, as `to_fhir_datetime`."""
    when = to_fhir_datetime(value, field, default_offset)
    return when if when and "T" in when else None


def to_fhir_time(value: str) -> str | None:
    """A v2 TM (HH[MM[SS[.S]]][+/-ZZZZ], colons tolerated) as a FHIR time (hh:mm:ss), or
    None when it is empty or not a time of day. 2400 is midnight; the fraction and zone
    are dropped (a FHIR time has none)."""
    m = _TM.match(present(value).replace(":", ""))
    if m is None:
        return None
    hour, minute, second = int(m[1]), int(m[2] or 0), int(m[3] or 0)
    if hour == 24 and minute == second == 0:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def tq_duration(value: str) -> tuple[str, int] | None:
    """A TQ duration (TQ.3: S30, M15, H1, D2, W1, L1, or X3 times) as (UCUM unit of time,
    number), the unit "X" for a number of times; None when it is none of these."""
    m = _TQ_DURATION.match(present(value).upper())
    if m is None:
        return None
    return (m[1] if m[1] == "X" else tables.TIME_UNITS[m[1]]), int(m[2])


def parse_nm(value: str) -> Decimal | None:
    """A v2 NM as a Decimal with the digits sent ("5.10" keeps its zero; "+5", "05" and
    ".5" read as 5, 5 and 0.5); None when it is empty or not a number."""
    value = present(value)
    if not _NM.match(value):
        return None
    number = Decimal(value)
    return number.copy_abs() if number.is_zero() else number  # "-0" is 0


def to_fhir_decimal(value: str, field: str) -> Decimal | None:
    """A v2 NM as a FHIR decimal (see `parse_nm`); None when empty. Raises MappingError
    naming `field` for anything that is not a number: a dose that cannot be read must
    reach an analyst, not become zero."""
    if not present(value):
        return None
    number = parse_nm(value)
    if number is None:
        return tolerate(MappingError("is not a number", field=field))
    return number


def hd_system(namespace: str, universal_id: str = "", universal_id_type: str = "") -> str | None:
    """An Identifier.system URI for an HD (hierarchic designator) assigning authority.

    The universal id wins when it is globally meaningful: an ISO OID becomes urn:oid:...,
    a URI or UUID is used as is. Otherwise the local namespace id becomes
    urn:conduit:id:<namespace>, stable across messages, so the same authority always maps
    to the same system. None when the HD is empty.
    """
    namespace, uid, kind = present(namespace), present(universal_id), present(universal_id_type)
    kind = kind.upper()
    if uid:
        if uid.lower().startswith("urn:"):
            return uid
        if kind == "ISO" or _OID.match(uid):
            return f"urn:oid:{uid}"
        if kind == "UUID" or _UUID.match(uid):
            return f"urn:uuid:{uid.lower()}"
        if kind in ("URI", "URL") or _URI.match(uid):
            return uid
    local = namespace or uid
    if not local:
        return None
    return CONDUIT_ID_PREFIX + quote(local, safe="-._~")


def _get(rep: Repetition, component: int, subcomponent: int = 1) -> str:
    value = rep.value(component, subcomponent)  # present(), inlined: the hottest reader
    return "" if value == '""' else value.strip()


def first_rep(segment: Segment | None, field: int) -> Repetition | None:
    """The first repetition of a field, or None when the segment or field is empty."""
    if segment is None:
        return None
    reps = segment.repetitions(field)
    return reps[0] if reps else None


def cx_to_identifier(rep: Repetition, default_authority: str) -> dict | None:
    """A CX (extended composite id) as a FHIR Identifier; None without an id number.

    The system comes from CX.4 (see `hd_system`); a CX without one was assigned by the
    sender, so `default_authority` (the sending facility's namespace) stands in. A Social
    Security number without a global authority gets the well-known us-ssn system. CX.5
    becomes type.coding from v2-0203 when it is a v2-0203 code, else type.text; MR is the
    "usual" identifier.
    """
    value = _get(rep, 1)
    if not value:
        return None
    type_code = _get(rep, 5).upper()
    system = hd_system(_get(rep, 4, 1), _get(rep, 4, 2), _get(rep, 4, 3))
    if type_code == "SS" and (system is None or system.startswith(CONDUIT_ID_PREFIX)):
        system = US_SSN_SYSTEM
    identifier: dict = {}
    if type_code == "MR":
        identifier["use"] = "usual"
    if type_code in tables.IDENTIFIER_TYPE:
        coding = {
            "system": tables.V2_0203,
            "code": type_code,
            "display": tables.IDENTIFIER_TYPE[type_code],
        }
        identifier["type"] = {"coding": [coding]}
    elif type_code:
        identifier["type"] = {"text": type_code}
    identifier["system"] = system or hd_system(default_authority)
    identifier["value"] = value
    return {k: v for k, v in identifier.items() if v}


def ei_to_identifier(
    rep: Repetition | None, default_authority: str, kind: tables.Coding | None = None
) -> dict | None:
    """An EI (entity identifier: an order, document or appointment number) as a FHIR
    Identifier, typed `kind` when given; None without an id.

    EI.2-4 is the assigning authority (see `hd_system`); without one the number was
    assigned by `default_authority`, which the caller chooses (the sender, or for a
    filler number in an order the receiving system), as for a CX.
    """
    if rep is None:
        return None
    return ei_parts_to_identifier([rep.value(i) for i in (1, 2, 3, 4)], default_authority, kind)


def ei_parts_to_identifier(
    parts: Sequence[str], default_authority: str, kind: tables.Coding | None = None
) -> dict | None:
    """`ei_to_identifier` for an EI held in (sub)components elsewhere, such as the EIP
    halves of SPM-2: `parts` are its id, namespace, universal id and universal id type."""
    value = present(parts[0])
    if not value:
        return None
    identifier: dict = {"type": {"coding": [kind.as_fhir()]}} if kind is not None else {}
    identifier["system"] = hd_system(*parts[1:4]) or hd_system(default_authority)
    identifier["value"] = value
    return identifier


def first_ei(
    segment: Segment, field: int, default_authority: str, kind: tables.Coding | None = None
) -> dict | None:
    """The first repetition of an EI field that holds an id, as an Identifier."""
    for rep in segment.repetitions(field):
        identifier = ei_to_identifier(rep, default_authority, kind)
        if identifier:
            return identifier
    return None


def xpn_to_human_name(rep: Repetition) -> dict | None:
    """An XPN (person name) as a FHIR HumanName; None when it has neither family nor given.

    Given and middle names both go to given[] (FHIR has no middle name); the degree
    (XPN.6, deprecated) is a suffix. XPN.7 name type maps through table 0200.
    """
    family = _get(rep, 1, 1)  # FN.1 surname; later FN parts are rarely sent
    given = [g for g in (_get(rep, 2), _get(rep, 3)) if g]
    if not family and not given:
        return None
    name: dict = {}
    use = tables.NAME_USE.get(_get(rep, 7).upper())
    if use:
        name["use"] = use
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    prefix = _get(rep, 5)
    if prefix:
        name["prefix"] = [prefix]
    suffix = [s for s in (_get(rep, 4), _get(rep, 6)) if s]
    if suffix:
        name["suffix"] = suffix
    return name


def xad_to_address(rep: Repetition) -> dict | None:
    """An XAD (extended address) as a FHIR Address; None when it has no part at all.

    Lines come from XAD.1 (street) and XAD.2 (other designation); XAD.7 address type maps
    through table 0190 to use (home, work, ...) or type (postal for mailing).
    """
    address: dict = {}
    kind = _get(rep, 7).upper()
    if kind in tables.ADDRESS_USE:
        address["use"] = tables.ADDRESS_USE[kind]
    if kind in tables.ADDRESS_TYPE:
        address["type"] = tables.ADDRESS_TYPE[kind]
    parts = {
        "line": [line for line in (_get(rep, 1, 1), _get(rep, 2)) if line],
        "city": _get(rep, 3),
        "district": _get(rep, 9),
        "state": _get(rep, 4),
        "postalCode": _get(rep, 5),
        "country": _get(rep, 6),
    }
    parts = {k: v for k, v in parts.items() if v}
    if not parts:
        return None
    address.update(parts)
    return address


def xtn_to_contact_point(rep: Repetition, default_use: str) -> dict | None:
    """An XTN (telecom number) as a FHIR ContactPoint; None when it holds no number.

    Reads both styles senders use: v2.3's free text in XTN.1 ("(617)555-1212") and v2.5's
    parts (XTN.2 use code, XTN.3 equipment, XTN.4 email, XTN.5-8 country, area, local
    number, extension). `default_use` is the field's meaning: home for PID-13, work for
    PID-14. A cell phone is "mobile".
    """
    use_code, equipment = _get(rep, 2).upper(), _get(rep, 3).upper()
    email = _get(rep, 4)
    if use_code == "NET" or tables.TELECOM_SYSTEM.get(equipment) == "email" or email:
        system, value = "email", email or _get(rep, 1)
    else:
        value = _phone_number(rep)
        system = tables.TELECOM_SYSTEM.get(equipment) or ("pager" if use_code == "BPN" else "phone")
        if "@" in value and not equipment:
            system = "email"
    if not value:
        return None
    use = "mobile" if equipment == "CP" else (tables.TELECOM_USE.get(use_code) or default_use)
    return {"system": system, "value": value, "use": use}


def _phone_number(rep: Repetition) -> str:
    """A readable number from XTN.5-8 when sent, else the unformatted (XTN.12) or free-text
    (XTN.1) number as the sender wrote it."""
    country, area, local, extension = (_get(rep, i) for i in (5, 6, 7, 8))
    if not local:
        return _get(rep, 12) or _get(rep, 1)
    number = f"{local[:3]}-{local[3:]}" if len(local) == 7 and local.isdecimal() else local
    if area:
        number = f"({area}) {number}"
    if country:
        number = f"+{country.lstrip('+')} {number}"
    if extension:
        number += f" ext. {extension}"
    return number


def xcn_display(rep: Repetition) -> str:
    """An XCN (composite id and name of a person) as a display name: "Dr Ana Ruiz, MD".

    The id number is left out on purpose: a display is for people, and an id without its
    authority would be an identifier nobody can resolve.
    """
    name = " ".join(
        p for p in (_get(rep, 6), _get(rep, 3), _get(rep, 4), _get(rep, 2, 1), _get(rep, 5)) if p
    )
    degree = _get(rep, 7)
    return f"{name}, {degree}" if name and degree else name


def xcn_reference(rep: Repetition | None) -> dict | None:
    """An XCN (or PPN, NDL's name) person as a Reference by display only (`xcn_display`);
    None when it names nobody."""
    name = xcn_display(rep) if rep is not None else ""
    return {"display": name} if name else None


def pl_display(rep: Repetition) -> str:
    """A PL (person location) as a display: "point of care / room / bed", empty parts left
    out, so "4N^401^B" reads "4N / 401 / B"."""
    return " / ".join(p for p in (_get(rep, 1), _get(rep, 2), _get(rep, 3)) if p)
