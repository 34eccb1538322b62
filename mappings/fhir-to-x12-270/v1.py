"""fhir-to-x12-270@1: a FHIR R4 CoverageEligibilityRequest as a 270 eligibility inquiry
interchange (005010X279A1).

Input: a CoverageEligibilityRequest whose Patient, insurer, provider and Coverage are
contained in it ("#id") or are entries of the Bundle it comes in (by fullUrl, or by
"Type/id"); a Bundle's first request is mapped. Anything else fails naming
resourceType; a Bundle without a request fails naming Bundle.entry.

Choices a receiver will notice:
- One interchange, one group (GS01 HS), one set. The channel's `x12:` block re-envelopes
  it with the partners' ids and engine-managed control numbers; until then ISA06/GS02
  is the provider's NPI (else CONDUIT) and ISA08/GS03 the payer's id, both ZZ; ISA13
  and GS06 are a number from a hash of the request's id; usage P. ISA09/10, GS04/05 and
  BHT04/05 are `created` (its own clock time, any zone dropped: X12 carries none), so
  the same request always gives the same bytes. A request without `created` fails
  naming CoverageEligibilityRequest.created.
- BHT03 and TRN02: the request's first identifier (else its id); TRN03 the originator
  the identifier names when it is urn:conduit:id:x12:trn:<TRN03> (what
  x12-270-to-fhir@1 writes), else 9CONDUIT00.
- 2100A: NM1*PR*2, the insurer's name, PI and its first identifier. An insurer without
  an identifier fails naming CoverageEligibilityRequest.insurer (the payer id is
  required).
- 2100B: NM1*1P, 1 for a Practitioner and 2 for an Organization, by NPI (XX), else EIN
  (FI), else the first identifier (SV); N3/N4 from its address. A request without a
  provider with an identifier fails naming CoverageEligibilityRequest.provider.
- Subscriber or dependent: a dependent inquiry (2000D) when the Coverage's relationship
  is not self (or, without one, its subscriber is not its beneficiary) and the patient
  has no member number of their own (a dependent who has one is, in 5010, asked about
  as a subscriber, by that number); the subscriber
  level then carries the subscriber's name when the subscriber resource is at hand and
  the member id, the dependent level the patient with INS*N*<01 spouse, 19 child, 34
  other>. Otherwise the patient is the subscriber.
- Member id (2100C NM1*IL ... MI): Coverage.subscriberId, else the patient's member
  number (an identifier of type MB, else one this engine minted: urn:conduit:id:x12:).
  A subscriber inquiry needs a member id or a name and birth date; without both it
  fails naming Coverage.subscriberId.
- The person asked about: NM1 (family, first given, second given as middle, suffix),
  N3/N4 (first address), DMG*D8 (birthDate when a full date; gender M, F, else U), DTP
  291 (servicedDate as D8, servicedPeriod as RD8; none when neither is given).
- EQ: one per item, EQ01 its category's code (a service type code); EQ02 its
  productOrService when a CPT or HCPCS (HC), CDT (AD) or NDC (N4) code; EQ*30 (health
  benefit plan coverage) when no item names either.
- Text with a separator or line break in it (a name with "*") has those characters
  replaced by spaces; an identifier holding one fails naming it, as X12 has no escape
  and a changed id would ask about someone else.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

from engine.errors import MappingError
from engine.formats.x12.build import interchange
from engine.maplib import x12_eligibility as elig
from engine.maplib.x12_fhir import EIN, NPI
from engine.mapping import mapping

_FORBIDDEN = "*~^:|>{}\r\n"
_GENDER = {"male": "M", "female": "F"}
_MEMBER_PREFIX = "urn:conduit:id:x12:"
_DEFAULT_ORIGIN = "9CONDUIT00"


@mapping("fhir-to-x12-270@1", accepts="fhir", emits="application/edi-x12")
def request_to_270(resource: dict) -> str:
    """The 270 interchange asking what the request asks."""
    found = _Resources(resource)
    request = found.request
    when = _when(request.get("created"))
    patient = found.resolve(request.get("patient"), request, "Patient")
    if patient is None:
        raise MappingError("the request's patient is not in the input",
                           field="CoverageEligibilityRequest.patient")
    insurer = found.resolve(request.get("insurer"), request, "Organization")
    payer_id = _first_identifier(insurer, "CoverageEligibilityRequest.insurer")
    provider = found.resolve(request.get("provider"), request) or {}
    provider_qualifier, provider_id = _provider_id(provider)
    coverage = found.resolve(_focal_coverage(request), request, "Coverage")
    subscriber = found.resolve(coverage.get("subscriber"), request) if coverage else None
    related = _is_dependent(coverage)
    # A dependent with a member number of their own is asked about as a subscriber.
    own_id = _own_member_id(patient) if related else ""
    dependent = related and not own_id
    trace = _trace(request)
    if dependent:
        member_id = _member_id(coverage, subscriber)
    else:
        member_id = own_id or _member_id(coverage, patient)
    if not dependent and not member_id and not (_name(patient) and
                                                patient.get("birthDate")):
        raise MappingError("the subscriber has neither a member id nor a name and birth "
                           "date, so the payer cannot find them", field="Coverage.subscriberId")
    body: list[list[Any]] = [
        ["BHT", "0022", "13", _id(trace[0], "CoverageEligibilityRequest.identifier"),
         when.strftime("%Y%m%d"), when.strftime("%H%M")],
        ["HL", "1", "", "20", "1"],
        ["NM1", "PR", "2", _text((insurer or {}).get("name")), "", "", "", "", "PI",
         payer_id],
        ["HL", "2", "1", "21", "1"],
        ["NM1", "1P", "1" if provider.get("resourceType") == "Practitioner" else "2",
         *_provider_name(provider), provider_qualifier, provider_id],
        *_address(provider),
        ["HL", "3", "2", "22", "1" if dependent else "0"],
    ]
    trn = ["TRN", "1", _id(trace[0], "CoverageEligibilityRequest.identifier"), trace[1]]
    inquiry = [*_dates(request), *_inquiries(request)]
    if dependent:
        subscriber_name = _name(subscriber) if subscriber is not None and \
            subscriber.get("resourceType") in ("Patient", "RelatedPerson") else {}
        body += [["NM1", "IL", "1", *_name_elements(subscriber_name),
                  "MI" if member_id else "", member_id],
                 ["HL", "4", "3", "23", "0"], trn,
                 ["NM1", "03", "1", *_name_elements(_name(patient))],
                 *_address(patient), *_demographics(patient),
                 *_ins(coverage), *inquiry]
    else:
        body += [trn,
                 ["NM1", "IL", "1", *_name_elements(_name(patient)),
                  "MI" if member_id else "", member_id],
                 *_address(patient), *_demographics(patient), *inquiry]
    try:
        return interchange(
            [("270", "005010X279A1", body)],
            sender=("ZZ", _isa_id(provider_id if provider_qualifier == "XX" else "CONDUIT")),
            receiver=("ZZ", _isa_id(payer_id)), control_number=_control_number(request),
            when=when)
    except ValueError as exc:  # a value the checks above let through; names no value
        raise MappingError(f"cannot be written as X12: {exc}",
                           field="CoverageEligibilityRequest") from None


class _Resources:
    """The request and what its references point at."""

    def __init__(self, resource: dict) -> None:
        kind = resource.get("resourceType")
        self.by_ref: dict[str, dict] = {}
        if kind == "CoverageEligibilityRequest":
            self.request = resource
            return
        if kind != "Bundle":
            raise MappingError(f"a {kind} is not a CoverageEligibilityRequest",
                               field="resourceType")
        entries = [e for e in _list(resource.get("entry")) if isinstance(e, dict)]
        for entry in entries:
            res = entry.get("resource")
            if not isinstance(res, dict):
                continue
            if entry.get("fullUrl"):
                self.by_ref[str(entry["fullUrl"])] = res
            if res.get("id"):
                self.by_ref[f"{res.get('resourceType')}/{res['id']}"] = res
        requests = [e["resource"] for e in entries if isinstance(e.get("resource"), dict)
                    and e["resource"].get("resourceType") == "CoverageEligibilityRequest"]
        if not requests:
            raise MappingError("the Bundle holds no CoverageEligibilityRequest",
                               field="Bundle.entry")
        self.request = requests[0]

    def resolve(self, ref: Any, container: dict, kind: str = "") -> dict | None:
        """A reference's target: contained (#id), a Bundle entry, or None."""
        if not isinstance(ref, dict):
            return None
        target = str(ref.get("reference", ""))
        found: dict | None = None
        if target.startswith("#"):
            found = next((c for c in _list(container.get("contained"))
                          if isinstance(c, dict) and c.get("id") == target[1:]), None)
        elif target:
            found = self.by_ref.get(target) or self.by_ref.get("/".join(target.split("/")[-2:]))
        if found is None and isinstance(ref.get("identifier"), dict):
            found = {"resourceType": kind, "identifier": [ref["identifier"]],
                     "name": ref.get("display", "")}
        if found is not None and kind and found.get("resourceType") != kind:
            return None
        return found


def _obj(value: Any) -> dict:
    """A JSON object, or {} for anything else (a sender's wrong type reads as absent)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _when(created: Any) -> datetime.datetime:
    text = str(created or "")
    try:
        if len(text) == 10:
            return datetime.datetime.fromisoformat(text)
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(
            tzinfo=None)
    except ValueError:
        raise MappingError("the request has no readable creation time (the 270's dates "
                           "come from it, never from the clock)",
                           field="CoverageEligibilityRequest.created") from None


def _focal_coverage(request: dict) -> Any:
    insurance = [i for i in _list(request.get("insurance")) if isinstance(i, dict)]
    focal = next((i for i in insurance if i.get("focal") is True),
                 insurance[0] if insurance else {})
    return focal.get("coverage")


def _is_dependent(coverage: dict | None) -> bool:
    if not coverage:
        return False
    code = _code(coverage.get("relationship"))
    if code:
        return code != "self"
    subscriber = _obj(coverage.get("subscriber")).get("reference")
    beneficiary = _obj(coverage.get("beneficiary")).get("reference")
    return bool(subscriber and beneficiary and subscriber != beneficiary)


def _code(concept: Any) -> str:
    for coding in _list(_obj(concept).get("coding")):
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"])
    return ""


def _trace(request: dict) -> tuple[str, str]:
    for ident in _list(request.get("identifier")):
        if isinstance(ident, dict) and ident.get("value"):
            return str(ident["value"]), elig.trace_origin(ident) or _DEFAULT_ORIGIN
    return str(request.get("id") or "1")[:50], _DEFAULT_ORIGIN


def _first_identifier(resource: dict | None, field: str) -> str:
    for ident in _list(_obj(resource).get("identifier")):
        if isinstance(ident, dict) and ident.get("value"):
            return _id(str(ident["value"]), field)
    raise MappingError("has no identifier to name it by in X12", field=field)


def _provider_id(provider: dict) -> tuple[str, str]:
    field = "CoverageEligibilityRequest.provider"
    idents = [i for i in _list(provider.get("identifier"))
              if isinstance(i, dict) and i.get("value")]
    if not idents:
        raise MappingError("the request names no provider with an identifier (NPI)",
                           field=field)
    for system, qualifier in ((NPI, "XX"), (EIN, "FI")):
        for ident in idents:
            if ident.get("system") == system:
                return qualifier, _id(str(ident["value"]), field)
    return "SV", _id(str(idents[0]["value"]), field)


def _member_id(coverage: dict | None, person: dict | None) -> str:
    if coverage and coverage.get("subscriberId"):
        return _id(str(coverage["subscriberId"]), "Coverage.subscriberId")
    return _own_member_id(person)


def _own_member_id(person: dict | None) -> str:
    """A person's own member number: of type MB, else one this engine minted."""
    idents = [i for i in _list(_obj(person).get("identifier")) if isinstance(i, dict)
              and i.get("value")]
    chosen = next((i for i in idents if _code(i.get("type")) == "MB"), None) or next(
        (i for i in idents if str(i.get("system", "")).startswith(_MEMBER_PREFIX)), None)
    return _id(str(chosen["value"]), "Patient.identifier") if chosen else ""


def _id(value: str, field: str) -> str:
    if any(ch in value for ch in _FORBIDDEN):
        raise MappingError("holds an X12 separator or line break", field=field)
    return value


def _text(value: Any) -> str:
    text = str(value or "")
    for ch in _FORBIDDEN:
        text = text.replace(ch, " ")
    return " ".join(text.split())


def _name(resource: dict | None) -> dict:
    names = [n for n in _list(_obj(resource).get("name")) if isinstance(n, dict)]
    official = next((n for n in names if n.get("use") == "official"), None)
    return official or (names[0] if names else {})


def _name_elements(name: dict) -> list[str]:
    """NM103 to NM107: last, first, middle, prefix (unused), suffix."""
    given = [str(g) for g in _list(name.get("given"))]
    suffix = [str(s) for s in _list(name.get("suffix"))]
    return [_text(name.get("family")), _text(given[0] if given else ""),
            _text(given[1] if len(given) > 1 else ""), "",
            _text(suffix[0] if suffix else "")]


def _provider_name(provider: dict) -> list[str]:
    if provider.get("resourceType") == "Practitioner":
        return _name_elements(_name(provider))
    return [_text(provider.get("name")), "", "", "", ""]


def _address(resource: dict | None) -> list[list[str]]:
    addresses = [a for a in _list(_obj(resource).get("address")) if isinstance(a, dict)]
    if not addresses:
        return []
    address = addresses[0]
    lines = [_text(x) for x in _list(address.get("line"))][:2]
    out = [["N3", *lines]] if any(lines) else []
    city = [_text(address.get(k)) for k in ("city", "state", "postalCode")]
    country = _text(address.get("country"))
    if any(city):
        out.append(["N4", *city, country if country not in ("", "US", "USA") else ""])
    return out


def _demographics(person: dict) -> list[list[str]]:
    birth = str(person.get("birthDate") or "")
    gender = person.get("gender")
    if len(birth) != 10:
        return []
    return [["DMG", "D8", birth.replace("-", ""),
             _GENDER.get(str(gender), "U") if gender else ""]]


def _ins(coverage: dict | None) -> list[list[str]]:
    code = elig.ins_relationship(_code((coverage or {}).get("relationship")))
    return [["INS", "N", code]] if code else []


def _dates(request: dict) -> list[list[str]]:
    if request.get("servicedDate"):
        return [["DTP", "291", "D8", str(request["servicedDate"]).replace("-", "")]]
    period = _obj(request.get("servicedPeriod"))
    start, end = str(period.get("start", ""))[:10], str(period.get("end", ""))[:10]
    if start and end:
        return [["DTP", "291", "RD8", f"{start.replace('-', '')}-{end.replace('-', '')}"]]
    if start or end:
        return [["DTP", "291", "D8", (start or end).replace("-", "")]]
    return []


def _inquiries(request: dict) -> list[list[Any]]:
    out: list[list[Any]] = []
    for item in _list(request.get("item")):
        if not isinstance(item, dict):
            continue
        category = _service_type(item.get("category"))
        product = _procedure(item.get("productOrService"))
        if product:
            out.append(["EQ", category, product])
        elif category:
            out.append(["EQ", category])
    return out or [["EQ", elig.HEALTH_PLAN]]


def _service_type(concept: Any) -> str:
    codings = [c for c in _list(_obj(concept).get("coding")) if isinstance(c, dict)]
    chosen = next((c for c in codings if c.get("system") == elig.SERVICE_TYPES), None)
    code = str((chosen or {}).get("code") or "")
    return code if code and not any(ch in code for ch in _FORBIDDEN) else ""


def _procedure(concept: Any) -> list[str] | None:
    for coding in _list(_obj(concept).get("coding")):
        if not isinstance(coding, dict) or not coding.get("code"):
            continue
        qualifier = elig.procedure_qualifier(str(coding.get("system", "")))
        code = str(coding["code"])
        if qualifier and not any(ch in code for ch in _FORBIDDEN):
            return [qualifier, code]
    return None


def _isa_id(value: str) -> str:
    cleaned = "".join(ch for ch in value if ch not in _FORBIDDEN)[:15]
    return cleaned or "CONDUIT"


def _control_number(request: dict) -> int:
    seed = str(request.get("id") or json.dumps(request, sort_keys=True, default=str))
    digest = hashlib.sha256(f"CoverageEligibilityRequest|{seed}".encode()).hexdigest()
    return int(digest[:12], 16) % 999_999_999 + 1
