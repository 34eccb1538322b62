"""`--conf` goes before or after the command's name, on every command that reads the
configuration (scripts/run and the production example put it after `run`); a command
that needs neither the settings nor the store does not load them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser, commands
from engine.cli.common import DEFAULT_CONF, conf_path

REPO = Path(__file__).resolve().parents[2]
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


def test_sending_a_file_does_not_load_the_store_or_the_connectors():
    """`conduit send` starts in a tenth of the time when the command line does not load
    what only the admin and change-control commands use (sqlalchemy, every connector)."""
    probe = ("import sys; from engine.cli import main; main(['send', '--mllp', "
             "'127.0.0.1:1', '--timeout', '1', sys.argv[1]]); "
             "print([m for m in ('sqlalchemy', 'engine.registry', 'engine.config.loader') "
             "if m in sys.modules])")
    fixture = REPO / "mappings/hl7v2-adt-to-fhir/fixtures/v1/cerner_a04_register.hl7"
    done = subprocess.run([sys.executable, "-c", probe, str(fixture)], capture_output=True,
                          text=True, timeout=60)
    assert "Connect call failed" in done.stderr or "refused" in done.stderr, done.stderr
    assert done.stdout.strip() == "[]"
