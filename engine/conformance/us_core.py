"""US Core profile rules (written from US Core 6.1.0's published profiles; where 3.1.1
asks the same, it is met too), as plain checks on a resource's JSON.

Each profile checks what a receiver validating against it would refuse: mandatory
elements (min 1, including must-support elements with a minimum of 1), the slices that
decide the profile (an Observation's laboratory or vital-signs category), required
bindings, and the profile's invariants (`us-core-6`, `con-4`, `ait-1`, ...). Reasons
name the element and the profile, never a value:
`Bundle.entry[2].resource(Observation).category: US Core Laboratory Result Observation
requires a laboratory category`.

Which profile a resource is held to: the profiles it declares (meta.profile), and those
that "claim" it by its category or code (a vital-signs category, or a vital-sign LOINC
code without a laboratory category, claims an Observation for Vital Signs; a laboratory
category for Laboratory Result; another category for Simple Observation). A resource
that no US Core profile claims is held to the first profile of its type the gate names
that takes it as a fallback (an uncategorised Observation among a DiagnosticReport's
results to Laboratory Result, any other to Simple Observation; a Condition to Encounter
Diagnosis, a DiagnosticReport to Laboratory), so it fails for want of that category;
one claimed only by a profile the gate does not name is not checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

Found = Iterator[tuple[str, str]]  # (location inside the resource, what is wrong)
Rule = Callable[[dict[str, Any], "Context"], Found]

SHORTHAND = "us-core"
CANONICAL = "http://hl7.org/fhir/us/core/StructureDefinition/"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

# The vital-sign LOINC codes of FHIR R4's vital signs profiles and US Core's additions.
BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
VITAL_CODES = frozenset({
    "85353-1",  # vital signs panel
    "9279-1",  # respiratory rate
    "8867-4",  # heart rate
    "2708-6", "59408-5",  # oxygen saturation (arterial; by pulse oximetry)
    "8310-5",  # body temperature
    "8302-2",  # body height
    "9843-4",  # head circumference
    "29463-7",  # body weight
    "39156-5",  # body mass index
    BP_PANEL, SYSTOLIC, DIASTOLIC,
    "59576-9",  # BMI percentile per age and sex (pediatric)
    "77606-2",  # weight-for-length percentile (pediatric)
    "8289-1",  # head circumference percentile (pediatric)
    "3150-0", "3151-8",  # inhaled oxygen concentration; flow rate
})
FINISHED_REPORT = frozenset({"partial", "preliminary", "final", "amended", "corrected",
                             "appended"})


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What a rule may look up beyond its resource: the resource type each reference in
    the Bundle resolves to (by fullUrl and by Type/id), and which resources are some
    DiagnosticReport's results."""

    types: dict[str, str] = dataclasses.field(default_factory=dict)
    urls: dict[str, str] = dataclasses.field(default_factory=dict)  # Type/id -> fullUrl
    results: frozenset[str] = frozenset()  # references in DiagnosticReport.result

    @classmethod
    def of(cls, resources: Iterable[tuple[str | None, dict[str, Any]]]) -> Context:
        types: dict[str, str] = {}
        urls: dict[str, str] = {}
        results: set[str] = set()
        for full_url, resource in resources:
            kind, rid = resource.get("resourceType"), resource.get("id")
            if not isinstance(kind, str):
                continue
            if isinstance(full_url, str):
                types[full_url] = kind
            if isinstance(rid, str):
                types[f"{kind}/{rid}"] = kind
                if isinstance(full_url, str):
                    urls[f"{kind}/{rid}"] = full_url
            if kind == "DiagnosticReport":
                results.update(ref["reference"] for ref in listed(resource.get("result"))
                               if isinstance(ref, dict) and isinstance(ref.get("reference"),
                                                                         str))
        return cls(types, urls, frozenset(results))

    def type_of(self, reference: Any) -> str | None:
        """The resource type a Reference points at, when it can be told."""
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return None
        ref = reference["reference"]
        if ref in self.types:
            return self.types[ref]
        head = ref.rsplit("/", 2)
        return head[-2] if len(head) >= 2 and head[-2][:1].isupper() else None

    def is_result(self, resource: dict[str, Any]) -> bool:
        """Whether a DiagnosticReport in the Bundle lists `resource` among its results."""
        key = f"{resource.get('resourceType')}/{resource.get('id')}"
        return key in self.results or self.urls.get(key) in self.results


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    name: str  # as a gate names it: us-core-patient
    title: str  # as reasons say it: US Core Patient
    type: str  # the resource type it constrains
    rules: tuple[Rule, ...]
    claims: Callable[[dict[str, Any]], bool] | None = None  # None: every resource of type
    claim: tuple[str, str] = ("", "")  # where and what a resource lacks to be claimed
    # whether a resource no profile claims is held to this one (the first named that
    # says so, else the first named); None: yes
    fallback: Callable[[dict[str, Any], Context], bool] | None = None

    def check(self, resource: dict[str, Any], ctx: Context) -> Iterator[tuple[str, str]]:
        for rule in self.rules:
            for loc, text in rule(resource, ctx):
                yield loc, f"{self.title} {text}"


# ---- reading JSON -----------------------------------------------------------------


def present(value: Any) -> bool:
    return value not in (None, "", [], {})


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def codings(concepts: Any) -> Iterator[tuple[Any, Any]]:
    """(system, code) of every coding of a CodeableConcept or a list of them."""
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        if isinstance(concept, dict):
            for coding in listed(concept.get("coding")):
                if isinstance(coding, dict):
                    yield coding.get("system"), coding.get("code")


def has_code(concepts: Any, system: str, codes: Iterable[str]) -> bool:
    wanted = frozenset(codes)
    return any(s == system and c in wanted for s, c in codings(concepts))


def has_choice(resource: dict[str, Any], prefix: str) -> bool:
    """Whether some `prefix[x]` element (valueQuantity, effectiveDateTime ...) is there."""
    n = len(prefix)
    return any(key.startswith(prefix) and key[n:n + 1].isupper() and present(value)
               for key, value in resource.items())


def code_of(resource: dict[str, Any], system: str) -> set[str]:
    return {c for s, c in codings(resource.get("code")) if s == system}


# ---- rules ------------------------------------------------------------------------


def required(element: str, what: str) -> Rule:
    def rule(r: dict[str, Any], ctx: Context) -> Found:
        if not present(r.get(element)):
            yield element, f"requires {what}"
    return rule


def choice(prefix: str, what: str, when: Callable[[dict[str, Any]], bool] | None = None
           ) -> Rule:
    def rule(r: dict[str, Any], ctx: Context) -> Found:
        if (when is None or when(r)) and not has_choice(r, prefix):
            yield f"{prefix}[x]", f"requires {what}"
    return rule


def each(element: str, sub: str, what: str) -> Rule:
    """Every repetition of `element` has `sub` (a must-support child of minimum 1)."""
    def rule(r: dict[str, Any], ctx: Context) -> Found:
        for i, item in enumerate(listed(r.get(element))):
            if isinstance(item, dict) and not present(item.get(sub)):
                yield f"{element}[{i}].{sub}", f"requires {what}"
    return rule


def bound(element: str, system: str, codes: Iterable[str], what: str) -> Rule:
    """A required binding on a CodeableConcept: when present, a code from the set."""
    allowed = frozenset(codes)

    def rule(r: dict[str, Any], ctx: Context) -> Found:
        if present(r.get(element)) and not has_code(r[element], system, allowed):
            yield element, f"requires {what} ({system})"
    return rule


def sliced(element: str, system: str, codes: Iterable[str], what: str) -> Rule:
    """A mandatory slice: some repetition of `element` carries one of `codes`."""
    allowed = frozenset(codes)

    def rule(r: dict[str, Any], ctx: Context) -> Found:
        if not has_code(r.get(element), system, allowed):
            yield element, f"requires {what}"
    return rule


def refers(element: str, types: Sequence[str]) -> Rule:
    """A Reference that resolves must resolve to one of `types`."""
    def rule(r: dict[str, Any], ctx: Context) -> Found:
        kind = ctx.type_of(r.get(element))
        if kind is not None and kind not in types:
            yield element, f"requires a reference to {' or '.join(types)}"
    return rule


def identifiers(element: str = "identifier") -> tuple[Rule, ...]:
    return (each(element, "system", "a system on every identifier"),
            each(element, "value", "a value on every identifier"))


def subject(element: str = "subject") -> tuple[Rule, ...]:
    return (required(element, f"a {element} (the patient)"), refers(element, ("Patient",)))


def _name_parts(r: dict[str, Any], ctx: Context) -> Found:
    """us-core-6: every name has a family or a given name (or a data-absent-reason)."""
    for i, name in enumerate(listed(r.get("name"))):
        if isinstance(name, dict) and not (present(name.get("family"))
                                           or present(name.get("given"))
                                           or present(name.get("extension"))):
            yield f"name[{i}]", "requires a family or a given name (us-core-6)"


def _value_or_absent(r: dict[str, Any], ctx: Context) -> Found:
    """us-core-2 / vs-2: with no component or hasMember, a value or a dataAbsentReason."""
    if not (present(r.get("component")) or present(r.get("hasMember"))
            or has_choice(r, "value") or present(r.get("dataAbsentReason"))):
        yield "value[x]", "requires a value or a dataAbsentReason (us-core-2)"


def _ucum(r: dict[str, Any], ctx: Context) -> Found:
    """vs-3: a vital sign's quantities are coded in UCUM."""
    places = [("valueQuantity", r.get("valueQuantity"))] + [
        (f"component[{i}].valueQuantity", c.get("valueQuantity"))
        for i, c in enumerate(listed(r.get("component"))) if isinstance(c, dict)]
    for loc, quantity in places:
        if isinstance(quantity, dict) and (quantity.get("system") != UCUM
                                           or not present(quantity.get("code"))):
            yield loc, "requires a UCUM unit (system and code)"


def _vital_code(r: dict[str, Any], ctx: Context) -> Found:
    if not code_of(r, LOINC) & VITAL_CODES:
        yield "code", "requires a vital-sign LOINC code"


def _blood_pressure(r: dict[str, Any], ctx: Context) -> Found:
    """A blood pressure panel carries its systolic and diastolic components."""
    if BP_PANEL not in code_of(r, LOINC):
        return
    parts = {c for comp in listed(r.get("component")) if isinstance(comp, dict)
             for s, c in codings(comp.get("code")) if s == LOINC}
    for code, what in ((SYSTOLIC, "systolic"), (DIASTOLIC, "diastolic")):
        if code not in parts:
            yield "component", f"requires a {what} component (LOINC {code})"


def _condition_status(r: dict[str, Any], ctx: Context) -> Found:
    """con-3, con-4, con-5: how clinicalStatus goes with verification and abatement."""
    verification = r.get("verificationStatus")
    clinical = r.get("clinicalStatus")
    erroneous = has_code(verification, CONDITION_VERIFICATION, {"entered-in-error"})
    if erroneous and present(clinical):
        yield "clinicalStatus", "requires no clinicalStatus when entered in error (con-5)"
    if (not erroneous and not present(clinical)
            and has_code(r.get("category"), CONDITION_CATEGORY, {"problem-list-item"})):
        yield "clinicalStatus", "requires a clinicalStatus on a problem-list item (con-3)"
    if has_choice(r, "abatement") and present(clinical) and not has_code(
            clinical, CONDITION_CLINICAL, {"inactive", "resolved", "remission"}):
        yield "clinicalStatus", ("requires an inactive, resolved or remission "
                                 "clinicalStatus when abated (con-4)")


def _allergy_status(r: dict[str, Any], ctx: Context) -> Found:
    """ait-1 and ait-2: clinicalStatus unless (and only unless) entered in error."""
    erroneous = has_code(r.get("verificationStatus"), ALLERGY_VERIFICATION,
                         {"entered-in-error"})
    if erroneous and present(r.get("clinicalStatus")):
        yield "clinicalStatus", "requires no clinicalStatus when entered in error (ait-2)"
    if not erroneous and not present(r.get("clinicalStatus")):
        yield "clinicalStatus", "requires a clinicalStatus unless entered in error (ait-1)"


def _attachment(r: dict[str, Any], ctx: Context) -> Found:
    """us-core-6 (DocumentReference): every content's attachment has data or a url."""
    for i, content in enumerate(listed(r.get("content"))):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict) and not (present(attachment.get("data"))
                                                 or present(attachment.get("url"))):
            yield f"content[{i}].attachment", "requires data or a url"


def _on_behalf(r: dict[str, Any], ctx: Context) -> Found:
    """provenance-1: an agent who is a Practitioner or Device acts on behalf of an
    Organization."""
    for i, agent in enumerate(listed(r.get("agent"))):
        if (isinstance(agent, dict) and ctx.type_of(agent.get("who"))
                in ("Practitioner", "Device") and not present(agent.get("onBehalfOf"))):
            yield f"agent[{i}].onBehalfOf", ("requires onBehalfOf when the agent is a "
                                            "Practitioner or Device (provenance-1)")


def _relation_or_name(r: dict[str, Any], ctx: Context) -> Found:
    """us-core-14: a RelatedPerson has a name or a relationship."""
    if not (present(r.get("name")) or present(r.get("relationship"))):
        yield "name", "requires a name or a relationship (us-core-14)"


def _performed(r: dict[str, Any]) -> bool:
    return r.get("status") in ("completed", "in-progress")


def _finished(r: dict[str, Any]) -> bool:
    return r.get("status") in FINISHED_REPORT


# ---- claims -------------------------------------------------------------------------


def _lab(r: dict[str, Any]) -> bool:
    return has_code(r.get("category"), OBSERVATION_CATEGORY, {"laboratory"})


def _vital(r: dict[str, Any]) -> bool:
    """A vital-signs category, or a vital-sign code on an Observation no laboratory
    category claims (2708-6, arterial oxygen saturation, is also a blood-gas test)."""
    return (has_code(r.get("category"), OBSERVATION_CATEGORY, {"vital-signs"})
            or (bool(code_of(r, LOINC) & VITAL_CODES) and not _lab(r)))


def _other_observation(r: dict[str, Any]) -> bool:
    """An Observation of another category (survey, social-history, exam, ...)."""
    return present(r.get("category")) and not (
        _lab(r) or has_code(r.get("category"), OBSERVATION_CATEGORY, {"vital-signs"}))


def _encounter_diagnosis(r: dict[str, Any]) -> bool:
    return has_code(r.get("category"), CONDITION_CATEGORY, {"encounter-diagnosis"})


def _problem(r: dict[str, Any]) -> bool:
    return (has_code(r.get("category"), CONDITION_CATEGORY, {"problem-list-item"})
            or has_code(r.get("category"), US_CORE_CONDITION_CATEGORY, {"health-concern"}))


def _lab_report(r: dict[str, Any]) -> bool:
    return has_code(r.get("category"), V2_0074, {"LAB"})


def _note_report(r: dict[str, Any]) -> bool:
    return present(r.get("category")) and not _lab_report(r)


# ---- the profiles -------------------------------------------------------------------

_CONDITION = (
    required("code", "a code"), *subject(),
    bound("clinicalStatus", CONDITION_CLINICAL,
          ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
          "a clinicalStatus from condition-clinical"),
    bound("verificationStatus", CONDITION_VERIFICATION,
          ("unconfirmed", "provisional", "differential", "confirmed", "refuted",
           "entered-in-error"), "a verificationStatus from condition-ver-status"),
    _condition_status,
)
_ISSUED = "when partial, preliminary, final, amended, corrected or appended"
_REPORT = (required("status", "a status"), required("code", "a code"), *subject(),
           choice("effective", f"an effective time {_ISSUED} (us-core-8)", _finished))


def _issued(r: dict[str, Any], ctx: Context) -> Found:
    """us-core-9 (laboratory reports): an issued time once there is a result."""
    if _finished(r) and not present(r.get("issued")):
        yield "issued", f"requires an issued time {_ISSUED} (us-core-9)"

PROFILES: tuple[Profile, ...] = (
    Profile("us-core-patient", "US Core Patient", "Patient", (
        required("identifier", "an identifier"), *identifiers(),
        required("name", "a name"), _name_parts,
        required("gender", "a gender"),
        each("telecom", "system", "a system on every telecom"),
        each("telecom", "value", "a value on every telecom"),
    )),
    Profile("us-core-encounter", "US Core Encounter", "Encounter", (
        *identifiers(), required("status", "a status"), required("class", "a class"),
        required("type", "a type"), *subject(),
    )),
    Profile("us-core-observation-lab", "US Core Laboratory Result Observation",
            "Observation", (
                required("status", "a status"),
                sliced("category", OBSERVATION_CATEGORY, ("laboratory",),
                       "a laboratory category"),
                required("code", "a code"), *subject(), _value_or_absent,
            ), _lab, ("category", "a laboratory category"),
            lambda r, ctx: ctx.is_result(r)),
    Profile("us-core-vital-signs", "US Core Vital Signs", "Observation", (
        required("status", "a status"),
        sliced("category", OBSERVATION_CATEGORY, ("vital-signs",), "a vital-signs category"),
        required("code", "a code"), _vital_code, *subject(),
        choice("effective", "an effective time"), _value_or_absent, _ucum, _blood_pressure,
    ), _vital, ("category", "a vital-signs category or a vital-sign code"),
        lambda r, ctx: False),
    Profile("us-core-simple-observation", "US Core Simple Observation", "Observation", (
        required("status", "a status"), required("category", "a category"),
        required("code", "a code"), *subject(),
    ), _other_observation, ("category", "a category")),
    Profile("us-core-condition-encounter-diagnosis", "US Core Condition Encounter Diagnosis",
            "Condition", (
                sliced("category", CONDITION_CATEGORY, ("encounter-diagnosis",),
                       "an encounter-diagnosis category"), *_CONDITION,
            ), _encounter_diagnosis, ("category", "an encounter-diagnosis category")),
    Profile("us-core-condition-problems-health-concerns",
            "US Core Condition Problems and Health Concerns", "Condition", (*_CONDITION,),
            _problem, ("category", "a problem-list-item or health-concern category")),
    Profile("us-core-allergyintolerance", "US Core AllergyIntolerance", "AllergyIntolerance", (
        required("code", "a code"), required("patient", "a patient"),
        refers("patient", ("Patient",)),
        bound("clinicalStatus", ALLERGY_CLINICAL, ("active", "inactive", "resolved"),
              "a clinicalStatus from allergyintolerance-clinical"),
        bound("verificationStatus", ALLERGY_VERIFICATION,
              ("unconfirmed", "confirmed", "refuted", "entered-in-error"),
              "a verificationStatus from allergyintolerance-verification"),
        _allergy_status,
    )),
    Profile("us-core-immunization", "US Core Immunization", "Immunization", (
        required("status", "a status"), required("vaccineCode", "a vaccineCode"),
        required("patient", "a patient"), refers("patient", ("Patient",)),
        choice("occurrence", "an occurrence"),
        required("primarySource", "primarySource"),
    )),
    Profile("us-core-medicationrequest", "US Core MedicationRequest", "MedicationRequest", (
        required("status", "a status"), required("intent", "an intent"),
        choice("medication", "a medication (code or reference)"), *subject(),
    )),
    Profile("us-core-medicationdispense", "US Core MedicationDispense", "MedicationDispense", (
        required("status", "a status"),
        choice("medication", "a medication (code or reference)"), *subject(),
    )),
    Profile("us-core-diagnosticreport-lab",
            "US Core DiagnosticReport for Laboratory Results Reporting", "DiagnosticReport", (
                sliced("category", V2_0074, ("LAB",), "a LAB category"), *_REPORT,
                _issued,
            ), _lab_report, ("category", "a LAB category")),
    Profile("us-core-diagnosticreport-note",
            "US Core DiagnosticReport for Report and Note Exchange", "DiagnosticReport", (
                required("category", "a category"), *_REPORT,
            ), _note_report, ("category", "a category")),
    Profile("us-core-documentreference", "US Core DocumentReference", "DocumentReference", (
        required("status", "a status"), required("type", "a type"),
        required("category", "a category"), *subject(),
        required("content", "a content"), _attachment,
    )),
    Profile("us-core-procedure", "US Core Procedure", "Procedure", (
        required("status", "a status"), required("code", "a code"), *subject(),
        choice("performed", "a performed time when completed or in progress (us-core-7)",
               _performed),
    )),
    Profile("us-core-practitioner", "US Core Practitioner", "Practitioner", (
        required("identifier", "an identifier"), *identifiers(),
        required("name", "a name"), each("name", "family", "a family name on every name"),
    )),
    Profile("us-core-organization", "US Core Organization", "Organization", (
        required("active", "active"), required("name", "a name"),
    )),
    Profile("us-core-location", "US Core Location", "Location", (
        required("name", "a name"),
    )),
    Profile("us-core-coverage", "US Core Coverage", "Coverage", (
        required("status", "a status"),
        required("beneficiary", "a beneficiary"), refers("beneficiary", ("Patient",)),
        required("relationship", "a relationship"), required("payor", "a payor"),
    )),
    Profile("us-core-servicerequest", "US Core ServiceRequest", "ServiceRequest", (
        required("status", "a status"), required("intent", "an intent"),
        required("code", "a code"), *subject(),
    )),
    Profile("us-core-specimen", "US Core Specimen", "Specimen", (
        required("type", "a type"),
    )),
    Profile("us-core-relatedperson", "US Core RelatedPerson", "RelatedPerson", (
        required("active", "active"), required("patient", "a patient"),
        refers("patient", ("Patient",)), _relation_or_name,
    )),
    Profile("us-core-provenance", "US Core Provenance", "Provenance", (
        required("target", "a target"), required("recorded", "a recorded time"),
        required("agent", "an agent"), each("agent", "who", "a who on every agent"),
        _on_behalf,
    )),
)
BY_NAME = {p.name: p for p in PROFILES}
NAMES: tuple[str, ...] = (SHORTHAND, *BY_NAME)


def expand(names: Iterable[str]) -> tuple[str, ...]:
    """The profile names a gate checks, `us-core` standing for every one; in the
    catalogue's order (which puts each type's default profile first)."""
    wanted = set(names)
    return tuple(p.name for p in PROFILES if SHORTHAND in wanted or p.name in wanted)


def declared_profiles(resource: dict[str, Any]) -> set[str]:
    """The US Core profiles a resource says it follows (meta.profile), by name; a
    resource declaring one is held to it whatever its category."""
    meta = resource.get("meta")
    urls = listed(meta.get("profile")) if isinstance(meta, dict) else []
    return {url.removeprefix(CANONICAL).partition("|")[0] for url in urls
            if isinstance(url, str) and url.startswith(CANONICAL)}


def reasons(resource: dict[str, Any], where: str, names: Sequence[str], ctx: Context
            ) -> list[str]:
    """Why `resource` fails the named profiles that apply to it, located under
    `where`; empty when it passes (or none applies)."""
    kind = resource.get("resourceType")
    named = [BY_NAME[n] for n in names if BY_NAME[n].type == kind]
    if not named:
        return []
    declared = declared_profiles(resource)
    applying = [p for p in named
                if p.claims is None or p.name in declared or p.claims(resource)]
    if not applying:
        if any(p.claims is not None and p.claims(resource)
               for p in PROFILES if p.type == kind):
            return []  # another US Core profile's, one the gate does not ask for
        default = next((p for p in named if p.fallback is None
                        or p.fallback(resource, ctx)), named[0])
        loc, what = default.claim
        return [f"{where}.{loc}: {default.title} requires {what}"]
    found: list[str] = []
    for profile in applying:
        found += [f"{where}.{loc}: {text}" for loc, text in profile.check(resource, ctx)]
    return list(dict.fromkeys(found))
