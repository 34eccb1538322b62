"""FHIR to SCRIPT building blocks: the inverse of `ncpdp_fhir`, as the nested data
`engine.formats.ncpdp.build.message` writes. A FHIR-to-NewRx mapping (and one from
HL7v2 by way of FHIR-shaped data) writes a patient, prescriber, pharmacy, drug,
quantity and directions the way `ncpdp_fhir` reads them back, so SCRIPT -> FHIR ->
SCRIPT keeps each element both sides map.

Identifiers go back by system: NPI, DEA number, NCPDPID, SSN, MBI, and
urn:conduit:id:ncpdp:<Element> to that element; a patient's other MR identifier
becomes MedicalRecordIdentificationNumberEHR. Codes go back by system too, with the
SCRIPT Qualifier from the coding's extension when `ncpdp_fhir` kept one.

What FHIR allows and SCRIPT does not is written SCRIPT's way: telephone numbers as their
10 digits (one that is not a 10-digit US number is left out), a ZIP+4 without its
hyphen, a country as its 2-letter code (USA is US), units by their NCI code (a UCUM
annotation such as {tbl} or a unit named "tablet" is C48542).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from engine.errors import MappingError
from engine.maplib import ncpdp_fhir as ncpdp

Data = dict[str, Any]
GENDERS = {"male": "M", "female": "F", "unknown": "U", "other": "U"}
UNIT_NAMES = {"d": "day", "h": "hour", "wk": "week", "mo": "month", "a": "year",
              "min": "minute"}
NCI_TIME_UNITS = {unit: code for code, unit in ncpdp.TIME_UNITS.items()}
PRODUCT_QUALIFIERS = frozenset({"ND", "UP", "UPC", "HRI", "NH"})
_NOT_DIGIT = re.compile(r"\D")
_ZIP_PLUS_4 = re.compile(r"(\d{5})-(\d{4})\Z")
_TELECOM_ORDER = ("PrimaryTelephone", "Beeper", "ElectronicMail", "Fax", "HomeTelephone",
                  "WorkTelephone", "OtherTelephone")


def obj(value: Any) -> dict:
    """A JSON object, or {} (a sender's wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list:
    """A JSON array's objects, or []."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def plain(value: Any) -> str:
    """A JSON scalar as SCRIPT text (a Decimal with the digits it was sent with)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value).strip()


class Resources:
    """A resource of one kind (alone, or a Bundle's first of it) and what its
    references point at: contained (#id), Bundle entries by fullUrl or Type/id."""

    def __init__(self, resource: dict, kind: str) -> None:
        found = resource.get("resourceType")
        self.by_ref: dict[str, dict] = {}
        if found == kind:
            self.main = resource
            return
        if found != "Bundle":
            raise MappingError(f"a {found} is not a {kind} or a Bundle", field="resourceType")
        for entry in items(resource.get("entry")):
            res = obj(entry.get("resource"))
            if entry.get("fullUrl"):
                self.by_ref[str(entry["fullUrl"])] = res
            if res.get("id"):
                self.by_ref[f"{res.get('resourceType')}/{res['id']}"] = res
        mains = [obj(e.get("resource")) for e in items(resource.get("entry"))
                 if obj(e.get("resource")).get("resourceType") == kind]
        if not mains:
            raise MappingError(f"the Bundle holds no {kind}", field="Bundle.entry")
        self.main = mains[0]

    def resolve(self, ref: Any, kind: str) -> dict | None:
        """A reference's target of that kind, or None."""
        target = str(obj(ref).get("reference", ""))
        found: dict | None = None
        if target.startswith("#"):
            found = next((c for c in items(self.main.get("contained"))
                          if c.get("id") == target[1:]), None)
        elif target:
            found = self.by_ref.get(target) or self.by_ref.get(
                "/".join(target.split("/")[-2:]))
        return found if found is not None and found.get("resourceType") == kind else None


# ---- people and places -----------------------------------------------------------------


def identification(identifiers: Any, systems: dict[str, str], mrn: bool = False) -> Data:
    """Identifiers as Identification children by system (each element once)."""
    out: Data = {}
    for identifier in items(identifiers):
        system, value = plain(identifier.get("system")), plain(identifier.get("value"))
        if not value:
            continue
        name = systems.get(system) or (system[len(ncpdp.ID_LOCAL):]
                                       if system.startswith(ncpdp.ID_LOCAL) else "")
        if not name and mrn and any(c.get("code") == "MR" for c in items(
                obj(identifier.get("type")).get("coding"))):
            name = "MedicalRecordIdentificationNumberEHR"
        if name and "-" not in name and name not in out:
            out[name] = value
    return out


def name(names: Any) -> Data:
    """The first HumanName (official first) as Name."""
    found = items(names)
    chosen = next((n for n in found if n.get("use") == "official"), found[0] if found else {})
    given, suffix, prefix = (_texts(chosen.get(k)) for k in ("given", "suffix", "prefix"))
    return {"LastName": plain(chosen.get("family")),
            "FirstName": given[0] if given else "",
            "MiddleName": " ".join(given[1:]), "Suffix": suffix[0] if suffix else "",
            "Prefix": prefix[0] if prefix else ""}


def _texts(value: Any) -> list[str]:
    return [plain(v) for v in value if plain(v)] if isinstance(value, list) else []


def address(addresses: Any) -> Data:
    """The first Address as Address."""
    found = items(addresses)
    chosen = next((a for a in found if a.get("use") in ("home", "work")),
                  found[0] if found else {})
    lines = [plain(x) for x in chosen.get("line", []) if plain(x)] \
        if isinstance(chosen.get("line"), list) else []
    country = plain(chosen.get("country"))
    return {"AddressLine1": lines[0] if lines else "",
            "AddressLine2": ", ".join(lines[1:]), "City": plain(chosen.get("city")),
            "StateProvince": plain(chosen.get("state")),
            "PostalCode": postal_code(plain(chosen.get("postalCode"))),
            "CountryCode": "US" if country.upper() in ("USA", "US") else country}


def communication(telecom: Any) -> Data:
    """ContactPoints as CommunicationNumbers (each kind once, in SCRIPT's order): a
    phone of rank 1 (or the first plain one) PrimaryTelephone, home/work phones,
    fax, pager as Beeper, email as ElectronicMail, other phones OtherTelephone."""
    found: Data = {}
    points = sorted(items(telecom), key=_rank)
    for point in points:
        value, system, use = plain(point.get("value")), point.get("system"), point.get("use")
        if not value:
            continue
        if system in ("phone", "fax", "pager"):
            value = phone_number(value)
            if not value:
                continue
        if system == "phone" and use == "home":
            kind = "HomeTelephone"
        elif system == "phone" and use == "work":
            kind = "WorkTelephone"
        elif system == "phone":
            kind = "PrimaryTelephone" if "PrimaryTelephone" not in found else "OtherTelephone"
        else:
            kind = {"fax": "Fax", "pager": "Beeper", "email": "ElectronicMail"}.get(
                str(system), "")
        if kind and kind not in found:
            found[kind] = value if kind == "ElectronicMail" else {"Number": value}
    return {k: found[k] for k in _TELECOM_ORDER if k in found}


def _rank(point: dict) -> Decimal:
    """A ContactPoint's rank for ordering; one that is not a number ranks last."""
    rank = point.get("rank")
    return Decimal(rank) if isinstance(rank, (int, Decimal)) and not isinstance(
        rank, bool) and rank else Decimal(99)


def postal_code(value: str) -> str:
    """A US ZIP+4 as SCRIPT's 9 digits (02134-1234 is 021341234); others as sent."""
    return _ZIP_PLUS_4.sub(r"\1\2", value.strip())


def phone_number(value: str) -> str:
    """A telephone number as SCRIPT's 10 digits (a leading 1 and an extension after x
    dropped); "" when it is not a 10-digit number."""
    digits = _NOT_DIGIT.sub("", value.lower().split("x")[0].split("ext")[0])
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) == 10 else ""


def nci_unit(quantity: dict) -> str:
    """A Quantity's unit as an NCI code: its own when it is NCI's, else one named by its
    code (a UCUM annotation without braces) or its unit text; "" when none is known."""
    if quantity.get("system") == ncpdp.NCI:
        return plain(quantity.get("code"))
    for word in (plain(quantity.get("code")).strip("{}"), plain(quantity.get("unit"))):
        if word.upper() in ncpdp.NCI_UNIT_WORDS:
            return ncpdp.NCI_UNIT_WORDS[word.upper()]
    return ""


def species(resource: dict) -> dict | None:
    """The species of a Patient that is an animal (the core patient-animal extension),
    as a CodeableConcept ({} when unsaid); None for a person."""
    animal = next((e for e in items(resource.get("extension"))
                   if e.get("url") == ncpdp.ANIMAL_EXT), None)
    if animal is None:
        return None
    return next((obj(e.get("valueCodeableConcept")) for e in items(animal.get("extension"))
                 if e.get("url") == "species"), {})


def patient(resource: dict) -> Data:
    """A Patient as Patient/HumanPatient, or an animal (`species`) as NonHumanPatient
    with its Species code."""
    kind = species(resource)
    code = next((plain(c.get("code")) for c in items((kind or {}).get("coding"))
                 if plain(c.get("code"))), "")
    return {"HumanPatient" if kind is None else "NonHumanPatient": {
        "Identification": identification(resource.get("identifier"), {
            ncpdp.SSN: "SocialSecurity", ncpdp.MBI: "MedicareNumber"}, mrn=True),
        "Name": name(resource.get("name")),
        "Gender": GENDERS.get(plain(resource.get("gender")), "U"),
        "DateOfBirth": date(resource.get("birthDate")),
        "Address": address(resource.get("address")),
        "CommunicationNumbers": communication(resource.get("telecom")),
        "Species": {"Code": code} if code else None}}


def prescriber(resource: dict, veterinarian: bool = False) -> Data:
    """A Practitioner as Prescriber/NonVeterinarian (Veterinarian for an animal)."""
    return {"Veterinarian" if veterinarian else "NonVeterinarian": {
        "Identification": identification(resource.get("identifier"), {
            ncpdp.NPI: "NPI", ncpdp.DEA: "DEANumber"}),
        "Name": name(resource.get("name")),
        "Address": address(resource.get("address")),
        "CommunicationNumbers": communication(resource.get("telecom"))}}


# Other names FHIR senders give the NCPDP provider id: THO's code system URL for it, and
# the HL7 Consumer Real-Time Pharmacy Benefit Check guide's naming system.
NCPDP_ID_ALIASES = (
    "http://terminology.hl7.org/CodeSystem/NCPDPProviderIdentificationNumber",
    "http://hl7.org/fhir/us/carin-rtpbc/NamingSystem/rtpbc-NamingSystem-ncpdp-provider-id")


def pharmacy(resource: dict) -> Data:
    """An Organization as Pharmacy (its NCPDP id by THO's naming system or an alias)."""
    systems = {ncpdp.NCPDP_ID: "NCPDPID", ncpdp.NPI: "NPI", ncpdp.DEA: "DEANumber"}
    systems.update(dict.fromkeys(NCPDP_ID_ALIASES, "NCPDPID"))
    return {"Identification": identification(resource.get("identifier"), systems),
            "BusinessName": plain(resource.get("name")),
            "Address": address(resource.get("address")),
            "CommunicationNumbers": communication(resource.get("telecom"))}


# ---- dates, drugs, quantities, directions ------------------------------------------------


def date(value: Any) -> Data:
    """A FHIR date as {"Date"}, a dateTime as {"DateTime"}."""
    text = plain(value)
    if not text:
        return {}
    return {"DateTime": text} if "T" in text else {"Date": text}


def _qualifier(coding: dict) -> str:
    return next((plain(e.get("valueCode")) for e in items(coding.get("extension"))
                 if e.get("url") == ncpdp.QUALIFIER_EXT), "")


def drug(code: dict, medication: dict | None = None, *, term_types: bool = False) -> Data:
    """A drug (a Medication, or a medicationCodeableConcept) as DrugDescription and
    DrugCoded: RxNorm (qualifier kept, else SCD) and urn:conduit:code:ncpdp:<Q> codes as
    DrugDBCode, NDC (ND) and product qualifiers as ProductCode, DrugCoded/Strength from
    the first ingredient's NCI strength and the form, DEASchedule from the extension.
    With `term_types` (fhir-to-ncpdp-newrx@2) the RxNorm code is chosen by the term type
    its coding states (`rxnorm_code`), never assumed to be SCD."""
    codings = items(code.get("coding"))
    description = plain(code.get("text")) or next(
        (plain(c.get("display")) for c in codings if plain(c.get("display"))), "")
    products, databases = [], []
    for coding in codings:
        system, value = plain(coding.get("system")), plain(coding.get("code"))
        if not value:
            continue
        qualifier = _qualifier(coding)
        if system == ncpdp.NDC:
            products.append({"Code": value, "Qualifier": "ND"})
        elif system == ncpdp.RXNORM:
            if not term_types:
                databases.append({"Code": value, "Qualifier": qualifier or "SCD"})
        elif system.startswith(ncpdp.CODE_LOCAL):
            local = system[len(ncpdp.CODE_LOCAL):]
            (products if local in PRODUCT_QUALIFIERS else databases).append(
                {"Code": value, "Qualifier": local})
    chosen = rxnorm_code(codings) if term_types else None
    if chosen:
        databases.insert(0, chosen)
    medication = medication or {}
    schedule = next((obj(e.get("valueCodeableConcept")) for e in items(
        medication.get("extension")) if e.get("url") == ncpdp.DEA_SCHEDULE_EXT), {})
    schedule_code = next((plain(c.get("code")) for c in items(schedule.get("coding"))
                          if plain(c.get("code"))), "")
    return {"DrugDescription": description, "DrugCoded": {
        "ProductCode": products[:1], "Strength": _strength(medication),
        "DrugDBCode": databases[:1],
        "DEASchedule": {"Code": schedule_code} if schedule_code else None}}


# RxNorm term types a prescription names a dispensable drug by, best first (RxNorm's own
# names; SCRIPT spells the packs GPK and BPK), and the qualifier SCRIPT writes for each.
DISPENSABLE = ("SCD", "SBD", "GPCK", "BPCK")
SCRIPT_TERM_TYPE = {"GPCK": "GPK", "BPCK": "BPK"}
RXNORM_SPELLING = {"GPK": "GPCK", "BPK": "BPCK"}


def rxnorm_code(codings: list) -> Data | None:
    """The RxNorm coding to send as DrugDBCode, by the term type its coding states (the
    qualifier extension ncpdp-newrx-to-fhir writes): SCD, then SBD, GPCK, BPCK (a
    dispensable product), else another stated term type as itself (an ingredient is
    IN, not SCD). A coding that states none is not sent: EHRs list an ingredient, a
    clinical and a branded drug side by side (IN, SCD, SBD) and the first is often the
    ingredient, so calling it SCD would name another drug. None when no RxNorm coding
    states its term type (the NDC and the description still name the drug)."""
    stated: dict[str, str] = {}
    for coding in (obj(c) for c in codings):
        value = plain(coding.get("code"))
        kind = _qualifier(coding).upper()
        kind = RXNORM_SPELLING.get(kind, kind)
        if plain(coding.get("system")) == ncpdp.RXNORM and value and \
                kind in ncpdp.RXNORM_TERM_TYPES:
            stated.setdefault(kind, value)
    kind = next((k for k in DISPENSABLE if k in stated), next(iter(stated), ""))
    return {"Code": stated[kind], "Qualifier": SCRIPT_TERM_TYPE.get(kind, kind)} \
        if kind else None


def _strength(medication: dict) -> Data:
    ingredient = next(iter(items(medication.get("ingredient"))), {})
    numerator = obj(obj(ingredient.get("strength")).get("numerator"))
    form = next((plain(c.get("code")) for c in items(obj(medication.get("form")).get(
        "coding")) if c.get("system") == ncpdp.NCI), "")
    value = plain(numerator.get("value"))
    if not value:
        return {}
    unit = plain(numerator.get("code")) if numerator.get("system") == ncpdp.NCI else ""
    return {"StrengthValue": value, "StrengthForm": {"Code": form} if form else None,
            "StrengthUnitOfMeasure": {"Code": unit} if unit else None}


def quantity(value: Any) -> Data:
    """A SimpleQuantity as Quantity: CodeListQualifier from its extension (else 38,
    original quantity), the NCI unit code (`nci_unit`, else C38046, unspecified)."""
    found = obj(value)
    amount = plain(found.get("value"))
    if not amount:
        return {}
    qualifier = next((plain(e.get("valueString")) for e in items(found.get("extension"))
                      if e.get("url") == ncpdp.QUANTITY_QUALIFIER_EXT), "") or "38"
    return {"Value": amount, "CodeListQualifier": qualifier,
            "QuantityUnitOfMeasure": {"Code": nci_unit(found) or "C38046"}}


def coded(concept: Any) -> Data:
    """A CodeableConcept as SCRIPT's Text/Qualifier/Code."""
    found = obj(concept)
    coding = next(iter(items(found.get("coding"))), {})
    system = plain(coding.get("system"))
    qualifier = _qualifier(coding) or ("SNOMED" if system == ncpdp.SNOMED else (
        system[len(ncpdp.CODE_LOCAL):] if system.startswith(ncpdp.CODE_LOCAL) else ""))
    return {"Text": plain(found.get("text")) or plain(coding.get("display")),
            "Qualifier": qualifier, "Code": plain(coding.get("code"))}


def _one(text: str) -> bool:
    try:
        return Decimal(text) == 1
    except ArithmeticError:
        return False


def sig(dosage: dict) -> Data:
    """A Dosage as Sig: SigText from text, CodeSystem from SIG_CODE_SYSTEM_EXT, one
    Instruction from the dose, route, method and a frequency (frequency per 1
    periodUnit) or an interval (once per period; n times every m units is neither)."""
    dose = obj(next(iter(items(dosage.get("doseAndRate"))), {}).get("doseQuantity"))
    unit_coding = {"system": dose.get("system"), "code": dose.get("code"),
                   "extension": dose.get("extension")}
    system = plain(dose.get("system"))
    if system and system != ncpdp.NCI and not system.startswith(ncpdp.CODE_LOCAL):
        # a UCUM (or other) unit SCRIPT has no qualifier for: its NCI code when known,
        # else the unit's text alone
        nci = nci_unit(dose)
        unit_coding = {"system": ncpdp.NCI, "code": nci} if nci else {}
    if unit_coding.get("system") == ncpdp.NCI and not _qualifier(unit_coding):
        # NCI units of presentation (tablet, capsule, mL) are SCRIPT's dose units.
        unit_coding["extension"] = [{"url": ncpdp.QUALIFIER_EXT,
                                     "valueCode": "DoseUnitOfPresentation"}]
    administration = {
        "DoseDeliveryMethod": coded(dosage.get("method")) if dosage.get("method") else None,
        "Dosage": {"DoseQuantity": plain(dose.get("value")),
                   "DoseUnitOfMeasure": coded({"text": dose.get("unit"),
                                               "coding": [unit_coding]})}
        if plain(dose.get("value")) else None,
        "RouteOfAdministration": coded(dosage.get("route")) if dosage.get("route") else None}
    repeat = obj(obj(dosage.get("timing")).get("repeat"))
    unit = plain(repeat.get("periodUnit"))
    timing: Data = {}
    # SCRIPT says "n times per unit" (Frequency) or "once every n units" (Interval);
    # n times every m units (3 times every 2 days) is neither and stays in SigText only.
    period = plain(repeat.get("period")) or "1"
    frequency = plain(repeat.get("frequency"))
    if unit in NCI_TIME_UNITS and frequency:
        units = {"Text": UNIT_NAMES[unit], "Code": NCI_TIME_UNITS[unit]}
        if _one(period):
            timing = {"Frequency": {"FrequencyNumericValue": frequency,
                                    "FrequencyUnits": units}}
        elif _one(frequency):
            timing = {"Interval": {"IntervalNumericValue": period,
                                   "IntervalUnits": units}}
    code_system = next((e for e in items(dosage.get("extension"))
                        if e.get("url") == ncpdp.SIG_CODE_SYSTEM_EXT), {})
    return {"SigText": plain(dosage.get("text")),
            "CodeSystem": {plain(v.get("url")): plain(v.get("valueString"))
                           for v in items(code_system.get("extension"))
                           if plain(v.get("url")).isidentifier()},
            "Instruction": {
        "DoseAdministration": administration, "TimingAndDuration": timing}}
