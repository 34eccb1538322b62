"""How the FHIR destination proves who it is: static bearer, basic, and SMART Backend
Services against a real token endpoint that verifies the signed client assertion with
the public key registered for the engine, and issues tokens that expire."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest
from joserfc.jwk import ECKey, RSAKey

from tests.harness import adt, exchange, free_port
from tests.integration.test_fhir_destination import events, patient_channel

CLIENT = "conduit-engine"
RETRY = "{max_attempts: 4, initial_delay: 20ms, max_delay: 50ms, jitter: 0}"


async def start(harness, fhir, auth: str):
    port = free_port()
    engine = await harness.start({"adt": patient_channel(
        port, fhir.url, f", interaction: conditional-create, auth: {auth}", retry=RETRY)})
    return engine, port


async def send(harness, engine, port, count: int = 1, start_at: int = 0) -> None:
    """Send `count` ADT messages and wait until each is sent or dead-lettered."""
    before = len([e for e in events(engine) if e["kind"] in ("sent", "dead-lettered")])
    await exchange(port, [adt(f"A{i}", f"MRN{i}") for i in range(start_at, start_at + count)])
    await harness.settle(lambda: len([e for e in events(engine) if e["kind"] in (
        "sent", "dead-lettered")]) == before + count)


def kinds(engine) -> list[str]:
    return [e["kind"] for e in events(engine) if e["kind"] != "queued"]


# -- static credentials ------------------------------------------------------------------

async def test_bearer_token_from_the_environment(harness, fhir, monkeypatch):
    monkeypatch.setenv("EHR_TOKEN", "s3cr3t-token")
    fhir.accept = {"Bearer s3cr3t-token"}
    engine, port = await start(harness, fhir, "{type: bearer, token_env: EHR_TOKEN}")
    await send(harness, engine, port, 2)
    assert kinds(engine) == ["sent", "sent"]
    assert {r.headers["Authorization"] for r in fhir.requests} == {"Bearer s3cr3t-token"}


async def test_an_unset_token_variable_is_retried_not_dead_lettered(harness, fhir,
                                                                    monkeypatch, caplog):
    monkeypatch.delenv("EHR_TOKEN", raising=False)
    fhir.accept = {"Bearer late"}
    caplog.set_level(logging.WARNING, logger="conduit.http")
    engine, port = await start(harness, fhir, "{type: bearer, token_env: EHR_TOKEN}")
    # said at start, before any message waits on it
    await harness.settle(lambda: "environment variable EHR_TOKEN is not set" in caplog.text)
    await exchange(port, [adt("A0", "MRN0")])
    await harness.settle(lambda: len(events(engine, "retried")) >= 1)
    assert events(engine, "retried")[0]["reason"] == (
        "authentication: environment variable EHR_TOKEN is not set")
    assert fhir.requests == []  # nothing went out without credentials


async def test_basic_auth_and_a_refused_password_is_a_dead_letter(harness, fhir,
                                                                  monkeypatch):
    monkeypatch.setenv("EHR_PASSWORD", "pa:ss word")
    good = "Basic " + base64.b64encode(b"conduit:pa:ss word").decode()
    fhir.accept = {good}
    engine, port = await start(harness, fhir,
                               "{type: basic, username: conduit, password_env: EHR_PASSWORD}")
    await send(harness, engine, port)
    assert fhir.received[0].headers["Authorization"] == good
    fhir.accept = {"Basic other"}  # the server's password changed
    await send(harness, engine, port, start_at=1)
    assert kinds(engine) == ["sent", "dead-lettered"]
    assert events(engine, "dead-lettered")[0]["reason"].startswith("HTTP 401 Unauthorized")


# -- SMART backend services --------------------------------------------------------------

@pytest.fixture(params=["RS384", "ES384"])
def smart_key(request, tmp_path, fhir):
    """A private key file for the engine (PEM for RSA, JWK JSON for EC) whose public half
    the server has registered for CLIENT; the auth setting that uses it."""
    if request.param == "RS384":
        key = RSAKey.generate_key(2048)
        path = tmp_path / "engine-key.pem"
        path.write_bytes(key.as_pem(private=True))
    else:
        key = ECKey.generate_key("P-384")
        path = tmp_path / "engine-key.jwk"
        path.write_text(json.dumps(key.as_dict(private=True)))
    path.chmod(0o600)
    public = type(key).import_key(key.as_dict(private=False))
    fhir.client_keys[CLIENT] = ("key-1", public)
    fhir.accept = set()  # only tokens the endpoint issued
    auth = ("{type: smart-backend, client_id: " + CLIENT + f", token_url: '{fhir.token_url}', "
            f"private_key_file: '{path}', kid: key-1, scope: system/Patient.write}}")
    return request.param, auth


async def test_smart_token_is_fetched_with_a_signed_assertion_and_reused(
        harness, fhir, smart_key):
    alg, auth = smart_key
    engine, port = await start(harness, fhir, auth)
    await send(harness, engine, port, 3)
    assert kinds(engine) == ["sent"] * 3
    assert fhir.tokens_issued == ["tok1"]  # one token for all three
    assert {r.headers["Authorization"] for r in fhir.requests} == {"Bearer tok1"}
    [claims] = fhir.token_requests
    assert claims["alg"] == alg and claims["scope"] == "system/Patient.write"
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["aud"] == fhir.token_url and claims["exp"] - claims["iat"] <= 300


async def test_smart_token_is_refreshed_before_it_expires(harness, fhir, smart_key):
    fhir.expires_in = 1  # the engine keeps it for half its life: 0.5 s
    engine, port = await start(harness, fhir, smart_key[1])
    await send(harness, engine, port)
    await asyncio.sleep(0.6)
    await send(harness, engine, port, start_at=1)
    assert kinds(engine) == ["sent", "sent"]
    assert [r.headers["Authorization"] for r in fhir.requests] == ["Bearer tok1",
                                                                   "Bearer tok2"]
    assert len({c["jti"] for c in fhir.token_requests}) == 2  # a fresh assertion each


async def test_a_revoked_token_is_fetched_again_once(harness, fhir, smart_key):
    engine, port = await start(harness, fhir, smart_key[1])
    await send(harness, engine, port)
    fhir.revoke("tok1")
    await send(harness, engine, port, start_at=1)
    assert kinds(engine) == ["sent", "retried", "sent"]
    assert events(engine, "retried")[0]["code"] == "401"
    assert [r.headers["Authorization"] for r in fhir.requests] == [
        "Bearer tok1", "Bearer tok1", "Bearer tok2"]
    # A server that refuses the fresh token too has said its last word.
    fhir.accept, fhir.honour_tokens = set(), False
    await send(harness, engine, port, start_at=2)
    assert kinds(engine)[3:] == ["retried", "dead-lettered"]
    assert events(engine, "dead-lettered")[0]["reason"].startswith("HTTP 401 Unauthorized")


async def test_a_token_endpoint_that_is_down_is_retried(harness, fhir, smart_key, caplog):
    caplog.set_level(logging.DEBUG)
    fhir.token_script.extend([503, 503])
    engine, port = await start(harness, fhir, smart_key[1])
    await send(harness, engine, port)
    assert kinds(engine) == ["retried", "retried", "sent"]
    assert events(engine, "retried")[0]["reason"] == (
        f"authentication: token endpoint {fhir.token_url} answered HTTP 503 "
        "temporarily_unavailable")
    assert "tok1" not in caplog.text  # no secret in the logs


async def test_an_assertion_signed_with_the_wrong_key_gets_no_token(harness, fhir,
                                                                    smart_key):
    alg, auth = smart_key
    other = RSAKey.generate_key(2048) if alg == "RS384" else ECKey.generate_key("P-384")
    fhir.client_keys[CLIENT] = ("key-1", type(other).import_key(other.as_dict(private=False)))
    engine, port = await start(harness, fhir, auth)
    await send(harness, engine, port)
    assert kinds(engine) == ["retried"] * 3 + ["dead-lettered"]
    assert fhir.tokens_issued == [] and fhir.requests == []
    assert events(engine, "dead-lettered")[0]["reason"] == (
        f"gave up after 4 attempts: authentication: token endpoint {fhir.token_url} "
        "answered HTTP 401 invalid_client")
