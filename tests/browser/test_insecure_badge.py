"""The status page marks a channel whose listener takes messages off the network without
TLS (`insecure: true`), in the overview and on the channel's own page; a channel on
loopback carries no such mark."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from engine.security.roles import Role
from tests.browser.conftest import VIEWPORT
from tests.harness import EngineHarness, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_insecure_listener_is_marked_on_the_status_page(browser: Browser, tmp_path):
    web_port = free_port()
    harness = EngineHarness(tmp_path, web_port=web_port)
    engine = await harness.start({
        "wide-open": f"""
        source: {{type: mllp, host: 0.0.0.0, port: {free_port()}, insecure: true}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'a'}"}}]
        """,
        "local": f"""
        source: {{type: mllp, port: {free_port()}}}
        destinations: [{{name: files, type: file, directory: "{tmp_path / 'b'}"}}]
        """})
    context = await browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    try:
        engine.users.add("olive", Role.OPERATOR)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"http://127.0.0.1:{web_port}/")
        await page.get_by_label("Access token").fill(engine.users.new_token("olive"))
        await page.get_by_role("button", name="Sign in").click()
        wide = page.locator("tr.channel-row", has=page.get_by_role("link", name="wide-open"))
        local = page.locator("tr.channel-row", has=page.get_by_role("link", name="local"))
        await expect(wide.locator(".insecure")).to_contain_text("Insecure: no TLS")
        await expect(local).to_be_visible()
        await expect(local.locator(".insecure")).to_have_count(0)
        await page.get_by_role("link", name="wide-open").click()
        await expect(page.locator("dd .insecure")).to_contain_text("Insecure: no TLS")
    finally:
        await context.close()
        await harness.stop()
    assert not errors, errors
