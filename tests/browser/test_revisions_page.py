"""The status page's revisions: each channel's live revision, the history, and a pending
revision that another admin approves with the page's button (its author sees no button),
after which the running engine swaps to it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from engine.change.revisions import RevisionStore
from engine.change.snapshot import take
from engine.security.roles import Role
from tests.browser.conftest import VIEWPORT
from tests.harness import EngineHarness, free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")


def adt(port: int, out: str) -> str:
    return f"""
    source: {{type: mllp, port: {port}}}
    destinations: [{{name: files, type: file, directory: "{out}"}}]
    """


async def sign_in(browser: Browser, port: int, token: str):
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    return context, page


async def test_an_admin_approves_a_pending_revision_on_the_page(browser: Browser, tmp_path):
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    web_port, port = free_port(), free_port()
    harness = EngineHarness(tmp_path, web_port=web_port, mappings_dir=mappings,
                            conf="change_control: {approvals: 1}\n")
    engine = await harness.start({"adt": adt(port, str(tmp_path / "a"))})
    contexts = []
    errors: list[str] = []
    try:
        store = RevisionStore(engine.services.db, engine.services.keys.audit)
        config = engine.config
        store.make(take(config.channels_dir, mappings, []), author="ann", actor="cli:ann",
                   reason="bootstrap", approvals=0, force_live=True)
        (tmp_path / "channels" / "adt.yaml").write_text(adt(port, str(tmp_path / "b")))
        store.make(take(config.channels_dir, mappings, []), author="ann", actor="cli:ann",
                   reason="new folder", approvals=1)
        for name in ("ann", "bob"):
            engine.users.add(name, Role.ADMIN)

        context, own = await sign_in(browser, web_port, engine.users.new_token("ann"))
        contexts.append(context)
        pending = own.locator(".revision-history tr", has_text="new folder")
        await expect(pending).to_contain_text("pending")
        await expect(pending).to_contain_text("yours: another admin approves")
        await expect(pending.get_by_role("button", name="Approve")).to_have_count(0)
        channel = own.locator(".revision-channels tr", has_text="adt")
        await expect(channel).to_contain_text("ann")

        context, page = await sign_in(browser, web_port, engine.users.new_token("bob"))
        contexts.append(context)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        row = page.locator(".revision-history tr", has_text="new folder")
        await row.get_by_text("Diff").click()
        await expect(row.locator("pre.diff")).to_contain_text(str(tmp_path / "b"))
        await row.get_by_role("button", name="Approve").click()
        await page.get_by_role("dialog").get_by_role("button", name="Approve").click()
        await expect(row).to_contain_text("live")
        await expect(row).to_contain_text("bob")
        await harness.settle(lambda: engine.revision == 2, timeout=10)
        await expect(page.locator(".revisions .legend")).to_contain_text(
            "Revision 2 is live")
    finally:
        for context in contexts:
            await context.close()
        await harness.stop()
    assert not errors, errors
