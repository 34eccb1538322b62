"""What `conduit run` does about revisions before the engine starts.

- No revision yet: the files on disk become revision 1, live (the bootstrap).
- The files are the live revision's: run it.
- They differ, without change control: they become a new live revision (author the OS
  user, reason "engine start"), so the history stays complete.
- They differ, with change control: refuse to start, naming the files and the command
  that deploys them; unless `--deploy`, which makes the revision (still waiting for its
  approval) and runs the live one meanwhile.

Either way the engine runs the live revision's channels, loaded from the store.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from engine.change.loading import load_snapshot
from engine.change.opening import open_revisions
from engine.change.revisions import PENDING, LiveMoved, RevisionStore
from engine.change.snapshot import Snapshot, differing, take
from engine.config.loader import LoadedChannel
from engine.config.schema import EngineConfig
from engine.errors import ConduitError
from engine.mapping import MappingCatalog

log = logging.getLogger("conduit.change")


@dataclass
class Who:
    """Who a revision is made by: `author` in the revision, `actor` in the audit trail."""

    author: str
    actor: str
    is_admin: bool = False


@dataclass
class Settled:
    revision: int
    channels: list[LoadedChannel]
    catalog: MappingCatalog


def settle(config: EngineConfig, disk: list[LoadedChannel], catalog: MappingCatalog, *,
           who: Callable[[sa.Engine], Who], deploy: bool = False, follow_only: bool = False,
           env: Mapping[str, str] | None = None) -> Settled:
    """The revision to start with, made or checked as the module says. `follow_only`: a
    worker of a group, whose supervisor settled already; it runs what is live. `who(db)`
    says who makes a revision, asked only when one is made."""
    env = dict(os.environ) if env is None else env
    store, db = open_revisions(config)
    try:
        snapshot = take(config.channels_dir, config.mappings_dir, (c.config for c in disk))
        number = _decide(store, config, snapshot, lambda: who(db), deploy, follow_only)
        live = store.get(number)
    finally:
        db.dispose()
    if live.digest == snapshot.digest:
        return Settled(number, disk, catalog)  # the very files just loaded and checked
    channels, catalog = load_snapshot(live.snapshot, config, env, catalog)
    return Settled(number, channels, catalog)


def _decide(store: RevisionStore, config: EngineConfig, snapshot: Snapshot,
            by: Callable[[], Who], deploy: bool, follow_only: bool) -> int:
    """Each revision is made only if the live one is still the one decided on: engines
    starting together on one database look, and then decide again on what the first of
    them made (the same files: it runs that revision), instead of each making one."""
    for _ in range(3):
        try:
            return _decide_once(store, config, snapshot, by, deploy, follow_only)
        except LiveMoved:
            continue
    return _decide_once(store, config, snapshot, by, deploy, follow_only)


def _decide_once(store: RevisionStore, config: EngineConfig, snapshot: Snapshot,
                 by: Callable[[], Who], deploy: bool, follow_only: bool) -> int:
    live = store.live()
    approvals = config.change_control.approvals
    if live is None:
        if follow_only:
            raise ConduitError("no live revision yet; start the group with `conduit run`")
        who = by()
        made = store.make(snapshot, author=who.author, actor=who.actor, approvals=0,
                          reason="bootstrap: the first start", force_live=True,
                          expect_live=None)
        log.info("no revision yet: recorded the files on disk as revision %d, live",
                 made.number)
        return made.number
    if live.digest == snapshot.digest or follow_only:
        return live.number
    files = differing(live.snapshot, snapshot, config.channels_dir, config.mappings_dir)
    if approvals <= 0:
        who = by()
        made = store.make(snapshot, author=who.author, actor=who.actor, approvals=0,
                          reason="engine start", expect_live=live.number)
        log.info("the files on disk changed since revision %d (%s): recorded as revision "
                 "%d, live", live.number, ", ".join(files), made.number)
        return made.number
    if not deploy:
        raise ConduitError(
            f"change control is on and the files on disk differ from live revision "
            f"{live.number}: {', '.join(files)}. Deploy them with `conduit deploy --reason "
            f"\"...\"` (another admin approves with `conduit deploy approve N`), or start "
            f"with `conduit run --deploy`")
    waiting = next((r for r in store.history() if r.state == PENDING
                    and r.digest == snapshot.digest), None)
    if waiting is None:
        who = by()
        waiting = store.make(snapshot, author=who.author, actor=who.actor,
                             approvals=approvals, reason="conduit run --deploy",
                             expect_live=live.number, unless_pending=True)
    if waiting.state == PENDING:
        log.warning("revision %d (the files on disk: %s) waits for approval by another "
                    "admin (`conduit deploy approve %d`); running live revision %d until "
                    "then", waiting.number, ", ".join(files), waiting.number, live.number)
        return live.number
    return waiting.number
