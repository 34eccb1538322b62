"""MLLP over TLS and mutual TLS, on the listener and the sender, and odd frame bytes."""

from __future__ import annotations

import json
import ssl

import pytest
import sqlalchemy as sa

from engine.connectors.mllp import MllpClient
from engine.connectors.mllp_framing import Markers
from engine.connectors.tls import ClientTls
from engine.formats.hl7v2 import Hl7Message
from engine.store.schema import audit
from tests.harness import EngineHarness, adt, free_port
from tests.pki import Pki


async def _send(port: int, payload: bytes, **kw) -> Hl7Message:
    client = MllpClient("127.0.0.1", port, **kw)
    await client.connect(5)
    try:
        return Hl7Message.parse((await client.exchange(payload, 5)).decode())
    finally:
        await client.close()


async def test_mutual_tls_listener_records_the_client_and_refuses_strangers(tmp_path):
    pki = Pki(tmp_path)
    server_cert, server_key = pki.issue("server", "conduit", dns="localhost")
    client_cert, client_key = pki.issue("lab", "lab-sender")
    port = free_port()
    harness = EngineHarness(tmp_path)
    engine = await harness.start({"secure": f"""
        source:
          type: mllp
          port: {port}
          tls: {{cert: "{server_cert}", key: "{server_key}", client_ca: "{pki.ca_file}"}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    try:
        tls = ClientTls(ca=pki.ca_file, cert=client_cert, key=client_key,
                        server_name="localhost")
        ack = await _send(port, adt("T1", "MRN1"), tls=tls)
        assert ack.value("MSA-1") == "AA"
        with engine.services.db.connect() as conn:
            detail = conn.execute(sa.select(audit.c.detail)
                                  .where(audit.c.kind == "received")).scalar_one()
        assert json.loads(detail)["client"] == "CN=lab-sender,O=North Wing Lab"
        no_cert = ClientTls(ca=pki.ca_file, server_name="localhost")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await _send(port, adt("T2", "MRN2"), tls=no_cert)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await _send(port, adt("T3", "MRN3"))  # plain MLLP to a TLS port
    finally:
        await harness.stop()


async def test_tls_sender_verifies_the_receiver_and_delivers(tmp_path):
    """One engine channel sends over TLS to another channel listening with TLS."""
    pki = Pki(tmp_path)
    server_cert, server_key = pki.issue("server", "receiver", dns="localhost")
    client_cert, client_key = pki.issue("sender", "conduit-sender")
    inbound, secure = free_port(), free_port()
    harness = EngineHarness(tmp_path)
    engine = await harness.start({
        "receiver": f"""
        source:
          type: mllp
          port: {secure}
          tls: {{cert: "{server_cert}", key: "{server_key}", client_ca: "{pki.ca_file}"}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """,
        "forwarder": f"""
        source: {{type: mllp, port: {inbound}}}
        destinations:
          - name: secure-lis
            type: mllp
            host: 127.0.0.1
            port: {secure}
            tls: {{ca: "{pki.ca_file}", cert: "{client_cert}", key: "{client_key}",
                  server_name: localhost}}
        """})
    try:
        assert (await _send(inbound, adt("F1", "MRN9"))).value("MSA-1") == "AA"
        await harness.settle(lambda: len(list((tmp_path / "out").glob("*.hl7"))) == 1)
        assert engine.services.stats.count("sent", "forwarder", "secure-lis") == 1
    finally:
        await harness.stop()


async def test_configured_frame_bytes(tmp_path):
    port = free_port()
    harness = EngineHarness(tmp_path)
    await harness.start({"odd": f"""
        source: {{type: mllp, port: {port}, start_byte: 0x02, end_byte: 0x03,
                  end_trailer: null}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'out'}"}}]
        """})
    try:
        ack = await _send(port, adt("B1", "MRN1"), markers=Markers(0x02, 0x03, None))
        assert ack.value("MSA-1") == "AA"
    finally:
        await harness.stop()
