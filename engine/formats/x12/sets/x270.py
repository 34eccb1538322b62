"""270/271 eligibility, benefit inquiry and response (005010X279A1).

Written from the public facts of the guide's structure (as CMS's HETS and payers'
companion guides describe it): information source (2000A/2100A), information receiver
(2000B/2100B), subscriber (2000C/2100C) and dependent (2000D/2100D) levels, with the
inquiry (EQ, 2110C/D) or the benefits (EB, 2110C/D, with their related entities 2120C/D
between LS and LE) under the person's name loop.

An inquiry may carry a prior authorization (9F) or referral (G1) number; a response
may give the receiver's address (N3/N4 in 2100B) before any rejection of it.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import DMG, HL, ST, L, N, R, S
from engine.formats.x12.structure import SetDefinition

_PAYER = ("2B", "36", "GP", "P5", "PR")
_PROVIDER = ("1P", "2B", "36", "80", "FA", "GP", "P5", "PR")


def _inquiry(person: str, level: str) -> tuple:
    """The person's name loop of a 270 with its inquiries."""
    eq = L(f"2110{level}", f"{person} eligibility or benefit inquiry",
           R("EQ", required=()), "S", 99,
           S("AMT", q="R"), S("AMT", q="PB"), S("III", 10), S("REF", q=("9F", "G1")),
           S("DTP"))
    return (S("TRN", 2, required=(1, 2, 3)),
            L(f"2100{level}", f"{person} name",
              R("NM1", q="IL" if level == "C" else "03", required=(1, 2)), "R", 1,
              S("REF", 9), S("N3"), S("N4"), S("PRV"), DMG(), S("INS"), S("HI"),
              S("DTP", 2), eq))


def _benefits(person: str, level: str) -> tuple:
    """The person's name loop of a 271 with its benefits and their related entities."""
    related = L(f"2120{level}", f"{person} benefit related entity", R("NM1", required=(1, 2)),
                "S", 23, S("N3"), S("N4"), S("PER", 3), S("PRV"))
    eb = L(f"2110{level}", f"{person} eligibility or benefit information",
           R("EB", required=(1,)), "S", N,
           S("HSD", 9), S("REF", 9), S("DTP", 20), S("AAA", 9), S("MSG", 10),
           L(f"2115{level}", f"{person} eligibility or benefit additional information",
             R("III"), "S", 10),
           S("LS"), related, S("LE"))
    return (S("TRN", 3, required=(1, 2, 3)),
            L(f"2100{level}", f"{person} name",
              R("NM1", q="IL" if level == "C" else "03", required=(1,)), "R", 1,
              S("REF", 9), S("N3"), S("N4"), S("AAA", 9), S("PRV"), DMG(), S("INS"),
              S("HI"), S("DTP", 9), S("MPI"), eb))


INQUIRY = SetDefinition("270", "005010X279A1", "Eligibility, coverage or benefit inquiry", ST(
    "270",
    R("BHT", required=(1, 2), codes=((1, ("0022",)), (2, ("01", "13", "36")))),
    L("2000A", "Information source level", HL("20"), "R", N,
      L("2100A", "Information source name", R("NM1", q=_PAYER, required=(1, 2)), "R"),
      L("2000B", "Information receiver level", HL("21"), "R", N,
        L("2100B", "Information receiver name", R("NM1", q=_PROVIDER, required=(1, 2)), "R",
          1, S("REF", 9), S("N3"), S("N4"), S("PRV")),
        L("2000C", "Subscriber level", HL("22"), "R", N,
          *_inquiry("Subscriber", "C"),
          L("2000D", "Dependent level", HL("23"), "S", N, *_inquiry("Dependent", "D"))))),
))

RESPONSE = SetDefinition("271", "005010X279A1", "Eligibility, coverage or benefit information", ST(
    "271",
    R("BHT", required=(1, 2), codes=((1, ("0022",)), (2, ("06", "11")))),
    L("2000A", "Information source level", HL("20"), "R", N,
      S("AAA", 9),
      L("2100A", "Information source name", R("NM1", q=_PAYER, required=(1,)), "R", 1,
        S("PER", 3), S("AAA", 9)),
      L("2000B", "Information receiver level", HL("21"), "S", N,
        L("2100B", "Information receiver name", R("NM1", q=_PROVIDER, required=(1,)), "R",
          1, S("REF", 9), S("N3"), S("N4"), S("AAA", 9), S("PRV")),
        L("2000C", "Subscriber level", HL("22"), "S", N,
          *_benefits("Subscriber", "C"),
          L("2000D", "Dependent level", HL("23"), "S", N, *_benefits("Dependent", "D"))))),
))

DEFINITIONS = (INQUIRY, RESPONSE)
