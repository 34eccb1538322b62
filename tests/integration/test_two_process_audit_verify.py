"""`conduit audit verify` (and the status page's verify, GET /api/audit/verify) on a
PostgreSQL store while an engine appends to the trail: an intact chain verifies ("ok N
events"), whatever the engine appends meanwhile.

Before, each chunk of the walk and the final read of the chain's head saw whatever had
committed by then (READ COMMITTED), so an event appended after the walk's last chunk
and before the head was read made an intact trail report "BROKEN ... the trail ends at
event #N, but event #N+1 was recorded as the last": a tampering alarm on a busy engine.
The engine's append is made at exactly that moment, from its own connection.
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from engine.cli import main
from engine.config.keys import KeysConfig
from engine.events import Event, Kind
from engine.operations import Operations
from engine.security.keys import for_store
from engine.store import audit as audit_chain
from engine.store.database import open_database

APPENDER = "engine-appending"


def _append(db: sa.Engine, key: bytes, n: int) -> None:
    with db.begin() as conn:
        audit_chain.append(conn, key, [Event(kind=Kind.ADMIN, actor="engine",
                                             detail={"action": "test", "n": i})
                                       for i in range(n)])


@pytest.fixture
def store(pg_url, tmp_path):
    """A store with 120 events (several chunks of the walk), its keys and its conf."""
    db = open_database(pg_url)
    ring = for_store(KeysConfig(directory=str(tmp_path / "keys")), tmp_path / "data", db,
                     writes=True)
    _append(db, ring.audit, 120)
    conf = tmp_path / "conduit.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nstore: {{url: \"{pg_url}\"}}\n"
                    f"keys: {{directory: \"{tmp_path / 'keys'}\"}}\n")
    yield db, ring.audit, str(conf)
    db.dispose()


@pytest.fixture
def appending_at_the_head_read(store):
    """Makes the engine append 3 events, from its own connection, just before the
    verifier reads the chain's head; yields whether it did."""
    db, key, _ = store
    appended = threading.Event()

    def engine_appends() -> None:
        _append(db, key, 3)
        appended.set()

    def before(conn, cursor, statement, params, context, executemany) -> None:
        # The verifier's read of the head (not the appender's locking read).
        if (not appended.is_set() and threading.current_thread().name != APPENDER
                and "audit_head" in statement and "FOR UPDATE" not in statement.upper()
                and "hash" in statement):
            t = threading.Thread(target=engine_appends, name=APPENDER)
            t.start()
            t.join(10)

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        yield appended
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)


def test_the_cli_verify_while_an_engine_appends_says_ok(store, appending_at_the_head_read,
                                                        capsys):
    _, _, conf = store
    code = main(["--conf", conf, "audit", "verify"])
    out = capsys.readouterr().out
    assert appending_at_the_head_read.is_set(), "no append was made during the verify"
    assert code == 0 and out.startswith("ok 120 events"), out

    assert main(["--conf", conf, "audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 123 events")


def test_the_status_pages_verify_while_the_engine_appends_says_ok(
        store, appending_at_the_head_read):
    db, key, _ = store
    engine = SimpleNamespace(services=SimpleNamespace(db=db, keys=SimpleNamespace(audit=key)))
    result = asyncio.run(Operations(engine).verify())
    assert appending_at_the_head_read.is_set(), "no append was made during the verify"
    assert result == {"events": 120, "broken": None}
