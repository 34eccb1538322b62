"""The SFTP source and destination against a real asyncssh SFTP server on 127.0.0.1:
key authentication, the server's host key checked against known_hosts, files written
under a .part name then renamed, files read once settled and renamed on the server after
the commit; a wrong host key, a refused key and a server that is down are each a Retry
that says what to fix, within the time limits."""

from __future__ import annotations

import asyncio
import logging
import socket
import stat
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import DestinationContext, SourceContext
from engine.connectors.sftp import SftpDestination
from engine.connectors.sftp_source import SftpSource
from engine.message import MessageStatus, Outbound, Receipt, Retry, Sent, SourceMeta
from tests.sftp_server import USER, SftpServer

BATCH = (b"ISA*00*          *00*          *ZZ*PAYER          *ZZ*NORTHWING      *240105*"
         b"0900*^*00501*000000835*0*P*:~\nGS*HP*PAYER*NORTHWING*20240105*0900*1*X*"
         b"005010X221A1~\nST*835*0001~\nSE*2*0001~\nGE*1*1~\nIEA*1*000000835~\n")


@pytest.fixture
async def server(tmp_path):
    running = await SftpServer(tmp_path / "root", tmp_path / "keys").start()
    yield running
    await running.stop()


def settings(server: SftpServer, **more: Any) -> dict[str, Any]:
    return {"type": "sftp", "host": "127.0.0.1", "port": server.port, "username": USER,
            "private_key": str(server.client_key), "known_hosts": str(server.known_hosts),
            "connect_timeout": 2.0, **more}


def destination(server: SftpServer, **more: Any) -> SftpDestination:
    kind = registry.DESTINATIONS["sftp"]
    config = msgspec.convert({**settings(server), "name": "payer", "directory": "/outbound",
                              "filename": "{control_id}{ext}", "timeout": 3.0, **more},
                             kind.config, dec_hook=dec_hook)
    return kind.factory(config, DestinationContext("claims",
                                                   extension_for=registry.extension_for))


def source(server: SftpServer, **more: Any) -> SftpSource:
    kind = registry.SOURCES["sftp"]
    config = msgspec.convert({**settings(server), "directory": "/from-payer",
                              "poll_interval": 0.05, "settle": 0.3,
                              "reply_directory": "/to-payer", **more},
                             kind.config, dec_hook=dec_hook)
    return kind.factory(config, SourceContext(channel="remits"))


def outbound(control_id: str = "000000101-1-0001", content: bytes = BATCH) -> Outbound:
    return Outbound(1, "01JSFTP0000000000000000001", "claims", "payer", content,
                    "application/edi-x12", control_id)


class Channel:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, SourceMeta]] = []
        self.status = MessageStatus.ACCEPTED

    async def __call__(self, raw: bytes, meta: SourceMeta) -> Receipt:
        self.got.append((raw, meta))
        return Receipt(f"m-{len(self.got)}", self.status,
                       replies=(b"999 FOR " + meta.peer.encode(),))


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ------------------------------------------------------------------ destination


async def test_destination_writes_a_part_file_then_renames_it(server):
    dest = destination(server)
    await dest.open()
    try:
        assert isinstance(await dest.send(outbound()), Sent)
        assert isinstance(await dest.send(outbound("000000101-1-0002")), Sent)
    finally:
        await dest.close()
    written = server.root / "outbound"
    assert names(written) == ["000000101-1-0001.x12", "000000101-1-0002.x12"]
    assert (written / "000000101-1-0001.x12").read_bytes() == BATCH
    assert stat.S_IMODE((written / "000000101-1-0001.x12").stat().st_mode) == 0o600
    first = [op for op in server.ops if "-1-0001" in op[-1]]
    assert first == [("open", "/outbound/000000101-1-0001.x12.part"),
                     ("rename", "/outbound/000000101-1-0001.x12.part",
                      "/outbound/000000101-1-0001.x12")]
    assert dest.address == f"sftp://{USER}@127.0.0.1:{server.port}/outbound"


async def test_destination_replaces_a_file_of_the_same_name(server):
    """A retry after a lost answer writes the same message again: it replaces the first."""
    dest = destination(server)
    try:
        assert isinstance(await dest.send(outbound(content=b"first")), Sent)
        assert isinstance(await dest.send(outbound(content=BATCH)), Sent)
    finally:
        await dest.close()
    assert names(server.root / "outbound") == ["000000101-1-0001.x12"]
    assert (server.root / "outbound" / "000000101-1-0001.x12").read_bytes() == BATCH


async def test_a_wrong_host_key_is_refused(server):
    dest = destination(server, known_hosts=str(server.wrong_known_hosts()))
    try:
        delivery = await dest.send(outbound())
    finally:
        await dest.close()
    assert isinstance(delivery, Retry)
    assert "host key" in delivery.reason and "known_hosts" in delivery.reason
    assert not (server.root / "outbound").exists()


async def test_a_refused_key_says_authentication_failed(server):
    dest = destination(server, private_key=str(server.stranger_key))
    try:
        delivery = await dest.send(outbound())
    finally:
        await dest.close()
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith(f"authentication failed as {USER} on 127.0.0.1:")
    assert "ops must fix" in delivery.reason
    assert await dest.healthcheck() == delivery.reason


async def test_a_server_that_is_down_is_a_retry_and_the_next_send_reconnects(server):
    dest = destination(server)
    try:
        assert isinstance(await dest.send(outbound()), Sent)
        await server.stop()
        started = time.monotonic()
        delivery = await dest.send(outbound("000000101-1-0002"))
        assert isinstance(delivery, Retry), delivery
        assert time.monotonic() - started < 3
        again = await dest.send(outbound("000000101-1-0003"))
        assert isinstance(again, Retry) and "cannot connect to 127.0.0.1" in again.reason
        assert await dest.healthcheck() is not None
        await server.start()  # back on the same port
        assert isinstance(await dest.send(outbound("000000101-1-0004")), Sent)
        assert await dest.healthcheck() is None
    finally:
        await dest.close()


async def test_a_server_that_never_speaks_is_a_retry_within_connect_timeout(server):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        dest = destination(server, port=silent.getsockname()[1], connect_timeout=0.5)
        started = time.monotonic()
        delivery = await dest.send(outbound())
        await dest.close()
    assert isinstance(delivery, Retry) and "within the time limit" in delivery.reason
    assert time.monotonic() - started < 2


def test_known_hosts_is_required_unless_insecure(server):
    kind = registry.DESTINATIONS["sftp"]
    base = {**settings(server), "name": "payer", "directory": "/outbound"}
    del base["known_hosts"]
    with pytest.raises(msgspec.ValidationError, match="give known_hosts"):
        msgspec.convert(base, kind.config, dec_hook=dec_hook)
    with pytest.raises(msgspec.ValidationError, match="give known_hosts"):
        msgspec.convert({k: v for k, v in base.items() if k != "name"},
                        registry.SOURCES["sftp"].config, dec_hook=dec_hook)
    assert msgspec.convert({**base, "insecure": True}, kind.config, dec_hook=dec_hook)


async def test_insecure_connects_without_checking_and_says_so(server, caplog):
    dest = destination(server, known_hosts=None, insecure=True)
    with caplog.at_level(logging.WARNING, "conduit.sftp"):
        await dest.open()  # said at start, before any file goes
        assert [r.getMessage() for r in caplog.records] == [
            f"sftp sftp://{USER}@127.0.0.1:{server.port}: host key NOT checked (insecure: "
            "true): anyone in the path could pose as the server"]
        try:
            assert isinstance(await dest.send(outbound()), Sent)
        finally:
            await dest.close()
    assert dest.describe()["insecure"] is True
    assert len(caplog.records) == 1


# ----------------------------------------------------------------------- source


async def test_source_reads_a_settled_file_answers_and_renames_it_on_the_server(server):
    inbox = server.root / "from-payer"
    inbox.mkdir()
    (inbox / "remit-0105.835.part").write_bytes(BATCH[:40])  # the payer's upload, under way
    channel, polling = Channel(), source(server)
    await polling.start(channel)
    try:
        await asyncio.sleep(0.6)
        assert channel.got == []  # a .part file is never read
        (inbox / "remit-0105.835.part").write_bytes(BATCH)
        (inbox / "remit-0105.835.part").rename(inbox / "remit-0105.835")
        await until(lambda: names(inbox / "done") == ["remit-0105.835"])
    finally:
        await polling.stop()
    assert channel.got == [(BATCH, SourceMeta("sftp", "remit-0105.835", len(BATCH)))]
    assert (inbox / "done" / "remit-0105.835").read_bytes() == BATCH
    assert names(server.root / "to-payer") == ["remit-0105.835.ack"]
    assert (server.root / "to-payer" / "remit-0105.835.ack").read_bytes() == \
        b"999 FOR remit-0105.835"
    assert ("rename", "/to-payer/remit-0105.835.ack.part", "/to-payer/remit-0105.835.ack") \
        in server.ops
    described = polling.describe()
    assert described["address"] == f"sftp://{USER}@127.0.0.1:{server.port}/from-payer"
    assert described["taken"] == 1 and described["insecure"] is False


async def test_source_does_not_read_a_file_still_growing_on_the_server(server):
    inbox = server.root / "from-payer"
    inbox.mkdir()
    channel, polling = Channel(), source(server, settle=0.5)
    await polling.start(channel)
    try:
        with (inbox / "big.835").open("wb") as fh:
            for i in range(0, len(BATCH), 20):
                fh.write(BATCH[i:i + 20])
                fh.flush()
                await asyncio.sleep(0.1)
        assert channel.got == []
        await until(lambda: channel.got)
    finally:
        await polling.stop()
    assert channel.got[0][0] == BATCH


async def test_source_sends_refused_files_to_error_and_takes_waiting_files_at_start(server):
    inbox = server.root / "from-payer"
    inbox.mkdir()
    for name in ("a.835", "b.835"):
        (inbox / name).write_bytes(BATCH)
    channel, polling = Channel(), source(server, done_directory="/archive",
                                         error_directory="/rejected")
    channel.status = MessageStatus.REJECTED
    await polling.start(channel)
    try:
        await until(lambda: names(server.root / "rejected") == ["a.835", "b.835"])
    finally:
        await polling.stop()
    assert len(channel.got) == 2 and names(inbox) == []


async def test_source_with_the_server_down_waits_and_says_why(server, caplog):
    inbox = server.root / "from-payer"
    inbox.mkdir()
    (inbox / "a.835").write_bytes(BATCH)
    await server.stop()
    channel, polling = Channel(), source(server)
    with caplog.at_level(logging.WARNING, "conduit.polling"):
        await polling.start(channel)
        try:
            await until(lambda: polling.describe()["problem"] is not None)
            assert "cannot connect to 127.0.0.1" in str(polling.describe()["problem"])
            await asyncio.sleep(0.3)
            await server.start()
            await until(lambda: names(inbox / "done") == ["a.835"])
            assert polling.describe()["problem"] is None
        finally:
            await polling.stop()
    said = [r for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(said) == 1  # once, not every poll


async def test_source_with_a_wrong_host_key_reads_nothing(server):
    inbox = server.root / "from-payer"
    inbox.mkdir()
    (inbox / "a.835").write_bytes(BATCH)
    channel = Channel()
    polling = source(server, known_hosts=str(server.wrong_known_hosts()))
    await polling.start(channel)
    try:
        await until(lambda: polling.describe()["problem"] is not None)
    finally:
        await polling.stop()
    assert "host key" in str(polling.describe()["problem"])
    assert channel.got == [] and names(inbox) == ["a.835"]


async def test_stopping_does_not_wait_for_a_server_that_never_speaks(server):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        polling = source(server, port=silent.getsockname()[1], connect_timeout=10.0)
        await polling.start(Channel())
        await asyncio.sleep(0.3)  # connecting, and waiting for a banner
        started = time.monotonic()
        await polling.stop()
    assert time.monotonic() - started < 1


async def test_source_gives_a_suffix_to_a_name_already_in_done_on_the_server(server):
    inbox = server.root / "from-payer"
    (inbox / "done").mkdir(parents=True)
    (inbox / "done" / "remit.835").write_bytes(b"last week's")
    (inbox / "remit.835").write_bytes(BATCH)
    channel, polling = Channel(), source(server)
    await polling.start(channel)
    try:
        await until(lambda: names(inbox / "done") == ["remit-2.835", "remit.835"])
    finally:
        await polling.stop()
    assert (inbox / "done" / "remit.835").read_bytes() == b"last week's"
    assert (inbox / "done" / "remit-2.835").read_bytes() == BATCH
