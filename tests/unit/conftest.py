"""Fixtures shared by the unit tests."""

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root we run in, so files are named as an analyst sees them."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "channels").mkdir()
    return tmp_path
