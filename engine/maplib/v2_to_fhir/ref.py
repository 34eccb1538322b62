"""REF: a patient referral (I12 new, I13 modified, I14 cancelled) as a ServiceRequest
with the people and facts it carries: the PRD providers (referring one as requester,
referred-to and consulting ones as performers, each with a PractitionerRole), the
payor's AUT authorization (a preauthorization ClaimResponse), the patient, visit,
diagnoses (its reasons), procedures (one without a date, or dated after the message, is
one the referral asks for: status preparation, based on it), allergies, results,
guarantors, the PID-18 account and coverages (its insurance).

RF1-1 status sets the request's status (A accepted, P pending: active; R rejected,
E expired: revoked), an I14 cancels it (revoked) and RF1-25 D marks it entered in error.
The request is keyed on RF1-6 (originating referral id), else RF1-11, else the patient,
RF1-3 type and RF1-7 date, so the I13 and I14 about a referral update the I12's request.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, tolerate
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import Bound, cwe_to_codeable_concept
from engine.maplib.v2_to_fhir import clinical, financial, orders, people, results, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("I12", "I13", "I14")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "EpisodeOfCare",
    "Location", "Practitioner", "PractitionerRole",
    "Organization", "ServiceRequest", "Condition", "Procedure", "AllergyIntolerance", "Observation",
    "Device", "DocumentReference", "Coverage", "ClaimResponse", "Account", "Provenance",
    "MessageHeader",
)
_NPI = "http://hl7.org/fhir/sid/us-npi"
_REFERRAL = {"coding": [{"system": tables.SNOMED, "code": "3457005",
                         "display": "Patient referral"}]}
# Table 0283 referral status -> ServiceRequest.status.
REFERRAL_STATUS = {"A": "active", "P": "active", "R": "revoked", "E": "revoked"}
# Table 0280 referral priority.
REFERRAL_PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}
# Tables 0281 type, 0282 disposition, 0284 category, 0336 reason.
REFERRAL_TYPE = {"Lab": "Laboratory", "Rad": "Radiology", "Med": "Medical",
                 "Skn": "Skilled Nursing", "Psy": "Psychiatric", "Hom": "Home Care"}
REFERRAL_DISPOSITION = {"WR": "Send Written Report", "RP": "Return Patient After Evaluation",
                        "AM": "Assume Management", "SO": "Second Opinion"}
REFERRAL_CATEGORY = {"I": "Inpatient", "O": "Outpatient", "A": "Ambulatory", "E": "Emergency"}
REFERRAL_REASON = {"S": "Second Opinion", "P": "Patient Preference", "O": "Provider Ordered",
                   "W": "Work Load"}
# Table 0286 provider role: who asks (requester) and who is asked (performer).
REQUESTERS = frozenset({"RP", "RF", "REF"})
PERFORMERS = frozenset({"RT", "CP", "CON"})


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "REF")
    if b.event not in EVENTS:
        return Skip(f"REF^{b.event or '(no event)'} is not a referral event this mapping reads")
    people.patient(b)
    visit.encounter(b)
    people.assigners(b)
    people.related_persons(b)
    people.mother(b)
    allergies = clinical.allergies(b)
    diagnoses = clinical.conditions(b)
    procedures = clinical.procedures(b)
    observations = _results(b, message)
    coverages = financial.coverages(b)
    coverages += b.each("AUT", lambda aut, n: b.add(authorization(b, aut, coverages)))
    financial.guarantors(b)
    if dt.present(message.value("PID-18")):
        financial.account(b)
    providers = b.each("PRD", lambda prd, n: (prd, provider(b, prd)))
    rf1 = message.segment("RF1")
    if rf1 is None:
        tolerate(MappingError("the RF1 segment is missing: no referral, only the facts "
                              "about the patient are mapped", field="RF1"))
    else:
        request = guard("RF1", 1, lambda: b.add(referral(
            b, rf1, [(prd, who) for prd, who in providers if who is not None],
            reasons=diagnoses, supporting=[*observations, *allergies],
            insurance=coverages, notes=_notes(message))))
        _planned(b, procedures, request)
    visit.episode_of_care(b)
    return finish(b)


def _planned(b: Build, procedures: list[dict], request: dict | None) -> None:
    """A referral's PR1 without a date, or dated after the message, is a procedure it asks
    for (status preparation, based on the referral), not one done."""
    sent = (dt.to_fhir_datetime(b.sent, "MSH-7", b.offset) or "")[:10]
    for procedure in procedures:
        done = procedure.get("performedDateTime") or procedure.get(
            "performedPeriod", {}).get("start", "")
        if done and (not sent or done[:10] <= sent):
            continue
        procedure["status"] = "preparation"
        if request is not None:
            procedure["basedOn"] = [b.ref(request)]


def referral(b: Build, rf1: Segment, providers: list[tuple[Segment, dict]], *,
             reasons: list[dict], supporting: list[dict], insurance: list[dict],
             notes: list[dict]) -> dict:
    """The ServiceRequest of RF1 (see the module docstring)."""
    assert b.patient is not None
    numbers = [i for i in (dt.ei_to_identifier(r, b.facility, tables.PLACER_IDENTIFIER)
                           for r in rf1.repetitions(6)) if i]
    numbers += [i for i in (dt.ei_to_identifier(r, b.facility, tables.FILLER_IDENTIFIER)
                            for r in rf1.repetitions(11)) if i]
    kind = _coded(b, rf1, 3, "0281", REFERRAL_TYPE)
    start = dt.to_fhir_datetime(rf1.value(7), "RF1-7", b.offset)
    if numbers:
        key = {"system": numbers[0]["system"], "value": numbers[0]["value"]}
    else:
        label = (kind or {}).get("text") or next(
            (c["code"] for c in (kind or {}).get("coding", [])), "")
        key = {"system": f"Patient/{b.patient['id']}", "value": f"RF1|{label}|{start or ''}"}
    requesters = [who for prd, who in providers if _role(prd) in REQUESTERS]
    performers = [who for prd, who in providers if _role(prd) in PERFORMERS]
    performers += _authorized(b, rf1, performers)
    category = _coded(b, rf1, 5, "0284", REFERRAL_CATEGORY)
    return compact({
        "resourceType": "ServiceRequest",
        "id": resource_id("ServiceRequest", b.facility, key),
        "identifier": numbers,
        "status": _status(b, rf1),
        "intent": "order",
        "category": [_REFERRAL, *([category] if category else [])],
        "priority": _priority(rf1),
        "code": kind or _REFERRAL,
        "orderDetail": [c for c in (_coded(b, rf1, 4, "0282", REFERRAL_DISPOSITION),) if c],
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "occurrencePeriod": compact({
            "start": start,
            "end": dt.to_fhir_datetime(rf1.value(8), "RF1-8", b.offset),
        }),
        "authoredOn": dt.to_fhir_datetime(rf1.value(9), "RF1-9", b.offset),
        "requester": b.ref(requesters[0]) if requesters else None,
        "performer": [b.ref(p) for p in performers],
        "reasonCode": [c for c in (_coded_rep(b, r, "0336", REFERRAL_REASON)
                                   for r in rf1.repetitions(10)) if c]
        + [{"text": t} for t in (dt.present(rf1.value(14)),) if t],
        "reasonReference": [b.ref(c) for c in reasons],
        "insurance": [b.ref(c) for c in insurance],
        "supportingInfo": [b.ref(s) for s in supporting],
        "note": [*notes, *({"text": t} for t in (dt.present(rf1.value(24)),) if t)],
    })


def _authorized(b: Build, rf1: Segment, known: list[dict]) -> list[dict]:
    """RF1-19 authorized provider (XON) and RF1-20 authorized health professional (XCN),
    v2.7+, as performers the PRDs did not already name."""
    found: list[dict] = []
    org_id = dt.present(rf1.value(19, 10))
    org = people.organization(b, rf1.value(19), {"system": people.local_system(
        b, "organization"), "value": org_id} if org_id else None)
    for who in (org, *(people.practitioner(b, r) for r in rf1.repetitions(20))):
        if who is not None and who not in known and who not in found:
            found.append(who)
    return found


def _results(b: Build, message: Hl7Message) -> list[dict]:
    """The OBSERVATION groups: each OBR (the test that was done) as a ServiceRequest its
    OBX Observations are based on; OBX outside a group alone."""
    made: list[dict] = []
    obr: Segment | None = None
    obxs: list[Segment] = []

    def flush() -> None:
        if not obxs and obr is None:
            return
        request = orders.service_request(b, None, obr) if obr is not None else None
        made.extend(results.observations(b, list(obxs),
                                         based_on=[request] if request else None,
                                         context=results.Context(otherwise="survey")))

    for segment in message.segments:
        if segment.name == "OBR":
            flush()
            obr, obxs = segment, []
        elif segment.name == "OBX":
            obxs.append(segment)
        elif segment.name not in ("NTE", "OBX"):
            flush()
            obr, obxs = None, []
    flush()
    return made


# The NTE that follow these segments are the referral's own comments.
_REFERRAL_NOTE_ANCHORS = frozenset({"RF1", "PV1", "PV2"})


def _notes(message: Hl7Message) -> list[dict]:
    notes: list[dict] = []
    anchor = ""
    for segment in message.segments:
        if segment.name != "NTE":
            anchor = segment.name
            continue
        if anchor in _REFERRAL_NOTE_ANCHORS:
            text = "\n".join(dt.present(r.value(1)) for r in segment.repetitions(3)).strip()
            if text:
                notes.append({"text": text})
    return notes


def _status(b: Build, rf1: Segment) -> str:
    if dt.present(rf1.value(25)).upper() == "D":
        return "entered-in-error"
    if b.event == "I14":
        return "revoked"
    code = dt.present(rf1.value(1)).upper()
    if not code:
        return "active"
    if code not in REFERRAL_STATUS:
        return tolerate(MappingError("is not a referral status of table 0283 (A, P, R, E); "
                                     "read as active", field="RF1-1"), "active")
    return REFERRAL_STATUS[code]


def _priority(rf1: Segment) -> str | None:
    code = dt.present(rf1.value(2)).upper()
    return REFERRAL_PRIORITY.get(code) or tables.PRIORITY.get(code)


def _coded(b: Build, segment: Segment, number: int, table: str,
           displays: dict[str, str]) -> dict | None:
    rep = dt.first_rep(segment, number)
    return _coded_rep(b, rep, table, displays) if rep is not None else None


def _coded_rep(b: Build, rep, table: str, displays: dict[str, str]) -> dict | None:
    """A CWE of a v2 table: the table's coding (its code in the table's spelling, case
    as the table has it) when it is one of the table's codes, else as sent."""
    bound = Bound(tables.V2_SYSTEM + table, displays)
    return cwe_to_codeable_concept(rep, b.facility, bound)


def _role(prd: Segment) -> str:
    return dt.present(prd.value(1)).upper()


# ---- AUT: the payor's authorization -------------------------------------------------

_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"


def authorization(b: Build, aut: Segment, coverages: list[dict]) -> dict:
    """AUT as a preauthorization ClaimResponse: AUT-6 id, AUT-4/5 period, AUT-7 limit,
    AUT-8/9 requested and authorized treatments (as notes), AUT-10 created (else the
    message time), the AUT-3/AUT-2 payor (else the coverage's) as insurer, the Coverage
    of the AUT-1 plan as its insurance; fails naming
    AUT-3 when no payor is known (ClaimResponse.insurer is required)."""
    assert b.patient is not None
    ident = dt.first_ei(aut, 6, b.facility)
    company, name = dt.present(aut.value(2)), dt.present(aut.value(3))
    insurer = next((o for o in b.resources("Organization")  # the IN1 payor, named so
                    if name and o.get("name", "").upper() == name.upper()), None)
    insurer = insurer or people.organization(
        b, name, {"system": people.local_system(b, "payor"), "value": company}
        if company else None)
    if insurer is None and coverages:
        insurer_ref = coverages[0]["payor"][0]
    elif insurer is not None:
        insurer_ref = b.ref(insurer)
    else:
        raise MappingError("is empty and so is AUT-2, and no IN1 names a payor: the "
                           "authorization names no insurer", field="AUT-3")
    created = (dt.to_fhir_datetime(aut.value(10), "AUT-10", b.offset)
               or dt.to_fhir_datetime(b.sent, "MSH-7", b.offset))
    if created is None:
        raise MappingError("is empty and so is MSH-7: the authorization has no date",
                           field="AUT-10")
    key = ({"system": ident["system"], "value": ident["value"]} if ident else
           {"system": f"Patient/{b.patient['id']}", "value": f"AUT|{company}|{created}"})
    limit = _money(aut, 7)
    plan = dt.present(aut.value(1)).upper()
    covered = next((c for c in coverages if c["resourceType"] == "Coverage" and plan and any(
        k.get("value", "").upper() == plan for k in c.get("class", []))), None)
    inpatient = dt.present(b.message.value("PV1-2")).upper() == "I"
    kind = "institutional" if inpatient else "professional"
    counts = [f"{label}: {dt.present(aut.value(n))}" for n, label in
              ((8, "Requested treatments"), (9, "Authorized treatments"))
              if dt.present(aut.value(n))]
    return compact({
        "resourceType": "ClaimResponse",
        "id": resource_id("ClaimResponse", b.facility, key),
        "identifier": [ident] if ident else None,
        "status": "active",
        "type": {"coding": [{"system": _CLAIM_TYPE, "code": kind,
                             "display": kind.capitalize()}]},
        "use": "preauthorization",
        "patient": b.patient_ref(),
        "created": created,
        "insurer": insurer_ref,
        "outcome": "complete",
        "preAuthRef": ident["value"] if ident else None,
        "preAuthPeriod": compact({
            "start": dt.to_fhir_date(aut.value(4), "AUT-4"),
            "end": dt.to_fhir_date(aut.value(5), "AUT-5"),
        }),
        "total": [{"category": {"coding": [{"system": _ADJUDICATION, "code": "benefit",
                                            "display": "Benefit Amount"}]},
                   "amount": limit}] if limit else None,
        "processNote": [{"text": t} for t in counts],
        "insurance": [{"sequence": 1, "focal": True, "coverage": b.ref(covered)}]
        if covered else None,
    })


def _money(segment: Segment, number: int) -> dict | None:
    raw = dt.present(segment.value(number, 1, 1))
    value = dt.to_fhir_decimal(raw, f"{segment.name}-{number}") if raw else None
    if value is None:
        return None
    currency = dt.present(segment.value(number, 1, 2)).upper()
    return compact({"value": value, "currency": currency or None})


# ---- PRD: providers ---------------------------------------------------------------------


def provider(b: Build, prd: Segment) -> dict | None:
    """A PRD's provider: a Practitioner (PRD-2 name, PRD-7 ids, PRD-3 address, PRD-5
    telecom), else the PRD-10 Organization; None when it names neither."""
    names = [n for n in map(dt.xpn_to_human_name, prd.repetitions(2)) if n]
    ids = [i for i in (_pln(b, r) for r in prd.repetitions(7)) if i]
    telecom = [t for t in (dt.xtn_to_contact_point(r, "work") for r in prd.repetitions(5)) if t]
    address = [a for a in map(dt.xad_to_address, prd.repetitions(3)) if a]
    organization = _organization(b, prd)
    if not names and not ids:
        return organization
    text = _display(names[0]) if names else ""
    key = ({"system": ids[0]["system"], "value": ids[0]["value"]} if ids
           else {"system": "name", "value": text.upper()})
    if names:
        names[0] = {**names[0], "text": text}
    rid = resource_id("Practitioner", b.facility, key)
    if not ids:
        ids = [people.resource_identifier(rid)]
    person = b.add(compact({
        "resourceType": "Practitioner",
        "id": rid,
        "identifier": ids,
        "name": names,
        "telecom": telecom,
        "address": address,
    }), merge=True)
    assert person is not None
    _practitioner_role(b, prd, person, organization, telecom)
    return person


# Table 0286 provider role.
PROVIDER_ROLE = {"RP": "Referring Provider", "PP": "Primary Care Provider",
                 "CP": "Consulting Provider", "RT": "Referred to Provider"}


def _practitioner_role(b: Build, prd: Segment, person: dict, organization: dict | None,
                       telecom: list[dict]) -> dict | None:
    """The PRD's role (PRD-1) of the practitioner, at the PRD-10 organization and PRD-4
    location, for PRD-8/9: a PractitionerRole, keyed on the practitioner and role."""
    role = _coded(b, prd, 1, "0286", PROVIDER_ROLE)
    where = visit.location(b, dt.first_rep(prd, 4))
    label = next((c["code"] for c in (role or {}).get("coding", [])), "")
    key = {"system": f"Practitioner/{person['id']}", "value": f"role|{label}"}
    return b.add(compact({
        "resourceType": "PractitionerRole",
        "id": resource_id("PractitionerRole", b.facility, key),
        "period": compact({"start": dt.to_fhir_date(prd.value(8), "PRD-8"),
                           "end": dt.to_fhir_date(prd.value(9), "PRD-9")}),
        "practitioner": b.ref(person),
        "organization": b.ref(organization) if organization else None,
        "code": [role] if role else None,
        "location": [b.ref(where)] if where else None,
        "telecom": telecom,
    }), merge=True)


def _display(name: dict) -> str:
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
    return " ".join(p for p in parts if p)


def _pln(b: Build, rep) -> dict | None:
    """A PLN (id^type^state^expiration) as an Identifier; NPI gets its well-known system."""
    number = dt.present(rep.value(1))
    if not number:
        return None
    kind = dt.present(rep.value(2)).upper()
    system = _NPI if kind == "NPI" else people.local_system(b, "practitioner")
    return compact({
        "system": system,
        "value": number,
        "type": {"coding": [{"system": tables.V2_0203, "code": kind,
                             "display": tables.IDENTIFIER_TYPE[kind]}]}
        if kind in tables.IDENTIFIER_TYPE else ({"text": kind} if kind else None),
    })


def _organization(b: Build, prd: Segment) -> dict | None:
    """PRD-10 (v2.7+) provider organization, with PRD-11 address and PRD-13 telecom."""
    name = dt.present(prd.value(10))
    number = dt.present(prd.value(10, 10))
    ident = {"system": people.local_system(b, "organization"), "value": number} if number else None
    org = people.organization(b, name, ident)
    if org is None:
        return None
    extra = compact({
        "address": [a for a in map(dt.xad_to_address, prd.repetitions(11)) if a],
        "telecom": [t for t in (dt.xtn_to_contact_point(r, "work")
                                for r in prd.repetitions(13)) if t],
    })
    for key, value in extra.items():
        org.setdefault(key, value)
    return org
