"""`conduit ack --channel NAME` answers as that channel would: its validation, its filter
and its mapping decide the answer, nothing is stored, and what it cannot know (a resend)
is said. `conduit parse` says that it runs no mapping. (Against a running engine:
tests/e2e/test_ack_matches_engine.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]
STRICT = """\
source: {type: mllp, port: 2599}
filter:
  - {field: MSH-9.2, in: [A01, A04, A08]}
mapping: hl7v2-adt-to-fhir@1
validation: strict
destinations:
  - {name: files, type: file, directory: "${CONDUIT_DATA_DIR}/out"}
"""
MSH = "MSH|^~\\&|MEDITECH|NORTHRIDGE_CH|CONDUIT|HIE|202402271433||ADT^{event}|MT{n}|P|2.4"


def adt(event: str = "A08", birth: str = "19590302", n: int = 1, pid: bool = True) -> str:
    segments = [MSH.format(event=event, n=n), f"EVN|{event}|202402271433"]
    if pid:
        segments.append(f"PID|1||M000418822^^^NCH^MR||OYELARAN^FOLASADE||{birth}|F")
    return "\r".join([*segments, "PV1|1|O|NCH.CARD^^^NCH"]) + "\r"


@pytest.fixture
def engine_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings reading a channels folder with the shipped ADT channel and a strict one;
    the data folder is where a store would be made."""
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "adt-to-fhir.yaml").write_bytes(
        (REPO / "channels" / "adt-to-fhir.yaml").read_bytes())
    (channels / "adt-strict.yaml").write_text(STRICT)
    conf = tmp_path / "conduit.yaml"
    conf.write_text((REPO / "conf" / "conduit.yaml").read_text()
                    .replace("channels_dir: channels", f"channels_dir: {channels}")
                    .replace("mappings_dir: mappings", f"mappings_dir: {REPO / 'mappings'}"))
    monkeypatch.setenv("CONDUIT_CONF", str(conf))
    monkeypatch.setenv("CONDUIT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def ack(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> tuple[list[str], str]:
    """The ACK's segments (stdout) and what was said beside it (stderr)."""
    assert main(["ack", *options, str(path)]) == 0
    out, err = capsys.readouterr()
    return out.splitlines(), err


def test_a_date_the_strict_mapping_refuses_is_answered_ae_naming_the_field(
        engine_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = engine_files / "month13.hl7"
    message.write_text(adt(birth="19601399"))
    lines, said = ack(capsys, message, "--channel", "adt-strict")
    assert lines[1].startswith("MSA|AE|MT1|mapping hl7v2-adt-to-fhir@1 failed: PID-7")
    assert lines[2].startswith("ERR|PID^1^7^207&")  # 2.4: the field located in ERR-1
    assert "duplicates are not checked" in said and f"{message}#1: error" in said
    assert not (engine_files / "data").exists()  # nothing stored, no store made
    # the same message on the shipped channel (lenient @4): taken on
    lines, _ = ack(capsys, message, "--channel", "adt-to-fhir")
    assert lines[1:] == ["MSA|AA|MT1"]
    # without a channel, only parsing and validation answer: no mapping, so AA
    lines, _ = ack(capsys, message)
    assert lines[1:] == ["MSA|AA|MT1"]


def test_each_message_of_a_file_is_answered_as_the_channel_would(
        engine_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = engine_files / "feed.hl7"
    feed.write_text(adt(n=1) + adt(n=2, pid=False) + adt(event="A02", n=3))
    lines, said = ack(capsys, feed, "--channel", "adt-to-fhir")
    msa = [line for line in lines if line.startswith("MSA|")]
    assert [m.split("|")[1] for m in msa] == ["AA", "AE", "AA"]
    assert "PID segment is missing" in msa[1]
    assert [f"{feed}#{n}: {s}" in said for n, s in
            ((1, "accepted"), (2, "error"), (3, "filtered"))] == [True] * 3
    # --validate strict answers as the channel would with that level: the structure is
    # refused first (no PID), and a mapping's first warning fails the message
    lines, _ = ack(capsys, feed, "--channel", "adt-to-fhir", "--validate", "strict")
    msa = [line for line in lines if line.startswith("MSA|")]
    assert [m.split("|")[1] for m in msa] == ["AE", "AR", "AA"]
    assert "PV1-19: has no visit number" in msa[0]


def test_parse_says_no_mapping_was_run(engine_files: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    message = engine_files / "month13.hl7"
    message.write_text(adt(birth="19601399"))
    assert main(["parse", str(message)]) == 0
    out, err = capsys.readouterr()
    assert "no problems found (strict validation)" in out
    assert "no channel's filter or mapping was run" in err
    assert "conduit ack --channel NAME FILE" in err
