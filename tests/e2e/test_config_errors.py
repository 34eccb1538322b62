"""An analyst's typo must stop the daemon before it takes a single message, with one
screen that names every mistake by file, line, column and field."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
from pathlib import Path

from tests.e2e.support import CONDUIT, REPO, Daemon, port_accepts, run_tool

CHANNEL_FILE = "channels/adt-to-fhir.yaml"


def copy_config(daemon: Daemon) -> Path:
    """conf/ and channels/ copied into the test's folder, with mappings_dir pointing back
    at the repository's mappings (the copy would otherwise look for ./mappings)."""
    root = daemon.tmp_path / "site"
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copytree(REPO / "channels", root / "channels")
    conf = root / "conf" / "conduit.yaml"
    text, n = re.subn(r"(?m)^mappings_dir: .*$", f"mappings_dir: {REPO / 'mappings'}",
                      conf.read_text())
    assert n == 1, "conf/conduit.yaml no longer has a top-level mappings_dir"
    conf.write_text(text)
    return root


def edit(path: Path, old: str, new: str) -> int:
    """Replace one line (exactly once) and return its 1-based line number."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def break_channel(root: Path) -> list[str]:
    """Two mistakes an analyst makes: a size that is not a size, and a misspelt key in a
    destination. Returns the `file:line:` prefixes the report must start with."""
    channel = root / CHANNEL_FILE
    size_line = edit(channel, "  max_message_size: 10MiB", "  max_message_size: ten megs")
    typo_line = edit(channel, "    directory: ${CONDUIT_DATA_DIR:-data}/out/adt-to-fhir",
                     "    directory: ${CONDUIT_DATA_DIR:-data}/out/adt-to-fhir\n"
                     "    fileneme: '{control_id}.json'") + 1
    return [f"{CHANNEL_FILE}:{size_line}:", f"{CHANNEL_FILE}:{typo_line}:"]


def assert_reports_both(stderr: str, prefixes: list[str]) -> None:
    assert "the configuration has 2 error(s)" in stderr, stderr
    size, typo = (line.strip() for line in stderr.splitlines()[1:3])
    assert re.match(re.escape(prefixes[0]) + r"\d+: source\.max_message_size: .*ten megs",
                    size), stderr
    assert re.match(re.escape(prefixes[1]) + r"\d+: destinations\[0\]\.fileneme: .*filename",
                    typo), stderr
    assert "Traceback" not in stderr


async def test_validate_and_run_report_every_error(daemon: Daemon) -> None:
    """`validate` exits 2 with both errors; `run` prints the same screen, exits non-zero
    and never opens the MLLP port (a sender must see it refused, not half-working)."""
    root = copy_config(daemon)
    prefixes = break_channel(root)

    validate = await daemon.cli("--conf", "conf/conduit.yaml", "validate", cwd=root)
    assert validate.returncode == 2, validate.stdout + validate.stderr
    assert_reports_both(validate.stderr, prefixes)

    proc = await asyncio.create_subprocess_exec(
        CONDUIT, "--conf", "conf/conduit.yaml", "run", cwd=root, env=daemon.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    bound = False
    while proc.returncode is None:
        bound = bound or port_accepts(daemon.mllp_port)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.01)
    _, err = await proc.communicate()
    assert proc.returncode != 0
    assert_reports_both(err.decode(), prefixes)
    assert err.decode() == validate.stderr
    assert not bound, "conduit run listened on the MLLP port despite a broken channel"
    assert not (daemon.data_dir / "conduit.db").exists(), "run touched the store"


async def test_typo_in_a_disabled_optional_destination_is_reported(daemon: Daemon) -> None:
    """The FHIR destination is optional and disabled while CONDUIT_FHIR_URL is unset, as
    on an analyst's laptop. A misspelt key in it is a mistake all the same: `validate`
    must report it now, not leave it to break the production start where the URL is
    set."""
    root = copy_config(daemon)
    channel = root / CHANNEL_FILE
    line = edit(channel, "    timeout: 30s", "    time_out: 30s")
    daemon.deliver_to(None)

    validate = await daemon.cli("--conf", "conf/conduit.yaml", "validate", cwd=root)

    assert validate.returncode == 2, validate.stdout + validate.stderr
    assert re.search(rf"{re.escape(CHANNEL_FILE)}:{line}:\d+: destinations\[1\]\.time_out: ",
                     validate.stderr), validate.stdout + validate.stderr


async def test_web_port_taken(daemon: Daemon) -> None:
    """Another program already has the status port: the daemon says which port and what
    to do, exits non-zero, and does not keep the MLLP port it had opened."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", daemon.web_port))
        squatter.listen()
        result = await run_tool(CONDUIT, "run", env=daemon.env, timeout=20)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("conduit: "), result.stderr
    assert f"127.0.0.1:{daemon.web_port}" in last, result.stderr
    assert "CONDUIT_WEB_PORT" in last
    assert "Traceback" not in result.stderr, result.stderr
    assert not port_accepts(daemon.mllp_port)


async def test_a_json_log_says_why_the_daemon_stopped_in_json(daemon: Daemon) -> None:
    """With `log.format: json` (the production example's), the port-taken stop is one
    more JSON line a log shipper can read, not a plain line among JSON ones."""
    root = copy_config(daemon)
    edit(root / "conf" / "conduit.yaml", "format: text", "format: json")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", daemon.web_port))
        squatter.listen()
        result = await run_tool(CONDUIT, "--conf", "conf/conduit.yaml", "run",
                                env=daemon.env, timeout=20, cwd=root)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line JSON
    assert entries[-1]["level"] == "critical"
    assert f"127.0.0.1:{daemon.web_port}" in entries[-1]["msg"]


async def test_a_listener_on_the_network_without_tls_is_refused(daemon: Daemon) -> None:
    """The shipped ADT channel bound to every interface (CONDUIT_MLLP_HOST=0.0.0.0) with
    neither `tls:` nor `insecure: true`: both `validate` and `run` refuse it at its line,
    and `run` never opens the port."""
    daemon.env["CONDUIT_MLLP_HOST"] = "0.0.0.0"
    validate = await daemon.cli("validate")
    assert validate.returncode == 2, validate.stdout + validate.stderr
    assert re.search(rf"{re.escape(CHANNEL_FILE)}:\d+:\d+: source\.host: source listens on "
                     r"0\.0\.0\.0 without TLS", validate.stderr), validate.stderr
    run = await run_tool(CONDUIT, "run", env=daemon.env, timeout=20)
    assert run.returncode != 0
    assert run.stderr == validate.stderr
    assert not port_accepts(daemon.mllp_port)
