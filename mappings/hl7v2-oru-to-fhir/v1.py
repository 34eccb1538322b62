"""hl7v2-oru-to-fhir@1: an ORU^R01 result as a FHIR R4 transaction Bundle (Patient,
DiagnosticReport per OBR, Observation per OBX, Specimen per SPM or OBR-15).

Versions 2.3 to 2.8. A message that is not ORU^R01 fails naming MSH-9 (an ORU without a
trigger event, as some v2.3 senders send, is read as R01); one without any OBR fails
naming OBR; one with a second PID fails naming PID (results would land in the wrong chart).

Choices a receiver will notice:
- The Patient is `v2_fhir.patient_of`'s, so its id is the one the ADT feed gives the same
  PID from the same facility. Every entry is a PUT at a uuid5 id (see `maplib.fhir`).
- DiagnosticReport ids come from the sending facility, the filler order number (OBR-3,
  else ORC-3; else the placer number) and OBR-4's code: labs often share one accession
  across panels, so the number alone would merge two reports. Observation ids add OBX-1
  and OBX-4 (the position when OBX-1 is empty or repeats); Specimen ids come from SPM-2,
  else from the report and SPM-1 (OBR-15 specimens: from the report). A corrected result
  (status C) therefore replaces the preliminary one in place.
- An order number without an assigning authority gets the sender's system for the filler
  number and the receiver's (MSH-6, else MSH-5) for the placer number: in an ORU the placer
  is the system receiving the result, so the placer number reads as the ORM feed wrote it.
  basedOn is a logical reference to the ServiceRequest by that placer identifier.
- Status: OBR-25 through table 0123 and OBX-11 through 0085 (IG maps; R "not verified" is
  preliminary, I pending is registered); an empty or unknown code is "unknown" for the
  report, and the report's status for an observation when that is an observation status.
- category: LAB unless OBR-24 names a non-lab section; lab sections add their own code
  (v2-0074). Observations of lab reports carry category laboratory.
- Values by OBX-2: NM valueQuantity written with the digits sent ("5.10" stays 5.10); SN
  a comparator quantity, range or ratio; CE/CWE a CodeableConcept; ST/TX/FT text; DT/TS
  valueDateTime; TM valueTime. A non-number in an NM OBX ("TNP") stays valueString.
  Consecutive TX/FT OBX with the same OBX-3 and OBX-4 are the lines of one text result
  and become one Observation. ED (a PDF report) becomes DiagnosticReport.presentedForm,
  not an Observation.
- Units: UCUM (system and code) when OBX-6 says UCUM or parses as common UCUM; otherwise
  the unit text alone. OBX-7 always keeps its text; "3.5-5.0", "<200", ">10" add low/high.
- Codes (`engine.maplib.v2_codes`): CWE.3 names map to their FHIR URIs (LN -> loinc.org,
  SCT/SNM -> snomed.info/sct, HL7nnnn -> v2-nnnn, ...); local codes get
  urn:conduit:code:<facility>:<name|local>.
- OBR-32 (principal result interpreter) is resultsInterpreter; OBR-16 (ordering provider)
  is not mapped: R4 has no place for it on a report, and it is the ServiceRequest's
  requester, which the order feed writes. NTE after OBR becomes a note via the R5
  DiagnosticReport.note extension (R4 has no note); NTE after OBX is Observation.note.
- issued (OBR-22) is written only when it is a full instant (time and a known zone).
- Bundle.timestamp is MSH-7 when it has a time of day and a zone (`v2_fhir.bundle`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from engine.errors import MappingError
from engine.formats.hl7v2 import Hl7Message, Segment
from engine.formats.hl7v2 import datatypes as dt
from engine.maplib.fhir import one_per_id
from engine.maplib.v2_fhir import bundle
from engine.maplib.v2_orders import (
    OrderGroup,
    Sender,
    SpecimenContext,
    keyed,
    order_groups,
    order_numbers,
    sender_of,
    sole_patient,
    specimen_from_obr15,
    specimen_from_spm,
)
from engine.maplib.v2_results import (
    ResultContext,
    diagnostic_report,
    is_encapsulated,
    observation,
    presented_form,
    report_status,
    report_times,
)
from engine.mapping import mapping

_TEXT_TYPES = frozenset({"TX", "FT"})


@mapping("hl7v2-oru-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def oru_to_fhir(message: Hl7Message) -> dict:
    """Map one ORU^R01 to a transaction Bundle."""
    _require_oru_r01(message)
    groups = [g for g in order_groups(message) if g.obr is not None]
    if not groups:
        raise MappingError("the message has no OBR segment, so there is no report", field="OBR")
    person = sole_patient(message)
    sender = sender_of(message, person)
    resources: list[dict] = [person]
    reports: set[str] = set()
    for number, group in enumerate(groups, start=1):
        with _located("OBR", number, len(groups)):
            made = _report_group(group, sender, message)
        report = made[0]
        if report["id"] in reports:
            raise MappingError(
                "two OBR segments carry the same order number and test code (OBR-3/OBR-4)",
                field=_path("OBR", number, len(groups), "-3"),
            )
        reports.add(report["id"])
        resources += made
    return bundle(message, one_per_id(resources))  # one tube, several panels: once


def _require_oru_r01(message: Hl7Message) -> None:
    """Fail naming MSH-9 unless this is ORU^R01 (or ORU without an event)."""
    msh = message.segments[0]
    code, event = dt.present(msh.value(9, 1)).upper(), dt.present(msh.value(9, 2)).upper()
    if code != "ORU" or event not in ("R01", ""):
        raise MappingError("message type is not ORU^R01; this mapping reads ORU^R01 only",
                           field="MSH-9")


@dataclass
class _Result:
    """One Observation to be: its OBX line(s), their notes, and the SPM it follows."""

    obxs: list[Segment]
    notes: list[Segment] = field(default_factory=list)
    specimen: int | None = None  # index into the group's SPMs


@dataclass
class _GroupParts:
    """A group's body sorted into what the report is made of."""

    results: list[_Result] = field(default_factory=list)
    report_notes: list[Segment] = field(default_factory=list)
    spms: list[Segment] = field(default_factory=list)
    forms: list[Segment] = field(default_factory=list)


def _report_group(group: OrderGroup, sender: Sender, message: Hl7Message) -> list[dict]:
    """DiagnosticReport first, then its Observations and Specimens."""
    obr = group.obr
    assert obr is not None
    numbers = order_numbers(
        group.orc, obr,
        placer_authority=sender.receiver or sender.facility,
        filler_authority=sender.facility,
    )
    main = numbers.filler or numbers.placer
    if main is None:
        raise MappingError(
            "has no filler or placer order number (nor ORC-3/ORC-2), so the report cannot "
            "be identified", field="OBR-3",
        )
    effective, issued = report_times(obr, sender.offset)
    ctx = ResultContext(
        facility=sender.facility,
        offset=sender.offset,
        patient_id=sender.patient_id,
        report_key=keyed(main, dt.present(obr.value(4, 1))),
        section=obr.value(24),
        report_status=report_status(obr),
        effective=effective,
        issued=issued,
    )
    parts = _sort_body(group.body)
    specimens = _specimens(obr, parts.spms, ctx)
    observations = _observations(parts, ctx, [s["id"] for s in specimens], message)
    forms = [f for f in (_form(seg, message) for seg in parts.forms) if f]
    report = diagnostic_report(
        obr, numbers.identifiers(), ctx,
        placer=numbers.placer,
        results=[o["id"] for o in observations],
        specimens=[s["id"] for s in specimens],
        notes=parts.report_notes,
        forms=forms,
    )
    return [report, *observations, *specimens]


def _sort_body(body: list[Segment]) -> _GroupParts:
    """Walk the segments after OBR: OBX (text lines joined), the NTEs of OBR and of each
    OBX, SPMs, and ED documents. Anything else (TQ1, CTD, FT1, Z-segments) is passed over,
    and an NTE after it is not attributed to anything."""
    parts = _GroupParts()
    anchor = "OBR"
    for seg in body:
        if seg.name == "OBX":
            anchor = _add_obx(parts, seg)
        elif seg.name == "NTE":
            if anchor == "OBR":
                parts.report_notes.append(seg)
            elif anchor == "OBX":
                parts.results[-1].notes.append(seg)
        elif seg.name == "SPM":
            parts.spms.append(seg)
            anchor = "SPM"
        else:
            anchor = seg.name
    return parts


def _add_obx(parts: _GroupParts, obx: Segment) -> str:
    """File one OBX; returns what a following NTE belongs to."""
    if is_encapsulated(obx):
        parts.forms.append(obx)
        return "ED"
    spm = len(parts.spms) - 1 if parts.spms else None
    last = parts.results[-1] if parts.results else None
    if last is not None and not last.notes and last.specimen == spm and _continues(
        last.obxs[-1], obx
    ):
        last.obxs.append(obx)
    else:
        parts.results.append(_Result([obx], specimen=spm))
    return "OBX"


def _continues(previous: Segment, obx: Segment) -> bool:
    """Whether `obx` is the next line of the same text result as `previous`."""
    kind = dt.present(obx.value(2)).upper()
    return (
        kind in _TEXT_TYPES
        and dt.present(previous.value(2)).upper() == kind
        and previous.raw(3) == obx.raw(3)
        and previous.raw(4) == obx.raw(4)
    )


def _specimens(obr: Segment, spms: list[Segment], ctx: ResultContext) -> list[dict]:
    """The group's Specimens: each SPM, or OBR-15 when there is no SPM (v2.3-2.4)."""
    sc = SpecimenContext(ctx.facility, ctx.patient_id, ctx.offset, ctx.report_key)
    if spms:
        return [specimen_from_spm(spm, sc) for spm in spms]
    specimen = specimen_from_obr15(obr, sc)
    return [specimen] if specimen else []


def _observations(
    parts: _GroupParts, ctx: ResultContext, specimen_ids: list[str], message: Hl7Message
) -> list[dict]:
    """One Observation per result, each keyed by OBX-1/OBX-4 (position when needed)."""
    made: list[dict] = []
    seen: set[str] = set()
    for position, result in enumerate(parts.results, start=1):
        key = _result_key(result.obxs[0], position, seen)
        specimen = _specimen_of(result, specimen_ids)
        with _located_in(message, result.obxs[0]):
            made.append(observation(result.obxs, result.notes, key, ctx, specimen))
    return made


def _result_key(obx: Segment, position: int, seen: set[str]) -> str:
    """OBX-1 and OBX-4, or the position when OBX-1 is empty or already used."""
    set_id = dt.present(obx.value(1)) or f"#{position}"
    key = f"{set_id}/{dt.present(obx.value(4))}"
    if key in seen:
        key = f"#{position}/{dt.present(obx.value(4))}"
    seen.add(key)
    return key


def _specimen_of(result: _Result, specimen_ids: list[str]) -> str | None:
    """The SPM the OBX follows, else the group's first specimen."""
    if not specimen_ids:
        return None
    return specimen_ids[result.specimen if result.specimen is not None else 0]


def _form(obx: Segment, message: Hl7Message) -> dict | None:
    with _located_in(message, obx):
        return presented_form(obx)


def _located_in(message: Hl7Message, seg: Segment) -> AbstractContextManager[None]:
    """`_located` for one segment of the message, found by identity."""
    same = message.all(seg.name)
    number = next(i for i, s in enumerate(same, start=1) if s is seg)
    return _located(seg.name, number, len(same))


def _path(name: str, number: int, count: int, rest: str) -> str:
    """"OBX[3]-14" when the message has several OBX, "OBX-14" when it has one."""
    return f"{name}[{number}]{rest}" if count > 1 else f"{name}{rest}"


@contextmanager
def _located(name: str, number: int, count: int) -> Iterator[None]:
    """Make "OBX-14" in an error read "OBX[3]-14", so an analyst finds the very segment."""
    try:
        yield
    except MappingError as error:
        field_name = error.field or ""
        if not field_name.startswith(f"{name}-"):
            raise
        path = _path(name, number, count, field_name[len(name):])
        raise MappingError(error.message, field=path) from None
