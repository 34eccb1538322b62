"""835 remittance as FHIR R4: the parties (payer, payee, patients), one
ExplanationOfBenefit per claim payment (CLP) and one PaymentReconciliation for the
payment itself (BPR/TRN) with the provider-level adjustments (PLB).

Each builder reads one loop of the set's structure (sets/x835.py), so "the claim's
patient" is the 2100 NM1*QC whatever came before it. An amount that is not a number or a
date that is not a date is left out, never failing the remittance; the mapping's
docstring lists the choices a receiver will notice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import Node
from engine.formats.x12.tokens import Segment
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.x12_codes import (
    ADJUDICATION,
    C4BB_ROLE,
    C4BB_SUBTYPE,
    CLAIM_TYPE,
    CPT,
    HCPCS,
    PROCEDURE_SYSTEMS,
    REVENUE,
    coding,
    concept,
    procedure_system,
)

CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"
C4BB_ADJUDICATION = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
PAYEE_TYPE = "http://terminology.hl7.org/CodeSystem/payeetype"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"
# X12's own code lists, which have no published URI.
GROUP = "urn:conduit:code:x12:claim-adjustment-group"
REMARK = "urn:conduit:code:x12:adjudication"
PAYMENT_METHOD = "urn:conduit:code:x12:payment-method"
PROVIDER_ADJUSTMENT = "urn:conduit:code:x12:provider-adjustment-reason"

GROUPS = {"CO": "Contractual obligations", "OA": "Other adjustments",
          "PI": "Payor initiated reductions", "PR": "Patient responsibility",
          "CR": "Corrections and reversals"}
METHODS = {"ACH": "Automated clearing house (EFT)", "BOP": "Financial institution option",
           "CHK": "Check", "FWT": "Federal reserve funds/wire transfer",
           "NON": "Non-payment data"}
DISPOSITION = {
    "1": "Processed as primary", "2": "Processed as secondary",
    "3": "Processed as tertiary", "4": "Denied",
    "19": "Processed as primary, forwarded to additional payer(s)",
    "20": "Processed as secondary, forwarded to additional payer(s)",
    "21": "Processed as tertiary, forwarded to additional payer(s)",
    "22": "Reversal of previous payment",
    "23": "Not our claim, forwarded to additional payer(s)",
    "25": "Predetermination pricing only, no payment"}
# CLP02 -> ExplanationOfBenefit.outcome (see the mapping's docstring).
OUTCOME = {"19": "partial", "20": "partial", "21": "partial", "23": "error"}
# PLB03-1 reasons the remits of most payers carry (others are kept, without display).
PLB_REASONS = {"50": "Late charge", "51": "Interest penalty charge", "72": "Authorized return",
               "90": "Early payment allowance", "AP": "Acceleration of benefits",
               "B2": "Rebate", "B3": "Recovery allowance", "BD": "Bad debt adjustment",
               "BN": "Bonus", "C5": "Temporary allowance", "CR": "Capitation interest",
               "CS": "Adjustment", "CT": "Capitation payment", "E3": "Withholding",
               "FB": "Forwarding balance", "IR": "Internal Revenue Service withholding",
               "IS": "Interim settlement", "J1": "Nonreimbursable", "L3": "Penalty",
               "L6": "Interest owed", "LE": "Levy", "LS": "Lump sum",
               "OA": "Organ acquisition passthrough", "OB": "Offset for affiliated providers",
               "PI": "Periodic interim payment", "PL": "Payment final",
               "RA": "Retro-activity adjustment", "SL": "Student loan repayment",
               "TL": "Third party liability", "WO": "Overpayment recovery",
               "WU": "Unspecified recovery", "ZZ": "Mutually defined"}


@dataclass(frozen=True)
class Remit:
    """What every claim of one 835 shares: the payment, the parties, the money's
    currency and who scopes the ids."""

    payer: dict[str, Any]
    payee: dict[str, Any]
    payer_scope: str  # scopes member ids and the payer's claim numbers
    payee_scope: str  # scopes patient control numbers (CLP01)
    currency: str
    created: str | None
    payment_date: str | None
    trace: dict[str, Any] | None  # TRN02 as an Identifier
    method: str  # BPR04

    def money(self, value: str) -> dict[str, Any] | None:
        return xf.money(value, self.currency)


# ---- parties -----------------------------------------------------------------------------


def payer(node: Node | None, message: X12Message) -> tuple[dict[str, Any], str]:
    """The payer (1000A) as an Organization and the scope of its member ids: its payer
    id (REF*2U, the same id an 837 names it by, NM1*PR PI), else N104, else ISA06."""
    if node is None:
        nm1 = Segment(["NM1", "PR", "2", "", "", "", "", "", "", ""],
                      message.delimiters)
        return xf.organization(nm1, payer=True), xf.payer_scope(message)
    n1 = node.segments[0]
    payer_id = node.value("REF[2U]02").strip()
    nm1 = xf.as_nm1(n1)
    if payer_id:
        nm1 = Segment([*nm1.elements[:8], "PI", payer_id], n1.delimiters)
    org = xf.organization(nm1, node.segments, payer=True)
    extra = [xf.identifier(q, v) for q, v in ((n1.element(3), n1.element(4)),
                                               ("NF", node.value("REF[NF]02"))) if v]
    org = _with_identifiers(org, extra)
    return org, xf.payer_scope(message, payer_id or n1.element(4).strip())


def payee(node: Node | None, message: X12Message) -> tuple[dict[str, Any], str]:
    """The payee (1000B) as a provider Organization and the scope of its patient control
    numbers: N104 (its NPI or tax id, as the 837's billing provider), else REF*TJ, else
    its name."""
    if node is None:
        nm1 = Segment(["NM1", "PE", "2", "", "", "", "", "", "", ""], message.delimiters)
        return xf.organization(nm1), "unknown"
    n1 = node.segments[0]
    org = xf.organization(xf.as_nm1(n1), node.segments)
    org = _with_identifiers(org, [xf.identifier("EI", node.value("REF[TJ]02"))])
    scope = (n1.element(4) or node.value("REF[TJ]02") or n1.element(2) or "unknown")
    return org, scope.strip()


def _with_identifiers(resource: dict[str, Any], extra: Iterable[dict[str, Any] | None]
                      ) -> dict[str, Any]:
    idents = list(resource.get("identifier", []))
    for ident in extra:
        if ident and ident not in idents:
            idents.append(ident)
    return {**resource, "identifier": idents} if idents else resource


def claim_patient(claim: Node, scope: str) -> dict[str, Any]:
    """The patient of a claim (NM1*QC). One without an id of its own (a dependent the
    payer knows by the subscriber's id) gets its id from the subscriber's member id and
    its name: an 835 carries no birth date to tell namesakes apart."""
    nm1 = claim.seg("NM1", "QC")
    assert nm1 is not None, "the mapping checks every claim has a patient"
    person = xf.patient(nm1, [nm1], scope)
    subscriber_id = claim.value("NM1[IL]09").strip()
    if not nm1.element(9).strip() and subscriber_id:
        key = {"system": f"urn:conduit:x12:dependent:{scope}",
               "value": "|".join((subscriber_id, nm1.element(3), nm1.element(4)))}
        person = {**person, "id": resource_id("Patient", "x12", key)}
    return person


# ---- adjudication ------------------------------------------------------------------------


def adjustments(segments: Sequence[Segment], money: Callable[[str], dict[str, Any] | None]
                ) -> list[dict[str, Any]]:
    """Each CAS reason (up to six per segment) as an adjudication: the group code as
    category, the CARC as reason, its amount and, when sent, its quantity as value."""
    out: list[dict[str, Any]] = []
    for cas in segments:
        if cas.id != "CAS":
            continue
        group = cas.element(1).strip()
        for start in range(2, 20, 3):
            reason = cas.element(start).strip()
            if not reason:
                continue
            quantity = xf.amount(cas.element(start + 2))
            out.append(compact({
                "category": concept(GROUP, group, GROUPS.get(group, "")),
                "reason": concept(CARC, reason),
                "amount": money(cas.element(start + 1)),
                "value": quantity,
            }))
    return out


def remarks(codes: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Remark codes (system, code) as adjudications with category `remark`."""
    out, seen = [], set()
    for system, code in codes:
        code = code.strip()
        if code and (system, code) not in seen:
            seen.add((system, code))
            out.append({"category": concept(REMARK, "remark", "Remittance advice remark"),
                        "reason": concept(system, code)})
    return out


def claim_remarks(claim: Node) -> list[tuple[str, str]]:
    """The claim's RARCs: MIA05 and MIA20-23 (inpatient), MOA03-07 (outpatient)."""
    codes: list[tuple[str, str]] = []
    if (mia := claim.seg("MIA")) is not None:
        codes += [(RARC, mia.element(i)) for i in (5, 20, 21, 22, 23)]
    if (moa := claim.seg("MOA")) is not None:
        codes += [(RARC, moa.element(i)) for i in (3, 4, 5, 6, 7)]
    return codes


def _line_remarks(line: Node) -> list[tuple[str, str]]:
    """LQ*HE (RARC) and LQ*RX (NCPDP reject/payment codes) of a service line."""
    systems = {"HE": RARC, "RX": "urn:conduit:code:x12:ncpdp-reject-payment"}
    return [(systems.get(lq.element(1), f"urn:conduit:code:x12:{lq.element(1)}"),
             lq.element(2)) for lq in line.segs("LQ")]


def amounts(pairs: Iterable[tuple[str, str, str]], remit: Remit) -> list[dict[str, Any]]:
    """(system, category, X12 amount) as adjudication or total entries, the empty ones
    left out."""
    out = []
    for system, category, value in pairs:
        money = remit.money(value)
        if money is not None:
            out.append({"category": concept(system, category), "amount": money})
    return out


# ---- service lines -----------------------------------------------------------------------


# SVC01 qualifiers: an 835 may name a line by its revenue code (NU) alone.
_SVC_SYSTEMS = {**PROCEDURE_SYSTEMS, "NU": REVENUE}


def _components(seg: Segment, index: int) -> list[str]:
    value = seg.element(index)
    return value.split(seg.delimiters.component) if value else []


def product(svc: Segment) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """SVC01: the adjudicated procedure (qualifier:code:modifiers...) and its modifiers;
    a line without a code is named as such, never dropped."""
    comp = _components(svc, 1)
    qualifier = comp[0].strip() if comp else ""
    code = comp[1].strip().upper() if len(comp) > 1 else ""
    if not code:
        return {"text": "service not identified in the remittance"}, []
    system = procedure_system(qualifier, code, systems=_SVC_SYSTEMS, unknown="unknown")
    mods = [concept(CPT if m[:1].isdecimal() else HCPCS, m.strip().upper())
            for m in comp[2:6] if m.strip()]
    return concept(system, code), mods


def service_item(line: Node, sequence: int, remit: Remit,
                 claim_period: dict[str, str] | None) -> dict[str, Any]:
    """A 2110 service payment as an EOB item: code, revenue code, dates, units paid and
    its adjudication (submitted SVC02, eligible AMT*B6, benefit SVC03, each CAS, each
    remark)."""
    svc = line.segments[0]
    code, modifiers = product(svc)
    revenue = svc.element(4).strip()
    if not revenue and _components(svc, 1)[:1] == ["NU"] and "coding" in code:
        revenue = code["coding"][0]["code"]
    served: dict[str, Any] = {}
    if day := xf.dtm_date(line.seg("DTM", "472")):
        served = {"servicedDate": day}
    else:
        period = compact({"start": xf.dtm_date(line.seg("DTM", "150")),
                          "end": xf.dtm_date(line.seg("DTM", "151"))})
        if period:
            served = {"servicedPeriod": period}
        elif claim_period:
            served = {"servicedPeriod": claim_period}
    units = xf.amount(svc.element(5))
    adjudication = amounts(((ADJUDICATION, "submitted", svc.element(2)),
                            (ADJUDICATION, "eligible", line.value("AMT[B6]02")),
                            (ADJUDICATION, "benefit", svc.element(3))), remit)
    adjudication += adjustments(line.segs("CAS"), remit.money)
    adjudication += remarks(_line_remarks(line))
    return compact({
        "sequence": sequence,
        "revenue": concept(REVENUE, revenue) if revenue else None,
        "productOrService": code,
        "modifier": modifiers,
        **served,
        "quantity": {"value": units} if units is not None else None,
        "adjudication": adjudication,
    })


# ---- the claim ---------------------------------------------------------------------------


def claim_type(claim: Node) -> str:
    """institutional when a line bills a revenue code, the claim carries inpatient data
    (MIA) or a DRG (CLP11); oral for ADA codes; pharmacy for NDC-only lines; else
    professional. The 835 names no claim type, so this is read from what was paid."""
    qualifiers = {(_components(line.segments[0], 1) or [""])[0]
                  for line in claim.kids("2110")}
    if ("NU" in qualifiers or claim.seg("MIA") is not None or claim.value("CLP11")
            or any(line.segments[0].element(4) for line in claim.kids("2110"))):
        return "institutional"
    if "AD" in qualifiers:
        return "oral"
    if qualifiers == {"N4"}:
        return "pharmacy"
    return "professional"


def billable_period(claim: Node) -> dict[str, str] | None:
    period = compact({"start": xf.dtm_date(claim.seg("DTM", "232")),
                      "end": xf.dtm_date(claim.seg("DTM", "233"))})
    return period or None


def eob_key(claim: Node, remit: Remit) -> dict[str, str]:
    """What an EOB's id comes from: the payer's claim control number (CLP07) in the
    payer's scope, else the patient control number in the payee's; a reversal (CLP02
    22) is its own EOB, so it never overwrites the payment it reverses."""
    clp = claim.segments[0]
    number = clp.element(7).strip()
    key = ({"system": f"urn:conduit:id:x12:{remit.payer_scope}", "value": number}
           if number else
           {"system": f"urn:conduit:id:x12:{remit.payee_scope}", "value": clp.element(1)})
    if clp.element(2) == "22":
        key = {**key, "value": key["value"] + "|reversal"}
    return key


def claim_identifiers(claim: Node, remit: Remit) -> tuple[list[dict[str, str]],
                                                           dict[str, str] | None]:
    """The payer's claim control number (CLP07) and the provider's patient control
    number (CLP01, scoped as the 837's Claim.identifier is); the second is also what
    the EOB's claim reference names."""
    clp = claim.segments[0]
    idents: list[dict[str, str]] = []
    if clp.element(7).strip():
        idents.append({"system": f"urn:conduit:id:x12:{remit.payer_scope}",
                       "value": clp.element(7).strip()})
    pcn = None
    if clp.element(1).strip():
        pcn = {"system": f"urn:conduit:id:x12:{remit.payee_scope}",
               "value": clp.element(1).strip()}
        idents.append(pcn)
    return idents, pcn


def insurance(claim: Node, remit: Remit) -> list[dict[str, Any]]:
    """The coverage paid under, by its member id in the payer's scope (the insured's,
    NM1*IL, else the patient's): a logical reference, since an 835 says too little to
    write a Coverage an 834 or 837 would not then overwrite."""
    member = claim.value("NM1[IL]09").strip() or claim.value("NM1[QC]09").strip()
    coverage: dict[str, Any] = (
        {"identifier": {"system": f"urn:conduit:id:x12:{remit.payer_scope}",
                        "value": member}}
        if member else {"display": "coverage not identified in the remittance"})
    return [{"focal": True, "coverage": coverage}]


def eob(claim: Node, rid: str, remit: Remit, patient: dict[str, Any],
        rendering: dict[str, Any] | None) -> dict[str, Any]:
    """One claim payment (2100) as an ExplanationOfBenefit."""
    clp = claim.segments[0]
    status = clp.element(2).strip()
    kind = claim_type(claim)
    subtype = None
    facility = clp.element(8).strip()
    if kind == "institutional" and len(facility) == 2:
        inpatient = facility[1] in ("1", "2")
        subtype = concept(C4BB_SUBTYPE, "inpatient" if inpatient else "outpatient")
    period = billable_period(claim)
    items = [service_item(line, index, remit, period)
             for index, line in enumerate(claim.kids("2110"), start=1)]
    identifiers, pcn = claim_identifiers(claim, remit)
    header = adjustments(claim.segs("CAS"), remit.money) + remarks(claim_remarks(claim))
    totals = amounts(((ADJUDICATION, "submitted", clp.element(3)),
                      (ADJUDICATION, "eligible", claim.value("AMT[AU]02")),
                      (ADJUDICATION, "benefit", clp.element(4)),
                      (C4BB_ADJUDICATION, "memberliability", clp.element(5)),
                      (C4BB_ADJUDICATION, "paidbypatient", claim.value("AMT[F5]02"))),
                     remit)
    payment = compact({
        "type": concept(PAYMENT_METHOD, remit.method, METHODS.get(remit.method, ""))
        if remit.method else None,
        "date": remit.payment_date,
        "amount": remit.money(clp.element(4)),
        "identifier": remit.trace,
    })
    team = ([{"sequence": 1, "provider": reference(rendering),
              "role": concept(C4BB_ROLE, "rendering")}] if rendering else [])
    return compact({
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "identifier": identifiers,
        "status": "active",
        "type": concept(CLAIM_TYPE, kind),
        "subType": subtype,
        "use": "predetermination" if status == "25" else "claim",
        "patient": reference(patient),
        "billablePeriod": period,
        "created": remit.created,
        "insurer": reference(remit.payer),
        "provider": reference(remit.payee),
        "payee": {"type": concept(PAYEE_TYPE, "provider"),
                  "party": reference(remit.payee)},
        "claim": {"identifier": pcn} if pcn else None,
        "outcome": OUTCOME.get(status, "complete"),
        "disposition": DISPOSITION.get(status, f"Claim status {status}" if status else None),
        "careTeam": team,
        "insurance": insurance(claim, remit),
        "item": items,
        "adjudication": header,
        "total": totals,
        "payment": payment or None,
    })


# ---- the payment -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimPaid:
    """What the reconciliation lists of one EOB."""

    eob: dict[str, Any]
    numbers: tuple[str, ...]  # CLP07 and CLP01, which a PLB reference may name
    paid: str  # CLP04


def provider_adjustments(plb: Segment) -> list[tuple[str, str, str]]:
    """(reason, reference, amount) of each of a PLB's up to six adjustments."""
    out = []
    for start in range(3, 15, 2):
        comp = _components(plb, start)
        amount = plb.element(start + 1).strip()
        if comp or amount:
            reason = comp[0].strip() if comp else ""
            ref = comp[1].strip() if len(comp) > 1 else ""
            out.append((reason, ref, amount))
    return out


def reconciliation(message: X12Message, remit: Remit, claims: Sequence[ClaimPaid],
                   plbs: Sequence[Segment]) -> dict[str, Any]:
    """The payment (BPR/TRN) as a PaymentReconciliation: one detail per claim payment
    (type payment, pointing at its EOB) and one per PLB adjustment (type adjustment,
    its reason a second coding, its amount what it adds to the payment: -PLB amount;
    pointing at the EOB whose CLP07 or CLP01 its reference names)."""
    bpr = message.tree.seg("BPR") if message.tree is not None else None
    total = remit.money(bpr.element(2)) if bpr is not None else None
    if total is not None and bpr is not None and bpr.element(3) == "D":
        total = {**total, "value": -total["value"]}
    details: list[dict[str, Any]] = []
    for paid in claims:
        details.append(compact({
            "identifier": (paid.eob.get("identifier") or [None])[0],
            "type": concept(PAYMENT_TYPE, "payment"),
            "request": paid.eob.get("claim"),
            "response": reference(paid.eob),
            "date": remit.payment_date,
            "payee": reference(remit.payee),
            "amount": remit.money(paid.paid),
        }))
    by_number = {n: paid.eob for paid in claims for n in paid.numbers if n}
    for plb in plbs:
        when = xf.x12_date(plb.element(2))
        for reason, ref, value in provider_adjustments(plb):
            number = xf.amount(value)
            found = by_number.get(ref)
            details.append(compact({
                "identifier": {"system": f"urn:conduit:id:x12:{remit.payer_scope}",
                               "value": ref} if ref else None,
                "type": {"coding": [coding(PAYMENT_TYPE, "adjustment"),
                                    coding(PROVIDER_ADJUSTMENT, reason,
                                           PLB_REASONS.get(reason, ""))]
                         if reason else [coding(PAYMENT_TYPE, "adjustment")]},
                "response": reference(found) if found else None,
                "date": when,
                "payee": reference(remit.payee),
                "amount": {"value": -number, "currency": remit.currency}
                if number is not None else None,
            }))
    key = remit.trace or {"system": f"urn:conduit:id:x12:{remit.payer_scope}",
                          "value": message.segments[0].element(2)}
    return compact({
        "resourceType": "PaymentReconciliation",
        "id": resource_id("PaymentReconciliation", "x12", key),
        "identifier": [remit.trace] if remit.trace else [],
        "status": "active",
        "created": remit.created,
        "paymentIssuer": reference(remit.payer),
        "requestor": reference(remit.payee),
        "outcome": "complete",
        "disposition": METHODS.get(remit.method),
        "paymentDate": remit.payment_date or remit.created,
        "paymentAmount": total or {"value": Decimal(0), "currency": remit.currency},
        "paymentIdentifier": remit.trace,
        "detail": details,
    })
