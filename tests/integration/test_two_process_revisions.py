"""Two engines starting at the same instant on one PostgreSQL database with the same
channel files (two hosts with conf/production.yaml): the files are recorded as one
revision, which both run.

Before, each looked at the live revision before either made one, so each recorded the
files: a second "bootstrap" (or "engine start") revision, superseding the first, a
second revision-live event in the trail, and the first engine swapping to a revision
of the very files it was running. Each engine runs on its own thread and connections,
and both look at the live revision before either goes on, as two processes can.
"""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

from engine.change.opening import open_revisions
from engine.change.revisions import LIVE, RevisionStore
from engine.change.startup import Settled, Who, settle
from engine.config.loader import load_all
from engine.mapping import MappingCatalog


def _host(root: Path, name: str, pg_url: str, keys: Path, out: str, approvals: int = 0
          ) -> Path:
    """One host's configuration: its own folders, the shared database and keys."""
    home = root / name
    (home / "channels").mkdir(parents=True)
    (home / "mappings").mkdir()
    (home / "channels" / "adt.yaml").write_text(textwrap.dedent(f"""\
        source: {{type: mllp, port: 39517}}
        destinations:
          - {{name: files, type: file, directory: "{root / out}"}}
        """))
    conf = home / "conduit.yaml"
    conf.write_text(f"data_dir: {home / 'data'}\nchannels_dir: {home / 'channels'}\n"
                    f"mappings_dir: {home / 'mappings'}\n"
                    f"store: {{url: \"{pg_url}\"}}\nkeys: {{directory: \"{keys}\"}}\n"
                    f"change_control: {{approvals: {approvals}}}\n")
    return conf


def _start_together(confs: list[Path], monkeypatch: pytest.MonkeyPatch, look: str = "live",
                    deploy: bool = False) -> list[Settled]:
    """settle() of each configuration on its own thread, each having made its first
    `look` (RevisionStore.live, or .history: the pending ones) before any goes on."""
    looked = threading.Barrier(len(confs), timeout=10)
    first_look = threading.local()
    read = getattr(RevisionStore, look)

    def looking(self, *args, **kwargs):
        found = read(self, *args, **kwargs)
        if not getattr(first_look, "done", False):
            first_look.done = True
            looked.wait()
        return found

    monkeypatch.setattr(RevisionStore, look, looking)
    settled: dict[int, Settled] = {}
    errors: dict[int, BaseException] = {}

    def host(i: int, conf: Path) -> None:
        try:
            config, channels = load_all(conf, {})
            settled[i] = settle(config, channels, MappingCatalog.discover(
                config.mappings_dir), who=lambda _db: Who(f"os:host{i}", f"cli:host{i}"),
                env={}, deploy=deploy)
        except BaseException as exc:  # reported below
            errors[i] = exc

    threads = [threading.Thread(target=host, args=(i, c)) for i, c in enumerate(confs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    monkeypatch.undo()
    assert errors == {}, {i: repr(e) for i, e in errors.items()}
    return [settled[i] for i in range(len(confs))]


def _history(conf: Path) -> list[tuple[int, str, str]]:
    config, _ = load_all(conf, {})
    store, db = open_revisions(config)
    try:
        return [(r.number, r.state, r.reason) for r in store.history()]
    finally:
        db.dispose()


def test_two_engines_starting_on_a_new_database_record_one_bootstrap(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    confs = [_host(tmp_path, name, pg_url, keys, "out-1") for name in ("a", "b")]
    a, b = _start_together(confs, monkeypatch)
    assert a.revision == b.revision == 1
    assert _history(confs[0]) == [(1, LIVE, "bootstrap: the first start")]


def test_two_engines_starting_with_changed_files_record_them_once(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    confs = [_host(tmp_path, name, pg_url, keys, "out-1") for name in ("a", "b")]
    _start_together(confs[:1], monkeypatch)  # revision 1
    for name in ("a", "b"):  # both hosts get the new files
        _host(tmp_path, f"{name}2", pg_url, keys, "out-2")
    confs = [tmp_path / f"{name}2" / "conduit.yaml" for name in ("a", "b")]

    a, b = _start_together(confs, monkeypatch)
    assert a.revision == b.revision == 2
    assert [(n, s) for n, s, _ in _history(confs[0])] == [(2, LIVE), (1, "superseded")]


def test_two_engines_started_with_deploy_wait_on_one_pending_revision(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`conduit run --deploy` on two hosts with the same new files, change control on:
    one revision waits for approval, not two (the second would stay pending after the
    first was approved, and could be approved live again later)."""
    keys = tmp_path / "keys"
    _start_together([_host(tmp_path, "a", pg_url, keys, "out-1", approvals=1)], monkeypatch)
    confs = [_host(tmp_path, f"{name}2", pg_url, keys, "out-2", approvals=1)
             for name in ("a", "b")]

    a, b = _start_together(confs, monkeypatch, look="history", deploy=True)
    assert a.revision == b.revision == 1  # the live one runs meanwhile
    assert [(n, s) for n, s, _ in _history(confs[0])] == [(2, "pending"), (1, LIVE)]
