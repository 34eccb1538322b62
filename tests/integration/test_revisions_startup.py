"""What `conduit run` does about revisions before the engine starts
(engine.change.startup): the bootstrap, a new revision for changed files without change
control, the refusal with it, and `--deploy`, which still waits for the approval."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.change.opening import open_revisions
from engine.change.revisions import LIVE, PENDING
from engine.change.startup import Who, settle
from engine.config.loader import load_all
from engine.errors import ConduitError
from engine.mapping import MappingCatalog

ANN = Who("os:ann", "cli:ann")


def write(root: Path, approvals: int, folder: str) -> Path:
    (root / "channels").mkdir(exist_ok=True)
    (root / "mappings").mkdir(exist_ok=True)
    (root / "channels" / "adt.yaml").write_text(textwrap.dedent(f"""\
        source: {{type: mllp, port: 39{approvals}17}}
        destinations:
          - {{name: files, type: file, directory: "{root / folder}"}}
        """))
    conf = root / "conduit.yaml"
    conf.write_text(f"data_dir: {root / 'data'}\nchannels_dir: {root / 'channels'}\n"
                    f"mappings_dir: {root / 'mappings'}\n"
                    f"change_control: {{approvals: {approvals}}}\n")
    return conf


def start(conf: Path, **kw):
    config, channels = load_all(conf, {})
    return config, settle(config, channels, MappingCatalog.discover(config.mappings_dir),
                          who=lambda _db: ANN, env={}, **kw)


def directory(settled) -> str:
    return settled.channels[0].config.destinations[0].directory


def test_without_change_control_every_changed_start_is_a_new_live_revision(tmp_path):
    conf = write(tmp_path, 0, "out-1")
    config, first = start(conf)
    assert first.revision == 1
    assert start(conf)[1].revision == 1  # the same files: nothing new
    write(tmp_path, 0, "out-2")
    _, second = start(conf)
    assert second.revision == 2 and directory(second).endswith("out-2")
    store, db = open_revisions(config)
    try:
        rev = store.get(2)
        assert (rev.state, rev.author, rev.reason) == (LIVE, "os:ann", "engine start")
        assert store.get(1).reason.startswith("bootstrap")
    finally:
        db.dispose()


def test_with_change_control_changed_files_are_refused_or_wait_for_approval(tmp_path):
    conf = write(tmp_path, 1, "out-1")
    config, first = start(conf)
    assert first.revision == 1  # the bootstrap is live without approval
    write(tmp_path, 1, "out-2")
    with pytest.raises(ConduitError) as refused:
        start(conf)
    text = str(refused.value)
    assert f"{config.channels_dir}/adt.yaml" in text and "conduit deploy" in text
    assert "live revision 1" in text and "--deploy" in text
    _, deployed = start(conf, deploy=True)
    assert deployed.revision == 1 and directory(deployed).endswith("out-1")
    assert start(conf, deploy=True)[1].revision == 1  # the same files: no new revision
    store, db = open_revisions(config)
    try:
        assert [(r.number, r.state) for r in store.history()] == [(2, PENDING), (1, LIVE)]
        store.approve(2, approver="bob", is_admin=True, actor="cli:bob", approvals=1)
    finally:
        db.dispose()
    _, approved = start(conf)
    assert approved.revision == 2 and directory(approved).endswith("out-2")


def test_a_worker_runs_the_live_revision_from_the_store(tmp_path):
    conf = write(tmp_path, 1, "out-1")
    start(conf)
    write(tmp_path, 1, "out-2")
    _, worker = start(conf, follow_only=True)  # its supervisor settled; no refusal here
    assert worker.revision == 1 and directory(worker).endswith("out-1")
    assert worker.channels[0].file.endswith("adt.yaml")
