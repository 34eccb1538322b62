"""FHIR R4 ServiceRequests as the order groups of an HL7 v2.5.1 ORM^O01 or OML^O21 (ORC,
TQ1, OBR, NTE, DG1, SPM): the inverse of the ORM/OML-to-FHIR rules, so an order that came
from v2 goes back with its numbers, codes, times and patient."""

from __future__ import annotations

from typing import Any, NamedTuple

from engine.errors import MappingError
from engine.formats.hl7v2 import tables
from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2
from engine.maplib import fhir_to_v2_parts as parts

# ServiceRequest.status -> (ORC-1 order control, ORC-5 order status). An active order is
# new (NW) in its first version and changed (XO) after. A draft is not an order yet, and
# "unknown" says nothing a filler could act on: both fail.
CONTROL: dict[str, tuple[str, str]] = {
    "active": ("NW", ""), "on-hold": ("HD", ""), "revoked": ("CA", ""),
    "completed": ("SC", "CM"), "entered-in-error": ("CA", "CA"),
}
ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order",
                           "instance-order"})


class Order(NamedTuple):
    """One ServiceRequest to send, with what it refers to in the input."""

    request: v2.Located
    specimens: list[v2.Located]
    requester: v2.Located | None


def requests(root: dict, index: v2.Resources) -> list[v2.Located]:
    """Every ServiceRequest of the input (the input itself when it is one). Fails naming
    Bundle.entry when there is none, resourceType for any other input."""
    first = v2.focus(root, index, "ServiceRequest", "order", "ServiceRequests")
    found = list(index.of_type("ServiceRequest"))
    return found or [first]


def patient(orders: list[v2.Located], index: v2.Resources) -> v2.Located:
    """The one Patient the orders are about; an order about another patient fails (one
    ORM carries one patient's orders)."""
    person = parts.subject(index, orders[0])
    for order in orders[1:]:
        other = parts.subject(index, order)
        if other.resource is not person.resource:
            raise MappingError("is another patient than the first order's; one message "
                               "carries one patient's orders", field=f"{order.path}.subject")
    return person


def encounter(orders: list[v2.Located], index: v2.Resources) -> v2.Located | None:
    """The first order's Encounter, when the input carries it."""
    for order in orders:
        found = parts.resolved(index, order, "encounter", "Encounter")
        if found is not None:
            return found
    return None


def header(orders: list[v2.Located], root: dict, message_type: tuple[str, str, str]
           ) -> v2.Header:
    """MSH-7 the first order's meta.lastUpdated, else its authoredOn, else the Bundle's;
    MSH-10 hashes every order's id, version and status with MSH-7 (a cancel is never a
    duplicate of the order it cancels)."""
    first = orders[0]
    base = parts.header(first, root, message_type,
                        (first.resource.get("authoredOn"), f"{first.path}.authoredOn"))
    keys = [base.time]
    for order in orders:
        r = order.resource
        keys += [v2.text(r.get("id")) or v2.canonical(r), v2.text(v2.meta(r).get("versionId")),
                 v2.text(r.get("status"))]
    return base._replace(control_id=v2.control_id("ServiceRequest", *keys))


def control(order: v2.Located) -> tuple[str, str]:
    """ORC-1 and ORC-5 from status (and the version, for a change)."""
    resource, path = order
    intent = resource.get("intent")
    if intent not in ORDER_INTENTS:
        raise MappingError("is not an order intent (order, original-order, reflex-order, "
                           "filler-order, instance-order); a proposal or plan is not sent "
                           "as an order", field=f"{path}.intent")
    status = resource.get("status")
    if status not in CONTROL:
        raise MappingError("has no order control to send (active, on-hold, revoked, "
                           "completed, entered-in-error)", field=f"{path}.status")
    code, order_status = CONTROL[status]
    version = v2.text(v2.meta(resource).get("versionId"))
    if code == "NW" and version not in ("", "1"):
        code = "XO"
    return code, order_status


def priority(order: v2.Located) -> str:
    value = order.resource.get("priority")
    if value is None:
        return ""
    if value not in parts.REQUEST_PRIORITY:
        raise MappingError("is not a request priority (routine, urgent, asap, stat)",
                           field=f"{order.path}.priority")
    return parts.REQUEST_PRIORITY[value]


def occurrence(order: v2.Located) -> tuple[str, str]:
    """The requested start and end: occurrenceDateTime, or a period's start and end."""
    resource, path = order
    if "occurrenceDateTime" in resource:
        return v2.to_dtm(resource["occurrenceDateTime"], f"{path}.occurrenceDateTime"), ""
    period = resource.get("occurrencePeriod")
    if isinstance(period, dict):
        where = f"{path}.occurrencePeriod"
        return (v2.to_dtm(period.get("start"), f"{where}.start"),
                v2.to_dtm(period.get("end"), f"{where}.end"))
    return "", ""


def gather(order: v2.Located, index: v2.Resources) -> Order:
    """The order with its Specimens (each must be in the input) and requester."""
    specimens: list[v2.Located] = []
    for n, ref in enumerate(v2.dicts(order.resource.get("specimen"))):
        found = index.resolve(ref, order)
        if found is None or found.resource.get("resourceType") != "Specimen":
            raise MappingError("does not reference a Specimen that the input carries",
                               field=f"{order.path}.specimen[{n}]")
        specimens.append(found)
    return Order(order, specimens, parts.person(index, order.resource.get("requester"),
                                                order))


class OrderWriter:
    """Writes ORC/[TQ1]/OBR/NTE/DG1/[SPM] groups in message order, numbering each kind."""

    def __init__(self, builder: MessageBuilder, index: v2.Resources, *, timing: bool,
                 specimens: bool) -> None:
        self.builder, self.index = builder, index
        self.timing, self.with_specimens = timing, specimens
        self.counts: dict[str, int] = {}
        self.notes = parts.Notes(builder)
        self.diagnoses = parts.Diagnoses(builder)

    def _seg(self, name: str) -> str:
        self.counts[name] = n = self.counts.get(name, 0) + 1
        return f"{name}[{n}]"

    def write(self, order: Order) -> None:
        request, path = order.request
        code_1, status_5 = control(order.request)
        placer, filler, group = parts.numbers(request)
        requisition = request.get("requisition")
        if isinstance(requisition, dict) and parts.ei(requisition):
            group = parts.ei(requisition)
        if placer is None and filler is None:
            raise MappingError("has no identifier and no id, and ORC-2 or ORC-3 needs one",
                               field=f"{path}.identifier")
        requester = self._requester(order)
        start, end = occurrence(order.request)
        urgency = priority(order.request)
        orc = self._seg("ORC")
        b = self.builder
        b.set(f"{orc}-1", code_1)
        v2.put(b, f"{orc}-2", placer)
        v2.put(b, f"{orc}-3", filler)
        v2.put(b, f"{orc}-4", group)
        b.set(f"{orc}-5", status_5)
        if not self.timing:
            v2.put(b, f"{orc}-7", ["", "", "", start, end, urgency])
        b.set(f"{orc}-9", v2.to_dtm(request.get("authoredOn"), f"{path}.authoredOn"))
        v2.put(b, f"{orc}-12", requester)
        self._contacts(orc, order)
        if self.timing and (start or end or urgency):
            tq1 = self._seg("TQ1")
            b.set(f"{tq1}-1", str(self.counts["TQ1"]))
            b.set(f"{tq1}-7", start)
            b.set(f"{tq1}-8", end)
            v2.put(b, f"{tq1}-9", [urgency] if urgency else None)
        self._obr(order, placer, filler, requester, (start, end, urgency))
        self.notes.write([*parts.annotations(request),
                          (v2.text(request.get("patientInstruction")), "PI")])
        self.diagnoses.write(parts.reasons(order.request, self.index))
        self._answers(order.request)
        if self.with_specimens:
            for specimen in order.specimens:
                self._spm(specimen)

    def _answers(self, request: v2.Located) -> None:
        """One OBX per Observation in supportingInfo the input carries: the answers given
        at order entry (fasting, weight), OBX-11 O (order detail) while registered."""
        for ref in v2.dicts(request.resource.get("supportingInfo")):
            found = self.index.resolve(ref, request)
            if found is None or found.resource.get("resourceType") != "Observation":
                continue
            obs, path = found
            code = v2.cwe(obs.get("code"), original_text=False)
            value = v2.obx_value(obs, path)
            if code is None or value is None:
                continue
            seg, b = self._seg("OBX"), self.builder
            b.set(f"{seg}-1", str(self.counts["OBX"]))
            b.set(f"{seg}-2", value.value_type)
            v2.put(b, f"{seg}-3", code)
            v2.put(b, f"{seg}-5", value.value)
            v2.put(b, f"{seg}-6", value.units)
            state = obs.get("status")
            b.set(f"{seg}-11", "O" if state == "registered" else v2.status(
                state, v2.RESULT_STATUS, "0085", f"{path}.status"))

    def _contacts(self, orc: str, order: Order) -> None:
        """ORC-14 call back phone and ORC-24 address of the ordering Practitioner; ORC-21
        ordering facility (XON: name, authority, id), ORC-22 address, ORC-23 phone from
        the requester's Organization (a PractitionerRole's, or the requester itself)."""
        b = self.builder
        if order.requester is not None:
            person = order.requester.resource
            v2.put_all(b, f"{orc}-14", [x for x in map(v2.xtn, v2.dicts(person.get("telecom")))
                                        if x])
            v2.put_all(b, f"{orc}-24", [x for x in map(v2.xad, v2.dicts(person.get("address")))
                                        if x])
        org = _ordering_facility(order.request, self.index)
        if org is None:
            return
        identifier = next((i for i in v2.dicts(org.get("identifier"))
                           if v2.text(i.get("value"))), {})
        value, system = v2.text(identifier.get("value")), v2.text(identifier.get("system"))
        authority = ([] if system.endswith(":organization") and system.startswith(
            "urn:conduit:id:") else v2.authority(system)) if value else []
        name = v2.text(org.get("name"))
        if name or value:
            v2.put(b, f"{orc}-21", [name, "", "", "", "", authority, "", "", "", value])
        v2.put_all(b, f"{orc}-22", [x for x in map(v2.xad, v2.dicts(org.get("address"))) if x])
        v2.put_all(b, f"{orc}-23", [x for x in map(v2.xtn, v2.dicts(org.get("telecom"))) if x])

    def _requester(self, order: Order) -> list[v2.Component] | None:
        ref = order.request.resource.get("requester")
        display = v2.text(ref.get("display")) if isinstance(ref, dict) else ""
        return parts.xcn(order.requester.resource if order.requester else None, display)

    def _obr(self, order: Order, placer: Any, filler: Any, requester: Any,
             timing: tuple[str, str, str]) -> None:
        request, path = order.request
        code = v2.cwe(request.get("code"), original_text=False)
        if code is None:
            raise MappingError("is missing; OBR-4 (universal service id) needs it",
                               field=f"{path}.code")
        obr = self._seg("OBR")
        b = self.builder
        b.set(f"{obr}-1", str(self.counts["OBR"]))
        v2.put(b, f"{obr}-2", placer)
        v2.put(b, f"{obr}-3", filler)
        v2.put(b, f"{obr}-4", code)
        if order.specimens:
            collected = _collected(order.specimens[0])
            b.set(f"{obr}-7", collected[0])
            b.set(f"{obr}-8", collected[1])
            if not self.with_specimens:
                kind = v2.cwe(order.specimens[0].resource.get("type"), original_text=False)
                v2.put(b, f"{obr}-15", [kind[:3]] if kind else None)
        v2.put(b, f"{obr}-16", requester)
        b.set(f"{obr}-24", _section(request))
        if not self.timing:
            start, end, urgency = timing
            v2.put(b, f"{obr}-27", ["", "", "", start, end, urgency])

    def _spm(self, specimen: v2.Located) -> None:
        resource, path = specimen
        kind = v2.cwe(resource.get("type"), original_text=False)
        if kind is None:
            raise MappingError("is missing; SPM-4 (specimen type) needs it",
                               field=f"{path}.type")
        spm = self._seg("SPM")
        b = self.builder
        b.set(f"{spm}-1", str(self.counts["SPM"]))
        placer = next((parts.ei(i) for i in v2.dicts(resource.get("identifier"))
                       if parts.ei(i)), None)
        accession = resource.get("accessionIdentifier")
        filler = parts.ei(accession) if isinstance(accession, dict) else None
        v2.put(b, f"{spm}-2", [placer or [], filler or []] if placer or filler else None)
        v2.put(b, f"{spm}-4", kind)
        collection = resource.get("collection") if isinstance(resource.get("collection"),
                                                               dict) else {}
        v2.put(b, f"{spm}-7", v2.cwe(collection.get("method"), original_text=False))
        v2.put(b, f"{spm}-8", v2.cwe(collection.get("bodySite"), original_text=False))
        quantity = collection.get("quantity")
        if isinstance(quantity, dict) and quantity.get("value") is not None:
            amount = v2.number(quantity.get("value"), f"{path}.collection.quantity.value")
            unit = v2.units(quantity) or []
            v2.put(b, f"{spm}-12", [amount, unit[:3] if unit else ""])
        start, end = _collected(specimen)
        v2.put(b, f"{spm}-17", [start, end] if start else None)
        b.set(f"{spm}-18", v2.to_dtm(resource.get("receivedTime"), f"{path}.receivedTime"))


def _ordering_facility(request: v2.Located, index: v2.Resources) -> dict | None:
    """The Organization the order is placed from: the requester PractitionerRole's, or
    the requester when it is one."""
    found = index.resolve(request.resource.get("requester"), request)
    if found is None:
        return None
    if found.resource.get("resourceType") == "PractitionerRole":
        found = index.resolve(found.resource.get("organization"), found)
    if found is None or found.resource.get("resourceType") != "Organization":
        return None
    return found.resource


def _collected(specimen: v2.Located) -> tuple[str, str]:
    resource, path = specimen
    collection = resource.get("collection") if isinstance(resource.get("collection"),
                                                           dict) else {}
    where = f"{path}.collection"
    if "collectedDateTime" in collection:
        return v2.to_dtm(collection["collectedDateTime"], f"{where}.collectedDateTime"), ""
    period = collection.get("collectedPeriod")
    if isinstance(period, dict):
        return (v2.to_dtm(period.get("start"), f"{where}.collectedPeriod.start"),
                v2.to_dtm(period.get("end"), f"{where}.collectedPeriod.end"))
    return "", ""


def _section(request: dict) -> str:
    """OBR-24 from a category coded in v2-0074 (diagnostic service section)."""
    for concept in v2.dicts(request.get("category")):
        for coding in v2.dicts(concept.get("coding")):
            if coding.get("system") == tables.V2_0074 and v2.text(coding.get("code")):
                return v2.text(coding["code"])
    return ""


def order_message(resource: dict, message_type: tuple[str, str, str], *, timing: bool,
                  specimens: bool) -> str:
    """One ORM^O01 or OML^O21 for the ServiceRequests of the input: MSH, PID, PV1 when
    an Encounter is there, then each order (with TQ1 and SPM when `timing` and
    `specimens`, as OML has them and ORM does not)."""
    index = v2.Resources(resource)
    found = requests(resource, index)
    person = patient(found, index)
    gathered = [gather(o, index) for o in found]
    builder = MessageBuilder()
    v2.write_msh(builder, header(found, resource, message_type))
    v2.write_pid(builder, person)
    visit = encounter(found, index)
    if visit is not None:
        parts.write_pv1(builder, visit, index)
    writer = OrderWriter(builder, index, timing=timing, specimens=specimens)
    for order in gathered:
        writer.write(order)
    return v2.encode(builder)
