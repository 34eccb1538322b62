"""x12-278-to-fhir@1: a 278 health care services review (005010X217) as FHIR R4 in the Da
Vinci PAS shape: a request as a Claim (use preauthorization), a response as a
ClaimResponse, each first in a Bundle of type collection with what it refers to.

Request or response is read from BHT02 (11 is a response) and, when BHT02 says
otherwise, from HCR: a set carrying a decision is a response. Only the first patient
event (2000E) of the set is mapped: one review, one Claim. Fails (MappingError) for a set
that is not a 278 (ST01), or that has no UMO (2010A), no subscriber (2010C), or, for a
request, no patient event (2000E): without them there is no review to state. A response
refused before its event (an AAA at the UMO, requester or subscriber level and no
2000E) is a ClaimResponse with outcome error.

Choices a receiver will notice:
- Bundle.identifier is BHT03 (system urn:conduit:id:x12:bht03); no Bundle.timestamp (X12
  times carry no zone). Ids come from identifiers (engine/maplib/fhir.resource_id), so
  the same member, plan and provider are the same resources as from a 270 or an 837.
- Patient: the patient's name loop (2010D for a dependent, else 2010C); a dependent's
  subscriber is a second Patient, Coverage.subscriber. Member ids are scoped by the UMO's
  id (2010A NM109). Coverage: beneficiary, subscriber id, relationship (INS02 of 2010D:
  01 spouse, 19 child, other codes "other"; self for the subscriber), payor the UMO,
  class group from REF*6P.
- Organization: the UMO (2010A, type pay) is Claim.insurer / ClaimResponse.insurer; the
  requester (2010B) an Organization (its NM101 a second type, X12 98) or a Practitioner
  (NM102 = 1), with its PER phone/fax/email as telecom; providers of the event (2010EA)
  are Claim.careTeam with the NM101 entity code as role (X12 98) and PRV03 as
  qualification (NUCC taxonomy).
- Claim (request): identifier the event's TRN (TRN02, system urn:conduit:id:x12:<TRN03>);
  created BHT04; type institutional for an admission review (UM01 AR) or an SV2 line,
  oral for SV3, else professional; subType UM01 (X12 1525); the PAS certificationType
  (UM02) and levelOfServiceCode (UM06) extensions; priority stat for UM06 03 or U, else
  normal; diagnosis from HI (ABK/BK principal, ABJ/BJ admitting, APR/PR reason for visit,
  ABF/BF without a type; ICD-10-CM codes get their dot: E119 is E11.9); supportingInfo
  DTP*AAH patientEvent, DTP*435 admissionDates, DTP*096 dischargeDates, MSG
  freeFormMessage.
- Claim.item: one per service (2000F): productOrService from SV1/SV2/SV3 (HC is CPT,
  or HCPCS for a code led by a letter; AD CDT; N4 NDC) with modifiers, else UM03 as a
  service type (X12 1365); revenue SV201; category UM03 (the event's when the service
  has none); locationCodeableConcept UM04 (B place of service, A UB facility type); net
  the line charge; quantity the line's units, else HSD (HSD01 as the unit, X12 673);
  serviced DTP*472 (date or period); PAS itemTraceNumber (TRN), certificationType and
  serviceItemRequestType (UM01) extensions. An event without services gets one item from
  its own UM and HSD.
- ClaimResponse (response): identifier every TRN; created BHT04; type institutional for
  an admission review (UM01 AR), else professional; subType UM01; requestor the 2010B;
  request a logical reference by the event's referenced TRN (TRN01 2); outcome complete
  when every decision is final, queued when any is pended (A4) or says contact the payer
  (CT), partial when some are final and some open, error when the payer rejected the
  request (AAA) and decided nothing; preAuthRef HCR02; preAuthPeriod DTP*007 (and *036 as
  its end); disposition MSG; the event's decision (HCR) is ClaimResponse.adjudication
  and each service's is item.adjudication (category submitted) with the PAS reviewAction
  extension (reviewActionCode HCR01, number HCR02, reasonCode HCR03); an AAA is an error
  (AAA03 X12 901, AAA04 X12 889) with its loop. The response's event UM02 and UM06 are
  the PAS certificationType and levelOfServiceCode extensions, its HI codes PAS
  communicatedDiagnosis (the qualifier's kind is not kept); each decided service's UM01
  and UM02 the PAS serviceItemRequestType and certificationType extensions, its
  SV1/SV2/SV3 the PAS itemAuthorizedDetail (productOrServiceCode, modifier, quantity
  with its SV103/SV204 unit in X12 355, revenue). UM03, UM04 and a service's DTP*472,
  which PAS's ClaimResponse has no place for, are Conduit's extensions
  urn:conduit:fhir:extension:x12-service-type, -x12-facility and -x12-service-date, so
  fhir-to-x12-278@1 writes them back. A response's line charges are not kept.
- Not mapped in v1: CL1, CR1-CR8, CRC, PWK, TOO, accident and onset dates, transport
  and other UMO loops, the requester's PRV and PER contact name, the event's HSD when
  it has service lines, service provider loops (2010F), the response's contact and
  provider loops; patient events after the first.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Loop, Node, Seg
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_auth as pas
from engine.maplib import x12_codes as codes
from engine.maplib import x12_fhir as x12
from engine.maplib.fhir import compact, reference, resource_id
from engine.mapping import mapping

_EVENT_ORDER = ("2000A", "2010A", "2010B", "2010C", "2010D", "2000E")
_NO_EVENT = Loop("2000E", "Patient event level (absent)", Seg("HL"))


@mapping("x12-278-to-fhir@1", accepts="x12", emits="application/fhir+json")
def review_to_fhir(message: X12Message) -> dict[str, Any]:
    """A PAS request Bundle (Claim first) or response Bundle (ClaimResponse first)."""
    if message.segments[0].element(1) != "278":
        raise MappingError("is not 278; this mapping reads health care services reviews",
                           field="ST01")
    facts = _Facts(message)
    main = facts.response() if facts.is_response else facts.request()
    resources = [main, *facts.parties()]
    bundle = compact({
        "resourceType": "Bundle",
        "identifier": {"system": "urn:conduit:id:x12:bht03", "value": facts.bht.element(3)}
        if facts.bht.element(3) else None,
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    })
    return bundle


class _Facts:
    """The loops of one 278 and the resources made from them, each made once."""

    def __init__(self, message: X12Message) -> None:
        tree = message.tree
        if tree is None:
            raise MappingError("has no 278 structure to read", field="ST03")
        self.message = message
        self.component = message.delimiters.component
        self.bht = message.find("BHT") or Segment(["BHT"], message.delimiters)
        self.umo_loop = _need(tree.first("2010A"), "2010A", "names no UMO")
        subscriber = _need(tree.first("2010C"), "2010C", "names no subscriber")
        self.subscriber_loop = subscriber
        self.dependent_loop = tree.first("2010D")
        self.requester_loop = tree.first("2010B")
        self.tree = tree
        self.is_response = self.bht.element(2) == "11" or any(
            node.seg("HCR") is not None for node in tree.walk())
        event = tree.first("2000E")
        if event is None and self.is_response:
            event = Node(_NO_EVENT)  # a response refused before the event: AAA only
        self.event = _need(event, "2000E", "holds no patient event")
        self.scope = x12.payer_scope(message, self.umo_loop.value("NM109"))
        self.created = x12.set_timestamp(message)
        self._made: dict[str, dict[str, Any]] = {}
        self.umo = self._keep(x12.organization(self.umo_loop.segments[0], payer=True))
        self.requester = self._requester()
        self.patient, self.coverage = self._people()

    # -- the parties ---------------------------------------------------------------------

    def _keep(self, resource: dict[str, Any]) -> dict[str, Any]:
        return self._made.setdefault(resource["id"], resource)

    def parties(self) -> list[dict[str, Any]]:
        return list(self._made.values())

    def _requester(self) -> dict[str, Any] | None:
        loop = self.requester_loop
        if loop is None:
            return None
        nm1 = loop.segments[0]
        made = x12.party(nm1, loop.segments)
        if made["resourceType"] == "Organization" and nm1.element(1):
            made["type"] = [*made.get("type", []), codes.code_concept(pas.ENTITY, nm1.element(1))]
        per = loop.seg("PER")
        if per is not None and pas.telecom(per):
            made["telecom"] = pas.telecom(per)
        return self._keep(made)

    def _people(self) -> tuple[dict[str, Any], dict[str, Any]]:
        sub_nm1 = self.subscriber_loop.segments[0]
        subscriber = x12.patient(sub_nm1, self.subscriber_loop.segments, self.scope)
        self._keep(subscriber)
        patient, relationship = subscriber, "self"
        if self.dependent_loop is not None:
            patient = self._keep(x12.patient(self.dependent_loop.segments[0],
                                             self.dependent_loop.segments, self.scope))
            relationship = pas.RELATIONSHIPS.get(self.dependent_loop.value("INS02"), "other")
        member = x12.identifier(sub_nm1.element(8), sub_nm1.element(9), self.scope)
        key = member or {"system": "urn:conduit:x12:coverage", "value": subscriber["id"]}
        group = self.subscriber_loop.value("REF[6P]02")
        coverage = compact({
            "resourceType": "Coverage",
            "id": resource_id("Coverage", "x12", key),
            "status": "active",
            "subscriber": reference(subscriber) if patient is not subscriber else None,
            "subscriberId": sub_nm1.element(9),
            "beneficiary": reference(patient),
            "relationship": codes.code_concept(codes.RELATIONSHIP, relationship),
            "payor": [reference(self.umo)],
            "class": [{"type": codes.code_concept(codes.COVERAGE_CLASS, "group"),
                       "value": group}] if group else [],
        })
        return patient, self._keep(coverage)

    # -- the request ---------------------------------------------------------------------

    def request(self) -> dict[str, Any]:
        um = self.event.seg("UM")
        services = self.event.kids("2000F")
        claim_id = self._claim_key()
        items = [self._item(n, node, um) for n, node in enumerate(services, start=1)] or \
            [self._event_item(um)]
        return compact({
            "resourceType": "Claim",
            "id": resource_id("Claim", "x12", claim_id),
            "extension": [e for e in (
                pas.extension(pas.EXT_CERTIFICATION_TYPE, pas.CERTIFICATION_TYPE,
                              _el(um, 2)),
                pas.extension(pas.EXT_LEVEL_OF_SERVICE, pas.LEVEL_OF_SERVICE,
                              _el(um, 6))) if e],
            "identifier": [self._trn(self.event.seg("TRN"))] if self.event.seg("TRN") else [],
            "status": "active",
            "type": codes.code_concept(codes.CLAIM_TYPE, self._claim_type(um, services)),
            "subType": codes.code_concept(pas.REQUEST_CATEGORY, _el(um, 1)),
            "use": "preauthorization",
            "patient": reference(self.patient),
            "created": self.created,
            "insurer": reference(self.umo),
            "provider": reference(self.requester) if self.requester else None,
            "priority": codes.code_concept(codes.PRIORITY,
                                   "stat" if _el(um, 6) in pas.STAT else "normal"),
            "careTeam": self._care_team(),
            "supportingInfo": self._supporting_info(),
            "diagnosis": self._diagnoses(),
            "insurance": [{"sequence": 1, "focal": True,
                           "coverage": reference(self.coverage)}],
            "item": items,
        })

    def _claim_key(self) -> dict[str, str]:
        trn = self.event.seg("TRN")
        if trn is not None and trn.element(2):
            return self._trn(trn)
        return {"system": "urn:conduit:x12:bht03",
                "value": f"{self.bht.element(3)}|{self.patient['id']}"}

    def _trn(self, trn: Segment) -> dict[str, str]:
        return {"system": f"urn:conduit:id:x12:{trn.element(3) or 'trn'}",
                "value": trn.element(2)}

    def _claim_type(self, um: Segment | None, services: list[Node]) -> str:
        lines = {seg.id for node in services for seg in node.segments}
        if "SV3" in lines:
            return "oral"
        if _el(um, 1) == "AR" or "SV2" in lines:
            return "institutional"
        return "professional"

    def _care_team(self) -> list[dict[str, Any]]:
        team = []
        for node in self.event.kids("2010EA"):
            nm1 = node.segments[0]
            made = self._keep(x12.party(nm1, node.segments))
            team.append(compact({
                "sequence": len(team) + 1,
                "provider": reference(made),
                "role": codes.code_concept(pas.ENTITY, nm1.element(1)),
                "qualification": codes.code_concept(codes.TAXONOMY, node.value("PRV03")),
            }))
        return team

    def _supporting_info(self) -> list[dict[str, Any]]:
        found = []
        for dtp in self.event.segs("DTP"):
            category = pas.EVENT_DATES.get(dtp.element(1))
            timing = x12.dated(dtp, "timing")
            if category is None or not timing:
                continue
            found.append({"category": codes.code_concept(pas.SUPPORTING_INFO, category), **timing})
        message = self.event.value("MSG01")
        if message:
            found.append({"category": codes.code_concept(pas.SUPPORTING_INFO, "freeFormMessage"),
                          "valueString": message})
        return [{"sequence": n, **info} for n, info in enumerate(found, start=1)]

    def _diagnoses(self) -> list[dict[str, Any]]:
        hi = self.event.seg("HI")
        if hi is None:
            return []
        out = []
        for index in range(1, len(hi) + 1):
            qualifier, code = hi.element(index, 1), hi.element(index, 2)
            known = pas.DIAGNOSIS.get(qualifier)
            if known is None or not code:
                continue
            system, kind = known
            out.append(compact({
                "sequence": len(out) + 1,
                "diagnosisCodeableConcept": codes.code_concept(system,
                                                            codes.icd_code(system, code)),
                "type": [codes.code_concept(codes.DIAGNOSIS_TYPE, kind)] if kind else [],
            }))
        return out

    def _event_item(self, um: Segment | None) -> dict[str, Any]:
        """The one item of an event without service lines: its UM and HSD."""
        service_type = _el(um, 3)
        return compact({
            "extension": self._item_extensions(None, um),
            "sequence": 1,
            "category": codes.code_concept(pas.SERVICE_TYPE, service_type),
            "productOrService": codes.code_concept(pas.SERVICE_TYPE, service_type or "1"),
            "locationCodeableConcept": pas.facility(_el(um, 4), self.component),
            "quantity": _hsd_quantity(self.event.seg("HSD")),
            **x12.dated(self.event.seg("DTP", "472"), "serviced"),
        })

    def _item(self, sequence: int, node: Node, event_um: Segment | None) -> dict[str, Any]:
        um = node.seg("UM")
        line = node.seg("SV1") or node.seg("SV2") or node.seg("SV3")
        service_type = _el(um, 3) or _el(event_um, 3)
        product, modifiers, charge, units, revenue = self._line(line)
        quantity = {"value": x12.amount(units)} if units and x12.amount(units) is not None \
            else _hsd_quantity(node.seg("HSD"))
        return compact({
            "extension": self._item_extensions(node, um),
            "sequence": sequence,
            "revenue": codes.code_concept(codes.REVENUE, revenue),
            "category": codes.code_concept(pas.SERVICE_TYPE, service_type),
            "productOrService": product or codes.code_concept(pas.SERVICE_TYPE,
                                                      service_type or "1"),
            "modifier": modifiers,
            "locationCodeableConcept": pas.facility(_el(um, 4) or _el(event_um, 4),
                                                    self.component),
            "quantity": quantity,
            "net": x12.money(charge),
            **x12.dated(node.seg("DTP", "472"), "serviced"),
        })

    def _item_extensions(self, node: Node | None, um: Segment | None) -> list[dict]:
        trn = node.seg("TRN") if node is not None else None
        found = [
            {"url": pas.EXT_ITEM_TRACE, "valueIdentifier": self._trn(trn)}
            if trn is not None and trn.element(2) else None,
            pas.extension(pas.EXT_CERTIFICATION_TYPE, pas.CERTIFICATION_TYPE, _el(um, 2)),
            pas.extension(pas.EXT_REQUEST_TYPE, pas.REQUEST_CATEGORY, _el(um, 1)),
        ]
        return [e for e in found if e]

    def _line(self, line: Segment | None) -> tuple[Any, list, str, str, str]:
        """(productOrService, modifiers, charge, units, revenue code) of a service line."""
        if line is None:
            return None, [], "", "", ""
        procedure, charge, units, revenue = {
            "SV1": (1, 2, 4, 0), "SV2": (2, 3, 5, 1), "SV3": (1, 2, 0, 0)}[line.id]
        qualifier = line.element(procedure, 1)
        code = line.element(procedure, 2)
        system = pas.procedure_system(qualifier, code)
        modifiers = [codes.code_concept(system, line.element(procedure, n)) for n in range(3, 7)
                     if line.element(procedure, n)]
        return (codes.code_concept(system, code), modifiers, line.element(charge),
                line.element(units) if units else "",
                line.element(revenue) if revenue else "")

    # -- the response --------------------------------------------------------------------

    def response(self) -> dict[str, Any]:
        event_hcr = self.event.seg("HCR")
        services = self.event.kids("2000F")
        decisions = [h for h in [event_hcr, *(n.seg("HCR") for n in services)] if h]
        errors = self._errors(services)
        trns = self.event.segs("TRN")
        referenced = next((t for t in trns if t.element(1) == "2"), trns[0] if trns else None)
        key = self._trn(referenced) if referenced is not None and referenced.element(2) \
            else self._claim_key()
        period = self._preauth_period(self.event)
        um = self.event.seg("UM")
        return compact({
            "resourceType": "ClaimResponse",
            "id": resource_id("ClaimResponse", "x12", key),
            "extension": [e for e in (
                pas.extension(pas.EXT_CERTIFICATION_TYPE, pas.CERTIFICATION_TYPE, _el(um, 2)),
                pas.extension(pas.EXT_LEVEL_OF_SERVICE, pas.LEVEL_OF_SERVICE, _el(um, 6)),
                *self._um_place(um),
                *({"url": pas.EXT_DIAGNOSIS, "valueCodeableConcept": d[
                    "diagnosisCodeableConcept"]} for d in self._diagnoses())) if e],
            "identifier": [self._trn(t) for t in trns if t.element(2)],
            "status": "active",
            "type": codes.code_concept(codes.CLAIM_TYPE, "institutional" if _el(
                self.event.seg("UM"), 1) == "AR" else "professional"),
            "subType": codes.code_concept(pas.REQUEST_CATEGORY, _el(self.event.seg("UM"), 1)),
            "use": "preauthorization",
            "patient": reference(self.patient),
            "created": self.created,
            "insurer": reference(self.umo),
            "requestor": reference(self.requester) if self.requester else None,
            "request": {"identifier": self._trn(referenced)}
            if referenced is not None and referenced.element(2) else None,
            "outcome": _outcome(decisions, errors),
            "disposition": self.event.value("MSG01"),
            "preAuthRef": event_hcr.element(2) if event_hcr is not None else
            next((h.element(2) for h in decisions if h.element(2)), None),
            "preAuthPeriod": period,
            "item": [self._decided_item(n, node) for n, node in enumerate(services, 1)
                     if node.seg("HCR") is not None],
            "adjudication": [_adjudication(event_hcr)] if event_hcr is not None else [],
            "insurance": [{"sequence": 1, "focal": True,
                           "coverage": reference(self.coverage)}],
            "error": errors,
        })

    def _preauth_period(self, node: Node) -> dict[str, str] | None:
        effective = x12.dtp(node.segments, "007")
        expires = x12.dtp(node.segments, "036")
        if effective is None and expires is None:
            return None
        period = dict(effective or {})
        if expires is not None:
            period["end"] = expires["end"]
        return period

    def _um_place(self, um: Segment | None) -> list[dict[str, Any] | None]:
        """UM03 service type and UM04 facility of a response (Conduit's extensions)."""
        facility = pas.facility(_el(um, 4), self.component) if um is not None else None
        return [pas.extension(pas.EXT_SERVICE_TYPE, pas.SERVICE_TYPE, _el(um, 3)),
                {"url": pas.EXT_FACILITY, "valueCodeableConcept": facility}
                if facility else None]

    def _authorized(self, node: Node) -> dict[str, Any] | None:
        """A decided service's SV1/SV2/SV3 as PAS itemAuthorizedDetail."""
        line = node.seg("SV1") or node.seg("SV2") or node.seg("SV3")
        product, modifiers, _, units, revenue = self._line(line)
        unit = {"SV1": line.element(3), "SV2": line.element(4)}.get(line.id, "") \
            if line is not None else ""
        parts = [
            {"url": "productOrServiceCode", "valueCodeableConcept": product}
            if product else None,
            *({"url": "modifier", "valueCodeableConcept": m} for m in modifiers),
            {"url": "quantity", "valueQuantity": compact({
                "value": x12.amount(units), "system": pas.UNIT if unit else None,
                "code": unit})}
            if units and x12.amount(units) is not None else None,
            {"url": "revenue", "valueCodeableConcept": codes.code_concept(codes.REVENUE,
                                                                          revenue)}
            if revenue else None]
        found = [p for p in parts if p]
        return {"url": pas.EXT_AUTHORIZED_DETAIL, "extension": found} if found else None

    def _decided_item(self, sequence: int, node: Node) -> dict[str, Any]:
        trn = node.seg("TRN")
        period = self._preauth_period(node)
        um = node.seg("UM")
        served = x12.dated(node.seg("DTP", "472"), "value")
        return compact({
            "extension": [e for e in (
                {"url": pas.EXT_ITEM_TRACE, "valueIdentifier": self._trn(trn)}
                if trn is not None and trn.element(2) else None,
                {"url": pas.EXT_ITEM_PREAUTH_PERIOD, "valuePeriod": period}
                if period else None,
                pas.extension(pas.EXT_REQUEST_TYPE, pas.REQUEST_CATEGORY, _el(um, 1)),
                pas.extension(pas.EXT_CERTIFICATION_TYPE, pas.CERTIFICATION_TYPE,
                              _el(um, 2)),
                *self._um_place(um),
                {"url": pas.EXT_SERVICE_DATE, **served} if served else None,
                self._authorized(node)) if e],
            "itemSequence": sequence,
            "adjudication": [_adjudication(node.seg("HCR"))],
        })

    def _errors(self, services: list[Node]) -> list[dict[str, Any]]:
        found = []
        places = [(n, self.tree.first(n)) for n in _EVENT_ORDER]
        for loop_id, node in places:
            if node is None or (loop_id == "2000E" and node is not self.event):
                continue
            found += [_error(aaa, loop_id, None) for aaa in node.segs("AAA")]
        for sequence, node in enumerate(services, start=1):
            found += [_error(aaa, "2000F", sequence) for aaa in node.segs("AAA")]
        return found


def _need(node: Node | None, loop_id: str, why: str) -> Node:
    if node is None:
        raise MappingError(f"{why}; a 278 needs loop {loop_id}", field=loop_id)
    return node


def _el(segment: Segment | None, index: int) -> str:
    return segment.element(index, 1) if segment is not None else ""


def _hsd_quantity(hsd: Segment | None) -> dict[str, Any] | None:
    if hsd is None or x12.amount(hsd.element(2)) is None:
        return None
    return compact({"value": x12.amount(hsd.element(2)),
                    "system": pas.QUANTITY_QUALIFIER if hsd.element(1) else None,
                    "code": hsd.element(1)})


def _adjudication(hcr: Segment) -> dict[str, Any]:
    action = hcr.element(1)
    parts = [
        {"url": pas.EXT_REVIEW_ACTION_CODE,
         "valueCodeableConcept": codes.code_concept(pas.ACTION, action, pas.ACTIONS.get(action))}
        if action else None,
        {"url": "number", "valueString": hcr.element(2)} if hcr.element(2) else None,
        {"url": "reasonCode", "valueCodeableConcept": codes.code_concept(pas.DECISION_REASON,
                                                                 hcr.element(3))}
        if hcr.element(3) else None,
    ]
    return {"extension": [{"url": pas.EXT_REVIEW_ACTION,
                           "extension": [p for p in parts if p]}],
            "category": codes.code_concept(codes.ADJUDICATION, "submitted")}


def _error(aaa: Segment, loop_id: str, sequence: int | None) -> dict[str, Any]:
    codes = [c for c in (
        {"system": pas.REJECT_REASON, "code": aaa.element(3)} if aaa.element(3) else None,
        {"system": pas.FOLLOW_UP, "code": aaa.element(4)} if aaa.element(4) else None) if c]
    return compact({
        "extension": [{"url": pas.EXT_X12_LOOP, "valueString": loop_id}],
        "itemSequence": sequence,
        "code": {"coding": codes} if codes else {"text": "request not valid"},
    })


def _outcome(decisions: list[Segment], errors: list[dict[str, Any]]) -> str:
    if not decisions:
        return "error" if errors else "queued"
    states = {pas.OUTCOME.get(h.element(1), "complete") for h in decisions}
    return states.pop() if len(states) == 1 else "partial"
