"""Who pays: IN1/IN2 as Coverage (with the payor Organization and, when the insured is not
the patient, the subscriber as a RelatedPerson), GT1 guarantors on the visit's Account,
and FT1 transactions as ChargeItems.

Coverage keeps the id `engine.maplib.v2_clinical.coverage` gives it (released ADT
mappings make the same Coverage), so every feed updates one resource per policy. The
Account is the patient account of PID-18 (else the visit's, else the patient's): the
resource guarantors, coverages and charges meet on.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib import v2_clinical as v2c
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept
from engine.maplib.v2_fhir import administrative_gender
from engine.maplib.v2_to_fhir import clinical, patient_key, people
from engine.maplib.v2_to_fhir.clinical import PROCEDURE_CODING_SYSTEMS
from engine.maplib.v2_to_fhir.frame import Build

_ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_COPAY_TYPE = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"
_MEDICARE = "http://hl7.org/fhir/sid/us-medicare"


def _follows(b: Build, head: Segment, name: str, stop: str) -> list[Segment]:
    """The `name` segments after `head` up to the next `stop` (IN2/IN3 of one IN1)."""
    segments = b.message.segments
    start = next((i for i, s in enumerate(segments) if s is head), len(segments))
    found = []
    for s in segments[start + 1:]:
        if s.name == stop:
            break
        if s.name == name:
            found.append(s)
    return found


# ---- IN1 / IN2: Coverage ----------------------------------------------------------------


def coverages(b: Build) -> list[dict]:
    """One Coverage per IN1 (its IN2 adding ids), listed on the Account when one is made."""
    assert b.patient is not None
    found = [b.add(r) for r in b.each("IN1", lambda in1, n: _coverage(b, in1))]
    if found and _account_made(b) is not None:
        _link_coverages(b, _account_made(b))
    return found


def _coverage(b: Build, in1: Segment) -> dict:
    assert b.patient is not None
    resource = v2c.coverage(in1, b.facility, b.patient["id"])
    in2 = next(iter(_follows(b, in1, "IN2", "IN1")), None)
    payor = _payor(b, in1)
    if payor is not None:
        resource["payor"] = [b.ref(payor)]
    subscriber = _subscriber(b, in1, in2, resource.get("relationship"))
    if subscriber is not None:
        resource["subscriber"] = b.ref(subscriber)
    holder = _group_employer(b, in1)
    if holder is not None:
        resource["policyHolder"] = b.ref(holder)
    if in2 is not None:
        resource["identifier"] = resource.get("identifier", []) + _in2_identifiers(b, in2)
        if "relationship" not in resource:
            relationship = clinical.relationship(b, in2, 72)
            if relationship:
                resource["relationship"] = relationship
    if "relationship" not in resource:
        resource["relationship"] = UNKNOWN_RELATIONSHIP  # US Core requires one
    if "type" in resource:
        resource["type"] = _plan_type(resource["type"])
    else:
        kind = cwe_to_codeable_concept(dt.first_rep(in1, 47), b.facility, _COVERAGE_TYPE)
        if kind:
            resource["type"] = kind
    deductible = _money(in1, 37)
    if deductible:
        resource["costToBeneficiary"] = [{
            "type": {"coding": [{"system": _COPAY_TYPE, "code": "deductible",
                                 "display": "Deductible"}]},
            "valueMoney": deductible,
        }]
    if dt.present(in1.value(55)).upper() == "D":
        resource["status"] = "entered-in-error"
    return compact(resource)


# Neither IN1-17 nor IN2-72 says how the patient is related to the insured.
UNKNOWN_RELATIONSHIP = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown",
    "display": "Unknown"}]}
# IN1-15 plan types that are v3-ActCode insurance policy codes (Coverage.type's
# preferred binding); others stay the sender's codes.
PLAN_TYPE = {"PPO": "preferred provider organization policy",
             "HMO": "health maintenance organization policy",
             "POS": "point of service policy", "EPO": "exclusive provider organization policy",
             "DENTAL": "dental care policy", "DENTPRG": "dental program",
             "VISPOL": "vision care policy", "AUTOPOL": "automobile policy",
             "WCBPOL": "worker's compensation"}
# Table 0309 coverage type (IN1-47), the type when IN1-15 is not sent.
_COVERAGE_TYPE = Bound(tables.V2_SYSTEM + "0309", {"H": "Hospital/institutional",
                                                  "P": "Physician/professional",
                                                  "B": "Both hospital and physician"})


def _plan_type(kind: dict) -> dict:
    """IN1-15 with the v3-ActCode coding first when its code is one of PLAN_TYPE."""
    codings = kind.get("coding", [])
    code = codings[0]["code"].upper() if codings else ""
    if code not in PLAN_TYPE or codings[0]["system"].startswith("http"):
        return kind
    act = {"system": tables.V3_ACT_CODE, "code": code, "display": PLAN_TYPE[code]}
    return {**kind, "coding": [act, *codings]}


def _payor(b: Build, in1: Segment) -> dict | None:
    """IN1-3/IN1-4 as the payor Organization, with IN1-5 address, IN1-6 contact and
    IN1-7 phone."""
    ident = next((i for i in (dt.cx_to_identifier(r, b.facility) for r in in1.repetitions(3))
                  if i), None)
    org = people.organization(b, in1.value(4), ident)
    if org is None:
        return None
    org.setdefault("type", [{"coding": [{"system": _ORGANIZATION_TYPE, "code": "pay",
                                         "display": "Payer"}]}])
    telecom = [t for t in (dt.xtn_to_contact_point(r, "work") for r in in1.repetitions(7)) if t]
    address = [a for a in map(dt.xad_to_address, in1.repetitions(5)) if a]
    contact = next((n for n in map(dt.xpn_to_human_name, in1.repetitions(6)) if n), None)
    extra = compact({"telecom": telecom, "address": address,
                     "contact": [{"name": contact}] if contact else None})
    for key, value in extra.items():
        org.setdefault(key, value)
    return org


def _group_employer(b: Build, in1: Segment) -> dict | None:
    """IN1-11 insured's group employer (IN1-10 its id) as the policy holder: the
    organization that holds a group policy."""
    name = dt.present(in1.value(11))
    number = next((i for i in (dt.cx_to_identifier(r, b.facility) for r in in1.repetitions(10))
                   if i), None)
    if not name:
        return None
    return people.organization(b, name, number)


def _subscriber(b: Build, in1: Segment, in2: Segment | None,
                relationship: dict | None) -> dict | None:
    """The insured as a RelatedPerson when IN1-17 is not SEL and IN1-16 names someone:
    IN1-18 birth date, IN1-19 address, IN1-43 sex, IN2-2 SSN, IN2-63 phone."""
    assert b.patient is not None
    codes = [c["code"] for c in (relationship or {}).get("coding", [])]
    name = next((n for n in map(dt.xpn_to_human_name, in1.repetitions(16)) if n), None)
    if not codes or "self" in codes or name is None:
        return None  # an IN1-17 outside table 0063 might mean self: the name stays a display
    ssn = _ssn(in2.value(2)) if in2 is not None else None
    key = {"system": f"Patient/{b.patient['id']}", "value": f"IN1|{clinical.name_key(name)}"}
    telecom = ([t for t in (dt.xtn_to_contact_point(r, "home") for r in in2.repetitions(63)) if t]
               if in2 is not None else [])
    return clinical.same_person(b, compact({
        "resourceType": "RelatedPerson",
        "id": resource_id("RelatedPerson", b.facility, key),
        "identifier": [ssn] if ssn else None,
        "patient": b.patient_ref(),
        "relationship": [r for r in (clinical.relationship(b, in1, 17),) if r],
        "name": [name],
        "telecom": telecom,
        "gender": administrative_gender(in1, 43),
        "birthDate": dt.to_fhir_date(in1.value(18), "IN1-18"),
        "address": [a for a in map(dt.xad_to_address, in1.repetitions(19)) if a],
    }))


def _ssn(value: str) -> dict | None:
    value = dt.present(value)
    if not value:
        return None
    return {"type": {"coding": [{"system": tables.V2_0203, "code": "SS",
                                 "display": tables.IDENTIFIER_TYPE["SS"]}]},
            "system": dt.US_SSN_SYSTEM, "value": value}


def _in2_identifiers(b: Build, in2: Segment) -> list[dict]:
    """IN2-6 Medicare and IN2-8 Medicaid numbers, IN2-61 member numbers."""
    found = []
    medicare, medicaid = dt.present(in2.value(6)), dt.present(in2.value(8))
    if medicare:
        found.append({"type": {"coding": [{"system": tables.V2_0203, "code": "MC",
                                           "display": "Patient's Medicare number"}]},
                      "system": _MEDICARE, "value": medicare})
    if medicaid:
        found.append({"type": {"coding": [{"system": tables.V2_0203, "code": "MA",
                                           "display": "Patient Medicaid number"}]},
                      "value": medicaid})
    for rep in in2.repetitions(61):
        ident = dt.cx_to_identifier(rep, b.facility)
        if ident:
            ident.setdefault("type", {"coding": [{"system": tables.V2_0203, "code": "MB",
                                                  "display": "Member Number"}]})
            found.append(ident)
    return found


def _money(segment: Segment, number: int, component: int = 1) -> dict | None:
    """A CP/MO amount (MO.1 quantity & MO.2 currency, in component 1) as Money."""
    raw = dt.present(segment.value(number, component, 1))
    if not raw:
        return None
    value = dt.to_fhir_decimal(raw, f"{segment.name}-{number}")
    if value is None:
        return None
    currency = dt.present(segment.value(number, component, 2)).upper()
    return compact({"value": value,
                    "currency": currency if len(currency) == 3 and currency.isalpha() else None})


# ---- the Account ------------------------------------------------------------------------

_ACCOUNT_TYPE = {"coding": [{"system": tables.V3_ACT_CODE, "code": "PBILLACCT",
                             "display": "patient billing account"}]}


def account(b: Build) -> dict:
    """The patient account of the message (PID-18, else the visit's, else the
    patient's), made once and kept in `b`, listing the coverages made so far."""
    assert b.patient is not None
    found = _account_made(b)
    if found is not None:
        return found
    pid = b.message.segment("PID")
    number = dt.first_rep(pid, 18)
    ident = dt.cx_to_identifier(number, b.facility) if number is not None else None
    if ident is not None:
        ident.setdefault("type", {"coding": [{"system": tables.V2_0203, "code": "AN",
                                              "display": tables.IDENTIFIER_TYPE.get(
                                                  "AN", "Account number")}]})
        key = {"system": ident["system"], "value": ident["value"]}
    elif b.encounter is not None:
        key = {"system": f"Encounter/{b.encounter['id']}", "value": "account"}
    else:
        key = {"system": f"Patient/{b.patient['id']}", "value": "account"}
    made = b.add(compact({
        "resourceType": "Account",
        "id": resource_id("Account", *(
            patient_key.number_key(number, key, b.facility, b.patient["id"])
            if ident is not None and b.rules.numbers_within_patient else (b.facility, key))),
        "identifier": [ident] if ident else None,
        "status": "active",
        "type": _ACCOUNT_TYPE,
        "subject": [b.patient_ref()],
    }))
    assert made is not None
    b.account = made  # type: ignore[attr-defined]
    _link_coverages(b, made)
    return made


def patient_account(b: Build) -> dict | None:
    """PID-18's account when it is sent (or the guarantors made one), on the visit; None
    when neither: an account number is a fact the reference converter keeps from every
    message that has a PID, but an account without one would say nothing."""
    pid = b.message.segment("PID")
    if _account_made(b) is None and (pid is None or not dt.present(pid.value(18))):
        return None
    made = account(b)
    if b.encounter is not None:
        b.encounter.setdefault("account", [b.ref(made)])
    return made


def _account_made(b: Build) -> dict | None:
    return getattr(b, "account", None)


def _link_coverages(b: Build, acct: dict) -> None:
    listed = acct.setdefault("coverage", [])
    for n, cov in enumerate(b.resources("Coverage"), start=1):
        ref = b.ref(cov)
        if all(c["coverage"] != ref for c in listed):
            listed.append(compact({"coverage": ref, "priority": cov.get("order", n)}))
    if not listed:
        acct.pop("coverage")


# ---- GT1: guarantors --------------------------------------------------------------------


def guarantors(b: Build) -> list[dict]:
    """Each GT1's guarantor (a RelatedPerson, the Patient for GT1-11 SEL, or the GT1-21
    Organization) on the Account's guarantor list; returns the resources made."""
    assert b.patient is not None
    made: list[dict] = []

    def one(gt1: Segment, n: int) -> dict | None:
        party = _guarantor_party(b, gt1, n)
        if party is None:
            raise MappingError("names no guarantor (GT1-3 and GT1-21 are empty)",
                               field="GT1-3")
        acct = account(b)
        on_hold = dt.present(gt1.value(22)).upper()
        entry = compact({
            "party": b.ref(party),
            "onHold": {"Y": True, "N": False}.get(on_hold),
            "period": compact({"start": dt.to_fhir_date(gt1.value(13), "GT1-13"),
                               "end": dt.to_fhir_date(gt1.value(14), "GT1-14")}),
        })
        listed = acct.setdefault("guarantor", [])
        if all(g["party"] != entry["party"] for g in listed):
            listed.append(entry)
        if party is not b.patient:
            made.append(party)
        if acct not in made:
            made.append(acct)
        return party

    b.each("GT1", one)
    return made


def _guarantor_party(b: Build, gt1: Segment, n: int) -> dict | None:
    assert b.patient is not None
    relationship = clinical.relationship(b, gt1, 11)
    names = [x for x in map(dt.xpn_to_human_name, gt1.repetitions(3)) if x]
    if dt.present(gt1.value(11)).upper() == "SEL":
        return b.patient
    if not names:
        org_name = dt.present(gt1.value(21))
        return people.organization(b, org_name) if org_name else None
    number = next((i for i in (dt.cx_to_identifier(r, b.facility) for r in gt1.repetitions(2))
                   if i), None)
    label = number["value"] if number else dt.present(gt1.value(1)) or str(n)
    key = {"system": f"Patient/{b.patient['id']}", "value": f"GT1|{label}"}
    telecom = [dt.xtn_to_contact_point(r, "home") for r in gt1.repetitions(6)]
    telecom += [dt.xtn_to_contact_point(r, "work") for r in gt1.repetitions(7)]
    ssn = _ssn(gt1.value(12))
    guarantor_role = {"coding": [{"system": tables.V2_0131, "code": "O", "display": "Other"}],
                      "text": "Guarantor"}
    return clinical.same_person(b, compact({
        "resourceType": "RelatedPerson",
        "id": resource_id("RelatedPerson", b.facility, key),
        "identifier": [i for i in (number, ssn) if i],
        "patient": b.patient_ref(),
        "relationship": [r for r in (relationship, guarantor_role) if r],
        "name": names,
        "telecom": [t for t in telecom if t],
        "gender": administrative_gender(gt1, 9),
        "birthDate": dt.to_fhir_date(gt1.value(8), "GT1-8"),
        "address": [a for a in map(dt.xad_to_address, gt1.repetitions(5)) if a],
    }))


# ---- FT1: ChargeItem --------------------------------------------------------------------

# Table 0017 transaction type: a charge is billable; credits, payments and adjustments
# are kept as ChargeItems of unknown status, their type said in a note.
TRANSACTION_TYPE = {"CG": "Charge", "CD": "Credit", "PY": "Payment", "AJ": "Adjustment",
                    "CO": "Co-payment"}
# Under the `ft1_currency_and_credits` rule (hl7v2-to-fhir@2): CR, the spelling of a
# credit many billing systems use, is a credit too, and a credit is a negative amount
# however it was signed (a receiver summing the ChargeItems of an Account must not add
# a credit as a charge).
VENDOR_TRANSACTION_TYPE = {**TRANSACTION_TYPE, "CR": "Credit"}
CREDITS = frozenset({"CD", "CR"})
_PERFORMER = {"coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": "PRF",
                          "display": "performer"}]}
_ORDERER = {"coding": [{"system": tables.V2_0443, "code": "OP",
                        "display": "Ordering Provider"}]}


def charges(b: Build) -> list[dict]:
    """One ChargeItem per FT1 (and the Procedure of its FT1-25 code), on the Account."""
    assert b.patient is not None
    return [b.add(r) for r in b.each("FT1", lambda ft1, n: _charge(b, ft1, n))]


def _charge(b: Build, ft1: Segment, n: int) -> dict:
    """The ChargeItem of an FT1; fails naming FT1-7 when neither FT1-7 nor FT1-8 says
    what was charged (ChargeItem.code is required)."""
    assert b.patient is not None
    code = cwe_to_codeable_concept(dt.first_rep(ft1, 7), b.facility, None,
                                   PROCEDURE_CODING_SYSTEMS)
    description = dt.present(ft1.value(8)) or dt.present(ft1.value(9))
    if code is None and not description:
        raise MappingError("has no transaction code, nor a description in FT1-8",
                           field="FT1-7")
    code = code or {}
    if description and "text" not in code:
        code["text"] = description
    transaction = dt.present(ft1.value(2))
    ident = ({"system": people.local_system(b, "transaction"), "value": transaction}
             if transaction else None)
    start = dt.to_fhir_datetime(ft1.value(4, 1), "FT1-4", b.offset)
    end = dt.to_fhir_datetime(ft1.value(4, 2), "FT1-4", b.offset)
    scope = f"Encounter/{b.encounter['id']}" if b.encounter else f"Patient/{b.patient['id']}"
    key = ident or {"system": scope, "value": f"FT1|{dt.present(ft1.value(1)) or n}|"
                    f"{v2c._key(code)}|{start or ''}"}
    kind = dt.present(ft1.value(6)).upper()
    quantity = dt.to_fhir_decimal(ft1.value(10), "FT1-10")
    price = _ft1_amount(b, ft1, kind)
    kinds = VENDOR_TRANSACTION_TYPE if b.rules.ft1_currency_and_credits else TRANSACTION_TYPE
    performers = [{"function": _PERFORMER, "actor": b.ref(p)}
                  for p in _xcns(b, ft1, 20)]
    performers += [{"function": _ORDERER, "actor": b.ref(p)} for p in _xcns(b, ft1, 21)]
    enterer = next(iter(_xcns(b, ft1, 24)), None)
    procedure = _charged_procedure(b, ft1, start)
    services = [procedure] if procedure else []
    for pr1 in _follows(b, ft1, "PR1", "FT1"):  # a P11's FINANCIAL_PROCEDURE group
        done = clinical.procedure_of(b, pr1)
        if done is not None and done not in services:
            services.append(done)
    product = cwe_to_codeable_concept(dt.first_rep(ft1, 29), b.facility, Bound(tables.NDC))
    return compact({
        "resourceType": "ChargeItem",
        "id": resource_id("ChargeItem", b.facility, key),
        "identifier": [ident] if ident else None,
        "status": "billable" if kind in ("CG", "CO") else "unknown",
        "code": code,
        "subject": b.patient_ref(),
        "context": b.encounter_ref(),
        "occurrencePeriod": {"start": start, "end": end} if start and end else None,
        "occurrenceDateTime": start if not end else None,
        "performer": performers,
        "costCenter": _department(b, ft1),
        "quantity": {"value": quantity} if quantity is not None else None,
        "priceOverride": price,
        "enteredDate": dt.to_fhir_datetime(ft1.value(5), "FT1-5", b.offset),
        "enterer": b.ref(enterer) if enterer else None,
        "reason": [c for c in (cwe_to_codeable_concept(r, b.facility, None,
                                                       tables.DIAGNOSIS_CODING_SYSTEMS)
                               for r in ft1.repetitions(19)) if c],
        "service": [b.ref(p) for p in services],
        "productCodeableConcept": product,
        "account": [b.ref(account(b))],
        "note": ([{"text": f"Transaction type: {kinds.get(kind, kind)}"}]
                 if kind and kind != "CG" else []) + clinical.notes_after(b, ft1),
    })


def _ft1_amount(b: Build, ft1: Segment, kind: str) -> dict | None:
    """FT1-11, else FT1-12, as Money. Under `ft1_currency_and_credits`, also the currency
    of a sender that writes the amount as an MO (`22.50^USD`: CP.2 is a two-letter price
    type, so three letters there are a currency), and a credit as a negative amount."""
    extended = _money(ft1, 11)
    price = extended or _money(ft1, 12)
    if price is None or not b.rules.ft1_currency_and_credits:
        return price
    sent = dt.present(ft1.value(11 if extended else 12, 2)).upper()
    if "currency" not in price and len(sent) == 3 and sent.isalpha():
        price["currency"] = sent
    if kind in CREDITS and price["value"] > 0:
        price["value"] = -price["value"]
    return price


def _xcns(b: Build, segment: Segment, number: int) -> list[dict]:
    return [p for p in (people.practitioner(b, r) for r in segment.repetitions(number)) if p]


def _department(b: Build, ft1: Segment) -> dict | None:
    """FT1-13 department as the cost center Organization."""
    code, name = dt.present(ft1.value(13)), dt.present(ft1.value(13, 2))
    if not code and not name:
        return None
    ident = {"system": people.local_system(b, "department"), "value": code} if code else None
    org = people.organization(b, name or code, ident)
    return b.ref(org) if org else None


def _charged_procedure(b: Build, ft1: Segment, performed: str | None) -> dict | None:
    """FT1-25 procedure code as a completed Procedure (the same one a PR1 with that code
    and date makes)."""
    from engine.maplib.v2_to_fhir.clinical import procedure_key

    assert b.patient is not None
    code = cwe_to_codeable_concept(dt.first_rep(ft1, 25), b.facility, None,
                                   PROCEDURE_CODING_SYSTEMS)
    if code is None:
        return None
    return b.add(compact({
        "resourceType": "Procedure",
        "id": resource_id("Procedure", b.facility, procedure_key(b, code, performed)),
        "status": "completed",
        "code": code,
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "performedDateTime": performed,
    }), merge=True)
