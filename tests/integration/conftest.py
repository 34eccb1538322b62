"""Fixtures shared by the integration tests: an engine in-process and a FHIR server."""

import pytest

from tests.fhir_server import FhirTestServer
from tests.harness import EngineHarness


@pytest.fixture
async def harness(tmp_path):
    h = EngineHarness(tmp_path)
    yield h
    await h.stop()


@pytest.fixture
async def fhir():
    server = await FhirTestServer().start()
    yield server
    await server.stop()
