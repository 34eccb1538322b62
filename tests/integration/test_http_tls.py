"""TLS for HTTP on loopback: the FHIR source serving HTTPS (and demanding client
certificates), the HTTP and FHIR destinations trusting a private CA, presenting a client
certificate and verifying a named server, and a listener that says `insecure: true`."""

from __future__ import annotations

import json
import logging
import ssl

import aiohttp
import pytest

from engine.config.types import Duration
from engine.connectors.base import DestinationContext
from engine.connectors.fhir import FhirDestination, FhirDestinationConfig
from engine.connectors.http import HttpDestination, HttpDestinationConfig
from engine.connectors.tls import ClientTls
from engine.message import Outbound, Retry, Sent
from engine.security.roles import Role
from tests.fhir_server import FhirTestServer
from tests.harness import free_port
from tests.pki import Pki

NAME, MRN = "QUILLBERRY", "MRN77123"  # the test patient: never in a reason or a log line
PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": NAME}],
           "identifier": [{"system": "urn:oid:1.2.3", "value": MRN}]}
JSON = "application/fhir+json"


# -- the FHIR source --------------------------------------------------------------------

async def _fhir_source(harness, tmp_path, tls: str) -> tuple[int, str]:
    port = free_port()
    engine = await harness.start({"fhir-in": f"""
        format: fhir
        source:
          type: fhir
          port: {port}
          resources: [Patient]
          auth: {{type: users}}
          tls: {tls}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    engine.users.add("ehr-feed", Role.INTEGRATION)
    return port, engine.users.new_token("ehr-feed")


async def _post(url: str, token: str, **kw) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(
            url, data=json.dumps(PATIENT), headers={"Content-Type": JSON,
                                                     "Authorization": f"Bearer {token}"},
            **kw) as resp:
        return resp.status, dict(resp.headers)


async def test_fhir_source_serves_https_with_an_https_location(harness, tmp_path):
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server", "conduit", dns="localhost")
    port, token = await _fhir_source(harness, tmp_path, f'{{cert: "{cert}", key: "{key}"}}')
    trust = ssl.create_default_context(cafile=pki.ca_file)
    base = f"https://localhost:{port}/fhir"
    status, headers = await _post(f"{base}/Patient", token, ssl=trust)
    assert status == 201
    assert headers["Location"].startswith(f"{base}/Patient/")
    async with aiohttp.ClientSession() as http, \
            http.get(f"{base}/metadata", ssl=trust) as resp:
        assert resp.status == 200
        assert (await resp.json())["implementation"]["url"] == base
    with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port: no answer
        await _post(f"http://127.0.0.1:{port}/fhir/Patient", token)
    source = harness.engine.channels["fhir-in"].source.describe()
    assert (source["address"], source["insecure"]) == (
        f"https://127.0.0.1:{port}/fhir", False)


async def test_fhir_source_with_client_ca_refuses_clients_without_a_certificate(
        harness, tmp_path):
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server", "conduit", dns="localhost")
    client_cert, client_key = pki.issue("ehr", "ehr-feed")
    port, token = await _fhir_source(
        harness, tmp_path,
        f'{{cert: "{cert}", key: "{key}", client_ca: "{pki.ca_file}"}}')
    url = f"https://localhost:{port}/fhir/Patient"
    with_cert = ssl.create_default_context(cafile=pki.ca_file)
    with_cert.load_cert_chain(client_cert, client_key)
    assert (await _post(url, token, ssl=with_cert))[0] == 201
    without = ssl.create_default_context(cafile=pki.ca_file)
    with pytest.raises(aiohttp.ClientError):
        await _post(url, token, ssl=without)
    stranger = Pki(tmp_path / "stranger", "Somebody Else's CA")
    other_cert, other_key = stranger.issue("ehr", "ehr-feed")
    signed_elsewhere = ssl.create_default_context(cafile=pki.ca_file)
    signed_elsewhere.load_cert_chain(other_cert, other_key)
    with pytest.raises(aiohttp.ClientError):
        await _post(url, token, ssl=signed_elsewhere)


# -- the HTTP and FHIR destinations -----------------------------------------------------

@pytest.fixture
async def servers():
    """Start FHIR test servers with a given TLS context; stop them all afterwards."""
    started: list[FhirTestServer] = []

    async def start(tls: ssl.SSLContext) -> FhirTestServer:
        started.append(await FhirTestServer().start(tls))
        return started[-1]

    yield start
    for server in started:
        await server.stop()


async def _send(kind: str, url: str, tls: ClientTls | None):
    if kind == "fhir":
        destination: HttpDestination = FhirDestination(
            FhirDestinationConfig(name="ehr", url=url, timeout=Duration(5.0), tls=tls),
            DestinationContext("test"))
    else:
        destination = HttpDestination(
            HttpDestinationConfig(name="ehr", url=f"{url}/Patient", timeout=Duration(5.0),
                                  tls=tls),
            DestinationContext("test"))
    try:
        return await destination.send(Outbound(1, "M1", "c", "ehr",
                                               json.dumps(PATIENT).encode(), JSON))
    finally:
        await destination.close()


def _phi_free(delivery) -> None:
    assert NAME not in delivery.reason and MRN not in delivery.reason


@pytest.mark.parametrize("kind", ["http", "fhir"])
async def test_destination_trusts_a_private_ca(servers, tmp_path, kind):
    pki = Pki(tmp_path / "pki")
    server = await servers(pki.server_context(dns="localhost"))
    url = f"https://localhost:{server.port}/fhir"
    assert isinstance(await _send(kind, url, ClientTls(ca=pki.ca_file)), Sent)
    untrusted = await _send(kind, url, None)  # the system's CAs only
    assert isinstance(untrusted, Retry)
    assert untrusted.reason.startswith("TLS: the receiver's certificate is not trusted ("), \
        untrusted.reason
    _phi_free(untrusted)
    assert len(server.received) == 1


@pytest.mark.parametrize("kind", ["http", "fhir"])
async def test_destination_server_name_overrides_the_host(servers, tmp_path, kind):
    pki = Pki(tmp_path / "pki")
    server = await servers(pki.server_context(dns="fhir.northwing.internal"))
    url = f"https://127.0.0.1:{server.port}/fhir"
    named = ClientTls(ca=pki.ca_file, server_name="fhir.northwing.internal")
    assert isinstance(await _send(kind, url, named), Sent)
    mismatch = await _send(kind, url, ClientTls(ca=pki.ca_file))
    assert isinstance(mismatch, Retry)
    assert "not trusted" in mismatch.reason and "127.0.0.1" in mismatch.reason
    _phi_free(mismatch)


@pytest.mark.parametrize("kind", ["http", "fhir"])
async def test_destination_presents_a_client_certificate(servers, tmp_path, kind):
    pki = Pki(tmp_path / "pki")
    server = await servers(pki.server_context(dns="localhost", client_ca=True))
    cert, key = pki.issue("conduit", "conduit-sender")
    url = f"https://localhost:{server.port}/fhir"
    mutual = ClientTls(ca=pki.ca_file, cert=cert, key=key)
    assert isinstance(await _send(kind, url, mutual), Sent)
    refused = await _send(kind, url, ClientTls(ca=pki.ca_file))
    assert isinstance(refused, Retry)
    assert refused.reason.startswith(("TLS", "connection failed: Connection reset")) or \
        "after the TLS handshake" in refused.reason, \
        refused.reason  # TLS 1.3: the server's alert comes after the client's handshake
    _phi_free(refused)
    assert len(server.received) == 1


async def test_destination_refuses_a_certificate_from_an_unknown_ca(servers, tmp_path,
                                                                    caplog):
    caplog.set_level(logging.DEBUG)
    ours, theirs = Pki(tmp_path / "ours"), Pki(tmp_path / "theirs", "Unknown CA")
    server = await servers(theirs.server_context(dns="localhost"))
    delivery = await _send("fhir", f"https://localhost:{server.port}/fhir",
                           ClientTls(ca=ours.ca_file))
    assert isinstance(delivery, Retry)
    assert delivery.reason.startswith("TLS: the receiver's certificate is not trusted (")
    assert "check tls.ca" in delivery.reason
    _phi_free(delivery)
    assert NAME not in caplog.text and MRN not in caplog.text
    assert server.requests == []  # nothing crossed before the handshake failed


# -- insecure: true ---------------------------------------------------------------------

async def test_an_insecure_listener_says_so_in_the_log_and_the_channel_json(
        harness, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    mllp, fhir = free_port(), free_port()
    engine = await harness.start({
        "wide-mllp": f"""
        source: {{type: mllp, host: 0.0.0.0, port: {mllp}, insecure: true}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'a'}"}}]
        """,
        "wide-fhir": f"""
        format: fhir
        source: {{type: fhir, host: 0.0.0.0, port: {fhir}, resources: [Patient],
                  auth: {{type: users}}, insecure: true}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'b'}"}}]
        """,
        "local": f"""
        source: {{type: mllp, port: {free_port()}}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'c'}"}}]
        """})
    summaries = {c["name"]: c for c in await engine.ops.channels()}
    assert summaries["wide-mllp"]["source"]["insecure"] is True
    assert summaries["wide-fhir"]["source"]["insecure"] is True
    assert summaries["local"]["source"]["insecure"] is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"0.0.0.0:{mllp}" in w and "WITHOUT TLS" in w for w in warnings)
    assert any(f"0.0.0.0:{fhir}" in w and "WITHOUT TLS" in w for w in warnings)
