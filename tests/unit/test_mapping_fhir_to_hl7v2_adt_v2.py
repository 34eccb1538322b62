"""fhir-to-hl7v2-adt@2: every fixture, and what changed from @1: a Bundle's timestamp is
MSH-7 even when the Patient carries a meta.lastUpdated of its own (a stored resource's
last change, which may be years old); everything else as @1."""

from __future__ import annotations

import pytest

from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping import Mapping
from tests import mapping_checks as checks
from tests.mapping_checks import run

FIXTURES = checks.Fixtures("fhir-to-hl7v2-adt@2", input_ext=".json", output_ext=".hl7")
V1 = checks.Fixtures("fhir-to-hl7v2-adt@1", input_ext=".json", output_ext=".hl7")
HL7 = "x-application/hl7-v2+er7"

to_adt = checks.mapping_fixture(FIXTURES.ref, accepts="fhir", emits=HL7)
to_adt_v1 = checks.mapping_fixture(V1.ref, accepts="fhir", emits=HL7)

TestFixtures = checks.fixture_tests(FIXTURES, min_outputs=7,
                                    invalid_inputs={"patient_invalid_birth_date_error"})


@pytest.mark.parametrize("case", V1.output_cases)
def test_where_no_bundle_timestamp_competes_v2_writes_what_v1_wrote(
        to_adt: Mapping, to_adt_v1: Mapping, case: str) -> None:
    raw = V1.input(case)
    assert run(to_adt, raw) == run(to_adt_v1, raw)


def test_the_bundle_timestamp_is_msh7_over_the_patients_last_updated(
        to_adt: Mapping, to_adt_v1: Mapping) -> None:
    raw = FIXTURES.input("bundle_timestamp_over_patient_last_updated")
    v2, v1 = (Hl7v2Codec().parse(run(m, raw)).body for m in (to_adt, to_adt_v1))
    assert v1.value("MSH-7") == "20190201120000+0000"  # the Patient's last change
    assert v2.value("MSH-7") == v2.value("EVN-2") == "20240903081500-0400"
    assert v2.control_id != v1.control_id  # MSH-10 hashes MSH-7
    assert v2.value("MSH-9.2") == "A31"
