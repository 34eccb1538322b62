"""The file source on a real folder: files are read only once settled, handed to the
channel, answered in the reply folder and moved to done or error; nothing is read twice,
and files waiting at start are taken."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import SourceContext
from engine.connectors.file_source import FileSource, FileSourceConfig
from engine.message import MessageStatus, PartReceipt, Receipt, SourceMeta

POLL = 0.05
SETTLE = 0.3
BATCH = b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*PAYER          *" \
        b"240101*1200*^*00501*000000101*0*P*:~GS*HC*SUBMITTER*PAYER*20240101*1200*1*X*" \
        b"005010X222A1~ST*837*0001~SE*2*0001~GE*1*1~IEA*1*000000101~"


class Channel:
    """A deliver that records each file with the time it came, answering with the
    receipts (or exceptions) it is given, accepted otherwise."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, SourceMeta, float]] = []
        self.answers: list[Receipt | Exception] = []

    async def __call__(self, raw: bytes, meta: SourceMeta) -> Receipt:
        self.got.append((raw, meta, asyncio.get_running_loop().time()))
        answer = self.answers.pop(0) if self.answers else Receipt(
            f"m-{len(self.got)}", MessageStatus.ACCEPTED, replies=(b"ANSWER%d" % len(self.got),))
        if isinstance(answer, Exception):
            raise answer
        return answer


def source(inbox: Path, **settings) -> FileSource:
    config = msgspec.convert({"type": "file", "directory": str(inbox), "poll_interval": POLL,
                              "settle": SETTLE, **settings}, FileSourceConfig,
                             dec_hook=dec_hook)
    return FileSource(config)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def inbox(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_registered_as_kind_file(inbox):
    kind = registry.SOURCES["file"]
    config = msgspec.convert({"type": "file", "directory": str(inbox)}, kind.config,
                             dec_hook=dec_hook)
    built = kind.factory(config, SourceContext(channel="claims"))
    assert isinstance(built, FileSource)
    assert built.resources() == [f"file:{inbox}"]
    assert (config.settle, config.pattern, config.max_bytes) == (2.0, "*", 200 * 1024 * 1024)
    assert config.done == f"{inbox}/done" and config.error == f"{inbox}/error"


def test_the_polled_folder_cannot_also_be_done_or_reply(inbox):
    with pytest.raises(msgspec.ValidationError, match="reply_directory must not be"):
        msgspec.convert({"type": "file", "directory": str(inbox),
                         "reply_directory": f"{inbox}/"}, FileSourceConfig)


async def test_a_growing_file_is_read_only_once_it_has_settled(inbox):
    channel, polling = Channel(), source(inbox)
    await polling.start(channel)
    try:
        path = inbox / "claims.837"
        last_write = 0.0
        with path.open("wb") as fh:  # a slow transfer: a chunk every 0.1s, for ~1s
            for i in range(10):
                fh.write(BATCH[i * 20:(i + 1) * 20])
                fh.flush()
                last_write = asyncio.get_running_loop().time()
                await asyncio.sleep(0.1)
            fh.write(BATCH[200:])
            fh.flush()
            last_write = asyncio.get_running_loop().time()
        assert channel.got == [], "a file was read while it was still being written"
        await until(lambda: channel.got)
        raw, meta, when = channel.got[0]
        assert raw == BATCH
        assert when - last_write >= SETTLE - POLL
        assert (meta.transport, meta.peer, meta.size) == ("file", "claims.837", len(BATCH))
        await until(lambda: names(inbox / "done") == ["claims.837"])
        assert len(channel.got) == 1
    finally:
        await polling.stop()


async def test_transfers_in_progress_hidden_files_and_other_patterns_are_left_alone(inbox):
    for name in (".claims.837", "claims.837.part", "claims.837.tmp", "notes.txt"):
        (inbox / name).write_bytes(BATCH)
    (inbox / "subfolder").mkdir()
    (inbox / "linked.837").symlink_to(inbox / "notes.txt")
    (inbox / "real.837").write_bytes(BATCH)
    channel, polling = Channel(), source(inbox, pattern="*.837")
    await polling.start(channel)
    try:
        await until(lambda: "real.837" in names(inbox / "done"))
        await asyncio.sleep(SETTLE + 3 * POLL)
        assert [meta.peer for _, meta, _ in channel.got] == ["real.837"]
        assert names(inbox) == sorted([".claims.837", "claims.837.part", "claims.837.tmp",
                                       "done", "error", "linked.837", "notes.txt",
                                       "subfolder"])
    finally:
        await polling.stop()


async def test_taken_files_go_to_done_refused_ones_to_error_with_the_answer_beside(tmp_path,
                                                                                 inbox):
    replies = tmp_path / "replies"
    channel = Channel()
    channel.answers = [
        Receipt("m-1", MessageStatus.ACCEPTED, replies=(b"999 ACCEPTED",)),
        Receipt("m-2", MessageStatus.REJECTED, replies=(b"TA1 REJECTED",)),
        RuntimeError("store unavailable"),
        Receipt("m-4", MessageStatus.DUPLICATE, replies=(b"999 AGAIN",)),
    ]
    polling = source(inbox, reply_directory=str(replies))
    for i, name in enumerate(["a.837", "b.837", "c.837", "d.837"]):
        (inbox / name).write_bytes(BATCH)
        os.utime(inbox / name, (1_700_000_000 + i, 1_700_000_000 + i))  # oldest first
    await polling.start(channel)
    try:
        await until(lambda: len(names(inbox / "done")) + len(names(inbox / "error")) == 4)
    finally:
        await polling.stop()
    assert [meta.peer for _, meta, _ in channel.got] == ["a.837", "b.837", "c.837", "d.837"]
    assert names(inbox / "done") == ["a.837", "d.837"]
    assert names(inbox / "error") == ["b.837", "c.837"]
    assert names(replies) == ["a.837.ack", "b.837.ack", "d.837.ack"]  # no temporary files
    assert (replies / "a.837.ack").read_bytes() == b"999 ACCEPTED"
    assert (replies / "b.837.ack").read_bytes() == b"TA1 REJECTED"
    for reply in replies.iterdir():
        assert stat.S_IMODE(reply.stat().st_mode) == 0o600
    assert (inbox / "done" / "a.837").read_bytes() == BATCH  # moved whole, never deleted


async def test_a_file_partly_taken_goes_to_done_with_a_warning_naming_a_refused_one(
        inbox, caplog):
    """An 837 file of three sets, the second refused: the other two are taken on, so the
    file is done with (from error, an operator would move it back and send those two
    twice); the warning says so and names the refused message, the answer says which."""
    parts = (PartReceipt(0, "m-1", MessageStatus.ACCEPTED),
             PartReceipt(1, "m-2", MessageStatus.REJECTED),
             PartReceipt(2, "m-3", MessageStatus.ACCEPTED))
    channel = Channel()
    channel.answers = [Receipt("m-1", MessageStatus.REJECTED, parts=parts)]
    polling = source(inbox)
    (inbox / "three.837").write_bytes(BATCH)
    with caplog.at_level(logging.WARNING, logger="conduit"):
        await polling.start(channel)
        try:
            await until(lambda: names(inbox / "done") == ["three.837"])
        finally:
            await polling.stop()
    assert names(inbox / "error") == []
    [line] = [r.getMessage() for r in caplog.records if "three.837" in r.getMessage()]
    assert "2 of its 3 messages were taken on" in line and "message m-2, rejected" in line


async def test_the_answer_is_written_before_the_file_moves_and_the_channel_is_told(tmp_path,
                                                                                  inbox):
    told: list[str] = []
    done = inbox / "done" / "a.837"
    reply = tmp_path / "replies" / "a.837.ack"

    def replied() -> None:
        told.append(f"reply {reply.exists()}, moved {done.exists()}")

    channel = Channel()
    channel.answers = [Receipt("m-1", MessageStatus.ACCEPTED, replies=(b"999",),
                               on_replied=replied)]
    (inbox / "a.837").write_bytes(BATCH)
    polling = source(inbox, reply_directory=str(tmp_path / "replies"))
    await polling.start(channel)
    try:
        await until(done.exists)
    finally:
        await polling.stop()
    assert told == ["reply True, moved False"]


async def test_a_name_already_in_done_gets_a_suffix(inbox):
    channel, polling = Channel(), source(inbox)
    (inbox / "done").mkdir()
    (inbox / "done" / "claims.837").write_bytes(b"yesterday's")
    (inbox / "done" / "claims-2.837").write_bytes(b"this morning's")
    (inbox / "claims.837").write_bytes(BATCH)
    await polling.start(channel)
    try:
        await until(lambda: "claims-3.837" in names(inbox / "done"))
    finally:
        await polling.stop()
    assert (inbox / "done" / "claims.837").read_bytes() == b"yesterday's"
    assert (inbox / "done" / "claims-3.837").read_bytes() == BATCH


async def test_files_waiting_at_start_are_taken_and_stop_leaves_the_rest(inbox):
    for name in ("one.837", "two.837"):
        (inbox / name).write_bytes(BATCH)
    channel = Channel()
    first = source(inbox)
    await first.start(channel)
    await until(lambda: len(names(inbox / "done")) == 2)
    await first.stop()
    (inbox / "three.837").write_bytes(BATCH)
    await asyncio.sleep(SETTLE + 3 * POLL)
    assert len(channel.got) == 2 and "three.837" in names(inbox)  # stopped: left alone
    second = source(inbox)  # the engine starts again
    await second.start(channel)
    try:
        await until(lambda: len(names(inbox / "done")) == 3)
    finally:
        await second.stop()
    assert [meta.peer for _, meta, _ in channel.got] == ["one.837", "two.837", "three.837"]


async def test_a_file_that_cannot_be_moved_is_not_delivered_again(tmp_path, inbox, caplog):
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"a file where the done folder's parent should be")
    (inbox / "claims.837").write_bytes(BATCH)
    channel = Channel()
    polling = source(inbox, done_directory=str(blocked / "done"))
    with caplog.at_level(logging.ERROR, "conduit.polling"):
        await polling.start(channel)
        try:
            await until(lambda: channel.got)
            await asyncio.sleep(SETTLE + 5 * POLL)  # many polls with the file still there
            assert len(channel.got) == 1 and names(inbox) == ["claims.837", "error"]
            assert polling.describe()["unmoved"] == 1
            blocked.unlink()  # ops fix the folder: the move goes through, no new delivery
            await until(lambda: names(blocked / "done") == ["claims.837"])
            assert len(channel.got) == 1
        finally:
            await polling.stop()
    moved = [r for r in caplog.records if "could not be moved" in r.getMessage()]
    assert len(moved) == 1  # said once, not every poll


async def test_a_file_over_max_bytes_is_not_read_and_goes_to_error(inbox, caplog):
    (inbox / "huge.837").write_bytes(BATCH * 10)
    (inbox / "small.837").write_bytes(BATCH)
    channel, polling = Channel(), source(inbox, max_bytes=len(BATCH) * 2)
    with caplog.at_level(logging.ERROR, "conduit.polling"):
        await polling.start(channel)
        try:
            await until(lambda: names(inbox / "error") == ["huge.837"]
                        and names(inbox / "done") == ["small.837"])
        finally:
            await polling.stop()
    assert [meta.peer for _, meta, _ in channel.got] == ["small.837"]
    assert any("over max_bytes" in r.getMessage() and "huge.837" in r.getMessage()
               for r in caplog.records)


async def test_a_missing_folder_is_waited_for(tmp_path):
    inbox = tmp_path / "later"
    channel, polling = Channel(), source(inbox)
    await polling.start(channel)
    try:
        await asyncio.sleep(3 * POLL)
        inbox.mkdir(exist_ok=True)  # or made by the source, 0700
        (inbox / "claims.837").write_bytes(BATCH)
        await until(lambda: names(inbox / "done") == ["claims.837"])
    finally:
        await polling.stop()
    assert polling.describe()["taken"] == 1
    assert polling.describe()["problem"] is None


async def test_a_folder_that_cannot_be_read_is_a_problem_on_the_status_api(tmp_path, caplog):
    inbox = tmp_path / "in"
    inbox.write_bytes(b"a file where the folder should be")
    polling = source(inbox)
    with caplog.at_level(logging.WARNING, "conduit.polling"):
        await polling.start(Channel())
        try:
            await until(lambda: polling.describe()["problem"] is not None)
            await asyncio.sleep(5 * POLL)
        finally:
            await polling.stop()
    assert polling.describe()["problem"] == "cannot use the folder: Not a directory"
    assert len([r for r in caplog.records if "cannot use" in r.getMessage()]) == 1
