"""Bearer JWTs from an OAuth2 issuer: signature against the issuer's JWKS, iss, aud,
exp/nbf, and the SMART scopes that say what the client may write.

The JWKS is fetched once and cached; a token signed with a key id we do not hold makes
us fetch it again (the issuer rotated its keys), at most once per `refetch_interval`, so
a stream of tokens with made-up key ids cannot turn us into a load generator against the
issuer. Reasons in `TokenRejected` are PHI-free and never quote the token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiohttp
import msgspec
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
LEEWAY = 60  # seconds of clock skew allowed on exp and nbf
_MAX_JWKS = 1024 * 1024


class TokenRejected(Exception):
    """The token does not authenticate anyone; the text says why, for the audit trail."""


class KeysUnavailable(Exception):
    """The issuer's keys cannot be read right now: our problem, not the client's token."""


class Claims(msgspec.Struct, frozen=True):
    subject: str  # client_id, else sub: who the audit trail names
    scopes: frozenset[str]


class JwksKeys:
    """The issuer's public keys, from a URL (cached, refetched on an unknown kid) or a
    file (read once; a rotated file needs a channel restart)."""

    def __init__(self, url: str | None = None, file: str | None = None,
                 refetch_interval: float = 60.0) -> None:
        self.url, self.file = url, file
        self.refetch_interval = refetch_interval
        self.fetches = 0
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, refresh: bool = False) -> KeySet:
        """The key set; with `refresh`, fetched again unless that was done too recently."""
        async with self._lock:
            due = time.monotonic() - self._fetched_at >= self.refetch_interval
            if self._keys is None or (refresh and due and self.url):
                self._keys = await self._load()
                self._fetched_at = time.monotonic()
            return self._keys

    async def _load(self) -> KeySet:
        if self.file:
            try:
                data = await asyncio.to_thread(Path(self.file).read_bytes)
            except OSError as exc:
                raise KeysUnavailable(f"the JWKS file cannot be read ({exc.strerror})"
                                      ) from None
        else:
            assert self.url is not None
            self.fetches += 1
            timeout = aiohttp.ClientTimeout(total=10)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as http, \
                        http.get(self.url, headers={"Accept": "application/json"}) as resp:
                    if resp.status != 200:
                        raise KeysUnavailable(f"the issuer's JWKS answered HTTP {resp.status}")
                    data = await resp.content.read(_MAX_JWKS + 1)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise KeysUnavailable(f"the issuer's JWKS is unreachable "
                                    f"({type(exc).__name__})") from None
        try:
            return KeySet.import_key_set(json.loads(data))
        except (ValueError, TypeError, KeyError, JoseError):
            raise KeysUnavailable("the issuer's JWKS is not a readable key set") from None


class JwtVerifier:
    def __init__(self, keys: JwksKeys, issuer: str, audience: str,
                 required_scopes: Sequence[str] = ()) -> None:
        self.keys = keys
        self.required_scopes = frozenset(required_scopes)
        self._claims = jwt.JWTClaimsRegistry(
            leeway=LEEWAY, iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience}, exp={"essential": True})

    async def verify(self, token: str) -> Claims:
        """The token's client and scopes, or TokenRejected saying why not (KeysUnavailable
        when the issuer's keys cannot be read)."""
        try:
            try:
                decoded = jwt.decode(token, await self.keys.get(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # maybe the issuer rotated: look once more
                decoded = jwt.decode(token, await self.keys.get(refresh=True),
                                     algorithms=ALGORITHMS)
            self._claims.validate(decoded.claims)
        except InvalidKeyIdError:
            raise TokenRejected("the token is signed with a key the issuer does not publish"
                                ) from None
        except ExpiredTokenError:
            raise TokenRejected("the token has expired") from None
        except ClaimError as exc:  # "Invalid claim: 'aud'": the claim's name, no value
            raise TokenRejected(f"the token is not valid ({exc.description})") from None
        except JoseError as exc:
            raise TokenRejected(f"the token is not valid ({exc.error})") from None
        except (ValueError, TypeError):
            raise TokenRejected("the token is not a JWT") from None
        claims = decoded.claims
        subject = claims.get("client_id") or claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("the token names no client (client_id or sub)")
        scopes = _scopes(claims)
        missing = self.required_scopes - scopes
        if missing:
            raise TokenRejected(f"the token lacks the scope(s) {', '.join(sorted(missing))}")
        return Claims(subject[:128], scopes)


def _scopes(claims: dict) -> frozenset[str]:
    """`scope` as a space-separated string (RFC 8693, SMART) or `scp` as a list."""
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


# SMART v2 permission letters for what a client asks of us.
CREATE, UPDATE = "c", "u"
_CONTEXTS = ("system", "user")  # patient/ scopes need a compartment check we do not make


def grants(scopes: Iterable[str], resource_type: str, action: str) -> bool:
    """True when one of the SMART scopes allows `action` (c or u) on `resource_type`:
    v1 `system/Patient.write`, `user/*.*`; v2 `system/Patient.cu`, `user/*.c`."""
    for scope in scopes:
        context, _, rest = scope.partition("/")
        kind, _, permission = rest.partition(".")
        if context not in _CONTEXTS or kind not in (resource_type, "*"):
            continue
        if "?" in permission:  # v2 narrowing by query: we cannot check it, so no grant
            continue
        if permission in ("write", "*"):
            return True
        if permission and set(permission) <= set("cruds") and action in permission:
            return True
    return False
