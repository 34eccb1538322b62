"""The test bench commands as an analyst types them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.harness import REPO

ADT = REPO / "mappings" / "hl7v2-adt-to-fhir" / "fixtures"


def conduit(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_parse_and_ack():
    good = conduit("parse", str(ADT / "v1" / "epic_a01_admit.hl7"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "hl7v2 2.5.1 ADT^A01 control EP2024031208451200001 from EPIC^UWHEALTH" in good.stdout
    bad = conduit("parse", str(ADT / "v1" / "a28_add_person_no_pv1.hl7"))
    assert bad.returncode == 1 and "PV1" in bad.stdout  # strict: ADT_A05 requires PV1
    ack = conduit("ack", str(ADT / "v1" / "cerner_a04_register.hl7"))
    assert ack.returncode == 0
    lines = ack.stdout.splitlines()
    assert lines[0].startswith("MSH|") and lines[1] == "MSA|AA|Q7788120T8812301"


def test_map_and_mapping_diff():
    mapped = conduit("map", "hl7v2-adt-to-fhir@1", str(ADT / "v1" / "epic_a01_admit.hl7"))
    assert mapped.returncode == 0
    assert json.loads(mapped.stdout)["resourceType"] == "Bundle"
    diff = conduit("mapping", "diff", "hl7v2-adt-to-fhir@1", "hl7v2-adt-to-fhir@2",
                   str(ADT / "v2" / "epic_a01_clinical.hl7"),
                   str(ADT / "v1" / "a02_transfer_skipped.hl7"))
    assert diff.returncode == 0, diff.stderr
    assert "epic_a01_clinical.hl7#1:" in diff.stdout and "difference(s)" in diff.stdout
    assert "a02_transfer_skipped.hl7#1: same" in diff.stdout
    assert "1 of 2 message(s) differ" in diff.stdout
    unknown = conduit("map", "hl7v2-adt-to-fhir@9", str(ADT / "v1" / "epic_a01_admit.hl7"))
    assert unknown.returncode == 2 and "hl7v2-adt-to-fhir@1" in unknown.stderr


def test_map_report_lists_warnings_and_the_fields_left_behind(tmp_path):
    odd = tmp_path / "odd.hl7"
    odd.write_bytes((ADT / "v1" / "epic_a01_admit.hl7").read_bytes()
                    .replace(b"\rPV1|", b"\rZPV|FLAG-ONE|FLAG-TWO\rPV1|", 1))
    plain = conduit("map", "hl7v2-adt-to-fhir@3", str(odd))
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["resourceType"] == "Bundle"
    assert "left behind" not in plain.stderr  # only on request
    reported = conduit("map", "--report", "hl7v2-adt-to-fhir@3", str(odd))
    assert reported.stdout == plain.stdout
    [line] = [x for x in reported.stderr.splitlines() if "left behind" in x]
    assert line.startswith(f"{odd}#1: left behind (")
    assert "ZPV-1, ZPV-2" in line and "PID-3" not in line and "FLAG" not in line
    # A mapping that keeps no track of what it reads does not claim it left nothing.
    untracked = conduit("map", "--report", "hl7v2-adt-to-fhir@1", str(odd))
    assert "left behind: not tracked by this mapping" in untracked.stderr
    assert "left behind: nothing" not in untracked.stderr


def test_conduit_test_passes_then_fails_on_a_changed_expectation(tmp_path):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copytree(REPO / "channels", tmp_path / "channels")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    ok = conduit("test", "-q", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "0 failed" in ok.stdout
    expected = tmp_path / "channels" / "fixtures" / "adt-to-fhir" / "epic_a01_admit.json"
    expected.write_text(expected.read_text().replace('"female"', '"unknown"'))
    broken = conduit("test", "-q", cwd=tmp_path)
    assert broken.returncode == 1
    assert "FAIL channel adt-to-fhir epic_a01_admit" in broken.stdout
    assert "gender" in broken.stdout


def test_conduit_test_takes_a_mapping_folder_and_says_when_nothing_matched():
    by_folder = conduit("test", "-q", "mappings/ncpdp-newrx-to-fhir/")
    assert by_folder.returncode == 0 and " passed, 0 failed" in by_folder.stdout, \
        by_folder.stdout + by_folder.stderr
    assert not by_folder.stdout.startswith("0 passed")
    unknown = conduit("test", "no-such-mapping")
    assert unknown.returncode == 1 and "passed" not in unknown.stdout
    assert "no fixtures found for no-such-mapping" in unknown.stderr


def test_parse_and_ack_an_x12_file(tmp_path):
    from tests.unit.test_x12_codec import several

    batch = tmp_path / "batch.x12"
    batch.write_text(several())
    parsed = conduit("parse", str(batch))
    # the sample's claim lacks what the 837P guide requires: said per loop, exit 1
    assert parsed.returncode == 1, parsed.stdout + parsed.stderr
    assert "#3: x12 005010 837P control 000000101-2-0001 from SUBMITTER^SUBMITTER" \
        in parsed.stdout
    assert "E PER (5): required segment PER is missing from loop 1000A" in parsed.stdout
    assert parsed.stdout.count("no problems found (strict validation)") == 2  # the 270s
    broken = tmp_path / "broken.x12"
    broken.write_text(several().replace("IEA*2*000000101", "IEA*2*000000999"))
    ack = conduit("ack", str(broken))
    assert ack.returncode == 0 and "TA1*000000101*240101*1200*R*001~" in ack.stdout
    # One 999 per functional group, as a channel answers the file: the two 270s of one
    # group are two AK2s of one 999.
    good = conduit("ack", str(batch))
    assert good.stdout.count("ST*999*") == 3, good.stdout
    assert "AK2*270*0001*005010X279A1~IK5*A~AK2*270*0002*005010X279A1~IK5*A~AK9*A*2*2*2~" \
        in good.stdout
    # Answered as the shipped claims channel would (validation: lenient): the claim's
    # missing segments are noted, the set accepted with errors.
    channel = conduit("ack", "--channel", "x12-claims", str(batch))
    assert channel.returncode == 0, channel.stderr
    assert "IK3*PER*3*1000*3~" in channel.stdout and "IK5*E*5~AK9*E*1*1*1~" in channel.stdout
    unknown = conduit("ack", "--channel", "nonesuch", str(batch))
    assert unknown.returncode != 0 and "no channel named nonesuch" in unknown.stderr


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path):
    """`conduit map ... | head`: the closed pipe ends the command, without a traceback
    (200 Bundles: far more than a pipe holds, so the write after `head` left fails)."""
    many = tmp_path / "many.hl7"
    many.write_bytes(b"\n".join([(ADT / "v1" / "cerner_a04_register.hl7").read_bytes()] * 200))
    shell = subprocess.run(
        f"{sys.executable} -m engine.cli map hl7v2-adt-to-fhir@1 {many} | head -c 10",
        shell=True, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shell.stdout == '{\n  "resou'
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr, shell.stderr
