"""x12-834-to-fhir@1: an 834 benefit enrollment (005010X220A1) as a FHIR R4 transaction
Bundle: the plan sponsor and payer Organizations, a Patient per member (INS) and a
Coverage per health coverage (HD).

A set that is not an 834 fails naming ST01; one without a payer (1000B N1*IN) fails
naming N1, since a Coverage needs its payor. An 834 without members is skipped.
Anything else that cannot be read is left out of its element; the file is never refused
for one member's odd field. A member's birth date or gender (2100A DMG02/DMG03) left out
so is a warning beside the output (`DMG[2].02`, its loop and segment position; never
the value).

Choices a receiver will notice:
- Ids are uuid5 (`maplib.fhir.resource_id`), so every file about a member updates the
  same resources. Member ids are scoped by the payer: its N104 (with N103 FI, XV or 94),
  else ISA06 (the system urn:conduit:id:x12:<payer id>).
- Patient id: a subscriber's (INS01 Y) comes from its subscriber number REF*0F as a
  member id of the payer, which is the key a 270/271/837 gives the same member when the
  payer's id and member id agree; a dependent's from its own NM109, else its REF*23,
  REF*17 or REF*ZZ, else the subscriber number with its name and birth date. Patient
  identifier: NM109 (NM108 34 as US SSN, ZZ as a member id of the payer), REF*0F with
  type MB (subscriber only: on a dependent it is the subscriber's number), and the
  member level's other REF ids under urn:conduit:id:x12:<qualifier> (1L and 38 are
  plan numbers, not the person's). name, birthDate, gender, home address from 2100A,
  the mailing address (2100C) as a postal address, telecom from PER (TE, HP, WP, CP,
  EM, FX, BN), maritalStatus DMG04 (v3-MaritalStatus), deceasedDateTime INS12.
- Coverage per HD (2300), its id from the member's Patient id, the payer and the
  insurance line HD03: an add (021), later changes (001), an audit (030) and the
  termination (024) of the same line are PUTs of one Coverage; a second HD of the same
  line for one member gets a `#2` key.
  status: cancelled when HD01 or INS03 is 024 (cancellation or termination) or 002
  (delete); else active (021 add, 001 change, 025 reinstatement, 026 correction, 030
  audit). period DTP*348 (benefit begin) to DTP*349 (benefit end), else the member's
  DTP*356/357 (eligibility begin/end). type HD03 (urn:conduit:code:x12:insurance-line,
  with its meaning). subscriberId REF*0F; subscriber the subscriber's Patient when it is
  in the same file (members with the same REF*0F); beneficiary the member;
  relationship INS02 (18 self, 01 spouse, 53 common law/life partner, 19/09/10/17
  child, 03/16 parent, else other; subscriber-relationship); payor the payer (1000B);
  policyHolder the plan sponsor (1000A); class plan HD04 and group REF*1L (the HD's,
  else the member's, else its subscriber's in the same file).
- Terminations: a terminated coverage is written, not deleted: status cancelled with
  period.end the last day of coverage (DTP*349 or 357). Each resource is a PUT that
  replaces what the receiver holds, so a termination or change record that leaves out
  the plan description (HD04) or an address writes a Coverage or Patient without it.
  A member whose INS03 is 024 has every coverage of that INS cancelled, whatever HD01
  says. The Patient is never deleted, and INS12 marks a death.
- Audit files (BGN08 4, INS03 030) and full replacements (BGN08 RX) are mapped record by
  record: a member missing from such a file is not terminated by this mapping; the
  receiver has to compare it with what it holds.
- Not mapped: the TPA/broker (1000C), member reporting categories (2700/2750),
  disability (2200), the providers chosen (2310), other insurance (2320/2330), the
  other name loops (2100B, D-H), amounts (AMT), HD05 coverage level, INS04 reasons and
  INS05-09 statuses.
"""

from __future__ import annotations

from typing import Any

from engine.errors import MappingError
from engine.formats.x12.message import X12Message
from engine.maplib import x12_enrollment as en
from engine.maplib import x12_fhir as xf
from engine.maplib.fhir import one_per_id, resource_id, transaction
from engine.maplib.x12_unread import BIRTH_DATE, GENDER, unread
from engine.mapping import Skip, mapping
from engine.mapping_base import Mapped

# A member's birth date and gender, left out with a located warning when unreadable.
_READ_LENIENTLY = (BIRTH_DATE.within("2100A"), GENDER.within("2100A"))


@mapping("x12-834-to-fhir@1", accepts="x12", emits="application/fhir+json")
def enrollment_to_fhir(message: X12Message) -> Mapped | Skip:
    """Map one 834 to a transaction Bundle of its sponsor, payer, members and coverages."""
    if message.segments[0].element(1) != "834" or message.tree is None:
        raise MappingError("is not 834; this mapping reads 834 enrollments", field="ST01")
    tree = message.tree
    payer_node = tree.first("1000B")
    if payer_node is None or payer_node.segments[0].id != "N1":
        raise MappingError("the payer (1000B N1*IN) is missing; a Coverage needs its payor",
                           field="N1")
    members = tree.all("2000")
    if not members:
        return Skip("834 holds no member (INS)")
    sponsor_node = tree.first("1000A")
    sponsor = en.organization(sponsor_node, "bus") if sponsor_node is not None and \
        sponsor_node.segments[0].id == "N1" else None
    payer = en.organization(payer_node, "pay")
    scope = xf.payer_scope(message, payer_node.segments[0].element(4).strip())
    parties = en.Parties(sponsor, payer, scope)
    people = [(member, en.patient(member, scope)) for member in members]
    subscribers = {en.member_refs(m).get("0F"): (m, p) for m, p in people
                   if en.is_subscriber(m) and en.member_refs(m).get("0F")}
    resources: list[dict[str, Any]] = [r for r in (sponsor, payer) if r]
    seen: dict[str, int] = {}
    for member, person in people:
        resources.append(person)
        head, subscriber = (member, person) if en.is_subscriber(member) else \
            subscribers.get(en.member_refs(member).get("0F"), (None, None))
        group = en.member_refs(head).get("1L", "") if head is not None else ""
        for node in member.kids("2300"):
            key = en.coverage_key(person, node, scope)
            count = seen[key["value"]] = seen.get(key["value"], 0) + 1
            if count > 1:
                key = {**key, "value": f"{key['value']}#{count}"}
            resources.append(en.coverage(node, member, resource_id("Coverage", "x12", key),
                                         person, subscriber, parties, group))
    return Mapped(transaction(one_per_id(resources, latest=True)), unread(tree, _READ_LENIENTLY))
