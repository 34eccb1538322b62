"""Worker processes started together on a new PostgreSQL database all open it: one
creates the tables while the others wait for it (a race that once stopped all but one
with a duplicate key on the audit head)."""

from __future__ import annotations

import concurrent.futures

from engine.store.database import open_database


def _open(url: str) -> bool:
    open_database(url).dispose()
    return True


def test_four_processes_opening_a_new_database_at_once_all_succeed(pg_url):
    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        opened = [f.result(timeout=60) for f in [pool.submit(_open, pg_url) for _ in range(4)]]
    assert opened == [True] * 4
