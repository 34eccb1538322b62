"""`conduit`: the command line. Thin: each command parses its arguments and calls the
runtime, the stores or a connector."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.errors import ConduitError, ConfigErrors

DEFAULT_CONF = "conf/conduit.yaml"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _conf_path(args: argparse.Namespace) -> str:
    return args.conf or os.environ.get("CONDUIT_CONF") or DEFAULT_CONF


def _load_everything(args: argparse.Namespace):
    from engine.config.checks import check
    from engine.config.loader import load_all
    from engine.mapping import MappingCatalog

    engine_cfg, channels = load_all(_conf_path(args), os.environ)
    catalog = MappingCatalog.discover(engine_cfg.mappings_dir)
    problems = check(engine_cfg, channels, catalog)
    if problems:
        raise ConfigErrors(problems)
    return engine_cfg, channels, catalog


def _engine_config(args: argparse.Namespace):
    from engine.config.loader import load_engine_config

    return load_engine_config(_conf_path(args), os.environ)


def cmd_validate(args: argparse.Namespace) -> int:
    _, channels, catalog = _load_everything(args)
    for loaded in channels:
        cfg = loaded.config
        dests = ", ".join(d.name for d in cfg.destinations)
        print(f"ok {loaded.file}: channel {cfg.name} ({cfg.mapping or 'no mapping'}) -> {dests}")
        for dest, variables in loaded.disabled.items():
            print(f"   destination {dest} will be disabled: {', '.join(variables)} not set")
    print(f"configuration is valid: {len(channels)} channel(s), "
          f"{len(catalog.refs())} mapping(s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine import logs
    from engine.runtime import Engine

    engine_cfg, channels, catalog = _load_everything(args)
    logs.setup(engine_cfg.log)
    _use_uvloop()
    asyncio.run(Engine(engine_cfg, channels, catalog).run_until_signal())
    return 0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cmd_send(args: argparse.Namespace) -> int:
    from engine.connectors.mllp import MllpClient
    from engine.formats.hl7v2.ack import read_ack
    from engine.formats.hl7v2.codec import decode_text
    from engine.formats.hl7v2.message import Hl7Message
    from engine.formats.hl7v2.split import split_messages

    host, _, port = args.mllp.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--mllp expects HOST:PORT, got {args.mllp!r}")

    async def send_all() -> int:
        client = MllpClient(host, int(port))
        await client.connect(args.timeout)
        failures = 0
        try:
            for name in args.files:
                raw = Path(name).read_bytes()
                for n, message in enumerate(split_messages(decode_text(raw)), start=1):
                    reply = await client.exchange(message.encode(_encoding(raw)), args.timeout)
                    try:
                        ack = read_ack(Hl7Message.parse(decode_text(reply)))
                    except ConduitError:
                        ack = None
                    code = ack.code if ack else "??"
                    control = ack.control_id if ack else ""
                    print(f"{name}#{n} {control} {code}")
                    failures += code not in ("AA", "CA")
        finally:
            await client.close()
        return 1 if failures else 0

    try:
        return asyncio.run(send_all())
    except (OSError, TimeoutError) as exc:
        print(f"conduit send: {args.mllp}: {exc or 'timed out'}", file=sys.stderr)
        return 2


def _encoding(raw: bytes) -> str:
    """Re-encode in the file's own encoding: a Latin-1 file stays Latin-1 on the wire."""
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "latin-1"


def _with_services(args: argparse.Namespace, body) -> int:
    from engine.runtime import Services

    async def run() -> int:
        svc = Services(_engine_config(args))
        svc.start_writer()
        try:
            return await body(svc)
        finally:
            await svc.close()

    return asyncio.run(run())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from engine.store import audit

    async def body(svc) -> int:
        with svc.db.connect() as conn:
            result = audit.verify(conn, svc.keys.audit)
        if result.broken is None:
            print(f"ok {result.events} events")
            return 0
        b = result.broken
        print(f"BROKEN at event #{b.seq} ({b.kind}): {b.reason}; "
              f"{result.events} events verified before it")
        return 1

    return _with_services(args, body)


def cmd_audit_show(args: argparse.Namespace) -> int:
    from engine.store import audit

    async def body(svc) -> int:
        with svc.db.connect() as conn:
            events = audit.events_of_message(conn, args.message)
        if not events:
            print(f"no audit events for message {args.message}", file=sys.stderr)
            return 1
        for e in events:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at_us"] / 1e6))
            ms = f".{(e['at_us'] // 1000) % 1000:03d}"
            where = e["destination"] or ""
            print(f"#{e['seq']:<6} {when}{ms} {e['kind']:<14} {where:<14} "
                  f"{e['actor']:<10} {e['detail']}")
        return 0

    return _with_services(args, body)


def cmd_queue_list(args: argparse.Namespace) -> int:
    async def body(svc) -> int:
        stats = await asyncio.to_thread(svc.queue.stats)
        print(f"{'DESTINATION':<40} {'DEPTH':>7} {'IN-FLIGHT':>9} {'RETRYING':>8} "
              f"{'DEAD':>6}  OLDEST")
        for s in stats:
            oldest = (f"{time.time() - s.oldest_at:.0f}s ago" if s.oldest_at else "-")
            print(f"{s.destination:<40} {s.ready + s.leased:>7} {s.leased:>9} "
                  f"{s.retrying:>8} {s.dead:>6}  {oldest}")
        if not stats:
            print("(no queued, retrying or dead-lettered messages)")
        return 0

    return _with_services(args, body)


def cmd_queue_retry(args: argparse.Namespace) -> int:
    async def body(svc) -> int:
        target = args.destination
        if "/" not in target:
            names = {s.destination for s in await asyncio.to_thread(svc.queue.stats)
                     if s.destination.endswith("/" + target)}
            if len(names) != 1:
                which = ", ".join(sorted(names)) or "none has dead letters"
                print(f"give the destination as CHANNEL/DESTINATION ({which})",
                      file=sys.stderr)
                return 2
            target = names.pop()
        count = await svc.writer.commit(svc.queue.replay(target, _actor()))
        print(f"requeued {count} dead letter(s) on {target}")
        return 0

    return _with_services(args, body)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from engine.events import Event, Kind
    from engine.security.keys import rotate
    from engine.store.writer import UnitOfWork

    async def body(svc) -> int:
        folder = svc.config.keys.directory or str(svc.data_dir / "keys")
        key_id = rotate(folder)
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, actor=_actor(),
                         detail={"action": "key-rotate", "key_id": key_id}))
        await svc.writer.commit(uow)
        print(f"new content key {key_id}; the engine writes with it after its next start")
        return 0

    return _with_services(args, body)


def cmd_users(args: argparse.Namespace) -> int:
    from engine.events import Event, Kind
    from engine.security.roles import Role
    from engine.security.users import UserStore
    from engine.store.writer import UnitOfWork

    async def body(svc) -> int:
        users = UserStore(svc.db)
        detail: dict[str, str] = {"user": getattr(args, "name", "")}
        if args.what == "list":
            for name, role, has_token in users.list():
                print(f"{name:<24} {role:<9} {'token' if has_token else 'no token'}")
            return 0
        if args.what == "add":
            users.add(args.name, Role(args.role))
            detail.update(action="user-add", role=args.role)
            print(f"added {args.name} as {args.role}; make a token with: "
                  f"conduit users token {args.name}")
        elif args.what == "role":
            users.set_role(args.name, Role(args.role))
            detail.update(action="user-role", role=args.role)
            print(f"{args.name} is now {args.role}")
        elif args.what == "remove":
            users.remove(args.name)
            detail.update(action="user-remove")
            print(f"removed {args.name}")
        else:  # token: printed alone on its line, so scripts can capture it
            print(users.new_token(args.name))
            detail.update(action="user-token")
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, actor=_actor(), detail=detail))
        await svc.writer.commit(uow)
        return 0

    return _with_services(args, body)


def _messages_of(path: str) -> list[bytes]:
    """The messages in a file: HL7v2 files may hold many; other standards one each."""
    from engine.formats.hl7v2.codec import decode_text
    from engine.formats.hl7v2.split import split_messages
    from engine.testbench import detect

    raw = Path(path).read_bytes()
    if detect(raw) != "hl7v2":
        return [raw]
    return [m.encode(_encoding(raw)) for m in split_messages(decode_text(raw))]


def cmd_parse(args: argparse.Namespace) -> int:
    from engine.testbench import inspect

    worst = 0
    for name in args.files:
        for n, raw in enumerate(_messages_of(name), start=1):
            found = inspect(raw, args.validate)
            p = found.parsed
            label = f"{name}#{n}"
            if p is None:
                print(f"{label}: {found.standard}: NOT READABLE")
            else:
                print(f"{label}: {p.standard} {p.version} {p.message_type} control "
                      f"{p.control_id or '-'} from {p.sender or '-'} to {p.receiver or '-'}")
            for problem in found.problems:
                where = problem.segment or ""
                if problem.field is not None:
                    where += f"-{problem.field}"
                print(f"  {problem.severity} {where or 'message'} ({problem.code}): "
                      f"{problem.text}")
                worst = max(worst, 1 if problem.severity in ("E", "F") else 0)
            if not found.problems:
                print("  no problems found" + ("" if args.validate == "off"
                                               else f" ({args.validate} validation)"))
    return worst


def cmd_ack(args: argparse.Namespace) -> int:
    from engine.testbench import acknowledgement

    for n, raw in enumerate(_messages_of(args.file), start=1):
        if n > 1:
            print()
        reply = acknowledgement(raw, args.validate)
        print(reply.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
              .rstrip("\n"))
    return 0


def _catalog(args: argparse.Namespace):
    from engine.mapping import MappingCatalog

    return MappingCatalog.discover(_engine_config(args).mappings_dir)


def _mapping(catalog, ref: str):
    mapping = catalog.get(ref)
    if mapping is None:
        known = ", ".join(catalog.refs()) or "none"
        raise ConduitError(f"no mapping {ref}; available: {known}")
    return mapping


def cmd_map(args: argparse.Namespace) -> int:
    from engine.mapping import Skip
    from engine.testbench import pretty, run_mapping

    mapping = _mapping(_catalog(args), args.mapping)
    status = 0
    for n, raw in enumerate(_messages_of(args.file), start=1):
        try:
            result = run_mapping(mapping, raw)
        except ConduitError as exc:
            print(f"{args.file}#{n}: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        if isinstance(result, Skip):
            print(f"{args.file}#{n}: skipped: {result.reason}", file=sys.stderr)
            continue
        print(pretty(result, mapping.emits))
    return status


def cmd_mapping_diff(args: argparse.Namespace) -> int:
    from engine.testbench import diff_versions

    catalog = _catalog(args)
    a, b = _mapping(catalog, args.a), _mapping(catalog, args.b)
    differing = 0
    total = 0
    for name in args.files:
        for n, raw in enumerate(_messages_of(name), start=1):
            total += 1
            changes = diff_versions(a, b, raw)
            if not changes:
                print(f"{name}#{n}: same")
                continue
            differing += 1
            if isinstance(changes, str):
                print(f"{name}#{n}: {changes}")
                continue
            print(f"{name}#{n}: {len(changes)} difference(s)")
            for change in changes:
                print(f"  {change.describe()}")
    print(f"{differing} of {total} message(s) differ between {a.ref} and {b.ref}")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from engine.config.loader import load_channels
    from engine.testbench import channel_fixtures, mapping_fixtures

    engine_cfg = _engine_config(args)
    catalog = _catalog(args)
    results = list(mapping_fixtures(catalog, Path(engine_cfg.mappings_dir), args.names))
    channels_dir = Path(engine_cfg.channels_dir)
    if channels_dir.is_dir():
        channels = load_channels(channels_dir, os.environ)
        results += channel_fixtures(channels, catalog, channels_dir, args.names)
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.ok and not args.quiet:
            print(f"ok   {r.name}")
        elif not r.ok:
            print(f"FAIL {r.name}")
            for line in r.details:
                print(f"       {line}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit interface engine")
    parser.add_argument("--conf", help=f"engine settings (default {DEFAULT_CONF} or "
                        "$CONDUIT_CONF)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon").set_defaults(func=cmd_run)
    sub.add_parser("validate", help="check conf/ and channels/").set_defaults(func=cmd_validate)
    send = sub.add_parser("send", help="send HL7v2 files over MLLP and print each ACK code")
    send.add_argument("--mllp", required=True, metavar="HOST:PORT")
    send.add_argument("--timeout", type=float, default=30.0)
    send.add_argument("files", nargs="+", metavar="FILE")
    send.set_defaults(func=cmd_send)
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="what",
                                                                           required=True)
    audit.add_parser("verify", help="check the hash chain").set_defaults(func=cmd_audit_verify)
    show = audit.add_parser("show", help="every hop of one message")
    show.add_argument("--message", required=True, metavar="ID")
    show.set_defaults(func=cmd_audit_show)
    queue = sub.add_parser("queue", help="destination queues").add_subparsers(dest="what",
                                                                              required=True)
    queue.add_parser("list", help="depth, in-flight, retrying, dead").set_defaults(
        func=cmd_queue_list)
    retry = queue.add_parser("retry", help="put a destination's dead letters back")
    retry.add_argument("destination", metavar="DESTINATION",
                       help="CHANNEL/DESTINATION, or a destination name that is unique")
    retry.set_defaults(func=cmd_queue_retry)
    levels = ["off", "lenient", "strict"]
    parse = sub.add_parser("parse", help="what a message is, and every problem with it")
    parse.add_argument("files", nargs="+", metavar="FILE")
    parse.add_argument("--validate", choices=levels, default="strict",
                       help="structure validation (HL7v2: hl7apy); default strict")
    parse.set_defaults(func=cmd_parse)
    ack = sub.add_parser("ack", help="the acknowledgement the engine would send")
    ack.add_argument("file", metavar="FILE")
    ack.add_argument("--validate", choices=levels, default="off")
    ack.set_defaults(func=cmd_ack)
    test = sub.add_parser("test", help="run every mapping's and channel's fixtures")
    test.add_argument("names", nargs="*", metavar="NAME",
                      help="only these mappings (name or name@version) or channels")
    test.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    test.set_defaults(func=cmd_test)
    map_ = sub.add_parser("map", help="what a mapping makes of a message")
    map_.add_argument("mapping", metavar="NAME@VERSION")
    map_.add_argument("file", metavar="FILE")
    map_.set_defaults(func=cmd_map)
    mapping = sub.add_parser("mapping", help="mapping versions").add_subparsers(
        dest="what", required=True)
    mdiff = mapping.add_parser("diff", help="how two versions' outputs differ, per message")
    mdiff.add_argument("a", metavar="NAME@A")
    mdiff.add_argument("b", metavar="NAME@B")
    mdiff.add_argument("files", nargs="+", metavar="FILE")
    mdiff.set_defaults(func=cmd_mapping_diff)
    roles = ["viewer", "operator", "analyst", "auditor", "admin", "integration"]
    users = sub.add_parser("users", help="users and API tokens").add_subparsers(
        dest="what", required=True)
    users.add_parser("list", help="every user and role").set_defaults(func=cmd_users)
    add = users.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=roles)
    add.set_defaults(func=cmd_users)
    token = users.add_parser("token", help="make a new token (printed once, stored hashed)")
    token.add_argument("name")
    token.set_defaults(func=cmd_users)
    role = users.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=roles)
    role.set_defaults(func=cmd_users)
    remove = users.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_users)
    keys = sub.add_parser("keys", help="encryption keys").add_subparsers(dest="what",
                                                                          required=True)
    keys.add_parser("rotate", help="make a new content key").set_defaults(func=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigErrors as exc:
        print(f"conduit: the configuration has {len(exc.errors)} error(s):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 2
    except ConduitError as exc:
        print(f"conduit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
