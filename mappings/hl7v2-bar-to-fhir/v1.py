"""hl7v2-bar-to-fhir@1: BAR billing account events as a FHIR R4 transaction Bundle.

Events P01 (add account), P02 (purge: every patient group of the message), P05 (update),
P06 (end) and P12 (update diagnosis/procedure) are mapped; another event is skipped with
a reason. The Bundle holds the patient's Account (PID-18; inactive after P02 and P06)
with its guarantors (GT1: RelatedPerson, the Patient for SEL, or the GT1-21
Organization) and coverages (IN1/IN2: Coverage with the payor Organization, the IN1-11
group employer as policy holder, a subscriber RelatedPerson when the insured is not the
patient, IN2 Medicare/Medicaid/member ids), the Patient (its assigning authorities as
Organizations, PID-21 mother), Encounter (with its ranked diagnoses), NK1 RelatedPersons
(one resource per person however many segments name them), AL1/IAM allergies, DG1
encounter diagnoses, PR1 Procedures (surgeon, anesthesiologist and ROL performers) and
OBX Observations, then the Provenance. Each repeated VISIT group (PV1 and what follows)
is its own Encounter with its diagnoses and procedures, on the one Account.
A value that cannot be read is a warning located by segment and field; only a message
without a PID fails. Patient, Encounter, Condition and Coverage ids are those the ADT
mappings give the same facts, so billing and ADT feeds update one record.
"""

from __future__ import annotations

from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_conversion import convert
from engine.maplib.v2_to_fhir import bar
from engine.mapping import mapping


@mapping("hl7v2-bar-to-fhir@1", accepts="hl7v2", emits="application/fhir+json")
def bar_to_fhir(message: Hl7Message):
    return convert(message, bar.build)
