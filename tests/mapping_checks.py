"""What every mapping's tests check, written once.

A mapping's test module keeps what is its own (its behaviour tests and which fixtures it
runs); this module holds the machinery they share:

- finding a mapping (`mapping`, `mapping_fixture`) and its fixtures (`Fixtures`),
  writing a segment (`segment`) and running a message through a mapping as a channel
  does (`run`, `bundle_of`, `message_of`, `mapped`, `warnings_of`), and finding what it
  wrote (`of_type`, `by_type`, `only`, `resolve`, `reference_to`, `segment_names`);
- the tests every mapping's fixtures get (`fixture_tests`): the rules of a fixture
  folder (`check_fixture_files`) and each fixture run as `conduit test` runs it
  (`check_fixture`: `engine.testbench` and its structural diff);
- FHIR R4 (fhir.resources R4B): `check_resource`, `check_transaction`,
  `transaction_holding`, `empty_elements`, `references`;
- determinism (`check_deterministic`, `reversed_keys`);
- errors that name a field and show none of the message's values (`check_error`);
- the Patient hl7v2-adt-to-fhir@1 makes for the same PID (`adt_bundle`,
  `check_same_patient`).

Every check fails with a message naming the fixture or field and the path that is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from engine import testbench
from engine.errors import MappingError
from engine.formats.diff import diff_values
from engine.formats.hl7v2 import Hl7Message
from engine.maplib.v2_to_fhir.coverage import rows
from engine.mapping import Mapping, MappingCatalog, Skip
from engine.mapping_base import Mapped
from engine.structdiff import diff_outputs
from engine.testbench import INPUT_EXT

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}\Z")
ADT_REF = "hl7v2-adt-to-fhir@1"


# ---- mappings and messages --------------------------------------------------------------


@cache
def catalog() -> MappingCatalog:
    """Every mapping under mappings/, discovered once per test run."""
    return MappingCatalog.discover(MAPPINGS)


def mapping(ref: str) -> Mapping:
    """The mapping `name@version` from mappings/."""
    found = catalog().get(ref)
    assert found is not None, f"{ref} was not discovered under mappings/"
    return found


def mapping_fixture(ref: str, *, accepts: str | None = None, emits: str | None = None) -> Any:
    """A module-scoped pytest fixture giving the mapping `ref` (which must read `accepts`
    and write `emits`, when given), named after the module attribute it is bound to:
    `adt = mapping_fixture("hl7v2-adt-to-fhir@1")`."""

    @pytest.fixture(scope="module")
    def fixture() -> Mapping:
        found = mapping(ref)
        assert accepts in (None, found.accepts) and emits in (None, found.emits), (
            f"{ref} reads {found.accepts} and writes {found.emits}"
        )
        return found

    return fixture


# The per-type versions each hl7v2-to-fhir version gives the very output of (the others of
# a type: the type's newest version). hl7v2-to-fhir@2's rules (engine.maplib.v2_to_fhir.
# rules.SECOND) have per-type versions for ADT and ORU only; mappings/README.md says why.
DISPATCHED: dict[str, dict[str, str | None]] = {
    "hl7v2-to-fhir@1": {"ADT": "hl7v2-adt-to-fhir@3", "ORU": "hl7v2-oru-to-fhir@2"},
    "hl7v2-to-fhir@2": {"ADT": "hl7v2-adt-to-fhir@4", "ORU": "hl7v2-oru-to-fhir@3"},
}


def dispatched_types(dispatcher: str) -> list[tuple[str, str]]:
    """(message type, per-type mapping) whose output `dispatcher` gives for that type."""
    pinned = DISPATCHED[dispatcher]
    newest = [(code, ref) for code, _, ref, _ in rows(catalog()) if catalog().get(ref)]
    if dispatcher != "hl7v2-to-fhir@1":
        return [(code, ref) for code, ref in pinned.items() if ref]
    return [(code, pinned.get(code) or ref) for code, ref in newest]


def segment(name: str, fields: dict[int, str]) -> str:
    """An HL7v2 segment from {field number: value}, empty up to the last field given."""
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, max(fields) + 1))


def run(mapping: Mapping, message: bytes | dict) -> bytes | Skip:
    """Parse `message` with the mapping's input codec and apply the mapping, as a channel
    (and `conduit test`) does; a dict is sent as its JSON."""
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    result = testbench.run_mapping(mapping, raw)
    return result if isinstance(result, Skip) else result.output


def mapped(mapping: Mapping, raw: bytes) -> Mapped:
    """The output with its warnings and what it left behind (a lenient mapping's run)."""
    result = testbench.run_mapping(mapping, raw)
    assert isinstance(result, Mapped), result
    return result


def warnings_of(mapping: Mapping, raw: bytes) -> list[str]:
    """A lenient mapping's warnings for `raw`, each `place: reason`."""
    return [str(w) for w in mapped(mapping, raw).warnings]


def bundle_of(mapping: Mapping, message: bytes | dict) -> dict:
    """The JSON the mapping writes for `message` (a Bundle, or one resource)."""
    out = run(mapping, message)
    assert isinstance(out, bytes), f"expected output, got {out!r}"
    return json.loads(out)


def message_of(mapping: Mapping, message: bytes | dict) -> Hl7Message:
    """The HL7v2 message the mapping writes for `message`, parsed."""
    out = run(mapping, message)
    assert isinstance(out, bytes), f"expected a message, got {out!r}"
    return Hl7Message.parse(out.decode("utf-8"))


def of_type(bundle: dict, kind: str) -> list[dict]:
    """The bundle's resources of one type, in entry order."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def by_type(bundle: dict) -> dict[str, dict]:
    """The bundle's resources by type (the last one of each type)."""
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}


def only(bundle: dict, kind: str) -> dict:
    """The bundle's one resource of type `kind`; fails naming the type and the ids found
    when there is none or more than one."""
    found = of_type(bundle, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}: {[r.get('id') for r in found]}"
    return found[0]


def reference_to(resource: dict) -> dict:
    """The Reference a transaction Bundle's entries use for `resource`."""
    return {"reference": f"urn:uuid:{resource['id']}"}


def resolve(bundle: dict, reference: dict) -> dict:
    """The resource in the bundle that `reference` points at: the one entry whose fullUrl
    it names, which must be `urn:uuid:<that resource's id>`."""
    target = reference["reference"]
    found = [e["resource"] for e in bundle["entry"] if e.get("fullUrl") == target]
    assert len(found) == 1, f"reference {target} names {len(found)} entries, not one"
    assert target == f"urn:uuid:{found[0]['id']}", f"{target} is not its resource's id"
    return found[0]


def segment_names(message: Hl7Message) -> str:
    """The message's segment names, each followed by a space: "MSH PID ORC OBR "."""
    return " ".join(s.name for s in message.segments) + " "


# ---- fixtures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixtures:
    """The fixtures of one mapping version: `<case><input_ext>` beside one expected file,
    `<case><output_ext>`, `.skip` or `.error` (read without loading any mapping, so the
    cases are known when tests are collected)."""

    ref: str
    input_ext: str = ".hl7"
    output_ext: str = ".json"

    @property
    def folder(self) -> Path:
        name, version = self.ref.split("@")
        return MAPPINGS / name / "fixtures" / f"v{version}"

    @property
    def expected_kinds(self) -> tuple[str, ...]:
        return (self.output_ext, ".skip", ".error")

    @property
    def cases(self) -> list[str]:
        """Every case, by name."""
        return sorted(p.stem for p in self.folder.glob(f"*{self.input_ext}"))

    @property
    def output_cases(self) -> list[str]:
        """The cases that expect an output (not a skip or an error)."""
        return [c for c in self.cases if (self.folder / f"{c}{self.output_ext}").exists()]

    def input(self, case: str) -> bytes:
        return (self.folder / f"{case}{self.input_ext}").read_bytes()

    def written_types(self) -> set[str]:
        """The resource types the expected outputs (Bundles) hold, for checking that a
        mapping declares every type it writes."""
        return {e["resource"]["resourceType"] for case in self.output_cases
                for e in json.loads((self.folder / f"{case}{self.output_ext}").read_text())[
                    "entry"]}


def check_fixture_files(fixtures: Fixtures) -> None:
    """Each input has exactly one expected file, and each file belongs to an input."""
    folder, kinds = fixtures.folder, fixtures.expected_kinds
    for case in fixtures.cases:
        expected = [k for k in kinds if (folder / f"{case}{k}").exists()]
        assert len(expected) == 1, (
            f"{case}{fixtures.input_ext} needs one of {kinds}, has {expected}"
        )
    for path in folder.iterdir():
        assert (folder / f"{path.stem}{fixtures.input_ext}").exists(), (
            f"{path.name} has no input file"
        )


def check_fixture(mapping: Mapping, fixtures: Fixtures, case: str) -> None:
    """Run one fixture as `conduit test` does (engine.testbench: parse, map, compare with
    the expected file structurally, path by path); a skip's reason and an error's text
    must also be exactly the expected file's text."""
    assert (INPUT_EXT[mapping.accepts], testbench.output_ext(mapping.emits)) == (
        fixtures.input_ext, fixtures.output_ext
    ), f"{fixtures.ref}: fixtures are not named as `conduit test` reads them"
    outcome: list[tuple[str, Any]] = []

    def mapped(raw: bytes) -> tuple[str, Any]:
        outcome.append(testbench.mapping_outcome(mapping, raw))
        return outcome[-1]

    source = fixtures.folder / f"{case}{fixtures.input_ext}"
    result = testbench.run_case(f"{mapping.ref} {case}", source, mapped,
                                 fixtures.output_ext, mapping.emits)
    if not result.ok:
        pytest.fail(f"{result.name}: not what its expected file says (expected -> actual):\n  "
                    + "\n  ".join(result.details), pytrace=False)
    kind, got = outcome[-1]
    if kind != "output":  # `conduit test` lets an empty .skip or .error stand for any text
        want = (fixtures.folder / f"{case}.{kind}").read_text().strip()
        assert got == want, f"{mapping.ref} {case}: expected {kind} {want!r}, got {got!r}"


def fixture_tests(
    fixtures: Fixtures, *, min_cases: int = 0, min_outputs: int = 0,
    output: Callable[[dict], None] | None = None, invalid_inputs: Iterable[str] = (),
) -> type:
    """A test class to bind in a mapping's test module (`TestFixtures = fixture_tests(...)`)
    with what every mapping's fixtures must pass, one test per fixture and check:

    - test_every_fixture_has_exactly_one_expected_file (and at least `min_cases` cases,
      `min_outputs` of them with an expected output);
    - test_fixture: `check_fixture`, as `conduit test` runs it;
    - test_output_is_valid (with `output`): `output` passes for each expected output's
      JSON, e.g. `check_transaction`;
    - test_same_input_gives_identical_bytes: `check_deterministic`, a FHIR input also
      with its keys in reverse order;
    - test_fixture_inputs_are_valid_r4 (FHIR inputs but `invalid_inputs`): `check_valid`.

    The mapping comes from the fixture `mapping`, which a subclass may override.
    """
    cases, outputs = fixtures.cases, fixtures.output_cases
    valid_inputs = [c for c in cases if c not in set(invalid_inputs)]
    fhir_input = fixtures.input_ext == INPUT_EXT["fhir"]
    find = mapping

    class FixtureTests:
        @pytest.fixture
        def mapping(self) -> Mapping:
            return find(fixtures.ref)

        def test_every_fixture_has_exactly_one_expected_file(self) -> None:
            assert len(cases) >= min_cases, f"{len(cases)} cases, fewer than {min_cases}"
            assert len(outputs) >= min_outputs, f"{len(outputs)} outputs, fewer than {min_outputs}"
            check_fixture_files(fixtures)

        @pytest.mark.parametrize("case", cases)
        def test_fixture(self, mapping: Mapping, case: str) -> None:
            check_fixture(mapping, fixtures, case)

        @pytest.mark.parametrize("case", outputs)
        def test_output_is_valid(self, mapping: Mapping, case: str) -> None:
            assert output is not None
            output(bundle_of(mapping, fixtures.input(case)))

        @pytest.mark.parametrize("case", outputs)
        def test_same_input_gives_identical_bytes(self, mapping: Mapping, case: str) -> None:
            raw = fixtures.input(case)
            same = [reversed_keys(json.loads(raw))] if fhir_input else []
            check_deterministic(mapping, raw, *same)

        @pytest.mark.parametrize("case", valid_inputs)
        def test_fixture_inputs_are_valid_r4(self, case: str) -> None:
            check_valid(json.loads(fixtures.input(case)))

        if output is None:
            del test_output_is_valid
        if not fhir_input:
            del test_fixture_inputs_are_valid_r4

    FixtureTests.__qualname__ = FixtureTests.__name__ = "TestFixtures"
    FixtureTests.__doc__ = f"{fixtures.ref}: what every mapping's fixtures must pass."
    return FixtureTests


# ---- FHIR -------------------------------------------------------------------------------


def references(node: Any) -> list[str]:
    """Every `reference` string anywhere in a resource or Bundle."""
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    return []


def empty_elements(node: Any, path: str = "$") -> list[str]:
    """Paths of empty strings, arrays or objects (and nulls), which FHIR forbids."""
    if node in ("", [], {}, None):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in empty_elements(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in empty_elements(v, f"{path}[{i}]")]
    return []


def check_valid(resource: dict) -> None:
    """The resource validates against its fhir.resources R4B model."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def check_resource(resource: dict) -> None:
    """A valid R4 resource with a FHIR id and no empty elements."""
    check_valid(resource)
    rid = resource["id"]
    assert FHIR_ID.match(rid), f"{rid!r} is not a FHIR id"
    assert not (empty := empty_elements(resource)), f"empty elements (FHIR forbids): {empty}"


def check_transaction(bundle: dict, literal: re.Pattern[str] | None = None) -> None:
    """A valid R4 transaction: every resource valid, PUT once under `urn:uuid:<id>`,
    every reference resolving inside the Bundle (or, when not a urn:uuid, matching
    `literal`), and no empty element anywhere."""
    Bundle.model_validate(bundle)
    kind = (bundle["resourceType"], bundle.get("type"))
    assert kind == ("Bundle", "transaction"), f"{kind} is not a transaction Bundle"
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls), "a transaction may not PUT one id twice"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        check_valid(resource)
        rid = resource["id"]
        assert FHIR_ID.match(rid), f"{rid!r} is not a FHIR id"
        assert entry["fullUrl"] == f"urn:uuid:{rid}", f"{entry['fullUrl']} is not {rid}'s"
        put = {"method": "PUT", "url": f"{resource['resourceType']}/{rid}"}
        assert entry["request"] == put, f"{entry['request']} is not {put}"
    for ref in references(bundle):
        if literal is None or ref.startswith("urn:uuid:"):
            assert ref in full_urls, f"reference {ref} does not resolve inside the bundle"
        else:
            assert literal.match(ref), f"{ref} is neither in the bundle nor literal"
    assert not (empty := empty_elements(bundle)), f"empty elements (FHIR forbids): {empty}"


def transaction_holding(*kinds: str) -> Callable[[dict], None]:
    """An `output` check for `fixture_tests`: a valid transaction (`check_transaction`)
    holding at least one resource of each of `kinds`."""

    def check(bundle: dict) -> None:
        check_transaction(bundle)
        missing = [kind for kind in kinds if not of_type(bundle, kind)]
        assert not missing, f"the output holds no {', '.join(missing)}"

    return check


# ---- determinism ------------------------------------------------------------------------


def check_deterministic(mapping: Mapping, message: bytes | dict, *same: bytes | dict) -> None:
    """`message` mapped twice gives identical bytes, and so does each message in `same`
    (the same content written differently)."""
    first = run(mapping, message)
    for other in (message, *same):
        again = run(mapping, other)
        assert again == first, "an equal input gave other output:\n  " + "\n  ".join(
            _differences(mapping, first, again))


def _differences(mapping: Mapping, old: bytes | Skip, new: bytes | Skip) -> list[str]:
    """Where two outputs differ, by path where they can be compared."""
    if isinstance(old, bytes) and isinstance(new, bytes):
        changes = [c.describe() for c in diff_outputs(old, new, mapping.emits)]
        return changes or [f"same content, other bytes: {old[:60]!r}... / {new[:60]!r}..."]
    return [f"{old!r} -> {new!r}"]


def reversed_keys(node: Any) -> Any:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(node, dict):
        return {k: reversed_keys(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [reversed_keys(v) for v in node]
    return node


# ---- errors -----------------------------------------------------------------------------


def check_error(
    mapping: Mapping, message: bytes | dict, field: str, *,
    phi: Iterable[str] = (), values: Iterable[str | None] = (),
) -> MappingError:
    """Mapping `message` fails naming `field` ("<field>: why"); the text shows none of
    `phi` anywhere and none of `values` after the field's name."""
    with pytest.raises(MappingError) as caught:
        run(mapping, message)
    error = caught.value
    text = str(error)
    assert error.field == field, f"expected an error naming {field}, got {text!r}"
    assert text.startswith(f"{field}: "), text
    reason = text.removeprefix(f"{field}:")
    shown = [v for v in phi if v in text] + [v for v in values if v and v in reason]
    assert not shown, f"the error naming {field} shows {shown}"
    return error


# ---- the Patient the ADT feed makes -----------------------------------------------------


def adt_bundle(adt_raw: bytes) -> dict:
    """The Bundle hl7v2-adt-to-fhir@1 writes for an ADT message."""
    return bundle_of(mapping(ADT_REF), adt_raw)


def check_same_patient(patient: dict, adt_raw: bytes, *, whole: bool = False) -> dict:
    """`patient` has the id hl7v2-adt-to-fhir@1 gives the PID of `adt_raw` (and, with
    `whole`, is that very resource), so every feed updates one Patient; returns what
    the ADT mapping wrote, by type."""
    admitted = by_type(adt_bundle(adt_raw))
    if whole:
        changes = [c.describe() for c in diff_values(admitted["Patient"], patient)]
        assert patient == admitted["Patient"], (
            "not the ADT feed's Patient (ADT -> this):\n  " + "\n  ".join(changes)
        )
    assert patient["id"] == admitted["Patient"]["id"], "not the ADT feed's Patient id"
    return admitted
