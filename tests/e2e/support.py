"""Helpers for end-to-end tests: `conduit run` as a real process, fake ADT traffic, and a
small MLLP sender that records which messages were acknowledged.

The daemon always runs from the repository root with the shipped `conf/conduit.yaml` and
`channels/`, exactly as a newcomer would start it; each test is isolated only through the
environment variables those files read (data folder, ports, FHIR URL, log level).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import sqlalchemy as sa

from engine.connectors.mllp import MllpClient
from engine.errors import ConduitError
from engine.formats.hl7v2 import Hl7Message
from tests.fhir_server import Answer, FhirTestServer
from tests.harness import free_port as harness_free_port
from tests.harness import written

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
CONDUIT = str(BIN / "conduit")
CHANNEL = "adt-to-fhir"
FHIR_DESTINATION = f"{CHANNEL}/fhir-server"


def free_port() -> int:
    """A port nobody listens on right now (tests.harness.free_port: outside the kernel's
    ephemeral range, so no outgoing connection takes it before the daemon binds it)."""
    return harness_free_port()


def port_accepts(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def clean_env() -> dict[str, str]:
    """The caller's environment without any CONDUIT_* setting, so that only what a test
    sets reaches the daemon (a developer's CONDUIT_FHIR_URL must not leak in)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}


# ---------------------------------------------------------------- the daemon process


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


class Daemon:
    """`conduit run` as a subprocess with its own data folder and ports.

    Every start writes its stdout and stderr to numbered files in the test's tmp_path, so
    logs of runs that were SIGKILLed survive for the assertions and for debugging.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.mllp_port = free_port()
        self.web_port = free_port()
        self.fhir_port = free_port()  # the FHIR source of channels/fhir-to-hl7v2.yaml
        self.script_port = free_port()  # the http source of channels/eprescribing.yaml
        self.env = clean_env()
        self.env.update({
            "CONDUIT_DATA_DIR": str(self.data_dir),
            "CONDUIT_MLLP_PORT": str(self.mllp_port),
            "CONDUIT_WEB_PORT": str(self.web_port),
            "CONDUIT_FHIR_PORT": str(self.fhir_port),
            "CONDUIT_SCRIPT_PORT": str(self.script_port),
            "CONDUIT_LOG_LEVEL": "debug",
        })
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_files: list[Path] = []

    @property
    def out_dir(self) -> Path:
        """Where the shipped channel's `files` destination writes one Bundle per message."""
        return self.data_dir / "out" / CHANNEL

    def deliver_to(self, fhir_url: str | None) -> None:
        """Point the channel's optional FHIR destination at a server (None disables it)."""
        if fhir_url is None:
            self.env.pop("CONDUIT_FHIR_URL", None)
        else:
            self.env["CONDUIT_FHIR_URL"] = fhir_url

    async def start(self, *run_args: str, timeout: float = 60.0) -> None:
        """Start `conduit run` (with `run_args`, such as "--workers", "2") and return once
        /readyz says the channels are started."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        out = self.tmp_path / f"daemon-{self.runs}.stdout"
        err = self.tmp_path / f"daemon-{self.runs}.stderr"
        self.log_files += [out, err]
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = subprocess.Popen([CONDUIT, "run", *run_args], cwd=REPO, env=self.env,
                                         stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.web_port}/readyz"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"conduit run exited with {self.proc.returncode} "
                                         f"before it was ready:\n{self.logs()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as resp:
                        if resp.status == 200 and (await resp.json()).get("ready"):
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"conduit run was not ready within {timeout}s:\n{self.logs()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code; fails the test if the process is still alive after `timeout`."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"conduit run still running {timeout}s later:\n"
                                     f"{self.logs()[-3000:]}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    async def crash(self) -> None:
        """SIGKILL: no chance to drain, flush or say goodbye."""
        self.signal(signal.SIGKILL)
        await self.wait_exit(5)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as an init system would, and the exit code."""
        self.signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    def kill_leftover(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def logs(self, run: int | None = None) -> str:
        """stdout and stderr of every run so far (or only of the 1-based `run`)."""
        files = self.log_files if run is None else self.log_files[2 * run - 2: 2 * run]
        return "".join(p.read_text(errors="replace") for p in files if p.exists())

    async def cli(self, *args: str, cwd: Path = REPO, timeout: float = 30.0) -> CliResult:
        """Another `conduit` command with this daemon's environment (not blocking the
        event loop, which also serves the FHIR test server)."""
        proc = await asyncio.create_subprocess_exec(
            CONDUIT, *args, cwd=cwd, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(errors="replace"),
                         err.decode(errors="replace"))

    async def user_token(self, name: str, role: str) -> str:
        """Add a user with the CLI, as an admin would, and make its API token."""
        added = await self.cli("users", "add", name, "--role", role)
        assert added.returncode == 0, added.stderr
        made = await self.cli("users", "token", name)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def output_files(self) -> list[Path]:
        return written(self.out_dir)


async def run_tool(*argv: str, env: dict[str, str], cwd: Path = REPO,
                   timeout: float = 30.0) -> CliResult:
    """Any command line tool, run without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


# ---------------------------------------------------------------- the FHIR receiver


class CountingFhirServer(FhirTestServer):
    """The shared FHIR test server, also counting requests it is still answering, so a
    test can SIGKILL the engine exactly while a delivery is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self._handlers: set[asyncio.Task] = set()

    async def _handle(self, request):  # type: ignore[override]
        self.in_flight += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await super()._handle(request)
        finally:
            self.in_flight -= 1
            self._handlers.discard(task)

    async def stop(self) -> None:
        """Stop at once: a request held by a long `Answer(delay=...)` would otherwise keep
        aiohttp's graceful shutdown waiting for a minute."""
        for task in list(self._handlers):
            task.cancel()
        await super().stop()

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.received]


# ---------------------------------------------------------------- fake ADT traffic

_MRN = re.compile(rb'"(E2E[A-Z0-9]+)"')


def mrns_in(blobs: Iterable[bytes]) -> set[str]:
    """Our fake MRNs (all start with E2E) quoted in JSON bodies or files."""
    found: set[str] = set()
    for blob in blobs:
        found.update(m.decode() for m in _MRN.findall(blob))
    return found


def delivered(fhir: FhirTestServer) -> list[str]:
    """The MRN of each request the FHIR server got, in order of arrival (a request still
    being answered counts: it was sent)."""
    seq = []
    for request in list(fhir.requests):
        seq.extend(dict.fromkeys(m.decode() for m in _MRN.findall(request.body)))
    return seq


def mrns_in_files(paths: Iterable[Path]) -> set[str]:
    return mrns_in(p.read_bytes() for p in paths)


@dataclass(frozen=True)
class Adt:
    """One fake ADT message; MRN and control id are unique within a test."""

    control_id: str
    mrn: str
    event: str = "A01"
    family: str = "TESTPATIENT"
    given: str = "ALEX"
    birth_date: str = "19700412"
    sex: str = "F"
    admit: str = "20240301101000"
    message_type: str = "ADT"
    facility: str = "NORTHWING"

    def text(self, newline: str = "\r") -> str:
        pv1 = ["PV1"] + [""] * 44
        pv1[1], pv1[2], pv1[3] = "1", "I", f"4W^401^A^{self.facility}"
        pv1[7] = "1234567890^WELBY^MARCUS^^^DR^MD"
        pv1[10], pv1[19] = "MED", f"V{self.mrn}^^^{self.facility}^VN"
        pv1[44] = self.admit
        structure = "ADT_A01" if self.message_type == "ADT" else f"{self.message_type}_{self.event}"
        segments = [
            f"MSH|^~\\&|EPIC|{self.facility}|CONDUIT|HIE|20240301101500-0500||"
            f"{self.message_type}^{self.event}^{structure}|{self.control_id}|P|2.5.1",
            f"EVN|{self.event}|20240301101500-0500",
            f"PID|1||{self.mrn}^^^{self.facility}^MR||{self.family}^{self.given}^J^^^^L||"
            f"{self.birth_date}|{self.sex}|||12 ELM ST^^SPRINGFIELD^IL^62701^USA^H||"
            "^PRN^PH^^1^217^5550134|||S",
            "|".join(pv1),
        ]
        return newline.join(segments) + newline

    def payload(self) -> bytes:
        return self.text().encode()


def adt_batch(prefix: str, count: int, *, event: str = "A01") -> list[Adt]:
    """`count` messages, alternating admissions and updates when event is "mixed"."""
    out = []
    for i in range(count):
        ev = event if event != "mixed" else ("A01", "A08")[i % 2]
        out.append(Adt(control_id=f"{prefix}{i:06d}", mrn=f"E2E{prefix}{i:06d}", event=ev,
                       family=f"TESTPATIENT{i % 97}"))
    return out


def ack_code(reply: bytes) -> str:
    """MSA-1 of an HL7 ACK, or "??" if the reply is no readable ACK."""
    try:
        return Hl7Message.parse(reply.decode("utf-8", "replace")).value("MSA-1") or "??"
    except ConduitError:
        return "??"


# ---------------------------------------------------------------- MLLP senders


@dataclass
class Ledger:
    """What the senders saw: AA'd messages, other answers, and sends that got no reply."""

    acked: list[Adt] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)  # control id -> MSA-1
    unanswered: list[Adt] = field(default_factory=list)

    @property
    def acked_mrns(self) -> set[str]:
        return {m.mrn for m in self.acked}


async def send_all(port: int, messages: list[Adt], ledger: Ledger, *, reconnect: bool = True,
                   pause: float = 0.0, reply_timeout: float = 15.0) -> None:
    """Send `messages` one after another on one connection, as an EHR's interface does.

    A message whose connection dies before its ACK is recorded as unanswered and the
    sender moves on (reconnecting when `reconnect`, else it gives up, as a sender that
    has been told to stop would)."""
    client: MllpClient | None = None
    try:
        for msg in messages:
            while client is None:
                candidate = MllpClient("127.0.0.1", port)
                try:
                    await candidate.connect(1.0)
                    client = candidate
                except (OSError, TimeoutError):
                    if not reconnect:
                        return
                    await asyncio.sleep(0.05)
            try:
                reply = await client.exchange(msg.payload(), reply_timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                ledger.unanswered.append(msg)
                await client.close()
                client = None
                if not reconnect:
                    return
                continue
            code = ack_code(reply)
            if code == "AA":
                ledger.acked.append(msg)
            else:
                ledger.other[msg.control_id] = code
            if pause:
                await asyncio.sleep(pause)
    finally:
        if client is not None:
            await client.close()


async def exchange_one(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """One message on its own connection; the raw reply."""
    client = MllpClient("127.0.0.1", port)
    await client.connect(timeout)
    try:
        return await client.exchange(payload, timeout)
    finally:
        await client.close()


async def backlog_under_way(fhir: CountingFhirServer, port: int, prefix: str) -> Ledger:
    """150 ADTs sent to `port` and acknowledged while the FHIR server answers slowly;
    returns once 20 have arrived and another is being answered: the moment a drill kills
    the process delivering them. Each answer takes 0.4 s, so the 150 outlast their sending
    (bounded at 60 s) on any host: at 0.05 s a loaded host had delivered them all before
    the last was sent, and nothing was left in flight to kill."""
    fhir.default = Answer(delay=0.4)
    ledger = Ledger()
    await asyncio.wait_for(send_all(port, adt_batch(prefix, 150), ledger), 60)
    assert len(ledger.acked) == 150 and not ledger.other
    await eventually(lambda: len(delivered(fhir)) >= 20 and fhir.in_flight > 0, timeout=30,
                     message="deliveries under way")
    return ledger


async def eventually(predicate, *, timeout: float, interval: float = 0.1,
                     message: str = "condition") -> None:
    """Poll `predicate` (sync or async) until true; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def use_postgres(daemon: Daemon, pg_url: str, keys_dir: Path) -> None:
    """Run `daemon` with the production example's settings on the database at `pg_url`
    and the Redis on 127.0.0.1 (CONDUIT_QUEUE=sql in daemon.env for the SQL queue), its
    keys in `keys_dir` (shared by engines that open what each other sealed)."""
    url = sa.engine.make_url(pg_url)
    daemon.env.update({
        "CONDUIT_CONF": str(REPO / "conf" / "production.example.yaml"),
        "CONDUIT_KEYS_DIR": str(keys_dir),
        "CONDUIT_DB_USER": url.username or "postgres",
        "CONDUIT_DB_PASSWORD": url.password or "",
        "CONDUIT_DB_HOST": url.host or "127.0.0.1",
        "CONDUIT_DB_NAME": url.database or "",
        # The example's Redis queue, under keys of this test's own (engines sharing the
        # database share them too).
        "CONDUIT_QUEUE_PREFIX": f"conduit-{url.database}",
    })


@contextlib.contextmanager
def daemons_on_postgres(tmp_path: Path, pg_url: str, names: tuple[str, ...], queue: str
                        ) -> Iterator[list[Daemon]]:
    """Daemons on one database and one key folder (each opens what another sealed),
    sharing queues in PostgreSQL (`queue` "sql") or Redis Streams ("redis"), each with its
    own ports and data folder; not started yet; killed on the way out if left running."""
    daemons = []
    for name in names:
        (tmp_path / name).mkdir()
        d = Daemon(tmp_path / name)
        use_postgres(d, pg_url, tmp_path / "keys")
        d.env["CONDUIT_QUEUE"] = queue
        daemons.append(d)
    try:
        yield daemons
    finally:
        for d in daemons:
            d.kill_leftover()
