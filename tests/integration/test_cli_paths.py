"""Ordinary path mistakes in the auditor's and operator's offline commands (a file that
is not there, a folder given for a file, a destination under a file) are said in one
line, `conduit: ...`, with a non-zero exit: never a Python traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from tests.integration.test_backup import Store, _conduit


def one_line_error(capsys: pytest.CaptureFixture[str], *names: str) -> str:
    """The command's stderr, asserted to be one `conduit: ` line naming `names`."""
    err = capsys.readouterr().err
    assert err.startswith("conduit: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err
    return err


@pytest.fixture
def auditor(tmp_path: Path) -> Path:
    """An auditor's folder: a file that is no export, a key, and a subfolder."""
    (tmp_path / "q4.audit").write_text("{}")
    (tmp_path / "engine.pem").write_text("not a key")
    (tmp_path / "sub").mkdir()
    return tmp_path


@pytest.mark.parametrize(("export", "key", "named"), [
    ("nonexist.audit", "engine.pem", "nonexist.audit"),
    ("q4.audit", "nokey.pem", "nokey.pem"),
    ("sub", "engine.pem", "sub"),
    ("q4.audit", "sub", "sub"),
])
def test_check_export_says_which_file_it_cannot_read(
        auditor: Path, capsys: pytest.CaptureFixture[str], export: str, key: str,
        named: str) -> None:
    rc = main(["audit", "check-export", str(auditor / export), "--public-key",
               str(auditor / key)])
    assert rc == 2
    one_line_error(capsys, str(auditor / named))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("CONDUIT_KEY", raising=False)
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    s = Store(tmp_path / "data")
    s.add(2)
    (tmp_path / "afile").write_text("")
    return s


def test_backup_under_a_file_is_refused(store: Store, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _conduit("backup", str(tmp_path / "afile" / "bk")) == 2
    one_line_error(capsys, str(tmp_path / "afile"))


def test_keys_to_under_a_file_is_refused_before_the_backup_is_taken(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _conduit("backup", str(tmp_path / "bk"), "--keys-to",
                    str(tmp_path / "afile" / "k")) == 2
    one_line_error(capsys, str(tmp_path / "afile"))
    assert not (tmp_path / "bk").exists()


def test_restore_of_a_file_is_refused(store: Store, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _conduit("restore", str(tmp_path / "afile")) == 2
    one_line_error(capsys, str(tmp_path / "afile"))


def test_restore_into_a_data_folder_that_cannot_be_made(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _conduit("backup", str(tmp_path / "bk")) == 0
    capsys.readouterr()
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "afile" / "data"))
    assert _conduit("restore", str(tmp_path / "bk"), "--keys-from",
                    str(store.keys_dir)) == 2
    one_line_error(capsys, str(tmp_path / "afile" / "data"))


@pytest.mark.parametrize("command", [("keys", "status"), ("keys", "rotate"),
                                     ("audit", "verify")])
def test_a_data_folder_that_cannot_be_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "afile" / "data"))
    assert _conduit(*command) == 2
    one_line_error(capsys, str(tmp_path / "afile" / "data"))
