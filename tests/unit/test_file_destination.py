"""engine/connectors/file.py: output files hold PHI, so they are the owner's alone (0600
in 0700 folders) whatever the umask, unless `mode:` names a wider, still sane, mode."""

from __future__ import annotations

import logging
import os
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config.loader import load_channels
from engine.connectors.base import DestinationContext
from engine.connectors.file import FileDestination, FileDestinationConfig, folder_mode
from engine.errors import ConfigErrors
from engine.message import Outbound, Sent


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common default: left alone, files would come out 0644 and folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def outbound(message_id: str = "01J0000000000000000000000A") -> Outbound:
    return Outbound(entry_id=1, message_id=message_id, channel="c", destination="files",
                    content=b'{"resourceType": "Bundle"}',
                    content_type="application/fhir+json")


async def deliver(config: FileDestinationConfig) -> Path:
    dest = FileDestination(config, DestinationContext("c"))
    await dest.open()
    assert isinstance(await dest.send(outbound()), Sent)
    [written] = [p for p in Path(config.directory).rglob("*") if p.is_file()]
    return written


async def test_by_default_files_are_0600_in_0700_folders(tmp_path):
    out = tmp_path / "out" / "adt"  # two folders the engine makes
    written = await deliver(FileDestinationConfig(name="files", directory=str(out)))
    assert mode_of(written) == 0o600
    assert mode_of(out) == 0o700 and mode_of(out.parent) == 0o700
    assert written.read_bytes() == b'{"resourceType": "Bundle"}'


async def test_folders_a_filename_adds_are_0700_too(tmp_path):
    out = tmp_path / "out"
    written = await deliver(FileDestinationConfig(
        name="files", directory=str(out), filename="{channel}/{message_id}{ext}"))
    assert written.parent == out / "c"
    assert mode_of(written) == 0o600 and mode_of(out / "c") == 0o700


async def test_mode_0640_lets_the_group_read(tmp_path):
    out = tmp_path / "out"
    written = await deliver(FileDestinationConfig(name="files", directory=str(out),
                                                  mode="0640"))
    assert mode_of(written) == 0o640
    assert mode_of(out) == 0o750  # the group can reach what it may read


async def test_a_stale_temporary_file_does_not_lend_its_mode(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    stale = out / ".01J0000000000000000000000A.json.tmp"
    stale.write_bytes(b"half")
    stale.chmod(0o666)
    written = await deliver(FileDestinationConfig(name="files", directory=str(out)))
    assert mode_of(written) == 0o600 and not stale.exists()


async def test_an_existing_folder_is_left_as_made_with_a_warning_if_others_may_read(
        tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    caplog.set_level(logging.WARNING)
    written = await deliver(FileDestinationConfig(name="files", directory=str(out)))
    assert mode_of(out) == 0o755 and mode_of(written) == 0o600
    assert "readable by other users" in caplog.text and str(out) in caplog.text


def test_folder_modes_follow_file_modes():
    assert folder_mode(0o600) == 0o700
    assert folder_mode(0o640) == 0o750
    assert folder_mode(0o660) == 0o770
    assert folder_mode(0o644) == 0o755


CHANNEL = """\
source: {{type: mllp, port: 2575}}
destinations:
  - name: files
    type: file
    directory: out
    mode: {mode}
"""


def load_mode(project: Path, mode: str) -> str:
    (project / "channels" / "c.yaml").write_text(textwrap.dedent(CHANNEL.format(mode=mode)))
    [loaded] = load_channels("channels", {})
    return loaded.config.destinations[0].mode


@pytest.mark.parametrize(("written", "read"), [
    ('"0640"', "0640"), ("0640", "0640"), ("'0600'", "0600"), ("0644", "0644"),
    ("660", "660"),
])
def test_mode_in_yaml_quoted_or_not(project, written, read):
    assert load_mode(project, written) == read


@pytest.mark.parametrize("bad", ["999", "0777", "0755", "0666", "0400", "rw-r-----", "0o640",
                                 "1640"])
def test_unsafe_or_unreadable_modes_are_config_errors_at_their_line(project, bad):
    with pytest.raises(ConfigErrors) as caught:
        load_mode(project, bad)
    [error] = [str(e) for e in caught.value.errors]
    assert "c.yaml:6:" in error and "mode" in error, error


def test_extension_is_the_codecs_through_the_context(tmp_path):
    """The runtime hands the file destination the registry's extension_for: each
    standard's extension comes from its codec; other JSON and XML by their syntax."""
    from engine import registry

    config = FileDestinationConfig(name="files", directory=str(tmp_path))
    dest = FileDestination(config, DestinationContext("c", extension_for=registry.extension_for))
    names = {ct: dest._name(Outbound(1, "M1", "c", "files", b"", ct)) for ct in (
        "x-application/hl7-v2+er7", "application/fhir+json", "application/json",
        "application/fhir+xml", "text/plain")}
    assert names == {"x-application/hl7-v2+er7": "M1.hl7", "application/fhir+json": "M1.json",
                     "application/json": "M1.json", "application/fhir+xml": "M1.xml",
                     "text/plain": "M1.dat"}


async def test_several_files_at_once_each_whole_under_its_name(tmp_path):
    out = tmp_path / "out"
    dest = FileDestination(FileDestinationConfig(name="files", directory=str(out)),
                           DestinationContext("c"))
    await dest.open()
    ids = [f"01J000000000000000000000{n:02d}" for n in range(3)]
    sent = await dest.send_many([outbound(i) for i in ids])
    assert [type(d) for d in sent] == [Sent, Sent, Sent]
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.json" for i in ids]  # no .tmp
    assert all(mode_of(out / f"{i}.json") == 0o600 for i in ids)
    assert (out / f"{ids[2]}.json").read_bytes() == b'{"resourceType": "Bundle"}'


async def test_several_at_once_stop_at_the_first_file_that_cannot_be_written(tmp_path):
    out = tmp_path / "out"
    dest = FileDestination(FileDestinationConfig(
        name="files", directory=str(out), filename="{message_id}/f{ext}"),
        DestinationContext("c"))
    await dest.open()
    out.mkdir(exist_ok=True)
    (out / "B").write_bytes(b"a plain file where a folder should be")
    sent = await dest.send_many([outbound("A"), outbound("B"), outbound("C")])
    assert [type(d).__name__ for d in sent] == ["Sent", "Retry"]  # C never attempted
    assert "cannot write f.json" in sent[1].reason
    assert (out / "A" / "f.json").exists() and not (out / "C").exists()
    assert [p.name for p in (out / "A").iterdir()] == ["f.json"]  # no temporary left


@pytest.mark.parametrize("failing", [0, 2, 3, 5, 9])
async def test_a_file_the_disk_cannot_sync_is_retried_and_no_later_one_is_renamed(
        tmp_path, monkeypatch, failing):
    """The batch's files are synced side by side, in runs on several threads; one failing
    (first, inside or at the edge of a run, last), those before it are written, it is
    retried, and those after it (synced or not) stay unnamed."""
    out = tmp_path / "out"
    dest = FileDestination(FileDestinationConfig(name="files", directory=str(out)),
                           DestinationContext("c"))
    await dest.open()
    ids = [f"01J000000000000000000000{n:02d}" for n in range(10)]
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(f".{ids[failing]}.json.tmp"):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sent = await dest.send_many([outbound(i) for i in ids])
    assert [type(d).__name__ for d in sent] == ["Sent"] * failing + ["Retry"]
    assert f"cannot write {ids[failing]}.json: Input/output error" in sent[-1].reason
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.json" for i in ids[:failing]]


async def test_a_name_met_twice_ends_a_batch_before_its_second_file(tmp_path):
    out = tmp_path / "out"
    dest = FileDestination(FileDestinationConfig(
        name="files", directory=str(out), filename="same{ext}"), DestinationContext("c"))
    await dest.open()
    first, second = outbound("A"), outbound("B")
    second.content = b"second"
    sent = await dest.send_many([first, second])
    assert [type(d) for d in sent] == [Sent]  # the second is the worker's to send next
    assert (out / "same.json").read_bytes() == b'{"resourceType": "Bundle"}'
