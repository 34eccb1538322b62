"""End-to-end benchmark of `conduit run`, reported against a ceiling measured in the same run.

A benchmark, never a test: it asserts nothing about speed, it measures and prints. Phases:
  1. ceiling: a bare MLLP ACK server (bench_ceiling.py) driven by the load generator below,
     once on plain asyncio (the ceiling the ratio is defined against) and once on uvloop;
  2. engine: `conduit run` with one channel, MLLP in -> hl7v2-adt-to-fhir@1 -> HTTP out to
     bench_sink.py; warm-up, then the measured messages, each followed from its MLLP send
     to its arrival at the sink (matched by a unique PID-3 `BENCH<9 digits>`);
  3. backlog: sink stopped, so messages pile up in the durable queue; the engine's RSS is
     sampled at a tenth of the backlog and at all of it; then the sink returns and the
     drain rate is measured;
  4. SIGTERM, and the engine must exit 0;
  5. shipped (unless --no-shipped): what users run, beside the stripped channel of 2-4:
     `conduit run` on the repository's channels/*.yaml and conf/conduit.yaml copied
     unchanged (both channels, logging at info, the status page on with one signed-in
     client following its live stream), the FHIR destination pointed at the sink by
     CONDUIT_FHIR_URL and the file destination writing to the temporary data folder; the
     same ADTs (A01 and A08, which its filter takes), each delivered once it is both in its
     file and at the sink. Figures under "shipped", with its ratio to the stripped channel.
Human-readable lines first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
BIN = Path(sys.executable).parent
START, END = b"\x0b", b"\x1c\x0d"
MB = 1024 * 1024


class BenchError(Exception):
    """The bench could not go on; the message says why."""


# --- messages -----------------------------------------------------------------------------

_ADT = (
    "MSH|^~\\&|EPIC|LAKESHORE^1.2.840.114350.1.13.999.2^ISO|CONDUIT|HIE|{ts}||ADT^{ev}^ADT_A01"
    "|{ctl}|P|2.5.1\r"
    "EVN|{ev}|{ts}|||JSMITH^SMITH^JANE^^^^^^EPIC|{ts}\r"
    "PID|1||{pid}^^^LKS^MR~999{ssn:06d}^^^SSA^SS||{last}^{first}^ANNE^^^^L~{last}^{nick}^^^^^N"
    "||{dob}|{sex}||2106-3^White^CDCREC|1402 WILLOW BEND RD^APT 3B^MADISON^WI^53711^USA^H^^DANE"
    "~PO BOX 4471^^MADISON^WI^53744^USA^M||^PRN^PH^^1^608^5550142~^NET^Internet^pt{n}@example.com"
    "|^WPN^PH^^1^608^5550177^204|ENG|M|NON|{visit}||||||N||||||N\r"
    "NK1|1|{last}^ERIK^^^^^L|SPO^Spouse^HL70063|1402 WILLOW BEND RD^^MADISON^WI^53711^USA"
    "|^PRN^PH^^1^608^5550143\r"
    "PV1|1|I|4N^0412^B^LAKESHORE^^^MAIN^4|E|||1234567890^OKAFOR^CHIDI^N^^DR^MD^^NPI&2.16.840."
    "1.113883.4.6&ISO^L^^^NPI|2345678901^BRANDT^LUCIA^^^^MD||MED||||1|||1234567890^OKAFOR^"
    "CHIDI^N^^DR^MD|IN|{visit}^^^LKS^VN|COMMERCIAL|||||||||||||||||||LAKESHORE||ADM|||{ts}\r"
    "PV2|||^CHEST PAIN\r"
    "AL1|1|DA|70618^Penicillin^RXNORM|MO|Hives\r"
    "DG1|1||R07.9^Chest pain, unspecified^I10|||A\r"
)
_NAMES = [("HALVORSEN", "KRISTIN", "KRIS", "F"), ("OKONKWO", "MIREILLE", "MIMI", "F"),
          ("ABERNATHY", "DESMOND", "DES", "M"), ("NAKAMURA", "KENJI", "KEN", "M"),
          ("FERREIRA", "MARCOS", "MARC", "M"), ("LINDQVIST", "ASTRID", "ASSI", "F")]


def build_messages(first_id: int, count: int) -> tuple[list[bytes], list[bytes]]:
    """MLLP frames of ADT^A01/A08 with unique control and patient ids, and their control ids.

    Built before the clock starts, so generating them costs the measured run nothing.
    The patient id `BENCH<9 digits>` is what the sink finds in the FHIR Bundle.
    """
    frames, controls = [], []
    for n in range(first_id, first_id + count):
        last, first, nick, sex = _NAMES[n % len(_NAMES)]
        ctl = f"BM{n:010d}"
        text = _ADT.format(
            ts=f"202403{1 + n % 28:02d}{n % 24:02d}{n % 60:02d}12-0500",
            ev="A08" if n % 2 else "A01", ctl=ctl, pid=f"BENCH{n:09d}", ssn=n % 1_000_000,
            last=last, first=first, nick=nick,
            dob=f"19{40 + n % 60:02d}{1 + n % 12:02d}{1 + n % 28:02d}", sex=sex, n=n,
            visit=f"V{n:09d}")
        frames.append(START + text.encode() + END)
        controls.append(ctl.encode())
    return frames, controls


# --- load generator -----------------------------------------------------------------------

class Load:
    """One run of the generator: which message is next, and what happened to each."""

    def __init__(self, frames: list[bytes], controls: list[bytes] | None, total: int) -> None:
        self.frames, self.controls, self.total = frames, controls, total
        self.next = 0
        self.acks = 0
        self.lost = 0
        self.sent = [0.0] * total
        self.acked = [0.0] * total
        self.codes: Counter[str] = Counter()
        self.mismatched = 0  # ACKs whose MSA-2 is not the control id just sent
        self.alive = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finish_if_done(self) -> None:
        if not self.done.done() and (self.acks + self.lost >= self.total or self.alive == 0):
            self.done.set_result(None)


class Sender(asyncio.Protocol):
    """One MLLP connection: send a message, wait for its ACK, send the next."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.current = -1
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.load.alive += 1

    def send_next(self) -> None:
        load = self.load
        i = load.next
        if i >= load.total or self.transport is None:
            self.current = -1
            return
        load.next = i + 1
        self.current = i
        load.sent[i] = time.time()
        self.transport.write(load.frames[i % len(load.frames)])

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        end = buf.find(END)
        while end >= 0:
            self._on_ack(buf[:end])
            buf = buf[end + 2:]
            end = buf.find(END)
        self.buf = buf

    def _on_ack(self, frame: bytes) -> None:
        load, i = self.load, self.current
        if i < 0:
            return
        load.acked[i] = time.time()
        at = frame.find(b"MSA|")
        load.codes[frame[at + 4:at + 6].decode("latin-1") if at >= 0 else "??"] += 1
        if load.controls is not None:
            ctl = load.controls[i]
            if frame[at + 7:at + 7 + len(ctl) + 1].rstrip(b"|\r") != ctl:
                load.mismatched += 1
        load.acks += 1
        self.send_next()
        load.finish_if_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.load.alive -= 1
        if self.current >= 0:
            self.load.lost += 1
            self.current = -1
        self.load.finish_if_done()


async def drive(port: int, frames: list[bytes], controls: list[bytes] | None, total: int,
                connections: int, stall_s: float = 60.0) -> Load:
    """Send `total` messages over `connections` MLLP connections (frames are cycled)."""
    loop = asyncio.get_running_loop()
    load = Load(frames, controls, total)
    senders: list[Sender] = []
    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: Sender(load), "127.0.0.1", port)
        senders.append(proto)
    for s in senders:
        s.send_next()
    try:
        progress, since = -1, time.monotonic()
        while not load.done.done():
            await asyncio.wait([load.done], timeout=1.0)
            if load.acks != progress:
                progress, since = load.acks, time.monotonic()
            elif time.monotonic() - since > stall_s:
                raise BenchError(f"no ACK for {stall_s:.0f} s after {load.acks}/{total}")
    finally:
        for s in senders:
            if s.transport is not None:
                s.transport.close()
    return load


# --- processes ----------------------------------------------------------------------------

class Procs:
    """Every child the bench starts, each in its own session so its whole group dies."""

    def __init__(self) -> None:
        self.all: list[asyncio.subprocess.Process] = []

    async def start(self, *argv: str | Path, **kw: Any) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(*map(str, argv), start_new_session=True,
                                                    **kw)
        self.all.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.all:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


async def read_port(proc: asyncio.subprocess.Process, what: str) -> int:
    """The `PORT <n>` line a helper prints once it listens."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line.startswith(b"PORT "):
        raise BenchError(f"{what} did not start: {line!r}")
    return int(line.split()[1])


class Sink:
    """The HTTP sink process and its stdin/stdout control line."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    @classmethod
    async def start(cls, procs: Procs, port: int = 0, delay: float = 0.0) -> Sink:
        proc = await procs.start(sys.executable, SCRIPTS / "bench_sink.py", "--port", port,
                                 "--delay", delay, stdin=asyncio.subprocess.PIPE,
                                 stdout=asyncio.subprocess.PIPE)
        return cls(proc, await read_port(proc, "the HTTP sink"))

    async def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode().strip()

    async def count(self) -> int:
        return int((await self.ask("count")).split()[1])

    async def dump(self, path: Path) -> dict[str, Any]:
        await self.ask(f"dump {path}")
        data = json.loads(path.read_text())
        data["first"] = {int(k): v for k, v in data["first"].items()}
        return data

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)


async def until(probe: Callable[[], Awaitable[int]], target: int, stall_s: float,
                timeout_s: float = 3600.0, every: float = 0.05) -> int:
    """Poll `probe` until it reaches `target`, it stops moving for `stall_s`, or timeout."""
    value, last, since, began = 0, -1, time.monotonic(), time.monotonic()
    while True:
        value = await probe()
        now = time.monotonic()
        if value >= target or now - began > timeout_s:
            return value
        if value != last:
            last, since = value, now
        elif now - since > stall_s:
            return value
        await asyncio.sleep(every)


def proc_status_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) a process has used, all threads, or one thread's."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy: other people's load shows here."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- figures ------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values, in milliseconds; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def ack_figures(load: Load) -> dict[str, Any]:
    acked = [i for i in range(load.total) if load.acked[i]]
    lat = [load.acked[i] - load.sent[i] for i in acked]
    span = max(load.acked[i] for i in acked) - min(load.sent) if acked else 0.0
    return {"ack_msgs_per_s": rate(len(acked), span), "ack_p50_ms": pct(lat, 0.5),
            "ack_p99_ms": pct(lat, 0.99), "acks": dict(load.codes), "lost": load.lost,
            "mismatched": load.mismatched}


def bad_acks(load: Load) -> int:
    return sum(n for code, n in load.codes.items() if code != "AA") + load.lost


# --- the engine under test ----------------------------------------------------------------

def write_engine_config(tmp: Path) -> Path:
    """conf/conduit.yaml for an engine whose data, channels and log live in `tmp`, with
    the shipped mappings and no web listener; channels go in tmp/channels."""
    (tmp / "conf").mkdir()
    (tmp / "channels").mkdir()
    conf = tmp / "conf" / "conduit.yaml"
    conf.write_text(
        f"data_dir: {tmp / 'data'}\n"
        f"channels_dir: {tmp / 'channels'}\n"
        f"mappings_dir: {ROOT / 'mappings'}\n"
        "web:\n  host: 127.0.0.1\n  port: 0\n"
        f"log:\n  level: warning\n  file: {tmp / 'conduit.log'}\n")
    return conf


def write_config(tmp: Path, mllp_port: int, sink_port: int, dest_type: str,
                 order: str = "destination", concurrency: int = 1, senders: int = 8) -> Path:
    """conf/conduit.yaml and channels/bench.yaml in the temporary directory; the sink's
    delivery `order` and `concurrency` (docs/configuration.md). The bench's `senders`
    all come from 127.0.0.1, one peer standing in for many sending systems, so the
    source admits that many connections from one address (its default of 20 would refuse
    the rest, and their messages would count as lost)."""
    conf = write_engine_config(tmp)
    # Retries stay short and never give up: the backlog phase keeps the sink down for a
    # while, and the drain should start soon after it returns.
    (tmp / "channels" / "bench.yaml").write_text(
        "description: scripts/bench, MLLP ADT to FHIR over HTTP\n"
        f"source:\n  type: mllp\n  host: 127.0.0.1\n  port: {mllp_port}\n"
        f"  max_connections_per_peer: {max(20, senders)}\n"
        "mapping: hl7v2-adt-to-fhir@1\n"
        "retry:\n  max_attempts: 1000000\n  initial_delay: 200ms\n  max_delay: 1s\n"
        f"destinations:\n  - name: sink\n    type: {dest_type}\n"
        f"    url: http://127.0.0.1:{sink_port}/fhir\n    timeout: 10s\n"
        f"    order: {order}\n    concurrency: {concurrency}\n")
    return conf


async def start_engine(procs: Procs, tmp: Path, conf: Path, mllp_port: int,
                       env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`conduit run`, ready once its MLLP port accepts a connection."""
    with open(tmp / "engine.out", "wb") as out, open(tmp / "engine.err", "wb") as err:
        proc = await procs.start(BIN / "conduit", "--conf", conf, "run", cwd=tmp, stdout=out,
                                 stderr=err, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise BenchError(f"conduit run exited {proc.returncode}:\n{engine_output(tmp)}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", mllp_port)
            writer.close()
            return proc
        await asyncio.sleep(0.1)
    raise BenchError(f"conduit run did not listen on {mllp_port} within 60 s")


def engine_output(tmp: Path, lines: int = 30) -> str:
    """The tail of the engine's stderr and log file, for reports."""
    text = []
    for name in ("engine.err", "conduit.log"):
        path = tmp / name
        if path.exists() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(text) or "(no output)"


def queue_depth(db: Path) -> Callable[[], Awaitable[int]]:
    """A probe for the entries waiting in the engine's queue, read from its SQLite file."""
    conn: list[sqlite3.Connection] = []

    def count() -> int:
        if not conn:
            conn.append(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30,
                                        check_same_thread=False))
        return conn[0].execute("SELECT count(*) FROM queue WHERE state != 'dead'").fetchall()[0][0]

    async def probe() -> int:
        return await asyncio.to_thread(count)

    return probe


# --- profile ------------------------------------------------------------------------------

async def start_profile(procs: Procs, pid: int, seconds: float, out: Path, gil: bool
                        ) -> asyncio.subprocess.Process | None:
    """py-spy on the engine; with `gil`, only the thread holding the GIL is sampled, which
    shows where Python CPU goes when the loop and the writer thread take turns."""
    spy = BIN / "py-spy"
    if not spy.exists():
        print("profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        return None
    return await procs.start(spy, "record", "--pid", pid, "--duration", int(seconds),
                             "--rate", 250, "--nonblocking", "--format", "raw", "--output",
                             out, *(["--gil"] if gil else []),
                             stdout=asyncio.subprocess.DEVNULL,
                             stderr=asyncio.subprocess.DEVNULL)


_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def summarize_profile(path: Path, top: int = 15) -> list[str]:
    """Top functions by own samples (with their share anywhere on the stack), and own
    samples per package, from py-spy's collapsed stacks: where the engine's time goes."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [m for f in stack.split(";") if (m := _FRAME.match(f))] if n.isdigit() else []
        if not frames:
            continue
        names = [f"{m[1]} ({m[2].replace(str(ROOT) + '/', '')})" for m in frames]
        count = int(n)
        total += count
        own[names[-1]] += count
        for name in set(names):
            anywhere[name] += count
        file = frames[-1][2].replace(str(ROOT) + "/", "").split("/")
        packages["/".join(file[:2]) if file[0] == "engine" else file[0]] += count
    if not total:
        return ["profile: no samples"]
    lines = [f"profile: {total} samples; top {top} by own time (own%, on-stack%):"]
    for name, n in own.most_common(top):
        lines.append(f"  {100 * n / total:5.1f}% {100 * anywhere[name] / total:5.1f}%  {name}")
    lines.append("  own time by package: " + ", ".join(
        f"{pkg} {100 * n / total:.0f}%" for pkg, n in packages.most_common(8)))
    return lines


# --- one measured phase -------------------------------------------------------------------

Send = Callable[[int], Awaitable[tuple[Load, int]]]
Probe = Callable[[], Awaitable[int]]
# measure()'s keys as the stripped phase has always named them in the JSON line
STRIPPED_KEYS = {"msgs_per_s": "engine_msgs_per_s", "cpu_pct": "engine_cpu_pct",
                 "main_thread_cpu_pct": "engine_main_thread_cpu_pct",
                 "cpu_ms_per_msg": "engine_cpu_ms_per_msg"}


def numbered_sender(port: int, connections: int) -> Send:
    """send(count): `count` fresh ADTs over MLLP, ids going on from the previous call's;
    returns the load and the first id sent."""
    next_id = 0

    async def send(count: int) -> tuple[Load, int]:
        nonlocal next_id
        first = next_id
        frames, controls = build_messages(first, count)
        next_id += count
        return await drive(port, frames, controls, count, connections), first

    return send


async def warm_up(send: Send, count: int, delivered: Probe, where: str,
                  every: float = 0.05) -> None:
    if not count:
        return
    warm, first = await send(count)
    got = await until(delivered, first + count, stall_s=60, every=every)
    print(f"warm-up: {count:,} messages, {bad_acks(warm)} not AA, "
          f"{got:,}/{first + count:,} {where}")


def cpu_sample(pid: int) -> tuple[float, float, float, float]:
    """Wall clock, the engine's CPU (all threads, its main thread) and the machine's."""
    return (time.monotonic(), cpu_seconds(pid), cpu_seconds(pid, pid),
            machine_busy_seconds())


async def measure(pid: int, send: Send, count: int, delivered: Probe,
                  arrivals: Callable[[], Awaitable[dict[int, float]]],
                  every: float = 0.05) -> dict[str, Any]:
    """Send `count` messages, wait until `delivered` counts them all (or stalls for 60 s),
    and figure end to end from `arrivals` (id -> time.time() it was delivered), the ACKs
    and the engine's CPU. Keys starting with _ are for print_figures, not the JSON."""
    cpu0 = cpu_sample(pid)
    load, first_id = await send(count)
    acked_at = time.time()
    got = await until(delivered, first_id + count, stall_s=60, every=every)
    cpu1 = cpu_sample(pid)
    first = await arrivals()
    figs = ack_figures(load)
    arrived = {i: first[first_id + i] for i in range(load.total) if first_id + i in first}
    e2e = [t - load.sent[i] for i, t in arrived.items()]
    span = (max(arrived.values()) - min(load.sent)) if arrived else 0.0
    wall, cpu, main_cpu, busy = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    return {"msgs_per_s": rate(len(arrived), span), "ack_msgs_per_s": figs["ack_msgs_per_s"],
            "p50_ms": pct(e2e, 0.5), "p99_ms": pct(e2e, 0.99),
            "ack_p50_ms": figs["ack_p50_ms"], "ack_p99_ms": figs["ack_p99_ms"],
            "acks": figs["acks"], "not_aa": bad_acks(load), "ack_mismatched": figs["mismatched"],
            "delivered": len(arrived), "missing": load.total - len(arrived),
            "cpu_pct": 100 * cpu / wall, "main_thread_cpu_pct": 100 * main_cpu / wall,
            "cpu_ms_per_msg": 1000 * cpu / load.total,
            "machine_busy_pct": 100 * busy / wall / (os.cpu_count() or 1),
            "_lost": load.lost, "_total": load.total, "_span_s": span,
            "_last_after_ack_s": max(arrived.values(), default=acked_at) - acked_at,
            "_got": got, "_target": first_id + count}


def print_figures(label: str, figs: dict[str, Any], ratios: str, other_threads: str,
                  where: str = "at the sink") -> None:
    print(f"{label} ACKs: {figs['ack_msgs_per_s']:,.0f} msg/s, p50 {figs['ack_p50_ms']:.1f} ms, "
          f"p99 {figs['ack_p99_ms']:.1f} ms; codes {figs['acks']}, lost {figs['_lost']}, "
          f"MSA-2 mismatches {figs['ack_mismatched']}")
    print(f"{label} end to end: {figs['msgs_per_s']:,.0f} msg/s "
          f"({figs['delivered']:,}/{figs['_total']:,} delivered in {figs['_span_s']:.2f} s, "
          f"the last {figs['_last_after_ack_s']:.2f} s after the last ACK), "
          f"p50 {figs['p50_ms']:.1f} ms, p99 {figs['p99_ms']:.1f} ms; {ratios}")
    print(f"{label} CPU: {figs['cpu_pct']:.0f}% of a core "
          f"({figs['main_thread_cpu_pct']:.0f}% event loop thread, {other_threads}), "
          f"{figs['cpu_ms_per_msg']:.2f} ms per message; the machine's "
          f"{os.cpu_count()} cores {figs['machine_busy_pct']:.0f}% busy (bench and sink "
          "included, other people's work too)")
    if figs["_got"] < figs["_target"]:
        print(f"WARNING: {figs['_got']:,} of {figs['_target']:,} messages {where} after 60 s "
              "without progress")


# --- the run ------------------------------------------------------------------------------

async def bench(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"connections": args.connections, "messages": args.messages,
                           "warmup": args.warmup, "backlog": args.backlog,
                           "order": args.order, "concurrency": args.concurrency,
                           "sink_delay_s": args.sink_delay}

    # 1. Ceilings: bare asyncio (the reference the ratio is defined against) and uvloop.
    sample, _ = build_messages(900_000_000, 1000)
    ceilings = (("asyncio", "ceiling_msgs_per_s"), ("uvloop", "ceiling_uvloop_msgs_per_s"))
    for loop_name, key in ceilings:
        ceiling = await procs.start(sys.executable, SCRIPTS / "bench_ceiling.py",
                                    "--loop", loop_name, stdout=asyncio.subprocess.PIPE)
        cport = await read_port(ceiling, "the ceiling server")
        await drive(cport, sample, None, min(2000, args.ceiling_messages), args.connections)
        load = await drive(cport, sample, None, args.ceiling_messages, args.connections)
        ceiling.terminate()
        figs = ack_figures(load)
        out[key] = figs["ack_msgs_per_s"]
        print(f"ceiling ({loop_name}): {figs['ack_msgs_per_s']:,.0f} msg/s bare MLLP ACK, "
              f"p50 {figs['ack_p50_ms']:.2f} ms, p99 {figs['ack_p99_ms']:.2f} ms "
              f"({args.ceiling_messages:,} messages, {args.connections} connections)")

    # 2. Engine.
    sink = await Sink.start(procs, delay=args.sink_delay)
    mllp_port = free_port()
    conf = write_config(tmp, mllp_port, sink.port, args.dest_type, args.order,
                        args.concurrency, args.connections)
    engine = await start_engine(procs, tmp, conf, mllp_port)
    print(f"engine: pid {engine.pid}, MLLP {mllp_port}, sink {sink.port}, data in {tmp}")
    send = numbered_sender(mllp_port, args.connections)
    await warm_up(send, args.warmup, sink.count, "at the sink")

    spy = None
    if args.profile:
        spy = await start_profile(procs, engine.pid, args.profile, tmp / "profile.txt",
                                  args.profile_gil)
    records: dict[str, Any] = {}

    async def sink_arrivals() -> dict[int, float]:
        records.update(await sink.dump(tmp / "sink-measured.json"))
        return records["first"]

    figs = await measure(engine.pid, send, args.messages, sink.count, sink_arrivals)
    if spy is not None:
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 60)
    out.update({STRIPPED_KEYS.get(k, k): v for k, v in figs.items() if k[0] != "_"},
               sink_requests=records["requests"], sink_unmatched=records["unmatched"])
    out["ratio"] = out["engine_msgs_per_s"] / out["ceiling_msgs_per_s"]
    out["ratio_uvloop"] = out["engine_msgs_per_s"] / out["ceiling_uvloop_msgs_per_s"]
    print_figures("engine", figs, f"ratio to the asyncio ceiling {out['ratio']:.3f} "
                  f"(to the uvloop ceiling {out['ratio_uvloop']:.3f})",
                  "the rest the store writer")
    if spy is not None and (tmp / "profile.txt").exists():
        print("\n".join(summarize_profile(tmp / "profile.txt")))

    # 3. Backlog: destination down, messages wait in the durable queue.
    if args.backlog:
        await sink.stop()
        depth = queue_depth(tmp / "data" / "conduit.db")
        tenth = args.backlog // 10
        samples: dict[str, float] = {}

        async def watch() -> None:
            await until(depth, tenth, stall_s=3600, every=0.2)
            samples["tenth"] = proc_status_mb(engine.pid, "VmRSS")

        watcher = asyncio.ensure_future(watch())
        began = time.time()
        backlog_load, _ = await send(args.backlog)
        queued = await until(depth, args.backlog, stall_s=30, every=0.2)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(watcher, 5)
        samples["all"] = proc_status_mb(engine.pid, "VmRSS")
        bfigs = ack_figures(backlog_load)
        out.update(rss_at_10k_mb=samples.get("tenth", float("nan")),
                   rss_at_100k_mb=samples["all"], backlog_queued=queued,
                   backlog_ack_msgs_per_s=bfigs["ack_msgs_per_s"],
                   backlog_not_aa=bad_acks(backlog_load))
        out["backlog_growth_mb"] = out["rss_at_100k_mb"] - out["rss_at_10k_mb"]
        print(f"backlog: {args.backlog:,} sent in {time.time() - began:.1f} s "
              f"({bfigs['ack_msgs_per_s']:,.0f} ACK/s, {bad_acks(backlog_load)} not AA), "
              f"{queued:,} queued; RSS {out['rss_at_10k_mb']:.0f} MiB at {tenth:,} -> "
              f"{out['rss_at_100k_mb']:.0f} MiB at {queued:,} "
              f"(growth {out['backlog_growth_mb']:+.1f} MiB)")
        if args.drain:
            sink = await Sink.start(procs, sink.port, args.sink_delay)
            restarted = time.time()
            got = await until(sink.count, args.backlog, stall_s=60, timeout_s=args.drain_timeout)
            times = sorted((await sink.dump(tmp / "sink-drain.json"))["first"].values())
            if times:
                out["drain_msgs_per_s"] = rate(len(times), times[-1] - times[0])
                out["drain_first_after_s"] = times[0] - restarted
            print(f"drain: {got:,}/{args.backlog:,} delivered, "
                  f"{out.get('drain_msgs_per_s', float('nan')):,.0f} msg/s once started "
                  f"({out.get('drain_first_after_s', float('nan')):.1f} s after the sink "
                  "returned)")

    # 4. Stop.
    stopped = await stop_engine("engine", engine, tmp)
    out["peak_rss_mb"] = stopped.pop("peak_rss_mb")
    out.update({f"engine_{k}": v for k, v in stopped.items()})
    await sink.stop()
    return out


async def stop_engine(label: str, engine: asyncio.subprocess.Process, tmp: Path
                      ) -> dict[str, Any]:
    """Peak RSS, then SIGTERM: exit code, seconds to stop, and the error lines its log
    (conduit.log, or stderr when the configuration logs there) holds."""
    out: dict[str, Any] = {"peak_rss_mb": proc_status_mb(engine.pid, "VmHWM")}
    engine.send_signal(signal.SIGTERM)
    stopping = time.monotonic()
    try:
        out["exit_code"] = await asyncio.wait_for(engine.wait(), 60)
    except TimeoutError:
        out["exit_code"] = None
    out["stop_s"] = time.monotonic() - stopping
    log_text = "".join(path.read_text(errors="replace") for path in
                       (tmp / "conduit.log", tmp / "engine.err") if path.exists())
    out["log_errors"] = sum(" ERROR " in ln or "CRITICAL" in ln
                            for ln in log_text.splitlines())
    print(f"{label}: peak RSS {out['peak_rss_mb']:.0f} MiB; SIGTERM -> exit "
          f"{out['exit_code']} in {out['stop_s']:.1f} s; "
          f"{out['log_errors']} error lines in its log")
    if out["exit_code"] != 0 or out["log_errors"]:
        print(engine_output(tmp, 15))
    return out


# --- what users run: the shipped channels and settings ------------------------------------

def write_shipped_config(tmp: Path) -> Path:
    """conf/conduit.yaml and channels/*.yaml copied unchanged, mappings/ linked: run in
    `tmp`, their relative paths resolve as they do in the checkout."""
    (tmp / "conf").mkdir()
    (tmp / "channels").mkdir()
    for channel in sorted((ROOT / "channels").glob("*.yaml")):
        shutil.copy(channel, tmp / "channels" / channel.name)
    (tmp / "mappings").symlink_to(ROOT / "mappings")
    return Path(shutil.copy(ROOT / "conf" / "conduit.yaml", tmp / "conf" / "conduit.yaml"))


def shipped_env(tmp: Path, mllp: int, fhir: int, web: int, sink: int) -> dict[str, str]:
    """The variables the shipped files read, and none of the caller's other CONDUIT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env.update(CONDUIT_DATA_DIR=str(tmp / "data"), CONDUIT_MLLP_PORT=str(mllp),
               CONDUIT_FHIR_PORT=str(fhir), CONDUIT_WEB_PORT=str(web),
               CONDUIT_FHIR_URL=f"http://127.0.0.1:{sink}/fhir")
    return env


async def viewer_token(procs: Procs, tmp: Path, conf: Path, env: dict[str, str]) -> str:
    """`conduit users add bench --role viewer` and `conduit users token bench`."""
    token = ""
    for argv in (("add", "bench", "--role", "viewer"), ("token", "bench")):
        cli = await procs.start(BIN / "conduit", "--conf", conf, "users", *argv, cwd=tmp,
                                env=env, stdout=asyncio.subprocess.PIPE,
                                stderr=asyncio.subprocess.STDOUT)
        said, _ = await asyncio.wait_for(cli.communicate(), 60)
        if cli.returncode != 0:
            raise BenchError(f"conduit users {argv[0]} exited {cli.returncode}: "
                             f"{said.decode(errors='replace').strip()[-300:]}")
        token = said.decode().strip().splitlines()[-1]
    return token


class LiveClient:
    """A signed-in status page following GET /api/events (server-sent events: a status
    snapshot every two seconds) for as long as the engine runs."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.events = 0
        self.first = asyncio.get_running_loop().create_future()
        self.task = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"no web listener on {self.port} within 30 s") from None
                await asyncio.sleep(0.1)
        writer.write(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                     f"Authorization: Bearer {self.token}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise BenchError(f"GET /api/events answered {status.decode(errors='replace')!r}")
        try:
            while line := await reader.readline():
                if line.startswith(b"event: status"):
                    self.events += 1
                    if not self.first.done():
                        self.first.set_result(None)
        finally:
            writer.close()

    async def started(self) -> None:
        """Once the first snapshot arrived (or why it never will)."""
        await asyncio.wait([self.first, self.task], timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            self.task.result()  # raises what stopped it
            raise BenchError("GET /api/events ended before its first event")
        if not self.first.done():
            raise BenchError("no event on GET /api/events within 30 s")

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self.task


def written_files(folder: Path) -> Probe:
    """A probe for the files the file destination finished (its .tmp names excluded)."""
    def count() -> int:
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name[0] != ".")
        return 0

    async def probe() -> int:
        return await asyncio.to_thread(count)

    return probe


def file_arrivals(folder: Path) -> dict[int, float]:
    """id -> mtime of the file holding it (the kernel's coarse clock: a few ms early)."""
    first: dict[int, float] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name[0] == ".":
                continue
            body = Path(entry.path).read_bytes()
            at = body.find(b"BENCH")
            if at >= 0 and body[at + 5:at + 14].isdigit():
                first.setdefault(int(body[at + 5:at + 14]), entry.stat().st_mtime)
    return first


async def shipped_bench(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    """The engine as users run it: channels/*.yaml and conf/conduit.yaml unchanged (both
    channels, the status page on, logging at info to stderr), a signed-in client following
    the live stream; the same ADTs to adt-to-fhir, each counted delivered once it is both
    in its file and at the FHIR sink (which answers a transaction-response Bundle)."""
    sink = await Sink.start(procs)
    mllp, fhir, web = free_port(), free_port(), free_port()
    env = shipped_env(tmp, mllp, fhir, web, sink.port)
    conf = write_shipped_config(tmp)
    token = await viewer_token(procs, tmp, conf, env)
    engine = await start_engine(procs, tmp, conf, mllp, env)
    live = LiveClient(web, token)
    await live.started()
    channels = ", ".join(sorted(c.stem for c in (tmp / "channels").glob("*.yaml")))
    print(f"shipped: pid {engine.pid}, channels {channels}, MLLP {mllp}, FHIR source {fhir}, "
          f"status page {web} followed live, FHIR sink {sink.port}, data in {tmp}")
    files = tmp / "data" / "out" / "adt-to-fhir"
    on_disk = written_files(files)

    async def at_both() -> int:
        return min(await sink.count(), await on_disk())

    seen: dict[str, int] = {}

    async def both_arrivals() -> dict[int, float]:
        records = await sink.dump(tmp / "sink-measured.json")
        in_files = await asyncio.to_thread(file_arrivals, files)
        seen.update(sink_requests=records["requests"], files=len(in_files))
        return {i: max(t, in_files[i]) for i, t in records["first"].items() if i in in_files}

    send = numbered_sender(mllp, args.connections)
    where = "in files and at the FHIR sink"
    await warm_up(send, args.warmup, at_both, where, every=0.2)
    events = live.events
    figs = await measure(engine.pid, send, args.messages, at_both, both_arrivals, every=0.2)
    out = {k: v for k, v in figs.items() if k[0] != "_"}
    out.update(seen, live_events=live.events - events)
    print_figures("shipped", figs, f"{out['live_events']} live status events meanwhile",
                  "the rest the store writer and the status page's queries", where)
    await live.stop()
    out.update(await stop_engine("shipped", engine, tmp))
    await sink.stop()
    return out


def child_figures(script: str, label: str, quick: bool) -> dict[str, Any] | None:
    """A benchmark script (bench_codec.py: parse, route, validate vs hl7 and hl7apy;
    bench_x12.py: X12 vs pyx12 and linuxforhealth-x12; bench_ncpdp.py: SCRIPT NewRx
    parsed, validated and mapped vs plain XML parsing; bench_fhir.py: FHIR ingest
    against msgspec decoding) in a child process, never while an engine phase runs, so
    they never share the machine; its lines are printed, its last line's JSON kept."""
    run = subprocess.run([sys.executable, str(SCRIPTS / script),
                          *(["--quick"] if quick else [])], capture_output=True, text=True)
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        print(f"{label}: {script} failed: {(run.stderr or run.stdout).strip()[-300:]}")
        return None
    print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000, help="measured messages")
    p.add_argument("--warmup", type=int, default=1_000, help="messages before measuring")
    p.add_argument("--connections", type=int, default=8, help="concurrent MLLP senders")
    p.add_argument("--ceiling-messages", type=int, default=100_000)
    p.add_argument("--backlog", type=int, default=100_000,
                   help="messages queued while the sink is down; 0 skips the phase")
    p.add_argument("--no-drain", dest="drain", action="store_false",
                   help="do not measure the backlog's drain")
    p.add_argument("--drain-timeout", type=float, default=600.0, help="seconds")
    p.add_argument("--dest-type", choices=["http", "fhir"], default="http")
    p.add_argument("--order", choices=["destination", "patient"], default="destination",
                   help="the sink's delivery order (each bench message is its own patient)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="the sink's messages in flight at once")
    p.add_argument("--sink-delay", type=float, default=0.0, metavar="SECONDS",
                   help="the sink answers each request this late (a slow receiver)")
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="py-spy the engine for up to SECONDS of the measured phase")
    p.add_argument("--profile-gil", action="store_true",
                   help="sample only the thread holding the GIL (Python CPU time)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run (the shipped phase too)")
    p.add_argument("--no-shipped", dest="shipped", action="store_false",
                   help="skip the engine on the shipped channels/ and conf/conduit.yaml")
    p.add_argument("--no-codec", dest="codec", action="store_false",
                   help="skip the codec benchmark (scripts/bench --codec-only runs it alone)")
    p.add_argument("--no-x12", dest="x12", action="store_false",
                   help="skip the X12 benchmark (scripts/bench --x12 runs it alone)")
    p.add_argument("--no-ncpdp", dest="ncpdp", action="store_false",
                   help="skip the NCPDP SCRIPT benchmark (scripts/bench --ncpdp runs it alone)")
    p.add_argument("--no-fhir", dest="fhir", action="store_false",
                   help="skip the FHIR ingest benchmark (scripts/bench --fhir runs it alone)")
    args = p.parse_args(argv)
    if args.quick:
        args.messages, args.warmup = min(args.messages, 2_000), min(args.warmup, 200)
        args.backlog, args.ceiling_messages = min(args.backlog, 5_000), 20_000
    return args


def run_bench(bench_fn: Callable[[argparse.Namespace, Procs, Path],
                                  Awaitable[dict[str, Any]]],
              args: argparse.Namespace, prefix: str) -> dict[str, Any] | None:
    """Run one benchmark in a temporary folder, its children killed whatever happens;
    None (said on stderr, the folder kept) when it could not go on."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Procs()
    result = None
    try:
        result = run_loop(bench_fn(args, procs, tmp))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
    finally:
        procs.kill_all()
        if result is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif result is None:
            print(f"bench: kept {tmp} for a look", file=sys.stderr)
    return result


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    codec = child_figures("bench_codec.py", "codec", args.quick) if args.codec else None
    x12 = child_figures("bench_x12.py", "x12", args.quick) if args.x12 else None
    ncpdp = child_figures("bench_ncpdp.py", "ncpdp", args.quick) if args.ncpdp else None
    result = run_bench(bench, args, "conduit-bench-")
    if result is None:
        return 1
    if args.shipped:
        shipped = run_bench(shipped_bench, args, "conduit-bench-shipped-")
        if shipped is not None:
            shipped["ratio_to_stripped"] = shipped["msgs_per_s"] / result["engine_msgs_per_s"]
            shipped["ratio_to_ceiling"] = shipped["msgs_per_s"] / result["ceiling_msgs_per_s"]
            print(f"shipped vs stripped: {shipped['msgs_per_s']:,.0f} vs "
                  f"{result['engine_msgs_per_s']:,.0f} msg/s end to end (ratio "
                  f"{shipped['ratio_to_stripped']:.2f}; {shipped['ratio_to_ceiling']:.4f} of "
                  f"the ceiling), ACK p99 {shipped['ack_p99_ms']:.1f} vs "
                  f"{result['ack_p99_ms']:.1f} ms, {shipped['cpu_ms_per_msg']:.2f} vs "
                  f"{result['engine_cpu_ms_per_msg']:.2f} ms CPU per message")
        result["shipped"] = json_ready(shipped) if shipped is not None else None
    result["codec"] = codec
    result["x12"] = x12
    result["ncpdp"] = ncpdp
    result["fhir"] = child_figures("bench_fhir.py", "fhir", args.quick) if args.fhir else None
    print(json.dumps(json_ready(result)))
    shipped_clean = not args.shipped or clean(result["shipped"], "exit_code")
    return 0 if clean(result, "engine_exit_code") and shipped_clean else 1


def json_ready(figures: dict[str, Any]) -> dict[str, Any]:
    """Floats to 3 decimals, NaN (not JSON) to null."""
    return {k: (None if v != v else round(v, 3)) if isinstance(v, float) else v
            for k, v in figures.items()}


def clean(figures: dict[str, Any] | None, exit_key: str) -> bool:
    """The engine exited 0, every message got AA and arrived."""
    return figures is not None and figures.get(exit_key) == 0 and not figures["not_aa"] \
        and not figures["missing"]


def run_loop(coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Under uvloop when it is installed: the generator's own cost shrinks the ceiling."""
    async def wrapped() -> dict[str, Any]:
        return await coro
    try:
        import uvloop
    except ImportError:
        return asyncio.run(wrapped())
    return uvloop.run(wrapped())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
