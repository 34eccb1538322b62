"""The audit trail, the queues, the keys and the users, from the command line; every
change is an audited admin event by the operating-system user who ran it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from engine.cli.common import actor, with_services
from engine.cli.live_destinations import NOT_LIVE, live_destinations

if TYPE_CHECKING:
    from engine.queue.base import QueueStats


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from engine.store import audit
    from engine.store.database import snapshot_reader

    async def body(svc) -> int:
        # One snapshot: events engines append meanwhile are neither walked nor the head.
        with snapshot_reader(svc.db).connect() as conn:
            result = audit.verify(conn, svc.keys.audit)
        if result.broken is None:
            print(f"ok {result.events} events")
            return 0
        b = result.broken
        print(f"BROKEN at event #{b.seq} ({b.kind}): {b.reason}; "
              f"{result.events} events verified before it")
        return 1

    return with_services(args, body, writes=False)


def cmd_audit_show(args: argparse.Namespace) -> int:
    """Every hop of a message, then those of the messages linked to it (the Status or
    Error answering a NewRx, or the NewRx an answer relates to)."""
    from engine.store import audit, correlation, retention

    async def body(svc) -> int:
        with svc.db.connect() as conn:
            events = audit.events_of_message(conn, args.message)
            linked = [(r, audit.events_of_message(conn, r["message_id"]))
                      for r in correlation.related(conn, args.message)]
        if not events:
            print(f"no audit events for message {args.message}", file=sys.stderr)
            return 1
        _print_events(events, _standard(svc, args.message))
        if retention.pruned(svc.db, args.message):
            print("content: pruned under the channel's retention (these events and the "
                  "message's metadata remain)")
        for r, hops in linked:
            print(f"\nrelated: {r['message_id']} {r['type'] or '?'} ({r['relation']} this "
                  f"message), {r['status']}")
            _print_events(hops, _standard(svc, r["message_id"]))
        return 0

    return with_services(args, body, writes=False)


# The engine's own answer, by the standard's name for it, after an acknowledged event
# (its detail holds the verdict, and the code of a refusal).
_ANSWERS = {"ncpdp": ("Status 000", "Error")}
_UNANSWERED = frozenset({"Status", "Error", "Verify"})  # SCRIPT never answers an answer


def _standard(svc: Any, message_id: str) -> str:
    stored = svc.store.get(message_id)
    return stored.standard if stored is not None else ""


def _print_events(events: list[dict[str, Any]], standard: str = "") -> None:
    names = _ANSWERS.get(standard)
    if any(e["kind"] == "parsed" and json.loads(e["detail"]).get("type") in _UNANSWERED
           for e in events):
        names = None
    for e in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at_us"] / 1e6))
        ms = f".{(e['at_us'] // 1000) % 1000:03d}"
        where = e["destination"] or ""
        answered = ""
        if names is not None and e["kind"] == "acknowledged":
            detail = json.loads(e["detail"])
            answered = (f"  answered {names[0]}" if detail.get("verdict") == "accepted"
                        else f"  answered {names[1]} {detail.get('code', '')}".rstrip())
        print(f"#{e['seq']:<6} {when}{ms} {e['kind']:<14} {where:<14} "
              f"{e['actor']:<10} {e['detail']}{answered}")


_RETRYING_SHOWN = 3  # a FIFO queue's head explains the rest; a few more for parallel ones


def _why(svc: Any, s: QueueStats) -> list[str]:
    """Indented lines under a destination's counts saying why it is not delivering: its
    first retrying entries and its newest dead letter, each with the PHI-free reason."""
    lines = []
    if s.retrying:
        now = time.time()
        for r in svc.queue.retrying(s.destination, _RETRYING_SHOWN):
            due = f"next in {r.next_at - now:.0f}s" if r.next_at > now else "due now"
            lines.append(f"    retrying  {r.message_id}  attempt {r.attempts}, {due}: "
                         f"{r.last_error or '(no reason recorded)'}")
        if s.retrying > _RETRYING_SHOWN:
            lines.append(f"    retrying  ... and {s.retrying - _RETRYING_SHOWN} more")
    if s.dead:
        for d in svc.queue.dead_letters(s.destination, 1):
            lines.append(f"    dead      {d.message_id}  newest of {s.dead}, "
                         f"{d.attempts} attempt(s): {d.last_error or '(no reason recorded)'}")
    return lines


def cmd_queue_list(args: argparse.Namespace) -> int:
    """Counts per destination and, under any that is retrying or has dead letters, why
    (`conduit queue dead` lists every dead letter)."""
    async def body(svc) -> int:
        stats = await asyncio.to_thread(svc.queue.stats)
        live = await asyncio.to_thread(live_destinations, svc) if stats else None
        print(f"{'DESTINATION':<40} {'DEPTH':>7} {'IN-FLIGHT':>9} {'RETRYING':>8} "
              f"{'DEAD':>6}  OLDEST")
        for s in stats:
            oldest = (f"{time.time() - s.oldest_at:.0f}s ago" if s.oldest_at else "-")
            print(f"{s.destination:<40} {s.ready + s.leased:>7} {s.leased:>9} "
                  f"{s.retrying:>8} {s.dead:>6}  {oldest}")
            if live is not None and s.destination not in live:
                print(NOT_LIVE)
            for line in await asyncio.to_thread(_why, svc, s):
                print(line)
        if not stats:
            print("(no queued, retrying or dead-lettered messages)")
        return 0

    return with_services(args, body, writes=False)


async def _destination(svc, given: str) -> str | None:
    """CHANNEL/DESTINATION from what was typed (a destination name that is unique will
    do); None, said on stderr, when it is ambiguous or unknown."""
    if "/" in given:
        return given
    names = {s.destination for s in await asyncio.to_thread(svc.queue.stats)
             if s.destination.endswith("/" + given)}
    if len(names) != 1:
        which = ", ".join(sorted(names)) or "none has dead letters"
        print(f"give the destination as CHANNEL/DESTINATION ({which})", file=sys.stderr)
        return None
    return names.pop()


def cmd_queue_dead(args: argparse.Namespace) -> int:
    """The newest dead letters of one destination: ids and PHI-free reasons; a
    receiver's own answer is read with the message's content (API or status page)."""
    async def body(svc) -> int:
        target = await _destination(svc, args.destination)
        if target is None:
            return 2
        dead = await asyncio.to_thread(svc.queue.dead_letters, target, args.limit)
        print(f"{'MESSAGE':<28} {'ATTEMPTS':>8}  {'ANSWER':<6}  REASON")
        for d in dead:
            print(f"{d.message_id:<28} {d.attempts:>8}  {'kept' if d.answer_kept else '-':<6}"
                  f"  {d.last_error or ''}")
        if not dead:
            print(f"(no dead letters on {target})")
        return 0

    return with_services(args, body, writes=False)


def cmd_queue_retry(args: argparse.Namespace) -> int:
    async def body(svc) -> int:
        target = await _destination(svc, args.destination)
        if target is None:
            return 2
        count = await svc.writer.commit(svc.queue.replay(target, actor()))
        print(f"requeued {count} dead letter(s) on {target}")
        return 0

    return with_services(args, body)


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
        uow.record(Event(kind=Kind.ADMIN, actor=actor(), detail=detail))
        await svc.writer.commit(uow)
        return 0

    return with_services(args, body, writes=args.what != "list")
