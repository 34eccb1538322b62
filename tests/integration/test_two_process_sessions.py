"""Signing in on one engine's status page while an admin replaces that user's token or
removes the user with `conduit users` (another process on one PostgreSQL database):
the sign-in must not leave a session behind that outlives the token or the user.

Before, the sign-in found the user by token and then opened the session in a second
transaction: a replacement or removal committed in between (which ends the user's
sessions) missed the session opened after it, which stayed valid for 8 hours, to the
holder of a token an admin had just revoked; after a removal, it came back to life when
a user of the same name was added again, with that user's role. The other process acts
right after the sign-in has read the user, from its own connection.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from engine.security.roles import Role
from engine.security.users import UserStore
from engine.store.database import open_database
from engine.web.app import build_app
from engine.web.auth import SESSION_COOKIE

OTHER = "conduit-users"


async def _nothing(_event) -> None:
    return None


@pytest_asyncio.fixture
async def page(pg_url) -> AsyncIterator[tuple[TestClient, UserStore, UserStore, str]]:
    """The status page of one engine (its own pool), the users store as another process
    opens it, and an admin's token."""
    here, there = open_database(pg_url), open_database(pg_url)
    users_here, users_there = UserStore(here), UserStore(there)
    users_there.add("ada", Role.ADMIN)
    token = users_there.new_token("ada")
    engine = SimpleNamespace(users=users_here, ops=SimpleNamespace(record=_nothing))
    client = TestClient(TestServer(build_app(engine)))
    await client.start_server()
    try:
        yield client, users_here, users_there, token
    finally:
        await client.close()
        here.dispose()
        there.dispose()


def _meanwhile(db: sa.Engine, act) -> list[threading.Thread]:
    """Runs `act` on another thread right after this process reads a user by token (it
    may have to wait for this process's transaction; it is given a second)."""
    started: list[threading.Thread] = []

    def after(conn, cursor, statement, params, context, executemany) -> None:
        if (not started and threading.current_thread().name != OTHER
                and statement.lstrip().upper().startswith("SELECT")
                and "token_hash" in statement and "users" in statement):
            t = threading.Thread(target=act, name=OTHER)
            started.append(t)
            t.start()
            t.join(1.0)

    sa.event.listen(db, "after_cursor_execute", after)
    return started


async def _sign_in(client: TestClient, token: str) -> str | None:
    """The session cookie the page set, if it signed the token in."""
    async with client.post("/api/session", json={"token": token}) as resp:
        assert resp.status in (200, 401), await resp.text()
        cookie = resp.cookies.get(SESSION_COOKIE)
        return cookie.value if resp.status == 200 and cookie is not None else None


async def test_a_token_replaced_during_a_sign_in_leaves_no_session_behind(page):
    client, here, there, token = page
    fresh: list[str] = []
    started = _meanwhile(here._engine, lambda: fresh.append(there.new_token("ada")))
    session = await _sign_in(client, token)
    started[0].join(10)
    assert fresh, "the token was not replaced"
    assert session is None or (here.session(session) is None
                               and there.session(session) is None), \
        "a session signed in with the replaced token is still valid"
    assert here.by_token(token) is None and here.by_token(fresh[0]) is not None


@pytest.mark.parametrize("again", [Role.VIEWER, Role.ADMIN])
async def test_a_user_removed_during_a_sign_in_leaves_no_session_behind(page, again):
    client, here, there, token = page
    started = _meanwhile(here._engine, lambda: there.remove("ada"))
    session = await _sign_in(client, token)
    started[0].join(10)
    assert there.list() == []
    there.add("ada", again)  # another person, given the name again
    assert session is None or (here.session(session) is None
                               and there.session(session) is None), \
        "the removed user's session came back with the new user's rights"
