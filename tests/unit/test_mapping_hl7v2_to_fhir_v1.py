"""hl7v2-to-fhir@1: a mixed feed through one mapping gives, for every fixture of every
type's own mapping, exactly what that mapping gives (output, warnings and what was left
behind), and skips a type it does not map with a reason that quotes nothing."""

from __future__ import annotations

import re

import pytest

from engine.formats.hl7v2 import Hl7v2Codec
from engine.mapping_base import Skip
from tests import mapping_checks as checks

FIXTURES = checks.Fixtures("hl7v2-to-fhir@1")
TYPES = checks.dispatched_types(FIXTURES.ref)  # the versions released with it
WRONG_TYPE = "MSH-9: message type is not"


def _own_type(ref: str, case: str) -> bool:
    """Not one of a type's fixtures of another type (an ADT sent to the SIU mapping),
    which that mapping refuses naming MSH-9 and the dispatcher maps as what it is."""
    error = checks.MAPPINGS / ref.replace("@", "/fixtures/v") / f"{case}.error"
    return not (error.exists() and WRONG_TYPE in error.read_text())


CASES = [(ref, case) for _, ref in TYPES for case in checks.Fixtures(ref).cases
         if _own_type(ref, case)]
# An MDM addendum refers to the document it amends, sent before: Type/id, not in the Bundle
LITERAL = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}\Z")

dispatcher = checks.mapping_fixture(FIXTURES.ref)
TestFixtures = checks.fixture_tests(
    FIXTURES, min_outputs=len(TYPES),
    output=lambda bundle: checks.check_transaction(bundle, LITERAL))


def _outcome(mapping, raw: bytes):
    try:
        return mapping.run(Hl7v2Codec().parse(raw).body)
    except Exception as exc:  # the same failure, named the same way, is the same outcome
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(("ref", "case"), CASES)
def test_the_dispatcher_gives_what_the_types_own_mapping_gives(dispatcher, ref, case):
    raw = checks.Fixtures(ref).input(case)
    assert _outcome(dispatcher, raw) == _outcome(checks.mapping(ref), raw)


def test_every_fixture_type_is_dispatched():
    covered = {code for code, _ in TYPES}
    for case in FIXTURES.output_cases:
        covered.discard(Hl7v2Codec().parse(FIXTURES.input(case)).body.message_type[:3])
    assert not covered, f"no hl7v2-to-fhir@1 fixture of {sorted(covered)}"


@pytest.mark.parametrize("message_type", ["QRY^A19", "ACK^A01", "Z99^Z01", "SECRET99^X"])
def test_a_type_it_does_not_map_is_skipped_without_quoting_it(dispatcher, message_type):
    raw = (f"MSH|^~\\&|APP|FAC|EHR|FAC|20240601120000||{message_type}|Q1|P|2.5.1\r"
           "PID|1||123^^^FAC^MR||DOE^JANE\r").encode()
    result = dispatcher.run(Hl7v2Codec().parse(raw).body)
    assert isinstance(result, Skip)
    assert "not a message type this mapping reads" in result.reason
    assert "SECRET" not in result.reason
