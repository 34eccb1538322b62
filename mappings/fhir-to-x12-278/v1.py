"""fhir-to-x12-278@1: a Da Vinci PAS request (Claim, use preauthorization) as a 278
request, or a PAS response (ClaimResponse, use preauthorization) as a 278 response, each
a whole interchange (005010X217); the inverse of x12-278-to-fhir@1, so a 278 taken to
FHIR and back states the same review.

Input: a Bundle (collection, as PAS sends it, or any other type) whose Claim or
ClaimResponse is mapped (the first of them; a Claim when it holds both), its patient,
insurer, provider and coverage found by reference in the Bundle; or a Claim or
ClaimResponse whose references are contained (#id). Fails (MappingError, naming the FHIR
path) when there is no Claim or ClaimResponse, when its use is not preauthorization, or
when the patient or the insurer is not in the input: a review without them names no one.

Choices a receiver will notice:
- Envelope: ISA/GS sender and receiver are the requester's and the insurer's ids (ZZ;
  the other way round for a response), ISA13/GS06 a number from a hash of the resource's
  id, ISA09/GS04/BHT04 its created date (time 0000 unless created has one): the same
  input gives the same bytes. A channel with an `x12:` block re-envelopes it with its
  own control numbers and the partners' ids.
- BHT03 is Bundle.identifier, else the Claim's (ClaimResponse's) first identifier, else
  its id cut to 30 characters; BHT02 13 for a request, 11 for a response.
- 2010A the insurer (NM101 X3; NM108 PI unless its identifier is an NPI or EIN); 2010B the
  requester (NM101 from an X12 98 type code on the Organization, else 1P) with N3/N4 and
  its telecom as PER*IC; 2010C the subscriber (Coverage.subscriber, else the patient)
  with REF*6P (Coverage class group), N3/N4, DMG; a patient who is not the subscriber is
  a dependent (2000D/2010D, NM1*QC) with INS*N and the relationship (spouse 01, child
  19, other G8).
- 2000E: TRN*1 the Claim's first identifier (TRN03 from its system
  urn:conduit:id:x12:<id>); UM01 Claim.subType, UM02 the certificationType extension,
  UM03 the first item's category, UM04 its location, UM06 the levelOfServiceCode
  extension; DTP AAH/435/096 from supportingInfo patientEvent/admissionDates/
  dischargeDates; HI from diagnosis (types principal ABK, admitting ABJ, reason for visit
  APR, else ABF; BK/BJ/PR/BF for ICD-9-CM; dots dropped); MSG the freeFormMessage;
  2010EA per careTeam member (NM101 its X12 98 role, else SJ; PRV*PE with the taxonomy).
- 2000F per item (except the one item x12-278-to-fhir@1 makes for an event without
  service lines: a single item coded only as a service type and without a trace number,
  whose UM, HSD and DTP*472 then stand at the event): TRN*1 itemTraceNumber, UM from the
  item's extensions, category and location, DTP*472 from serviced[x], SV2 for an item
  with a revenue code, SV3 for CDT, SV1 otherwise (none for a service type), units UN;
  a quantity in X12 673 units is HSD instead.
- Response: the event's HCR from ClaimResponse.adjudication's reviewAction, each
  item's from item.adjudication (item n is the n-th 2000F); TRN per identifier (TRN01 2
  for the one the request reference names); UM01 ClaimResponse.subType; DTP*007 the
  preAuthPeriod (RD8 when it has both ends, DTP*036 for an end alone); MSG the
  disposition; UM02-UM04 and UM06 from the certificationType, Conduit's x12-service-type
  and x12-facility and the levelOfServiceCode extensions; HI from communicatedDiagnosis
  (the first ABK principal, the others ABF); each decided service's UM from its
  serviceItemRequestType, certificationType and Conduit extensions, DTP*472 from
  x12-service-date and SV1/SV2/SV3 from itemAuthorizedDetail (no charge: the FHIR side
  has none); each error an AAA*N in the loop its x12-loop extension names (2000F for
  an item's, 2010C when unsaid), AAA03 X12 901, AAA04 X12 889. A response with nothing
  to say of the event (no identifier, decision, item or event error) has no 2000E: the
  request was refused before it.
- Text: an element separator, terminator or line break typed in a name, an address,
  a contact or a message becomes a space (a name is never a reason to fail); an
  identifier holding one fails naming its element (NM109), never quoting it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.errors import MappingError
from engine.formats.x12.build import interchange
from engine.maplib import fhir_to_x12 as fx
from engine.maplib import x12_auth as pas
from engine.maplib import x12_codes as codes
from engine.maplib.fhir_to_v2 import Located, Resources, dicts, text
from engine.mapping import mapping

_CREATED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?")
_EVENT_ITEM_SYSTEMS = (pas.SERVICE_TYPE,)
_ICD = {codes.ICD10CM: {"principal": "ABK", "admitting": "ABJ", "patientreasonforvisit": "APR",
                    "": "ABF"},
        codes.ICD9CM: {"principal": "BK", "admitting": "BJ", "patientreasonforvisit": "PR",
                   "": "BF"}}
_DATES = {v: k for k, v in pas.EVENT_DATES.items()}


@mapping("fhir-to-x12-278@1", accepts="fhir", emits="application/edi-x12")
def review_to_278(resource: dict) -> str:
    """One 278 interchange for the input's Claim (request) or ClaimResponse (response)."""
    index = Resources(resource)
    focus = _focus(resource, index)
    writer = _Writer(resource, index, focus)
    body = writer.response() if focus.resource["resourceType"] == "ClaimResponse" \
        else writer.request()
    requester, umo = writer.party_ids()
    sender, receiver = (umo, requester) if writer.is_response else (requester, umo)
    try:
        return interchange([("278", "005010X217", fx.plain_text(body))],
                           sender=("ZZ", sender), receiver=("ZZ", receiver),
                           control_number=_control(focus.resource), when=writer.when)
    except ValueError as exc:  # an identifier holding a separator: named, not quoted
        raise MappingError(str(exc)) from None


def _focus(resource: dict, index: Resources) -> Located:
    kind = resource.get("resourceType")
    if kind in ("Claim", "ClaimResponse"):
        found = Located(resource, kind)
    elif kind == "Bundle":
        found = next(index.of_type("Claim"), None) or next(index.of_type("ClaimResponse"),
                                                           None)
        if found is None:
            raise MappingError("holds no Claim or ClaimResponse, so there is no review to "
                               "send", field="Bundle.entry")
    else:
        raise MappingError("is not a Claim, ClaimResponse or Bundle; this mapping sends "
                           "prior authorization reviews", field="resourceType")
    if found.resource.get("use") != "preauthorization":
        raise MappingError("is not preauthorization; a 278 carries prior authorization "
                           "reviews only", field=f"{found.path}.use")
    return found


def _control(resource: dict) -> int:
    digest = hashlib.sha256(text(resource.get("id")).encode()).hexdigest()
    return int(digest, 16) % 999_999_999 + 1


class _Writer:
    """The 278 body for one Claim or ClaimResponse and the resources it names."""

    def __init__(self, root: dict, index: Resources, focus: Located) -> None:
        self.root, self.index, self.focus = root, index, focus
        self.main = focus.resource
        self.is_response = self.main["resourceType"] == "ClaimResponse"
        self.patient = self._need("patient", "Patient")
        self.insurer = self._need("insurer", "Organization")
        if self.is_response:
            found = index.resolve(self.main.get("requestor"), focus)
            self.requester = found.resource if found is not None else None
        else:
            self.requester = self._need("provider", ("Organization", "Practitioner"))
        self.coverage = self._coverage()
        subscriber = index.resolve((self.coverage or {}).get("subscriber"), focus)
        self.subscriber = subscriber.resource if subscriber is not None else self.patient
        self.when = _when(self.main.get("created"))
        self.out: list[list[Any]] = []
        self.hl = 0

    def _need(self, element: str, kinds: str | tuple[str, ...]) -> dict:
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        found = self.index.resolve(self.main.get(element), self.focus)
        if found is None or found.resource.get("resourceType") not in kinds:
            raise MappingError(f"does not reference a {' or '.join(kinds)} that the input "
                               "carries", field=f"{self.focus.path}.{element}")
        return found.resource

    def _coverage(self) -> dict | None:
        for entry in dicts(self.main.get("insurance")):
            found = self.index.resolve(entry.get("coverage"), self.focus)
            if found is not None and found.resource.get("resourceType") == "Coverage":
                return found.resource
        return None

    def party_ids(self) -> tuple[str, str]:
        """ISA ids: the requester's and the insurer's first identifiers (15 characters)."""
        def first(resource: dict | None, fallback: str) -> str:
            ids = fx.id_elements(resource or {}, "ZZ")
            return (ids[1] if ids else fallback)[:15].strip() or fallback
        return first(self.requester, "REQUESTER"), first(self.insurer, "UMO")

    # -- the levels every 278 has ----------------------------------------------------------

    def _level(self, parent: int, code: str, children: bool) -> int:
        self.hl += 1
        self.out.append(["HL", str(self.hl), str(parent) if parent else "", code,
                         "1" if children else "0"])
        return self.hl

    def _header(self, purpose: str) -> None:
        ident = dicts(self.root.get("identifier")) if self.root.get("resourceType") == \
            "Bundle" else []
        if isinstance(self.root.get("identifier"), dict):
            ident = [self.root["identifier"]]
        reference = text(ident[0].get("value")) if ident else ""
        if not reference:
            own = dicts(self.main.get("identifier"))
            reference = text(own[0].get("value")) if own else text(self.main.get("id"))[:30]
        self.out.append(["BHT", "0007", purpose, reference, self.when.strftime("%Y%m%d"),
                         self.when.strftime("%H%M")])

    def _parties(self, errors: dict[str, list[list[Any]]]) -> int:
        """2000A-2000D with their name loops; the HL number the event hangs under."""
        umo = self._level(0, "20", True)
        self.out += errors.get("2000A", [])
        self.out.append(fx.nm1("X3", self.insurer, "PI"))
        self.out += errors.get("2010A", [])
        requester = umo
        if self.requester is not None:
            requester = self._level(umo, "21", True)
            self.out.append(fx.nm1(self._requester_entity(), self.requester, "PI"))
            if not self.is_response:
                self.out += fx.address_segments(self.requester)
                per = fx.per_elements(self.requester.get("telecom"))
                if per:
                    self.out.append(["PER", "IC", "", *per])
            self.out += errors.get("2010B", [])
        dependent = self.patient is not self.subscriber and \
            self.patient.get("id") != self.subscriber.get("id")
        subscriber = self._level(requester, "22", True)
        self.out.append(fx.nm1("IL", self.subscriber, "MI"))
        group = next((text(c.get("value")) for c in dicts((self.coverage or {}).get("class"))
                      if pas.code_of(c.get("type")) == "group"), "")
        if group:
            self.out.append(["REF", "6P", group])
        self.out += fx.address_segments(self.subscriber)
        self.out += errors.get("2010C", [])
        self.out += fx.dmg(self.subscriber)
        if not dependent:
            return subscriber
        level = self._level(subscriber, "23", True)
        self.out.append(fx.nm1("QC", self.patient, "MI"))
        self.out += fx.address_segments(self.patient)
        self.out += errors.get("2010D", [])
        self.out += fx.dmg(self.patient)
        relationship = pas.code_of((self.coverage or {}).get("relationship"))
        self.out.append(["INS", "N", pas.RELATIONSHIP_CODES.get(relationship, "G8")])
        return level

    def _since(self, level: int) -> int:
        """How many segments were written after the HL of `level`."""
        for back, seg in enumerate(reversed(self.out)):
            if seg[0] == "HL" and seg[1] == str(level):
                return back
        raise ValueError(f"no HL {level} written")

    def _requester_entity(self) -> str:
        for concept in dicts((self.requester or {}).get("type")):
            code = pas.code_of(concept, pas.ENTITY)
            if code:
                return code
        return "1P"

    def _trn(self, ident: dict, kind: str = "1") -> list[Any]:
        system = text(ident.get("system"))
        origin = system.removeprefix("urn:conduit:id:x12:") if system.startswith(
            "urn:conduit:id:x12:") else ""
        return ["TRN", kind, text(ident.get("value")), "" if origin == "trn" else origin]

    # -- the request -----------------------------------------------------------------------

    def request(self) -> list[list[Any]]:
        claim = self.main
        items = dicts(claim.get("item"))
        event_item = items[0] if len(items) == 1 and _is_event_item(items[0]) else None
        services = [] if event_item is not None else items
        self._header("13")
        parent = self._parties({})
        self._level(parent, "EV", bool(services))
        own = dicts(claim.get("identifier"))
        if own:
            self.out.append(self._trn(own[0]))
        first = items[0] if items else {}
        self.out.append(["UM", pas.code_of(claim.get("subType"), pas.REQUEST_CATEGORY),
                         _ext_code(claim, pas.EXT_CERTIFICATION_TYPE),
                         pas.code_of(first.get("category"), pas.SERVICE_TYPE),
                         pas.facility_element(first.get("locationCodeableConcept")), "",
                         _ext_code(claim, pas.EXT_LEVEL_OF_SERVICE)])
        self.out += self._event_dates(claim)
        if event_item is not None:
            self.out += _serviced(event_item)
        diagnoses = self._diagnoses(claim)
        if diagnoses:
            self.out.append(["HI", *diagnoses])
        if event_item is not None:
            self.out += _hsd(event_item.get("quantity"))
        message = next((text(i.get("valueString")) for i in dicts(claim.get("supportingInfo"))
                        if pas.code_of(i.get("category")) == "freeFormMessage"), "")
        if message:
            self.out.append(["MSG", message])
        self._care_team(claim)
        event_level = self.hl
        for item in services:
            self._service(event_level, item, claim)
        return self.out

    def _event_dates(self, claim: dict) -> list[list[Any]]:
        out = []
        for info in dicts(claim.get("supportingInfo")):
            qualifier = _DATES.get(pas.code_of(info.get("category"), pas.SUPPORTING_INFO))
            if qualifier is None:
                continue
            out += _dtp(qualifier, info.get("timingDate"), info.get("timingPeriod"))
        return out

    def _diagnoses(self, claim: dict) -> list[list[str]]:
        out = []
        for diagnosis in dicts(claim.get("diagnosis")):
            concept = diagnosis.get("diagnosisCodeableConcept")
            for system, qualifiers in _ICD.items():
                code = pas.code_of(concept, system)
                if not code:
                    continue
                kinds = [pas.code_of(t, codes.DIAGNOSIS_TYPE) for t in dicts(diagnosis.get("type"))]
                kind = next((k for k in kinds if k in qualifiers and k), "")
                out.append([qualifiers[kind], codes.x12_icd(code)])
                break
        return out

    def _care_team(self, claim: dict) -> None:
        for member in dicts(claim.get("careTeam")):
            found = self.index.resolve(member.get("provider"), self.focus)
            if found is None:
                continue
            role = pas.code_of(member.get("role"), pas.ENTITY) or "SJ"
            self.out.append(fx.nm1(role, found.resource, "ZZ"))
            self.out += fx.address_segments(found.resource)
            taxonomy = pas.code_of(member.get("qualification"), codes.TAXONOMY)
            if taxonomy:
                self.out.append(["PRV", "PE", "PXC", taxonomy])

    def _service(self, event_level: int, item: dict, claim: dict) -> None:
        self._level(event_level, "SS", False)
        trace = pas.find_extension(item, pas.EXT_ITEM_TRACE)
        if trace is not None and isinstance(trace.get("valueIdentifier"), dict):
            self.out.append(self._trn(trace["valueIdentifier"]))
        self.out.append(["UM", _ext_code(item, pas.EXT_REQUEST_TYPE) or
                         pas.code_of(claim.get("subType"), pas.REQUEST_CATEGORY),
                         _ext_code(item, pas.EXT_CERTIFICATION_TYPE),
                         pas.code_of(item.get("category"), pas.SERVICE_TYPE),
                         pas.facility_element(item.get("locationCodeableConcept"))])
        self.out += _serviced(item)
        quantity = item.get("quantity") if isinstance(item.get("quantity"), dict) else {}
        in_hsd = quantity.get("system") == pas.QUANTITY_QUALIFIER
        line = _line(item, "" if in_hsd else _number(quantity.get("value")))
        if line:
            self.out.append(line)
        if in_hsd:
            self.out += _hsd(quantity)

    # -- the response ----------------------------------------------------------------------

    def response(self) -> list[list[Any]]:
        answer = self.main
        errors: dict[str, list[list[Any]]] = {}
        item_errors: dict[int, list[list[Any]]] = {}
        for error in dicts(answer.get("error")):
            aaa = _aaa(error)
            sequence = error.get("itemSequence")
            if isinstance(sequence, int):
                item_errors.setdefault(sequence, []).append(aaa)
                continue
            loop = text((pas.find_extension(error, pas.EXT_X12_LOOP) or {}).get(
                "valueString")) or "2010C"
            errors.setdefault(loop, []).append(aaa)
        items = {i["itemSequence"]: i for i in dicts(answer.get("item"))
                 if isinstance(i.get("itemSequence"), int)}
        sequences = sorted({*items, *item_errors})
        self._header("11")
        parent = self._parties(errors)
        request_id = (answer.get("request") or {}).get("identifier") \
            if isinstance(answer.get("request"), dict) else None
        idents = dicts(answer.get("identifier"))
        decided = any(_hcr(a) for a in dicts(answer.get("adjudication")))
        if not (idents or decided or sequences or errors.get("2000E") or answer.get(
                "subType") or answer.get("preAuthPeriod") or text(answer.get("disposition"))):
            self.out[-1 - self._since(parent)][4] = "0"  # refused before the event
            return self.out
        event_level = self._level(parent, "EV", bool(sequences))
        for ident in idents:
            self.out.append(self._trn(ident, "2" if ident == request_id else "1"))
        self.out += errors.get("2000E", [])
        category = pas.code_of(answer.get("subType"), pas.REQUEST_CATEGORY)
        if category:
            self.out.append(["UM", category, *_um_rest(answer),
                             "", _ext_code(answer, pas.EXT_LEVEL_OF_SERVICE)])
        for adjudication in dicts(answer.get("adjudication")):
            hcr = _hcr(adjudication)
            if hcr:
                self.out.append(hcr)
                break
        self.out += _preauth_dates(answer.get("preAuthPeriod"))
        diagnoses = _communicated(answer)
        hi = self._diagnoses({"diagnosis": diagnoses})
        if hi:
            self.out.append(["HI", *hi])
        if text(answer.get("disposition")):
            self.out.append(["MSG", text(answer["disposition"])])
        for sequence in sequences:
            self._decided_service(event_level, items.get(sequence, {}),
                                  item_errors.get(sequence, []))
        return self.out

    def _decided_service(self, event_level: int, item: dict, errors: list[list[Any]]) -> None:
        self._level(event_level, "SS", False)
        trace = pas.find_extension(item, pas.EXT_ITEM_TRACE)
        if trace is not None and isinstance(trace.get("valueIdentifier"), dict):
            self.out.append(self._trn(trace["valueIdentifier"], "2"))
        self.out += errors
        request_type = _ext_code(item, pas.EXT_REQUEST_TYPE)
        if request_type:
            self.out.append(["UM", request_type, *_um_rest(item)])
        for adjudication in dicts(item.get("adjudication")):
            hcr = _hcr(adjudication)
            if hcr:
                self.out.append(hcr)
                break
        period = pas.find_extension(item, pas.EXT_ITEM_PREAUTH_PERIOD)
        self.out += _preauth_dates((period or {}).get("valuePeriod"))
        served = pas.find_extension(item, pas.EXT_SERVICE_DATE) or {}
        self.out += _dtp("472", served.get("valueDate"), served.get("valuePeriod"))
        line = _authorized_line(item)
        if line:
            self.out.append(line)


# ---- pieces ------------------------------------------------------------------------------


def _when(created: Any) -> datetime:
    match = _CREATED.match(created) if isinstance(created, str) else None
    if match is None:
        return datetime(2000, 1, 1)
    year, month, day, hour, minute = match.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    except ValueError:
        return datetime(2000, 1, 1)


def _ext_code(element: dict, url: str) -> str:
    found = pas.find_extension(element, url)
    return pas.code_of((found or {}).get("valueCodeableConcept"))


def _is_event_item(item: dict) -> bool:
    product = item.get("productOrService")
    return bool(pas.code_of(product, pas.SERVICE_TYPE)) and \
        pas.find_extension(item, pas.EXT_ITEM_TRACE) is None


def _d8(value: Any) -> str:
    return text(value)[:10].replace("-", "")


def _dtp(qualifier: str, date: Any, period: Any) -> list[list[Any]]:
    if isinstance(period, dict) and (period.get("start") or period.get("end")):
        start, end = _d8(period.get("start")), _d8(period.get("end"))
        if start and end:
            return [["DTP", qualifier, "RD8", f"{start}-{end}"]]
        return [["DTP", qualifier, "D8", start or end]]
    if date:
        return [["DTP", qualifier, "D8", _d8(date)]]
    return []


def _serviced(item: dict) -> list[list[Any]]:
    return _dtp("472", item.get("servicedDate"), item.get("servicedPeriod"))


def _number(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _hsd(quantity: Any) -> list[list[Any]]:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return []
    code = text(quantity.get("code")) if quantity.get("system") == pas.QUANTITY_QUALIFIER \
        else ""
    return [["HSD", code, _number(quantity.get("value"))]]


def _line(item: dict, units: str) -> list[Any] | None:
    """SV1, SV2 or SV3 for an item coded as a procedure; None for a service type."""
    product = item.get("productOrService")
    coding = next((c for c in dicts((product or {}).get("coding"))
                   if c.get("system") != pas.SERVICE_TYPE and c.get("code")), None)
    if coding is None:
        return None
    system = text(coding.get("system"))
    modifiers = [pas.code_of(m) for m in dicts(item.get("modifier"))][:4]
    procedure = [pas.procedure_qualifier(system), text(coding.get("code")), *modifiers]
    net = item.get("net") if isinstance(item.get("net"), dict) else {}
    charge = _number(net.get("value"))
    revenue = pas.code_of(item.get("revenue"), codes.REVENUE)
    if revenue:
        return ["SV2", revenue, procedure, charge, "UN" if units else "", units]
    if system == codes.CDT:
        return ["SV3", procedure, charge]
    return ["SV1", procedure, charge, "UN" if units else "", units]


def _hcr(adjudication: dict) -> list[Any] | None:
    review = pas.find_extension(adjudication, pas.EXT_REVIEW_ACTION)
    if review is None:
        return None
    parts = {text(p.get("url")): p for p in dicts(review.get("extension"))}
    action = pas.code_of((parts.get(pas.EXT_REVIEW_ACTION_CODE) or {}).get(
        "valueCodeableConcept"), pas.ACTION)
    if not action:
        return None
    return ["HCR", action, text((parts.get("number") or {}).get("valueString")),
            pas.code_of((parts.get("reasonCode") or {}).get("valueCodeableConcept"))]


def _um_rest(element: dict) -> list[Any]:
    """UM02-UM04 of a response from its extensions: certificationType, and Conduit's
    service type and facility."""
    facility = pas.find_extension(element, pas.EXT_FACILITY) or {}
    return [_ext_code(element, pas.EXT_CERTIFICATION_TYPE),
            _ext_code(element, pas.EXT_SERVICE_TYPE),
            pas.facility_element(facility.get("valueCodeableConcept"))]


def _communicated(answer: dict) -> list[dict]:
    """communicatedDiagnosis extensions as diagnoses, the first principal (a response's
    HI lists the principal first; its other types are not kept in FHIR)."""
    found = [e.get("valueCodeableConcept") for e in dicts(answer.get("extension"))
             if e.get("url") == pas.EXT_DIAGNOSIS]
    principal = [{"coding": [{"system": codes.DIAGNOSIS_TYPE, "code": "principal"}]}]
    return [{"diagnosisCodeableConcept": c, "type": principal if n == 0 else []}
            for n, c in enumerate(found)]


def _authorized_line(item: dict) -> list[Any] | None:
    """The SV1/SV2/SV3 of a decided service from PAS itemAuthorizedDetail."""
    detail = pas.find_extension(item, pas.EXT_AUTHORIZED_DETAIL)
    if detail is None:
        return None
    parts = dicts(detail.get("extension"))
    product = next((p.get("valueCodeableConcept") for p in parts
                    if p.get("url") == "productOrServiceCode"), None)
    quantity = next((p.get("valueQuantity") for p in parts if p.get("url") == "quantity"),
                    None)
    revenue = next((p.get("valueCodeableConcept") for p in parts if p.get("url") == "revenue"),
                   None)
    as_item = {"productOrService": product, "revenue": revenue,
               "modifier": [p.get("valueCodeableConcept") for p in parts
                            if p.get("url") == "modifier"]}
    units = _number(quantity.get("value")) if isinstance(quantity, dict) else ""
    unit = text(quantity.get("code")) if isinstance(quantity, dict) and \
        quantity.get("system") == pas.UNIT else ""
    line = _line(as_item, units)
    if line is not None and unit and line[0] in ("SV1", "SV2"):
        line[-2] = unit  # SV103 / SV204
    if line is None and revenue is not None:  # a revenue code alone (SV201)
        code = pas.code_of(revenue, codes.REVENUE)
        return ["SV2", code, "", "", unit or ("UN" if units else ""), units] if code \
            else None
    return line


def _preauth_dates(period: Any) -> list[list[Any]]:
    if not isinstance(period, dict):
        return []
    start, end = _d8(period.get("start")), _d8(period.get("end"))
    if start and end:
        return [["DTP", "007", "RD8", f"{start}-{end}"]]
    if start:
        return [["DTP", "007", "D8", start]]
    return [["DTP", "036", "D8", end]] if end else []


def _aaa(error: dict) -> list[Any]:
    concept = error.get("code")
    return ["AAA", "N", "", pas.code_of(concept, pas.REJECT_REASON),
            pas.code_of(concept, pas.FOLLOW_UP)]
