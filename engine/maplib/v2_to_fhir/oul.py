"""OUL: laboratory results from an automated lab (R22 specimen-centric, R23 container-
centric, R24 order-centric) as Specimens with their containers (SAC), a DiagnosticReport
per OBR with its ServiceRequest and Observations, and Observations about the specimen.

The three structures differ in what heads what: R22 and R23 send an SPM (with its SAC
containers) before the orders done on it, R24 sends the OBR before the SPMs it used. In
all three an order's ORC follows its OBR (some senders put it first; both are read).
Reports are mapped as the ORU builder maps them (same ids for the same order number and
test), so a result reaching a receiver by ORU and by OUL is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import guard, tolerate
from engine.maplib.fhir import compact
from engine.maplib.v2_to_fhir import orders, people, results, specimens, visit
from engine.maplib.v2_to_fhir.frame import Build
from engine.maplib.v2_to_fhir.oru import report_group
from engine.maplib.v2_to_fhir.provenance import finish
from engine.mapping_base import Skip

EVENTS: tuple[str, ...] = ("R22", "R23", "R24")
RESOURCES: tuple[str, ...] = (
    "Patient", "RelatedPerson", "Encounter", "Location", "Practitioner", "PractitionerRole",
    "Organization", "MessageHeader",
    "ServiceRequest", "Specimen", "DiagnosticReport", "Observation", "DocumentReference",
    "Device", "Provenance",
)


@dataclass
class _Order:
    orc: Segment | None
    obr: Segment | None
    body: list[Segment] = field(default_factory=list)
    specimens: list[dict] = field(default_factory=list)  # the SPM the order sits under


def build(message: Hl7Message) -> dict | Skip:
    b = Build(message, "OUL", default_event="R22")
    if b.event not in EVENTS:
        return Skip(f"OUL^{b.event or '(no event)'} is not a result event this mapping reads")
    if not any(s.name in ("OBR", "OBX", "SPM") for s in message.segments):
        tolerate(MappingError("the message has no SPM, OBR or OBX segment, so there is no "
                              "result; only the patient and visit are mapped", field="OBR"))
    people.patient(b)
    visit.encounter(b)
    people.related_persons(b)
    for order in _walk(b):
        if order.obr is None:
            obxs = [s for s in order.body if s.name == "OBX"]
            request = orders.service_request(b, order.orc, None) if obxs else None
            results.observations(b, obxs, based_on=[request] if request else None,
                                 specimen=order.specimens[0] if order.specimens else None,
                                 context=results.Context(section=""))
            continue
        b.each("OBR", lambda obr, n, o=order: report_group(b, o.orc, obr, o.body, o.specimens),
               [order.obr])
    return finish(b)


def _walk(b: Build) -> list[_Order]:
    """The orders of the message in turn, each with the Specimens it sits under; OBX that
    follow a PID or an SPM directly (before any order) are mapped on the spot as
    observations about the patient or that specimen."""
    order_centric = b.event == "R24"
    orders: list[_Order] = []
    current: _Order | None = None
    under: list[dict] = []
    loose: list[Segment] = []
    previous = ""
    for seg in b.message.segments:
        name = seg.name
        if name == "SPM" and not (order_centric and current is not None):
            _flush(b, loose, under)
            loose = []
            current = None
            made = guard("SPM", results.occurrence(b, seg), lambda s=seg: _specimen(b, s))
            under = [made] if made else []
        elif name == "ORC" and current is not None and previous == "OBR" \
                and current.orc is None:
            current.orc = seg  # the standard's order: OBR, then its ORC (R22, R23, R24)
        elif name == "ORC":
            current = _Order(seg, None, [], under)
            orders.append(current)
        elif name == "OBR":
            if current is not None and current.obr is None and current.orc is not None:
                current.obr = seg
            else:
                current = _Order(None, seg, [], under)
                orders.append(current)
            current.body.append(seg)
        elif name == "OBX" and current is None:
            loose.append(seg)
        elif name == "SAC" and current is not None and not order_centric and under:
            _more_container(b, under[0], seg)  # R23: the next container of the specimen
        elif current is not None:
            current.body.append(seg)
        previous = name
    _flush(b, loose, under)
    return orders


def _more_container(b: Build, specimen: dict, sac: Segment) -> None:
    """A SAC after its specimen's first orders (R23 sends a container, its orders, the next
    container...) adds that container to the Specimen: SAC-3 id, SAC-21 volume (SAC-23
    unit)."""
    identifier = dt.ei_to_identifier(dt.first_rep(sac, 3), b.facility)
    volume = dt.to_fhir_decimal(sac.value(21), "SAC-21")
    unit = dt.present(sac.value(23, 1))
    container = compact({
        "identifier": [identifier] if identifier else None,
        "capacity": compact({"value": volume, "unit": unit or None})
        if volume is not None else None,
    })
    known = specimen.setdefault("container", [])
    if container and container not in known:
        known.append(container)


def _flush(b: Build, obxs: list[Segment], under: list[dict]) -> None:
    if obxs:
        results.observations(b, obxs, specimen=under[0] if under else None,
                             context=results.Context(section=""))


def _specimen(b: Build, spm: Segment) -> dict | None:
    """The Specimen of an SPM that heads its orders (with its SAC containers)."""
    found = specimens.of_report(b, spm, [spm], _message_key(b))
    return found[0] if found else None


def _message_key(b: Build) -> dict:
    control = dt.present(b.message.segments[0].value(10))
    if not control:
        tolerate(MappingError("is empty, so specimens without ids are keyed on the sender "
                              "alone", field="MSH-10"))
    return {"system": f"urn:conduit:msh:{b.facility}", "value": control or "no-control-id"}
