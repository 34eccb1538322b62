"""What every destination must do, run against each registered destination kind.

Each kind has a rig: a receiving system on loopback that the test controls (a folder for
file, an aiohttp server for http and fhir, an MLLP peer, a started channel source for
channel), the destination built from its config struct through the registry, and ways
to make the receiver accept, be down, answer a transient error, refuse for good, or
misbehave. The contract (engine.connectors.base.Destination, DESIGN.md):

- `open()` then `send(outbound)` is Sent when the receiver accepts, with the content
  delivered intact;
- a receiver that is down or answers a transient error is a Retry; a permanent refusal
  is a Fail; the destination tries once (the queue's RetryPolicy decides the rest), and
  its reason never quotes the patient, even when the receiver's answer does;
- `send` never raises on a receiver's misbehaviour (garbage, a reset in the middle of
  its answer, silence past the timeout);
- `address` is a string naming where it delivers, without credentials;
- `healthcheck()` is None or a reason; `close()` is idempotent.

A new destination kind without a rig here fails `test_every_destination_kind_has_a_rig`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import registry
from engine.config.types import dec_hook
from engine.connectors.base import DestinationContext, SourceContext
from engine.message import Fail, MessageStatus, Outbound, Receipt, Retry, Sent, SourceMeta
from tests.conformance.receivers import (
    HttpReceiver,
    MllpPeer,
    RawPeer,
    Reply,
    ack_text,
)
from tests.core_payer import CorePayer
from tests.harness import adt
from tests.sftp_server import USER, SftpServer

MRN = "MRN90210"
NAME = "SMITHERSON"
SECRET = "s3cr3t-pw"  # a credential in the destination's URL, where it has one
TIMEOUT = 0.5  # each destination's timeout: a silent receiver costs this much
HL7 = "x-application/hl7-v2+er7"
FHIR = "application/fhir+json"

HL7_MESSAGE = adt("CONF1", MRN, family=NAME)
PATIENT = json.dumps({
    "resourceType": "Patient", "id": "conf1",
    "identifier": [{"system": "urn:oid:1.2.3", "value": MRN}],
    "name": [{"family": NAME, "given": ["ALEX"]}],
}, separators=(",", ":")).encode()
QUOTED = f"patient {NAME} ({MRN}) could not be taken".encode()  # what receivers echo


def outbound(content: bytes, content_type: str, control_id: str = "CONF1") -> Outbound:
    return Outbound(7, "01JCONFORMANCE0000000000001", "conformance", "out", content,
                    content_type, control_id)


def operation_outcome(code: str = "processing") -> bytes:
    """An OperationOutcome that quotes the patient in every free-text place a server
    has, and in an expression that is no plain path."""
    return json.dumps({"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": code, "diagnostics": QUOTED.decode(),
        "details": {"text": f"{NAME} {MRN}"},
        "expression": [f"Patient.identifier.where(value='{MRN}')"]}]}).encode()


class Rig:
    """A receiving system for one destination kind, and the destination aimed at it."""

    kind = ""
    content = b""
    content_type = ""
    permanent: tuple[str, ...] = ()  # the ways this kind's receivers refuse for good
    misbehaviours: tuple[str, ...] = ()

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    async def start(self) -> None:
        """Bring the receiver up, accepting."""

    async def stop(self) -> None:
        """Take the receiver down (for good, at the end of a test)."""

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def context(self) -> DestinationContext:
        return DestinationContext(channel="conformance",
                                  reply_reader=registry.codec_for_content(self.content_type))

    def build(self) -> Any:
        kind = registry.DESTINATIONS[self.kind]
        cfg = msgspec.convert(self.config(), kind.config, dec_hook=dec_hook, strict=False)
        return kind.factory(cfg, self.context())

    def outbound(self) -> Outbound:
        return outbound(self.content, self.content_type)

    def delivered(self) -> list[bytes]:
        """The contents the receiver has taken, in order."""
        raise NotImplementedError

    def attempts(self) -> int:
        """Requests the receiver saw (accepted or not)."""
        raise NotImplementedError

    def binding(self) -> str:
        """What the address must name."""
        raise NotImplementedError

    async def go_down(self) -> None:
        await self.stop()

    def transient(self) -> None:
        """The receiver's next answer is a transient error."""
        raise NotImplementedError

    def refuse(self, how: str) -> None:
        """The receiver's next answer is a permanent refusal, `how`."""
        raise NotImplementedError

    async def misbehave(self, how: str) -> None:
        """From now on the receiver misbehaves, `how`."""
        raise NotImplementedError


# ------------------------------------------------------------------------- file


class FileRig(Rig):
    kind = "file"
    content = HL7_MESSAGE
    content_type = HL7
    misbehaviours = ("target-is-a-folder",)

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.folder = tmp / "outbox" / "adt"

    def config(self) -> dict[str, Any]:
        # a name of our own: which extension a content type gets is the codec's business
        return {"type": "file", "name": "out", "directory": str(self.folder),
                "filename": "{message_id}.out", "timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        if not self.folder.is_dir():
            return []
        return [p.read_bytes() for p in sorted(self.folder.iterdir()) if p.is_file()
                and not p.name.startswith(".")]

    def attempts(self) -> int:
        return len(self.delivered())

    def binding(self) -> str:
        return str(self.folder)

    async def go_down(self) -> None:
        # the folder is gone and a file stands in its place (a share not mounted, a
        # disk replaced): nothing can be written there
        shutil.rmtree(self.folder, ignore_errors=True)
        os.makedirs(self.folder.parent, mode=0o700, exist_ok=True)
        self.folder.write_bytes(b"")

    def transient(self) -> None:
        # the file's name is taken by a folder: the operator must clear it, then a
        # later attempt succeeds
        os.makedirs(self.folder / f"{self.outbound().message_id}.out", mode=0o700)

    async def misbehave(self, how: str) -> None:
        self.transient()


# --------------------------------------------------------------------- http, fhir


class HttpRig(Rig):
    kind = "http"
    content = HL7_MESSAGE
    content_type = HL7
    permanent = ("400",)
    misbehaviours = ("garbage", "reset-mid-answer", "silent")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.receiver = HttpReceiver()
        self.raw: RawPeer | None = None

    async def start(self) -> None:
        await self.receiver.start()

    async def stop(self) -> None:
        await self.receiver.stop()
        if self.raw is not None:
            await self.raw.stop()

    def port(self) -> int:
        return self.raw.port if self.raw is not None else self.receiver.port

    def url(self) -> str:
        return f"http://conduit:{SECRET}@127.0.0.1:{self.port()}/inbound/adt"

    def config(self) -> dict[str, Any]:
        return {"type": "http", "name": "out", "url": self.url(), "timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        return [r.body for r in self.receiver.received if r.method in ("POST", "PUT")]

    def attempts(self) -> int:
        return len(self.receiver.received)

    def binding(self) -> str:
        return f"127.0.0.1:{self.port()}"

    def transient(self) -> None:
        self.receiver.script.append(Reply(503, QUOTED, {"Retry-After": "7"}))

    def refuse(self, how: str) -> None:
        self.receiver.script.append(Reply(int(how), QUOTED))

    async def misbehave(self, how: str) -> None:
        """A raw peer in the receiver's place (the destination is built after this)."""
        if how == "garbage":
            self.raw = RawPeer(b"SMTP READY " + QUOTED + b"\r\n\r\n", http=True)
        elif how == "reset-mid-answer":
            self.raw = RawPeer(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n"
                               b"Content-Type: text/plain\r\n\r\n" + QUOTED, http=True,
                               reset=True)
        else:
            self.raw = RawPeer(http=True, silent=True)
        await self.raw.start()


class FhirRig(HttpRig):
    kind = "fhir"
    content = PATIENT
    content_type = FHIR
    permanent = ("400", "422")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.receiver = HttpReceiver(Reply(201))

    def url(self) -> str:
        return f"http://conduit:{SECRET}@127.0.0.1:{self.port()}/fhir"

    def config(self) -> dict[str, Any]:
        return {"type": "fhir", "name": "out", "url": self.url(), "timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        taken = [r for r in self.receiver.received if r.method in ("POST", "PUT")]
        assert all(r.path.startswith("/fhir/Patient") for r in taken)
        return [r.body for r in taken]

    def transient(self) -> None:
        self.receiver.script.append(Reply(503, operation_outcome("transient"),
                                          {"Retry-After": "7", "Content-Type": FHIR}))

    def refuse(self, how: str) -> None:
        self.receiver.script.append(Reply(int(how), operation_outcome(),
                                          {"Content-Type": FHIR}))


# ------------------------------------------------------------------------- MLLP


class MllpRig(Rig):
    kind = "mllp"
    content = HL7_MESSAGE
    content_type = HL7
    permanent = ("AR",)
    misbehaviours = ("garbage", "reset-mid-answer", "closed-without-answer", "silent",
                     "shifted-ack")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.peer = MllpPeer()
        self.raw: RawPeer | None = None

    async def start(self) -> None:
        await self.peer.start()

    async def stop(self) -> None:
        await self.peer.stop()
        if self.raw is not None:
            await self.raw.stop()

    def port(self) -> int:
        return self.raw.port if self.raw is not None else self.peer.port

    def config(self) -> dict[str, Any]:
        return {"type": "mllp", "name": "out", "host": "127.0.0.1", "port": self.port(),
                "timeout": TIMEOUT, "connect_timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        return list(self.peer.received)

    def attempts(self) -> int:
        return len(self.peer.received)

    def binding(self) -> str:
        return f"127.0.0.1:{self.port()}"

    def _nak(self, code: str) -> str:
        # the patient quoted where receivers put their words: MSA-3, ERR-3.2, ERR-8
        return ack_text(code, text=QUOTED.decode(),
                        err=f"ERR||PID^1^3|204^Unknown key {MRN}^HL70357|E||||{NAME}")

    def transient(self) -> None:
        self.peer.script.append(self._nak("AE"))

    def refuse(self, how: str) -> None:
        self.peer.script.append(self._nak(how))

    async def misbehave(self, how: str) -> None:
        if how == "garbage":  # a frame, but no acknowledgement: it echoes the patient
            self.raw = RawPeer(b"\x0b" + QUOTED + b"\x1c\r", http=False)
        elif how == "reset-mid-answer":
            self.raw = RawPeer(b"\x0bMSH|^~\\&|RCV|RCV|SND|SND|2024", http=False, reset=True)
        elif how == "shifted-ack":  # fields out of place: MSA-1 and MSA-2 hold the patient
            self.peer.script.append(f"MSH|^~\\&|RCV|RCV|SND|SND|20240101||ACK|R1|P|2.5.1\r"
                                    f"MSA|{NAME}|{MRN}\r")
            return
        elif how == "closed-without-answer":
            self.raw = RawPeer(b"", http=False)
        else:
            self.raw = RawPeer(http=False, silent=True)
        await self.raw.start()


# ---------------------------------------------------------------------- channel


class ChannelRig(Rig):
    """The receiver is another channel's inbox: a started channel source whose deliver
    answers with scripted receipts."""

    kind = "channel"
    content = HL7_MESSAGE
    content_type = HL7
    permanent = ("rejected",)
    misbehaviours = ("raises",)

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.inbox = f"conformance-{os.getpid()}-{time.monotonic_ns()}"
        self.source: Any = None
        self.got: list[tuple[bytes, SourceMeta]] = []
        self.script: list[Receipt] = []

    async def _deliver(self, raw: bytes, meta: SourceMeta) -> Receipt:
        self.got.append((raw, meta))
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return Receipt(f"m-{len(self.got)}", MessageStatus.ACCEPTED)

    async def start(self) -> None:
        kind = registry.SOURCES["channel"]
        cfg = msgspec.convert({"type": "channel", "inbox": self.inbox}, kind.config)
        self.source = kind.factory(cfg, SourceContext(channel="downstream"))
        await self.source.start(self._deliver)

    async def stop(self) -> None:
        if self.source is not None:
            await self.source.stop()

    def config(self) -> dict[str, Any]:
        return {"type": "channel", "name": "out", "inbox": self.inbox, "timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        return [raw for raw, _ in self.got]

    def attempts(self) -> int:
        return len(self.got)

    def binding(self) -> str:
        return self.inbox

    def transient(self) -> None:
        self.script.append(Receipt("", MessageStatus.ERROR))  # could not store it

    def refuse(self, how: str) -> None:
        self.script.append(Receipt("m-refused", MessageStatus.REJECTED))

    async def misbehave(self, how: str) -> None:
        self.script.append(RuntimeError(f"store unavailable for {NAME}"))  # type: ignore


# ------------------------------------------------------------------------- CORE


X12_270 = (
    "ISA*00*          *00*          *ZZ*HARBORSIDE01   *ZZ*ACMEHEALTH     *261203*1015*^*"
    "00501*000000101*0*P*:~GS*HS*HARBORSIDE01*ACMEHEALTH*20261203*1015*101*X*005010X279A1~"
    "ST*270*0001*005010X279A1~BHT*0022*13*CONF1*20261203*1015~HL*1**20*1~"
    "NM1*PR*2*ACME HEALTH*****PI*ACMEHEALTH~HL*2*1*21*1~"
    "NM1*1P*2*HARBORSIDE MEDICAL GROUP*****XX*1234567893~HL*3*2*22*0~"
    f"NM1*IL*1*{NAME}*ALEX****MI*{MRN}~EQ*30~SE*10*0001~GE*1*101~IEA*1*000000101~"
).encode()


class CoreRig(HttpRig):
    """A payer's CAQH CORE endpoint (tests/core_payer.py): the 270 goes inside the
    multipart envelope and the 271 comes back as the delivery's answer."""

    kind = "core"
    content = X12_270
    content_type = "application/edi-x12"
    permanent = ("SenderNotAuthorized", "PayloadTypeNotSupported")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.payer = CorePayer()

    async def start(self) -> None:
        await self.payer.start()

    async def stop(self) -> None:
        await self.payer.stop()
        if self.raw is not None:
            await self.raw.stop()

    def port(self) -> int:
        return self.raw.port if self.raw is not None else self.payer.port

    def url(self) -> str:
        return f"http://conduit:{SECRET}@127.0.0.1:{self.port()}/core/realtime"

    def config(self) -> dict[str, Any]:
        return {"type": "core", "name": "out", "url": self.url(), "timeout": TIMEOUT,
                "sender_id": "HARBORSIDE01", "receiver_id": "ACMEHEALTH"}

    def delivered(self) -> list[bytes]:
        return [r.fields["Payload"].encode() for r in self.payer.received
                if r.answered == "271"]

    def attempts(self) -> int:
        return self.payer.requests

    def transient(self) -> None:
        self.payer.script.append((503, QUOTED, {"Retry-After": "7"}))

    def refuse(self, how: str) -> None:  # the payer's ErrorMessage quotes the patient
        self.payer.error = (how, QUOTED.decode())


RIGS: dict[str, type[Rig]] = {
    "file": FileRig, "http": HttpRig, "fhir": FhirRig, "mllp": MllpRig, "channel": ChannelRig,
    "core": CoreRig,
}


# ------------------------------------------------------------------------- SFTP


class SftpRig(Rig):
    """A partner's SFTP server (asyncssh, on loopback, key authentication, its host key
    in known_hosts). Like a folder it has no permanent refusal: a server that refuses a
    write today (permissions, a full disk) may take it once its admin has looked."""

    kind = "sftp"
    content = HL7_MESSAGE
    content_type = HL7
    misbehaviours = ("target-is-a-folder", "garbage", "silent")

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.server = SftpServer(tmp / "sftp-root", tmp / "sftp-keys")
        self.other: Any = None  # a peer in the server's place that is no SSH server

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        if self.other is not None:
            self.other.close()
            await self.other.wait_closed()

    def port(self) -> int:
        return self.other.sockets[0].getsockname()[1] if self.other else self.server.port

    def config(self) -> dict[str, Any]:
        return {"type": "sftp", "name": "out", "host": "127.0.0.1", "port": self.port(),
                "username": USER, "private_key": str(self.server.client_key),
                "known_hosts": str(self.server.known_hosts), "directory": "/outbox",
                "filename": "{message_id}.out", "timeout": TIMEOUT,
                "connect_timeout": TIMEOUT}

    def delivered(self) -> list[bytes]:
        folder = self.server.root / "outbox"
        if not folder.is_dir():
            return []
        return [p.read_bytes() for p in sorted(folder.iterdir())
                if p.is_file() and not p.name.endswith(".part")]

    def attempts(self) -> int:
        return sum(1 for op in self.server.ops if op[0] == "open")

    def binding(self) -> str:
        return f"127.0.0.1:{self.port()}"

    def transient(self) -> None:
        # a folder holds the file's name: the rename fails until the admin clears it
        os.makedirs(self.server.root / "outbox" / f"{self.outbound().message_id}.out")

    async def misbehave(self, how: str) -> None:
        if how == "target-is-a-folder":
            self.transient()
            return

        async def answer(reader: Any, writer: Any) -> None:
            if how == "garbage":  # no SSH banner: the patient, then the door shut
                writer.write(b"220 " + QUOTED + b"\r\n")
                writer.close()
            else:
                await reader.read()  # silent until the client gives up

        self.other = await asyncio.start_server(answer, "127.0.0.1", 0)


RIGS |= {"sftp": SftpRig}


REFUSALS = [(kind, how) for kind, rig in sorted(RIGS.items()) for how in rig.permanent]
MISBEHAVIOURS = [(kind, how) for kind, rig in sorted(RIGS.items()) for how in rig.misbehaviours]

# Kinds whose healthcheck must name a receiver that is down. Left out: http and fhir
# (by design they report whether the destination is open, not whether the server is
# reachable: a probe request would be a request).
PROBING = ["channel", "file", "mllp", "sftp"]


def test_every_destination_kind_has_a_rig():
    assert set(registry.DESTINATIONS) == set(RIGS), \
        "a destination kind needs a conformance rig in tests/conformance/test_destinations.py"


def test_every_kind_but_file_has_a_permanent_refusal_and_most_can_misbehave():
    """The parametrisations below cover what they claim (no kind silently left out)."""
    assert {kind for kind, _ in REFUSALS} == set(RIGS) - {"file", "sftp"}
    assert {kind for kind, _ in MISBEHAVIOURS} == set(RIGS)


def _rig(kind: str, tmp_path: Path) -> Rig:
    return RIGS[kind](tmp_path)


@pytest.fixture(params=sorted(RIGS))
async def rig(request, tmp_path):
    r = _rig(request.param, tmp_path)
    await r.start()
    yield r
    await r.stop()


def assert_phi_free(reason: str) -> None:
    assert isinstance(reason, str) and reason.strip(), f"no reason given: {reason!r}"
    for secret in (MRN, NAME, SECRET, "ALEX"):
        assert secret not in reason, f"{secret} in reason: {reason!r}"


async def _send_once(destination: Any, out: Outbound) -> Any:
    await destination.open()
    try:
        return await destination.send(out)
    finally:
        await destination.close()


# ---------------------------------------------------------------------- the contract


async def test_sent_when_the_receiver_accepts_with_content_intact(rig):
    destination = rig.build()
    await destination.open()
    try:
        first = await destination.send(rig.outbound())
        assert isinstance(first, Sent), first
        assert isinstance(first.code, str)
        assert rig.delivered() == [rig.content]
        again = rig.outbound()  # a second message on the same open destination
        again.message_id = "01JCONFORMANCE0000000000002"
        assert isinstance(await destination.send(again), Sent)
        assert rig.delivered() == [rig.content, rig.content]
    finally:
        await destination.close()


async def test_retry_when_the_receiver_is_down(rig):
    destination = rig.build()
    await destination.open()
    try:
        await rig.go_down()
        started = time.monotonic()
        delivery = await destination.send(rig.outbound())
        assert isinstance(delivery, Retry), delivery
        assert_phi_free(delivery.reason)
        assert time.monotonic() - started < TIMEOUT + 2.0
        assert rig.delivered() == []
    finally:
        await destination.close()


async def test_retry_on_a_transient_error_tried_once(rig):
    rig.transient()
    delivery = await _send_once(rig.build(), rig.outbound())
    assert isinstance(delivery, Retry), delivery
    assert_phi_free(delivery.reason)
    assert rig.kind == "file" or rig.attempts() == 1  # one try: the queue decides the next
    if rig.kind in ("http", "fhir", "core"):
        assert delivery.after == 7.0  # the receiver's Retry-After, for the policy
    assert rig.delivered() in ([], [rig.content])  # the error may be after the receipt


# (file and sftp have no permanent refusal: every write error may clear)
@pytest.mark.parametrize(("kind", "how"), REFUSALS)
async def test_fail_on_a_permanent_refusal(kind, how, tmp_path):
    rig = _rig(kind, tmp_path)
    await rig.start()
    try:
        rig.refuse(how)
        delivery = await _send_once(rig.build(), rig.outbound())
        assert isinstance(delivery, Fail), delivery
        assert_phi_free(delivery.reason)
        assert rig.attempts() == 1
        if kind in ("http", "fhir", "core"):  # the receiver's words kept, sealed, for the analyst
            assert delivery.answer is not None and MRN.encode() in delivery.answer.body
    finally:
        await rig.stop()


@pytest.mark.parametrize(("kind", "how"), MISBEHAVIOURS)
async def test_send_never_raises_on_a_misbehaving_receiver(kind, how, tmp_path):
    rig = _rig(kind, tmp_path)
    await rig.start()
    try:
        await rig.misbehave(how)
        started = time.monotonic()
        delivery = await _send_once(rig.build(), rig.outbound())  # must not raise
        assert isinstance(delivery, Retry | Fail), delivery
        assert_phi_free(delivery.reason)
        assert time.monotonic() - started < TIMEOUT + 2.0
    finally:
        await rig.stop()


def test_address_names_the_receiver_without_credentials(rig):
    address = rig.build().address
    assert isinstance(address, str)
    assert rig.binding() in address
    assert SECRET not in address


async def _health_when_down(rig: Rig) -> tuple[str | None, str | None]:
    """healthcheck() with the receiver up, then down."""
    destination = rig.build()
    await destination.open()
    try:
        up = await destination.healthcheck()
        await rig.go_down()
        if rig.kind == "mllp":
            await destination.close()  # the kept connection would still look alive
            await destination.open()
        return up, await destination.healthcheck()
    finally:
        await destination.close()


async def test_healthcheck_is_none_or_a_reason(rig):
    up, down = await _health_when_down(rig)
    assert up is None, up  # the receiver is up
    if down is not None:
        assert_phi_free(down)


@pytest.mark.parametrize("kind", PROBING)
async def test_healthcheck_names_a_receiver_that_is_down(kind, tmp_path):
    rig = _rig(kind, tmp_path)
    await rig.start()
    try:
        _, down = await _health_when_down(rig)
        assert isinstance(down, str), down
    finally:
        await rig.stop()


async def test_close_is_idempotent(rig):
    destination = rig.build()
    await destination.close()  # never opened
    await destination.open()
    assert isinstance(await destination.send(rig.outbound()), Sent)
    await destination.close()
    await destination.close()
