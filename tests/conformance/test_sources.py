"""What every source must do, run against each registered source kind.

Each kind has a rig: how to build it from its config struct through the registry on a
free loopback port, how the transport's own client sends it a message, and what that
transport's answers look like. The contract (engine.connectors.base.Source, DESIGN.md):

- `resources()` names what it binds, so validation catches two channels on one binding;
- `start(deliver)`, then a message sent by the transport's client reaches `deliver(raw,
  meta)` with the bytes intact and meta.transport, meta.peer and meta.size set;
- the Receipt's answer goes back only after `deliver` returns, and `receipt.replied()`
  is called once it has gone;
- a `deliver` that raises, or a receipt with an error status, gives the sender the
  transport's error answer, and the source goes on serving the next message;
- `stop()` lets a message in flight finish and get its answer, then refuses new ones;
  it is idempotent and frees the binding for a new source;
- `describe()` is JSON with an address, and no message content.

A new source kind without a rig here fails `test_every_source_kind_has_a_rig`.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import DestinationContext, SourceContext
from engine.connectors.mllp import MllpClient
from engine.message import (
    Delivery,
    Fail,
    MessageStatus,
    Outbound,
    Receipt,
    Retry,
    Sent,
    SourceMeta,
)
from tests.harness import adt, free_port
from tests.sftp_server import USER, shared_server

HELD = 0.3  # how long a test waits to see that no answer has come yet
PATIENT_NAME = "CONFORMANCE"


class Closed(Exception):
    """The transport gave no answer: the connection or request was refused or dropped."""


class Rig:
    """How one source kind is built, spoken to and understood."""

    kind = ""
    transport = ""  # SourceMeta.transport it must set
    message = b""  # a message as its sender would send it

    def __init__(self) -> None:
        self.port = free_port()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def other_config(self) -> dict[str, Any]:
        """The same kind bound elsewhere: its resources must not clash with config()'s."""
        raise NotImplementedError

    def binding(self) -> str:
        """What resources() and describe()'s address must name."""
        return str(self.port)

    def build(self, config: dict[str, Any] | None = None) -> Any:
        kind = registry.SOURCES[self.kind]
        cfg = msgspec.convert(config or self.config(), kind.config, dec_hook=dec_hook,
                              strict=False)
        return kind.factory(cfg, SourceContext(channel="conformance"))

    async def send(self, raw: bytes) -> Any:
        """Send `raw` with the transport's own client; its answer, or Closed."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the rig's client holds."""

    def twin(self) -> Rig:
        """A second sender to the same source, with a client of its own."""
        twin = copy.copy(self)
        twin.forget_client()
        return twin

    def forget_client(self) -> None:
        """Drop (without closing) the client state a copy shares with its original."""

    def accepted(self, message_id: str) -> Receipt:
        return Receipt(message_id, MessageStatus.ACCEPTED)

    def errored(self, message_id: str, status: MessageStatus) -> Receipt:
        """A receipt for a message the channel refused (REJECTED) or could not take on
        (ERROR; with no message id when it could not even store it)."""
        return Receipt(message_id, status)

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        raise NotImplementedError

    def check_error(self, answer: Any, receipt: Receipt) -> None:
        raise NotImplementedError

    def check_failed(self, answer: Any) -> None:
        """The answer to a message whose deliver raised: the transport's error answer."""
        raise NotImplementedError

    def check_peer(self, peer: str) -> None:
        assert peer, "meta.peer is empty"


# ------------------------------------------------------------------------- MLLP


def _ack(code: str, control: str = "CONF1") -> bytes:
    return (f"MSH|^~\\&|CONDUIT|X|EPIC|X|20240101||ACK|R{control}|P|2.5.1\r"
            f"MSA|{code}|{control}\r").encode()


class MllpRig(Rig):
    kind = "mllp"
    transport = "mllp"
    message = adt("CONF1", "MRN90210", family=PATIENT_NAME)

    def __init__(self) -> None:
        super().__init__()
        self._client: MllpClient | None = None

    def config(self) -> dict[str, Any]:
        return {"type": "mllp", "port": self.port, "read_timeout": 2.0}

    def other_config(self) -> dict[str, Any]:
        return {"type": "mllp", "port": free_port()}

    async def send(self, raw: bytes) -> Any:
        """One connection kept across sends, as a sending system does; a new one after a
        failure."""
        try:
            if self._client is None or not self._client.connected:
                self._client = MllpClient("127.0.0.1", self.port)
                await self._client.connect(2.0)
            return await self._client.exchange(raw, 3.0)
        except TimeoutError:  # an OSError too, but silence is no answer
            await self.close()
            raise
        except (OSError, ConnectionError) as exc:
            await self.close()
            raise Closed(str(exc)) from exc

    def forget_client(self) -> None:
        self._client = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def accepted(self, message_id: str) -> Receipt:
        return Receipt(message_id, MessageStatus.ACCEPTED, replies=(_ack("AA"),))

    def errored(self, message_id: str, status: MessageStatus) -> Receipt:
        code = "AR" if status is MessageStatus.REJECTED else "AE"
        return Receipt(message_id, status, replies=(_ack(code),))

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        assert answer == receipt.replies[0]

    def check_error(self, answer: Any, receipt: Receipt) -> None:
        assert answer == receipt.replies[0]

    def check_failed(self, answer: Any) -> None:
        # MLLP has no answer of its own: a NAK, or the connection closed so that the
        # sender resends at once. Silence until the sender's own timeout is no answer.
        assert isinstance(answer, Closed) or b"MSA|A" in answer, answer


# ------------------------------------------------------------------------- FHIR


class FhirRig(Rig):
    kind = "fhir"
    transport = "fhir"
    message = json.dumps({
        "resourceType": "Patient", "id": "conf1",
        "meta": {"lastUpdated": "2024-03-01T10:15:00.000Z"},  # else the source stamps it
        "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN90210"}],
        "name": [{"family": PATIENT_NAME}],
    }, separators=(",", ":")).encode()

    def config(self) -> dict[str, Any]:
        return {"type": "fhir", "port": self.port, "auth": {"type": "none"},
                "resources": ["Patient"], "read_timeout": 2.0}

    def other_config(self) -> dict[str, Any]:
        return {**self.config(), "port": free_port()}

    async def send(self, raw: bytes) -> Any:
        # an update: the body is taken as sent (a create gets an id of the server's own)
        url = f"http://127.0.0.1:{self.port}/fhir/Patient/conf1"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http, \
                    http.put(url, data=raw,
                              headers={"Content-Type": "application/fhir+json"}) as resp:
                return resp.status, dict(resp.headers), await resp.read()
        except TimeoutError:  # silence is no answer
            raise
        except aiohttp.ClientConnectionError as exc:
            raise Closed(str(exc)) from exc

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        status, headers, body = answer
        assert status in (200, 201), (status, body)  # 201: the id's first version
        assert headers.get("X-Conduit-Message-Id") == receipt.message_id

    def check_error(self, answer: Any, receipt: Receipt) -> None:
        status, headers, body = answer
        assert json.loads(body)["resourceType"] == "OperationOutcome"
        if not receipt.message_id:  # not stored: send it again later
            assert status == 503 and headers.get("Retry-After"), (status, headers)
            assert "X-Conduit-Message-Id" not in headers
            return
        expected = 422 if receipt.status is MessageStatus.ERROR else 400
        assert status == expected, (status, body)
        assert headers.get("X-Conduit-Message-Id") == receipt.message_id

    def check_failed(self, answer: Any) -> None:
        assert not isinstance(answer, Closed), answer
        status, _, body = answer
        assert status >= 500, (status, body)
        assert json.loads(body)["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------------- channel


class ChannelRig(Rig):
    """Channel to channel: the sender is the channel destination that feeds the inbox."""

    kind = "channel"
    transport = "channel"
    message = adt("CONF1", "MRN90210", family=PATIENT_NAME)

    def __init__(self) -> None:
        super().__init__()
        self.inbox = f"conformance-{self.port}"

    def config(self) -> dict[str, Any]:
        return {"type": "channel", "inbox": self.inbox}

    def other_config(self) -> dict[str, Any]:
        return {"type": "channel", "inbox": f"{self.inbox}-other"}

    def binding(self) -> str:
        return self.inbox

    def _sender(self) -> Any:
        kind = registry.DESTINATIONS["channel"]
        cfg = msgspec.convert({"type": "channel", "name": "feed", "inbox": self.inbox},
                              kind.config, dec_hook=dec_hook, strict=False)
        return kind.factory(cfg, DestinationContext(channel="upstream"))

    async def send(self, raw: bytes) -> Any:
        sender = self._sender()
        await sender.open()
        try:
            delivery = await sender.send(Outbound(1, "up-1", "upstream", "feed", raw,
                                                  "x-application/hl7-v2+er7", "CONF1"))
        finally:
            await sender.close()
        if isinstance(delivery, Retry) and "no started channel" in delivery.reason:
            raise Closed(delivery.reason)
        return delivery

    def check_peer(self, peer: str) -> None:
        assert peer == "channel:upstream"

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        assert isinstance(answer, Sent), answer

    def check_error(self, answer: Delivery, receipt: Receipt) -> None:
        if not receipt.message_id:  # not stored: the upstream queue tries again
            assert isinstance(answer, Retry), answer
        elif receipt.status is MessageStatus.REJECTED:
            assert isinstance(answer, Fail), answer
        else:
            # stored but not processed: the upstream channel's job is done (the message
            # waits for the analyst downstream), and it must not be resent as if lost
            assert isinstance(answer, Sent) and answer.code == receipt.status.value, answer

    def check_failed(self, answer: Any) -> None:
        assert isinstance(answer, Retry), answer


# ------------------------------------------------------------------------- HTTP


X12_270 = (
    "ISA|00|          |00|          |ZZ|HARBORSIDE01   |ZZ|ACMEHEALTH     |261203|1015|^|"
    "00501|000000101|0|P|>~\nGS|HS|HARBORSIDE01|ACMEHEALTH|20261203|1015|101|X|005010X279A1~\n"
    "ST|270|0001|005010X279A1~\nBHT|0022|13|CONF1|20261203|1015~\nHL|1||20|1~\n"
    "NM1|PR|2|ACME HEALTH|||||PI|ACMEHEALTH~\nHL|2|1|21|1~\n"
    "NM1|1P|2|HARBORSIDE MEDICAL GROUP|||||XX|1234567893~\nHL|3|2|22|0~\n"
    f"NM1|IL|1|{PATIENT_NAME}|ALEX||||MI|MRN90210~\nEQ|30~\nSE|10|0001~\nGE|1|101~\n"
    "IEA|1|000000101~\n").encode()


class HttpRig(Rig):
    """A raw message POSTed as the body; the reply comes back as the body."""

    kind = "http"
    transport = "http"
    message = X12_270

    def config(self) -> dict[str, Any]:
        return {"type": "http", "port": self.port, "auth": {"type": "none"},
                "path": "/x12", "read_timeout": 2.0}

    def other_config(self) -> dict[str, Any]:
        return {**self.config(), "port": free_port()}

    async def send(self, raw: bytes) -> Any:
        url = f"http://127.0.0.1:{self.port}/x12"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http, \
                    http.post(url, data=raw,
                              headers={"Content-Type": "application/edi-x12"}) as resp:
                return resp.status, dict(resp.headers), await resp.read()
        except TimeoutError:  # silence is no answer
            raise
        except aiohttp.ClientConnectionError as exc:
            raise Closed(str(exc)) from exc

    def accepted(self, message_id: str) -> Receipt:
        return Receipt(message_id, MessageStatus.ACCEPTED, replies=(b"ISA|999 accepted~",))

    def errored(self, message_id: str, status: MessageStatus) -> Receipt:
        return Receipt(message_id, status, replies=(b"ISA|999 rejected~",) if message_id
                       else ())

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        status, headers, body = answer
        assert status == 200, (status, body)
        assert body == receipt.replies[0]
        assert headers.get("X-Conduit-Message-Id") == receipt.message_id

    def check_error(self, answer: Any, receipt: Receipt) -> None:
        status, headers, body = answer
        if not receipt.message_id:  # not stored: send it again later
            assert status == 503 and headers.get("Retry-After"), (status, headers)
            return
        assert status == (422 if receipt.status is MessageStatus.ERROR else 400), status
        assert body == receipt.replies[0]

    def check_failed(self, answer: Any) -> None:
        assert not isinstance(answer, Closed), answer
        assert answer[0] >= 500, answer


RIGS: dict[str, type[Rig]] = {"mllp": MllpRig, "fhir": FhirRig, "channel": ChannelRig,
                              "http": HttpRig}



# ------------------------------------------------------------------ file, sftp


_DROPPED = itertools.count(1)
_ROOT = Path(tempfile.mkdtemp(prefix="conduit-conformance-"))
atexit.register(shutil.rmtree, _ROOT, True)


class FolderRig(Rig):
    """A polling source: the sender drops a file (written under a hidden name, then
    renamed, as transfer tools do) and its answer is where the source moved it, done or
    error, with the reply file written beside it. How the contract reads for a folder:

    - a folder cannot answer "not taken, send again": a file the channel could not take
      on (deliver raised, or it was not stored) goes to the error folder, whence ops move
      it back; nothing is deleted;
    - "refused" is a file nobody picks up: the sender gives up after `patience`; a
      stopping or stopped source leaves new files where they are for its next start;
    - `replied()` is called once the reply file is written (the "acknowledged" hop).
    """

    message = adt("CONF1", "MRN90210", family=PATIENT_NAME)
    patience = 4.0  # how long a sender waits for its file to be picked up

    def __init__(self) -> None:
        super().__init__()
        self.root = _ROOT / f"rig-{self.port}-{next(_DROPPED)}"

    @property
    def inbox(self) -> Path:
        return self.root / "in"

    def settings(self) -> dict[str, Any]:
        return {"type": self.kind, "poll_interval": 0.05, "settle": 0.15}

    def remote(self, folder: Path) -> str:
        """A folder as the source names it."""
        return str(folder)

    def config(self) -> dict[str, Any]:
        return {**self.settings(), "directory": self.remote(self.inbox),
                "reply_directory": self.remote(self.root / "replies")}

    def other_config(self) -> dict[str, Any]:
        return {**self.settings(), "directory": self.remote(self.root / "other")}

    def binding(self) -> str:
        return self.remote(self.inbox)

    def twin(self) -> Rig:
        # a sender that gives up sooner: the test waits for its refusal while the first
        # sender's file is held in flight, within the first one's patience
        twin = copy.copy(self)
        twin.patience = 1.0
        return twin

    async def send(self, raw: bytes) -> Any:
        name = f"conf-{next(_DROPPED)}.hl7"
        self.inbox.mkdir(parents=True, exist_ok=True)
        (self.inbox / f".{name}").write_bytes(raw)
        (self.inbox / f".{name}").rename(self.inbox / name)
        deadline = time.monotonic() + self.patience
        while (self.inbox / name).exists():
            if time.monotonic() > deadline:
                raise Closed(f"{name} was not picked up")
            await asyncio.sleep(0.02)
        where = "done" if (self.inbox / "done" / name).exists() else "error"
        assert (self.inbox / where / name).read_bytes() == raw  # moved whole
        reply = self.root / "replies" / f"{name}.ack"
        return where, reply.read_bytes() if reply.exists() else None

    def accepted(self, message_id: str) -> Receipt:
        return Receipt(message_id, MessageStatus.ACCEPTED, replies=(_ack("AA"),))

    def errored(self, message_id: str, status: MessageStatus) -> Receipt:
        code = "AR" if status is MessageStatus.REJECTED else "AE"
        return Receipt(message_id, status, replies=(_ack(code),))

    def check_accepted(self, answer: Any, receipt: Receipt) -> None:
        assert answer == ("done", receipt.replies[0]), answer

    def check_error(self, answer: Any, receipt: Receipt) -> None:
        assert answer == ("error", receipt.replies[0]), answer

    def check_failed(self, answer: Any) -> None:
        assert answer == ("error", None), answer  # kept for ops; no answer to give

    def check_peer(self, peer: str) -> None:
        assert peer.startswith("conf-") and peer.endswith(".hl7"), peer  # the file's name


class FileRig(FolderRig):
    kind = "file"
    transport = "file"


class SftpRig(FolderRig):
    """The same over SFTP: the sender drops its file on a real asyncssh SFTP server (one
    for the test run, on a thread of its own), which the source polls as a client."""

    kind = "sftp"
    transport = "sftp"

    def __init__(self) -> None:
        super().__init__()
        self.server = shared_server()
        self.root = self.server.root / self.root.name

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "host": "127.0.0.1", "port": self.server.port,
                "username": USER, "private_key": str(self.server.client_key),
                "known_hosts": str(self.server.known_hosts), "connect_timeout": 2.0}

    def remote(self, folder: Path) -> str:
        return "/" + str(folder.relative_to(self.server.root))

    def binding(self) -> str:
        return f"127.0.0.1:{self.server.port}{self.remote(self.inbox)}"


RIGS |= {"file": FileRig, "sftp": SftpRig}


def test_every_source_kind_has_a_rig():
    assert set(registry.SOURCES) == set(RIGS), \
        "a source kind needs a conformance rig in tests/conformance/test_sources.py"


@pytest.fixture(params=sorted(RIGS))
async def rig(request):
    r = RIGS[request.param]()
    yield r
    await r.close()


class Inbox:
    """A deliver that records what it gets and answers with the receipts it is given;
    `hold` keeps it waiting until released."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.got: list[tuple[bytes, SourceMeta]] = []
        self.answers: list[Receipt | Exception] = []
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.returned = 0

    async def __call__(self, raw: bytes, meta: SourceMeta) -> Receipt:
        self.got.append((raw, meta))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        answer = self.answers.pop(0) if self.answers else \
            self.rig.accepted(f"m-{len(self.got)}")
        self.returned += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


async def _answer(rig: Rig, raw: bytes) -> Any:
    try:
        return await rig.send(raw)
    except Closed as closed:
        return closed


@pytest.fixture
async def running(rig):
    inbox = Inbox(rig)
    source = rig.build()
    await source.start(inbox)
    yield source, inbox
    await source.stop()


# ---------------------------------------------------------------------- the contract


def test_resources_name_the_binding(rig):
    resources = rig.build().resources()
    assert resources and all(isinstance(r, str) and r for r in resources)
    assert any(rig.binding() in r for r in resources), resources
    # two sources on one binding clash; on another they do not
    assert set(resources) & set(rig.build(rig.config()).resources())
    assert not set(resources) & set(rig.build(rig.other_config()).resources())


async def test_message_reaches_deliver_intact(rig, running):
    _, inbox = running
    receipt = rig.accepted("m-intact")
    inbox.answers.append(receipt)
    answer = await rig.send(rig.message)
    rig.check_accepted(answer, receipt)
    assert len(inbox.got) == 1
    raw, meta = inbox.got[0]
    assert raw == rig.message
    assert isinstance(meta, SourceMeta)
    assert meta.transport == rig.transport
    assert meta.size == len(rig.message)
    rig.check_peer(meta.peer)


async def test_answer_only_after_deliver_returns(rig, running):
    _, inbox = running
    replied = asyncio.Event()
    receipt = rig.accepted("m-held")
    receipt.on_replied = replied.set
    inbox.answers.append(receipt)
    inbox.hold = asyncio.Event()
    sending = asyncio.ensure_future(rig.send(rig.message))
    await asyncio.wait_for(inbox.entered.wait(), 3)
    await asyncio.sleep(HELD)
    assert not sending.done(), "the sender was answered before deliver returned"
    assert not replied.is_set()
    inbox.hold.set()
    rig.check_accepted(await asyncio.wait_for(sending, 3), receipt)
    await asyncio.wait_for(replied.wait(), 1)  # the channel hears that the answer went


@pytest.mark.parametrize(("message_id", "status"), [
    ("m-error", MessageStatus.ERROR), ("m-rejected", MessageStatus.REJECTED),
    ("", MessageStatus.ERROR),  # the channel could not store it
], ids=["error", "rejected", "not-stored"])
async def test_error_receipt_is_an_error_answer_and_serving_goes_on(rig, running, message_id,
                                                                   status):
    _, inbox = running
    receipt = rig.errored(message_id, status)
    inbox.answers.append(receipt)
    rig.check_error(await _answer(rig, rig.message), receipt)
    follow = rig.accepted("m-next")
    inbox.answers.append(follow)
    rig.check_accepted(await rig.send(rig.message), follow)
    assert len(inbox.got) == 2


async def test_deliver_that_raises_is_an_error_answer_and_serving_goes_on(rig, running):
    _, inbox = running
    inbox.answers.append(RuntimeError("store unavailable"))
    rig.check_failed(await _answer(rig, rig.message))
    follow = rig.accepted("m-after")
    inbox.answers.append(follow)
    rig.check_accepted(await rig.send(rig.message), follow)
    assert len(inbox.got) == 2


async def test_stop_finishes_in_flight_then_refuses(rig):
    inbox = Inbox(rig)
    source = rig.build()
    await source.start(inbox)
    receipt = rig.accepted("m-flight")
    inbox.answers.append(receipt)
    inbox.hold = asyncio.Event()
    sending = asyncio.ensure_future(rig.send(rig.message))
    await asyncio.wait_for(inbox.entered.wait(), 3)
    stopping = asyncio.ensure_future(source.stop())
    await asyncio.sleep(HELD)
    assert not sending.done(), "stop cut a message in flight"
    newcomer = rig.twin()
    with pytest.raises(Closed):  # stopping: no new message is taken
        await newcomer.send(rig.message)
    await newcomer.close()
    inbox.hold.set()
    rig.check_accepted(await asyncio.wait_for(sending, 5), receipt)
    await asyncio.wait_for(stopping, 5)
    await rig.close()
    with pytest.raises(Closed):
        await rig.send(rig.message)
    assert len(inbox.got) == 1
    await source.stop()  # idempotent
    await source.stop()


async def test_stop_frees_the_binding(rig):
    first = rig.build()
    await first.start(Inbox(rig))
    await first.stop()
    await rig.close()
    second_inbox = Inbox(rig)
    second = rig.build()
    await second.start(second_inbox)
    try:
        receipt = rig.accepted("m-second")
        second_inbox.answers.append(receipt)
        rig.check_accepted(await rig.send(rig.message), receipt)
        assert len(second_inbox.got) == 1
    finally:
        await second.stop()


async def test_stop_before_start_is_harmless(rig):
    source = rig.build()
    await source.stop()
    await source.stop()


async def test_describe_is_json_with_an_address_and_no_content(rig, running):
    source, inbox = running
    await rig.send(rig.message)
    assert inbox.got
    described = source.describe()
    text = json.dumps(described)
    assert isinstance(described.get("address"), str)
    assert rig.binding() in described["address"]
    assert PATIENT_NAME not in text and "MRN90210" not in text
