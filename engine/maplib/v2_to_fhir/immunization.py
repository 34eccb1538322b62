"""RXA/RXR/OBX dose groups as Immunization, with the parties and observations around a
dose: the administering and ordering Practitioners, the manufacturer Organization, the
Location given at, OBX as Observations that are part of the dose (reactions also as
Immunization.reaction), and a forecast (OBX 30979-9 and friends) as an
ImmunizationRecommendation.

Reads as `engine.maplib.v2_immunization` reads (CDC's 2.5.1 IG and the v2.3.1/2.4
registry submissions before it), so an Immunization keeps the id hl7v2-vxu-to-fhir@1
gives the same dose. Where that module fails a field (a completion status outside table
0322, an amount that is not a number), this one warns and maps the rest of the dose.
"""

from __future__ import annotations

from engine.errors import MappingError
from engine.formats.hl7v2 import Repetition, Segment, tables
from engine.formats.hl7v2 import datatypes as dt
from engine.leniency import tolerate
from engine.maplib import v2_immunization as imm
from engine.maplib.fhir import compact, resource_id
from engine.maplib.v2_codes import (
    Bound,
    codeable_concepts,
    coding_system,
    cwe_to_codeable_concept,
    first_concept,
)
from engine.maplib.v2_to_fhir import people, results
from engine.maplib.v2_to_fhir.frame import Build

DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

# OBX-3 LOINC codes with an Immunization element of their own.
LOINC_REACTION = "31044-1"  # reaction
LOINC_DOSE_NUMBER = "30973-2"  # dose number in series
LOINC_SERIES = "59779-9"  # immunization schedule used
# ... and those of a forecast (CDC IG, the evaluation and recommendation OBX).
LOINC_DUE_VACCINE = "30979-9"  # vaccines due next
LOINC_DUE_DATE = "30980-7"  # date vaccine due
LOINC_EARLIEST = "30981-5"  # earliest date to give
LOINC_LATEST = "59777-3"  # latest date next dose may be given
LOINC_OVERDUE = "59778-1"  # date dose is overdue
LOINC_FORECAST_REASON = "30982-3"  # reason applied by forecast logic
LOINC_SERIES_STATUS = "59783-1"  # status in immunization series
FORECAST_CODES = frozenset({LOINC_DUE_VACCINE, LOINC_DUE_DATE, LOINC_EARLIEST, LOINC_LATEST,
                            LOINC_OVERDUE, LOINC_FORECAST_REASON, LOINC_SERIES_STATUS})
DATE_CRITERION = "http://loinc.org"
FORECAST_STATUS = "http://terminology.hl7.org/CodeSystem/immunization-recommendation-status"
VACCINE = Bound(tables.CVX)
# Route and site read a code sent without a system in their table only when the table
# lists it (v1 put every such code in the table, so "ARM" became a v2-0162 code).
ROUTE = Bound(tables.V2_0162, tables.ROUTE_OF_ADMINISTRATION)
SITE = Bound(tables.V2_0163, tables.ADMINISTRATIVE_SITE)


def immunizations(b: Build) -> list[dict]:
    """One Immunization per RXA (each guarded: a dose that cannot be mapped is a warning
    naming its RXA, the others still map), with everything around it."""
    from_visit = imm.visit_eligibility(b.message)
    made: list[dict] = []
    for group in imm.dose_groups(b.message):
        try:  # the dose's own field names locate its warnings ("RXA[2]-5")
            found = dose(b, group, from_visit)
        except MappingError as error:
            found = tolerate(error)
        if found is not None:
            made.append(found)
    return made


def dose(b: Build, group: imm.DoseGroup, from_visit: dict | None) -> dict | None:
    """The Immunization of one dose group, kept in `b`; a forecast-only group (RXA-5 998
    "no vaccine administered" with forecast OBX) gives its ImmunizationRecommendation."""
    assert b.patient is not None
    observations = [obx for _, obx in group.observations]
    if _is_forecast(group):
        forecast = recommendation(b, group)
        results.observations(b, observations, based_on=[forecast] if forecast else None,
                             context=results.Context(key=_forecast_key(b, group),
                                                     otherwise="survey"))
        return None
    rid, _ = imm.immunization_id(group, b.facility, b.patient["id"])
    if any(r["id"] == rid for r in b.resources("Immunization")):
        tolerate(MappingError("names a dose this message already holds; the later one "
                              "is kept", field=group.field(5)))
    status = _status(b, group)
    source = imm.information_source(group, b.facility)
    observed = imm.observations(group, b.facility, b.offset)
    if not observed["programEligibility"] and from_visit is not None and (
            source.get("primarySource", True)):
        observed["programEligibility"] = [from_visit]
    resource = compact({
        "resourceType": "Immunization",
        "id": rid,
        "identifier": imm.order_identifiers(group, b.facility),
        "status": status.code,
        "statusReason": status.reason,
        "vaccineCode": _vaccine(b, group),
        "patient": b.patient_ref(),
        "encounter": b.encounter_ref(),
        **_occurrence(b, group),
        "recorded": _recorded(b, group),
        **source,
        "location": _location(b, group),
        "manufacturer": _manufacturer(b, group),
        "lotNumber": _lots(group),
        "expirationDate": dt.to_fhir_date(group.rxa.value(16), group.field(16)),
        "route": first_concept(group.rxr, 1, b.facility, ROUTE),
        "site": first_concept(group.rxr, 2, b.facility, SITE),
        "doseQuantity": _dose_quantity(group),
        "performer": _performers(b, group),
        "note": imm.notes(group, status),
        "reasonCode": codeable_concepts(group.rxa, 19, b.facility),
        "isSubpotent": True if status.partial else None,
        "subpotentReason": [{"coding": [{"system": imm.SUBPOTENT_REASON, "code": "partial",
                                         "display": "Partial Dose"}]}]
        if status.partial else None,
        **observed,
        "protocolApplied": _protocol(group),
    })
    kept = b.add(resource)
    assert kept is not None
    # keyed within the dose, so two doses' OBX with the same sub-id stay apart
    dose_key = {"system": "urn:conduit:immunization", "value": kept["id"]}
    made = results.observations(b, observations,
                                context=results.Context(key=dose_key, otherwise="survey"))
    for observation in made:
        observation.setdefault("partOf", []).append(b.ref(kept))
    if LOINC_DUE_VACCINE in {dt.present(obx.value(3, 1)) for obx in observations}:
        recommendation(b, group)  # a registry's forecast sent after the dose it follows
    reactions = [compact({"date": o.get("effectiveDateTime"), "detail": b.ref(o)})
                 for o in made if _code_of(o) == LOINC_REACTION]
    if reactions:
        kept["reaction"] = reactions
    return kept


# ---- parts of the dose --------------------------------------------------------------------


def _status(b: Build, group: imm.DoseGroup) -> imm.DoseStatus:
    """As `v2_immunization.dose_status` reads it (RXA-21 D entered-in-error, else RXA-20
    through table 0322, empty CP), except that a code outside tables 0323/0322 is a
    warning: an unknown RXA-21 reads as an add, an unknown RXA-20 as completed, or
    not-done when RXA-18 gives a refusal reason."""
    action = dt.present(group.rxa.value(21)).upper()
    if action and action not in imm.ACTION_CODES:
        tolerate(MappingError("is not a code from HL7 table 0323 (A, U, D); read as A",
                              field=group.field(21)))
    if action == "D":
        return imm.DoseStatus("entered-in-error")
    completion = dt.present(group.rxa.value(20)).upper() or "CP"
    if completion not in imm.COMPLETION_STATUS:
        tolerate(MappingError("is not a code from HL7 table 0322 (CP, RE, NA, PA)",
                              field=group.field(20)))
        reason = imm.refusal_reason(group.rxa, b.facility)
        return imm.DoseStatus("not-done", reason) if reason else imm.DoseStatus("completed")
    status = imm.COMPLETION_STATUS[completion]
    reason = imm.refusal_reason(group.rxa, b.facility) if status == "not-done" else None
    return imm.DoseStatus(status, reason, partial=completion == "PA")


def _recorded(b: Build, group: imm.DoseGroup) -> str | None:
    """RXA-22 system entry time, for an add (RXA-21 A, empty or unknown): on an update
    it is the update's time. Else ORC-9 transaction time."""
    when = None
    if dt.present(group.rxa.value(21)).upper() not in ("U", "D"):
        when = dt.to_fhir_datetime(group.rxa.value(22), group.field(22), b.offset)
    if when is None and group.orc is not None:
        when = dt.to_fhir_datetime(group.orc.value(9), f"{group.orc_path}-9", b.offset)
    return when


def _vaccine(b: Build, group: imm.DoseGroup) -> dict:
    """RXA-5 (both triplets; CVX when no system is named). A sender that repeats RXA-5
    (which does not repeat: CPT first, CVX after a ~) has each repetition's codes kept as
    more codings of the one vaccine, so the CVX code US Core asks for is not lost. Empty,
    it is a warning and the vaccine is marked unknown (R4 requires vaccineCode)."""
    concept = first_concept(group.rxa, 5, b.facility, imm.VACCINE)
    if concept is not None:
        codings = concept.setdefault("coding", [])
        for rep in group.rxa.repetitions(5)[1:]:
            more = cwe_to_codeable_concept(rep, b.facility, imm.VACCINE) or {}
            codings += [c for c in more.get("coding", []) if c not in codings]
        if not codings:
            concept.pop("coding")
        return concept
    tolerate(MappingError("is empty; the vaccine is recorded as unknown", field=group.field(5)))
    return {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}


def _occurrence(b: Build, group: imm.DoseGroup) -> dict:
    """RXA-3 when it can be read, else RXA-4 (end of administration), else the
    occurrence is unknown, with a warning (R4 requires one)."""
    for number in (3, 4):
        when = dt.to_fhir_datetime(group.rxa.value(number), group.field(number), b.offset)
        if when:
            return {"occurrenceDateTime": when}
    if not dt.present(group.rxa.value(3)):  # an unreadable one was already reported
            tolerate(MappingError("is empty; the date given is recorded as unknown",
                              field=group.field(3)))
    return {"occurrenceString": "unknown"}


def _dose_quantity(group: imm.DoseGroup) -> dict | None:
    try:
        return imm.dose_quantity(group)
    except MappingError as error:
        return tolerate(error)


def _lots(group: imm.DoseGroup) -> str | None:
    """RXA-15: several lots (a combination kit) joined with " / "."""
    lots = [dt.present(r.value(1)) for r in group.rxa.repetitions(15)]
    return " / ".join(lot for lot in lots if lot) or None


def _manufacturer(b: Build, group: imm.DoseGroup) -> dict | None:
    """RXA-17 as an Organization: the MVX code (or the sender's system) as identifier."""
    rep = dt.first_rep(group.rxa, 17)
    if rep is None:
        return None
    code, name, system = (dt.present(rep.value(i)) for i in (1, 2, 3))
    identifier = None
    if code:
        identifier = {"system": coding_system(system, b.facility) if system else tables.MVX,
                      "value": code}
    org = people.organization(b, name or code, identifier)
    return b.ref(org) if org else None


def _location(b: Build, group: imm.DoseGroup) -> dict | None:
    """RXA-27 administer-at (PL, v2.6+), else RXA-11 (LA2: point of care, room, bed,
    facility) as a Location."""
    for number in (27, 11):
        rep = dt.first_rep(group.rxa, number)
        if rep is not None:
            found = _place(b, rep)
            if found is not None:
                return b.ref(found)
    return None


def _place(b: Build, rep: Repetition) -> dict | None:
    """A Location for a PL/LA2: its point of care / room / bed within its facility (.4),
    else the facility alone."""
    parts = [dt.present(rep.value(i)) for i in (1, 2, 3)]
    facility = dt.present(rep.value(4, 1))
    name = " / ".join(p for p in parts if p) or facility
    if not name:
        return None
    key = {"system": f"urn:conduit:location:{facility or b.facility}", "value": name.upper()}
    return b.add(compact({
        "resourceType": "Location",
        "id": resource_id("Location", b.facility, key),
        "name": name,
        "mode": "instance",
    }), merge=True)


_ADMINISTERING = {"system": tables.V2_0443, "code": "AP", "display": "Administering Provider"}
_ORDERING = {"system": tables.V2_0443, "code": "OP", "display": "Ordering Provider"}


def _performers(b: Build, group: imm.DoseGroup) -> list[dict]:
    """RXA-10 administering (AP) and ORC-12 ordering (OP) providers as Practitioners."""
    people_named: list[tuple[dict, Repetition]] = [
        (_ADMINISTERING, rep) for rep in group.rxa.repetitions(10)]
    if group.orc is not None:
        people_named += [(_ORDERING, rep) for rep in group.orc.repetitions(12)]
    found = []
    for function, rep in people_named:
        person = people.practitioner(b, rep)
        if person is not None:
            found.append({"function": {"coding": [dict(function)]}, "actor": b.ref(person)})
    return found


def _protocol(group: imm.DoseGroup) -> list[dict]:
    """OBX 30973-2 dose number (and 59779-9 series) as protocolApplied."""
    number = series = None
    for _, obx in group.observations:
        code = dt.present(obx.value(3, 1))
        if code == LOINC_DOSE_NUMBER:
            number = dt.present(obx.value(5, 1))
        elif code == LOINC_SERIES:
            series = dt.present(obx.value(5, 2)) or dt.present(obx.value(5, 1))
    if not number:
        return []
    whole = number.isdecimal() and 1 <= int(number) <= 2**31 - 1  # a FHIR positiveInt
    dose_number = ({"doseNumberPositiveInt": int(number)} if whole
                   else {"doseNumberString": number})
    return [compact({"series": series, **dose_number})]


def _code_of(observation: dict) -> str:
    codings = observation.get("code", {}).get("coding", [])
    return codings[0].get("code", "") if codings else ""


# ---- forecast -----------------------------------------------------------------------------


def _is_forecast(group: imm.DoseGroup) -> bool:
    """A group whose OBX are a forecast (vaccines due next) rather than a given dose."""
    codes = {dt.present(obx.value(3, 1)) for _, obx in group.observations}
    return LOINC_DUE_VACCINE in codes and dt.present(group.rxa.value(5, 1)) == "998"


def recommendation(b: Build, group: imm.DoseGroup) -> dict | None:
    """A forecast group's ImmunizationRecommendation: one recommendation per OBX-4 sub-id,
    vaccine 30979-9, dates 30980-7 due / 30981-5 earliest / 59777-3 latest / 59778-1
    overdue, 30982-3 reason, 59783-1 series status as forecastStatus."""
    assert b.patient is not None
    parts: dict[str, dict[str, tuple[str, Segment]]] = {}
    for path, obx in group.observations:
        code = dt.present(obx.value(3, 1))
        if code in FORECAST_CODES:
            parts.setdefault(dt.present(obx.value(4)), {})[code] = (path, obx)
    recs = [r for r in (_recommendation(b, p) for p in parts.values()) if r]
    if not recs:
        return None
    when = dt.to_fhir_datetime(group.rxa.value(3), group.field(3), b.offset)
    key = _forecast_key(b, group)
    resource = compact({
        "resourceType": "ImmunizationRecommendation",
        "id": resource_id("ImmunizationRecommendation", b.facility, key),
        "patient": b.patient_ref(),
        "date": when or dt.to_fhir_datetime(b.sent, "MSH-7", b.offset),
        "recommendation": recs,
    })
    if "date" not in resource:
        raise MappingError("is empty: the forecast has no date", field=group.field(3))
    return b.add(resource)


def _forecast_key(b: Build, group: imm.DoseGroup) -> dict:
    """A forecast is the registry's for this patient on that day: one per RXA-3."""
    patient = b.patient["id"] if b.patient is not None else ""
    return {"system": "urn:conduit:immunization-forecast",
            "value": f"{patient}|{dt.present(group.rxa.value(3))}"}


_CRITERIA = ((LOINC_DUE_DATE, "Date vaccine due"),
             (LOINC_EARLIEST, "Earliest date to give"),
             (LOINC_LATEST, "Latest date next dose may be given"),
             (LOINC_OVERDUE, "Date when overdue for immunization"))


def _recommendation(b: Build, parts: dict[str, tuple[str, Segment]]) -> dict | None:
    due = parts.get(LOINC_DUE_VACCINE)
    vaccine = first_concept(due[1], 5, b.facility, VACCINE) if due else None
    if vaccine is None:
        return None
    criteria = []
    for code, display in _CRITERIA:
        if code in parts:
            path, obx = parts[code]
            when = dt.to_fhir_datetime(obx.value(5), f"{path}-5", b.offset)
            if when:
                criteria.append({"code": {"coding": [{"system": DATE_CRITERION, "code": code,
                                                      "display": display}]},
                                 "value": when})
    status = None
    if LOINC_SERIES_STATUS in parts:
        status = first_concept(parts[LOINC_SERIES_STATUS][1], 5, b.facility)
    reason = None
    if LOINC_FORECAST_REASON in parts:
        reason = first_concept(parts[LOINC_FORECAST_REASON][1], 5, b.facility)
    return compact({
        "vaccineCode": [vaccine],
        "forecastStatus": status or {"coding": [{"system": FORECAST_STATUS, "code": "due",
                                                 "display": "Due"}]},
        "forecastReason": [reason] if reason else None,
        "dateCriterion": criteria,
    })
