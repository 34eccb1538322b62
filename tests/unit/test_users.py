"""Users, tokens and sessions: a token is shown once and stored only as its hash, a new
token retires the old one and its sessions, sessions expire, and names are checked."""

from __future__ import annotations

import hashlib
import types

import pytest
import sqlalchemy as sa

from engine.errors import ConduitError
from engine.security import users as users_module
from engine.security.roles import Role
from engine.security.users import SESSION_SECONDS, TOKEN_PREFIX, User, UserStore, same_secret
from engine.store.database import open_database
from engine.store.schema import sessions, users


@pytest.fixture
def db(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'conduit.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def store(db):
    return UserStore(db)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _table(db, table):
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def _all_bytes(tmp_path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("conduit.db*"))


def test_a_token_is_returned_once_and_stored_only_as_its_hash(store, db, tmp_path):
    store.add("ana", Role.ANALYST)
    assert store.list() == [("ana", "analyst", False)]
    token = store.new_token("ana")
    assert token.startswith(TOKEN_PREFIX) and len(token) >= len(TOKEN_PREFIX) + 43
    [row] = _table(db, users)
    assert row["token_hash"] == _sha256(token)
    assert token not in {str(v) for v in row.values()}
    assert token.encode() not in _all_bytes(tmp_path)  # not in the database files at all
    assert store.list() == [("ana", "analyst", True)]
    assert store.by_token(token) == User("ana", Role.ANALYST)


def test_tokens_are_unique_and_unguessable(store):
    store.add("a", Role.VIEWER)
    store.add("b", Role.VIEWER)
    tokens = {store.new_token("a"), store.new_token("b"), store.new_token("a")}
    assert len(tokens) == 3


@pytest.mark.parametrize("token", ["", "cdt_", "cdt_wrong", "Bearer cdt_x", "x" * 60])
def test_unknown_tokens_find_nobody(store, token):
    store.add("ana", Role.ANALYST)
    real = store.new_token("ana")
    assert store.by_token(token) is None
    assert store.by_token(real[len(TOKEN_PREFIX):]) is None  # the prefix is required
    assert store.by_token(real + "x") is None


def test_a_new_token_retires_the_old_one_and_ends_sessions(store, db):
    store.add("opal", Role.OPERATOR)
    old = store.new_token("opal")
    user = store.by_token(old)
    session_id, csrf = store.open_session(user)
    assert store.session(session_id).csrf == csrf
    new = store.new_token("opal")
    assert store.by_token(old) is None
    assert store.by_token(new) == User("opal", Role.OPERATOR)
    assert store.session(session_id) is None
    assert _table(db, sessions) == []


def test_sessions_are_stored_hashed_with_their_csrf_token(store, db):
    store.add("vic", Role.VIEWER)
    session_id, csrf = store.open_session(User("vic", Role.VIEWER))
    assert session_id != csrf and len(session_id) >= 43 and len(csrf) >= 32
    [row] = _table(db, sessions)
    assert row["id_hash"] == _sha256(session_id)
    assert session_id not in {str(v) for v in row.values()}
    assert row["csrf"] == csrf and row["user"] == "vic"
    assert store.session(session_id + "x") is None
    store.close_session(session_id)
    assert store.session(session_id) is None


def _at(monkeypatch, seconds: float) -> None:
    """Move the users module's clock (and only its clock)."""
    monkeypatch.setattr(users_module, "time", types.SimpleNamespace(time=lambda: seconds))


def test_sessions_expire(store, db, monkeypatch):
    store.add("vic", Role.VIEWER)
    _at(monkeypatch, 1_000_000.0)
    session_id, _ = store.open_session(User("vic", Role.VIEWER))
    _at(monkeypatch, 1_000_000.0 + SESSION_SECONDS - 1)
    assert store.session(session_id) is not None
    _at(monkeypatch, 1_000_000.0 + SESSION_SECONDS + 1)
    assert store.session(session_id) is None
    store.open_session(User("vic", Role.VIEWER))  # opening one sweeps the expired ones
    assert len(_table(db, sessions)) == 1


def test_a_role_change_applies_to_open_sessions_and_removal_ends_them(store):
    store.add("sam", Role.VIEWER)
    token = store.new_token("sam")
    session_id, _ = store.open_session(store.by_token(token))
    store.set_role("sam", Role.AUDITOR)
    assert store.session(session_id).user.role is Role.AUDITOR
    assert store.by_token(token).role is Role.AUDITOR
    store.remove("sam")
    assert store.session(session_id) is None
    assert store.by_token(token) is None


@pytest.mark.parametrize("name", ["ana", "a", "A.b_c-d@example.org", "x" * 64, "7"])
def test_valid_names(store, name):
    store.add(name, Role.VIEWER)
    assert [n for n, _, _ in store.list()] == [name]


@pytest.mark.parametrize("name", ["", "-ana", ".ana", "_ana", "@ana", "a b", "ana\n",
                                  "x" * 65, "an/a", "ana;drop", "émile", "ana:1", "a\x00"])
def test_invalid_names_are_refused(store, name):
    with pytest.raises(ConduitError, match="user name"):
        store.add(name, Role.VIEWER)
    assert store.list() == []


def test_duplicates_and_unknown_users_are_refused(store):
    store.add("ana", Role.ANALYST)
    with pytest.raises(ConduitError, match="already exists"):
        store.add("ana", Role.VIEWER)
    with pytest.raises(ConduitError, match="no user bob; add it first"):
        store.new_token("bob")
    with pytest.raises(ConduitError, match="no user bob"):
        store.set_role("bob", Role.ADMIN)
    with pytest.raises(ConduitError, match="no user bob"):
        store.remove("bob")


def test_same_secret():
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("abc", "")
