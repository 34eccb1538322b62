"""837 health care claims: professional (837P, 005010X222A1), institutional (837I,
005010X223A2) and dental (837D, 005010X224A2).

Written from the public facts of the guides' structure as CMS and payer companion guides
describe it. The three share a skeleton and differ in the claim and service line:

- header: BHT, submitter 1000A (NM1*41, PER), receiver 1000B (NM1*40);
- 2000A billing provider level (HL 20: PRV, CUR) with its name 2010AA (NM1*85), pay-to
  address 2010AB (NM1*87) and pay-to plan 2010AC (NM1*PE);
- 2000B subscriber level (HL 22: SBR, PAT) with the subscriber 2010BA (NM1*IL) and the
  payer 2010BB (NM1*PR); 2000C patient level (HL 23: PAT) with the patient 2010CA
  (NM1*QC) when the patient is not the subscriber;
- 2300 claim (CLM) under 2000B when the patient is the subscriber, else under 2000C
  (where it is required: a patient level exists only to carry claims), with its claim
  providers 2310x, other subscribers 2320 (and their 2330x names), service lines 2400
  (LX with SV1, SV2 or SV3 + TOO), drug 2410, line providers 2420x, line adjudication
  2430 and, for 837P, forms 2440.

Which NM1 qualifier opens which 2310/2330/2420 loop is the part that differs most: see
`_VARIANTS`. Segments that repeat with several qualifiers (DTP, REF, AMT, HI, CRC...) are
one generic, repeatable entry each, in the guide's order, so a sender's own order of
qualifiers within them is never a structure error. Loops and the segments that carry
the claim (SBR, CLM, HI for 837P/I, LX, SV1/SV2/SV3, OI) are required as the guides
require them; contact and secondary-id segments are situational.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import DMG, HL, ST, L, N, R, S
from engine.formats.x12.structure import DECIMAL, Loop, Seg, SetDefinition

_SBR01 = ("A", "B", "C", "D", "E", "F", "G", "H", "P", "S", "T", "U")
# Who each 2310/2330/2420 letter is, per variant: (letter, name, NM101 qualifiers,
# whether it carries an address (N3/N4), how often it may repeat).
_Party = tuple[str, str, tuple[str, ...], bool, int]
_VARIANTS: dict[str, dict[str, tuple[_Party, ...]]] = {
    "P": {
        "2310": (("A", "Referring provider", ("DN", "P3"), False, 2),
                 ("B", "Rendering provider", ("82",), False, 1),
                 ("C", "Service facility location", ("77",), True, 1),
                 ("D", "Supervising provider", ("DQ",), False, 1),
                 ("E", "Ambulance pick-up location", ("PW",), True, 1),
                 ("F", "Ambulance drop-off location", ("45",), True, 1)),
        "2330": (("C", "Other payer referring provider", ("DN", "P3"), False, 2),
                 ("D", "Other payer rendering provider", ("82",), False, 1),
                 ("E", "Other payer service facility location", ("77",), False, 1),
                 ("F", "Other payer supervising provider", ("DQ",), False, 1),
                 ("G", "Other payer billing provider", ("85",), False, 1)),
        "2420": (("A", "Rendering provider", ("82",), False, 1),
                 ("B", "Purchased service provider", ("QB",), False, 1),
                 ("C", "Service facility location", ("77",), True, 1),
                 ("D", "Supervising provider", ("DQ",), False, 1),
                 ("E", "Ordering provider", ("DK",), True, 1),
                 ("F", "Referring provider", ("DN", "P3"), False, 2),
                 ("G", "Ambulance pick-up location", ("PW",), True, 1),
                 ("H", "Ambulance drop-off location", ("45",), True, 1)),
    },
    "I": {
        "2310": (("A", "Attending provider", ("71",), False, 1),
                 ("B", "Operating physician", ("72",), False, 1),
                 ("C", "Other operating physician", ("ZZ",), False, 1),
                 ("D", "Rendering provider", ("82",), False, 1),
                 ("E", "Service facility location", ("77",), True, 1),
                 ("F", "Referring provider", ("DN",), False, 1)),
        "2330": (("C", "Other payer attending provider", ("71",), False, 1),
                 ("D", "Other payer operating physician", ("72",), False, 1),
                 ("E", "Other payer other operating physician", ("ZZ",), False, 1),
                 ("F", "Other payer service facility location", ("77",), False, 1),
                 ("G", "Other payer rendering provider", ("82",), False, 1),
                 ("H", "Other payer referring provider", ("DN",), False, 1),
                 ("I", "Other payer billing provider", ("85",), False, 1)),
        "2420": (("A", "Operating physician", ("72",), False, 1),
                 ("B", "Other operating physician", ("ZZ",), False, 1),
                 ("C", "Rendering provider", ("82",), False, 1),
                 ("D", "Referring provider", ("DN",), False, 1)),
    },
    "D": {
        "2310": (("A", "Referring provider", ("DN", "P3"), False, 2),
                 ("B", "Rendering provider", ("82",), False, 1),
                 ("C", "Service facility location", ("77", "FA"), True, 1),
                 ("D", "Assistant surgeon", ("DD",), False, 1),
                 ("E", "Supervising provider", ("DQ",), False, 1)),
        "2330": (("C", "Other payer referring provider", ("DN", "P3"), False, 2),
                 ("D", "Other payer rendering provider", ("82",), False, 1),
                 ("E", "Other payer supervising provider", ("DQ",), False, 1),
                 ("F", "Other payer billing provider", ("85",), False, 1),
                 ("G", "Other payer service facility location", ("77", "FA"), False, 1),
                 ("H", "Other payer assistant surgeon", ("DD",), False, 1)),
        "2420": (("A", "Rendering provider", ("82",), False, 1),
                 ("B", "Assistant surgeon", ("DD",), False, 1),
                 ("C", "Supervising provider", ("DQ",), False, 1),
                 ("D", "Service facility location", ("77", "FA"), True, 1)),
    },
}


def _name(loop_id: str, name: str, qualifiers: str | tuple[str, ...], *body: Seg | Loop,
          usage: str = "S", max: int = 1) -> Loop:
    """A name loop opened by NM1 with its entity qualifier (NM101) and type (NM102)."""
    return L(loop_id, name, R("NM1", q=qualifiers, required=(1, 2)), usage, max, *body)


def _parties(variant: str, group: str) -> tuple[Loop, ...]:
    """The provider (or place) name loops of one group (2310, 2330, 2420)."""
    loops = []
    for letter, name, qualifiers, located, repeats in _VARIANTS[variant][group]:
        place = (R("N3"), R("N4")) if located and group != "2330" else ()
        contact = (S("PER"),) if located else ()
        loops.append(_name(f"{group}{letter}", name, qualifiers, *place, S("PRV"),
                           S("REF", N), *contact, max=repeats))
    return tuple(loops)


def _other_subscriber(variant: str) -> Loop:
    """2320: another payer's coverage of the claim and what it paid (coordination of
    benefits), with the other subscriber (2330A), payer (2330B) and their providers."""
    return L("2320", "Other subscriber information", R("SBR", required=(1,), codes=(
        (1, _SBR01),)), "S", 10,
        S("CAS", 5), S("AMT", N), R("OI"), S("MIA"), S("MOA"),
        _name("2330A", "Other subscriber name", "IL", S("N3"), S("N4"), S("REF", N),
              usage="R"),
        _name("2330B", "Other payer name", "PR", S("N3"), S("N4"), S("DTP", N), S("REF", N),
              usage="R"),
        *_parties(variant, "2330"))


def _line(variant: str) -> Loop:
    """2400: one service line and what hangs off it."""
    service = {"P": (R("SV1", required=(1, 2)), S("SV5"), S("PWK", 10), S("CR1"),
                     S("CR3"), S("CRC", N), S("DTP", N), S("QTY", 2), S("MEA", 20),
                     S("CN1"), S("REF", N), S("AMT", N), S("K3", 10), S("NTE", N),
                     S("PS1"), S("HCP")),
               "I": (R("SV2", required=(1,)), S("PWK", 10), S("DTP", N), S("REF", N),
                     S("AMT", N), S("NTE", N), S("HCP")),
               "D": (R("SV3", required=(1, 2)), S("TOO", 32), S("DTP", N), S("QTY", N),
                     S("REF", N), S("AMT", N), S("NTE", N), S("HCP"))}[variant]
    drug = L("2410", "Drug identification", R("LIN", required=(2, 3)), "S", 25,
             S("CTP"), S("REF"))
    adjudication = L("2430", "Line adjudication information", R("SVD", required=(1, 2)),
                     "S", 15, S("CAS", N), S("DTP"), S("AMT"))
    forms = (L("2440", "Form identification code", R("LQ", required=(1, 2)), "S", N,
               S("FRM", 99)),) if variant == "P" else ()
    return L("2400", "Service line", R("LX", required=(1,)), "R", 999 if variant == "I" else 50,
             *service, drug, *_parties(variant, "2420"), adjudication, *forms)


def _claim(variant: str, usage: str) -> Loop:
    """2300: one claim, its dates, codes, providers, other payers and lines."""
    head = {"P": (S("DTP", N), S("PWK", 10), S("CN1"), S("AMT", N), S("REF", N),
                  S("K3", 10), S("NTE", N), S("CR1"), S("CR2"), S("CRC", N),
                  R("HI", N, required=(1,)), S("HCP")),
            "I": (S("DTP", N), S("CL1"), S("PWK", 10), S("CN1"), S("AMT", N), S("REF", N),
                  S("K3", 10), S("NTE", N), S("CRC", N), R("HI", N, required=(1,)),
                  S("HCP")),
            "D": (S("DTP", N), S("DN1"), S("DN2", 35), S("PWK", 10), S("CN1"), S("AMT", N),
                  S("REF", N), S("K3", 10), S("NTE", N), S("HI", N, required=(1,)),
                  S("HCP"))}[variant]
    return L("2300", "Claim information", R("CLM", required=(1, 2, 5),
                                            formats=((2, DECIMAL),)), usage, 100,
             *head, *_parties(variant, "2310"), _other_subscriber(variant), _line(variant))


def _claims(variant: str) -> Loop:
    """The table: header, billing provider, subscriber, patient, claims."""
    patient = L("2000C", "Patient level", HL("23"), "S", N,
                R("PAT", required=(1,)),
                _name("2010CA", "Patient name", "QC", R("N3"), R("N4"), DMG("R"),
                      S("REF", N), S("PER"), usage="R"),
                _claim(variant, "R"))
    subscriber = L("2000B", "Subscriber level", HL("22"), "R", N,
                   R("SBR", required=(1,), codes=((1, _SBR01),)), S("PAT"),
                   _name("2010BA", "Subscriber name", "IL", S("N3"), S("N4"),
                         DMG("S"),
                         S("REF", N), S("PER"), usage="R"),
                   _name("2010BB", "Payer name", "PR", S("N3"), S("N4"), S("REF", N),
                         usage="R"),
                   _claim(variant, "S"),
                   patient)
    billing = L("2000A", "Billing provider level", HL("20"), "R", N,
                S("PRV"), S("CUR"),
                _name("2010AA", "Billing provider name", "85", R("N3"), R("N4"),
                      S("REF", N), S("PER", 2), usage="R"),
                _name("2010AB", "Pay-to address name", "87", R("N3"), R("N4")),
                _name("2010AC", "Pay-to plan name", "PE", R("N3"), R("N4"), S("REF", N)),
                subscriber)
    return ST("837",
              R("BHT", required=(1, 2, 3, 4), codes=((1, ("0019",)),
                                                      (2, ("00", "18")))),
              S("REF", q="87"),  # 4010 transmission type, still sent by some
              _name("1000A", "Submitter name", "41", R("PER", 2), usage="R"),
              _name("1000B", "Receiver name", "40", usage="R"),
              billing)


PROFESSIONAL = SetDefinition("837", "005010X222A1", "Health care claim: professional",
                             _claims("P"))
INSTITUTIONAL = SetDefinition("837", "005010X223A2", "Health care claim: institutional",
                              _claims("I"))
DENTAL = SetDefinition("837", "005010X224A2", "Health care claim: dental", _claims("D"))

DEFINITIONS = (PROFESSIONAL, INSTITUTIONAL, DENTAL)
