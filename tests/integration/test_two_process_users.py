"""`conduit users add` of one name from two processes at once on one PostgreSQL
database (two admins, or a provisioning script run on two hosts): one adds the user,
the other says it exists, as it does when run one after the other.

Before, each looked for the name and then inserted it: the second insert waited for the
first's commit and then failed on the primary key, with a traceback instead of the
command's one line. The first process's add is held open after its insert.
"""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import ConduitError
from engine.security.roles import Role
from engine.security.users import UserStore
from engine.store.database import open_database
from engine.store.schema import users


def test_adding_one_user_from_two_processes_at_once_says_it_exists(pg_url):
    here, there = open_database(pg_url), open_database(pg_url)
    try:
        with here.connect() as conn:
            conn.begin()  # the other process's add, between its insert and its commit
            conn.execute(users.insert().values(name="ada", role=Role.ADMIN.value,
                                               created_at=time.time()))
            outcome: list[BaseException | None] = []

            def add() -> None:
                try:
                    UserStore(there).add("ada", Role.VIEWER)
                    outcome.append(None)
                except BaseException as exc:  # the assertion below says which
                    outcome.append(exc)

            t = threading.Thread(target=add)
            t.start()
            t.join(1.0)  # waits on the first one's insert
            conn.commit()
        t.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], ConduitError), outcome
        assert str(outcome[0]) == "user ada already exists"
        assert UserStore(there).list() == [("ada", "admin", False)]
    finally:
        here.dispose()
        there.dispose()


def test_the_same_add_one_after_the_other_says_it_exists(pg_url):
    db = open_database(pg_url)
    try:
        UserStore(db).add("ada", Role.ADMIN)
        with pytest.raises(ConduitError, match="user ada already exists"):
            UserStore(db).add("ada", Role.VIEWER)
    finally:
        db.dispose()
