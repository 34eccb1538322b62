"""fhir-to-hl7v2-oru@1: a FHIR R4 DiagnosticReport with its Patient and Observations as an
HL7 v2.5.1 ORU^R01^ORU_R01 (MSH, PID, ORC, OBR, NTE, then OBX and NTE per result).

Input: a Bundle of any type (collection, transaction, ...) holding a DiagnosticReport, its
subject and its results; or a DiagnosticReport whose subject and results are contained
resources (#id). References resolve by fullUrl, by Type/id, or by #id. Of a Bundle with
several reports only the first is mapped (one message per input). Fails naming the FHIR
path: no DiagnosticReport (Bundle.entry), a subject that is not a Patient in the input
(DiagnosticReport.subject), a result that is not an Observation in the input
(DiagnosticReport.result[n]): a result or patient left out would mislead a LIS.

Choices a receiver will notice:
- MSH as fhir-to-hl7v2-adt@1 writes it (CONDUIT, meta.source, 2.5.1, P); MSH-7 is the
  report's meta.lastUpdated, else its issued, else Bundle.timestamp / meta.lastUpdated
  (never the clock); MSH-10 hashes (DiagnosticReport, id, versionId, MSH-7).
- PID as fhir-to-hl7v2-adt@1 writes it; no PV1 (optional in ORU_R01).
- ORC-1 RE; ORC-2/OBR-2 the identifier typed PLAC, ORC-3/OBR-3 the one typed FILL, else
  the first other identifier, else the report's id. OBR-4 the report code (CE), OBR-7
  effective[x] (a period's start), OBR-22 issued, OBR-24 a v2-0074 category, OBR-25 the
  status (table 0123: registered I, partial A, preliminary P, final F, amended/corrected/
  appended C, cancelled X; entered-in-error and unknown fail). The conclusion is an NTE
  after OBR.
- One OBX per result, in DiagnosticReport.result order; a panel (an Observation with
  hasMember and no value) is replaced by its members; an Observation with components
  writes one OBX per component after its own (if it has a value), all with OBX-4 = its
  position. OBX-2/5/6 by value[x]: Quantity NM (SN with a comparator) with OBX-6
  code^unit^UCUM; string ST/FT/TX; CodeableConcept and boolean CWE; dateTime DTM; time
  TM; integer NM; Range and Ratio SN. OBX-3 code (CE), OBX-7 the first reference range
  ("low-high", ">low", "<high" or its text), OBX-8 interpretation in table 0078 (one
  that is not fails), OBX-11 status (table 0085: registered I, preliminary P, final F,
  amended/corrected C, cancelled X, entered-in-error W; unknown fails), OBX-14
  effective[x]. A result with dataAbsentReason and no value is OBX-11 X with the reason
  as an NTE. Observation notes are NTEs (NTE-2 L) after their OBX.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import tables
from engine.formats.hl7v2.builder import MessageBuilder
from engine.maplib import fhir_to_v2 as v2
from engine.mapping import mapping

_MAX_PANEL_DEPTH = 4


@mapping("fhir-to-hl7v2-oru@1", accepts="fhir", emits="x-application/hl7-v2+er7")
def report_to_oru(resource: dict) -> str:
    """One ORU^R01 for the (first) DiagnosticReport of the input."""
    index = v2.Resources(resource)
    report = v2.focus(resource, index, "DiagnosticReport", "report", "a report")
    patient = _subject(report, index)
    results = _results(report, index)
    builder = MessageBuilder()
    v2.write_msh(builder, _header(report, resource))
    v2.write_pid(builder, patient)
    _write_order(builder, report)
    writer = _SegmentWriter(builder)
    writer.notes([v2.text(report.resource.get("conclusion"))])
    for position, result in enumerate(results, start=1):
        writer.observation(result, position)
    return v2.encode(builder)


# ---- finding what to send ------------------------------------------------------------------


def _subject(report: v2.Located, index: v2.Resources) -> v2.Located:
    found = index.resolve(report.resource.get("subject"), report)
    if found is None or found.resource.get("resourceType") != "Patient":
        raise MappingError("does not reference a Patient that the input carries",
                           field=f"{report.path}.subject")
    return found


def _results(report: v2.Located, index: v2.Resources) -> list[v2.Located]:
    """The report's Observations in order, panels replaced by their members."""
    found: list[v2.Located] = []
    for n, ref in enumerate(v2.dicts(report.resource.get("result"))):
        found += _observations(index, ref, report, f"{report.path}.result[{n}]", 0)
    return found


def _observations(
    index: v2.Resources, ref: dict, holder: v2.Located, field: str, depth: int
) -> list[v2.Located]:
    obs = index.resolve(ref, holder)
    if obs is None or obs.resource.get("resourceType") != "Observation":
        raise MappingError("does not reference an Observation that the input carries",
                           field=field)
    members = v2.dicts(obs.resource.get("hasMember"))
    if not members or _has_value(obs.resource) or depth >= _MAX_PANEL_DEPTH:
        return [obs]
    found: list[v2.Located] = []
    for n, member in enumerate(members):
        found += _observations(index, member, obs, f"{obs.path}.hasMember[{n}]", depth + 1)
    return found


def _has_value(observation: dict) -> bool:
    return any(k.startswith("value") for k in observation) or bool(
        observation.get("component") or observation.get("dataAbsentReason")
    )


# ---- MSH, ORC, OBR -------------------------------------------------------------------------


def _header(report: v2.Located, root: dict) -> v2.Header:
    meta = v2.meta(report.resource)
    when = v2.message_time(
        (meta.get("lastUpdated"), f"{report.path}.meta.lastUpdated"),
        (report.resource.get("issued"), f"{report.path}.issued"),
        *v2.bundle_times(root),
    )
    return v2.Header(
        facility=v2.source_facility(meta) or v2.source_facility(v2.meta(root)),
        time=when,
        message_type=("ORU", "R01", "ORU_R01"),
        control_id=v2.resource_control_id(report.resource, when),
    )


def _write_order(builder: MessageBuilder, report: v2.Located) -> None:
    resource, path = report
    placer, filler = _order_numbers(resource)
    builder.set("ORC-1", "RE")
    v2.put(builder, "ORC-2", placer)
    v2.put(builder, "ORC-3", filler)
    builder.set("OBR-1", "1")
    v2.put(builder, "OBR-2", placer)
    v2.put(builder, "OBR-3", filler)
    code = v2.cwe(resource.get("code"), original_text=False)
    if code is None:
        raise MappingError("is missing; OBR-4 (universal service id) needs it",
                           field=f"{path}.code")
    v2.put(builder, "OBR-4", code)
    builder.set("OBR-7", _effective(resource, path))
    builder.set("OBR-22", v2.to_dtm(resource.get("issued"), f"{path}.issued"))
    builder.set("OBR-24", _section(resource))
    builder.set("OBR-25", v2.status(resource.get("status"), v2.REPORT_STATUS, "0123",
                                    f"{path}.status"))


def _order_numbers(report: dict) -> tuple[list | None, list | None]:
    """(placer, filler) EIs from identifiers typed PLAC / FILL; an untyped identifier is
    the filler's (the report is the filler's document), else the report's own id."""
    placer = filler = None
    others = []
    for ident in v2.dicts(report.get("identifier")):
        ei = _ei(ident)
        code = _type_code(ident)
        if ei is None:
            continue
        if code == "PLAC" and placer is None:
            placer = ei
        elif code == "FILL" and filler is None:
            filler = ei
        else:
            others.append(ei)
    if filler is None:
        filler = others[0] if others else ([v2.text(report.get("id"))] if report.get("id")
                                           else None)
    return placer, filler


def _ei(identifier: dict) -> list | None:
    value = v2.text(identifier.get("value"))
    if not value:
        return None
    return [value, *v2.authority(v2.text(identifier.get("system")))]


def _type_code(identifier: dict) -> str:
    concept = identifier.get("type")
    codings = v2.dicts(concept.get("coding")) if isinstance(concept, dict) else []
    return next((v2.text(c.get("code")) for c in codings
                 if c.get("system") == tables.V2_0203), "")


def _section(report: dict) -> str:
    """OBR-24 from a category coded in v2-0074 (diagnostic service section)."""
    for concept in v2.dicts(report.get("category")):
        for coding in v2.dicts(concept.get("coding")):
            if coding.get("system") == tables.V2_0074 and v2.text(coding.get("code")):
                return v2.text(coding["code"])
    return ""


def _effective(resource: dict, path: str) -> str:
    """effectiveDateTime, effectiveInstant, or a period's start, as a DTM."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in resource:
            return v2.to_dtm(resource[key], f"{path}.{key}")
    period = resource.get("effectivePeriod")
    if isinstance(period, dict):
        return v2.to_dtm(period.get("start"), f"{path}.effectivePeriod.start")
    return ""


# ---- OBX and NTE ----------------------------------------------------------------------------


class _SegmentWriter:
    """Writes OBX and NTE segments in message order, numbering each kind as it goes."""

    def __init__(self, builder: MessageBuilder) -> None:
        self.builder = builder
        self.obx = 0
        self.nte = 0

    def notes(self, texts: list[str]) -> None:
        """One NTE per text (NTE-1 counts within the group, NTE-2 L: the filler's)."""
        for n, note in enumerate((t for t in texts if t), start=1):
            self.nte += 1
            self.builder.set(f"NTE[{self.nte}]-1", str(n))
            self.builder.set(f"NTE[{self.nte}]-2", "L")
            self.builder.set(f"NTE[{self.nte}]-3", note)

    def observation(self, obs: v2.Located, position: int) -> None:
        resource, path = obs
        components = v2.dicts(resource.get("component"))
        sub_id = str(position) if components else ""
        result_status = v2.status(resource.get("status"), v2.RESULT_STATUS, "0085",
                                  f"{path}.status")
        when = _effective(resource, path)
        if not components or _has_own_value(resource):
            value = v2.obx_value(resource, path)
            absent = _absent_reason(resource) if value is None else ""
            self._obx(resource, path, value, sub_id, "X" if absent else result_status, when)
            self.notes([absent])
        for n, component in enumerate(components):
            where = f"{path}.component[{n}]"
            self._obx(component, where, v2.obx_value(component, where), sub_id,
                      result_status, when)
        self.notes([v2.text(note.get("text")) for note in v2.dicts(resource.get("note"))])

    def _obx(self, element: dict, path: str, value: v2.ObxValue | None, sub_id: str,
             result_status: str, when: str) -> None:
        code = v2.cwe(element.get("code"), original_text=False)
        if code is None:
            raise MappingError("is missing; OBX-3 (observation identifier) needs it",
                               field=f"{path}.code")
        self.obx += 1
        seg, b = f"OBX[{self.obx}]", self.builder
        b.set(f"{seg}-1", str(self.obx))
        v2.put(b, f"{seg}-3", code)
        b.set(f"{seg}-4", sub_id)
        if value is not None:
            b.set(f"{seg}-2", value.value_type)
            v2.put(b, f"{seg}-5", value.value)
            v2.put(b, f"{seg}-6", value.units)
        b.set(f"{seg}-7", v2.reference_range(element, path))
        for n, flag in enumerate(v2.abnormal_flags(element, path), start=1):
            b.set(f"{seg}-8[{n}]", flag)
        b.set(f"{seg}-11", result_status)
        b.set(f"{seg}-14", when)


def _has_own_value(observation: dict) -> bool:
    return any(k.startswith("value") for k in observation)


def _absent_reason(observation: dict) -> str:
    """The dataAbsentReason as words, for the NTE beside a result without a value."""
    reason = observation.get("dataAbsentReason")
    if not isinstance(reason, dict):
        return ""
    label = v2.text(reason.get("text")) or next(
        (v2.text(c.get("display")) or v2.text(c.get("code"))
         for c in v2.dicts(reason.get("coding"))), "")
    return f"No value: {label}" if label else "No value"
