"""How the engine proves who it is to an HTTP or FHIR server: a static bearer token,
HTTP basic, or SMART Backend Services (OAuth2 client credentials with a signed JWT).

Secrets are named, never written: YAML says which environment variable holds a token or
password, or which file holds a private key, so channel files can live in git. Nothing
here logs or returns a secret in an error; reasons name variables, files and OAuth
error codes only.

An authenticator never sleeps or retries: a token endpoint that cannot be reached, or a
variable that is not set, becomes `AuthUnavailable`, which the destination answers with
Retry so the queue's RetryPolicy decides, like any other delivery problem. The problem
is the engine's set-up, not the message, so it is not a reason to dead-letter at once.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import aiohttp
import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from msgspec import Meta

from engine.errors import ConduitError

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ASSERTION_LIFETIME = 300.0  # seconds: SMART says an assertion lives at most five minutes
DEFAULT_EXPIRES_IN = 300.0  # when a token endpoint does not say how long a token lasts
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class _AuthBase(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True,
                frozen=True):
    """How a destination authenticates to its server."""


class BearerAuthConfig(_AuthBase, tag="bearer"):
    """A static token sent as `Authorization: Bearer <token>`."""

    token_env: Annotated[str, Meta(pattern=ENV_NAME, description=(
        "name of the environment variable holding the token (never the token itself)"))]


class BasicAuthConfig(_AuthBase, tag="basic"):
    """HTTP basic: a user name and a password from the environment."""

    username: Annotated[str, Meta(min_length=1, description="the user name")]
    password_env: Annotated[str, Meta(pattern=ENV_NAME, description=(
        "name of the environment variable holding the password (never the password)"))]


class SmartBackendAuthConfig(_AuthBase, tag="smart-backend"):
    """SMART Backend Services: client credentials with a signed JWT assertion."""

    client_id: Annotated[str, Meta(min_length=1, description=(
        "the client id the server registered for the engine"))]
    token_url: Annotated[str, Meta(pattern=r"^https?://", description=(
        "the server's OAuth2 token endpoint (from its .well-known/smart-configuration)"))]
    private_key_file: Annotated[str, Meta(min_length=1, description=(
        "file with the engine's private key, PEM or JWK JSON; RSA (RS384) or EC P-384 "
        "(ES384); its public half is registered with the server (keep it mode 0600)"))]
    kid: Annotated[str, Meta(min_length=1, description=(
        "the key id the server knows the public key by (the JWT header's kid)"))]
    scope: Annotated[str, Meta(min_length=1, description=(
        "space-separated scopes to ask for, such as system/*.write or "
        "system/Patient.write system/Encounter.write"))] = "system/*.write"
    algorithm: Annotated[Literal["RS384", "ES384"] | None, Meta(description=(
        "signature algorithm; by default RS384 for an RSA key, ES384 for an EC key"))] = None


AuthConfig = BearerAuthConfig | BasicAuthConfig | SmartBackendAuthConfig


class AuthUnavailable(ConduitError):
    """No credentials to send right now (variable unset, key unreadable, token endpoint
    down or refusing); the text names what to fix and never holds a secret."""


class Authenticator(Protocol):
    async def authorization(self) -> str | None:
        """The Authorization header value for the next request (None: send none).
        Raises AuthUnavailable."""
        ...

    def refused(self) -> bool:
        """The server answered 401. True when credentials were dropped and the next
        attempt will present new ones (so retrying may help); False when it would not."""
        ...

    def accepted(self) -> None:
        """The server answered something other than 401."""
        ...

    def problem(self) -> str | None:
        """What keeps the credentials from being made (an unset variable, an unreadable
        key), checked without asking any server; None when nothing does."""
        ...

    async def close(self) -> None: ...


class StaticAuth:
    """A header made once from environment variables (bearer and basic), or none at
    all. A 401 is final: the same credentials would be refused again."""

    def __init__(self, make: Callable[[], str | None]) -> None:
        self._make = make
        self._value: str | None = None

    async def authorization(self) -> str | None:
        if self._value is None:
            self._value = self._make()
        return self._value

    def problem(self) -> str | None:
        try:
            self._make()
        except AuthUnavailable as exc:
            return str(exc)
        return None

    def refused(self) -> bool:
        return False

    def accepted(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise AuthUnavailable(f"environment variable {name} is not set")
    return value


def bearer_header(token_env: str) -> str:
    return f"Bearer {_env(token_env)}"


def basic_header(username: str, password_env: str) -> str:
    pair = f"{username}:{_env(password_env)}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"


class _TokenResponse(msgspec.Struct):
    access_token: str = ""
    token_type: str = ""
    expires_in: Any = None  # a number by RFC 6749; some servers send it as a string
    error: str = ""


_decode_token = msgspec.json.Decoder(_TokenResponse).decode


def _read_private_key(data: bytes) -> RSAKey | ECKey | None:
    """An RSA or EC private key from PEM or JWK JSON; the key type is named explicitly
    (never guessed), so a stray file is not taken for a symmetric key."""
    try:
        if data.lstrip().startswith(b"{"):
            jwk = msgspec.json.decode(data)
            kind = {"RSA": RSAKey, "EC": ECKey}.get(jwk.get("kty") if isinstance(jwk, dict)
                                                    else None)
            key = kind.import_key(jwk) if kind else None
        else:
            key = None
            for kind in (RSAKey, ECKey):
                try:
                    key = kind.import_key(data)
                    break
                except (JoseError, ValueError, TypeError):
                    continue
    except (JoseError, ValueError, TypeError, msgspec.DecodeError):
        return None
    return key if key is not None and key.is_private else None


class SmartBackendAuth:
    """Fetches access tokens with a signed assertion and caches each until shortly
    before it expires; one worker sends at a time, and a lock keeps it to one fetch."""

    def __init__(self, config: SmartBackendAuthConfig, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 tls: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._tls = tls  # the destination's CA and client certificate, for the endpoint too
        self._timeout = timeout
        self._clock = clock
        self._key: RSAKey | ECKey | None = None
        self._alg = config.algorithm or ""
        self._token: str | None = None
        self._expires_at = 0.0  # by self._clock
        self._dropped = False  # a 401 already cost us a token since the last success
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.fetched = 0  # tokens fetched, for tests and the curious

    # -- the assertion ----------------------------------------------------------------

    def problem(self) -> str | None:
        try:
            self._key = self._key or self._load_key()
        except AuthUnavailable as exc:
            return str(exc)
        return None

    def _load_key(self) -> RSAKey | ECKey:
        path = Path(self.config.private_key_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise AuthUnavailable(f"cannot read the private key file {path}: "
                                  f"{exc.strerror or type(exc).__name__}") from None
        key = _read_private_key(data)
        if key is None:
            raise AuthUnavailable(f"{path} holds no RSA or EC private key that can be read "
                                  "(expected PEM or JWK JSON)")
        wanted = "RS384" if isinstance(key, RSAKey) else "ES384"
        if isinstance(key, ECKey) and key.curve_name != "P-384":
            raise AuthUnavailable(f"{path}: ES384 needs an EC key on curve P-384, "
                                  f"not {key.curve_name}")
        if self._alg and self._alg != wanted:
            raise AuthUnavailable(f"{path} holds a key for {wanted}, but algorithm is "
                                  f"{self._alg}")
        self._alg = wanted
        return key

    def assertion(self) -> str:
        """A fresh client assertion: iss = sub = client id, aud = the token endpoint,
        five minutes to live, a jti never used before."""
        if self._key is None:
            self._key = self._load_key()
        now = int(time.time())
        claims = {"iss": self.config.client_id, "sub": self.config.client_id,
                  "aud": self.config.token_url, "iat": now,
                  "exp": now + int(ASSERTION_LIFETIME), "jti": uuid.uuid4().hex}
        header = {"alg": self._alg, "kid": self.config.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[self._alg])

    # -- tokens -----------------------------------------------------------------------

    async def authorization(self) -> str | None:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._token = None
                token, lifetime = await self._fetch()
                # Refresh shortly before the server's own deadline: a minute early, or
                # half the lifetime of a token that lives less than two minutes.
                margin = min(60.0, lifetime / 2)
                self._token, self._expires_at = token, self._clock() + lifetime - margin
            return f"Bearer {self._token}"

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials",
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.assertion(), "scope": self.config.scope}
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(ssl=self._tls if self._tls else True))
        where = f"token endpoint {self.config.token_url}"
        try:
            async with self._session.post(self.config.token_url, data=form,
                                          headers={"Accept": "application/json"}) as resp:
                body = await resp.read()
                status = resp.status
        except TimeoutError:
            raise AuthUnavailable(f"{where}: no answer within the timeout") from None
        except aiohttp.ClientError as exc:
            raise AuthUnavailable(f"{where}: connection failed: {type(exc).__name__}") from None
        try:
            answer = _decode_token(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            answer = _TokenResponse()
        if status != 200 or not answer.access_token:
            # `error` is an OAuth2 code such as invalid_client; the description is left
            # out as free text of unknown content.
            code = answer.error if answer.error.replace("_", "").isalpha() else ""
            raise AuthUnavailable(f"{where} answered HTTP {status}"
                                  + (f" {code}" if code else "")
                                  + ("" if status != 200 else ": no access_token"))
        if answer.token_type.lower() != "bearer":
            raise AuthUnavailable(f"{where} issued a {answer.token_type or 'untyped'} "
                                  "token; SMART needs a bearer token")
        self.fetched += 1
        return answer.access_token, _lifetime(answer.expires_in)

    def refused(self) -> bool:
        """Drop the cached token once per run of 401s: a server may revoke a token
        before its time. A second 401 with a fresh token is the server's final word."""
        if self._dropped:
            return False
        self._dropped = True
        self._token = None
        return True

    def accepted(self) -> None:
        self._dropped = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _lifetime(expires_in: Any) -> float:
    """Seconds a token lives: the endpoint's expires_in, or DEFAULT_EXPIRES_IN when it
    gives none that can be read."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN
    return seconds if 0 < seconds < 1e9 else DEFAULT_EXPIRES_IN


def authenticator_for(config: AuthConfig | None, timeout: float = 30.0, *,
                      tls: ssl.SSLContext | None = None) -> Authenticator:
    """The authenticator a destination's `auth:` setting asks for; `tls` is the
    destination's context, so a token endpoint behind the same private CA is trusted."""
    if isinstance(config, BearerAuthConfig):
        return StaticAuth(lambda: bearer_header(config.token_env))
    if isinstance(config, BasicAuthConfig):
        return StaticAuth(lambda: basic_header(config.username, config.password_env))
    if isinstance(config, SmartBackendAuthConfig):
        return SmartBackendAuth(config, timeout, tls=tls)
    return StaticAuth(lambda: None)
