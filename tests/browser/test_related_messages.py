"""The status page's message view lists the messages linked to it: a NewRx posted to
the shipped e-prescribing channel and the pharmacy's Error relating to it (by
RelatesToMessageID) each link to the other."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser.conftest import SignIn, StatusEngine
from tests.e2e.support import REPO

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEWRX = (REPO / "channels" / "fixtures" / "eprescribing" / "ehr_default_ns_atorvastatin.xml"
         ).read_bytes()
ERROR = (b'<?xml version="1.0"?><Message xmlns="http://www.ncpdp.org/schema/SCRIPT">'
         b'<Header><To Qualifier="C">HARBORSIDEEHR</To><From Qualifier="P">7701630</From>'
         b"<MessageID>ph-err-77</MessageID>"
         b"<RelatesToMessageID>a3f1c2d4e5b6478899aa0011bb22cc33</RelatesToMessageID>"
         b"<SentTime>2026-12-01T15:00:00Z</SentTime></Header>"
         b"<Body><Error><Code>900</Code><DescriptionCode>1000</DescriptionCode></Error>"
         b"</Body></Message>")


async def post(engine: StatusEngine, token: str, body: bytes) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{engine.daemon.script_port}/script", data=body,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.headers["X-Conduit-Message-Id"]


async def test_a_newrx_and_the_error_answering_it_link_to_each_other(
        engine: StatusEngine, sign_in: SignIn) -> None:
    assert (await engine.daemon.cli("users", "add", "clinic-ehr", "--role", "integration")
            ).returncode == 0
    token = (await engine.daemon.cli("users", "token", "clinic-ehr")).stdout.strip()
    newrx = await post(engine, token, NEWRX)
    error = await post(engine, token, ERROR)

    page = await sign_in("viewer")
    await page.goto(f"{engine.url}#/messages/{newrx}")
    related = page.locator("ul.related")
    await expect(related).to_contain_text("Error, answering this")
    await related.get_by_role("link", name="Error").click()
    await expect(page).to_have_url(f"{engine.url}#/messages/{error}")
    await expect(page.locator("ul.related")).to_contain_text("NewRx, which this answers")
