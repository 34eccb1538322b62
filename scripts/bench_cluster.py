"""Throughput of an engine group: `conduit run --workers N`, measured as the single
process is by scripts/bench_engine.py (same generator, sink and bench channel), with the
CPU of every process of the group counted.

A benchmark, never a test: it measures and prints. Two modes:
  --workers N   the embedded default (SQLite) with N workers (or a split such as
                ingest=1,deliver=1), against the same run's bare MLLP ceiling and the
                same run's single process
  --cluster     PostgreSQL (a fresh database) and Redis Streams queues (a fresh key
                prefix), with 1, 2 and 4 processes, and one ingest and one deliver
                process: one table row each
Human-readable lines first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import (  # a sibling script, not a package
    BIN,
    SCRIPTS,
    BenchError,
    Procs,
    Sink,
    ack_figures,
    bad_acks,
    build_messages,
    cpu_seconds,
    drive,
    engine_output,
    free_port,
    json_ready,
    numbered_sender,
    pct,
    rate,
    read_port,
    run_loop,
    until,
    warm_up,
    write_config,
)

from engine.supervisor import parse_workers

PG_ADMIN = os.environ.get("CONDUIT_TEST_PG",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("CONDUIT_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def group_pids(pid: int) -> list[int]:
    """The supervisor and its workers (a single engine has no children)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [pid, *map(int, children)]


def group_cpu(pid: int) -> float:
    total = 0.0
    for p in group_pids(pid):
        with contextlib.suppress(FileNotFoundError):  # a worker that just exited
            total += cpu_seconds(p)
    return total


async def start_group(procs: Procs, tmp: Path, conf: Path, mllp_port: int, workers: str
                      ) -> asyncio.subprocess.Process:
    """`conduit run --workers SPEC`, ready once each worker that takes messages in listens
    on the MLLP port."""
    argv: list[Any] = [BIN / "conduit", "--conf", conf, "run"]
    roles = parse_workers(workers)
    if roles != ("all",):
        argv += ["--workers", workers]
    listening = sum(role != "deliver" for role in roles)
    with open(tmp / "engine.out", "wb") as out, open(tmp / "engine.err", "wb") as err:
        proc = await procs.start(*argv, cwd=tmp, stdout=out, stderr=err)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise BenchError(f"conduit run exited {proc.returncode}:\n{engine_output(tmp)}")
        if await asyncio.to_thread(_listeners, mllp_port) >= listening:
            await asyncio.sleep(1.0 if len(roles) > listening else 0)  # deliver workers
            return proc
        await asyncio.sleep(0.2)
    raise BenchError(f"{workers} workers did not listen on {mllp_port} within 90 s:\n"
                     f"{engine_output(tmp)}")


def _listeners(port: int) -> int:
    """Listening sockets on `port` (one per worker with SO_REUSEPORT)."""
    wanted = f":{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
            count += 1
    return count


async def ceiling(procs: Procs, connections: int, messages: int) -> float:
    sample, _ = build_messages(900_000_000, 1000)
    server = await procs.start(sys.executable, SCRIPTS / "bench_ceiling.py", "--loop",
                               "asyncio", stdout=asyncio.subprocess.PIPE)
    port = await read_port(server, "the ceiling server")
    await drive(port, sample, None, min(2000, messages), connections)
    load = await drive(port, sample, None, messages, connections)
    server.terminate()
    return ack_figures(load)["ack_msgs_per_s"]


async def one_group(args: argparse.Namespace, procs: Procs, tmp: Path, workers: str,
                    store: dict[str, str] | None) -> dict[str, Any]:
    """Start a group on a fresh store, warm it up, measure it, stop it."""
    tmp.mkdir(parents=True)
    sink = await Sink.start(procs)
    mllp_port = free_port()
    conf = write_config(tmp, mllp_port, sink.port, "http",  # as scripts/bench_engine.py
                        senders=args.connections)
    if store is not None:
        with conf.open("a") as f:
            f.write(f"store:\n  url: {store['url']}\n"
                    f"queue:\n  type: redis\n  url: {REDIS}\n  prefix: {store['prefix']}\n")
    engine = await start_group(procs, tmp, conf, mllp_port, workers)
    send = numbered_sender(mllp_port, args.connections)
    await warm_up(send, args.warmup, sink.count, "at the sink")
    cpu0, wall0 = group_cpu(engine.pid), time.monotonic()
    load, first_id = await send(args.messages)
    await until(sink.count, first_id + args.messages, stall_s=60)
    cpu, wall = group_cpu(engine.pid) - cpu0, time.monotonic() - wall0
    first = (await sink.dump(tmp / "sink.json"))["first"]
    arrived = {i: first[first_id + i] for i in range(load.total) if first_id + i in first}
    span = (max(arrived.values()) - min(load.sent)) if arrived else 0.0
    e2e = [t - load.sent[i] for i, t in arrived.items()]
    figs = ack_figures(load)
    engine.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(engine.wait(), 90)
    await sink.stop()
    return {"workers": workers, "msgs_per_s": rate(len(arrived), span),
            "ack_msgs_per_s": figs["ack_msgs_per_s"], "ack_p99_ms": figs["ack_p99_ms"],
            "p50_ms": pct(e2e, 0.5), "p99_ms": pct(e2e, 0.99),
            "cpu_pct": 100 * cpu / wall, "cpu_ms_per_msg": 1000 * cpu / load.total,
            "not_aa": bad_acks(load), "delivered": len(arrived),
            "missing": load.total - len(arrived), "exit_code": exit_code}


def fresh_postgres() -> tuple[str, str]:
    """A new database for one run; (its URL, its name)."""
    import sqlalchemy as sa

    name = f"conduit_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def drop_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(f"{{{prefix}}}*"))
    if keys:
        client.delete(*keys)
    client.close()


def report(label: str, r: dict[str, Any], ceiling_rate: float) -> None:
    print(f"{label}: {r['msgs_per_s']:,.0f} msg/s end to end (ratio to the ceiling "
          f"{r['msgs_per_s'] / ceiling_rate:.3f}), ACK {r['ack_msgs_per_s']:,.0f} msg/s "
          f"p99 {r['ack_p99_ms']:.1f} ms, e2e p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} "
          f"ms; CPU {r['cpu_pct']:.0f}% of a core, {r['cpu_ms_per_msg']:.2f} ms per message "
          f"(all processes); {r['delivered']:,} delivered, {r['missing']} missing, "
          f"{r['not_aa']} not AA, exit {r['exit_code']}")


async def bench(args: argparse.Namespace, procs: Procs, tmp: Path) -> dict[str, Any]:
    top = await ceiling(procs, args.connections, args.ceiling_messages)
    print(f"ceiling (asyncio): {top:,.0f} msg/s bare MLLP ACK ({args.connections} connections)")
    out: dict[str, Any] = {"ceiling_msgs_per_s": top, "messages": args.messages,
                           "connections": args.connections, "runs": []}
    if args.cluster:
        for n in ("1", "2", "4", "ingest=1,deliver=1"):
            url, name = fresh_postgres()
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                r = await one_group(args, procs, tmp / f"cluster-{n.replace(',', '-')}", n,
                                    {"url": url, "prefix": prefix})
            finally:
                drop_postgres(name)
                drop_redis(prefix)
            report(f"PostgreSQL + Redis, --workers {n}", r, top)
            out["runs"].append({"store": "postgresql+redis", **json_ready(r)})
    else:
        for n in ("1", args.workers):
            r = await one_group(args, procs, tmp / f"embedded-{n.replace(',', '-')}", n, None)
            report(f"embedded, --workers {n}", r, top)
            out["runs"].append({"store": "embedded", **json_ready(r)})
    # Senders each wait for their ACK: with few, the rate is theirs over the ACK latency,
    # and more workers cannot raise it (docs/performance.md), so the table names them.
    print("| store | --workers | senders | msg/s end to end | ratio to ceiling | ACK p99 ms | "
          "CPU ms/msg |")
    print("|---|---|---|---|---|---|---|")
    for r in out["runs"]:
        print(f"| {r['store']} | {r['workers']} | {args.connections} | {r['msgs_per_s']:,.0f} | "
              f"{r['msgs_per_s'] / top:.3f} | {r['ack_p99_ms']:.1f} | {r['cpu_ms_per_msg']:.2f} |")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench --workers N | --cluster")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--workers", help="embedded default, 1 and N workers (or a split "
                      "such as ingest=1,deliver=1)")
    mode.add_argument("--cluster", action="store_true",
                      help="PostgreSQL + Redis Streams, 1, 2 and 4 processes")
    p.add_argument("--quick", action="store_true", help="fewer messages")
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--keep", action="store_true", help="keep the engines' folders and logs")
    args = p.parse_args(argv)
    if args.messages is None:
        args.messages = 3000 if args.quick else 10000
    args.ceiling_messages = 5000 if args.quick else 20000
    return args


def main(argv: list[str]) -> int:
    import shutil
    import tempfile

    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="conduit-bench-cluster-"))
    procs = Procs()
    try:
        result = run_loop(bench(args, procs, tmp))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        print(f"bench: kept {tmp} for a look", file=sys.stderr)
        return 1
    finally:
        procs.kill_all()
    if args.keep:
        print(f"bench: kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    clean = all(r["exit_code"] == 0 and not r["missing"] and not r["not_aa"]
                for r in result["runs"])
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
