"""FHIR ingest benchmark: requests per second through `conduit run`'s FHIR source, against
msgspec-only decoding of the same bodies measured in the same run (the ceiling).

A benchmark, never a test: it measures and prints. Four cases, each a number of POSTs
from concurrent keep-alive connections (aiohttp), every body unique:
  patient         POST [base]/Patient, one Patient (~1.6 kB, vendor-style extensions)
  bundle20        POST [base], a transaction Bundle of 20 Patients (split per Patient)
each against a channel with `validation: off` and one with `validation: strict`
(fhir.resources R4B models). Both channels split Bundles per Patient and map to HL7v2
(fhir-to-hl7v2-adt@1), as the shipped example does, and deliver over HTTP to the same
local sink as the MLLP benchmark, so the engine does all its work while it is measured;
a request counts once the engine answered 2xx, which it does only after the durable
commit.
The ceiling is `msgspec.json.decode` of the same bodies in one process on one core: the
least any FHIR endpoint must do per request. Human-readable lines first; the last line is
one JSON object.
Usage: scripts/bench --fhir [--quick] [--requests N]   (or python scripts/bench_fhir.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import (  # a sibling script, not a package
    BIN,
    BenchError,
    Procs,
    Sink,
    cpu_seconds,
    engine_output,
    free_port,
    pct,
    proc_status_mb,
    run_bench,
    write_engine_config,
)

CASES = ("patient", "bundle20")
TOKEN = "bench-not-a-secret"


def patient(n: int) -> dict[str, Any]:
    """A Patient as an EHR would send it: identifiers, names, telecom, address, extension."""
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "extension": [{
            "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
            "valueCode": "F"}],
        "identifier": [
            {"use": "usual", "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:oid:1.2.840.114350.1.13.999.2.7.5.737384.14",
             "value": f"BENCH{n:09d}"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": f"999{n % 1000000:06d}"}],
        "active": True,
        "name": [{"use": "official", "family": "Halvorsen", "given": ["Kristin", "Anne"]},
                 {"use": "nickname", "given": ["Kris"]}],
        "telecom": [{"system": "phone", "value": "608-555-0142", "use": "home"},
                    {"system": "email", "value": f"pt{n}@example.com"}],
        "gender": "female",
        "birthDate": "1975-04-19",
        "address": [{"use": "home", "line": ["1402 Willow Bend Rd", "Apt 3B"],
                     "city": "Madison", "state": "WI", "postalCode": "53711",
                     "country": "USA"}],
        "maritalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47",
                                                    "code": "en"}]}, "preferred": True}],
    }


def bundle(n: int, size: int = 20) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction",
            "timestamp": "2026-12-04T09:30:00Z",
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n * size + i:012d}",
                       "resource": patient(n * size + i),
                       "request": {"method": "POST", "url": "Patient"}}
                      for i in range(size)]}


def bodies(case: str, first: int, count: int) -> list[bytes]:
    make = patient if case == "patient" else bundle
    return [msgspec.json.encode(make(first + i)) for i in range(count)]


# --- the ceiling ------------------------------------------------------------------------

def decode_rate(sample: list[bytes], rounds: int = 5) -> float:
    """Bodies per second that msgspec alone decodes (median of `rounds`)."""
    rates = []
    for _ in range(rounds):
        began = time.perf_counter()
        for body in sample:
            msgspec.json.decode(body)
        rates.append(len(sample) / (time.perf_counter() - began))
    return statistics.median(rates)


# --- the engine -------------------------------------------------------------------------

def write_config(tmp: Path, ports: dict[str, int], sink_port: int) -> Path:
    """conf/conduit.yaml and one channel per validation level, each with its own port."""
    conf = write_engine_config(tmp)
    for validation, port in ports.items():
        (tmp / "channels" / f"fhir-{validation}.yaml").write_text(
            f"description: scripts/bench_fhir, validation {validation}\n"
            "format: fhir\n"
            f"validation: {validation}\n"
            f"source:\n  type: fhir\n  host: 127.0.0.1\n  port: {port}\n"
            "  resources: [Patient, Bundle]\n"
            "  auth: {type: users}\n"
            "split: {resource: Patient}\n"
            "mapping: fhir-to-hl7v2-adt@1\n"
            "retry:\n  max_attempts: 1000000\n  initial_delay: 200ms\n  max_delay: 1s\n"
            "destinations:\n  - name: sink\n    type: http\n"
            f"    url: http://127.0.0.1:{sink_port}/hl7\n")
    return conf


async def start_engine(procs: Procs, tmp: Path, conf: Path, ports: list[int]
                       ) -> asyncio.subprocess.Process:
    """`conduit run`, ready once every FHIR port answers its CapabilityStatement."""
    with open(tmp / "engine.out", "wb") as out, open(tmp / "engine.err", "wb") as err:
        proc = await procs.start(BIN / "conduit", "--conf", conf, "run", cwd=tmp, stdout=out,
                                 stderr=err)
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        pending = list(ports)
        while pending and time.monotonic() < deadline:
            if proc.returncode is not None:
                raise BenchError(f"conduit run exited {proc.returncode}:\n"
                                 f"{engine_output(tmp)}")
            try:
                async with session.get(f"http://127.0.0.1:{pending[0]}/fhir/metadata") as r:
                    if r.status == 200:
                        pending.pop(0)
                        continue
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    if pending:
        raise BenchError(f"conduit run did not serve FHIR on {pending} within 60 s")
    return proc


async def add_user(tmp: Path, conf: Path) -> str:
    """An `integration` user and its bearer token, made with the CLI as an admin would."""
    async def cli(*argv: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "conduit"), "--conf", str(conf), *argv, cwd=tmp,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise BenchError(f"conduit {' '.join(argv)}: {err.decode().strip()}")
        return out.decode()
    await cli("users", "add", "bench-sender", "--role", "integration")
    return (await cli("users", "token", "bench-sender")).strip().splitlines()[-1]


async def drive(url: str, payloads: list[bytes], connections: int, token: str
                ) -> tuple[float, list[float], Counter[int]]:
    """POST every payload over `connections` keep-alive connections; requests per second
    (first send to last answer), latencies in seconds and the statuses seen."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    todo = iter(payloads)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
               "Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def worker() -> None:
            for body in todo:
                began = time.perf_counter()
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    codes[resp.status] += 1
                latencies.append(time.perf_counter() - began)
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        span = time.perf_counter() - began
    return len(payloads) / span, latencies, codes


async def bench(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"connections": args.connections, "requests": args.requests}
    counts = {"patient": args.requests, "bundle20": max(args.requests // 10, 20)}

    # 1. The ceiling: msgspec decoding of the very bodies the engine will get.
    for case in CASES:
        sample = bodies(case, 800_000_000, min(counts[case], 2_000))
        out[f"ceiling_{case}_per_s"] = decode_rate(sample)
        print(f"ceiling ({case}): {out[f'ceiling_{case}_per_s']:,.0f} bodies/s decoded by "
              f"msgspec alone ({len(sample[0]):,} bytes each)")

    # 2. The engine.
    ports = {"off": free_port(), "strict": free_port()}
    sink = await Sink.start(procs)
    conf = write_config(tmp, ports, sink.port)
    token = await add_user(tmp, conf)
    engine = await start_engine(procs, tmp, conf, list(ports.values()))
    print(f"engine: pid {engine.pid}, FHIR ports {ports}, data in {tmp}")
    first = 0
    for validation, port in ports.items():
        for case in CASES:
            url = f"http://127.0.0.1:{port}/fhir" + ("/Patient" if case == "patient" else "")
            warm = bodies(case, first, max(counts[case] // 10, 5))
            first += len(warm) * (20 if case == "bundle20" else 1)
            await drive(url, warm, args.connections, token)
            payloads = bodies(case, first, counts[case])
            first += len(payloads) * (20 if case == "bundle20" else 1)
            cpu0 = cpu_seconds(engine.pid)
            per_s, latencies, codes = await drive(url, payloads, args.connections, token)
            cpu_ms = 1000 * (cpu_seconds(engine.pid) - cpu0) / len(payloads)
            key = f"{case}_{validation}"
            ceiling = out[f"ceiling_{case}_per_s"]
            out.update({f"{key}_per_s": per_s, f"{key}_p50_ms": pct(latencies, 0.5),
                        f"{key}_p99_ms": pct(latencies, 0.99),
                        f"{key}_not_2xx": sum(n for c, n in codes.items() if c >= 300),
                        f"{key}_cpu_ms_per_request": cpu_ms,
                        f"{key}_ratio": per_s / ceiling})
            resources = per_s * (20 if case == "bundle20" else 1)
            print(f"{case}, validation {validation}: {per_s:,.0f} requests/s "
                  f"({resources:,.0f} Patients/s), p50 {pct(latencies, 0.5):.1f} ms, "
                  f"p99 {pct(latencies, 0.99):.1f} ms, {cpu_ms:.2f} ms engine CPU per request, "
                  f"statuses {dict(codes)}; "
                  f"ratio to msgspec decoding {per_s / ceiling:.4f}")

    # 3. Stop.
    out["peak_rss_mb"] = proc_status_mb(engine.pid, "VmHWM")
    engine.send_signal(signal.SIGTERM)
    try:
        out["engine_exit_code"] = await asyncio.wait_for(engine.wait(), 60)
    except TimeoutError:
        out["engine_exit_code"] = None
    print(f"engine: peak RSS {out['peak_rss_mb']:.0f} MiB; SIGTERM -> exit "
          f"{out['engine_exit_code']}")
    await sink.stop()
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench --fhir",
                                description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=4_000,
                   help="measured Patient POSTs per channel (Bundles: a tenth as many)")
    p.add_argument("--connections", type=int, default=8, help="concurrent HTTP clients")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 400)
    return args


def main(argv: list[str]) -> int:
    result = run_bench(bench, parse_args(argv), "conduit-bench-fhir-")
    if result is None:
        return 1
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                      for k, v in result.items()}))
    failed = sum(v for k, v in result.items() if k.endswith("_not_2xx"))
    return 0 if result.get("engine_exit_code") == 0 and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
