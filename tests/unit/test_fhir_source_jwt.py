"""JWT checks of the FHIR source: tokens signed here with joserfc, the issuer's JWKS served
by a real aiohttp server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from engine.connectors.fhir_source_auth import Authenticator, JwtAuth, Refused
from engine.security.jwt import JwksKeys, JwtVerifier, TokenRejected

ISSUER = "https://auth.example.org"
AUDIENCE = "https://conduit.example.org/fhir"


class Issuer:
    """An OAuth2 issuer's JWKS endpoint that counts how often it is asked."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "k1"})]
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Issuer:
        app = web.Application()
        app.router.add_get("/jwks.json", self._jwks)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/jwks.json"
        return self

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(KeySet(self.keys).as_dict(private=False))

    def token(self, key: RSAKey | None = None, *, kid: str = "k1", **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ehr-backend", "exp": now + 300,
                "iat": now, "scope": "system/Patient.write", **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": kid}, body, key or self.keys[0])


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    server = await Issuer().start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


def verifier(issuer: Issuer, **kwargs) -> JwtVerifier:
    return JwtVerifier(JwksKeys(url=issuer.url), ISSUER, AUDIENCE, **kwargs)


async def test_a_good_token_names_its_client_and_scopes(issuer):
    claims = await verifier(issuer).verify(issuer.token(client_id="ehr-7"))
    assert claims.subject == "ehr-7"
    assert claims.scopes == {"system/Patient.write"}
    claims = await verifier(issuer).verify(issuer.token(scope=None, scp=["a", "b"]))
    assert claims.subject == "ehr-backend" and claims.scopes == {"a", "b"}


@pytest.mark.parametrize(("claims", "why"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"aud": "https://someone-else.example.org"}, "aud"),
    ({"iss": "https://evil.example.org"}, "iss"),
    ({"exp": None}, "exp"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"sub": None}, "names no client"),
])
async def test_bad_claims_are_rejected(issuer, claims, why):
    with pytest.raises(TokenRejected, match=why):
        await verifier(issuer).verify(issuer.token(**claims))


async def test_small_clock_skew_is_tolerated(issuer):
    await verifier(issuer).verify(issuer.token(exp=int(time.time()) - 20))


async def test_a_token_signed_with_another_key_is_rejected(issuer):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(TokenRejected, match="bad_signature"):
        await verifier(issuer).verify(issuer.token(stranger))


async def test_garbage_is_rejected_without_quoting_it(issuer):
    with pytest.raises(TokenRejected) as caught:
        await verifier(issuer).verify("not.a.jwt-secret-token-text")
    assert "secret" not in str(caught.value)


async def test_unknown_kid_fetches_the_jwks_again_but_not_for_every_token(issuer):
    check = verifier(issuer)
    await check.verify(issuer.token())
    assert issuer.requests == 1
    await check.verify(issuer.token())
    assert issuer.requests == 1  # cached
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    check.keys.refetch_interval = 0  # as if a minute had passed
    issuer.keys.append(rotated)
    await check.verify(issuer.token(rotated, kid="k2"))
    assert issuer.requests == 2
    check.keys.refetch_interval = 3600
    unknown = RSAKey.generate_key(2048, parameters={"kid": "k9"})
    for _ in range(5):
        with pytest.raises(TokenRejected, match="key the issuer does not publish"):
            await check.verify(issuer.token(unknown, kid="k9"))
    assert issuer.requests == 2  # a flood of made-up key ids costs the issuer nothing


async def test_required_scopes(issuer):
    check = verifier(issuer, required_scopes=["conduit/submit"])
    with pytest.raises(TokenRejected, match="conduit/submit"):
        await check.verify(issuer.token())
    await check.verify(issuer.token(scope="system/Patient.write conduit/submit"))


async def test_authenticator_answers_401_403_and_503(issuer, tmp_path):
    auth = Authenticator(JwtAuth(issuer=ISSUER, audience=AUDIENCE, jwks_url=issuer.url))
    client = await auth.authenticate(f"Bearer {issuer.token(scope='system/Patient.c')}")
    assert client.name == "jwt:ehr-backend"
    auth.authorize(client, [("Patient", "c")])
    with pytest.raises(Refused) as caught:
        auth.authorize(client, [("Patient", "u")])
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    for header in ("", "Basic dXNlcjpwYXNz", "Bearer ", f"Bearer {issuer.token(aud='x')}"):
        with pytest.raises(Refused) as caught:
            await auth.authenticate(header)
        assert (caught.value.status, caught.value.code) == (401, "login")
    down = Authenticator(JwtAuth(issuer=ISSUER, audience=AUDIENCE,
                                 jwks_file=str(tmp_path / "missing.json")))
    with pytest.raises(Refused) as caught:
        await down.authenticate(f"Bearer {issuer.token()}")
    assert caught.value.status == 503


def test_jwt_auth_needs_exactly_one_key_source():
    with pytest.raises(ValueError, match="exactly one"):
        JwtAuth(issuer=ISSUER, audience=AUDIENCE)
