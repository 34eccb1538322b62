"""A pharmacy give (RXG in an RGV, with its TQ1, RXR and RXC) as a MedicationRequest of
intent instance-order based on the order's MedicationRequest.

Why not a MedicationAdministration: a give is the pharmacy telling the nurses what to
give and when (the medication administration record), not a report that it was given;
that report is the RAS. FHIR R4 names this "instance-order": "an instance for the
particular order, for example a medication administration record".
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import codeable_concepts
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.pharmacy import (
    PharmacyOrder,
    annotations,
    batch,
    dosages,
    guarded,
    medication_resource,
    report_key,
    request_status,
    schedules,
    text_of,
)


def give(b: Build, order: PharmacyOrder, rxg: Segment, request: dict | None) -> dict | None:
    """The MedicationRequest (instance-order) of one RXG (guarded: one that names no drug
    is a warning and the others map), based on `request` when there is one."""
    return guarded(lambda: _give(b, order, rxg, request))


def _give(b: Build, order: PharmacyOrder, rxg: Segment, request: dict | None) -> dict:
    medication = medication_resource(b, rxg, 4, 8, order.owned(rxg, "RXC"),
                                     strength=(17, 18, 23, 24))
    if medication is None:
        raise MappingError("is empty: the give names no medication", field=b.field(rxg, 4))
    batch(b, rxg, medication, (19, 20, 21))
    b.add(medication)
    plans = schedules(b, order.orc, rxg, order.owned(rxg, "TQ1") or order.timings())
    routes = order.owned(rxg, "RXR") or order.routes(order.first("RXE"), order.first("RXO"))
    resource = {
        "resourceType": "MedicationRequest",
        # RXG-1 give and RXG-2 dispense counters: a resent or changed give updates one
        # resource, the order's next give is another.
        "id": resource_id("MedicationRequest", b.facility, report_key(
            b, order, rxg, request, medication, "give", (1, 2))),
        "status": request_status(b, order.orc),
        "intent": "instance-order",
        "medicationReference": b.ref(medication),
        "subject": b.patient_ref(),
        "encounter": b.encounter_ref(),
        "basedOn": [b.ref(request)] if request else None,
        "groupIdentifier": dt.first_ei(order.orc, 4, b.facility) if order.orc else None,
        "reasonCode": codeable_concepts(rxg, 22, b.facility),
        "note": [*([{"text": t}] if (t := text_of(rxg, 9)) else []),
                 *annotations(b, order.notes(rxg))],
        "dosageInstruction": dosages(b, rxg, routes, plans),
    }
    return b.add(compact(resource))
