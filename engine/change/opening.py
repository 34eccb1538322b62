"""Opening the revision store as the engine opens its store and keys, for a command or
the start-up; apart from engine.change.loading, which the runtime imports."""

from __future__ import annotations

import sqlalchemy as sa

from engine.change.revisions import RevisionStore
from engine.config.schema import EngineConfig
from engine.runtime import Services


def open_revisions(config: EngineConfig) -> tuple[RevisionStore, sa.Engine]:
    """The revision store of the configured database and audit key (dispose of the
    database engine returned when done)."""
    svc = Services(config)
    return RevisionStore(svc.db, svc.keys.audit), svc.db
