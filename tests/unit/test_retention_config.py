"""`retention:` in a channel file and in conf/conduit.yaml: a duration of at least a
minute, every mistake reported at file:line:col with its field, and the engine's value
standing in for channels that set none (engine.store.retention.retention_of)."""

from __future__ import annotations

import re

import pytest

from engine.config.loader import load_engine_config
from engine.errors import ConfigErrors
from engine.store.retention import describe, retention_of
from tests.unit.test_config_loader import GOOD, channel_errors, one_channel, write


def test_a_channel_retention_reads_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = one_channel(tmp_path, GOOD + "retention: 30d\n")
    assert loaded.config.retention == 30 * 86400
    assert describe(loaded.config.retention) == "30d"
    assert one_channel(tmp_path, GOOD).config.retention is None  # kept for ever


def test_a_bad_retention_names_file_line_and_field(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert channel_errors(tmp_path, GOOD + "retention: a month\n") == [
        "channels/c.yaml:8:12: retention: expected a retention such as 30d, 12h or 90m, got "
        "text \"a month\""]
    [error] = channel_errors(tmp_path, GOOD + "retention: 10s\n")
    assert error.startswith("channels/c.yaml:8:12: retention: a retention must be at least 1m "
                            "(leave it out to keep content for ever)")
    [error] = channel_errors(tmp_path, GOOD + "retention: 0\n")
    assert "at least 1m" in error


def test_the_engine_retention_is_the_default_of_channels_without_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "conduit.yaml", "retention: 90d\n")
    engine = load_engine_config("conduit.yaml", {})
    assert engine.retention == 90 * 86400
    own = one_channel(tmp_path, GOOD + "name: own\nretention: 12h\n").config
    other = one_channel(tmp_path, GOOD + "name: other\n").config
    assert retention_of([own, other], engine.retention) == {"own": 43200.0,
                                                           "other": 90 * 86400.0}
    assert retention_of([own, other], None) == {"own": 43200.0}
    write(tmp_path, "bad.yaml", "retention: 5s\n")
    with pytest.raises(ConfigErrors, match=re.escape(
            "bad.yaml:1:12: retention: a retention must be at least 1m")):
        load_engine_config("bad.yaml", {})
