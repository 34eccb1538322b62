"""The README's X12 flows, as a newcomer runs them on the shipped configuration: a claim
batch dropped in the x12-claims folder is answered with the 999 the README shows and
mapped, and the eligibility round trip's commands print what it says."""

from __future__ import annotations

import re
import shutil

from tests.e2e.support import REPO, Daemon, eventually

README = (REPO / "README.md").read_text()
COPY = re.compile(r"^cp (channels/fixtures/x12-claims/\S+) data/x12/claims/in/$", re.MULTILINE)
ACK = re.compile(r"^cat data/x12/claims/acks/(\S+)\s+# the 999: (.+)$", re.MULTILINE)
MAPS = re.compile(r"^conduit map (\S+) (\S+)( > 270\.x12)?$", re.MULTILINE)


async def test_a_claim_batch_is_answered_and_mapped_as_the_readme_says(daemon: Daemon):
    fixture = COPY.search(README).group(1)
    ack_name, shown = ACK.search(README).groups()
    await daemon.start()
    inbox = daemon.data_dir / "x12" / "claims" / "in"
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / fixture, inbox / "upload.part")  # as a transfer tool writes it
    (inbox / "upload.part").rename(inbox / ack_name.removesuffix(".ack"))
    acks = daemon.data_dir / "x12" / "claims" / "acks"
    await eventually(lambda: (acks / ack_name).exists(), timeout=20,
                     message="the 999 written beside the batch")
    await eventually(lambda: (inbox / "done" / ack_name.removesuffix(".ack")).exists(),
                     timeout=10, message="the batch moved to done")
    out = daemon.data_dir / "out" / "x12-claims"
    await eventually(lambda: out.is_dir() and any(out.iterdir()), timeout=10,
                     message="the claims mapped to FHIR")
    assert await daemon.stop() == 0
    ack = (acks / ack_name).read_text()
    for piece in (p.strip() for p in shown.split("...")):
        if piece:
            assert piece in ack, piece
    assert '"resourceType":"Claim"' in next(out.iterdir()).read_text().replace(" ", "")


async def test_the_eligibility_round_trip_commands_work(tmp_path, daemon: Daemon):
    commands = MAPS.findall(README)
    assert [c[0] for c in commands] == ["fhir-to-x12-270@1", "x12-271-to-fhir@1"]
    for ref, source, redirect in commands:
        result = await daemon.cli("map", ref, str(REPO / source))
        assert result.returncode == 0, result.stderr
        if redirect:
            (tmp_path / "270.x12").write_text(result.stdout)
        else:
            assert '"resourceType": "CoverageEligibilityResponse"' in result.stdout
    parsed = await daemon.cli("parse", str(tmp_path / "270.x12"))
    assert "x12 005010 270" in parsed.stdout
    assert "no problems found (strict validation)" in parsed.stdout
