"""SCRIPT to FHIR building blocks every NCPDP mapping shares (NewRx, CancelRx, RxFill,
RxRenewal): the patient, prescriber, pharmacy and drug of any SCRIPT message read the
same way, with the same ids, so a NewRx and the RxFill answering it name the same
Patient, Practitioner, Organization and Medication.

Every function takes the parsed message's element (tags local, see
engine/formats/ncpdp/xml.py) and gives a FHIR R4 dict with empty elements left out.

Ids: `engine.maplib.fhir.resource_id` with scope "ncpdp" and the first identifier of a
fixed preference (Patient: the EHR's MRN, else the first identifier sent, else name and
birth date; Practitioner: NPI, DEA, state license; Organization: NCPDPID, NPI;
Medication: RxNorm, NDC, else the drug description).

An identifier only its assigner keeps unique (an MRN, a state license, anything without
a national system, and the name fallbacks) names one person only within the system that
assigned it: given an `assigner` (the prescriber's system, "value^qualifier" of Header
From, or To for what a pharmacy sends; see `ncpdp_scope`), such an id is keyed within it
and the Identifier says its assigner, so two clinics' MRN 1234 are two Patients. Without
one (the version 1 mappings), ids are keyed by the value alone, as they always were.
National identifiers (SSN, MBI, NPI, DEA, NCPDPID, RxNorm, NDC) are never scoped.

Systems: RxNorm, NDC, NPI as FHIR names them; DEA number urn:oid:2.16.840.1.113883.4.814
(the HL7 OID used by US profiles); NCPDP provider id (NCPDPID)
http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber (THO); NCI
Thesaurus http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl (THO) for units of measure
and DEA schedules. What has no published system is urn:conduit:id:ncpdp:<Element> or
urn:conduit:code:ncpdp:<Qualifier>, so the element it came from is never lost.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.maplib.fhir import compact, reference, resource_id

SCOPE = "ncpdp"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
NPI = "http://hl7.org/fhir/sid/us-npi"
DEA = "urn:oid:2.16.840.1.113883.4.814"
NCPDP_ID = "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber"
NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
SSN = "http://hl7.org/fhir/sid/us-ssn"
MBI = "http://hl7.org/fhir/sid/us-mbi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ID_LOCAL = "urn:conduit:id:ncpdp:"  # + the SCRIPT element name
CODE_LOCAL = "urn:conduit:code:ncpdp:"  # + the SCRIPT qualifier
EXTENSION = "urn:conduit:fhir:extension:ncpdp-"  # + what it keeps
DEA_SCHEDULE_EXT = EXTENSION + "dea-schedule"  # Medication: the drug's DEA schedule
# A coding's SCRIPT Qualifier when its system does not say it (SCD, SBD, GPCK ...).
QUALIFIER_EXT = EXTENSION + "qualifier"
DRUG_DB_QUALIFIER_EXT = QUALIFIER_EXT
QUANTITY_QUALIFIER_EXT = EXTENSION + "quantity-qualifier"  # Quantity: CodeListQualifier
SIG_CODE_SYSTEM_EXT = EXTENSION + "sig-code-system"  # Dosage: Sig/CodeSystem versions
# FHIR R4 core extension on a Patient that is an animal (a veterinarian's prescription).
ANIMAL_EXT = "http://hl7.org/fhir/StructureDefinition/patient-animal"

# DrugDBCode qualifiers that are RxNorm term types (the code is an RxCUI).
RXNORM_TERM_TYPES = frozenset({"SCD", "SBD", "GPCK", "BPCK", "SCDF", "SBDF", "SCDG",
                               "SBDG", "SCDGP", "SBDC", "SCDC", "IN", "PIN", "MIN", "BN"})
# ProductCode qualifiers: ND an NDC; the others have no FHIR system of their own.
PRODUCT_SYSTEMS = {"ND": NDC}
# DEA schedules (NCI Thesaurus, as SCRIPT and SPL carry them).
DEA_SCHEDULES = {"C48672": "Schedule I", "C48675": "Schedule II",
                 "C48676": "Schedule III", "C48677": "Schedule IV",
                 "C48679": "Schedule V", "C38046": "Unspecified"}
# Common NCI units of presentation in SCRIPT quantities (display only; any code passes).
NCI_UNITS = {"C48542": "Tablet", "C48480": "Capsule", "C28254": "mL", "C48155": "g",
             "C64933": "Each", "C38046": "Unspecified", "C48501": "Inhalation",
             "C62412": "Kit", "C48520": "Patch", "C48537": "Suppository"}
# How senders spell dispense and dose units (HL7v2 RXE-11, FHIR unit text, UCUM
# annotations without their braces), upper case -> the NCI code SCRIPT carries.
NCI_UNIT_WORDS: dict[str, str] = {
    **dict.fromkeys(("TAB", "TABS", "TABLET", "TABLETS", "TB", "TBL"), "C48542"),
    **dict.fromkeys(("CAP", "CAPS", "CAPSULE", "CAPSULES"), "C48480"),
    **dict.fromkeys(("ML", "MILLILITER", "MILLILITERS", "MILLILITRE", "CC"), "C28254"),
    **dict.fromkeys(("G", "GM", "GRAM", "GRAMS"), "C48155"),
    **dict.fromkeys(("EA", "EACH"), "C64933"),
}
PATIENT_IDS = {"MedicalRecordIdentificationNumberEHR": ("", "MR"),
               "SocialSecurity": (SSN, "SS"), "MedicareNumber": (MBI, "MC"),
               "MedicaidNumber": ("", "MA")}
PRESCRIBER_IDS = {"NPI": (NPI, "NPI"), "DEANumber": (DEA, "DEA"),
                  "StateLicenseNumber": ("", "MD")}
PHARMACY_IDS = {"NCPDPID": (NCPDP_ID, ""), "NPI": (NPI, "NPI"),
                "DEANumber": (DEA, "DEA"), "StateLicenseNumber": ("", "LN")}
# Identifier systems unique nationwide: an id keyed by one needs no assigner.
NATIONAL_SYSTEMS = frozenset({SSN, MBI, NPI, DEA, NCPDP_ID})
GENDERS = {"M": "male", "F": "female", "U": "unknown", "O": "other"}
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(:\d{2}(\.\d+)?)?)"
                       r"(Z|[+-]\d{2}:?\d{2})?$")


# ---- reading ---------------------------------------------------------------------------


def text(element: ET.Element | None, path: str = "") -> str:
    """The stripped text at a path under an element; "" when absent."""
    if element is None:
        return ""
    found = element.find(path) if path else element
    return (found.text or "").strip() if found is not None else ""


def child(element: ET.Element | None, *names: str) -> ET.Element | None:
    """The first child present of several alternative names (NonVeterinarian or
    Veterinarian ...)."""
    if element is None:
        return None
    for name in names:
        found = element.find(name)
        if found is not None:
            return found
    return None


# ---- dates -----------------------------------------------------------------------------


def date(value: str) -> str | None:
    """A SCRIPT Date (CCYY-MM-DD) as a FHIR date; None when it is not one."""
    value = value.strip()
    if not _DATE.match(value):
        return None
    try:  # a full date must be a day of the calendar (not 1962-02-31)
        if len(value) == 10:
            datetime.date.fromisoformat(value)
    except ValueError:
        return None
    return value


def date_time(value: str) -> str | None:
    """A SCRIPT DateTime as a FHIR dateTime: with its zone as sent, seconds added when
    missing; without a zone only its date (FHIR needs a zone with a time)."""
    value = value.strip()
    found = _DATETIME.match(value)
    if found is None:
        return date(value)
    day, clock, seconds, _, zone = found.groups()
    if date(day) is None or not _clock_ok(clock):
        return None
    if not zone:
        return day
    if seconds is None:
        clock += ":00"
    if zone != "Z" and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return f"{day}T{clock}{zone}"


def _clock_ok(clock: str) -> bool:
    hours, minutes = int(clock[:2]), int(clock[3:5])
    seconds = float(clock[6:]) if len(clock) > 5 else 0.0
    return hours < 24 and minutes < 60 and seconds < 61


def date_of(element: ET.Element | None) -> str | None:
    """An element holding Date or DateTime (WrittenDate, DateOfBirth ...) as FHIR."""
    if element is None:
        return None
    if text(element, "Date"):
        return date(text(element, "Date"))
    if text(element, "DateTime"):
        return date_time(text(element, "DateTime"))
    return None


# ---- people and places -----------------------------------------------------------------


def human_name(name: ET.Element | None) -> dict[str, Any] | None:
    """Name (LastName, FirstName, MiddleName, Suffix, Prefix) as a HumanName."""
    if name is None or not text(name, "LastName"):
        return None
    given = [g for g in (text(name, "FirstName"), text(name, "MiddleName")) if g]
    return compact({"family": text(name, "LastName"), "given": given,
                    "prefix": [text(name, "Prefix")] if text(name, "Prefix") else [],
                    "suffix": [text(name, "Suffix")] if text(name, "Suffix") else []})


def address(element: ET.Element | None) -> dict[str, Any] | None:
    """Address (AddressLine1/2, City, StateProvince, PostalCode, CountryCode)."""
    if element is None:
        return None
    lines = [line for line in (text(element, "AddressLine1"), text(element, "AddressLine2"))
             if line]
    found = compact({"line": lines, "city": text(element, "City"),
                     "state": text(element, "StateProvince"),
                     "postalCode": text(element, "PostalCode"),
                     "country": text(element, "CountryCode")})
    return found or None


def telecom(numbers: ET.Element | None) -> list[dict[str, Any]]:
    """CommunicationNumbers: PrimaryTelephone, Beeper, Fax, HomeTelephone,
    WorkTelephone, OtherTelephone, ElectronicMail as ContactPoints."""
    if numbers is None:
        return []
    out: list[dict[str, Any]] = []
    kinds = {"PrimaryTelephone": ("phone", None), "HomeTelephone": ("phone", "home"),
             "WorkTelephone": ("phone", "work"), "OtherTelephone": ("phone", None),
             "Beeper": ("pager", None), "Fax": ("fax", None)}
    for element in numbers:
        if element.tag in kinds:
            number = text(element, "Number")
            if not number:
                continue
            system, use = kinds[element.tag]
            out.append(compact({"system": system, "value": number, "use": use,
                                "rank": 1 if element.tag == "PrimaryTelephone" else None}))
        elif element.tag == "ElectronicMail" and text(element):
            out.append({"system": "email", "value": text(element)})
    return out


def identifiers(ids: ET.Element | None, known: dict[str, tuple[str, str]],
                assigner: str = "") -> list[dict[str, Any]]:
    """Each child of an Identification element as an Identifier: a published system
    where there is one, else urn:conduit:id:ncpdp:<Element>; typed by v2 table 0203.
    With an `assigner`, one that is not national says it (assigner.display)."""
    if ids is None:
        return []
    out: list[dict[str, Any]] = []
    for element in ids:
        value = text(element)
        if not value or not isinstance(element.tag, str):
            continue
        system, kind = known.get(element.tag, ("", ""))
        system = system or ID_LOCAL + element.tag
        local = assigner and system not in NATIONAL_SYSTEMS
        out.append(compact({
            "type": {"coding": [{"system": V2_0203, "code": kind}]} if kind else None,
            "system": system, "value": value,
            "assigner": {"display": assigner} if local else None}))
    return out


def scoped_key(identifier: dict[str, Any], assigner: str) -> dict[str, str]:
    """The key an id is derived from: the identifier itself when national (or without
    an assigner), else its value within its assigner."""
    system = identifier.get("system", "")
    if not assigner or system in NATIONAL_SYSTEMS:
        return {"system": system, "value": identifier["value"]}
    return {"system": system, "value": f"{assigner}|{identifier['value']}"}


def _id_for(kind: str, ids: list[dict[str, Any]], preferred: tuple[str, ...],
            fallback: dict[str, str] | None, assigner: str = "") -> str | None:
    for system in preferred:
        for identifier in ids:
            if identifier["system"] == system:
                return resource_id(kind, SCOPE, scoped_key(identifier, assigner))
    if ids:
        return resource_id(kind, SCOPE, scoped_key(ids[0], assigner))
    return resource_id(kind, SCOPE, scoped_key(fallback, assigner)) if fallback else None


def patient(element: ET.Element | None, *, assigner: str = "") -> dict[str, Any] | None:
    """Patient/HumanPatient as a Patient; a veterinarian's NonHumanPatient (its owner's
    last name and its own first name) as a Patient with the core patient-animal
    extension, its Species code (NCI) as the species; None when there is no patient or
    no name. `assigner`: the system whose MRN it is (see the module's docstring)."""
    human = child(element, "HumanPatient", "NonHumanPatient") if element is not None \
        else None
    if human is None:
        return None
    name = human_name(human.find("Name"))
    if name is None:
        return None
    ids = identifiers(human.find("Identification"), PATIENT_IDS, assigner)
    born = date_of(human.find("DateOfBirth"))
    fallback = {"system": ID_LOCAL + "patient-name-birthdate",
                "value": "|".join((name.get("family", ""), *name.get("given", [])[:1],
                                   born or ""))}
    rid = _id_for("Patient", ids, (ID_LOCAL + "MedicalRecordIdentificationNumberEHR",),
                  fallback, assigner)
    found_address = address(human.find("Address"))
    species = coded(human.find("Species")) if human.tag == "NonHumanPatient" else None
    return compact({
        "resourceType": "Patient", "id": rid,
        "extension": [{"url": ANIMAL_EXT, "extension": [
            {"url": "species", "valueCodeableConcept": species or {"text": "animal"}}]}]
        if human.tag == "NonHumanPatient" else [],
        "identifier": ids, "name": [name],
        "telecom": telecom(human.find("CommunicationNumbers")),
        "gender": GENDERS.get(text(human, "Gender").upper()), "birthDate": born,
        "address": [found_address] if found_address else []})


def practitioner(element: ET.Element | None, *, assigner: str = ""
                 ) -> dict[str, Any] | None:
    """Prescriber (NonVeterinarian or Veterinarian) as a Practitioner, by NPI, else
    DEA number, else state license (within `assigner`, when given); None without a name
    or identifier."""
    person = child(element, "NonVeterinarian", "Veterinarian") if element is not None \
        else None
    if person is None:
        return None
    ids = identifiers(person.find("Identification"), PRESCRIBER_IDS, assigner)
    name = human_name(person.find("Name"))
    if not ids and name is None:
        return None
    fallback = {"system": ID_LOCAL + "prescriber-name", "value": "|".join(
        [*(name or {}).get("given", [])[:1], (name or {}).get("family", "")])}
    rid = _id_for("Practitioner", ids, (NPI, DEA, ID_LOCAL + "StateLicenseNumber"),
                  fallback, assigner)
    found_address = address(person.find("Address"))
    return compact({
        "resourceType": "Practitioner", "id": rid, "identifier": ids,
        "name": [name] if name else [],
        "telecom": telecom(person.find("CommunicationNumbers")),
        "address": [found_address] if found_address else []})


def pharmacy(element: ET.Element | None, *, assigner: str = "") -> dict[str, Any] | None:
    """Pharmacy as an Organization (type: pharmacy is said by its NCPDPID), by
    NCPDPID, else NPI (else within `assigner`, when given); None without an identifier
    or name."""
    if element is None:
        return None
    ids = identifiers(element.find("Identification"), PHARMACY_IDS, assigner)
    name = text(element, "BusinessName")
    if not ids and not name:
        return None
    rid = _id_for("Organization", ids, (NCPDP_ID, NPI),
                  {"system": ID_LOCAL + "pharmacy-name", "value": name}, assigner)
    found_address = address(element.find("Address"))
    return compact({
        "resourceType": "Organization", "id": rid, "identifier": ids, "active": True,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                              "organization-type", "code": "prov",
                              "display": "Healthcare Provider"}], "text": "pharmacy"}],
        "name": name,
        "telecom": telecom(element.find("CommunicationNumbers")),
        "address": [found_address] if found_address else []})


# ---- drugs and quantities --------------------------------------------------------------


def drug_codings(drug: ET.Element | None) -> list[dict[str, Any]]:
    """DrugCoded as codings: DrugDBCode (RxNorm when its qualifier is an RxNorm term
    type, keeping the qualifier in an extension) first, then ProductCode (ND an NDC)."""
    coded = drug.find("DrugCoded") if drug is not None else None
    if coded is None:
        return []
    out: list[dict[str, Any]] = []
    description = text(drug, "DrugDescription")
    for db in coded.findall("DrugDBCode"):
        code, qualifier = text(db, "Code"), text(db, "Qualifier")
        if not code:
            continue
        system = RXNORM if qualifier in RXNORM_TERM_TYPES else CODE_LOCAL + (
            qualifier or "DrugDBCode")
        out.append(compact({
            "extension": [{"url": DRUG_DB_QUALIFIER_EXT, "valueCode": qualifier}]
            if qualifier else [],
            "system": system, "code": code, "display": description}))
    for product in coded.findall("ProductCode"):
        code, qualifier = text(product, "Code"), text(product, "Qualifier")
        if code:
            out.append(compact({"system": PRODUCT_SYSTEMS.get(qualifier) or CODE_LOCAL + (
                qualifier or "ProductCode"), "code": code, "display": description}))
    return out


def drug_code(drug: ET.Element | None) -> dict[str, Any] | None:
    """The drug as a CodeableConcept: its codings and the DrugDescription as text."""
    if drug is None:
        return None
    found = compact({"coding": drug_codings(drug), "text": text(drug, "DrugDescription")})
    return found or None


def schedule(drug: ET.Element | None) -> dict[str, Any] | None:
    """DrugCoded/DEASchedule/Code (NCI) as a CodeableConcept; None when absent."""
    code = text(drug, "DrugCoded/DEASchedule/Code") if drug is not None else ""
    if not code:
        return None
    return {"coding": [compact({"system": NCI, "code": code,
                                "display": DEA_SCHEDULES.get(code)})]}


def medication(drug: ET.Element | None) -> dict[str, Any] | None:
    """MedicationPrescribed (or Dispensed, Requested) as a Medication: code (RxNorm,
    NDC, description), the DEA schedule in the extension DEA_SCHEDULE_EXT (not in code:
    a schedule is not another name of the drug), DrugCoded/Strength (StrengthValue,
    StrengthUnitOfMeasure and StrengthForm, NCI codes) as the ingredient's strength and
    the form. Id by RxNorm, else NDC, else the description; None without a description
    or code."""
    code = drug_code(drug)
    if drug is None or code is None:
        return None
    codings = code.get("coding", [])
    key = next((c for c in codings if c["system"] == RXNORM), None) or next(
        (c for c in codings if c["system"] == NDC), None) or (codings[0] if codings else None)
    identifier = ({"system": key["system"], "value": key["code"]} if key else
                  {"system": ID_LOCAL + "DrugDescription",
                   "value": code.get("text", "").lower()})
    drug_schedule = schedule(drug)
    form = text(drug, "DrugCoded/Strength/StrengthForm/Code")
    return compact({
        "resourceType": "Medication", "id": resource_id("Medication", SCOPE, identifier),
        "extension": [{"url": DEA_SCHEDULE_EXT, "valueCodeableConcept": drug_schedule}]
        if drug_schedule else [],
        "code": code,
        "form": {"coding": [{"system": NCI, "code": form}]} if form else None,
        "ingredient": _strength(drug, code)})


def _strength(drug: ET.Element, code: dict[str, Any]) -> list[dict[str, Any]]:
    value = text(drug, "DrugCoded/Strength/StrengthValue")
    unit = text(drug, "DrugCoded/Strength/StrengthUnitOfMeasure/Code")
    if not value:
        return []
    numerator = compact({"value": _number(value), "system": NCI if unit else None,
                         "code": unit or None})
    if "value" not in numerator:
        return []
    return [{"itemCodeableConcept": {"text": code.get("text") or "active ingredient"},
             "strength": {"numerator": numerator,
                          "denominator": {"value": 1}}}]


def _number(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def quantity(element: ET.Element | None) -> dict[str, Any] | None:
    """Quantity (Value, CodeListQualifier, QuantityUnitOfMeasure/Code) as a
    SimpleQuantity: value a decimal with the digits sent, the unit an NCI code (display
    from NCI_UNITS), CodeListQualifier (38 original quantity, 87 received ...) kept in
    QUANTITY_QUALIFIER_EXT; None without a readable value."""
    if element is None:
        return None
    value = _number(text(element, "Value"))
    if value is None:
        return None
    unit = text(element, "QuantityUnitOfMeasure/Code")
    qualifier = text(element, "CodeListQualifier")
    return compact({
        "extension": [{"url": QUANTITY_QUALIFIER_EXT, "valueString": qualifier}]
        if qualifier else [],
        "value": value, "unit": NCI_UNITS.get(unit, unit) if unit else None,
        "system": NCI if unit else None, "code": unit or None})


# ---- the order ------------------------------------------------------------------------


def order_identifier(order_number: str, assigner: str = "") -> dict[str, Any]:
    """Header/PrescriberOrderNumber as the placer identifier; `assigner` the prescriber
    system (Header/From of a NewRx) that numbered it."""
    return compact({
        "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
        "system": ID_LOCAL + "PrescriberOrderNumber", "value": order_number,
        "assigner": {"display": assigner} if assigner else None})


def request_id(order_number: str, prescriber: dict[str, Any] | None) -> str:
    """The MedicationRequest's id: the prescriber order number within its prescriber
    (the Practitioner's id), so a NewRx, the CancelRx and RxFill naming the same order
    and prescriber reach the same MedicationRequest."""
    value = f"{(prescriber or {}).get('id', '')}|{order_number}"
    return resource_id("MedicationRequest", SCOPE,
                       {"system": ID_LOCAL + "PrescriberOrderNumber", "value": value})


# ---- directions -----------------------------------------------------------------------

SNOMED = "http://snomed.info/sct"
# NCI units of time in FrequencyUnits / IntervalUnits, as FHIR Timing units.
TIME_UNITS = {"C25301": "d", "C25529": "h", "C29844": "wk", "C29846": "mo",
              "C29848": "a", "C48154": "min"}


def coded(element: ET.Element | None) -> dict[str, Any] | None:
    """A SCRIPT Text/Qualifier/Code triple as a CodeableConcept: Qualifier SNOMED a SNOMED
    CT coding, an NCI-looking code (C12345) NCI, else urn:conduit:code:ncpdp:<Qualifier>;
    the Qualifier kept in QUALIFIER_EXT when the system does not say it."""
    if element is None:
        return None
    code, qualifier, label = text(element, "Code"), text(element, "Qualifier"), \
        text(element, "Text")
    coding: dict[str, Any] | None = None
    if code:
        if qualifier.upper().startswith("SNOMED"):
            system = SNOMED
        elif re.fullmatch(r"C\d+", code):
            system = NCI
        else:
            system = CODE_LOCAL + (qualifier or "code")
        keep = qualifier and system != SNOMED
        coding = compact({
            "extension": [{"url": QUALIFIER_EXT, "valueCode": qualifier}] if keep else [],
            "system": system, "code": code, "display": label})
    found = compact({"coding": [coding] if coding else [], "text": label})
    return found or None


def dosage(sig: ET.Element | None) -> dict[str, Any] | None:
    """Sig as a Dosage: SigText always as text, Sig/CodeSystem in SIG_CODE_SYSTEM_EXT;
    from the first Sig/Instruction what can be read: DoseAdministration/Dosage
    (DoseQuantity with DoseUnitOfMeasure) as
    doseAndRate, RouteOfAdministration as route, DoseDeliveryMethod as method,
    TimingAndDuration/Frequency (FrequencyNumericValue per FrequencyUnits) or Interval
    (every IntervalNumericValue IntervalUnits) as timing.repeat. What the engine cannot
    place (a free-text unit of time, several instructions) stays only in the text."""
    if sig is None:
        return None
    instruction = sig.find("Instruction")
    out: dict[str, Any] = {"extension": _code_systems(sig.find("CodeSystem")),
                           "text": text(sig, "SigText")}
    if instruction is not None:
        administration = instruction.find("DoseAdministration")
        if administration is not None:
            amount = _number(text(administration, "Dosage/DoseQuantity"))
            unit = coded(administration.find("Dosage/DoseUnitOfMeasure"))
            unit_coding = (unit or {}).get("coding", [{}])[0]
            if amount is not None:
                out["doseAndRate"] = [{"doseQuantity": compact({
                    "extension": unit_coding.get("extension", []),
                    "value": amount, "unit": (unit or {}).get("text"),
                    "system": unit_coding.get("system"), "code": unit_coding.get("code")})}]
            out["route"] = coded(administration.find("RouteOfAdministration"))
            out["method"] = coded(administration.find("DoseDeliveryMethod"))
        out["timing"] = _timing(instruction.find("TimingAndDuration"))
    return compact(out) or None


def _code_systems(element: ET.Element | None) -> list[dict[str, Any]]:
    """Sig/CodeSystem (the versions of the code systems a structured Sig uses:
    SNOMEDVersion, FMTVersion) as SIG_CODE_SYSTEM_EXT, one sub-extension per child."""
    versions = [{"url": c.tag, "valueString": text(c)} for c in
                (element if element is not None else []) if isinstance(c.tag, str) and text(c)]
    return [{"url": SIG_CODE_SYSTEM_EXT, "extension": versions}] if versions else []


def _timing(element: ET.Element | None) -> dict[str, Any] | None:
    if element is None:
        return None
    frequency = element.find("Frequency")
    interval = element.find("Interval")
    repeat: dict[str, Any] = {}
    if frequency is not None:
        count = _number(text(frequency, "FrequencyNumericValue"))
        unit = TIME_UNITS.get(text(frequency, "FrequencyUnits/Code"))
        if count is not None and unit and count == int(count) and count > 0:
            repeat = {"frequency": int(count), "period": 1, "periodUnit": unit}
    elif interval is not None:
        every = _number(text(interval, "IntervalNumericValue"))
        unit = TIME_UNITS.get(text(interval, "IntervalUnits/Code"))
        if every is not None and unit and every > 0:
            repeat = {"frequency": 1, "period": every, "periodUnit": unit}
    return {"repeat": repeat} if repeat else None


# -- what a prescription says beyond its parties (NewRx, and orders that repeat it) ----

UCUM = "http://unitsofmeasure.org"
DIAGNOSIS_SYSTEMS = {"ABF": "http://hl7.org/fhir/sid/icd-10-cm",
                     "LD": "http://snomed.info/sct",
                     "DX": "http://hl7.org/fhir/sid/icd-9-cm"}
SUBSTITUTIONS = {"0": True, "1": False}  # 0 substitution allowed, 1 not allowed


def diagnoses(drug: ET.Element) -> list[dict[str, Any]]:
    """Diagnosis Primary/Secondary as CodeableConcepts (ABF ICD-10-CM, LD SNOMED CT, DX
    ICD-9-CM, else urn:conduit:code:ncpdp:<Qualifier>)."""
    out = []
    for diagnosis in drug.findall("Diagnosis"):
        for which in ("Primary", "Secondary"):
            element = diagnosis.find(which)
            code = text(element, "Code")
            if element is None or not code:
                continue
            qualifier = text(element, "Qualifier")
            description = text(element, "Description")
            system = DIAGNOSIS_SYSTEMS.get(qualifier) or CODE_LOCAL + (
                qualifier or "Diagnosis")
            out.append(compact({"coding": [compact({
                "system": system, "code": code, "display": description})],
                "text": description}))
    return out


def days(value: str) -> dict[str, Any] | None:
    """DaysSupply as a Duration in days (UCUM d); None when not a whole number."""
    value = value.strip()
    return ({"value": int(value), "unit": "days", "system": UCUM, "code": "d"}
            if value.isdecimal() else None)


def dispense_request(drug: ET.Element, pharmacy: dict[str, Any] | None
                     ) -> dict[str, Any] | None:
    """Refills, quantity, days supply and the pharmacy as a dispenseRequest."""
    refills = text(drug, "NumberOfRefills")
    return compact({
        "numberOfRepeatsAllowed": int(refills) if refills.isdecimal() else None,
        "quantity": quantity(drug.find("Quantity")),
        "expectedSupplyDuration": days(text(drug, "DaysSupply")),
        "performer": reference(pharmacy) if pharmacy else None,
    }) or None


def substitution(code: str) -> dict[str, Any] | None:
    """Substitutions 0 allowed / 1 not allowed as allowedBoolean; another code kept."""
    if not code:
        return None
    if code in SUBSTITUTIONS:
        return {"allowedBoolean": SUBSTITUTIONS[code]}
    return {"allowedCodeableConcept": {"coding": [
        {"system": CODE_LOCAL + "Substitutions", "code": code}]}}
