"""`conduit deploy`, `conduit rollback` and `conduit revisions`: change control on the
command line (engine.change). Who acts is the API token's user (CONDUIT_TOKEN or
--token-file) when change control is on or an approval is given; otherwise the OS user."""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sys
from pathlib import Path

from engine.change.loading import stale_mappings
from engine.change.opening import open_revisions
from engine.change.revisions import LIVE, PENDING, Revision
from engine.change.snapshot import diff, take
from engine.change.startup import Who
from engine.cli.common import actor, engine_config, load_everything
from engine.errors import ConduitError
from engine.security.roles import Role
from engine.security.users import UserStore

TOKEN_ENV = "CONDUIT_TOKEN"
# Who may author a revision (approving takes admin, engine.change.revisions): not a
# sending system's credential (integration), nor the read-only roles.
CHANGERS = frozenset({Role.OPERATOR, Role.ANALYST, Role.ADMIN})


def who(args: argparse.Namespace, db, *, token_required: bool) -> Who:
    """The user the token names, or the OS user when no token is needed and none given."""
    token = _token(args)
    if token:
        user = UserStore(db).by_token(token)
        if user is None:
            raise ConduitError("the API token given is not any user's (make one with "
                               "`conduit users token NAME`)")
        if user.role not in CHANGERS:
            raise ConduitError(f"user {user.name} has the {user.role.value} role, which may "
                               "not make or decide revisions (operator, analyst or admin may)")
        return Who(user.name, f"cli:{user.name}", user.role == Role.ADMIN)
    if token_required:
        raise ConduitError(f"change control needs to know who you are: give your API token "
                           f"in {TOKEN_ENV} or with --token-file FILE (`conduit users token "
                           f"NAME` makes one)")
    return Who(os_user(), actor())


def os_user() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except Exception:
        return "os:unknown"


def _token(args: argparse.Namespace) -> str:
    path = getattr(args, "token_file", None)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConduitError(f"cannot read the token file {path}: "
                               f"{exc.strerror or type(exc).__name__}") from None
    return os.environ.get(TOKEN_ENV, "").strip()


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.action in ("approve", "reject"):
        return _decide(args)
    if args.action is not None or args.number is not None:
        raise ConduitError("usage: conduit deploy [--reason TEXT | --diff], or conduit "
                           "deploy approve|reject N")
    config, channels, _ = load_everything(args)  # only valid files become a revision
    snapshot = take(config.channels_dir, config.mappings_dir, (c.config for c in channels))
    store, db = open_revisions(config)
    try:
        live = store.live()
        changes = diff(live.snapshot if live else None, snapshot,
                       old_label=f"r{live.number}" if live else "none", new_label="disk")
        if live is not None and live.digest == snapshot.digest:
            print(f"nothing to deploy: the files are live revision {live.number}")
            return 0
        if args.diff:
            sys.stdout.write(changes)
            return 0
        waiting = next((r for r in store.history() if r.state == PENDING
                        and r.digest == snapshot.digest), None)
        if waiting is not None:
            print(f"nothing to deploy: revision {waiting.number} has these files and waits "
                  f"for approval (conduit deploy approve {waiting.number})")
            return 0
        if not args.reason or not args.reason.strip():
            raise ConduitError('say why: conduit deploy --reason "..."')
        approvals = config.change_control.approvals
        by = who(args, db, token_required=approvals > 0)
        # made only if nobody deployed meanwhile (another admin, an engine's --deploy)
        made = store.make(snapshot, author=by.author, actor=by.actor,
                          reason=args.reason.strip(), approvals=approvals,
                          expect_live=live.number if live else None, unless_pending=True)
    finally:
        db.dispose()
    sys.stdout.write(changes)
    _say_made(made, approvals)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    config = engine_config(args)
    store, db = open_revisions(config)
    try:
        target = store.get(args.number)
        snapshot = target.snapshot
        live = store.live()
        if live is not None and live.digest == snapshot.digest:
            print(f"nothing to do: live revision {live.number} already has revision "
                  f"{target.number}'s content")
            return 0
        stale = stale_mappings(snapshot, config.mappings_dir)
        if stale:
            raise ConduitError(f"revision {target.number} pinned mapping versions whose "
                               f"source on disk has changed since: {', '.join(stale)}; it "
                               "cannot be run again as it was")
        approvals = config.change_control.approvals
        by = who(args, db, token_required=approvals > 0)
        made = store.make(snapshot, author=by.author, actor=by.actor, approvals=approvals,
                          reason=(args.reason or "").strip()
                          or f"rollback to revision {target.number}",
                          rollback_of=target.number)
        sys.stdout.write(diff(live.snapshot if live else None, snapshot,
                              old_label=f"r{live.number}" if live else "none",
                              new_label=f"r{target.number}"))
    finally:
        db.dispose()
    _say_made(made, approvals)
    return 0


def cmd_revisions(args: argparse.Namespace) -> int:
    if args.what == "diff":
        args.action, args.number, args.diff, args.reason = None, None, True, None
        return cmd_deploy(args)
    config = engine_config(args)
    store, db = open_revisions(config)
    try:
        if args.what == "list":
            for rev in reversed(store.history(args.limit)):
                print(_line(rev))
            return 0
        rev = store.get(args.number)
        base = store.get(rev.based_on) if rev.based_on is not None else None
    finally:
        db.dispose()
    print(_line(rev))
    for name, digest in rev.snapshot.channel_hashes.items():
        print(f"  channel file {name}  sha256 {digest}")
    for ref, digest in rev.snapshot.mappings.items():
        print(f"  mapping {ref}  sha256 {digest or 'missing'}")
    sys.stdout.write(diff(base.snapshot if base else None, rev.snapshot,
                          old_label=f"r{base.number}" if base else "none",
                          new_label=f"r{rev.number}"))
    return 0


def _decide(args: argparse.Namespace) -> int:
    if args.number is None:
        raise ConduitError(f"which revision? conduit deploy {args.action} N")
    config = engine_config(args)
    store, db = open_revisions(config)
    try:
        by = who(args, db, token_required=True)
        if args.action == "approve":
            rev = store.approve(args.number, approver=by.author, is_admin=by.is_admin,
                                actor=by.actor, approvals=config.change_control.approvals)
        else:
            rev = store.reject(args.number, by=by.author, is_admin=by.is_admin,
                               actor=by.actor, reason=(args.reason or "").strip())
    finally:
        db.dispose()
    if rev.state == LIVE:
        print(f"revision {rev.number} approved by {by.author}: live; running engines "
              "swap to it within seconds")
    elif args.action == "approve":
        print(f"revision {rev.number} approved by {by.author}; it waits for more "
              f"approvals ({len(rev.approvals)} of {config.change_control.approvals})")
    else:
        print(f"revision {rev.number} rejected by {by.author}")
    return 0


def _say_made(made: Revision, approvals: int) -> None:
    if made.state == LIVE:
        print(f"revision {made.number} is live; running engines swap to it within seconds")
    else:
        print(f"revision {made.number} waits for approval by {approvals} admin(s) other "
              f"than {made.author}: conduit deploy approve {made.number}")


def _line(rev: Revision) -> str:
    when = datetime.datetime.fromtimestamp(rev.made_at, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%SZ")
    extra = f", approved by {', '.join(rev.approvals)}" if rev.approvals else ""
    if rev.rollback_of is not None:
        extra += f", rollback to {rev.rollback_of}"
    return f"{rev.number:>4}  {rev.state:<10}  {when}  {rev.author}  {rev.reason}{extra}"


__all__ = ["cmd_deploy", "cmd_revisions", "cmd_rollback", "who"]
