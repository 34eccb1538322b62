"""278 health care services review: request for review and its response (005010X217).

Written from public facts of the guide's structure (CMS esMD and payers' companion
guides, public example files): the utilization management organization (UMO, 2000A /
2010A), the requester (2000B / 2010B), the subscriber (2000C / 2010C), a dependent
(2000D / 2010D), the patient event (2000E, with its providers, transport and other UMO
name loops 2010EA-EC) and the services asked for (2000F / 2010F).

Request and response share ST01 278 and convention 005010X217, so the engine cannot
tell them apart by the key it finds definitions by. BHT02 tells them apart (11 is a
response, anything else a request: 13, or 01 to cancel one), so this one definition
holds both tables side by side, each opened by its own BHT: BHT02 = 11 opens the
response table, any other BHT02 the request's. The two differ where a reader notices:
only the response has AAA (request validation) and HCR (the decision) and, under the
patient event, 2010EB is the request's transport loop but the response's additional
information contact (transport is 2010EC there, and the request's 2010EC is another
UMO). These header "loops" carry the set's own id (ST), so a 999 names no loop for
them, as it names none for the table itself.

Each patient event may hang under the subscriber (the patient is the subscriber) or
under a dependent; the subscriber's events are listed before the dependent level so
that a subscriber event followed by a dependent is read as the guide nests them.
"""

from __future__ import annotations

from engine.formats.x12.sets._dsl import DMG, HL, ST, L, N, R, S
from engine.formats.x12.structure import Loop, SetDefinition

# NM101 codes that open the provider loops of the event and service levels (2010EA,
# 2010F) and the transport loop: they tell those loops apart. The UMO (2010A) and
# requester (2010B) loops open on any NM1 (payers send X3 or PR, 1P or FA there), as do
# the response's contact loops, which take what no other loop claims.
EVENT_PROVIDER_CODES = ("1T", "71", "72", "73", "77", "AAJ", "DD", "DK", "DN", "FA", "G3",
                        "P3", "QB", "QV", "SJ")
TRANSPORT_CODES = ("45", "FS", "ND", "PW", "R3")
_UMO = ("X3",)


def _aaa(response: bool) -> tuple:
    """AAA (request validation) where only the response carries it."""
    return (S("AAA", 9, required=(1,)),) if response else ()


def _name_loop(loop_id: str, name: str, nm1: tuple[str, ...] | str, response: bool,
               *, address: bool = True, contact: bool = False, provider: bool = False,
               person: bool = False, usage: str = "R", repeat: int = 1) -> Loop:
    body: list = [S("REF", 9)]
    if address:
        body += [S("N3"), S("N4")]
    if contact:
        body.append(S("PER", 3))
    body += list(_aaa(response))
    if provider:
        body.append(S("PRV"))
    if person:
        body += [DMG(), S("INS")]
    return L(loop_id, name, R("NM1", q=nm1, required=(1, 2)), usage, repeat, *body)


def _event_names(response: bool) -> tuple[Loop, ...]:
    """The patient event's name loops 2010EA-EC (see the module docstring)."""
    provider = L("2010EA", "Patient event provider name",
                 R("NM1", q=EVENT_PROVIDER_CODES, required=(1, 2)), "S", N,
                 S("REF", 8), S("N3"), S("N4"), S("PER"), *_aaa(response), S("PRV"))
    transport_id = "2010EC" if response else "2010EB"
    transport = L(transport_id, "Patient event transport information",
                  R("NM1", q=TRANSPORT_CODES, required=(1, 2)), "S", 5,
                  S("N3"), S("N4"), *_aaa(response))
    if response:
        contact = L("2010EB", "Additional patient information contact name",
                    R("NM1", required=(1, 2)), "S", 1, S("N3"), S("N4"), S("PER", 3))
        return provider, contact, transport
    other_umo = L("2010EC", "Patient event other UMO name", R("NM1", q=_UMO, required=(1,)),
                  "S", 1, S("REF"), S("DTP"))
    return provider, transport, other_umo


def _service(response: bool) -> Loop:
    """The service level 2000F with its provider names (2010F in a request; 2010FA, and
    the contact 2010FB, in a response)."""
    provider = L("2010FA" if response else "2010F", "Service provider name",
                 R("NM1", q=EVENT_PROVIDER_CODES, required=(1, 2)), "S", N,
                 S("REF", 7), S("N3"), S("N4"), S("PER"), *_aaa(response), S("PRV"))
    contact = L("2010FB", "Additional service information contact name",
                R("NM1", required=(1, 2)), "S", 1, S("N3"), S("N4"), S("PER", 3))
    decision = (S("HCR", required=(1,)),) if response else ()
    return L("2000F", "Service level", HL("SS"), "S", N,
             S("TRN", 3 if response else 2, required=(1, 2)), *_aaa(response),
             S("UM", required=(1,)), *decision, S("REF", 9), S("DTP", 4),
             S("HI"), S("SV1"), S("SV2"), S("SV3"), S("TOO", 32),
             S("HSD"), S("PWK", 10), S("MSG"), provider,
             *((contact,) if response else ()))


def _event(response: bool) -> Loop:
    """The patient event level 2000E: the admission or services asked for as a whole."""
    decision = (S("HCR", required=(1,)),) if response else ()
    return L("2000E", "Patient event level", HL("EV"), "S", N,
             S("TRN", 3 if response else 2, required=(1, 2)), *_aaa(response),
             S("UM", required=(1,)), *decision, S("REF", 9), S("DTP", 10), S("HI"),
             S("HSD"), S("CRC", 9), S("CL1"), S("CR1"), S("CR2"), S("CR4"), S("CR5"),
             S("CR6"), S("CR7"), S("CR8"), S("PWK", 10), S("MSG"),
             *_event_names(response), _service(response))


def _table(response: bool) -> Loop:
    """One side of the 278 under its BHT (see the module docstring)."""
    side = "response" if response else "request"
    event = _event(response)
    dependent = L("2000D", "Dependent level", HL("23"), "S", N,
                  _name_loop("2010D", "Dependent name", "QC", response, person=True),
                  event)
    subscriber = L("2000C", "Subscriber level", HL("22"), "R" if not response else "S", N,
                   _name_loop("2010C", "Subscriber name", "IL", response, person=True),
                   event, dependent)
    requester = L("2000B", "Requester level", HL("21"), "R" if not response else "S", N,
                  _name_loop("2010B", "Requester name", (), response, contact=not response,
                             address=not response, provider=True), subscriber)
    umo = L("2000A", "Utilization management organization (UMO) level", HL("20"), "R", N,
            *_aaa(response),
            L("2010A", "UMO name", R("NM1", required=(1,)),
              "R", 1, *((S("PER", 3), S("AAA", 9)) if response else ())),
            requester)
    bht = R("BHT", q="11" if response else (), at=2, required=(1, 2),
            codes=((1, ("0007",)),))
    return L("ST", f"278 {side} header", bht, "S", 1, umo)


# One definition, two tables: the response's first, since its BHT (BHT02 = 11) is the
# narrower match and the request's takes any other BHT.
REVIEW = SetDefinition("278", "005010X217", "Health care services review (request or "
                                            "response)",
                       ST("278", _table(True), _table(False)))

DEFINITIONS = (REVIEW,)
