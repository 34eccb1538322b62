"""`--conf` goes before or after the command's name, on every command that reads the
configuration (scripts/run and the production example put it after `run`)."""

from __future__ import annotations

import argparse

import pytest

from engine.cli import build_parser, commands
from engine.cli.common import DEFAULT_CONF, conf_path

NO_CONF = {"send", "parse", "ack",  # they read files and sockets, never the settings
           "audit check-export"}  # an auditor's machine has no settings, only the file


def _name(command: argparse.ArgumentParser) -> str:
    return command.prog.removeprefix("conduit ")


def test_every_command_that_reads_the_configuration_takes_conf():
    every = {_name(c): c for c in commands(build_parser())}
    assert {"run", "validate", "queue list", "users add", "keys rotate"} <= set(every)
    for name, command in every.items():
        takes = "--conf" in command._option_string_actions
        assert takes == (name not in NO_CONF), name


@pytest.mark.parametrize("argv", [
    ["run", "--conf", "x.yaml"],
    ["--conf", "x.yaml", "run"],
    ["--conf", "other.yaml", "run", "--conf", "x.yaml"],  # the nearer one wins
    ["validate", "--conf", "x.yaml"],
    ["queue", "list", "--conf", "x.yaml"],
    ["queue", "dead", "lab", "--conf", "x.yaml"],
    ["users", "add", "ana", "--role", "analyst", "--conf", "x.yaml"],
    ["--conf", "x.yaml", "audit", "verify"],
    ["mapping", "diff", "a@1", "a@2", "f.hl7", "--conf", "x.yaml"],
])
def test_conf_before_or_after_the_command(argv, monkeypatch):
    monkeypatch.delenv("CONDUIT_CONF", raising=False)
    assert conf_path(build_parser().parse_args(argv)) == "x.yaml"


def test_without_conf_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv("CONDUIT_CONF", raising=False)
    assert conf_path(build_parser().parse_args(["run"])) == DEFAULT_CONF
    monkeypatch.setenv("CONDUIT_CONF", "env.yaml")
    assert conf_path(build_parser().parse_args(["run"])) == "env.yaml"
    assert conf_path(build_parser().parse_args(["run", "--conf", "x.yaml"])) == "x.yaml"


def test_commands_without_settings_refuse_conf_after_their_name(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["parse", "f.hl7", "--conf", "x.yaml"])
    assert "unrecognized arguments: --conf" in capsys.readouterr().err
