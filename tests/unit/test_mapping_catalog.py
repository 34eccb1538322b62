"""Discovery of mapping plugins and name@version pinning."""

import textwrap

import pytest

from engine.errors import ConfigError, MappingError
from engine.mapping import MappingCatalog, Skip


def _write(root, name, version, body):
    folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / f"v{version}.py").write_text(textwrap.dedent(body))


def test_versions_live_side_by_side(tmp_path):
    for v in (1, 2):
        _write(tmp_path, "demo", v, f"""
            from engine.mapping import mapping
            @mapping("demo@{v}", accepts="hl7v2", emits="application/json")
            def run(msg):
                return {{"version": {v}}}
        """)
    catalog = MappingCatalog.discover(tmp_path)
    assert catalog.refs() == ["demo@1", "demo@2"]
    assert catalog.versions("demo") == [1, 2]
    assert catalog.get("demo@2").apply(None) == b'{"version":2}'


def test_copied_file_without_bumped_declaration_is_caught(tmp_path):
    body = """
        from engine.mapping import mapping
        @mapping("demo@1", accepts="hl7v2", emits="application/json")
        def run(msg):
            return {}
    """
    _write(tmp_path, "demo", 1, body)
    _write(tmp_path, "demo", 2, body)
    with pytest.raises(ConfigError, match=r"v2\.py.*declares demo@1.*demo@2"):
        MappingCatalog.discover(tmp_path)


def test_import_error_names_the_file(tmp_path):
    _write(tmp_path, "broken", 1, "import not_a_module_anywhere\n")
    with pytest.raises(ConfigError, match=r"broken/v1\.py.*ModuleNotFoundError"):
        MappingCatalog.discover(tmp_path)


def test_unexpected_exception_becomes_mapping_error_without_values(tmp_path):
    _write(tmp_path, "buggy", 1, """
        from engine.mapping import mapping
        @mapping("buggy@1", accepts="hl7v2", emits="application/json")
        def run(msg):
            return {"x": int(msg)}
    """)
    mapping = MappingCatalog.discover(tmp_path).get("buggy@1")
    with pytest.raises(MappingError) as info:
        mapping.apply("SMITH^JOHN")
    text = str(info.value)
    assert "ValueError" in text and "v1.py:" in text
    assert "SMITH" not in text


def test_skip_and_text_results(tmp_path):
    _write(tmp_path, "skipper", 1, """
        from engine.mapping import Skip, mapping
        @mapping("skipper@1", accepts="hl7v2", emits="text/plain")
        def run(msg):
            return Skip("not for us") if msg == "skip" else "text out"
    """)
    mapping = MappingCatalog.discover(tmp_path).get("skipper@1")
    assert mapping.apply("skip") == Skip("not for us")
    assert mapping.apply("go") == b"text out"


def test_fhir_to_fhir_keeps_decimal_digits(tmp_path):
    """The FHIR codec reads 7.20 as Decimal("7.20"); a mapping that passes it on writes
    7.20 back, not 7.2: a FHIR decimal's digits are its precision."""
    from engine.formats.fhir import FhirCodec

    _write(tmp_path, "passthrough", 1, """
        from engine.mapping import mapping
        @mapping("passthrough@1", accepts="fhir", emits="application/fhir+json")
        def run(resource):
            return {"resourceType": "Observation", "valueQuantity": resource["valueQuantity"]}
    """)
    mapping = MappingCatalog.discover(tmp_path).get("passthrough@1")
    body = FhirCodec().parse(
        b'{"resourceType": "Observation", "valueQuantity": {"value": 7.20, "low": 0.050}}'
    ).body
    assert mapping.apply(body) == (
        b'{"resourceType":"Observation","valueQuantity":{"value":7.20,"low":0.050}}'
    )
