"""TLS for the web listener is one setting: a certificate and its key."""

from __future__ import annotations

import datetime
import ssl

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.security.roles import Role
from tests.harness import EngineHarness, free_port


def self_signed(folder) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "web.crt", folder / "web.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_web_listener_serves_https_with_secure_cookies(tmp_path):
    cert, key = self_signed(tmp_path)
    port = free_port()
    harness = EngineHarness(tmp_path, web_port=port, web={"tls_cert": cert, "tls_key": key})
    engine = await harness.start({"adt": f"""
        source: {{type: mllp, port: {free_port()}}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    try:
        engine.users.add("ana", Role.ANALYST)
        token = engine.users.new_token("ana")
        trust = ssl.create_default_context(cafile=cert)
        async with aiohttp.ClientSession() as client:
            async with client.get(f"https://localhost:{port}/healthz", ssl=trust) as resp:
                assert resp.status == 200
            async with client.post(f"https://localhost:{port}/api/session", ssl=trust,
                                   json={"token": token}) as resp:
                assert resp.status == 200
                cookie = resp.headers["Set-Cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie
            try:
                async with client.get(f"http://localhost:{port}/healthz") as resp:
                    plain_ok = resp.status == 200
            except aiohttp.ClientError:
                plain_ok = False
            assert not plain_ok  # no plain HTTP on a TLS listener
    finally:
        await harness.stop()
