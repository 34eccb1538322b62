"""How long message searches take over a million stored messages, and proof they use indexes.

A benchmark, never a test: it measures and prints. It fills a store made by the engine's
own `open_database` (so the tables and indexes are exactly the engine's) with realistic
message rows spread over the last 30 days: ~10 channels of unequal volume, mostly accepted
with some error / rejected / filtered, the message types each channel carries, per-channel
control ids, and keyed patient pseudonyms of ~200k distinct patients. Content is a small
random blob: searches never read it, and what matters here is the indexed columns.

Each search kind then runs through `engine.store.search.find_messages`, the code the API
calls, with fresh parameters on every run; the median and p95 are reported with the
database's query plan for the statement find_messages really sent (captured as it runs),
which must name an index: SQLite's plan may not contain a bare "SCAN messages", nor
PostgreSQL's a "Seq Scan on messages".

Usage: scripts/bench-search [--messages N] [--runs N] [--postgres] [--keep DIR]
Human-readable lines first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from engine.message import message_id_floor, new_message_id
from engine.store.database import open_database
from engine.store.search import MessageQuery, find_messages

DAY = 86400.0
COLUMNS = ["id", "channel", "received_at", "status", "standard", "message_type",
           "control_id", "sender", "peer", "patient", "size", "content_hash", "key_id",
           "content", "error"]

# channel -> (share of the traffic, message types it carries with their weights)
CHANNELS: dict[str, tuple[float, list[tuple[str, float]]]] = {
    "adt-epic": (0.26, [("ADT^A08", 0.45), ("ADT^A01", 0.15), ("ADT^A03", 0.15),
                        ("ADT^A04", 0.15), ("ADT^A02", 0.07), ("ADT^A11", 0.03)]),
    "adt-cerner": (0.12, [("ADT^A08", 0.5), ("ADT^A04", 0.3), ("ADT^A31", 0.2)]),
    "lab-results": (0.22, [("ORU^R01", 1.0)]),
    "lab-orders": (0.09, [("ORM^O01", 0.8), ("OML^O21", 0.2)]),
    "radiology": (0.06, [("ORU^R01", 0.6), ("ORM^O01", 0.4)]),
    "pharmacy": (0.08, [("RDE^O11", 0.7), ("RDS^O13", 0.3)]),
    "scheduling": (0.07, [("SIU^S12", 0.5), ("SIU^S14", 0.3), ("SIU^S15", 0.2)]),
    "billing": (0.05, [("DFT^P03", 1.0)]),
    "immunization": (0.03, [("VXU^V04", 1.0)]),
    "documents": (0.02, [("MDM^T02", 1.0)]),
}
STATUSES = [("accepted", 0.93), ("error", 0.03), ("rejected", 0.02), ("filtered", 0.02)]
PATIENTS = 200_000
PSEUDONYM_KEY = b"bench-search pseudonym key, not a real one"


def message_id_at(at: float, rnd: random.Random) -> str:
    """An id in new_message_id's format (48 bits of ms, 80 random bits, base32hex) for a
    past time: the store's ids begin with their time, which is what makes time ranges id
    ranges."""
    raw = int(at * 1000).to_bytes(6, "big") + rnd.getrandbits(80).to_bytes(10, "big")
    return base64.b32hexencode(raw)[:26].decode()


def pseudonym(identifier: str) -> str:
    """The shape of Vault.pseudonym: 32 hex characters of an HMAC-SHA-256."""
    return hmac.new(PSEUDONYM_KEY, identifier.encode(), hashlib.sha256).hexdigest()[:32]


class Data:
    """The generated rows' parameters, kept to choose search values that exist."""

    def __init__(self, count: int, now: float, seed: int = 7) -> None:
        self.count, self.now, self.start = count, now, now - 30 * DAY
        self.rnd = random.Random(seed)
        self.pseudonyms = [pseudonym(f"MRN{n:08d}") for n in range(PATIENTS)]
        self.control_ids: list[str] = []  # a sample, for control id searches
        self.used_patients: list[str] = []  # a sample of patients that have messages

    def times(self) -> list[float]:
        """Arrival times over 30 days, busier by day than by night, oldest first."""
        out = []
        rnd = self.rnd
        while len(out) < self.count:
            t = rnd.uniform(self.start, self.now)
            hour = (t % DAY) / 3600
            if rnd.random() < (1.0 if 7 <= hour < 19 else 0.35):
                out.append(t)
        out.sort()
        return out

    def rows(self, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        rnd = self.rnd
        names = list(CHANNELS)
        shares = [CHANNELS[c][0] for c in names]
        types = {c: ([t for t, _ in CHANNELS[c][1]], [w for _, w in CHANNELS[c][1]])
                 for c in names}
        statuses, status_w = [s for s, _ in STATUSES], [w for _, w in STATUSES]
        sequence = dict.fromkeys(names, 100_000)
        times = self.times()
        chosen = rnd.choices(names, shares, k=self.count)
        picked_status = rnd.choices(statuses, status_w, k=self.count)
        out: list[tuple[Any, ...]] = []
        for i, at in enumerate(times):
            channel = chosen[i]
            status = picked_status[i]
            sequence[channel] += 1
            control = f"{channel[:3].upper()}{sequence[channel]:010d}"
            mtype = rnd.choices(*types[channel])[0]
            patient = None if status == "rejected" else self.pseudonyms[
                rnd.randrange(PATIENTS)]
            error = {"error": "mapping hl7v2-adt-to-fhir@1 failed: PID-7: holds a date/time "
                              "that does not exist",
                     "rejected": "MSH-2 encoding characters must be distinct punctuation",
                     "filtered": "filtered: MSH-9.1 equals 'ADT'"}.get(status)
            if i % 997 == 0:
                self.control_ids.append(control)
                if patient:
                    self.used_patients.append(patient)
            out.append((
                message_id_at(at, rnd), channel, at, status, "hl7v2",
                mtype if status != "rejected" else "", control, "EPIC^NORTHWING",
                f"10.20.{rnd.randrange(4)}.{rnd.randrange(2, 60)}:{rnd.randrange(30000, 60000)}",
                patient, rnd.randrange(600, 6000), rnd.getrandbits(256).to_bytes(32, "big").hex(),
                "20240301T101500.000000-k1", rnd.randbytes(48), error))
            if len(out) == batch:
                yield out
                out = []
        if out:
            yield out


# -- loading -------------------------------------------------------------------------------

def load_sqlite(db: sa.Engine, data: Data, batch: int) -> float:
    started = time.perf_counter()
    raw = db.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")  # the generation only; the engine uses FULL
        sql = f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES " \
              f"({', '.join('?' * len(COLUMNS))})"
        done = 0
        for rows in data.rows(batch):
            cur.execute("BEGIN")
            cur.executemany(sql, rows)
            cur.execute("COMMIT")
            done += len(rows)
            progress(done, data.count, started, batch)
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()
    finally:
        raw.close()
    return time.perf_counter() - started


def load_postgres(db: sa.Engine, data: Data, batch: int) -> float:
    started = time.perf_counter()
    raw = db.raw_connection()
    try:
        cur = raw.cursor()
        done = 0
        for rows in data.rows(batch):
            with cur.copy(f"COPY messages ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
            done += len(rows)
            progress(done, data.count, started, batch)
        cur.execute("ANALYZE messages")  # what autovacuum does after a bulk load
        raw.commit()
        cur.close()
    finally:
        raw.close()
    return time.perf_counter() - started


def progress(done: int, total: int, started: float, batch: int) -> None:
    step = max(total // 10, batch)
    if done == total or done % step < batch:
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"  {done:>9,} / {total:,} rows  ({rate:,.0f} rows/s)", file=sys.stderr)


# -- searching -------------------------------------------------------------------------------

def kinds(data: Data) -> dict[str, Callable[[random.Random], MessageQuery]]:
    names = list(CHANNELS)
    hour = 3600.0

    def some_time(rnd: random.Random, width: float) -> tuple[float, float]:
        since = rnd.uniform(data.start, data.now - width)
        return since, since + width

    def channel_time(rnd: random.Random) -> MessageQuery:
        since, until = some_time(rnd, 6 * hour)
        return MessageQuery(channel=rnd.choice(names), since=since, until=until)

    def time_range(rnd: random.Random) -> MessageQuery:
        since, until = some_time(rnd, hour)
        return MessageQuery(since=since, until=until)

    def deep_page(rnd: random.Random) -> MessageQuery:
        back = rnd.uniform(20, 29) * DAY  # ~ page 2,000+ of a channel, 50 a page
        return MessageQuery(channel=rnd.choice(names),
                            before=message_id_floor(data.now - back))

    return {
        "channel": lambda r: MessageQuery(channel=r.choice(names)),
        "channel+status": lambda r: MessageQuery(channel=r.choice(names),
                                                 status=r.choice(["error", "rejected"])),
        "type": lambda r: MessageQuery(message_type=r.choice(
            ["ADT^A01", "ORU^R01", "SIU^S12", "MDM^T02", "ADT^A11"])),
        "control id": lambda r: MessageQuery(control_id=r.choice(data.control_ids)),
        "patient": lambda r: MessageQuery(patient=r.choice(data.used_patients)),
        "time range (1 h)": time_range,
        "channel+time (6 h)": channel_time,
        "deep page (before)": deep_page,
        "status (rare, all)": lambda r: MessageQuery(status=r.choice(["error", "rejected"])),
        # Combinations no single index covers: the planner picks one, then filters.
        "channel+type, no match": lambda r: MessageQuery(channel="billing",
                                                         message_type="ORU^R01"),
        "status+type (rare)": lambda r: MessageQuery(status="error", message_type="MDM^T02"),
    }


class Capture:
    """The SQL and parameters find_messages sends, for EXPLAIN."""

    def __init__(self, db: sa.Engine) -> None:
        self.last: tuple[str, Any] | None = None
        event.listen(db, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, parameters, _context, _many) -> None:
        self.last = (statement, parameters)


def plan_of(conn: sa.Connection, statement: str, parameters: Any, postgres: bool) -> str:
    if postgres:
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return " | ".join(_brief_pg(r[0]) for r in rows if _brief_pg(r[0]))
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    return " | ".join(r[-1] for r in rows)


def _brief_pg(line: str) -> str:
    """A PostgreSQL plan line without costs and literals: the node and its columns."""
    line = re.sub(r"\s*\(cost=[^)]*\)", "", line).strip().removeprefix("->").strip()
    if line.startswith(("Limit", "Sort Key", "Recheck Cond")):
        return ""
    if line.startswith(("Index Cond", "Filter")):
        kind, _, cond = line.partition(":")
        columns = dict.fromkeys(re.findall(r"[(]+(\w+)[)]::text", cond))
        return f"{kind}: {', '.join(columns)}"
    return line


def uses_index(plan: str, postgres: bool) -> bool:
    if postgres:
        return "Seq Scan on messages" not in plan and "Index" in plan
    scans = re.findall(r"(?:SCAN|SEARCH) messages(?: USING (?:COVERING )?INDEX \w+| USING "
                       r"INTEGER PRIMARY KEY)?", plan)
    return bool(scans) and all("USING" in s for s in scans)


def residual(query: MessageQuery, plan: str, postgres: bool) -> list[str]:
    """Columns the query filters on that its index does not: rows the database reads from
    the index and then throws away (cheap when they match often, a walk when they don't)."""
    wanted = {f for f in ("channel", "status", "message_type", "control_id", "patient")
              if getattr(query, f) is not None}
    if query.since is not None or query.until is not None or query.before is not None:
        wanted.add("id")
    if postgres:
        covered = {c for part in re.findall(r"Index Cond: ([\w, ]+)", plan)
                   for c in part.strip().split(", ")}
    else:
        covered = {c for part in re.findall(r"USING (?:COVERING )?INDEX \w+ \(([^)]*)\)", plan)
                   for c in re.findall(r"(\w+)[=<>]", part)}
    return sorted(wanted - covered)


def measure(db: sa.Engine, data: Data, runs: int, postgres: bool) -> dict[str, Any]:
    capture = Capture(db)
    results: dict[str, Any] = {}
    for name, make in kinds(data).items():
        rnd = random.Random(name)
        times, found = [], []
        with db.connect() as conn:
            first = None
            for i in range(runs + 1):
                query = make(rnd)
                started = time.perf_counter()
                rows = find_messages(conn, query)
                took = (time.perf_counter() - started) * 1000
                if i == 0:
                    first = took  # the cold run: reported apart
                    assert capture.last is not None
                    plan = plan_of(conn, *capture.last, postgres)
                    filtered = residual(query, plan, postgres)
                    continue
                times.append(took)
                found.append(len(rows))
        times.sort()
        results[name] = {
            "median_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 3),
            "max_ms": round(times[-1], 3),
            "first_ms": round(first or 0.0, 3),
            "rows": round(statistics.mean(found), 1),
            "plan": plan,
            "index": uses_index(plan, postgres),
            "filtered_after_index": filtered,
        }
    event.remove(db, "before_cursor_execute", capture._seen)
    return results


def report(title: str, results: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'search':<24}{'rows':>6}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}"
          f"{'cold ms':>9}  plan")
    for name, r in results.items():
        flag = "" if r["index"] else "  <-- NO INDEX"
        if r["filtered_after_index"]:
            flag += f"  [then filters {', '.join(r['filtered_after_index'])}]"
        print(f"  {name:<24}{r['rows']:>6.0f}{r['median_ms']:>11.2f}{r['p95_ms']:>9.2f}"
              f"{r['max_ms']:>9.2f}{r['first_ms']:>9.2f}  {r['plan']}{flag}")


def check_format() -> None:
    """Our past-time ids have the engine's own id format (so they sort like its ids)."""
    now = time.time()
    ours, engine = message_id_at(now, random.Random(1)), new_message_id()
    assert len(ours) == len(engine) == 26
    assert set(ours) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUV")
    assert message_id_floor(now - 1) <= ours <= message_id_floor(now + 1)


# -- main ----------------------------------------------------------------------------------

def run_sqlite(args: argparse.Namespace, now: float) -> dict[str, Any]:
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-search-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "conduit.db"
    for stale in folder.glob("conduit.db*"):
        stale.unlink()
    db = open_database(f"sqlite:///{path}")
    print(f"sqlite: generating {args.messages:,} messages into {path}", file=sys.stderr)
    data = Data(args.messages, now)
    load_s = load_sqlite(db, data, args.batch)
    size_mb = sum(p.stat().st_size for p in folder.glob("conduit.db*")) / 1e6
    results = measure(db, data, args.runs, postgres=False)
    db.dispose()
    if not args.keep:
        for p in folder.glob("conduit.db*"):
            p.unlink()
        folder.rmdir()
    report(f"SQLite, {args.messages:,} messages ({size_mb:,.0f} MB, loaded in {load_s:.0f} s,"
           f" {args.runs} runs each)", results)
    return {"load_s": round(load_s, 1), "size_mb": round(size_mb), "searches": results}


def run_postgres(args: argparse.Namespace, now: float) -> dict[str, Any]:
    name = f"conduit_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = args.pg_admin.rsplit("/", 1)[0] + f"/{name}"
        db = open_database(url)
        print(f"postgres: generating {args.messages:,} messages into {name}", file=sys.stderr)
        data = Data(args.messages, now)
        load_s = load_postgres(db, data, args.batch)
        with db.connect() as conn:
            size_mb = conn.exec_driver_sql(
                "SELECT pg_database_size(current_database())").scalar() / 1e6
        results = measure(db, data, args.runs, postgres=True)
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    report(f"PostgreSQL, {args.messages:,} messages ({size_mb:,.0f} MB, loaded in "
           f"{load_s:.0f} s, {args.runs} runs each)", results)
    return {"load_s": round(load_s, 1), "size_mb": round(size_mb), "searches": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per search kind")
    parser.add_argument("--batch", type=int, default=50_000, help="rows per insert batch")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    parser.add_argument("--pg-admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/"
                        "postgres", help="a database to create the temporary one from")
    parser.add_argument("--keep", metavar="DIR", help="build the SQLite store in DIR and "
                        "keep it")
    args = parser.parse_args()
    check_format()
    now = time.time()
    out: dict[str, Any] = {"messages": args.messages, "runs": args.runs,
                           "sqlite": run_sqlite(args, now)}
    if args.postgres:
        out["postgresql"] = run_postgres(args, now)
    every = [r for db in ("sqlite", "postgresql") if db in out
             for r in out[db]["searches"].values()]
    out["all_use_indexes"] = all(r["index"] for r in every)
    print()
    print(json.dumps(out, separators=(",", ":")))
    return 0 if out["all_use_indexes"] else 1


if __name__ == "__main__":
    sys.exit(main())
