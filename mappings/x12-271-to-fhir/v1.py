"""x12-271-to-fhir@1: a 271 eligibility response (005010X279A1) as a FHIR R4 transaction
Bundle: one CoverageEligibilityResponse per person answered about, with the Coverage,
the Patient(s), the payer and the provider.

A set that is not a 271 fails naming ST01. Whatever else cannot be read is left out,
never failing the set: an EB with an unreadable amount keeps its other facts. A birth
date or gender (DMG02/DMG03) left out so is a warning beside the output (`DMG[1].02`,
its loop and position, never the value).

Choices a receiver will notice:
- One response per person: each dependent (2000D), and a subscriber (2000C) that has
  benefits or rejections of its own or no dependent below it. A 271 whose payer could
  not answer at all (AAA at 2000A or 2100A and no subscriber level) still gives one
  response, outcome error, whose patient is a reference by display only (the payer
  named no one).
- request: a reference by identifier to the inquiry, from the echoed TRN (TRN01 2):
  urn:conduit:id:x12:trn:<TRN03>, TRN02, as x12-270-to-fhir@1 gives its requests
  (else BHT03, urn:conduit:id:x12:bht). The payer's own TRN (TRN01 1) is the
  response's identifier. The response's id comes from the request identifier and the
  patient, so a resent answer updates the same response.
- outcome: error when the payer rejected the person, the provider or the inquiry (an
  AAA at any level) and sent no benefit; partial when it sent benefits and rejected
  part; else complete. Each AAA is an error whose code is AAA03 (urn:conduit:code:x12:901,
  with its name). disposition says, in words, the coverage state and the rejections
  with their follow-up (AAA04).
- status active; purpose validation, plus benefits when benefits came back; created
  BHT04 (a date); insurer the payer (2100A), requestor the provider (2100B), Patient
  from 2100C/2100D as `maplib.x12_fhir.patient` makes it (the same member, the same
  Patient as from the 270, an 834 or an 837).
- Coverage (PUT, one per member per payer: its id comes from the payer and the
  beneficiary), read from the name loop and the EBs that give a coverage status (EB01
  1-8), never from another payer's benefits (EB01 R): status active when an EB01 says
  active coverage (1-5), cancelled when one says inactive (6-8) and none says active;
  payor, subscriber, subscriberId (2100C NM109), beneficiary, relationship (self, or
  the dependent's INS02); class: plan from REF 18, else the first status EB's EB05 plan
  description, group from REF 6P/1L; type the first status EB's EB04 (insurance type,
  urn:conduit:code:x12:1336).
- Coverage.period and insurance.benefitPeriod: the first begin and end given by the
  name loop, then the status EBs (then, for a dependent, the subscriber's name loop)
  with DTP 346/356 (begin), 347/357 (end) or 307 (eligibility: RD8 a range, D8 its
  begin); only when none of those is there, an RD8 291 (plan) or 292 (benefit), which
  payers often use to echo the dates asked about.
- insurance.inforce: true with active coverage, false with only inactive coverage.
- item: one per EB and service type code (EB03 repeats; an EB without one is about the
  plan as a whole, 30), or per EB13 procedure as productOrService (R4 allows a
  category or a product, not both). name EB05; description the EB's MSG texts;
  network EB12 (Y in, N out); unit EB02 (IND individual, FAM family, with the X12 code
  alongside); term EB06 (calendar/service year and contract annual, lifetime, day; the
  X12 code alongside, so 29 "Remaining" stays visible); excluded for EB01 E and I;
  authorizationRequired EB11; provider the first person among the EB's related
  entities (2120C/D, a primary care provider), written as a Practitioner.
- benefit: type from EB01 (B copay, C deductible, A copay-percent, plus the X12 EB01
  code, which also names out-of-pocket G and the rest); EB07 allowedMoney (USD); EB08
  a percent (0.2 is 20) as allowedUnsignedInt, or allowedString when not a whole
  percent; EB09/EB10 a quantity (VS visits as type visit; the EB01 code and the
  quantity qualifier, urn:conduit:code:x12:673, alongside) as allowedUnsignedInt. An EB
  without a number still gets a benefit whose type is its EB01 (active coverage,
  primary care provider, non-covered...). A remaining amount (EB06 29 or 33) is
  written as allowed, with the term saying it is what remains: R4 has no element for
  it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_eligibility as elig
from engine.maplib.fhir import compact, one_per_id, reference, resource_id, transaction
from engine.maplib.x12_fhir import (
    amount,
    money,
    party,
    set_timestamp,
    x12_date,
)
from engine.maplib.x12_unread import BIRTH_DATE, GENDER, unread
from engine.mapping import mapping
from engine.mapping_base import Mapped

_BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
_BENEFIT_TYPES = {"A": "copay-percent", "B": "copay", "C": "deductible"}
_NETWORK = {"Y": "in", "N": "out"}
_UNIT = {"IND": "individual", "FAM": "family"}
_TERM = {"22": "annual", "23": "annual", "25": "annual", "32": "lifetime", "33": "lifetime",
         "7": "day"}
_REMAINING = frozenset({"29", "33"})
# DTP qualifiers that date the coverage itself (plan and eligibility begin and end,
# eligibility range), then those that may only echo the dates asked about (plan, benefit).
_STRONG = {"346": "start", "356": "start", "347": "end", "357": "end", "307": "range"}
_WEAK = {"291": "range", "292": "range"}


# A person's birth date and gender, left out with a located warning when unreadable.
_READ_LENIENTLY = (BIRTH_DATE, GENDER)


@mapping("x12-271-to-fhir@1", accepts="x12", emits="application/fhir+json")
def response_to_fhir(message: X12Message) -> Mapped:
    """Every person a 271 answers about as a CoverageEligibilityResponse."""
    if message.segments[0].element(1) != "271":
        raise MappingError("the set is not a 271 eligibility response", field="ST01")
    created = set_timestamp(message)
    if created is None:
        raise MappingError("the response has no readable creation date", field="BHT04")
    tree = message.tree
    bht = message.find("BHT")
    context = _Context(created, bht.element(3) if bht is not None else "")
    resources: list[dict[str, Any]] = []
    for source in tree.all("2000A") if tree is not None else []:
        found = elig.payer_of(message, source)
        payer_loop = source.first("2100A")
        if found is None or payer_loop is None:
            continue
        payer, scope = found
        resources.append(payer)
        source_errors = [*source.segs("AAA"), *payer_loop.segs("AAA")]
        answered = False
        for receiver in source.kids("2000B"):
            receiver_loop = receiver.first("2100B")
            provider = elig.provider_of(receiver)
            if provider is not None:
                resources.append(provider)
            errors = [*source_errors, *(receiver_loop.segs("AAA") if receiver_loop else [])]
            for level in receiver.kids("2000C"):
                found = _answers(level, payer, provider, scope, errors, context)
                answered = answered or bool(found)
                resources += found
        if not answered and source_errors:
            resources.append(_unanswered(payer, source_errors, context))
    if not any(r["resourceType"] == "CoverageEligibilityResponse" for r in resources):
        raise MappingError("the 271 answers about no one", field="NM1")
    return Mapped(transaction(one_per_id(resources)),
                  unread(tree, _READ_LENIENTLY) if tree is not None else ())


class _Context:
    """What every response of the set shares."""

    def __init__(self, created: str, reference_id: str) -> None:
        self.created = created
        self.reference_id = reference_id


def _answers(level: Node, payer: dict, provider: dict | None, scope: str,
             errors: list[Segment], context: _Context) -> list[dict[str, Any]]:
    found = elig.person_of(level, "2100C", scope)
    if found is None:
        return []
    subscriber_loop, subscriber = found
    dependents = level.kids("2000D")
    out: list[dict[str, Any]] = []
    if not dependents or subscriber_loop.kids("2110C") or subscriber_loop.segs("AAA"):
        out += [subscriber, *_answer(level, subscriber_loop, subscriber, subscriber,
                                     subscriber_loop, payer, provider, errors, context,
                                     dependent=False)]
    for dependent_level in dependents:
        dependent = elig.person_of(dependent_level, "2100D", scope)
        if dependent is None:
            continue
        loop, person = dependent
        out += [subscriber, person,
                *_answer(dependent_level, loop, person, subscriber, subscriber_loop, payer,
                         provider, errors, context, dependent=True)]
    return out


def _answer(level: Node, name_loop: Node, person: dict, subscriber: dict,
            subscriber_loop: Node, payer: dict, provider: dict | None,
            errors: list[Segment], context: _Context, *, dependent: bool
            ) -> list[dict[str, Any]]:
    """The Coverage and the CoverageEligibilityResponse of one person."""
    benefits = name_loop.kids(f"2110{'D' if dependent else 'C'}")
    rejections = [*errors, *name_loop.segs("AAA"),
                  *(a for eb in benefits for a in eb.segs("AAA"))]
    codes = [eb.value("EB01") for eb in benefits]
    active = any(c in elig.ACTIVE for c in codes)
    inactive = not active and any(c in elig.INACTIVE for c in codes)
    status_loops = [eb for eb in benefits
                     if eb.value("EB01") in elig.ACTIVE | elig.INACTIVE]
    dated = [name_loop, *status_loops, *([subscriber_loop] if dependent else [])]
    period = _period(dated, _STRONG) or _period(dated, _WEAK)
    coverage = None
    if active or inactive or (benefits and not rejections):
        coverage = _coverage(name_loop, subscriber_loop, person, subscriber, payer,
                             status_loops, period, "cancelled" if inactive else "active",
                             dependent=dependent)
    request = _request_identifier(level, context)
    providers = [_related_practitioner(eb) for eb in benefits]
    items = [item for eb, who in zip(benefits, providers, strict=True)
             for item in _items(eb, who)]
    outcome = "complete"
    if rejections:
        outcome = "partial" if items else "error"
    insurance = compact({
        "coverage": reference(coverage) if coverage is not None else None,
        "inforce": True if active else (False if inactive else None),
        "benefitPeriod": period,
        "item": items,
    }) if coverage is not None else None
    response = compact({
        "resourceType": "CoverageEligibilityResponse",
        "id": resource_id("CoverageEligibilityResponse", "x12",
                          {"system": request["system"],
                           "value": f"{request['value']}|{person['id']}"}),
        "identifier": elig.traces(level, "1"),
        "status": "active",
        "purpose": ["validation", "benefits"] if items else ["validation"],
        "patient": reference(person),
        "created": context.created,
        "requestor": reference(provider) if provider is not None else None,
        "request": {"identifier": request},
        "outcome": outcome,
        "disposition": _disposition(active, inactive, rejections),
        "insurer": reference(payer),
        "insurance": [insurance] if insurance else [],
        "error": [_error(aaa) for aaa in rejections if aaa.element(3)],
    })
    return [r for r in (*providers, coverage, response) if r is not None]


def _related_practitioner(eb_loop: Node) -> dict[str, Any] | None:
    """The first person (NM102 1) of an EB's related entities (2120C/D): the primary
    care provider of an EB*L, say."""
    for related in eb_loop.children:
        nm1 = related.seg("NM1")
        if related.id.startswith("2120") and nm1 is not None and nm1.element(2) == "1":
            return party(nm1, related.segments)
    return None


def _unanswered(payer: dict, rejections: list[Segment], context: _Context) -> dict:
    """The one response of a 271 whose payer answered about no one."""
    request = elig.bht_trace(context.reference_id) or {"system": elig.BHT_TRACE,
                                                       "value": context.created}
    return compact({
        "resourceType": "CoverageEligibilityResponse",
        "id": resource_id("CoverageEligibilityResponse", "x12",
                          {"system": request["system"], "value": request["value"]}),
        "status": "active",
        "purpose": ["validation"],
        "patient": {"display": "not identified: the payer answered about no one"},
        "created": context.created,
        "request": {"identifier": request},
        "outcome": "error",
        "disposition": _disposition(False, False, rejections),
        "insurer": reference(payer),
        "error": [_error(aaa) for aaa in rejections if aaa.element(3)],
    })


def _request_identifier(level: Node, context: _Context) -> dict[str, str]:
    echoed = elig.traces(level, "2")
    if echoed:
        return echoed[0]
    return elig.bht_trace(context.reference_id) or {"system": elig.BHT_TRACE,
                                                   "value": context.created}


def _error(aaa: Segment) -> dict[str, Any]:
    return {"code": {"coding": [elig.coding(elig.x12_system("901"), aaa.element(3),
                                            elig.REJECT_REASONS)]}}


def _disposition(active: bool, inactive: bool, rejections: list[Segment]) -> str:
    parts = ["Active coverage"] if active else (["Inactive coverage"] if inactive else [])
    for aaa in rejections:
        reason = elig.REJECT_REASONS.get(aaa.element(3), f"reject reason {aaa.element(3)}")
        follow = elig.FOLLOW_UPS.get(aaa.element(4))
        parts.append(f"Rejected: {reason}" + (f" ({follow})" if follow else ""))
    return "; ".join(parts)


def _period(loops: list[Node], qualifiers: dict[str, str]) -> dict[str, str] | None:
    """The first start and the first end the loops' DTPs of `qualifiers` give (a range
    is RD8; an eligibility D8 is its start)."""
    start = end = None
    for loop in loops:
        for segment in loop.segs("DTP"):
            role = qualifiers.get(segment.element(1))
            fmt, value = segment.element(2), segment.element(3)
            if role is None or not value:
                continue
            first, _, last = value.partition("-") if fmt == "RD8" else (value, "", "")
            if role in ("start", "range"):
                start = start or x12_date(first)
            if role == "end":
                end = end or x12_date(first)
            elif role == "range" and last:
                end = end or x12_date(last)
    return compact({"start": start, "end": end}) or None


def _coverage(name_loop: Node, subscriber_loop: Node, person: dict, subscriber: dict,
              payer: dict, benefits: list[Node], period: dict | None, status: str, *,
              dependent: bool) -> dict[str, Any]:
    insurance_type = next((eb.value("EB04") for eb in benefits if eb.value("EB04")), "")
    return compact({
        "resourceType": "Coverage",
        "id": resource_id("Coverage", "x12", {"system": payer["id"], "value": person["id"]}),
        "status": status,
        "type": {"coding": [elig.coding(elig.x12_system("1336"), insurance_type)]}
        if insurance_type else None,
        "subscriber": reference(subscriber),
        "subscriberId": elig.member_id(subscriber_loop),
        "beneficiary": reference(person),
        "relationship": elig.relationship(name_loop.seg("INS"), dependent),
        "period": period,
        "payor": [reference(payer)],
        "class": _classes([name_loop, subscriber_loop] if dependent else [name_loop],
                          benefits),
    })


def _classes(loops: list[Node], benefits: list[Node]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for loop in loops:
        for ref in loop.segs("REF"):
            kind = elig.COVERAGE_CLASSES.get(ref.element(1))
            if kind and ref.element(2) and kind not in seen:
                seen.add(kind)
                out.append(elig.coverage_class(kind, ref.element(2), ref.element(3)))
    plan_name = next((eb.value("EB05") for eb in benefits if eb.value("EB05")), "")
    if "plan" not in seen and plan_name:
        out.append(elig.coverage_class("plan", plan_name, plan_name))
    elif plan_name:
        for entry in out:
            if entry["type"]["coding"][0]["code"] == "plan" and "name" not in entry:
                entry["name"] = plan_name
    return out


def _items(eb_loop: Node, provider: dict | None) -> list[dict[str, Any]]:
    """One item per service type (or the procedure) of an EB."""
    eb = eb_loop.seg("EB")
    code = eb.element(1) if eb is not None else ""
    if eb is None or not code:  # what an EB without EB01 says cannot be known
        return []
    messages = [m.element(1) for m in eb_loop.segs("MSG") if m.element(1)]
    common = compact({
        "provider": reference(provider) if provider is not None else None,
        "excluded": True if code in ("E", "I") else None,
        "name": eb.element(5),
        "description": "\n".join(messages),
        "network": _coded(elig.x12_system("1073"), eb.element(12), _NETWORK,
                          "http://terminology.hl7.org/CodeSystem/benefit-network"),
        "unit": _coded(elig.x12_system("1207"), eb.element(2), _UNIT,
                       "http://terminology.hl7.org/CodeSystem/benefit-unit",
                       elig.COVERAGE_LEVELS),
        "term": _coded(elig.x12_system("615"), eb.element(6), _TERM,
                       "http://terminology.hl7.org/CodeSystem/benefit-term",
                       elig.TIME_PERIODS),
        "benefit": _benefits(eb),
        "authorizationRequired": {"Y": True, "N": False}.get(eb.element(11)),
    })
    product = elig.procedure(eb, 13)
    if product is not None:
        return [{"productOrService": product, **common}]
    codes = elig.repetitions(eb, 3) or [elig.HEALTH_PLAN]
    return [{"category": elig.service_type(c), **common} for c in codes]


def _coded(x12: str, code: str, fhir: dict[str, str], fhir_system: str,
           names: dict[str, str] | None = None) -> dict[str, Any] | None:
    """An X12 code as a CodeableConcept: FHIR's own code first when one fits."""
    if not code:
        return None
    codings = [{"system": fhir_system, "code": fhir[code]}] if code in fhir else []
    if x12 != elig.x12_system("1073"):
        codings.append(elig.coding(x12, code, names))
    return {"coding": codings} if codings else None


def _benefits(eb: Segment) -> list[dict[str, Any]]:
    code = eb.element(1)
    kind = [{"system": _BENEFIT_TYPE, "code": _BENEFIT_TYPES[code]}] \
        if code in _BENEFIT_TYPES else []
    kind.append(elig.coding(elig.x12_system("1390"), code, elig.BENEFIT_CODES))
    out: list[dict[str, Any]] = []
    allowed = money(eb.element(7))
    if allowed is not None:
        out.append({"type": {"coding": kind}, "allowedMoney": allowed})
    percent = amount(eb.element(8))
    if percent is not None and percent >= 0:
        out.append({"type": {"coding": kind}, **_percent(percent * 100)})
    quantity = amount(eb.element(10))
    if quantity is not None and quantity >= 0 and quantity == quantity.to_integral_value():
        qualifier = eb.element(9)
        quantity_kind = [{"system": _BENEFIT_TYPE, "code": "visit"}] if qualifier == "VS" \
            else []
        quantity_kind += [kind[-1], elig.coding(elig.x12_system("673"), qualifier or "unknown")]
        out.append({"type": {"coding": quantity_kind}, "allowedUnsignedInt": int(quantity)})
    return out or [{"type": {"coding": kind}}]


def _percent(value: Decimal) -> dict[str, Any]:
    if value == value.to_integral_value():
        return {"allowedUnsignedInt": int(value)}
    return {"allowedString": f"{value.normalize()}%"}
