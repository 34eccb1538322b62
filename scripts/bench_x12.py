"""X12 codec benchmark: our reading of an 837P batch against pyx12 and
linuxforhealth-x12, and memory while a 100 MB batch is taken.

A benchmark, never a test: it measures and prints. On one generated 837P batch (claims
of about 30 segments, 1,000 claims a transaction set, as clearinghouses batch), in one
process on one core, segments/s and claims/s (best of several rounds) for:
  (a) ours: tokenize only (every segment of the batch, delimiters from each ISA)
  (b) ours: the envelope checks and each set parsed with its routing fields
      (`X12Codec.split` + `parse`), what every channel pays
  (c) ours: (b) plus the loop structure and its checks (`validate(..., "lenient")`)
  (c') ours: (b) plus strict validation: the loops and pyx12's element checks where it
      has a map (`validate(..., "strict")`), what a strict channel pays
  (d) pyx12 4: its segment reader (X12Reader)
  (e) pyx12 4: x12n_document, its full validation with the 5010 map, writing a 999
  (f) linuxforhealth-x12: its segment reader (X12SegmentReader)
  (g) linuxforhealth-x12: its models (X12ModelReader, pydantic-validated claims)
      (in a venv of its own, .venv-lfh: it needs pydantic 1)
Then, in a child process each, the peak RSS while a 100 MB batch on disk is split and
every set parsed: ours streaming over an mmap of the file (what the file source does).
Human-readable lines first; the last line is one JSON object.
Usage: python scripts/bench_x12.py [--quick] [--claims N] [--big-mb N]
"""

from __future__ import annotations

import argparse
import io
import json
import mmap
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.formats.x12 import X12Codec
from engine.formats.x12.tokens import iter_segments

CLAIMS_PER_SET = 1000


def claim(n: int) -> list[str]:
    """One subscriber with one claim of two service lines (fictional people)."""
    member = f"W{n:09d}"
    return [
        f"HL*{n + 2}*1*22*0", "SBR*P*18*GRP7788******CI",
        f"NM1*IL*1*TESTPATIENT{n % 97}*ALEX*Q***MI*{member}", "N3*100 MAIN ST",
        "N4*SPRINGFIELD*IL*62701", "DMG*D8*19700101*F",
        "NM1*PR*2*EXAMPLE HEALTH PLAN*****PI*87726", f"CLM*PCN{n:08d}*250***11:B:1*Y*A*Y*Y",
        "DTP*431*D8*20260101", "REF*D9*CLAIMREF", "HI*ABK:J069*ABF:R05*ABF:R509",
        "NM1*82*1*RENDER*RITA****XX*1234567893", "PRV*PE*PXC*207Q00000X",
        "LX*1", "SV1*HC:99213:25*150*UN*1***1:2", "DTP*472*D8*20260102",
        "REF*6R*LINE1", "LX*2", "SV1*HC:87880*100*UN*1***1", "DTP*472*D8*20260102",
        "REF*6R*LINE2",
    ]


def batch(claims: int) -> bytes:
    """An interchange of 837P sets of CLAIMS_PER_SET claims, counts right."""
    out = ["ISA*00*          *00*          *ZZ*CLEARINGHOUSE  *ZZ*EXAMPLEPAYER   *260101*"
           "1200*^*00501*000000001*0*P*:",
           "GS*HC*CLEARINGHOUSE*EXAMPLEPAYER*20260101*1200*1*X*005010X222A1"]
    sets = 0
    for first in range(0, claims, CLAIMS_PER_SET):
        sets += 1
        body = [f"ST*837*{sets:04d}*005010X222A1", "BHT*0019*00*BATCH1*20260101*1200*CH",
                "NM1*41*2*CLEARINGHOUSE*****46*TAX123", "PER*IC*EDI DESK*TE*5555551212",
                "NM1*40*2*EXAMPLE HEALTH PLAN*****46*87726", "HL*1**20*1",
                "PRV*BI*PXC*207Q00000X", "NM1*85*2*NORTHWING CLINIC*****XX*1234567893",
                "N3*1 CLINIC WAY", "N4*SPRINGFIELD*IL*62701", "REF*EI*123456789"]
        for n in range(first, min(first + CLAIMS_PER_SET, claims)):
            body += claim(n)
        body.append(f"SE*{len(body) + 1}*{sets:04d}")
        out += body
    out += [f"GE*{sets}*1", "IEA*1*000000001"]
    return ("~\n".join(out) + "~\n").encode()


def best(func: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def ours_tokenize(raw: bytes) -> int:
    return sum(1 for _ in iter_segments(raw))


def ours_parse(raw: bytes, validate: str = "") -> int:
    codec = X12Codec()
    envelope = codec.split(raw)
    messages = envelope.messages if envelope is not None else [raw]
    claims = 0
    for message in messages:
        parsed = codec.parse(message)
        if validate:
            codec.validate(parsed, validate)
        claims += sum(1 for s in parsed.body.segments if s.id == "CLM")
    return claims


def pyx12_reader(path: str) -> int:
    import pyx12.x12file

    return sum(1 for _ in pyx12.x12file.X12Reader(path))


def pyx12_validate(path: str) -> bool:
    import logging

    import pyx12.params
    import pyx12.x12n_document

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    params = pyx12.params.params()
    return pyx12.x12n_document.x12n_document(params, path, io.StringIO(), None)


# linuxforhealth-x12 (0.57, its latest) is written for pydantic 1 and fails to import
# beside fhir.resources' pydantic 2, so it runs in a venv of its own, made on first use.
LFH_VENV = Path(__file__).resolve().parent.parent / ".venv-lfh"
LFH_RUN = """
import sys, time
from linuxforhealth.x12.io import X12ModelReader, X12SegmentReader
text = open(sys.argv[1]).read()
best = {}
for kind in ("segments", "models"):
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        with (X12SegmentReader if kind == "segments" else X12ModelReader)(text) as r:
            sum(1 for _ in (r.segments() if kind == "segments" else r.models()))
        times.append(time.perf_counter() - start)
    best[kind] = min(times)
print(best["segments"], best["models"])
"""


def lfh_times(path: str, rounds: int) -> tuple[float, float]:
    """Best seconds for linuxforhealth-x12's segment reader and its claim models."""
    python = LFH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LFH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "linuxforhealth-x12==0.57.0",
                        "pydantic<2"], check=True)
    run = subprocess.run([str(python), "-c", LFH_RUN, path, str(rounds)],
                         capture_output=True, text=True, check=True)
    segments, models = run.stdout.split()
    return float(segments), float(models)


def rate(label: str, seconds: float, segments: int, claims: int) -> dict[str, float]:
    seg_rate, claim_rate = segments / seconds, claims / seconds
    print(f"  {label:<46} {seg_rate:>11,.0f} segments/s {claim_rate:>9,.0f} claims/s")
    return {"segments_per_s": round(seg_rate), "claims_per_s": round(claim_rate)}


def speed(claims: int, rounds: int) -> dict[str, Any]:
    raw = batch(claims)
    segments = ours_tokenize(raw)
    print(f"X12 837P batch: {claims:,} claims, {segments:,} segments, "
          f"{len(raw) / 1e6:.1f} MB")
    out: dict[str, Any] = {"claims": claims, "segments": segments}
    out["ours_tokenize"] = rate("(a) ours: tokenize", best(lambda: ours_tokenize(raw), rounds),
                                segments, claims)
    out["ours_parse"] = rate("(b) ours: envelope + parse each set",
                             best(lambda: ours_parse(raw), rounds), segments, claims)
    out["ours_validate"] = rate("(c) ours: (b) + loops and their checks",
                                best(lambda: ours_parse(raw, "lenient"), rounds), segments,
                                claims)
    out["ours_strict"] = rate("(c') ours: (b) + loops + pyx12 element checks",
                              best(lambda: ours_parse(raw, "strict"), max(1, rounds // 2)),
                              segments, claims)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "batch.x12")
        Path(path).write_bytes(raw)
        others: list[tuple[str, str, Callable[[], Any]]] = [
            ("pyx12_reader", "(d) pyx12: X12Reader segments", lambda: pyx12_reader(path)),
            ("pyx12_validate", "(e) pyx12: x12n_document (5010 map, 999)",
             lambda: pyx12_validate(path)),
        ]
        for key, label, func in others:
            try:
                out[key] = rate(label, best(func, max(1, rounds // 2)), segments, claims)
            except Exception as exc:  # a library that cannot read it is a finding
                print(f"  {label:<46} failed: {type(exc).__name__}: {str(exc)[:120]}")
                out[key] = {"error": f"{type(exc).__name__}"}
        try:
            seg_time, model_time = lfh_times(path, max(1, rounds // 2))
            out["lfh_segments"] = rate("(f) linuxforhealth-x12: segment reader", seg_time,
                                       segments, claims)
            out["lfh_models"] = rate("(g) linuxforhealth-x12: claim models", model_time,
                                     segments, claims)
        except (subprocess.CalledProcessError, OSError, ValueError) as exc:
            print(f"  linuxforhealth-x12: not measured ({type(exc).__name__})")
            out["lfh_models"] = {"error": type(exc).__name__}
    for ours in ("ours_validate", "ours_strict"):
        for key in ("pyx12_validate", "lfh_models"):
            if "claims_per_s" in out.get(key, {}):
                out[f"ratio_{ours}_to_{key}"] = round(
                    out[ours]["claims_per_s"] / out[key]["claims_per_s"], 2)
    return out


def child_memory(path: str) -> None:
    """In a child process: split and parse a batch file as the file source gives it to
    a channel (an mmap), printing the peak RSS and the claims read."""
    codec = X12Codec()
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as mapped:
        envelope = codec.split(mapped)
        claims = 0
        anon = status_mib("RssAnon")
        for message in envelope.messages if envelope is not None else []:
            claims += sum(1 for s in codec.parse(message).body.segments if s.id == "CLM")
            anon = max(anon, status_mib("RssAnon"))
    print(json.dumps({"peak_rss_mib": round(status_mib("VmHWM"), 1),
                      "peak_anon_mib": round(anon, 1), "claims": claims}))


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status: VmHWM its own RSS
    high-water mark (ru_maxrss survives exec on Linux, so a child of a big parent would
    report the parent's), RssAnon what it holds beside files it maps."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(megabytes: int) -> dict[str, Any]:
    per_claim = len(batch(CLAIMS_PER_SET)) / CLAIMS_PER_SET
    claims = int(megabytes * 1e6 / per_claim)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.x12")
        Path(path).write_bytes(batch(claims))
        size = os.path.getsize(path)
        baseline = subprocess.run(
            [sys.executable, "-c", "import engine.formats.x12, bench_x12; "
             "print(bench_x12.status_mib('VmHWM'))"], cwd=Path(__file__).parent,
            capture_output=True, text=True, check=True)
        run = subprocess.run([sys.executable, __file__, "--child-memory", path],
                             capture_output=True, text=True, check=True)
    found = json.loads(run.stdout.strip().splitlines()[-1])
    base = float(baseline.stdout.strip())
    print(f"memory: a {size / 1e6:.0f} MB 837P batch ({found['claims']:,} claims) taken "
          f"set by set from an mmap: peak RSS {found['peak_rss_mib']:.0f} MiB, of which "
          f"the process's own (anonymous) memory at most {found['peak_anon_mib']:.0f} MiB, "
          f"the rest the file's pages (the interpreter with the codec: {base:.0f} MiB)")
    return {"batch_mb": round(size / 1e6), "claims": found["claims"],
            "peak_rss_mib": found["peak_rss_mib"], "peak_anon_mib": found["peak_anon_mib"],
            "baseline_rss_mib": round(base, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer claims, one round, 20 MB")
    p.add_argument("--claims", type=int, default=None)
    p.add_argument("--big-mb", type=int, default=None)
    p.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_memory:
        child_memory(args.child_memory)
        return
    claims = args.claims or (2_000 if args.quick else 10_000)
    result = {"speed": speed(claims, 1 if args.quick else 3),
              "memory": memory(args.big_mb or (20 if args.quick else 100))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
