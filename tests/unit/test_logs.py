"""engine/logs.py: in a group of workers each line says which worker wrote it, in both
formats; a lone process's lines carry no worker."""

from __future__ import annotations

import json
import logging

import pytest

from engine import logs
from engine.config.schema import LogConfig


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    kept = logs._handler
    yield
    logs._handler = kept
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("worker", [None, "1/2/all", "0/3/ingest"])
def test_a_worker_names_itself_in_json_lines(tmp_path, monkeypatch, restore_logging, worker):
    if worker is None:
        monkeypatch.delenv("CONDUIT_WORKER", raising=False)
    else:
        monkeypatch.setenv("CONDUIT_WORKER", worker)
    path = tmp_path / "conduit.log"
    logs.setup(LogConfig(format="json", file=str(path)))
    logging.getLogger("conduit.test").warning("destination %s paused", "ch/out")
    logging.getLogger().handlers[0].flush()
    entry = json.loads(path.read_text().splitlines()[-1])
    assert entry["msg"] == "destination ch/out paused"
    assert entry.get("worker") == (None if worker is None else int(worker.split("/")[0]))


def test_a_worker_names_itself_in_text_lines(tmp_path, monkeypatch, restore_logging):
    monkeypatch.setenv("CONDUIT_WORKER", "1/2/deliver")
    path = tmp_path / "conduit.log"
    logs.setup(LogConfig(file=str(path)))
    logging.getLogger("conduit.test").warning("destination paused")
    logging.getLogger().handlers[0].flush()
    assert "WARNING worker 1 conduit.test: destination paused" in path.read_text()
