"""Declarative (YAML) mappings: the expression language, load-time errors with positions,
run-time behaviour, and discovery beside Python mappings."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import engine.declarative as declarative
from engine.declarative.expressions import Context, ExpressionError, parse
from engine.declarative.functions import FUNCTIONS, SHIPPED_TABLES
from engine.errors import ConfigError, ConfigErrors, MappingError
from engine.formats.hl7v2 import Hl7Message, Hl7v2Codec
from engine.maplib.fhir import resource_id
from engine.mapping import Mapping, MappingCatalog, Skip

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = "\r".join([
    "MSH|^~\\&|LAB|MERCY|CONDUIT|HIE|20240601120000-0500||ORU^R01|C1|P|2.5",
    "PID|1||MR1^^^MERCY&2.16.840.1.113883.19&ISO^MR~SS1^^^SSA^SS||DOE^JANE^Q||19800102|f"
    "|||1 MAIN ST^^TOWN^ST^12345||\"\"",
    "OBX|1|NM|GLU^Glucose||98|mg/dL|||||F|||202406011130",
    "OBX|2|ST|NOTE^Note||fine~good||||||F",
])
LOCAL_TABLES = {**SHIPPED_TABLES, "visit": {"I": "IMP", "O": "AMB"}}


def evaluate(text: str, message: str = SAMPLE) -> Any:
    return parse(text, FUNCTIONS, LOCAL_TABLES).eval(Context(Hl7Message.parse(message)))


def write(root: Path, name: str, file: str, body: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(textwrap.dedent(body).lstrip("\n"))
    return path


HEADER = """
    mapping: demo@1
    accepts: hl7v2
    emits: application/fhir+json
"""


def load(tmp_path: Path, body: str, header: str = HEADER) -> Mapping:
    """A declarative mapping demo@1 from `body` (YAML under the header)."""
    path = write(tmp_path, "demo", "v1.yaml", textwrap.dedent(header) + textwrap.dedent(body))
    return declarative.load(path, "demo@1")


def load_errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, "demo", "v1.yaml", text)
    with pytest.raises(ConfigErrors) as caught:
        declarative.load(path, "demo@1")
    prefix = str(path)
    return [str(e).replace(prefix, "v1.yaml") for e in caught.value.errors]


def message(*segments: str, msh9: str = "ADT^A01", msh7: str = "20240601120000-0500") -> bytes:
    msh = f"MSH|^~\\&|ADT|MERCY|CONDUIT|HIE|{msh7}||{msh9}|C1|P|2.5"
    return ("\r".join([msh, *segments]) + "\r").encode()


def run(mapping: Mapping, raw: bytes) -> Any:
    out = mapping.apply(Hl7v2Codec().parse(raw).body)
    return out if isinstance(out, Skip) else json.loads(out)


# ---- expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PID-5.1", "DOE"),
        ("PID-5", "DOE"),  # a field reads its first component
        ("PID-3[2].1", "SS1"),
        ("PID-3.4.2", "2.16.840.1.113883.19"),
        ("PID-3[2].4", "SSA"),
        ("OBX[2]-5", "fine"),
        ("OBX[2]-5[2]", "good"),
        ("OBX[3]-5", ""),
        ("MSH-9.2", "R01"),
        ("MSH-1", "|"),
        ("MSH-2", "^~\\&"),
        ("PID-13", ""),  # the explicit null "" reads empty
        ("ZZZ-1", ""),
        ("OBX", "OBX"),  # a segment alone says whether there is one, never its content
        ("PV1", ""),
        ("if(PV1, 'visit', 'none')", "none"),
        ("'text'", "text"),
        ("'O''Hara'", "O'Hara"),
        ('"say ""hi"""', 'say "hi"'),
        ("  PID-5.2  ", "JANE"),
        ("concat('a', PID-5.2)", "aJANE"),
        ("concat('urn:x:', PID-99)", ""),
        ("join(' ', PID-5.2, PID-99, PID-5.3)", "JANE Q"),
        ("default(PID-99, PID-5.1)", "DOE"),
        ("default(PID-99, PID-98, 'z')", "z"),
        ("default(PID-99, PID-98)", ""),
        ("upper(lower(' Ab '))", " AB "),
        ("trim(' x ')", "x"),
        ("date(PID-7)", "1980-01-02"),
        ("date(PID-99)", ""),
        ("datetime(OBX-14)", "2024-06-01T11:30:00-05:00"),
        ("lookup('administrative-sex', PID-8)", "female"),  # as sent, then upper case
        ("lookup('visit', 'I')", "IMP"),
        ("lookup('visit', 'X', 'none')", "none"),
        ("lookup('visit', PID-99, 'none')", "none"),
        ("lookup('visit', PID-99)", ""),
        ("lookup('patient-class', 'E')",
         {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER",
          "display": "emergency"}),
        ("lookup('identifier-type', PID-3.5)",
         {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
          "display": "Medical record number"}),
        ("system(PID-3.4.1, PID-3.4.2, PID-3.4.3)", "urn:oid:2.16.840.1.113883.19"),
        ("system(PID-3[2].4)", "urn:conduit:id:SSA"),
        ("system(PID-99)", ""),
        ("id('Patient', PID-99)", ""),
        ("if(PID-99, 'a', 'b')", "b"),
        ("if(PID-8, 'a')", "a"),
        ("if(PID-99, 'a')", ""),
        ("upper(concat(default(PID-99, PID-5.2), '-', lookup('administrative-sex', PID-8)))",
         "JANE-FEMALE"),
    ],
)
def test_expression_values(text: str, expected: Any) -> None:
    assert evaluate(text) == expected


def test_id_is_the_python_mappings_resource_id() -> None:
    got = evaluate("id('Patient', MSH-4.1, system(PID-3.4.1, PID-3.4.2), PID-3.1)")
    assert got == resource_id(
        "Patient", "MERCY", {"system": "urn:oid:2.16.840.1.113883.19", "value": "MR1"})


@pytest.mark.parametrize(
    ("text", "error", "offset"),
    [
        ("", "expected a value", 0),
        ("concat('a'", "expected `,` or `)` in concat(...)", 10),
        ("concat('a)", "text starting here is not closed with '", 7),
        ("concat('a',)", "unexpected `)`", 11),
        ("foo(PID-1)", "unknown function foo(); known: concat, date", 0),
        ("trim(CONCAT('a', 'b'))", "unknown function CONCAT(); function names are lower", 5),
        ("upper('a', 'b')", "upper(value) takes 1 argument(s), got 2", 0),
        ("concat('a')", "concat(a, b, ...) takes at least 2 argument(s), got 1", 0),
        ("lookup('a', 'b', 'c', 'd')", "takes 2 to 3 argument(s), got 4", 0),
        ("lookup('nope', PID-8)", "unknown table 'nope'; known: address-type", 7),
        ("lookup(PID-8, 'x')", "lookup() names its table in quotes", 7),
        ("PID-0", "`PID-0`: fields count from 1", 0),
        ("trim(PID-3[0].1)", "`PID-3[0].1`: repetitions count from 1", 5),
        ("pid-5", "`pid-5` is not an HL7 path", 0),
        ("PID-3[*]", "`PID-3[*]` is not an HL7 path", 0),
        ("PID-5.1 PID-5.2", "unexpected `P` after a complete expression", 8),
        ("name", "`name` is neither a field nor a function call", 0),
        ("PID-5.1)", "unexpected `)` after a complete expression", 7),
    ],
)
def test_expression_syntax_errors(text: str, error: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text, FUNCTIONS, LOCAL_TABLES)
    assert error in caught.value.message
    assert caught.value.offset == offset


def test_reference_documents_every_function_and_shipped_table() -> None:
    doc = declarative.__doc__ or ""
    for name in FUNCTIONS:
        assert f"{name}(" in doc, f"{name}() is missing from engine/declarative's docstring"
    for table in SHIPPED_TABLES:
        assert table in doc


# ---- load-time errors with positions ------------------------------------------------------


def test_expression_errors_point_at_the_column_inside_the_expression(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """\
mapping: demo@1
accepts: hl7v2
emits: application/fhir+json
output:
  resourceType: Patient
  id: "=idd('Patient', PID-3.1)"
  gender: =lookup('sex', PID-8)
  name:
    - family: '=upper(PID-5.1, ''x'')'
      given: ["=PID-5.2", "=concat('a' PID-5.3)"]
""")
    assert errors == [
        "v1.yaml:6:9: output.id: unknown function idd(); known: concat, date, datetime, "
        "default, id, if, join, lookup, lower, system, trim, upper "
        "(in `=idd('Patient', PID-3.1)`)",
        "v1.yaml:7:19: output.gender: unknown table 'sex'; known: address-type, address-use, "
        "administrative-sex, identifier-type, name-use, patient-class, telecom-system, "
        "telecom-use (in `=lookup('sex', PID-8)`)",
        "v1.yaml:9:15: output.name[0].family: upper(value) takes 1 argument(s), got 2 "
        "(in `=upper(PID-5.1, 'x')`)",
        "v1.yaml:10:40: output.name[0].given[1]: expected `,` or `)` in concat(...) "
        "(in `=concat('a' PID-5.3)`)",
    ]


def test_multiline_expression_errors_point_at_the_value(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """\
mapping: demo@1
accepts: hl7v2
emits: application/fhir+json
output:
  id: >-
    =id('Patient',
        nope(PID-3.1))
""")
    assert len(errors) == 1
    assert errors[0].startswith("v1.yaml:5:7: output.id: unknown function nope()")


def test_every_mistake_in_the_file_is_reported_at_once(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """\
mapping: demo@2
accepts: fhir
emits: ""
colour: blue
when:
  - field: MSH-9.1
    in: [ADT]
    equals: ADT
  - field: MSH-9.1
    matches: "(("
  - field: =MSH-9.1
    in: [ADT]
    because: x
required: [PID-3, pid3]
tables:
  administrative-sex: {M: male}
  Visit: {I: IMP}
  empty: {}
output:
  identifier:
    - each: PID-3[1]
      value: "=PID-3.1"
    - each: PID-4
  name:
    each: PID-5
    family: "=PID-5.1"
""")
    assert errors == [
        "v1.yaml:1:10: mapping: declares demo@2; a file at this place must declare exactly "
        "`mapping: demo@1`",
        "v1.yaml:2:10: accepts: declarative mappings read HL7v2 messages, so accepts must be "
        "hl7v2, got text \"fhir\"",
        "v1.yaml:3:8: emits: emits names the output's content type, e.g. "
        "application/fhir+json",
        "v1.yaml:4:1: colour: unknown setting `colour`; known settings: mapping, accepts, "
        "emits, description, when, required, tables, output",
        "v1.yaml:6:5: when[0]: a when: rule takes exactly one of equals, in, not_in, matches, "
        "present; got equals, in",
        "v1.yaml:10:14: when[1].matches: not a valid regular expression: missing ), "
        "unterminated subpattern at position 1",
        "v1.yaml:13:5: when[2].because: unknown setting `because` in a when: rule; known: "
        "field, equals, in, not_in, matches, present, reason",
        "v1.yaml:14:19: required[1]: `pid3` is not an HL7 path (write it like PID-5.1, "
        "PID-3[2].4 or OBX-5)",
        "v1.yaml:16:3: tables.administrative-sex: table `administrative-sex` is shipped with "
        "Conduit; give yours another name so readers know which one is meant",
        "v1.yaml:17:3: tables.Visit: table name `Visit` must be lower-case letters, digits "
        "and dashes",
        "v1.yaml:18:10: tables.empty: table `empty` maps codes to values, e.g. "
        "{I: IMP, O: AMB}",
        "v1.yaml:21:13: output.identifier[0].each: each: takes a segment (OBX) or a field "
        "(PID-3), without indices or components",
        "v1.yaml:23:7: output.identifier[1].each: each: needs the fields of each item beside it",
        "v1.yaml:25:5: output.name.each: each: makes list items; write it as a list item: "
        "`- each: PID-3`",
    ]


def test_missing_settings_and_bad_yaml(tmp_path: Path) -> None:
    assert load_errors(tmp_path, "description: nothing else\n") == [
        f"v1.yaml:1:1: `{key}:` is missing; a declarative mapping needs `mapping:`, "
        "`accepts:`, `emits:`, `output:`"
        for key in ("mapping", "accepts", "emits", "output")
    ]
    assert load_errors(tmp_path, "# only a comment\n") == [
        "v1.yaml:1:1: the file is empty; a declarative mapping needs `mapping:`, `accepts:`, "
        "`emits:`, `output:`"]
    bad = load_errors(tmp_path, "mapping: demo@1\noutput:\n  id: [unclosed\n")
    assert len(bad) == 1 and bad[0].startswith("v1.yaml:4:1: invalid YAML")


def test_environment_variables_are_not_interpolated(tmp_path: Path) -> None:
    """A mapping maps the same way on every host; `${X}` is text like any other."""
    mapping = load(tmp_path, """
        output:
          note: "price in ${CURRENCY} and $$"
    """)
    assert run(mapping, message("PID|1||A1")) == {"note": "price in ${CURRENCY} and $$"}


# ---- run time -----------------------------------------------------------------------------


PATIENT = """
    when:
      - field: MSH-9.1
        in: [ADT]
      - field: MSH-9.2
        not_in: [A40]
        reason: merges are mapped elsewhere
    required: [PID-3, PID-7]
    output:
      resourceType: Patient
      id: "=id('Patient', MSH-4.1, PID-3.1)"
      birthDate: "=date(PID-7)"
"""


def test_guards_skip_with_the_rule_or_the_given_reason(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT)
    pid = "PID|1||A1||DOE||19800102"
    assert run(mapping, message(pid, msh9="ORU^R01")) == Skip(
        "when: MSH-9.1 in ['ADT'] does not hold")
    assert run(mapping, message(pid, msh9="ADT^A40")) == Skip("merges are mapped elsewhere")
    assert run(mapping, message(pid))["birthDate"] == "1980-01-02"


@pytest.mark.parametrize(
    ("condition", "msh9", "holds"),
    [
        ("equals: ADT", "ADT^A01", True),
        ("equals: ADT", "ORU^R01", False),
        ("matches: '^A0[1-4]$'", "ADT^A03", True),
        ("present: true", "ADT", True),
        ("present: false", "ADT^A01", False),
    ],
)
def test_guard_conditions(tmp_path: Path, condition: str, msh9: str, holds: bool) -> None:
    field = "MSH-9.1" if "equals" in condition else "MSH-9.2"
    if condition == "present: true":
        field = "MSH-9.1"
    mapping = load(tmp_path, f"""
        when:
          - field: {field}
            {condition}
        output:
          ok: yes
    """)
    out = run(mapping, message("PID|1||A1", msh9=msh9))
    assert (out == {"ok": True}) is holds


def test_a_guard_can_test_an_expression(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        when:
          - field: upper(MSH-9.1)
            equals: ADT
        output:
          ok: "=MSH-9.1"
    """)
    assert run(mapping, message("PID|1||A1", msh9="adt^A01")) == {"ok": "adt"}


PHI_PID = "PID|1|EXT-55012|{pid3}||QUARTERMAINE^ODALYS||{dob}|F|||9 ELM ST^^SALEM^MA"


@pytest.mark.parametrize("pid3", ["", "^^^MERCY^MR", '""'])
def test_required_field_missing_fails_naming_it_without_values(tmp_path: Path, pid3: str) -> None:
    mapping = load(tmp_path, PATIENT)
    with pytest.raises(MappingError) as caught:
        run(mapping, message(PHI_PID.format(pid3=pid3, dob="19770315")))
    assert caught.value.field == "PID-3"
    assert str(caught.value) == "PID-3: is required by this mapping but is missing or empty"


def test_required_accepts_a_value_in_a_later_repetition(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT)
    out = run(mapping, message(PHI_PID.format(pid3="~A1^^^MERCY^MR", dob="19770315")))
    assert out["resourceType"] == "Patient"


def test_required_segment(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        required: [PV1]
        output:
          ok: yes
    """)
    with pytest.raises(MappingError, match=r"^PV1: is required"):
        run(mapping, message("PID|1||A1"))
    assert run(mapping, message("PID|1||A1", "PV1|1")) == {"ok": True}


def test_bad_date_fails_naming_the_field_not_the_value(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT)
    with pytest.raises(MappingError) as caught:
        run(mapping, message(PHI_PID.format(pid3="A1", dob="19770231")))
    assert caught.value.field == "PID-7"
    for value in ("19770231", "QUARTERMAINE", "ODALYS", "EXT-55012", "ELM", "SALEM"):
        assert value not in str(caught.value)


def test_unknown_code_without_default_fails_naming_the_field(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        output:
          gender: "=lookup('administrative-sex', PID-8)"
          class: "=lookup('visit-class', PV1-2, 'AMB')"
        tables:
          visit-class: {I: IMP}
    """)
    assert run(mapping, message("PID|1||A1|||||M", "PV1|1|Q")) == {
        "gender": "male", "class": "AMB"}
    assert run(mapping, message("PID|1||A1", "PV1|1|I")) == {"class": "IMP"}
    with pytest.raises(MappingError) as caught:
        run(mapping, message("PID|1||A1|||||Q"))
    assert str(caught.value) == (
        "PID-8: is not a code in table administrative-sex; add it to the table or give "
        "lookup() a default")


def test_each_over_segments_and_nested_repetitions(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        output:
          resourceType: Bundle
          entry:
            - resource: {resourceType: Patient, id: "=PID-3.1"}
            - each: OBX
              resource:
                resourceType: Observation
                code: {text: "=OBX-3.2"}
                valueString: "=OBX-5"
                note:
                  - each: OBX-5
                    text: "=concat(MSH-4.1, ': ', OBX-5)"
                    first: "=OBX-5[1]"
                patientName: "=PID-5.1"
    """)
    raw = message(
        "PID|1||A1||DOE",
        "OBX|1|ST|A^Alpha||one~two",
        "NTE|1||between",
        "OBX|2|ST|B^Beta||three",
        "OBX|3|ST|C^Gamma",
    )
    entries = run(mapping, raw)["entry"]
    assert entries[0] == {"resource": {"resourceType": "Patient", "id": "A1"}}
    observations = [e["resource"] for e in entries[1:]]
    assert [o["code"]["text"] for o in observations] == ["Alpha", "Beta", "Gamma"]
    assert observations[0]["valueString"] == "one"
    assert observations[0]["note"] == [
        {"text": "MERCY: one", "first": "one"},
        {"text": "MERCY: two", "first": "one"},
    ]
    assert observations[1]["note"] == [{"text": "MERCY: three", "first": "three"}]
    assert "note" not in observations[2] and "valueString" not in observations[2]
    assert {o["patientName"] for o in observations} == {"DOE"}


def test_errors_inside_each_name_the_segment_and_repetition(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        output:
          times:
            - each: OBX
              at: "=datetime(OBX-14)"
          births:
            - each: PID-7
              on: "=date(PID-7)"
    """)
    with pytest.raises(MappingError) as caught:
        run(mapping, message("OBX|1|NM|||1||||||F|||20240101", "OBX|2|NM|||1||||||F|||2024x"))
    assert caught.value.field == "OBX[2]-14"
    with pytest.raises(MappingError) as caught:
        run(mapping, message("PID|1||A1||||19800101~19801301"))
    assert caught.value.field == "PID-7[2]"


def test_empty_values_objects_and_lists_are_left_out(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        output:
          resourceType: Patient
          active: true
          count: 0
          note: ""
          nothing:
          name:
            - family: "=PID-5.1"
              given: ["=PID-5.2", "=PID-5.3"]
          contact:
            - name: {family: "=NK1-2.1"}
              relationship: [{text: "=NK1-3.2"}]
          literal: "==PID-5.1 is kept as text"
          telecom:
            - each: PID-13
              value: "=PID-13.1"
    """)
    assert run(mapping, message("PID|1||A1||DOE^^ANN")) == {
        "resourceType": "Patient",
        "active": True,
        "count": 0,
        "name": [{"family": "DOE", "given": ["ANN"]}],
        "literal": "=PID-5.1 is kept as text",
    }


def test_same_message_same_output_bytes(tmp_path: Path) -> None:
    mapping = load(tmp_path, PATIENT)
    raw = message("PID|1||A1^^^MERCY^MR||DOE||19800102")
    body = Hl7v2Codec().parse(raw).body
    first = mapping.apply(body)
    assert first == mapping.apply(body) == mapping.apply(Hl7v2Codec().parse(raw).body)
    other = mapping.apply(Hl7v2Codec().parse(raw.replace(b"A1^", b"A2^")).body)
    assert json.loads(first)["id"] != json.loads(other)["id"]


def test_table_entries_are_copied_not_shared(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        tables:
          cls: {I: {code: IMP}}
        output:
          class: "=lookup('cls', PV1-2)"
    """)
    body = Hl7v2Codec().parse(message("PV1|1|I")).body
    first = mapping.func(body)
    first["class"]["code"] = "changed"
    assert mapping.func(body) == {"class": {"code": "IMP"}}


def test_text_function_on_an_object_fails_without_values(tmp_path: Path) -> None:
    mapping = load(tmp_path, """
        output:
          x: "=upper(lookup('patient-class', PV1-2))"
    """)
    with pytest.raises(MappingError, match=r"upper\(\) needs text, but got a table entry"):
        run(mapping, message("PV1|1|I"))


def test_a_message_that_is_not_hl7v2_is_refused(tmp_path: Path) -> None:
    mapping = load(tmp_path, "output: {ok: yes}\n")
    with pytest.raises(MappingError, match="demo@1 reads HL7v2 messages, got dict"):
        mapping.apply({"resourceType": "Patient"})


def test_empty_output_is_an_error(tmp_path: Path) -> None:
    mapping = load(tmp_path, "output: {id: '=PID-3.1'}\n")
    with pytest.raises(MappingError, match="empty output"):
        run(mapping, message("PID|1"))


# ---- discovery ----------------------------------------------------------------------------


PY_V2 = """
    from engine.mapping import mapping
    @mapping("demo@2", accepts="hl7v2", emits="application/fhir+json")
    def run(msg):
        return {"version": 2}
"""
YAML_V1 = """
    mapping: demo@1
    accepts: hl7v2
    emits: application/fhir+json
    output: {version: 1, control: "=MSH-10"}
"""


def test_yaml_and_python_versions_live_side_by_side(tmp_path: Path) -> None:
    write(tmp_path, "demo", "v1.yaml", YAML_V1)
    write(tmp_path, "demo", "v2.py", PY_V2)
    write(tmp_path, "demo", "notes.yaml", "not a mapping: true\n")  # not v<N>: ignored
    catalog = MappingCatalog.discover(tmp_path)
    assert catalog.refs() == ["demo@1", "demo@2"]
    assert catalog.versions("demo") == [1, 2]
    v1 = catalog.get("demo@1")
    assert (v1.name, v1.version, v1.accepts, v1.emits) == (
        "demo", 1, "hl7v2", "application/fhir+json")
    assert v1.file.endswith("v1.yaml")
    assert run(v1, message()) == {"version": 1, "control": "C1"}
    assert catalog.get("demo@2").apply(None) == b'{"version":2}'


def test_yaml_file_must_declare_its_place(tmp_path: Path) -> None:
    write(tmp_path, "demo", "v2.yaml", YAML_V1)
    with pytest.raises(ConfigErrors) as caught:
        MappingCatalog.discover(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/demo/v2.yaml:1:10: mapping: declares demo@1; a file at this place must "
        "declare exactly `mapping: demo@2`")


def test_python_and_yaml_for_one_version_is_an_error_naming_both(tmp_path: Path) -> None:
    write(tmp_path, "demo", "v1.yaml", YAML_V1)
    write(tmp_path, "demo", "v1.py", PY_V2.replace("demo@2", "demo@1"))
    with pytest.raises(ConfigError) as caught:
        MappingCatalog.discover(tmp_path)
    text = str(caught.value)
    assert f"{tmp_path}/demo/v1.py" in text and f"{tmp_path}/demo/v1.yaml" in text
    assert "both declare demo@1" in text


def test_yml_extension_is_named(tmp_path: Path) -> None:
    write(tmp_path, "demo", "v1.yml", YAML_V1)
    with pytest.raises(ConfigError, match=r"v1\.yml: rename it v1\.yaml"):
        MappingCatalog.discover(tmp_path)


def shipped(tmp_path: Path) -> MappingCatalog:
    """The shipped example and the Python ADT mapping, discovered together (linked into a
    folder of their own, so another mapping being edited does not break these tests)."""
    for name in ("hl7v2-adt-to-fhir", "hl7v2-patient-summary"):
        (tmp_path / name).symlink_to(ROOT / "mappings" / name)
    return MappingCatalog.discover(tmp_path)


def test_shipped_example_is_discovered_with_the_python_mappings(tmp_path: Path) -> None:
    refs = shipped(tmp_path).refs()
    assert {"hl7v2-adt-to-fhir@1", "hl7v2-patient-summary@1"} <= set(refs)


# ---- performance sanity -----------------------------------------------------------------


def test_speed_compared_with_the_python_adt_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Reports µs per message (no assertion on time: see DESIGN.md)."""
    catalog = shipped(tmp_path)
    raw = (ROOT / "mappings/hl7v2-adt-to-fhir/fixtures/v1/epic_a01_admit.hl7").read_bytes()
    codec = Hl7v2Codec()
    timings = {}
    for ref in ("hl7v2-patient-summary@1", "hl7v2-adt-to-fhir@1"):
        mapping = catalog.get(ref)
        rounds = 300
        start = time.perf_counter()
        for _ in range(rounds):
            assert isinstance(mapping.apply(codec.parse(raw).body), bytes)
        timings[ref] = (time.perf_counter() - start) / rounds * 1e6
    with capsys.disabled():
        print("\n" + ", ".join(f"{ref}: {us:.0f} µs/message (parse + map)"
                               for ref, us in timings.items()))
