"""hl7v2-adt-to-fhir@1: an ADT event as a FHIR R4 transaction Bundle (Patient, Encounter).

Events A01, A03, A04, A08, A11, A28 and A31 are mapped; any other ADT event is skipped
with a reason, and a message that is not ADT fails naming MSH-9.

Choices a receiver will notice:
- Resource ids are uuid5 of (resource type, sending facility MSH-4.1 or else MSH-3.1,
  identifier system, identifier value): the Patient's from its first MR identifier in
  PID-3 (else the first), the Encounter's from PV1-19. The same patient or visit from the
  same facility always gets the same id, whatever the event or message.
- Entries are PUT Patient/<id> (update as create), so redelivery updates instead of
  duplicating, and no identifier value ever appears in a URL; fullUrl is urn:uuid:<id>
  and the Encounter's subject points at it.
- Identifier systems: see `datatypes.hd_system`; a CX without an assigning authority was
  assigned by the sender, so it gets urn:conduit:id:<sending facility>.
- An Encounter is written only when PV1-19 (visit number) is valued: without it no id can
  be derived that a later A03 would find again. A28 and A31 are about the person, and
  their PV1 is a placeholder, so they never write one.
- Encounter.status: A11 cancelled; A03, or any event with PV1-45 discharge time, finished;
  patient class P (preadmit) planned; otherwise in-progress, A04 included (v2 sends no
  later event that would move an "arrived" registration on to in-progress).
- Dates follow `datatypes.to_fhir_datetime`: a time without a zone takes the sender's zone
  from MSH-7, else only its date is kept. A malformed date fails naming its field.
"""

from __future__ import annotations

import re

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import transaction
from engine.maplib.v2_fhir import encounter, patient_of, sender_offset, sending_facility
from engine.mapping import Skip, mapping

MAPPED_EVENTS = frozenset({"A01", "A03", "A04", "A08", "A11", "A28", "A31"})
PERSON_ONLY_EVENTS = frozenset({"A28", "A31"})

_EVENT_CODE = re.compile(r"[A-Z0-9]{1,8}\Z")


@mapping("hl7v2-adt-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def adt_to_fhir(message: Hl7Message) -> dict | Skip:
    """Map one ADT message to a transaction Bundle, or skip an event this version omits."""
    event = _trigger_event(message)
    if event not in MAPPED_EVENTS:
        return Skip(f"ADT^{event} is not mapped by this version")
    facility = sending_facility(message)
    offset = sender_offset(message)
    person = patient_of(message)
    resources = [person]
    pv1 = message.segment("PV1")
    if pv1 is not None and event not in PERSON_ONLY_EVENTS:
        visit = encounter(pv1, event, facility, person["id"], offset)
        if visit is not None:
            resources.append(visit)
    return transaction(resources)


def _trigger_event(message: Hl7Message) -> str:
    """The ADT trigger event from MSH-9.2 (EVN-1 for old senders that leave it out)."""
    msh = message.segments[0]
    if dt.present(msh.value(9, 1)).upper() != "ADT":
        raise MappingError("message type is not ADT; this mapping reads ADT only", field="MSH-9")
    event = dt.present(msh.value(9, 2)) or dt.present(message.value("EVN-1"))
    event = event.upper()
    if not event:
        raise MappingError("has no trigger event (and EVN-1 is empty)", field="MSH-9")
    return event if _EVENT_CODE.match(event) else "(unrecognised event)"
