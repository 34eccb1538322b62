"""Shared fixtures: databases (SQLite files and the real PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from engine.testbench import run_in_utc

# Fixtures' expected outputs hold in UTC, whatever this machine's zone (engine.testbench).
run_in_utc()

# Slowest folders first: with xdist's work stealing (scripts/test) the long end-to-end
# runs start at once and the quick unit tests fill the gaps, instead of one late daemon
# test keeping the whole suite waiting.
_FOLDER_ORDER = ("browser", "e2e", "integration", "conformance", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.parts
        folder = parts[parts.index("tests") + 1] if "tests" in parts else ""
        return _FOLDER_ORDER.index(folder) if folder in _FOLDER_ORDER else len(_FOLDER_ORDER)

    items.sort(key=rank)  # stable: each module keeps its own order


PG_ADMIN_URL = os.environ.get(
    "CONDUIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"conduit_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    _drop_redis_queues(f"conduit-{name}")


def _drop_redis_queues(prefix: str) -> None:
    """The Redis queue keys engines on this database made (tests.e2e.support.use_postgres
    names their prefix after it), so runs leave nothing behind on the shared Redis."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(client.scan_iter(f"{{{prefix}}}*"))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # a test that needed no Redis ran without one
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Each store test runs on both databases the engine supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conduit.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(db_url):
    """The store's database opened on each of db_url's servers, tables created."""
    from engine.store.database import open_database

    db = open_database(db_url)
    yield db
    db.dispose()


@pytest.fixture
async def channel_env(tmp_path):
    """A channel's surroundings, started: its SQLite store, writer, queue, vault and the
    fake source and destination worker of tests.unit.test_channel.Env."""
    from tests.unit.test_channel import Env

    env = Env(tmp_path)
    env.writer.start()
    yield env
    await env.writer.close()
    env.db.dispose()
