"""The X12 partner loop through a running engine and its HTTP status API: claims posted
to a channel with an `x12:` block are written to the outbound folder under our envelope
and the payer's next control number (the sequence survives a restart); the payer's 999s,
posted to an X12 channel, mark them rejected or accepted, which a signed-in user sees on
the message and in the channel's counts; a 999 for nothing we sent is stored and
flagged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.formats.x12 import X12Codec
from engine.formats.x12.build import interchange
from tests.harness import free_port
from tests.integration.test_api_access import WebHarness, bearer
from tests.unit.test_x12_partner import WHEN, nine_nine_nine, submitted

codec = X12Codec()


def channels(claims_port: int, acks_port: int, out: Path, acks_out: Path) -> dict[str, str]:
    return {
        "claims": f"""
            format: x12
            source: {{type: http, port: {claims_port}, path: /claims, auth: {{type: none}}}}
            x12:
              sender: "ZZ:CONDUITHOSP"
              receiver: "ZZ:PAYERX"
              application_sender: HOSPBILL
              usage: T
              ack_requested: true
            destinations: [{{name: payer-outbox, type: file, directory: "{out}"}}]
            """,
        "payer-acks": f"""
            format: x12
            source: {{type: http, port: {acks_port}, path: /acks, auth: {{type: none}}}}
            destinations: [{{name: ack-archive, type: file, directory: "{acks_out}"}}]
            """,
    }


async def post(http: aiohttp.ClientSession, port: int, path: str, body: bytes) -> str:
    async with http.post(f"http://127.0.0.1:{port}{path}", data=body,
                         headers={"Content-Type": "application/edi-x12"}) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["X-Conduit-Message-Id"]


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http, self.base, self.headers = http, base, bearer(token)

    async def get(self, path: str) -> Any:
        async with self.http.get(self.base + path, headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def test_claims_go_out_numbered_and_the_payers_999s_show_on_the_status_api(
        tmp_path, http):
    out, acks_out = tmp_path / "outbox", tmp_path / "acks"
    claims_port, acks_port = free_port(), free_port()
    config = channels(claims_port, acks_port, out, acks_out)
    web = WebHarness(tmp_path)
    await web.start(config)
    try:
        token = web.add_users()["viewer"]
        api = Api(http, web.base, token)
        unsigned = await http.get(web.base + "/api/channels/claims")
        assert unsigned.status == 401  # the status API needs a signed-in user

        first = await post(http, claims_port, "/claims", submitted("ACCT1", "MBR901"))
        await web.settle(lambda: out.is_dir() and len(list(out.iterdir())) == 1)
        [written] = list(out.iterdir())
        sent = codec.parse(written.read_bytes())
        assert sent.sender == "CONDUITHOSP^HOSPBILL" and sent.receiver == "PAYERX^PAYERX"
        assert sent.control_id == "000000001-1-0001"
        detail = await api.get(f"/api/messages/{first}")
        assert detail["partner_ack"]["state"] == "sent"
        assert detail["partner_ack"]["at"] is None
        counts = (await api.get("/api/channels/claims"))["counts"]
        assert (counts["awaiting_partner_ack"], counts["partner_rejected"]) == (1, 0)

        # The payer rejects it: the member id segment is in error.
        rejection = nine_nine_nine("1", [[
            ["AK2", "837", "0001", "005010X222A1"], ["IK3", "NM1", "8", "2010BA", "8"],
            ["IK4", ("9",), "67", "7"], ["IK5", "R", "5"]]], ["R", "1", "1", "0"])
        await post(http, acks_port, "/acks", rejection)
        detail = await api.get(f"/api/messages/{first}")
        ack = detail["partner_ack"]
        assert (ack["state"], ack["code"], ack["errors"]) == ("rejected", "R", ["5"])
        assert ack["notes"] == ["IK3 NM1 8 8", "IK4 NM109 7"]
        assert ack["at"] is not None
        assert "partner-acknowledged" in [h["kind"] for h in detail["hops"]]
        counts = (await api.get("/api/channels/claims"))["counts"]
        assert (counts["partner_rejected"], counts["awaiting_partner_ack"]) == (1, 0)
    finally:
        await web.stop()

    # A restart: the payer's sequence goes on where it was.
    await web.start(config)
    try:
        second = await post(http, claims_port, "/claims", submitted("ACCT2", "MBR902"))
        await web.settle(lambda: len(list(out.iterdir())) == 2)
        numbers = sorted(codec.parse(p.read_bytes()).control_id for p in out.iterdir())
        assert numbers == ["000000001-1-0001", "000000002-2-0001"]
        await post(http, acks_port, "/acks", nine_nine_nine(
            "2", [[["AK2", "837", "0001", "005010X222A1"], ["IK5", "A"]]],
            ["A", "1", "1", "1"], control=502))
        ack = (await api.get(f"/api/messages/{second}"))["partner_ack"]
        assert (ack["state"], ack["code"], ack["errors"]) == ("accepted", "A", [])
        counts = (await api.get("/api/channels/claims"))["counts"]
        assert (counts["partner_accepted"], counts["partner_rejected"],
                counts["awaiting_partner_ack"]) == (1, 1, 0)

        # A 999 for a group we never sent: stored, routed, flagged; nothing changes.
        stray = interchange([("999", "005010X231A1", [
            ["AK1", "HC", "880", "005010X222A1"], ["AK2", "837", "0001"], ["IK5", "A"],
            ["AK9", "A", "1", "1", "1"]])], sender=("ZZ", "PAYERX"),
            receiver=("ZZ", "CONDUITHOSP"), control_number=599, when=WHEN).encode()
        stray_id = await post(http, acks_port, "/acks", stray)
        stray_detail = await api.get(f"/api/messages/{stray_id}")
        assert stray_detail["status"] == "accepted"
        assert stray_detail["partner_ack"] is None
        [flag] = [h for h in stray_detail["hops"] if h["kind"] == "partner-acknowledged"]
        assert flag["detail"]["unknown"] == ["880/0001"]
        assert flag["detail"]["matched"] == 0
        counts = (await api.get("/api/channels/claims"))["counts"]
        assert (counts["partner_accepted"], counts["partner_rejected"]) == (1, 1)
        assert "partner_accepted" not in (await api.get("/api/channels/payer-acks"))["counts"]
    finally:
        await web.stop()
