"""What each SCRIPT message type must carry, written from public facts about the
standard (the NCPDP XSDs are licensed to members and are not copied here): the patient's
name and date of birth, the prescriber's NPI (and DEA number for a controlled
substance), the medication with its description, quantity and unit, days supply and
directions, and the Header's routing and correlation fields.

Each rule is a name for the analyst and the element paths any one of which satisfies
it (a date of birth may be a Date or a DateTime). Paths are under the message element.

Paths are 2017071's (2023011 names these elements the same way). A SCRIPT 10.6 message
(`version="010" release="006"`) names some of them otherwise, and is checked, and told
what it lacks, in its own names (`IN_10_6`): a patient and a prescriber without the
HumanPatient and NonVeterinarian levels, the pharmacy's StoreName, the quantity's
PotencyUnitCode, Directions for the Sig, Refills/Value for NumberOfRefills.
An element is there when it holds text or other elements: a Response or FillStatus is a
choice (`<Response><Approved/></Response>`, `<FillStatus><Dispensed/></FillStatus>`)
whose content is the element it holds, never text.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from engine.formats.ncpdp.message import ScriptMessage

Rule = tuple[str, tuple[str, ...]]

HEADER: list[Rule] = [
    ("Header/To", ("Header/To",)),
    ("Header/From", ("Header/From",)),
    ("Header/MessageID", ("Header/MessageID",)),
    ("Header/SentTime", ("Header/SentTime",)),
]
CORRELATED: list[Rule] = [("Header/RelatesToMessageID", ("Header/RelatesToMessageID",))]

# SCRIPT carries an animal (NonHumanPatient, its owner's last name and its own first
# name) for a veterinarian; a veterinarian need not have an NPI (NPIs are for HIPAA
# providers) and is identified by state license or DEA number instead.
_PATIENTS = ("Patient/HumanPatient", "Patient/NonHumanPatient")


def _each(paths: tuple[str, ...], rest: str) -> tuple[str, ...]:
    return tuple(f"{p}/{rest}" for p in paths)


PATIENT: list[Rule] = [
    ("patient last name", _each(_PATIENTS, "Name/LastName")),
    ("patient first name", _each(_PATIENTS, "Name/FirstName")),
    ("patient gender", _each(_PATIENTS, "Gender")),
    ("patient date of birth", (*_each(_PATIENTS, "DateOfBirth/Date"),
                               *_each(_PATIENTS, "DateOfBirth/DateTime"))),
]
_PRESCRIBER = ("Prescriber/NonVeterinarian", "Prescriber/Veterinarian")
PRESCRIBER: list[Rule] = [
    ("prescriber last name", _each(_PRESCRIBER, "Name/LastName")),
    ("prescriber NPI", (*_each(_PRESCRIBER, "Identification/NPI"),
                        "Prescriber/Veterinarian/Identification/StateLicenseNumber",
                        "Prescriber/Veterinarian/Identification/DEANumber")),
]
PHARMACY: list[Rule] = [
    ("pharmacy NCPDP ID or NPI", ("Pharmacy/Identification/NCPDPID",
                                  "Pharmacy/Identification/NPI")),
    ("pharmacy name", ("Pharmacy/BusinessName",)),
]


def medication(element: str) -> list[Rule]:
    return [
        ("drug description", (f"{element}/DrugDescription",)),
        ("quantity", (f"{element}/Quantity/Value",)),
        ("quantity qualifier", (f"{element}/Quantity/CodeListQualifier",)),
        ("quantity unit", (f"{element}/Quantity/QuantityUnitOfMeasure/Code",)),
    ]


PRESCRIBED = [*medication("MedicationPrescribed"),
              ("days supply", ("MedicationPrescribed/DaysSupply",)),
              ("written date", ("MedicationPrescribed/WrittenDate/Date",
                                "MedicationPrescribed/WrittenDate/DateTime")),
              ("directions (Sig)", ("MedicationPrescribed/Sig/SigText",))]

RULES: dict[str, list[Rule]] = {
    "NewRx": [*PATIENT, *PRESCRIBER, *PHARMACY, *PRESCRIBED],
    "RxRenewalRequest": [*PATIENT, *PRESCRIBER, *PHARMACY,
                         *medication("MedicationDispensed")],
    "RxRenewalResponse": [*CORRELATED, *PATIENT, *PRESCRIBER,
                          ("response", ("Response",))],
    "RxChangeRequest": [*PATIENT, *PRESCRIBER, *PHARMACY,
                        ("change request code", ("MessageRequestCode",)),
                        ("drug description", ("MedicationPrescribed/DrugDescription",))],
    "RxChangeResponse": [*CORRELATED, *PATIENT, *PRESCRIBER, ("response", ("Response",))],
    # a cancel names the prescription it cancels: the prescriber's order number, or the
    # NewRx's MessageID (without either no pharmacy can match it, nor can its mapping)
    "CancelRx": [*PATIENT, *PRESCRIBER,
                 ("drug description", ("MedicationPrescribed/DrugDescription",)),
                 ("prescription cancelled", ("Header/PrescriberOrderNumber",
                                             "Header/RelatesToMessageID"))],
    "CancelRxResponse": [*CORRELATED, ("response", ("Response",))],
    "RxFill": [*PATIENT, *PHARMACY, ("fill status", ("FillStatus",)),
               ("drug description", ("MedicationDispensed/DrugDescription",
                                     "MedicationPrescribed/DrugDescription"))],
    "RxFillIndicatorChange": [*PATIENT, *PRESCRIBER,
                              ("fill indicator", ("FillRequestIndicator",))],
    "Status": [*CORRELATED, ("status code", ("Code",))],
    "Error": [*CORRELATED, ("error code", ("Code",))],
    "Verify": [*CORRELATED, ("verify status code", ("VerifyStatus/Code",))],
}


def _date(text: str) -> bool:
    try:  # CCYY-MM-DD, a day of the calendar (not 1962-02-31)
        return len(text) == 10 and datetime.date.fromisoformat(text) is not None
    except ValueError:
        return False


_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
# Values the mappings read, in the form the standard gives them: where present, a value
# they could not read is named, not left out of what the receiver gets (a quantity of
# "thirty", a 30.0-day supply, a birth date of February 30th).
VALUES: list[tuple[str, str, Callable[[str], bool]]] = [
    (f"{drug}/{path}", f"{name} is not {what}", check)
    for drug in ("MedicationPrescribed", "MedicationDispensed")
    for path, name, what, check in (
        ("Quantity/Value", "quantity", "a number above 0",
         lambda v: bool(_DECIMAL.fullmatch(v)) and float(v) > 0),
        ("DaysSupply", "days supply", "a whole number of days",
         lambda v: bool(_WHOLE.fullmatch(v))),
        ("NumberOfRefills", "number of refills", "a whole number",
         lambda v: bool(_WHOLE.fullmatch(v))),
        ("WrittenDate/Date", "written date", "a date (CCYY-MM-DD)", _date))
] + [(f"{who}/DateOfBirth/Date", "patient date of birth is not a date (CCYY-MM-DD)", _date)
     for who in _PATIENTS]
FILL_STATUSES = ("Dispensed", "PartiallyDispensed", "NotDispensed", "Transferred")

# A controlled substance (a DEASchedule on the drug) needs the prescriber's DEA number.
_SCHEDULED = ("MedicationPrescribed/DrugCoded/DEASchedule/Code",)
_DEA = tuple(f"{p}/Identification/DEANumber" for p in _PRESCRIBER)


# 2017071 path prefixes as SCRIPT 10.6 writes them ("" where 10.6 has no such element:
# it has no animal patient and no veterinarian prescriber).
IN_10_6 = (("Patient/HumanPatient/", "Patient/"), ("Patient/NonHumanPatient/", ""),
           ("Prescriber/NonVeterinarian/", "Prescriber/"), ("Prescriber/Veterinarian/", ""),
           ("Pharmacy/BusinessName", "Pharmacy/StoreName"),
           ("Quantity/QuantityUnitOfMeasure/Code", "Quantity/PotencyUnitCode"),
           ("Sig/SigText", "Directions"), ("NumberOfRefills", "Refills/Value"))


def in_10_6(path: str) -> str:
    """A 2017071 path in SCRIPT 10.6's names; "" when 10.6 has no such element."""
    for old, new in IN_10_6:
        if old in path:
            if not new:
                return ""
            path = path.replace(old, new)
    return path


def _in_version(message: ScriptMessage) -> Callable[[str], str]:
    return in_10_6 if message.is_10_6 else (lambda path: path)


def check(message: ScriptMessage) -> list[tuple[str, str]]:
    """(where, what is missing) for each rule the message breaks, each element named as
    the message's SCRIPT version names it; names, never values."""
    kind = message.message_type
    named = _in_version(message)
    out: list[tuple[str, str]] = []
    body = message.root.find("Body")
    count = sum(isinstance(c.tag, str) for c in body) if body is not None else 0
    if count > 1:  # only the first would be read, routed, mapped and answered
        out.append(("Body", f"Body holds {count} message elements; a SCRIPT Message "
                            "carries one"))
    for name, sent in HEADER + RULES.get(kind, []):
        paths = tuple(dict.fromkeys(p for p in map(named, sent) if p))
        if not any(_present(message, _under(kind, p)) for p in paths):
            out.append((paths[0].split("/")[0] if paths[0].startswith("Header")
                        else kind, f"{kind}: {name} is missing ({paths[0]})"))
    for sent, wrong, readable in VALUES:
        path = named(sent)
        value = message.value(_under(kind, path)) if path else ""
        if value and not readable(value):
            out.append((kind, f"{kind}: {wrong} ({path})"))
    fill = message.find(_under(kind, "FillStatus")) if kind == "RxFill" else None
    if fill is not None and not any(c.tag in FILL_STATUSES for c in fill):
        out.append((kind, f"{kind}: fill status is none of {', '.join(FILL_STATUSES)} "
                          "(FillStatus)"))
    scheduled = message.value(_under(kind, _SCHEDULED[0]))
    dea = tuple(p for p in map(named, _DEA) if p)
    if scheduled and scheduled != "C38046" and not any(
            message.value(_under(kind, p)) for p in dea):
        out.append((kind, f"{kind}: a controlled substance needs the prescriber's DEA "
                          f"number ({dea[0]})"))
    return out


def _present(message: ScriptMessage, path: str) -> bool:
    """Text at the path, or an element there holding elements (a choice)."""
    if message.value(path):
        return True
    element = message.find(path) if "@" not in path else None
    return element is not None and any(isinstance(c.tag, str) for c in element)


def _under(kind: str, path: str) -> str:
    return path if path.startswith("Header") else f"Body/{kind}/{path}"
