"""The README's e-prescribing flow, as a newcomer runs it on the shipped configuration:
a user with the integration role posts the NewRx the README names to the eprescribing
channel with curl, gets the Status it shows, and the NewRx is written as FHIR; a NewRx
missing the patient's name is answered Error 900 with HTTP 200; `conduit audit show`
prints the NewRx's hops. And the shipped channel with a pharmacy behind it."""

from __future__ import annotations

import asyncio
import re
import shutil

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.support import REPO, Daemon, eventually, free_port

README = (REPO / "README.md").read_text()
SECTION = README.partition("## E-prescribing (NCPDP SCRIPT)")[2].partition("\n## ")[0]
CURL = re.compile(r"^(curl .+ (http://127\.0\.0\.1:)8082(/script))$", re.MULTILINE)
ANSWER = re.compile(r"^#  the answer: (.+)$", re.MULTILINE)
USERS = re.compile(r"^(?:TOKEN=\$\()?conduit users (add|token) ([\w-]+)(?: --role (\S+))?\)?$",
                   re.MULTILINE)


async def curl(command: str, port: int, token: str) -> tuple[int, str, str]:
    """The README's curl, at the daemon's port, with the status and headers shown."""
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', command)]
    args = [a.replace("$TOKEN", token).replace(":8082/", f":{port}/") for a in args]
    proc = await asyncio.create_subprocess_exec(
        *args[:1], "-i", *args[1:], cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    head, _, body = out.decode().replace("\r\n", "\n").partition("\n\n")
    return int(head.split()[1]), head, body


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's flow uses curl")
async def test_a_newrx_posted_as_the_readme_says_is_answered_status(daemon: Daemon, tmp_path):
    command = CURL.search(SECTION).group(1)
    shown = ANSWER.search(SECTION).group(1)
    users = USERS.findall(SECTION)
    assert [u[0] for u in users] == ["add", "token"] and users[0][2] == "integration"
    await daemon.start()
    added = await daemon.cli("users", "add", users[0][1], "--role", users[0][2])
    assert added.returncode == 0, added.stderr
    token = (await daemon.cli("users", "token", users[1][1])).stdout.strip()

    status, head, body = await curl(command, daemon.script_port, token)
    assert status == 200 and "content-type: application/xml" in head.lower()
    for piece in (p.strip() for p in shown.split("...")):
        if piece:
            assert piece in body, piece
    message_id = re.search(r"(?im)^x-conduit-message-id: (\S+)$", head).group(1)
    out = daemon.data_dir / "out" / "eprescribing"
    await eventually(lambda: out.is_dir() and any(out.iterdir()), timeout=20,
                     message="the NewRx written as FHIR")
    assert '"resourceType":"MedicationRequest"' in next(out.iterdir()).read_text().replace(
        " ", "")

    fixture = REPO / re.search(r"@(\S+)", command).group(1)
    broken = tmp_path / "broken.xml"
    broken.write_bytes(re.sub(rb"<LastName>[^<]*</LastName>", b"", fixture.read_bytes(),
                              count=1))
    status, _, body = await curl(command.replace(f"@{fixture.relative_to(REPO)}",
                                                 f"@{broken}"), daemon.script_port, token)
    assert status == 200 and "<Error><Code>900</Code>" in body and "LastName" in body

    shown_hops = await daemon.cli("audit", "show", "--message", message_id)
    assert shown_hops.returncode == 0, shown_hops.stderr
    for kind in ("received", "parsed", "mapped", "queued", "acknowledged"):
        assert kind in shown_hops.stdout, kind
    assert await daemon.stop() == 0


class Pharmacy:
    """A pharmacy's SCRIPT endpoint on loopback: keeps what it gets, answers Status."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/script", self.take)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/script"

    async def take(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.received.append(raw)
        relates = re.search(rb"<(?:\w+:)?MessageID>([^<]+)<", raw).group(1).decode()
        return web.Response(content_type="application/xml", text=(
            '<?xml version="1.0"?><Message xmlns="http://www.ncpdp.org/schema/SCRIPT">'
            "<Header><To>RIVERBENDORTHO</To><From>5120947</From><MessageID>ph-1</MessageID>"
            f"<RelatesToMessageID>{relates}</RelatesToMessageID>"
            "<SentTime>2026-12-04T16:22:10Z</SentTime></Header>"
            "<Body><Status><Code>000</Code></Status></Body></Message>"))


async def test_the_shipped_channel_delivers_a_signed_newrx_to_the_pharmacy(daemon: Daemon):
    """With CONDUIT_PHARMACY_URL set, the pharmacy gets the controlled-substance NewRx
    byte for byte and its Status is read back; a CancelRx is answered Status and goes to
    the pharmacy as sent too (and to FHIR); a Status, which FHIR has no shape for here,
    still reaches the pharmacy."""
    pharmacy = Pharmacy()
    daemon.env["CONDUIT_PHARMACY_URL"] = await pharmacy.start()
    try:
        await daemon.start()
        assert (await daemon.cli("users", "add", "ortho-ehr", "--role", "integration")
                ).returncode == 0
        token = (await daemon.cli("users", "token", "ortho-ehr")).stdout.strip()
        fixtures = REPO / "channels" / "fixtures" / "eprescribing"
        signed = (fixtures / "epcs_schedule_ii_oxycodone_signed.xml").read_bytes()
        url = f"http://127.0.0.1:{daemon.script_port}/script"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/xml"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=signed, headers=headers) as resp:
                assert resp.status == 200
                assert "<Status><Code>000</Code></Status>" in await resp.text()
                message_id = resp.headers["X-Conduit-Message-Id"]
            await eventually(lambda: pharmacy.received, timeout=20,
                             message="the NewRx at the pharmacy")
            assert pharmacy.received == [signed]
            cancel = (fixtures / "cancelrx_mapped.xml").read_bytes()
            status = (fixtures / "status_from_a_system.xml").read_bytes()
            async with http.post(url, data=cancel, headers=headers) as resp:
                assert resp.status == 200
                assert "<Status><Code>000</Code></Status>" in await resp.text()
            async with http.post(url, data=status, headers=headers) as resp:
                assert resp.status == 200  # taken on; an answer is not itself answered
                assert "accepted" in await resp.text()
            await eventually(lambda: len(pharmacy.received) == 3, timeout=20,
                             message="the CancelRx and the Status at the pharmacy")
        assert pharmacy.received == [signed, cancel, status]
        shown = await daemon.cli("audit", "show", "--message", message_id)
        assert re.search(r"sent\s+pharmacy .*\"code\":\"000\"", shown.stdout), shown.stdout
        assert "answered Status 000" in shown.stdout
        assert await daemon.stop() == 0
    finally:
        if pharmacy.runner is not None:
            await pharmacy.runner.cleanup()
