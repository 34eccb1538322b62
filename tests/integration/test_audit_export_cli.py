"""`conduit audit export` records an export in the audit trail only when the file is
there: a folder that does not exist is refused in one line before anything is read or
recorded, and a write that fails midway leaves an event saying it failed, never one
saying it succeeded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from engine.cli import audit_reports
from tests.integration.test_backup import Store, _conduit


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    s = Store(tmp_path / "data")
    s.add(3)
    return s


def exports_recorded(store: Store) -> list[dict[str, object]]:
    """The details of every audit-export event in the store's trail."""
    with sqlite3.connect(store.db_path) as conn:
        rows = conn.execute("SELECT detail FROM audit WHERE kind = 'admin' ORDER BY seq")
        details = [msgspec.json.decode(r[0]) for r in rows]
    return [d for d in details if d.get("action") == "audit-export"]


def test_a_missing_folder_is_refused_in_one_line_and_not_recorded(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nonexistent" / "dir" / "x.audit"
    assert _conduit("audit", "export", "--from", "2000-01-01", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("conduit: ") and str(out.parent) in err
    assert not out.exists() and not out.parent.exists()
    assert exports_recorded(store) == []


def test_a_folder_given_as_the_file_is_refused(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _conduit("audit", "export", "--out", str(tmp_path)) == 2
    assert "is a folder" in capsys.readouterr().err
    assert exports_recorded(store) == []


def test_a_failed_write_is_recorded_as_failed_and_leaves_no_file(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while the export is written: no file, no claim of an export."""
    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_reports.os, "replace", disk_full)
    out = tmp_path / "q4.audit"
    assert _conduit("audit", "export", "--from", "2000-01-01", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err
    assert not out.exists() and list(tmp_path.glob(".q4.audit.*")) == []
    recorded = exports_recorded(store)
    assert [d["outcome"] for d in recorded] == ["failed"]


def test_a_written_export_is_recorded_once_in_place(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q4.audit"
    assert _conduit("audit", "export", "--from", "2000-01-01", "--out", str(out)) == 0
    assert "exported 6 events #1..#6" in capsys.readouterr().out
    assert out.is_file()
    recorded = exports_recorded(store)
    assert len(recorded) == 1 and recorded[0]["outcome"] == "exported"
    assert recorded[0]["events"] == 6
