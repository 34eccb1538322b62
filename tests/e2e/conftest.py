"""Fixtures for end-to-end tests: the daemon as a real process and a real FHIR server.

Each test gets its own data folder and ports through environment variables only, and
any daemon still running when the test ends is killed, so one failing test never leaves
a process behind that holds a port or a data folder for the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.support import CountingFhirServer, Daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """`conduit run` with the shipped configuration, not started yet (tests choose the
    FHIR destination first); killed in teardown if a test left it running."""
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        d.kill_leftover()


@pytest.fixture
async def fhir() -> AsyncIterator[CountingFhirServer]:
    """A real HTTP FHIR receiver on a free port, served by the test's event loop (so
    tests must wait with asyncio, never block, while the daemon delivers to it)."""
    server = await CountingFhirServer().start()
    try:
        yield server
    finally:
        await server.stop()
