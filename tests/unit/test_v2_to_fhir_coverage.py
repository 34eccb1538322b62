"""The README's coverage table is what the builders declare, and every type the
dispatcher names that has a builder also has its own mapping."""

from __future__ import annotations

import importlib

from engine.maplib.v2_to_fhir import coverage
from engine.maplib.v2_to_fhir.dispatch import TYPES
from engine.mapping import MappingCatalog
from tests.harness import REPO

CATALOG = MappingCatalog.discover(REPO / "mappings")


def test_the_readme_table_matches_the_builders_and_mappings():
    readme = (REPO / "README.md").read_text()
    assert coverage.section(CATALOG) in readme, (
        "README.md's coverage table is stale: run conduit mapping coverage --update README.md")


def test_every_builder_declares_its_events_and_resources_and_has_a_mapping():
    for code, events, ref, resources in coverage.rows(CATALOG):
        assert events and resources, code
        assert CATALOG.get(ref) is not None, f"{code} has a builder but no {ref}"
        module = importlib.import_module(f"engine.maplib.v2_to_fhir.{code.lower()}")
        assert callable(module.build)


def test_every_type_of_the_issue_is_named_by_the_dispatcher():
    assert set(TYPES) == {"ADT", "BAR", "DFT", "REF", "MDM", "OMG", "OML", "ORM", "ORU",
                          "OUL", "RDE", "RDS", "RAS", "RGV", "VXU", "SIU", "PPR"}
