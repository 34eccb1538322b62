"""835 health care claim payment/advice (005010X221A1).

Written from the public facts of the guide's structure (as CMS's Medicare remittance
companion guides and payers' ERA guides describe it): the financial information and
trace number (BPR, TRN) with the payer (1000A, N1*PR) and the payee (1000B, N1*PE); the
claims, grouped under header numbers (2000, LX), each claim payment (2100, CLP) with its
adjustments and names, and its service lines (2110, SVC); provider-level adjustments
(PLB) after the last header number.

Segments that the guide lists several times with different qualifiers (the claim's REF
and DTM, the line's REF) are one item here with the combined limit: senders do not keep
the guide's order among them, and the reader only looks forward within a loop.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import ST, L, N, R, S
from engine.formats.x12.structure import SetDefinition

# CLP02 claim status: 1-3 processed as primary/secondary/tertiary, 4 denied, 19-21
# processed and forwarded, 22 reversal of a previous payment, 23 not our claim, 25
# predetermination (pricing only).
CLAIM_STATUS = ("1", "2", "3", "4", "19", "20", "21", "22", "23", "25")
# CAS01 claim adjustment group codes in 5010.
GROUP_CODES = ("CO", "OA", "PI", "PR")
_NAMES = ("IL", "74", "82", "TT", "PR", "GB")

_SERVICE = L(
    "2110", "Service payment information", R("SVC", required=(1, 2, 3)), "S", 999,
    S("DTM", 2, q=("150", "151", "472"), required=(1, 2)),
    S("CAS", 99, required=(1, 2, 3), codes=((1, GROUP_CODES),)),
    S("REF", 24, required=(1, 2)),
    S("AMT", 9, required=(1, 2)),
    S("QTY", 6, required=(1, 2)),
    S("LQ", 99, required=(1, 2), codes=((1, ("HE", "RX")),)),
)

_CLAIM = L(
    "2100", "Claim payment information",
    R("CLP", required=(1, 2, 3, 4), codes=((2, CLAIM_STATUS),)), "R", N,
    S("CAS", 99, required=(1, 2, 3), codes=((1, GROUP_CODES),)),
    R("NM1", q="QC", required=(1, 2)),
    S("NM1", 6, q=_NAMES, required=(1, 2)),
    S("MIA", required=(1,)),
    S("MOA"),
    S("REF", 15, required=(1, 2)),
    S("DTM", 4, q=("036", "050", "232", "233"), required=(1, 2)),
    S("PER", 2, required=(1,)),
    S("AMT", 13, required=(1, 2)),
    S("QTY", 14, required=(1, 2)),
    _SERVICE,
)

REMITTANCE = SetDefinition("835", "005010X221A1", "Health care claim payment/advice", ST(
    "835",
    R("BPR", required=(1, 2, 3, 4, 16), codes=(
        (1, ("C", "D", "H", "I", "P", "U", "X")), (3, ("C", "D")),
        (4, ("ACH", "BOP", "CHK", "FWT", "NON")))),
    R("TRN", required=(1, 2, 3), codes=((1, ("1",)),)),
    S("CUR", required=(1, 2)),
    S("REF", 2, q=("EV", "F2"), required=(1, 2)),
    S("DTM", q="405", required=(1, 2)),
    L("1000A", "Payer identification", R("N1", q="PR", required=(1, 2)), "R", 1,
      S("N3"), S("N4"), S("REF", 4, required=(1, 2)), S("PER", 3, required=(1,)),
      ),
    L("1000B", "Payee identification", R("N1", q="PE", required=(1, 2)), "R", 1,
      S("N3"), S("N4"), S("REF", N, required=(1, 2)), S("RDM")),
    L("2000", "Header number", R("LX", required=(1,)), "S", N,
      S("TS3", required=(1, 2, 3, 4)), S("TS2"), _CLAIM),
    S("PLB", N, required=(1, 2, 3, 4)),
))

DEFINITIONS = (REMITTANCE,)
