"""Fixtures shared by the integration tests: an engine in-process, a FHIR server and a
key prefix of the test's own on the shared Redis."""

import uuid

import pytest
import redis

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


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix():
    """A key prefix of the test's own on the shared Redis, removed afterwards."""
    name = f"conduit-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{{{name}}}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
