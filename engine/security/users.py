"""Users, API tokens and browser sessions.

Tokens are 256-bit random secrets shown once and stored only as a SHA-256 hash (a slow
password hash buys nothing for secrets this long). A session is a second random secret
in an HttpOnly, SameSite=Strict cookie, paired with a CSRF token that state-changing
requests must echo in a header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import msgspec
import sqlalchemy as sa

from engine.errors import ConduitError
from engine.security.roles import Role
from engine.store.database import reader
from engine.store.schema import sessions, users

TOKEN_PREFIX = "cdt_"
SESSION_SECONDS = 8 * 3600
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")


class User(msgspec.Struct, frozen=True):
    name: str
    role: Role


class Session(msgspec.Struct, frozen=True):
    user: User
    csrf: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UserStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._reader = reader(engine)  # lookups on every request: never behind the writer

    def add(self, name: str, role: Role) -> None:
        if not _NAME.match(name):
            raise ConduitError("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
        try:
            with self._engine.begin() as conn:
                if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                    raise ConduitError(f"user {name} already exists")
                conn.execute(users.insert().values(name=name, role=role.value,
                                                   created_at=time.time()))
        except sa.exc.IntegrityError:  # another process added it since the look above
            raise ConduitError(f"user {name} already exists") from None

    def set_role(self, name: str, role: Role) -> None:
        with self._engine.begin() as conn:
            if not conn.execute(users.update().where(users.c.name == name)
                                .values(role=role.value)).rowcount:
                raise ConduitError(f"no user {name}")

    def remove(self, name: str) -> None:
        with self._engine.begin() as conn:
            if not conn.execute(users.delete().where(users.c.name == name)).rowcount:
                raise ConduitError(f"no user {name}")
            conn.execute(sessions.delete().where(sessions.c.user == name))

    def new_token(self, name: str) -> str:
        """A fresh token for `name`, replacing any earlier one; returned this once only."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            if not conn.execute(users.update().where(users.c.name == name).values(
                    token_hash=_digest(token), token_created_at=time.time())).rowcount:
                raise ConduitError(f"no user {name}; add it first with: conduit users add "
                                   f"{name} --role viewer")
            conn.execute(sessions.delete().where(sessions.c.user == name))
        return token

    def list(self) -> list[tuple[str, str, bool]]:
        """(name, role, has a token) for every user."""
        with self._reader.connect() as conn:
            rows = conn.execute(sa.select(users.c.name, users.c.role, users.c.token_hash)
                                .order_by(users.c.name)).all()
        return [(r.name, r.role, r.token_hash is not None) for r in rows]

    def by_token(self, token: str) -> User | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(users.c.name, users.c.role)
                               .where(users.c.token_hash == _digest(token))).first()
        return User(row.name, Role(row.role)) if row else None

    def sign_in(self, token: str) -> tuple[User, str, str] | None:
        """The user holding `token` and a new session of theirs: (user, cookie value, CSRF
        token); None for a token nobody holds. One transaction with the user's row
        locked: a token replacement or a removal by another process at the same moment
        either commits first (then the token matches nobody) or waits for this one and
        then ends this session with the others."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(users.c.name, users.c.role)
                               .where(users.c.token_hash == _digest(token))
                               .with_for_update()).first()
            if row is None:
                return None
            user = User(row.name, Role(row.role))
            return (user, *_new_session(conn, user.name))

    def open_session(self, user: User) -> tuple[str, str]:
        """A new session for `user`: (cookie value, CSRF token); refused once the user is
        removed (the row is locked, as in sign_in)."""
        with self._engine.begin() as conn:
            if conn.execute(sa.select(users.c.name).where(users.c.name == user.name)
                            .with_for_update()).first() is None:
                raise ConduitError(f"no user {user.name}")
            return _new_session(conn, user.name)

    def session(self, session_id: str) -> Session | None:
        with self._reader.connect() as conn:
            row = conn.execute(
                sa.select(users.c.name, users.c.role, sessions.c.csrf)
                .select_from(sessions.join(users, users.c.name == sessions.c.user))
                .where(sessions.c.id_hash == _digest(session_id),
                       sessions.c.expires_at > time.time())
            ).first()
        return Session(User(row.name, Role(row.role)), row.csrf) if row else None

    def close_session(self, session_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.id_hash == _digest(session_id)))


def _new_session(conn: sa.Connection, name: str) -> tuple[str, str]:
    """A session of user `name` in the caller's transaction (expired ones swept)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = time.time()
    conn.execute(sessions.delete().where(sessions.c.expires_at < now))
    conn.execute(sessions.insert().values(id_hash=_digest(session_id), user=name, csrf=csrf,
                                          expires_at=now + SESSION_SECONDS))
    return session_id, csrf


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
