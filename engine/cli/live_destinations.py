"""Which destinations the running channels have, for `conduit queue list` to mark the
queued ones no live channel has any more: a deploy removed or renamed them, and their
entries wait, never dropped, for a revision that brings them back or for an operator."""

from __future__ import annotations

import logging
import os
from typing import Any

from engine.change.revisions import RevisionStore
from engine.config.loader import LoadedChannel, load_channel_texts, load_channels

log = logging.getLogger("conduit.cli")

NOT_LIVE = ("    no live channel has this destination (a deploy removed it): its entries "
            "stay queued until a revision brings it back")


def live_destinations(svc: Any) -> set[str] | None:
    """`channel/destination` of every destination of the live revision's enabled channels
    (the channel files when no revision was made yet); None when they cannot be read, so
    nothing is marked on a guess."""
    env = dict(os.environ)
    try:
        live = RevisionStore(svc.db, svc.keys.audit).live()
        channels: list[LoadedChannel] = (
            load_channel_texts(svc.config.channels_dir, live.snapshot.channels, env)
            if live is not None else load_channels(svc.config.channels_dir, env))
    except Exception as exc:  # a listing must not fail on it
        log.debug("queue list: the live channels could not be read (%s)", type(exc).__name__)
        return None
    # an optional destination disabled here (its variable unset in this shell, not in
    # the daemon's) is the channel's still: never marked as removed by a deploy
    return {f"{c.config.name}/{d}" for c in channels if c.config.enabled
            for d in [*(x.name for x in c.config.destinations), *c.disabled]}
