"""The auditor's reports on the command line: the accounting of disclosures for one
patient, the signed export of the chain, the key to check it with, and the check itself
(which needs neither the store nor the configuration)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.cli.common import actor, with_services
from engine.errors import ConduitError, path_error


def add_commands(audit: Any) -> None:
    """Add `disclosures`, `export`, `public-key` and `check-export` under `conduit
    audit` (check-export reads no configuration: engine.cli's _NO_CONF)."""
    dis = audit.add_parser("disclosures", help="every hop and read of one patient's data "
                           "over a period (accounting of disclosures)")
    dis.add_argument("--patient", required=True, metavar="IDENTIFIER",
                     help="the patient's identifier (MRN; an assigning authority, "
                          "MRN^^^HOSP^MR or system|value, is ignored)")
    dis.add_argument("--from", dest="since", metavar="DATE",
                     help="start: 2026-03-01, an ISO time (UTC unless it says) or Unix "
                          "seconds; default the start of the trail")
    dis.add_argument("--to", dest="until", metavar="DATE",
                     help="end, inclusive for a date; default now")
    dis.add_argument("--format", choices=("csv", "json"), default="csv")
    dis.set_defaults(func=cmd_audit_disclosures)
    exp = audit.add_parser("export", help="a signed export of the chain for a period")
    exp.add_argument("--from", dest="since", metavar="DATE")
    exp.add_argument("--to", dest="until", metavar="DATE")
    exp.add_argument("--out", required=True, metavar="FILE")
    exp.set_defaults(func=cmd_audit_export)
    audit.add_parser("public-key", help="the PEM public key that checks exports"
                     ).set_defaults(func=cmd_audit_public_key)
    chk = audit.add_parser("check-export", help="check an export's signature and links "
                           "(no store or engine keys needed)")
    chk.add_argument("file", metavar="FILE")
    chk.add_argument("--public-key", required=True, metavar="PEM_FILE")
    chk.set_defaults(func=cmd_audit_check_export)


def cmd_audit_disclosures(args: argparse.Namespace) -> int:
    from engine.store import disclosures

    async def body(svc: Any) -> int:
        try:
            lo, hi = disclosures.period(args.since, args.until, time.time_ns() // 1000)
            pseudonym, rows = await disclosures.report(svc, args.patient, lo, hi, actor(),
                                                       args.format)
        except disclosures.BadPeriod as exc:
            print(f"conduit: {exc}", file=sys.stderr)
            return 2
        sys.stdout.write(disclosures.to_csv(rows) if args.format == "csv"
                         else disclosures.to_json(rows, pseudonym, lo, hi))
        return 0

    return with_services(args, body)


def _signing_key(config: Any) -> Any:
    from engine.security.signing import signing_key

    return signing_key(config.keys.directory or str(Path(config.data_dir) / "keys"),
                       getattr(config.keys, "provider", None))


def cmd_audit_export(args: argparse.Namespace) -> int:
    from engine import __version__, audit_export
    from engine.store import disclosures
    from engine.store.database import reader

    async def body(svc: Any) -> int:
        try:
            lo, hi = disclosures.period(args.since, args.until, time.time_ns() // 1000)
        except disclosures.BadPeriod as exc:
            print(f"conduit: {exc}", file=sys.stderr)
            return 2
        signer = _signing_key(svc.config)
        meta = {"engine_version": __version__, "exported_by": actor(),
                "exported_at": disclosures.iso(time.time_ns() // 1000),
                "from": disclosures.iso(lo), "to": disclosures.iso(hi)}

        def read() -> dict[str, Any]:
            db = reader(svc.db)
            if db.dialect.name == "postgresql":  # one snapshot for verify, head and rows
                db = db.execution_options(isolation_level="REPEATABLE READ")
            with db.connect() as conn:
                return audit_export.build(conn, svc.keys.audit, signer, lo, hi, meta)

        try:
            doc = await asyncio.to_thread(read)
        except audit_export.ExportRefused as exc:
            print(f"conduit: {exc}", file=sys.stderr)
            return 1
        payload = doc["payload"]
        await _write_and_record(svc, out, doc, meta)
        rows = payload["rows"]
        span = f"events #{rows[0]['seq']}..#{rows[-1]['seq']}" if rows else "no events"
        print(f"exported {len(rows)} {span} to {args.out}; chain verified through "
              f"#{payload['chain_head']['seq']}; signed by key {doc['signature']['key']}")
        return 0

    out = Path(args.out)
    _check_out(out)  # before the store is opened: a refused export records nothing
    return with_services(args, body)


def _check_out(out: Path) -> None:
    """Refuse an --out the export could never be written to, in one line, before the
    chain is read: found only at the write, it cost a traceback and an export event
    for a file that was never made."""
    folder = out.parent
    if out.is_dir():
        raise ConduitError(f"{out} is a folder: give --out the name of a file to write")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConduitError(f"cannot write the export: the folder {folder} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConduitError(f"cannot write the export: no permission to write in {folder}")


async def _write_and_record(svc: Any, out: Path, doc: dict[str, Any],
                            meta: dict[str, Any]) -> None:
    """Write the export into place, then record it: the trail says an export was made
    only once the file is there. A write that fails is recorded as `failed` (someone
    tried to take the chain away, which an auditor wants to see) and said in one line;
    an export whose record cannot be made is removed, so none exists unaudited."""
    rows = doc["payload"]["rows"]
    try:
        _write_atomically(out, json.dumps(doc, indent=1).encode() + b"\n")
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        await _record_export(svc, meta, rows, {"outcome": "failed", "reason": reason})
        raise ConduitError(f"cannot write the export to {out}: {reason}; nothing "
                           "exported (recorded as a failed export)") from None
    try:
        await _record_export(svc, meta, rows, {"outcome": "exported"})
    except BaseException:
        out.unlink(missing_ok=True)
        raise


async def _record_export(svc: Any, meta: dict[str, Any], rows: list[dict[str, Any]],
                         outcome: dict[str, str]) -> None:
    """The audit-export event: the period, the events it covers and how it ended."""
    from engine import audit_export
    from engine.events import Event, Kind
    from engine.store.writer import UnitOfWork

    uow = UnitOfWork()
    uow.record(Event(kind=Kind.ADMIN, actor=actor(), detail={
        "action": audit_export.EXPORT_ACTION, "from": meta["from"], "to": meta["to"],
        "events": len(rows), "first": rows[0]["seq"] if rows else None,
        "last": rows[-1]["seq"] if rows else None, **outcome}))
    await svc.writer.commit(uow)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name beside `path`, then rename: a reader never sees a
    half-written export, and a failed write leaves nothing behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_audit_public_key(args: argparse.Namespace) -> int:
    from engine.security.signing import public_pem

    async def body(svc: Any) -> int:
        # opened through the store, whose keys folder must hold its keys: the signing
        # key is made only beside them, never in a folder a wrong setting points at
        sys.stdout.write(public_pem(_signing_key(svc.config)))
        return 0

    return with_services(args, body, writes=False)


def _read(path: str, what: str) -> bytes:
    """The bytes of a file the auditor names; a missing or unreadable one, or a folder,
    is said in one line (the auditor's machine has no engine to debug)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise path_error(f"read {what}", exc) from None


def cmd_audit_check_export(args: argparse.Namespace) -> int:
    """Exit 0 when the export is intact and signed by the key given, 1 when not."""
    from engine.audit_export import check

    problems, payload = check(_read(args.file, "the export"),
                              _read(args.public_key, "the public key"))
    if problems:
        print(f"TAMPERED or not ours: {args.file}", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    rows = payload["rows"]
    span = f"events #{rows[0]['seq']}..#{rows[-1]['seq']}" if rows else "no events"
    print(f"ok {len(rows)} {span}, {payload.get('from')} to {payload.get('to')}; links "
          f"intact from the starting hash; signed by the key given; exported by "
          f"{payload.get('exported_by')} at {payload.get('exported_at')} (engine "
          f"{payload.get('engine_version')}), chain head then #{payload['chain_head']['seq']}")
    return 0
