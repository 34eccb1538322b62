"""What SMART backend auth says when its key or its token endpoint is not usable: a
reason naming the file or the endpoint, never a secret, and never a crash."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from engine.connectors.http_auth import (
    AuthUnavailable,
    SmartBackendAuth,
    SmartBackendAuthConfig,
    _lifetime,
)


def auth(path, **kwargs) -> SmartBackendAuth:
    return SmartBackendAuth(SmartBackendAuthConfig(
        client_id="engine", token_url="https://ehr.example.org/token",
        private_key_file=str(path), kid="k1", **kwargs))


@pytest.mark.parametrize(("write", "why"), [
    (None, "cannot read the private key file"),
    (lambda p: p.write_text("not a key"), "holds no RSA or EC private key"),
    (lambda p: p.write_bytes(RSAKey.generate_key(2048).as_pem(private=False)),
     "holds no RSA or EC private key"),  # a public key cannot sign
    (lambda p: p.write_text(json.dumps(OctKey.generate_key(256).as_dict(private=True))),
     "holds no RSA or EC private key"),  # a shared secret is not a SMART key
    (lambda p: p.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=True))),
     "ES384 needs an EC key on curve P-384, not P-256"),
])
def test_an_unusable_key_is_named_not_shown(tmp_path, write, why):
    path = tmp_path / "key"
    if write is not None:
        write(path)
    with pytest.raises(AuthUnavailable, match=why) as caught:
        auth(path).assertion()
    assert str(path) in str(caught.value)
    secret = path.read_text()[30:60] if path.exists() else ""
    assert not secret or secret not in str(caught.value)
    # the same reason is what the destination warns about when it opens
    assert auth(path).problem() == str(caught.value)


def test_a_usable_key_is_no_problem(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    assert auth(path).problem() is None


def test_a_key_for_the_other_algorithm_is_refused(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    with pytest.raises(AuthUnavailable, match="holds a key for RS384, but algorithm is ES384"):
        auth(path, algorithm="ES384").assertion()


def test_the_assertion_says_what_smart_requires(tmp_path):
    key = ECKey.generate_key("P-384")
    path = tmp_path / "key.jwk"
    path.write_text(json.dumps(key.as_dict(private=True)))
    signer = auth(path)
    one, two = signer.assertion(), signer.assertion()
    token = jwt.decode(one, ECKey.import_key(key.as_dict(private=False)),
                       algorithms=["ES384"])
    assert token.header == {"alg": "ES384", "kid": "k1", "typ": "JWT"}
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "engine"
    assert claims["aud"] == "https://ehr.example.org/token"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert jwt.decode(two, ECKey.import_key(key.as_dict(private=False)),
                      algorithms=["ES384"]).claims["jti"] != claims["jti"]


@pytest.mark.parametrize(("expires_in", "seconds"), [
    (3600, 3600.0), ("900", 900.0), (None, 300.0), ("soon", 300.0), (0, 300.0),
    (-5, 300.0), (float("nan"), 300.0)])
def test_token_lifetime_is_read_leniently(expires_in, seconds):
    assert _lifetime(expires_in) == seconds
