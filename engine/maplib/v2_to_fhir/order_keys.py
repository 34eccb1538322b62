"""Which order a segment belongs to and the identifier an order is keyed on, shared by
the order builders and everything that hangs off an order (its specimens, its results),
so an ORU's ServiceRequest and Specimens are the very ones the order feed made."""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib.fhir import resource_id
from engine.maplib.v2_orders import OrderGroup, order_groups, order_numbers, receiving_facility
from engine.maplib.v2_to_fhir.frame import Build

RESULT_TYPES = frozenset({"ORU", "OUL"})


def placer_facility(b: Build) -> str:
    """Who placed the message's orders: the sender of an order, the receiver of a result."""
    if b.type in RESULT_TYPES:
        return receiving_facility(b.message) or b.facility
    return b.facility


def filler_facility(b: Build) -> str:
    """Who fills them: the receiver of an order, the sender of a result."""
    if b.type in RESULT_TYPES:
        return b.facility
    return receiving_facility(b.message) or b.facility


def order_key(b: Build, orc: Segment | None, obr: Segment | None) -> dict:
    """The identifier a ServiceRequest id (and what hangs off the order) is keyed on.

    Without any order number a lenient conversion keys the order on the message control
    id and the group's place in it (a resend updates it), with a warning at ORC-2.
    """
    numbers = order_numbers(orc, obr, placer_authority=placer_facility(b),
                            filler_authority=filler_facility(b))
    key = numbers.placer or numbers.filler
    if key is not None:
        return key
    anchor = orc if orc is not None else obr
    assert anchor is not None
    control = dt.present(b.message.segments[0].value(10)) or "no-control-id"
    fallback = {"system": f"urn:conduit:msh:{b.facility}",
                "value": f"{control}^{anchor.name}^{b.occurrence(anchor)}"}
    return tolerate(MappingError(
        "has no placer or filler order number (nor ORC-3, OBR-2, OBR-3), so the order is "
        "identified by the message control id", field=b.field(anchor, 2)), fallback)


def request_id(b: Build, orc: Segment | None, obr: Segment | None) -> str:
    """The ServiceRequest id of an ORC/OBR pair (see the module docstring)."""
    return resource_id("ServiceRequest", placer_facility(b), order_key(b, orc, obr))


def group_of(b: Build, segment: Segment | None) -> OrderGroup | None:
    """The order group (`v2_orders.order_groups`) a segment belongs to."""
    if segment is None:
        return None
    for group in order_groups(b.message):
        if group.orc is segment or group.obr is segment or any(
                s is segment for s in group.body):
            return group
    return None
