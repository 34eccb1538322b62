"""A FHIR R4 Appointment as an HL7 v2.5.1 SIU message (SCH, TQ1, NTE, PID, PV1, RGS, AIS,
AIG, AIL, AIP): the inverse of `engine.maplib.v2_to_fhir.scheduling`, so an Appointment
made from an SIU goes back with its ids, codes, times and patient."""

from __future__ import annotations

from datetime import datetime

from engine.errors import MappingError
from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2
from engine.maplib import fhir_to_v2_parts as parts

# Appointment.status -> (event, SCH-25 filler status, table 0278). A booking is S12 in
# its first version and S14 (modified) after; R4 cannot say it was moved, so S13 is not
# sent. A status without an SIU event fails.
EVENTS: dict[str, str] = {"cancelled": "S15", "entered-in-error": "S17", "noshow": "S26"}
FILLER_STATUS: dict[str, str] = {
    "proposed": "Pending", "pending": "Pending", "booked": "Booked", "arrived": "Started",
    "checked-in": "Started", "fulfilled": "Complete", "cancelled": "Cancelled",
    "noshow": "Noshow", "entered-in-error": "Deleted", "waitlist": "Waitlist",
}
# Appointment.participant.status -> the resource's filler status (AIx-12 / AIG-14).
PARTICIPANT_STATUS: dict[str, str] = {
    "accepted": "Booked", "tentative": "Pending", "declined": "Cancelled",
    "needs-action": "Pending",
}
PERSON_KINDS = ("Practitioner", "PractitionerRole")


def event(appointment: v2.Located) -> str:
    """The trigger event the Appointment's status and version say."""
    resource, path = appointment
    status = resource.get("status")
    if status not in FILLER_STATUS:
        raise MappingError("is not an Appointment status (proposed, pending, booked, "
                           "arrived, fulfilled, cancelled, noshow, entered-in-error, "
                           "checked-in, waitlist)", field=f"{path}.status")
    if status in EVENTS:
        return EVENTS[status]
    version = v2.text(v2.meta(resource).get("versionId"))
    return "S12" if version in ("", "1") else "S14"


def patients(appointment: v2.Located, index: v2.Resources) -> list[v2.Located]:
    """The participants that are Patients, in order (a group visit has several); one the
    input does not carry fails (its PID would be missing). An Appointment may have none
    (a resource's blocked time)."""
    found: list[v2.Located] = []
    for n, part in enumerate(v2.dicts(appointment.resource.get("participant"))):
        actor = part.get("actor") if isinstance(part.get("actor"), dict) else {}
        ref = v2.text(actor.get("reference"))
        target = index.resolve(actor, appointment) if actor else None
        if target is None and (ref.startswith("Patient/")
                               or v2.text(actor.get("type")) == "Patient"):
            raise MappingError("references a Patient that the input does not carry",
                               field=f"{appointment.path}.participant[{n}].actor")
        if target is not None and target.resource.get("resourceType") == "Patient" and all(
                target.resource is not f.resource for f in found):
            found.append(target)
    return found


def write_other_pid(builder: MessageBuilder, person: v2.Located, number: int) -> None:
    """A further patient's PID (the `number`-th), written as `fhir_to_v2.write_pid`
    writes the first."""
    own = MessageBuilder()
    v2.write_pid(own, person)
    own.set("PID-1", str(number))
    builder.segment("PID", number).update(own.segment("PID"))


def write_sch(builder: MessageBuilder, appointment: v2.Located, trigger: str) -> None:
    """SCH: ids, reason, type, duration, timing (SCH-11), orders and filler status."""
    resource, path = appointment
    placer, filler, group = parts.numbers(resource)
    if filler is None and placer is None:
        raise MappingError("has no identifier and no id, and SCH-1 or SCH-2 needs one",
                           field=f"{path}.identifier")
    v2.put(builder, "SCH-1", placer)
    v2.put(builder, "SCH-2", filler)
    v2.put(builder, "SCH-4", group)
    reason = (resource.get("cancelationReason") if trigger in EVENTS.values()
              else next(iter(v2.dicts(resource.get("reasonCode"))), None))
    v2.put(builder, "SCH-6", v2.cwe(reason, original_text=False))
    v2.put(builder, "SCH-7", v2.cwe(resource.get("appointmentType"), original_text=False))
    minutes = resource.get("minutesDuration")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
        builder.set("SCH-9", str(minutes))
        builder.set("SCH-10", "min")
    start = v2.to_dtm(resource.get("start"), f"{path}.start")
    end = v2.to_dtm(resource.get("end"), f"{path}.end")
    priority = _priority(resource, path)
    v2.put(builder, "SCH-11", ["", "", f"M{minutes}" if _has(builder, "SCH-9")
                               else "", start, end, priority])
    _write_orders(builder, resource)
    builder.set("SCH-25", FILLER_STATUS[resource["status"]])


def write_contacts(builder: MessageBuilder, appointment: v2.Located,
                   index: v2.Resources) -> None:
    """SCH-12, SCH-16, SCH-20 (placer, filler and entering contact) from the people in
    supportingInformation, in that order (as v2-to-FHIR lists them); a PractitionerRole
    also gives the phone (SCH-13/17/21) and place (SCH-15/19/22)."""
    fields = iter((12, 16, 20))
    for ref in v2.dicts(appointment.resource.get("supportingInformation")):
        who = parts.person(index, ref, appointment)
        if who is None:
            continue
        field = next(fields, None)
        if field is None:
            return
        v2.put(builder, f"SCH-{field}", parts.xcn(who.resource))
        role = index.resolve(ref, appointment)
        if role is None or role.resource.get("resourceType") != "PractitionerRole":
            continue
        phones = [x for x in map(v2.xtn, v2.dicts(role.resource.get("telecom"))) if x]
        v2.put_all(builder, f"SCH-{field + 1}", phones)
        for place_ref in v2.dicts(role.resource.get("location"))[:1]:
            place = index.resolve(place_ref, role)
            v2.put(builder, f"SCH-{field + 3}", parts.pl(place.resource if place else None,
                                                        v2.text(place_ref.get("display"))))


def _has(builder: MessageBuilder, path: str) -> bool:
    """Whether the field at `path` ("SCH-9") has been written."""
    seg, _, field = path.partition("-")
    return bool(builder.segment(seg).get(int(field)))


def _priority(resource: dict, path: str) -> str:
    value = resource.get("priority")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MappingError("is not an unsignedInt", field=f"{path}.priority")
    return parts.PRIORITY_CODES.get(value, "")


def _write_orders(builder: MessageBuilder, resource: dict) -> None:
    """SCH-26/27 from basedOn references by identifier typed PLAC / FILL."""
    for ref in v2.dicts(resource.get("basedOn")):
        identifier = ref.get("identifier") if isinstance(ref.get("identifier"), dict) else {}
        code = parts.type_code(identifier)
        target = {"PLAC": "SCH-26", "FILL": "SCH-27"}.get(code)
        if target and not _has(builder, target):
            v2.put(builder, target, parts.ei(identifier))


def write_tq1(builder: MessageBuilder, appointment: v2.Located) -> None:
    """TQ1: the same times, duration and priority as SCH-11, in v2.5's own segment."""
    resource, path = appointment
    start = v2.to_dtm(resource.get("start"), f"{path}.start")
    end = v2.to_dtm(resource.get("end"), f"{path}.end")
    priority = _priority(resource, path)
    if not (start or end or priority or _has(builder, "SCH-9")):
        return
    builder.set("TQ1-1", "1")
    if _has(builder, "SCH-9"):
        v2.put(builder, "TQ1-6", [str(resource["minutesDuration"]), ["min", "minutes",
                                                                     "UCUM"]])
    builder.set("TQ1-7", start)
    builder.set("TQ1-8", end)
    v2.put(builder, "TQ1-9", [priority] if priority else None)


def notes(appointment: v2.Located) -> list[tuple[str, str]]:
    """description (GR), comment (RE) and patientInstruction (PI), as v2-to-FHIR reads
    NTE-4 back."""
    r = appointment.resource
    return [(v2.text(r.get("description")), "GR"), (v2.text(r.get("comment")), "RE"),
            (v2.text(r.get("patientInstruction")), "PI")]


class Resources:
    """RGS and the AIS, AIG, AIL and AIP segments of one resource group, numbered."""

    def __init__(self, builder: MessageBuilder, appointment: v2.Located,
                 index: v2.Resources, action: str) -> None:
        self.builder, self.appointment, self.index = builder, appointment, index
        self.action = action
        self.counts: dict[str, int] = {}

    def write(self) -> None:
        self.builder.set("RGS-1", "1")
        self.builder.set("RGS-2", self.action)
        self._services()
        # SIU_S12 lists general resources, then locations, then personnel.
        found = [self._kind(part, f"{self.appointment.path}.participant[{n}]")
                 for n, part in enumerate(v2.dicts(self.appointment.resource.get(
                     "participant")))]
        for name in ("AIG", "AIL", "AIP"):
            for kind, part, path in found:
                if kind == name:
                    self._participant(part, path)

    def _next(self, name: str) -> str:
        self.counts[name] = n = self.counts.get(name, 0) + 1
        seg = f"{name}[{n}]"
        self.builder.set(f"{seg}-1", str(n))
        self.builder.set(f"{seg}-2", self.action)
        return seg

    def _services(self) -> None:
        """One AIS per ServiceRequest in basedOn the input carries, else per
        serviceType."""
        resource, path = self.appointment
        written = False
        for ref in v2.dicts(resource.get("basedOn")):
            found = self.index.resolve(ref, self.appointment)
            if found is None or found.resource.get("resourceType") != "ServiceRequest":
                continue
            code = v2.cwe(found.resource.get("code"), original_text=False)
            if code is None:
                continue
            seg = self._next("AIS")
            v2.put(self.builder, f"{seg}-3", code)
            self._timing(seg, found.resource, found.path, 4, 7, 8, occurrence=True)
            details = [c for c in (v2.cwe(d, original_text=False) for d in v2.dicts(
                found.resource.get("orderDetail"))) if c]
            v2.put_all(self.builder, f"{seg}-11", details)
            written = True
        if written:
            return
        for concept in v2.dicts(resource.get("serviceType")):
            code = v2.cwe(concept, original_text=False)
            if code is not None:
                seg = self._next("AIS")
                v2.put(self.builder, f"{seg}-3", code)
                self._timing(seg, resource, path, 4, 7, 8)

    def _kind(self, part: dict, path: str) -> tuple[str, dict, str]:
        """Which segment a participant is written as ("" for the patient or nothing)."""
        actor = part.get("actor") if isinstance(part.get("actor"), dict) else {}
        found = self.index.resolve(actor, self.appointment) if actor else None
        kind = found.resource.get("resourceType") if found else ""
        if kind == "Patient":
            return "", part, path
        if kind in PERSON_KINDS:
            return "AIP", part, path
        if kind == "Location":
            return "AIL", part, path
        return "AIG", part, path

    def _participant(self, part: dict, path: str) -> None:
        actor = part.get("actor") if isinstance(part.get("actor"), dict) else {}
        found = self.index.resolve(actor, self.appointment) if actor else None
        kind = found.resource.get("resourceType") if found else ""
        display = v2.text(actor.get("display"))
        if kind == "Patient":
            return
        if found is None and actor.get("reference") and not display:
            raise MappingError("does not reference a resource that the input carries and "
                               "has no display", field=f"{path}.actor")
        role = next(iter(v2.dicts(part.get("type"))), None)
        status = PARTICIPANT_STATUS.get(v2.text(part.get("status")), "")
        if kind in PERSON_KINDS:
            who = parts.person(self.index, actor, self.appointment)
            seg = self._next("AIP")
            v2.put(self.builder, f"{seg}-3", parts.xcn(who.resource if who else None,
                                                       display))
            v2.put(self.builder, f"{seg}-4", v2.cwe(role, original_text=False))
            self._timing(seg, part, path, 6, 9, 10)
            self.builder.set(f"{seg}-12", status)
        elif kind == "Location":
            seg = self._next("AIL")
            v2.put(self.builder, f"{seg}-3", parts.pl(found.resource, display))
            v2.put(self.builder, f"{seg}-4", v2.cwe(next(iter(v2.dicts(
                found.resource.get("type"))), None), original_text=False))
            self._timing(seg, part, path, 6, 9, 10)
            self.builder.set(f"{seg}-12", status)
        elif found is not None or display or role is not None:
            seg = self._next("AIG")
            v2.put(self.builder, f"{seg}-3", _general(found.resource if found else None,
                                                      display))
            v2.put(self.builder, f"{seg}-4", _resource_type(role, found))
            self._timing(seg, part, path, 8, 11, 12)
            self.builder.set(f"{seg}-14", status)

    def _timing(self, seg: str, element: dict, path: str, start_at: int, length_at: int,
                units_at: int, *, occurrence: bool = False) -> None:
        """A resource's own start and length in minutes: a participant's period, a
        ServiceRequest's occurrence."""
        if occurrence:
            period = element.get("occurrencePeriod")
            if isinstance(period, dict):
                where = f"{path}.occurrencePeriod"
            else:
                period = {"start": element.get("occurrenceDateTime")}
                where = f"{path}.occurrence"
        else:
            period = element.get("period") if isinstance(element.get("period"), dict) else {}
            where = f"{path}.period"
        start = v2.to_dtm(period.get("start"), f"{where}.start")
        end = v2.to_dtm(period.get("end"), f"{where}.end")
        self.builder.set(f"{seg}-{start_at}", start)
        if start and end and "T" in period["start"] and "T" in period["end"]:
            minutes = (datetime.fromisoformat(period["end"].replace("Z", "+00:00"))
                       - datetime.fromisoformat(period["start"].replace("Z", "+00:00")))
            whole = int(minutes.total_seconds() // 60)
            if whole > 0 and minutes.total_seconds() % 60 == 0:
                self.builder.set(f"{seg}-{length_at}", str(whole))
                self.builder.set(f"{seg}-{units_at}", "min")


def _resource_type(role: dict | None, found: v2.Located | None) -> list | None:
    """AIG-4: the participant's type, else the resource's own type, else the FHIR type
    it is (Device, HealthcareService) as text; a display alone has none."""
    concept = role or (found.resource.get("type") if found is not None else None)
    if isinstance(concept, list):
        concept = next(iter(v2.dicts(concept)), None)
    written = v2.cwe(concept, original_text=False)
    if written is None and found is not None:
        return ["", v2.text(found.resource.get("resourceType"))]
    return written


def _general(resource: dict | None, display: str) -> list[v2.Component] | None:
    """AIG-3 (CWE): a Device's identifier and name, a HealthcareService's or other's name,
    or the display alone."""
    if resource is None:
        return ["", display] if display else None
    names = [v2.text(d.get("name")) for d in v2.dicts(resource.get("deviceName"))]
    name = next((n for n in names if n), "") or v2.text(resource.get("name")) or display
    identifier = next((i for i in v2.dicts(resource.get("identifier"))
                       if v2.text(i.get("value"))), {})
    code = v2.text(identifier.get("value"))
    if not code and not name:
        return None
    system = v2.system_name(v2.text(identifier.get("system"))) if code else ""
    return [code, name, system]


def encounter(appointment: v2.Located, index: v2.Resources) -> v2.Located | None:
    """The Encounter of this appointment: one whose appointment references it, else the
    only Encounter in the input."""
    found = list(index.of_type("Encounter"))
    rid = v2.text(appointment.resource.get("id"))
    for enc in found:
        for ref in v2.dicts(enc.resource.get("appointment")):
            target = index.resolve(ref, enc)
            if target is not None and target.resource is appointment.resource:
                return enc
            if rid and v2.text(ref.get("reference")).endswith(rid):
                return enc
    return found[0] if len(found) == 1 else None
