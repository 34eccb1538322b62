"""Who is posting to a FHIR source, and may they: the engine's users, an OAuth2 issuer's
JWTs, or (only when a channel says so) nobody.

Authentication answers 401 (no or bad token) before the body is read; authorization is
per resource type and interaction once the body says what is asked (403). The source
audits each refusal; the reasons here are PHI-free and never quote the token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
import sqlalchemy as sa
from msgspec import Meta

from engine.security.jwt import (
    CREATE,
    JwksKeys,
    JwtVerifier,
    KeysUnavailable,
    TokenRejected,
    grants,
)
from engine.security.roles import Permission, allows


class UsersAuth(msgspec.Struct, tag="users", tag_field="type", forbid_unknown_fields=True,
                frozen=True):
    """Bearer tokens of the engine's users (conduit users token NAME) whose role may
    submit messages: integration (or admin)."""


class JwtAuth(msgspec.Struct, tag="jwt", tag_field="type", forbid_unknown_fields=True,
              frozen=True):
    """Bearer JWTs of an OAuth2 issuer (SMART backend services): signature by the
    issuer's JWKS, iss, aud, exp/nbf, and SMART write scopes per resource type."""

    issuer: Annotated[str, Meta(description="the tokens' iss, exactly")]
    audience: Annotated[str, Meta(description="the tokens' aud: this endpoint's URL or "
                                              "the name the issuer gives it")]
    jwks_url: Annotated[
        str | None, Meta(description="the issuer's JWKS; cached, fetched again (at most once "
                                     "a minute) for an unknown key id")
    ] = None
    jwks_file: Annotated[str | None, Meta(description="a JWKS file instead of jwks_url")] = None
    scopes: Annotated[
        list[str], Meta(description="scopes every token must also carry, beside the SMART "
                                    "write scope of each resource type it sends")
    ] = []

    def __post_init__(self) -> None:
        if bool(self.jwks_url) == bool(self.jwks_file):
            raise ValueError("give exactly one of jwks_url and jwks_file")


class NoAuth(msgspec.Struct, tag="none", tag_field="type", forbid_unknown_fields=True,
             frozen=True):
    """Anyone who can reach the port may post: for a trusted network only."""


AuthConfig = UsersAuth | JwtAuth | NoAuth


class Refused(Exception):
    """A refusal: HTTP status, FHIR issue type, and the PHI-free reason for the audit."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


class Client(msgspec.Struct, frozen=True):
    name: str  # as the audit trail names it: user:ana, jwt:<client_id>, anonymous
    scopes: frozenset[str] | None = None  # None: may send any type this source accepts


class Authenticator:
    def __init__(self, config: AuthConfig, users: object = None) -> None:
        self.kind: str = type(config).__struct_config__.tag  # users, jwt or none
        self._users = users
        self._jwt: JwtVerifier | None = None
        if isinstance(config, JwtAuth):
            self._jwt = JwtVerifier(JwksKeys(config.jwks_url, config.jwks_file),
                                    config.issuer, config.audience, config.scopes)

    async def authenticate(self, authorization: str) -> Client:
        """The client behind an Authorization header, or Refused (401, or 403 for a user
        whose role may not submit, or 503 when the issuer's keys or the engine's users
        cannot be read)."""
        if self.kind == "none":
            return Client("anonymous")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "login", "no bearer token")
        if self._jwt is not None:
            try:
                claims = await self._jwt.verify(token)
            except KeysUnavailable as exc:
                raise Refused(503, "transient", str(exc)) from None
            except TokenRejected as exc:
                raise Refused(401, "login", str(exc)) from None
            return Client(f"jwt:{claims.subject}", claims.scopes)
        if self._users is None:
            raise Refused(503, "transient", "the engine's users are not available")
        try:
            user = await asyncio.to_thread(self._users.by_token, token)  # type: ignore[attr-defined]
        except sa.exc.SQLAlchemyError:  # the store is away: the sender must try again
            raise Refused(503, "transient", "the engine's users cannot be read right now "
                          "(its store is unavailable)") from None
        if user is None:
            raise Refused(401, "login", "unknown or revoked token")
        if not allows(user.role, Permission.SUBMIT):
            raise Refused(403, "forbidden", f"role {user.role.value} may not submit messages")
        return Client(f"user:{user.name}")

    @staticmethod
    def authorize(client: Client, wants: list[tuple[str, str]]) -> None:
        """Refused (403) unless the client's scopes allow each (resource type, action)."""
        if client.scopes is None:
            return
        for kind, action in wants:
            if not grants(client.scopes, kind, action):
                verb = "create" if action == CREATE else "update"
                raise Refused(403, "forbidden",
                              f"the token's scopes do not allow {verb} of {kind}")
