"""276/277 claim status request and response (005010X212) and the 277 claim
acknowledgement, 277CA (005010X214).

Written from the public facts of the guides' structure (payers' and CMS's companion
guides, public examples). The sets are parsed and routed, not mapped: the loops are here
so a filter or a route reads "the patient's member id" or "the claim's status category"
by loop, and so a broken set gets its 999 IK3/IK4.

The hierarchy: information source (payer, HL 20), information receiver (the submitter,
21), service or billing provider (19), then the claims of a person: subscriber (22) and
dependent (23) in X212, patient (PT) in X214. Each claim is a 2200 loop opened by its
TRN (the claim status tracking number), with its service lines (2210 in the 276, 2220 in
the 277s) opened by SVC. The 277s carry status (STC) at every level that answers
something: a batch (2200B), a provider (2200C), a claim, a line.

Segments are marked required only where the guides require them in every set; a
qualifier is named only where it tells apart segments of one loop.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import DMG, HL, ST, L, N, R, S
from engine.formats.x12.structure import Loop, SetDefinition


def _lines_276(level: str) -> Loop:
    return L(f"2210{level}", "Service line information", R("SVC", required=(1, 2)), "S", N,
             S("REF", 2), S("DTP", q="472"))


def _claim_276(level: str) -> Loop:
    """A claim asked about: its tracking number, identifiers, charge and dates."""
    return L(f"2200{level}", "Claim status tracking number",
             R("TRN", q="1", required=(1, 2)), "S", N,
             S("REF", 9), S("AMT", q="T3"), S("DTP", q="472"), _lines_276(level))


def _claim_277(level: str) -> Loop:
    """A claim answered: its tracking number echoed, statuses, identifiers, lines."""
    lines = L(f"2220{level}", "Service line information", R("SVC", required=(1,)), "S", N,
              S("STC", N, required=(1,)), S("REF", 3), S("DTP", q="472"))
    return L(f"2200{level}", "Claim status tracking number", R("TRN", required=(1, 2)),
             "S", N, S("STC", N, required=(1,)), S("REF", 9), S("DTP", 2), lines)


def _batch_status(level: str, name: str) -> Loop:
    """The status of a whole batch (2200B) or of a provider's claims (2200C)."""
    return L(f"2200{level}", name, R("TRN", required=(1, 2)), "S", 1,
             S("STC", N, required=(1,)), S("REF", 3), S("QTY", 2), S("AMT", 2))


REQUEST = SetDefinition("276", "005010X212", "Health care claim status request", ST(
    "276",
    R("BHT", required=(1, 2), codes=((1, ("0010",)), (2, ("13",)))),
    L("2000A", "Information source level", HL("20"), "R", N,
      L("2100A", "Payer name", R("NM1", q="PR", required=(1, 2)), "R"),
      L("2000B", "Information receiver level", HL("21"), "R", N,
        L("2100B", "Information receiver name", R("NM1", q="41", required=(1, 2)), "R"),
        L("2000C", "Service provider level", HL("19"), "R", N,
          L("2100C", "Provider name", R("NM1", q="1P", required=(1, 2)), "R", 2),
          L("2000D", "Subscriber level", HL("22"), "R", N,
            DMG(),
            L("2100D", "Subscriber name", R("NM1", q="IL", required=(1, 2)), "R"),
            _claim_276("D"),
            L("2000E", "Dependent level", HL("23"), "S", N,
              DMG(),
              L("2100E", "Dependent name", R("NM1", q="QC", required=(1, 2)), "R"),
              _claim_276("E")))))),
))

RESPONSE = SetDefinition("277", "005010X212", "Health care claim status response", ST(
    "277",
    R("BHT", required=(1, 2), codes=((1, ("0010",)), (2, ("08",)))),
    L("2000A", "Information source level", HL("20"), "R", N,
      L("2100A", "Payer name", R("NM1", q="PR", required=(1, 2)), "R", 1, S("PER", 3)),
      L("2000B", "Information receiver level", HL("21"), "R", N,
        L("2100B", "Information receiver name", R("NM1", q="41", required=(1, 2)), "R"),
        _batch_status("B", "Information receiver trace identifier"),
        L("2000C", "Service provider level", HL("19"), "S", N,
          L("2100C", "Provider name", R("NM1", q="1P", required=(1, 2)), "R", 2),
          _batch_status("C", "Provider of service trace identifier"),
          L("2000D", "Subscriber level", HL("22"), "S", N,
            L("2100D", "Subscriber name", R("NM1", q="IL", required=(1, 2)), "R"),
            _claim_277("D"),
            L("2000E", "Dependent level", HL("23"), "S", N,
              L("2100E", "Dependent name", R("NM1", q="QC", required=(1, 2)), "R"),
              _claim_277("E")))))),
))

ACKNOWLEDGEMENT = SetDefinition("277", "005010X214", "Health care claim acknowledgement", ST(
    "277",
    R("BHT", required=(1, 2), codes=((1, ("0085",)), (2, ("08",)))),
    L("2000A", "Information source level", HL("20"), "R", N,
      L("2100A", "Information source name", R("NM1", q=("AY", "PR"), required=(1, 2)), "R"),
      L("2200A", "Transmission receipt control identifier", R("TRN", required=(1, 2)), "R",
        1, S("DTP", 2)),  # 050 received, 009 processed, in either order
      L("2000B", "Information receiver level", HL("21"), "R", N,
        L("2100B", "Information receiver name", R("NM1", q="41", required=(1, 2)), "R"),
        _batch_status("B", "Information receiver application trace identifier"),
        L("2000C", "Billing provider of service level", HL("19"), "S", N,
          L("2100C", "Billing provider name", R("NM1", q="85", required=(1, 2)), "R"),
          _batch_status("C", "Provider of service information trace identifier"),
          L("2000D", "Patient level", HL("PT"), "S", N,
            L("2100D", "Patient name", R("NM1", q="QC", required=(1, 2)), "R"),
            _claim_277("D"))))),
))

DEFINITIONS = (REQUEST, RESPONSE, ACKNOWLEDGEMENT)
