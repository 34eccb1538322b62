"""A soak: the bench channel under a steady load for minutes, watching what leaks show
as (memory and open file descriptors of every engine process), not speed.

Each second the generator sends `--rate` ADT messages over fresh MLLP connections (the
connection churn of real senders is part of what is soaked), and every `--every`
seconds the engine's RSS and open descriptors are sampled. At the end: every message
acknowledged and delivered, and the figures of the first sample after warm-up against
the last. A leak grows with time; a cache fills once and stays flat.
Usage: scripts/soak [--minutes 5] [--rate 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cluster import group_pids, start_group  # sibling scripts, not a package
from bench_engine import (
    BenchError,
    Procs,
    Sink,
    bad_acks,
    build_messages,
    drive,
    free_port,
    proc_status_mb,
    run_loop,
    until,
    write_config,
)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> tuple[float, int]:
    """RSS (MiB) and open descriptors, summed over the engine's processes."""
    rss, fds = 0.0, 0
    for p in group_pids(pid):
        try:
            rss += proc_status_mb(p, "VmRSS")
            fds += open_fds(p)
        except (FileNotFoundError, BenchError):
            continue  # a worker between exit and restart
    return rss, fds


async def soak(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    sink = await Sink.start(procs)
    mllp_port = free_port()
    conf = write_config(tmp, mllp_port, sink.port, "http",  # as scripts/bench_engine.py
                        senders=args.connections)
    engine = await start_group(procs, tmp, conf, mllp_port, args.workers)
    print(f"soak: {args.minutes} min at {args.rate} msg/s, {args.workers} worker(s), "
          f"engine pid {engine.pid}, data in {tmp}")
    samples: list[dict[str, float]] = []
    sent = not_aa = 0
    began = time.monotonic()
    next_sample = began + args.warmup
    while time.monotonic() - began < args.minutes * 60:
        tick = time.monotonic()
        frames, controls = build_messages(sent, args.rate)
        load = await drive(mllp_port, frames, controls, args.rate, args.connections)
        sent += args.rate
        not_aa += bad_acks(load)
        if time.monotonic() >= next_sample:
            rss, fds = sample(engine.pid)
            samples.append({"t_s": round(time.monotonic() - began), "rss_mb": rss,
                            "fds": fds, "sent": sent})
            print(f"  {samples[-1]['t_s']:>5} s: {sent:,} sent, RSS {rss:.0f} MiB, "
                  f"{fds} open descriptors", flush=True)
            next_sample += args.every
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    delivered = await until(sink.count, sent, stall_s=60)
    engine.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(engine.wait(), 90)
    await sink.stop()
    first, last = samples[0], samples[-1]
    out = {"minutes": args.minutes, "rate": args.rate, "workers": args.workers, "sent": sent,
           "not_aa": not_aa, "delivered": delivered, "exit_code": exit_code,
           "rss_first_mb": round(first["rss_mb"], 1), "rss_last_mb": round(last["rss_mb"], 1),
           "fds_first": first["fds"], "fds_last": last["fds"],
           "rss_peak_mb": round(max(s["rss_mb"] for s in samples), 1),
           "fds_peak": max(s["fds"] for s in samples)}
    print(f"soak: {sent:,} sent, {not_aa} not AA, {delivered:,} delivered, exit {exit_code}; "
          f"RSS {out['rss_first_mb']} -> {out['rss_last_mb']} MiB (peak "
          f"{out['rss_peak_mb']}), descriptors {out['fds_first']} -> {out['fds_last']} "
          f"(peak {out['fds_peak']}), from {first['t_s']} s to {last['t_s']} s")
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="scripts/soak")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=int, default=200, help="messages per second")
    p.add_argument("--workers", default="1", help="N, or ingest=N,deliver=M")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=30.0,
                   help="seconds before the first sample (caches filling are no leak)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="conduit-soak-"))
    procs = Procs()
    try:
        result = run_loop(soak(args, procs, tmp))
    except BenchError as exc:
        print(f"soak: {exc}; kept {tmp}", file=sys.stderr)
        return 1
    finally:
        procs.kill_all()
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    ok = result["exit_code"] == 0 and not result["not_aa"] \
        and result["delivered"] >= result["sent"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
