"""x12-270-to-fhir@1: a 270 eligibility inquiry (005010X279A1) as a FHIR R4 transaction
Bundle: one CoverageEligibilityRequest per person asked about, with its Patient(s), the
payer's and the provider's resources.

A set that is not a 270 fails naming ST01; a 270 without a subscriber level fails naming
HL (nothing was asked). Whatever else cannot be read (a bad date, a loop without its
name) is left out, never failing the set; a birth date or gender (DMG02/DMG03) left out
so is a warning beside the output (`DMG[1].02`, its loop and position, never the value).

Choices a receiver will notice:
- One request per inquiry: a subscriber (2000C) asked about for themself (it has EQ
  loops of its own, or no dependent below it), and each dependent (2000D). Several
  subscribers in one set give several requests.
- Patient: the person asked about (2100C or 2100D: name, member id, address,
  DMG birth date and gender) by `maplib.x12_fhir.patient`, so the same member of the
  same payer is the same Patient as from a 271 or an 834. A dependent's request also
  writes the subscriber's Patient (the Coverage's subscriber).
- insurer: the payer (2100A) as an Organization of type pay; provider: the information
  receiver (2100B), a Practitioner when NM102 is 1 (a person), else an Organization,
  by NPI when it has one.
- The Coverage the provider believes in is contained in the request (#coverage):
  subscriberId (2100C NM109), beneficiary, subscriber, relationship (self, else the
  dependent's INS02: 01 spouse, 19 child, 34 other; unsaid when absent), payor, and
  the subscriber's group (REF 6P or 1L) and plan (REF 18) numbers as class. It is
  contained, not PUT, because an inquiry only claims a coverage: a 271 or an 834 says
  what the coverage is, and an inquiry must not overwrite that.
- identifier: each TRN of the person's level (urn:conduit:id:x12:trn:<TRN03>, TRN02),
  else BHT03 (urn:conduit:id:x12:bht); the 271 echoes them, so x12-271-to-fhir@1 names
  its request by the same identifier. The request's id comes from the first of them and
  the patient, so a resent inquiry updates the same request.
- status active; purpose validation and benefits (a 270 always asks whether the member
  is covered, and what the plan pays for the service types it names); created: BHT04
  (a date: X12 times carry no zone).
- servicedDate/servicedPeriod: DTP 291 of the person's name loop, else of the first
  inquiry (D8 a date, RD8 a period).
- item: one per service type code of each EQ01 (it repeats), category in
  https://x12.org/codes/service-type-codes; EQ02 (a procedure) as productOrService
  (HC as CPT or HCPCS, AD as CDT, N4 as NDC).
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.maplib import x12_eligibility as elig
from engine.maplib.fhir import compact, one_per_id, reference, resource_id, transaction
from engine.maplib.x12_fhir import dated, set_timestamp
from engine.maplib.x12_unread import BIRTH_DATE, GENDER, unread
from engine.mapping import mapping
from engine.mapping_base import Mapped

# A person's birth date and gender, left out with a located warning when unreadable.
_READ_LENIENTLY = (BIRTH_DATE, GENDER)


@mapping("x12-270-to-fhir@1", accepts="x12", emits="application/fhir+json")
def inquiry_to_fhir(message: X12Message) -> Mapped:
    """Every inquiry of a 270 as a CoverageEligibilityRequest in one transaction."""
    if message.segments[0].element(1) != "270":
        raise MappingError("the set is not a 270 eligibility inquiry", field="ST01")
    tree = message.tree
    if tree is None or tree.first("2000C") is None:
        raise MappingError("the 270 has no subscriber level, so nothing is asked",
                           field="HL")
    created = set_timestamp(message)
    if created is None:
        raise MappingError("the inquiry has no readable creation date", field="BHT04")
    bht = message.find("BHT")
    reference_id = bht.element(3) if bht is not None else ""
    resources: list[dict[str, Any]] = []
    for source in tree.all("2000A"):
        found = elig.payer_of(message, source)
        if found is None:
            continue
        payer, scope = found
        resources.append(payer)
        for receiver in source.kids("2000B"):
            provider = elig.provider_of(receiver)
            if provider is not None:
                resources.append(provider)
            for subscriber_level in receiver.kids("2000C"):
                resources += _inquiries(subscriber_level, payer, provider, scope, created,
                                        reference_id)
    requests = [r for r in resources if r["resourceType"] == "CoverageEligibilityRequest"]
    if not requests:
        raise MappingError("no subscriber level names its person", field="NM1")
    return Mapped(transaction(one_per_id(resources)), unread(tree, _READ_LENIENTLY))


def _inquiries(subscriber_level: Node, payer: dict, provider: dict | None, scope: str,
               created: str, reference_id: str) -> list[dict[str, Any]]:
    """The requests of one subscriber level, with their Patients."""
    found = elig.person_of(subscriber_level, "2100C", scope)
    if found is None:
        return []
    subscriber_loop, subscriber = found
    out: list[dict[str, Any]] = []
    dependents = subscriber_level.kids("2000D")
    if subscriber_loop.kids("2110C") or not dependents:
        out += [subscriber, _request(subscriber_level, subscriber_loop, subscriber,
                                     subscriber, subscriber_loop, payer, provider, created,
                                     reference_id, dependent=False)]
    for dependent_level in dependents:
        dependent = elig.person_of(dependent_level, "2100D", scope)
        if dependent is None:
            continue
        loop, person = dependent
        out += [subscriber, person,
                _request(dependent_level, loop, person, subscriber, subscriber_loop, payer,
                         provider, created, reference_id, dependent=True)]
    return out


def _request(level: Node, name_loop: Node, person: dict, subscriber: dict,
             subscriber_loop: Node, payer: dict, provider: dict | None, created: str,
             reference_id: str, *, dependent: bool) -> dict[str, Any]:
    identifiers = elig.traces(level) or [t for t in [elig.bht_trace(reference_id)] if t]
    key = identifiers[0] if identifiers else {"system": elig.BHT_TRACE, "value": created}
    rid = resource_id("CoverageEligibilityRequest", "x12",
                      {"system": key["system"], "value": f"{key['value']}|{person['id']}"})
    inquiries = name_loop.kids(f"2110{'D' if dependent else 'C'}")
    return compact({
        "resourceType": "CoverageEligibilityRequest",
        "id": rid,
        "contained": [_coverage(name_loop, person, subscriber, subscriber_loop, payer,
                                dependent=dependent)],
        "identifier": identifiers,
        "status": "active",
        "purpose": ["validation", "benefits"],
        "patient": reference(person),
        **_serviced(name_loop, inquiries),
        "created": created,
        "provider": reference(provider) if provider is not None else None,
        "insurer": reference(payer),
        "insurance": [{"focal": True, "coverage": {"reference": "#coverage"}}],
        "item": [item for eq in inquiries for item in _items(eq)],
    })


def _serviced(name_loop: Node, inquiries: list[Node]) -> dict[str, Any]:
    """DTP 291 of the name loop, else of the first inquiry that has one."""
    for node in (name_loop, *inquiries):
        found = dated(node.seg("DTP", "291"), "serviced")
        if found:
            return found
    return {}


def _items(eq_loop: Node) -> list[dict[str, Any]]:
    eq = eq_loop.seg("EQ")
    if eq is None:
        return []
    product = elig.procedure(eq, 2)
    codes = elig.repetitions(eq, 1)
    if product is not None:
        return [compact({"category": elig.service_type(codes[0]) if codes else None,
                         "productOrService": product})]
    return [{"category": elig.service_type(code)} for code in codes]


def _coverage(name_loop: Node, person: dict, subscriber: dict, subscriber_loop: Node,
              payer: dict, *, dependent: bool) -> dict[str, Any]:
    return compact({
        "resourceType": "Coverage",
        "id": "coverage",
        "status": "active",
        "subscriber": reference(subscriber),
        "subscriberId": elig.member_id(subscriber_loop),
        "beneficiary": reference(person),
        "relationship": elig.relationship(name_loop.seg("INS"), dependent),
        "payor": [reference(payer)],
        "class": _classes(subscriber_loop),
    })


def _classes(loop: Node) -> list[dict[str, Any]]:
    out = []
    for ref in loop.segs("REF"):
        kind = elig.COVERAGE_CLASSES.get(ref.element(1))
        if kind and ref.element(2):
            out.append(elig.coverage_class(kind, ref.element(2), ref.element(3)))
    return out
