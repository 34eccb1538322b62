"""x12-835-to-fhir@1: an 835 remittance (005010X221A1) as a FHIR R4 transaction Bundle:
the payer and payee Organizations, a Patient per claim patient, the rendering
providers, one ExplanationOfBenefit per claim payment (CLP) and one
PaymentReconciliation for the payment (BPR/TRN) with the provider-level adjustments.

A set that is not an 835 fails naming ST01. Anything else that cannot be read (an
amount that is not a number, a date that is not a date, a code outside the lists) is
left out of its element; the set is never refused for it. A claim without its patient
(NM1*QC, which the structure reports as IK3 3 in loop 2100) writes no EOB.

Choices a receiver will notice:
- Ids are uuid5 (`maplib.fhir.resource_id`), so a re-sent 835 updates instead of
  duplicating. An EOB's id comes from the payer's claim control number (CLP07) in the
  payer's scope, else from the patient control number (CLP01) in the payee's; a
  reversal (CLP02 22) gets its own EOB (negative amounts as sent) and never overwrites
  the payment it reverses; a claim repeated with the same numbers in one set gets a
  `#2`, `#3` suffix on its key rather than failing the set.
- Scopes: the payer's scope is its payer id REF*2U (the id an 837 names it by with
  NM1*PR PI), else N104, else ISA06; it scopes member ids and CLP07. The payee's scope
  is N104 (its NPI or tax id, the same key the 837 mapping gives the billing provider),
  else REF*TJ, else its name; it scopes CLP01. So the EOB's `claim` is a logical
  reference (identifier only) to the 837's Claim.
- Patient: NM1*QC by `x12_fhir.patient` (same id as a 270/271/837 gives the same member
  of the same payer). A patient without an id of its own (a dependent) gets one from
  the insured's member id (NM1*IL) and its name. NM1*IL is not a Patient of its own;
  NM1*74 (corrected data), NM1*TT/PR/GB (crossover and other payers) are not mapped.
- ExplanationOfBenefit: status active; use claim (predetermination for CLP02 25);
  outcome complete for processed, denied (4) and reversed (22) claims, partial for
  19/20/21 (processed and forwarded: the claim goes on at another payer), error for 23
  (not our claim); disposition the CLP02 meaning in words. type: institutional when a
  line bills a revenue code (NU, SVC04), the claim has MIA or a DRG (CLP11); oral for
  ADA codes; pharmacy for NDC-only lines; else professional (an 835 names no type);
  institutional subType (CARIN BB) inpatient/outpatient from CLP08's second digit.
  created is DTM*405 (production date), else BPR16, else GS04, a date.
  identifier CLP07 and CLP01; insurer the payer; provider and payee (type provider) the
  payee; careTeam the rendering provider (NM1*82, CARIN role rendering);
  billablePeriod DTM*232/233; insurance a logical reference to the coverage by member
  id (NM1*IL, else NM1*QC) in the payer's scope, focal.
- total: submitted CLP03, eligible AMT*AU, benefit CLP04 (core adjudication codes);
  memberliability CLP05 and paidbypatient AMT*F5 (CARIN BB C4BBAdjudication).
- item per SVC: productOrService SVC01 (HC: CPT for a leading digit, else HCPCS; NU
  revenue codes; AD CDT; N4 NDC; others urn:conduit:code:x12:<qualifier>), modifiers,
  revenue SVC04 (or the NU code), servicedDate DTM*472 (else DTM*150/151, else the
  claim's statement period), quantity SVC05 (units paid). adjudication: submitted
  SVC02, eligible AMT*B6, benefit SVC03, then one entry per CAS reason: category the
  group code (urn:conduit:code:x12:claim-adjustment-group: CO, OA, PI, PR; CR as 4010
  senders still send it), reason the CARC (https://x12.org/codes/claim-adjustment-
  reason-codes), amount, and the adjusted quantity as value; then the line's remarks
  (LQ*HE) as entries with category `remark` (urn:conduit:code:x12:adjudication) and the
  RARC (https://x12.org/codes/remittance-advice-remark-codes) as reason. The claim's
  own CAS and its MIA/MOA remark codes are the EOB's header-level adjudication, in the
  same shape. SVC06 (the procedure as submitted, when the payer changed it) is not
  mapped.
- payment: amount CLP04 (this claim's part), date BPR16, identifier TRN02 (the check or
  EFT trace number, system urn:conduit:id:x12:<TRN03, the payer's company id>), type
  the payment method BPR04 (urn:conduit:code:x12:payment-method: CHK, ACH, ...).
- PLB (provider-level adjustments) cannot belong to one EOB: they are on the
  PaymentReconciliation (id from TRN02), which holds the remittance total BPR02
  (negative when BPR03 is D), BPR16, TRN02, one detail (type payment, response its EOB,
  request the claim by CLP01) per claim, and one detail per PLB adjustment: type
  adjustment with the PLB reason as a second coding
  (urn:conduit:code:x12:provider-adjustment-reason), identifier its reference (PLB03-2),
  date the fiscal period date, amount what it adds to the payment (the PLB amount
  negated: L6 interest -3.15 is +3.15, WO recovery 120 is -120), and response the EOB
  whose CLP07 or CLP01 the reference names, when one in this set does.
- Not mapped: the DRG (CLP11/CLP12) and the other MIA/MOA amounts, claim QTY and
  line QTY, the provider summaries (TS3/TS2), SVC06/SVC07, REF other than what is said
  above, and the payer's contacts (PER).
- Money is in CUR02's currency when the 835 has a CUR, else USD; amounts keep the
  digits sent.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.maplib import x12_fhir as xf
from engine.maplib import x12_remit as rm
from engine.maplib.fhir import one_per_id, resource_id, transaction
from engine.mapping import mapping


@mapping("x12-835-to-fhir@1", accepts="x12", emits="application/fhir+json")
def remittance_to_fhir(message: X12Message) -> dict[str, Any]:
    """Map one 835 to a transaction Bundle of its parties, EOBs and payment."""
    if message.segments[0].element(1) != "835" or message.tree is None:
        raise MappingError("is not 835; this mapping reads 835 remittances", field="ST01")
    tree = message.tree
    payer, payer_scope = rm.payer(tree.first("1000A"), message)
    payee, payee_scope = rm.payee(tree.first("1000B"), message)
    bpr, trn = tree.seg("BPR"), tree.seg("TRN")
    trace = None
    if trn is not None and trn.element(2).strip():
        trace = {"system": f"urn:conduit:id:x12:{trn.element(3).strip() or payer_scope}",
                 "value": trn.element(2).strip()}
    payment_date = xf.x12_date(bpr.element(16)) if bpr is not None else None
    created = (xf.x12_date(tree.value("DTM[405]02")) or payment_date
               or xf.set_timestamp(message))
    remit = rm.Remit(payer=payer, payee=payee, payer_scope=payer_scope,
                     payee_scope=payee_scope,
                     currency=(tree.value("CUR02").strip() or "USD"), created=created,
                     payment_date=payment_date, trace=trace,
                     method=bpr.element(4).strip() if bpr is not None else "")
    resources: list[dict[str, Any]] = [payer, payee]
    paid: list[rm.ClaimPaid] = []
    seen: dict[str, int] = {}
    for claim in tree.all("2100"):
        if claim.seg("NM1", "QC") is None:
            continue  # the structure reports it (IK3 3); no EOB without a patient
        patient = rm.claim_patient(claim, payer_scope)
        rendering_nm1 = claim.seg("NM1", "82")
        rendering = xf.party(rendering_nm1) if rendering_nm1 is not None else None
        key = rm.eob_key(claim, remit)
        count = seen[key["value"]] = seen.get(key["value"], 0) + 1
        if count > 1:
            key = {**key, "value": f"{key['value']}#{count}"}
        eob = rm.eob(claim, resource_id("ExplanationOfBenefit", "x12", key), remit,
                     patient, rendering)
        clp = claim.segments[0]
        paid.append(rm.ClaimPaid(eob, (clp.element(7).strip(), clp.element(1).strip()),
                                 clp.element(4)))
        resources += [patient, *([rendering] if rendering else []), eob]
    resources.append(rm.reconciliation(message, remit, paid, tree.segs("PLB")))
    return transaction(one_per_id(resources))
