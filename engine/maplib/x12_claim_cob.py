"""Coordination of benefits on an 837: what another payer already decided (2320 CAS and
AMT, 2430 SVD/CAS/DTP*573) as a ClaimResponse from that payer, which the claim's
insurance entry for that payer points at (Claim.insurance.claimResponse).

R4 Claim has no adjudication of its own; the prior payer's adjudication is that payer's
ClaimResponse to this claim, the shape FHIR's coordination-of-benefits examples use. A
2320 loop with nothing adjudicated (no CAS, AMT or matching 2430) gives none.
"""

from __future__ import annotations

from typing import Any

from engine.formats.x12.structure import Node
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import compact, reference, resource_id
from engine.maplib.x12_codes import ADJUDICATION, concept
from engine.maplib.x12_remit import C4BB_ADJUDICATION, adjustments

# 2320 AMT qualifiers -> ClaimResponse.total categories: D what the payer paid,
# EAF what the patient still owes, A8 what the payer did not cover.
_TOTALS = (("D", ADJUDICATION, "benefit"), ("EAF", C4BB_ADJUDICATION, "memberliability"),
           ("A8", C4BB_ADJUDICATION, "noncovered"))


def _lines_of(payer_id: str, only_one: bool, lines: list[Node], numbers: list[int]
              ) -> list[dict[str, Any]]:
    """2430 loops of this payer (SVD01 its id; any 2430 when the claim has one other
    payer) as ClaimResponse.item: SVD02 paid as benefit, then each CAS."""
    items = []
    for line, number in zip(lines, numbers, strict=True):
        adjudication: list[dict[str, Any]] = []
        for paid in line.kids("2430"):
            svd = paid.seg("SVD")
            if svd is None or not (only_one or svd.element(1).strip() == payer_id):
                continue
            if (money := xf.money(svd.element(2))) is not None:
                adjudication.append({"category": concept(ADJUDICATION, "benefit"),
                                     "amount": money})
            adjudication += adjustments(paid.segs("CAS"), xf.money)
        if adjudication:
            items.append({"itemSequence": number, "adjudication": adjudication})
    return items


def _decided(payer_node: Node, lines: list[Node]) -> str | None:
    """When the payer decided: 2330B DTP*573, else the latest line's DTP*573."""
    if day := xf.x12_date(payer_node.value("DTP[573]03")):
        return day
    days = [d for line in lines for paid in line.kids("2430")
            if (d := xf.x12_date(paid.value("DTP[573]03")))]
    return max(days) if days else None


def prior_response(other: Node, payer_node: Node, payer: dict[str, Any], only_one: bool,
                   claim: dict[str, Any], lines: list[Node], numbers: list[int]
                   ) -> dict[str, Any] | None:
    """A 2320 loop's adjudication as that payer's ClaimResponse to the claim; None
    when the loop sends none. `claim` holds the Claim's id, identifier, type, patient
    and created (the fallback date)."""
    payer_id = payer_node.value("NM109").strip()
    totals = [{"category": concept(system, code), "amount": money}
              for qualifier, system, code in _TOTALS
              if (money := xf.money(other.value(f"AMT[{qualifier}]02"))) is not None]
    header = adjustments(other.segs("CAS"), xf.money)
    items = _lines_of(payer_id, only_one, lines, numbers)
    if not (totals or header or items):
        return None
    key = {"system": claim["identifier"][0]["system"],
           "value": f"{claim['identifier'][0]['value']}|{payer_id or payer['id']}"}
    return compact({
        "resourceType": "ClaimResponse",
        "id": resource_id("ClaimResponse", "x12", key),
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": _decided(payer_node, lines) or claim["created"],
        "insurer": reference(payer),
        "request": reference(claim),
        "outcome": "complete",
        "item": items,
        "adjudication": header,
        "total": totals,
    })
