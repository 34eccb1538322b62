"""Fixtures for the status page tests: one engine for the module (`conduit run` as a real
process, delivering to a FHIR receiver that refuses chosen patients), a user of each role
made with the CLI, and Debian's Chromium driven by Playwright.

The engine and the browser are shared by the module's tests (starting them is most of the
cost); each test opens its own browser context, so sessions never leak between tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.browser.chromium import LAUNCH_ARGS, ensure_chromium
from tests.e2e.support import CountingFhirServer, Daemon

# name -> role; an operator acts, an analyst reads content, a viewer only looks
USERS = {"olive": "operator", "ana": "analyst", "vic": "viewer"}
VIEWPORT = {"width": 1400, "height": 900}

expect.set_options(timeout=10_000)


class RefusingFhirServer(CountingFhirServer):
    """The shared FHIR test server, answering 400 (a permanent refusal, so the engine
    dead-letters at once) to any request that names an MRN in `refuse`."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()

    async def _handle(self, request: web.Request) -> web.Response:  # type: ignore[override]
        body = await request.read()
        if any(mrn.encode() in body for mrn in self.refuse):
            return web.json_response(
                {"resourceType": "OperationOutcome",
                 "issue": [{"severity": "error", "code": "invalid"}]},
                status=400, content_type="application/fhir+json")
        return await super()._handle(request)


@dataclass
class StatusEngine:
    daemon: Daemon
    fhir: RefusingFhirServer
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.web_port}/"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tmp_path_factory) -> AsyncIterator[StatusEngine]:
    fhir = await RefusingFhirServer().start()
    daemon = Daemon(tmp_path_factory.mktemp("status-page"))
    daemon.env["CONDUIT_LOG_LEVEL"] = "info"
    daemon.deliver_to(fhir.url)
    running = StatusEngine(daemon, fhir)
    try:
        await daemon.start()  # makes the store and its keys, so the users can be added at once
        tokens = await asyncio.gather(*(daemon.user_token(name, role)
                                        for name, role in USERS.items()))
        running.tokens.update(zip(USERS.values(), tokens, strict=True))
        yield running
        await daemon.stop()
    finally:
        daemon.kill_leftover()
        await fhir.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    chromium = await asyncio.to_thread(ensure_chromium)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium),
                                                    args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


SignIn = Callable[[str], Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def sign_in(engine: StatusEngine, browser: Browser) -> AsyncIterator[SignIn]:
    """`await sign_in("operator")`: a fresh browser context, signed in on the page's own
    form as that role's user; script errors and CSP violations on the page fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_as(role: str) -> Page:
        context = await browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # A Content-Security-Policy violation (an inline style or script) is only a
        # console message; it would silently break the page, so it fails the test.
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text else None)
        await page.goto(engine.url)
        await page.get_by_label("Access token").fill(engine.tokens[role])
        await page.get_by_role("button", name="Sign in").click()
        name = next(n for n, r in USERS.items() if r == role)
        await expect(page.locator("#who")).to_contain_text(re.compile(rf"{name}\s*{role}"))
        return page

    yield open_as
    for context in contexts:
        await context.close()
    assert not errors, f"script errors on the page: {errors}"
