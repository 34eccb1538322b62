"""ncpdp-to-fhir@1: one mapping for a channel carrying every SCRIPT message. Each mapped
type gives byte for byte what its own mapping gives (output, or the same error naming
the same element), and every other type is skipped with a reason naming the type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import MappingError, ParseError
from engine.formats.ncpdp import NcpdpCodec
from engine.mapping import Mapping, Skip
from tests import mapping_checks as checks
from tests.mapping_checks import run

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "tests" / "fixtures" / "ncpdp"
FHIR = "application/fhir+json"
DISPATCH = checks.Fixtures("ncpdp-to-fhir@1", input_ext=".xml")
# The type mappings and the SCRIPT message types each one maps.
TYPE_MAPPINGS = {
    "ncpdp-newrx-to-fhir@1": ("NewRx",),
    "ncpdp-cancelrx-to-fhir@1": ("CancelRx", "CancelRxResponse"),
    "ncpdp-rxfill-to-fhir@1": ("RxFill",),
    "ncpdp-rxrenewal-to-fhir@1": ("RxRenewalRequest", "RxRenewalResponse"),
}
MAPPING_OF = {kind: ref for ref, kinds in TYPE_MAPPINGS.items() for kind in kinds}
UNMAPPED = ("Status", "Error", "Verify", "RxChangeRequest", "RxChangeResponse",
            "RxFillIndicatorChange")
# Messages about an existing order point at its MedicationRequest by a literal reference
# (it is in the NewRx's Bundle, not theirs).
LITERAL = re.compile(r"^MedicationRequest/[0-9a-f-]{36}\Z")
codec = NcpdpCodec()

dispatch = checks.mapping_fixture(DISPATCH.ref, accepts="ncpdp", emits=FHIR)

def _valid(bundle: dict) -> None:
    checks.check_transaction(bundle, LITERAL)


TestDispatchFixtures = checks.fixture_tests(DISPATCH, min_cases=8, min_outputs=6,
                                            output=_valid)


def _type_of(raw: bytes) -> str:
    return codec.parse(raw).body.message_type


def _outcome(mapping: Mapping, raw: bytes) -> bytes | Skip | str:
    """The mapping's bytes, its Skip, or its error's text (`FIELD: message`)."""
    try:
        return run(mapping, raw)
    except MappingError as exc:
        return f"error {exc}"


def _type_mapping_inputs() -> list[Path]:
    return sorted(p for ref in TYPE_MAPPINGS
                  for p in checks.Fixtures(ref, input_ext=".xml").folder.glob("*.xml"))


def _shared_inputs() -> list[Path]:
    """The codec's sample messages that parse (a message that does not never reaches a
    mapping)."""
    out = []
    for path in sorted(SHARED.glob("*.xml")):
        try:
            codec.parse(path.read_bytes())
        except ParseError:
            continue
        out.append(path)
    return out


def _id(path: Path) -> str:
    return f"{path.parent.parent.parent.name}/{path.stem}" if path.parent.name == "v1" \
        else path.stem


@pytest.mark.parametrize("path", _type_mapping_inputs(), ids=_id)
def test_every_type_mapping_fixture_gives_the_same_bytes_through_the_dispatcher(
        dispatch: Mapping, path: Path) -> None:
    raw = path.read_bytes()
    own = checks.mapping(MAPPING_OF[_type_of(raw)])
    assert _outcome(dispatch, raw) == _outcome(own, raw)


def test_the_type_mapping_fixtures_cover_every_mapped_type_and_their_errors() -> None:
    kinds = {_type_of(p.read_bytes()) for p in _type_mapping_inputs()}
    assert kinds == set(MAPPING_OF)
    errors = [p for p in _type_mapping_inputs() if p.with_suffix(".error").exists()]
    assert len(errors) >= 2  # a mapped type missing what it needs fails as in its mapping


@pytest.mark.parametrize("path", [p for p in _shared_inputs()
                                  if _type_of(p.read_bytes()) in MAPPING_OF], ids=_id)
def test_the_codec_samples_of_mapped_types_give_their_mappings_bytes(
        dispatch: Mapping, path: Path) -> None:
    raw = path.read_bytes()
    assert _outcome(dispatch, raw) == _outcome(checks.mapping(MAPPING_OF[_type_of(raw)]), raw)


@pytest.mark.parametrize("path", [p for p in _shared_inputs()
                                  if _type_of(p.read_bytes()) not in MAPPING_OF], ids=_id)
def test_every_other_type_is_skipped_naming_its_type(dispatch: Mapping, path: Path) -> None:
    raw = path.read_bytes()
    assert run(dispatch, raw) == Skip(f"{_type_of(raw)} is not mapped to FHIR")


def test_the_skipped_samples_cover_the_answers_rxchange_and_unknown_types() -> None:
    kinds = {_type_of(p.read_bytes()) for p in _shared_inputs()} - set(MAPPING_OF)
    assert set(UNMAPPED) <= kinds
    assert kinds - set(UNMAPPED), "an unknown message type is among the samples"


def test_a_type_mapping_still_refuses_another_type_the_dispatcher_maps(
        dispatch: Mapping) -> None:
    # The NewRx mapping's "not a NewRx" case is a CancelRx: the dispatcher maps it as one.
    raw = (checks.Fixtures("ncpdp-newrx-to-fhir@1", input_ext=".xml").folder
           / "cancelrx_not_newrx_error.xml").read_bytes()
    assert str(_outcome(checks.mapping("ncpdp-newrx-to-fhir@1"), raw)).startswith("error Body:")
    assert _outcome(dispatch, raw) == _outcome(checks.mapping("ncpdp-cancelrx-to-fhir@1"), raw)
    assert isinstance(run(dispatch, raw), bytes)
