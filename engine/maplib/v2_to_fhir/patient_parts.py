"""PID's elements as FHIR Patient elements: every identifier, name, address and telecom
with its type, marital status, language, religion, multiple birth, death and the
extensions FHIR and US Core define for the rest (mother's maiden name, birth place,
citizenship, nationality).

Tables follow the HL7 v2-to-FHIR IG's concept maps (as the reference converter does);
a code outside a table keeps the sender's own code system rather than a guessed one.
"""

from __future__ import annotations

import re

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import compact, distinct
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept
from engine.maplib.v2_fhir import administrative_gender

V3_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V2_0006 = "http://terminology.hl7.org/CodeSystem/v2-0006"
V2_0171 = "http://terminology.hl7.org/CodeSystem/v2-0171"
V2_0212 = "http://terminology.hl7.org/CodeSystem/v2-0212"
BCP47 = "urn:ietf:bcp:47"
EXT = "http://hl7.org/fhir/StructureDefinition/"

# Table 0200 name type -> HumanName.use (IG concept map; A alias counts as a nickname,
# R registered as the official name).
NAME_USE: dict[str, str] = {
    **tables.NAME_USE, "A": "nickname", "R": "official", "MSK": "anonymous", "NAV": "temp",
}
# Table 0002 marital status -> v3-MaritalStatus (IG concept map); U is the null flavor.
MARITAL: dict[str, tuple[str, str, str]] = {
    "A": (V3_MARITAL, "L", "Legally Separated"), "E": (V3_MARITAL, "L", "Legally Separated"),
    "D": (V3_MARITAL, "D", "Divorced"), "M": (V3_MARITAL, "M", "Married"),
    "S": (V3_MARITAL, "S", "Never Married"), "W": (V3_MARITAL, "W", "Widowed"),
    "C": (V3_MARITAL, "C", "Common Law"), "G": (V3_MARITAL, "T", "Domestic partner"),
    "P": (V3_MARITAL, "T", "Domestic partner"), "R": (V3_MARITAL, "T", "Domestic partner"),
    "I": (V3_MARITAL, "I", "Interlocutory"), "B": (V3_MARITAL, "U", "unmarried"),
    "N": (V3_MARITAL, "A", "Annulled"), "U": (tables.V3_NULL_FLAVOR, "UNK", "unknown"),
}
# The codes of table 0002 the IG maps to no v3 code: kept as v2-0002 codings.
MARITAL_V2 = Bound("http://terminology.hl7.org/CodeSystem/v2-0002",
                   {"O": "Other", "T": "Unreported"})
# ISO 639-2 (and common v2 senders') three-letter language codes -> BCP 47.
LANGUAGES: dict[str, tuple[str, str]] = {
    "ENG": ("en", "English"), "SPA": ("es", "Spanish"), "FRE": ("fr", "French"),
    "FRA": ("fr", "French"), "GER": ("de", "German"), "DEU": ("de", "German"),
    "ITA": ("it", "Italian"), "POR": ("pt", "Portuguese"), "RUS": ("ru", "Russian"),
    "CHI": ("zh", "Chinese"), "ZHO": ("zh", "Chinese"), "VIE": ("vi", "Vietnamese"),
    "KOR": ("ko", "Korean"), "JPN": ("ja", "Japanese"), "ARA": ("ar", "Arabic"),
    "HIN": ("hi", "Hindi"), "POL": ("pl", "Polish"), "TGL": ("tl", "Tagalog"),
    "HAT": ("ht", "Haitian"), "SOM": ("so", "Somali"), "PER": ("fa", "Persian"),
    "FAS": ("fa", "Persian"), "GRE": ("el", "Greek"), "ELL": ("el", "Greek"),
    "DUT": ("nl", "Dutch"), "NLD": ("nl", "Dutch"), "BEN": ("bn", "Bengali"),
    "URD": ("ur", "Urdu"), "PAN": ("pa", "Punjabi"), "HMN": ("hmn", "Hmong"),
    "ASL": ("ase", "American Sign Language"), "SGN": ("sgn", "Sign languages"),
}
_LANGUAGE_NAMES = {display.upper(): code for code, (_, display) in LANGUAGES.items()}
_BCP47 = re.compile(r"[a-z]{2,3}(?:-[A-Z]{2})?\Z", re.IGNORECASE)
_BCP47_NAMES = frozenset({"", "ISO639", "ISO6391", "ISO639-1", "BCP47", "IETF", "HL70296",
                          "ISO+", "ISO6392", "ISO639-2"})
# Table 0006 religion (the common codes; the table is long and user-extended).
RELIGION: dict[str, str] = {
    "AGN": "Agnostic", "ATH": "Atheist", "BAH": "Baha'i", "BAP": "Baptist",
    "BUD": "Buddhist", "CAT": "Roman Catholic", "CHR": "Christian", "EPI": "Episcopalian",
    "GRE": "Greek Orthodox", "HIN": "Hindu", "JEW": "Jewish", "JWN": "Jehovah's Witness",
    "LUT": "Lutheran", "MEN": "Mennonite", "MET": "Methodist", "MOM": "Latter-day Saint",
    "MOS": "Muslim", "NOE": "Non-denominational", "NON": "None", "OTH": "Other",
    "PRE": "Presbyterian", "PRO": "Protestant", "QUA": "Friends", "SEV": "Seventh-day Adventist",
    "UNK": "Unknown", "VAR": "Unknown",
}


# ---- identifiers ------------------------------------------------------------------------


def identifiers(pid: Segment, facility: str) -> list[dict]:
    """PID-2, every PID-3, PID-4, PID-19 (SSN) and PID-20 (driver's license), once each."""
    found = [dt.cx_to_identifier(rep, facility) for rep in pid.repetitions(2)]
    found += [dt.cx_to_identifier(rep, facility) for rep in pid.repetitions(3)]
    found += [dt.cx_to_identifier(rep, facility) for rep in pid.repetitions(4)]
    ssn = dt.present(pid.value(19)).replace(" ", "")
    if ssn:
        found.append({"type": {"coding": [_id_type("SS")]}, "system": dt.US_SSN_SYSTEM,
                      "value": ssn})
    for rep in pid.repetitions(20):
        found.append(_driver_license(rep))
    unique: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for ident in found:
        if ident and (ident.get("system", ""), ident["value"]) not in seen:
            seen.add((ident.get("system", ""), ident["value"]))
            unique.append(ident)
    return unique


def _id_type(code: str) -> dict:
    return {"system": tables.V2_0203, "code": code, "display": tables.IDENTIFIER_TYPE[code]}


def _driver_license(rep: Repetition) -> dict | None:
    """A DLN: number, issuing state/province/country (as the assigner), expiry."""
    number = dt.present(rep.value(1))
    if not number:
        return None
    issuer = dt.present(rep.value(2))
    expiry = dt.to_fhir_date(rep.value(3), "PID-20")
    return compact({
        "type": {"coding": [_id_type("DL")]},
        "system": f"urn:conduit:id:driver-license:{issuer.upper()}" if issuer else None,
        "value": number,
        "period": {"end": expiry} if expiry else None,
        "assigner": {"display": issuer} if issuer else None,
    })


# ---- names, addresses, telecoms ----------------------------------------------------------


def human_name(rep: Repetition, where: str = "PID-5") -> dict | None:
    """An XPN with its type (XPN-7 through table 0200), professional suffix (XPN-14) and
    validity (XPN-10 range, else XPN-12/13); None without family or given name."""
    name = dt.xpn_to_human_name(rep)
    if name is None:
        return None
    use = NAME_USE.get(dt.present(rep.value(7)).upper())
    if use:
        name = {"use": use, **{k: v for k, v in name.items() if k != "use"}}
    professional = dt.present(rep.value(14))
    if professional:
        name["suffix"] = [*name.get("suffix", []), professional]
    period = _period(rep, (10, 1), (10, 2), 12, 13, where)
    if period:
        name["period"] = period
    return name


def names(pid: Segment) -> list[dict]:
    """PID-5 names, then PID-9 aliases (a nickname unless typed otherwise)."""
    found = [human_name(rep) for rep in pid.repetitions(5)]
    for rep in pid.repetitions(9):
        alias = human_name(rep, "PID-9")
        if alias is not None:
            alias.setdefault("use", "nickname")
            found.append(alias)
    return distinct(name for name in found if name)


def address(rep: Repetition, where: str = "PID-11") -> dict | None:
    """An XAD with its use/type, county (XAD-9) and validity (XAD-12 range, else 13/14)."""
    found = dt.xad_to_address(rep)
    if found is None:
        return None
    period = _period(rep, (12, 1), (12, 2), 13, 14, where)
    if period:
        found["period"] = period
    return found


def addresses(pid: Segment) -> list[dict]:
    """PID-11 addresses; PID-12 county code fills the district of those without one."""
    found = [a for a in (address(rep) for rep in pid.repetitions(11)) if a]
    county = dt.present(pid.value(12))
    if county:
        if not found:
            found.append({"district": county})
        for item in found:
            item.setdefault("district", county)
    return found


def telecoms(pid: Segment) -> list[dict]:
    """PID-13 (home), PID-14 (work) and PID-40 (v2.6+: its own use code) numbers and
    e-mail addresses, once each, in message order."""
    points = [dt.xtn_to_contact_point(rep, "home") for rep in pid.repetitions(13)]
    points += [dt.xtn_to_contact_point(rep, "work") for rep in pid.repetitions(14)]
    points += [dt.xtn_to_contact_point(rep, "home") for rep in pid.repetitions(40)]
    return distinct(point for point in points if point)


def _period(rep: Repetition, start: tuple[int, int], end: tuple[int, int],
            effective: int, expiry: int, kind: str) -> dict | None:
    begin = dt.to_fhir_date(rep.value(*start), kind) or dt.to_fhir_date(
        rep.value(effective), kind)
    until = dt.to_fhir_date(rep.value(*end), kind) or dt.to_fhir_date(rep.value(expiry), kind)
    return compact({"start": begin, "end": until}) or None


# ---- coded elements ---------------------------------------------------------------------


# Senders that write PID-8 as a word instead of its table 0001 code: the word says the
# same thing, so it is read (with a warning), never guessed from.
_SEX_WORDS: dict[str, str] = {"MALE": "male", "FEMALE": "female", "OTHER": "other",
                              "UNKNOWN": "unknown"}


def gender(pid: Segment) -> str | None:
    """PID-8 through table 0001; N (not applicable) is `other`, as the reference converter
    reads it (the released mappings' table says unknown); the words Male, Female, Other and
    Unknown are read as what they say, with a warning."""
    code = dt.present(pid.value(8)).upper()
    if code == "N":
        return "other"
    if code in _SEX_WORDS:
        return tolerate(MappingError("is a word, not a code from HL7 table 0001 (M, F, O, U, "
                                     "A, N); read as the sex it names", field="PID-8"),
                        _SEX_WORDS[code])
    return administrative_gender(pid, 8)


def marital_status(pid: Segment, facility: str) -> dict | None:
    """PID-16 through table 0002 to v3-MaritalStatus, keeping the sender's text."""
    rep = dt.first_rep(pid, 16)
    if rep is None:
        return None
    code = dt.present(rep.value(1)).upper()
    name = dt.present(rep.value(3)).upper()
    if code in MARITAL and name in ("", "HL70002", "MARITAL STATUS"):
        system, v3, display = MARITAL[code]
        text = dt.present(rep.value(2))
        return compact({"coding": [{"system": system, "code": v3, "display": display}],
                        "text": text if text and text.upper() != display.upper() else None})
    return cwe_to_codeable_concept(rep, facility, MARITAL_V2)


def language(rep: Repetition | None, facility: str) -> dict | None:
    """A language (PID-15, NK1-20) as BCP 47 where recognisable (en, en-US, ENG, SPA),
    else as the sender coded it."""
    if rep is None:
        return None
    code = dt.present(rep.value(1))
    name = dt.present(rep.value(3)).upper().replace(" ", "")
    text = dt.present(rep.value(2))
    coding = None
    if not name and not text and code.upper() in _LANGUAGE_NAMES:  # "Spanish" alone
        code, text = _LANGUAGE_NAMES[code.upper()], code
    if name in _BCP47_NAMES and code.upper() in LANGUAGES:
        bcp, display = LANGUAGES[code.upper()]
        coding = {"system": BCP47, "code": bcp, "display": display}
    elif name in _BCP47_NAMES and len(code) != 3 and _BCP47.match(code):
        head, _, region = code.partition("-")
        coding = compact({"system": BCP47,
                          "code": head.lower() + (f"-{region.upper()}" if region else ""),
                          "display": text or None})
    if coding is None:
        return cwe_to_codeable_concept(rep, facility)
    return compact({"coding": [coding], "text": text or None})


def communication(pid: Segment, facility: str) -> list[dict]:
    concept = language(dt.first_rep(pid, 15), facility)
    return [{"language": concept, "preferred": True}] if concept else []


def multiple_birth(pid: Segment) -> dict:
    """PID-25 birth order as multipleBirthInteger, else PID-24 (Y/N) as the boolean."""
    order = dt.present(pid.value(25))
    indicator = dt.present(pid.value(24)).upper()
    if order.isdecimal() and indicator != "N":
        return {"multipleBirthInteger": int(order)}
    if indicator in ("Y", "N"):
        return {"multipleBirthBoolean": indicator == "Y"}
    return {}


def deceased(pid: Segment, offset: str | None) -> dict:
    """deceasedDateTime from PID-29, else deceasedBoolean from PID-30 (Y/N)."""
    when = dt.to_fhir_datetime(pid.value(29), "PID-29", offset)
    indicator = dt.present(pid.value(30)).upper()
    if when and indicator != "N":
        return {"deceasedDateTime": when}
    if indicator in ("Y", "N"):
        return {"deceasedBoolean": indicator == "Y"}
    return {}


def last_updated(pid: Segment, offset: str | None) -> dict | None:
    """PID-33 last update date/time as meta.lastUpdated when it is an instant."""
    when = dt.to_fhir_instant(pid.value(33), "PID-33", offset)
    return {"lastUpdated": when} if when else None


# ---- extensions -------------------------------------------------------------------------


def extensions(pid: Segment, facility: str) -> list[dict]:
    """Mother's maiden name (PID-6), birth place (PID-23), religion (PID-17), citizenship
    (PID-26, PID-39) and nationality (PID-28), each as FHIR's own extension."""
    found: list[dict] = []
    maiden = next((dt.present(rep.value(1, 1)) for rep in pid.repetitions(6)
                   if dt.present(rep.value(1, 1))), "")
    if maiden:
        found.append({"url": EXT + "patient-mothersMaidenName", "valueString": maiden})
    birthplace = dt.present(pid.value(23))
    if birthplace:
        found.append({"url": EXT + "patient-birthPlace", "valueAddress": {"text": birthplace}})
    religion = cwe_to_codeable_concept(dt.first_rep(pid, 17), facility,
                                       Bound(V2_0006, RELIGION))
    if religion:
        found.append({"url": EXT + "patient-religion", "valueCodeableConcept": religion})
    for field in (26, 39):
        for rep in pid.repetitions(field):
            concept = cwe_to_codeable_concept(rep, facility, Bound(V2_0171, {}, every_code=True))
            if concept:
                found.append({"url": EXT + "patient-citizenship", "extension": [
                    {"url": "code", "valueCodeableConcept": concept}]})
    nationality = cwe_to_codeable_concept(dt.first_rep(pid, 28), facility,
                                          Bound(V2_0212, {}, every_code=True))
    if nationality:
        found.append({"url": EXT + "patient-nationality", "extension": [
            {"url": "code", "valueCodeableConcept": nationality}]})
    return found
