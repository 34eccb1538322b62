"""834 benefit enrollment and maintenance (005010X220A1).

Written from the public facts of the guide's structure (as CMS's exchange and state
Medicaid companion guides and employers' carrier guides describe it): the file's
beginning (BGN) with the plan sponsor (1000A, N1*P5), the payer (1000B, N1*IN) and any
TPA or broker (1000C); then one member level (2000, INS) per member, each with the
member's name (2100A) and the other names the guide allows (2100B-H), disability
(2200), health coverages (2300, HD) with their providers (2310) and other insurance
(2320/2330), and additional reporting categories (LS, 2700/2750, LE).

The member's REF and DTP are one item each with the combined limit (REF*0F first, as
the guide requires it, then any supplemental id): senders do not keep the guide's
order among them, and the reader only looks forward within a loop.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import DMG, ST, L, N, R, S
from engine.formats.x12.structure import Loop, SetDefinition

# INS03 and HD01 maintenance type: 001 change, 002 delete, 021 addition, 024
# cancellation or termination, 025 reinstatement, 026 correction, 030 audit or compare,
# 032 employee information not applicable.
MAINTENANCE = ("001", "002", "021", "024", "025", "026", "030", "032")
_RESPONSIBLE = ("6Y", "9K", "E1", "EI", "EXS", "GB", "GD", "J6", "LR", "QD", "S1", "TZ",
                "X4")


def _contact_loop(loop_id: str, name: str, qualifiers: str | tuple[str, ...],
                  max: int) -> Loop:
    """A 2100 name loop holding a contact and an address."""
    return L(loop_id, name, R("NM1", q=qualifiers, required=(1, 2)), "S", max,
             S("PER", required=(1,)), S("N3"), S("N4"))


_MEMBER_NAME = L(
    "2100A", "Member name", R("NM1", q=("IL", "74"), required=(1, 2)), "R", 1,
    S("PER", required=(1,)), S("N3", required=(1,)), S("N4"),
    DMG(required=(1, 2)), S("EC", N), S("ICM"), S("AMT", 7, required=(1, 2)),
    S("HLH"), S("LUI", N),
)

_COB = L(
    "2320", "Coordination of benefits", R("COB", required=(1,)), "S", 5,
    S("REF", 4, required=(1, 2)), S("DTP", 2, required=(1, 2, 3)),
    L("2330", "Coordination of benefits related entity",
      R("NM1", q=("36", "GW", "IN"), required=(1, 2)), "S", 3,
      S("N3"), S("N4"), S("PER")),
)

_COVERAGE = L(
    "2300", "Health coverage", R("HD", required=(1, 3), codes=((1, MAINTENANCE),)), "S", 99,
    R("DTP", 6, required=(1, 2, 3)),
    S("AMT", 9, required=(1, 2)),
    S("REF", 14, required=(1, 2)),
    S("IDC", 3, required=(1, 2)),
    L("2310", "Provider information", R("LX", required=(1,)), "S", 30,
      R("NM1", q=("P3", "Y2"), required=(1, 2)), S("N3"), S("N4"), S("PER", 2),
      S("PRV"), S("PLA")),
    _COB,
)

_REPORTING = L(
    "2700", "Member reporting categories", R("LX", required=(1,)), "S", N,
    L("2750", "Reporting category", R("N1", q="75", required=(1, 2)), "S", 1,
      R("REF", required=(1, 2)), S("DTP", required=(1, 2, 3))),
)

ENROLLMENT = SetDefinition("834", "005010X220A1", "Benefit enrollment and maintenance", ST(
    "834",
    R("BGN", required=(1, 2, 3, 8), codes=((1, ("00", "15", "22")),
                                           (8, ("2", "4", "RX")))),
    S("REF", q="38", required=(1, 2)),
    S("DTP", N, required=(1, 2, 3)),
    S("QTY", 3, required=(1, 2)),
    L("1000A", "Sponsor name", R("N1", q="P5", required=(1,)), "R", 1),
    L("1000B", "Payer", R("N1", q="IN", required=(1,)), "R", 1),
    L("1000C", "TPA/broker name", R("N1", q=("BO", "TV"), required=(1, 2)), "S", 2,
      L("1100C", "TPA/broker account information", R("ACT", required=(1,)), "S", 1)),
    L("2000", "Member level detail",
      R("INS", required=(1, 2, 3), codes=((1, ("Y", "N")), (3, MAINTENANCE))), "S", N,
      R("REF", 14, required=(1, 2)),
      S("DTP", 24, required=(1, 2, 3)),
      _MEMBER_NAME,
      L("2100B", "Incorrect member name", R("NM1", q="70", required=(1, 2)), "S", 1,
        DMG()),
      L("2100C", "Member mailing address", R("NM1", q="31", required=(1,)), "S", 1,
        R("N3"), R("N4")),
      _contact_loop("2100D", "Member employer", "36", 3),
      _contact_loop("2100E", "Member school", "M8", 3),
      _contact_loop("2100F", "Custodial parent", "S3", 1),
      _contact_loop("2100G", "Responsible person", _RESPONSIBLE, 13),
      L("2100H", "Drop off location", R("NM1", q="45", required=(1,)), "S", 1,
        S("N3"), S("N4")),
      L("2200", "Disability information", R("DSB", required=(1,)), "S", 30,
        S("DTP", 2, required=(1, 2, 3))),
      _COVERAGE,
      S("LS", required=(1,)),
      _REPORTING,
      S("LE", required=(1,))),
))

DEFINITIONS = (ENROLLMENT,)
