"""Senders that are not ours: an interface team tries the engine with the tools they
already have, with files saved the way editors save them (\\n or \\r\\n line endings)."""

from __future__ import annotations

import re

from tests.e2e.support import BIN, Adt, Daemon, eventually, mrns_in_files, run_tool


async def test_mllp_send_of_the_hl7_package(daemon: Daemon) -> None:
    """`mllp_send --loose` (python-hl7) splits a plain file on each MSH and frames it
    itself; every message must be answered AA and come out as a FHIR Bundle."""
    messages = [Adt(control_id=f"MS{i:04d}", mrn=f"E2EMS{i:04d}", event=ev)
                for i, ev in enumerate(["A01", "A08", "A03", "A04"])]
    hl7_file = daemon.tmp_path / "several.hl7"
    hl7_file.write_text("".join(m.text("\n") for m in messages))
    await daemon.start()

    result = await run_tool(str(BIN / "mllp_send"), "--loose", "--file", str(hl7_file),
                            "--port", str(daemon.mllp_port), "127.0.0.1", env=daemon.env)

    assert result.returncode == 0, result.stderr
    acks = re.findall(r"MSA\|(\w\w)\|([^|\r\n]+)", result.stdout)
    assert acks == [("AA", m.control_id) for m in messages], result.stdout
    wanted = {m.mrn for m in messages}
    await eventually(lambda: mrns_in_files(daemon.output_files()) >= wanted, timeout=10,
                     message="an output file for each message mllp_send sent")
    assert await daemon.stop() == 0


async def test_conduit_send_with_crlf_file(daemon: Daemon) -> None:
    """`conduit send` reads a Windows-saved file of three messages: three lines, each
    naming the message and ending in AA, and exit status 0."""
    messages = [Adt(control_id=f"CS{i:04d}", mrn=f"E2ECS{i:04d}") for i in range(3)]
    hl7_file = daemon.tmp_path / "three.hl7"
    hl7_file.write_bytes("".join(m.text("\r\n") for m in messages).encode())
    await daemon.start()

    result = await daemon.cli("send", "--mllp", f"127.0.0.1:{daemon.mllp_port}", str(hl7_file))

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for n, (line, msg) in enumerate(zip(lines, messages, strict=True), start=1):
        assert line.startswith(f"{hl7_file}#{n} "), line
        assert line.split()[-2:] == [msg.control_id, "AA"], line
    await eventually(lambda: mrns_in_files(daemon.output_files()) >= {m.mrn for m in messages},
                     timeout=10, message="an output file for each message conduit sent")
    assert await daemon.stop() == 0

