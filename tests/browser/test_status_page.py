"""The status page in a real browser (Debian's Chromium), against `conduit run`.

What an operator, an analyst and a viewer would each notice: counts that move while
messages flow, a channel paused and resumed (and its port really closed meanwhile), a dead
letter retried, content shown only to a role allowed to read it and only after a stated
reason, and nothing of the sort offered to a viewer.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from engine.connectors.mllp import MllpClient
from tests.browser.conftest import SignIn, StatusEngine
from tests.e2e.support import (
    CHANNEL,
    REPO,
    Adt,
    ack_code,
    eventually,
    exchange_one,
    mrns_in,
    port_accepts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The README's picture is refreshed only on request (CONDUIT_SCREENSHOT=docs/status-page.png),
# so a test run leaves the checkout as it found it.
SCREENSHOT = Path(os.environ.get("CONDUIT_SCREENSHOT")
                  or Path(tempfile.gettempdir()) / "conduit-status-page.png")
# The shipped channel's mapping (hl7v2-adt-to-fhir@4) maps what it can and fails only an
# ADT without PID: v4's fixture of one is among those sent, so errors show.
_ADT_FIXTURES = REPO / "mappings" / "hl7v2-adt-to-fhir" / "fixtures"
FIXTURES = [*sorted((_ADT_FIXTURES / "v1").glob("*.hl7")),
            _ADT_FIXTURES / "v4" / "no_pid_a01_error.hl7"]


def channel_row(page: Page):
    return page.locator("tr.channel-row", has=page.get_by_role("link", name=CHANNEL))


async def total(page: Page, column: str) -> int:
    """The since-start number an operator reads in one column of the channel's row."""
    text = await channel_row(page).locator(f"[data-col={column}] .total").inner_text()
    return int(text.replace(",", "").replace("\u202f", "").replace("\xa0", ""))


def notice(page: Page, text: str):
    """A confirmation the page shows after an action succeeded."""
    return page.get_by_role("status").filter(has_text=text)


async def confirm(page: Page, button: str) -> None:
    """Answer the page's confirmation dialog with its `button`."""
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=button, exact=True).click()
    await expect(dialog).to_be_hidden()


async def open_channel(page: Page) -> None:
    await channel_row(page).get_by_role("link", name=CHANNEL).click()
    await expect(page).to_have_url(re.compile(rf"#/channels/{CHANNEL}$"))
    await expect(page.get_by_role("heading", level=1, name=CHANNEL)).to_be_visible()


async def open_message(page: Page, control_id: str) -> None:
    row = page.locator("tr.message-row", has_text=control_id)
    await row.get_by_role("link").click()
    await expect(page.get_by_role("complementary")).to_contain_text(control_id)


async def test_sign_in_then_counts_move_while_messages_flow(engine: StatusEngine,
                                                            sign_in: SignIn,
                                                            browser: Browser) -> None:
    # A wrong token is refused on the form itself.
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(engine.url)
    await page.get_by_label("Access token").fill("cdt_not-a-real-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    await context.close()

    page = await sign_in("operator")
    row = channel_row(page)
    await expect(row.locator("[data-col=state]")).to_contain_text("Started")
    await expect(row).to_contain_text("hl7v2-adt-to-fhir@4")
    await expect(row).to_contain_text(f"mllp://127.0.0.1:{engine.daemon.mllp_port}")
    await expect(page.get_by_text("No active alerts")).to_be_visible()
    before = await total(page, "received")
    await page.evaluate("window.notReloaded = true")

    # A sender connects: the page shows the peer while the connection is open.
    client = MllpClient("127.0.0.1", engine.daemon.mllp_port)
    await client.connect(5)
    try:
        await expect(row).to_contain_text("1 peer connected")
    finally:
        await client.close()

    # `conduit send` prints one line per message with its ACK code (AE for the fixtures
    # the mapping rejects on purpose; CA for those asking for enhanced-mode commit ACKs).
    sent = await engine.daemon.cli("send", "--mllp", f"127.0.0.1:{engine.daemon.mllp_port}",
                                   *map(str, FIXTURES))
    answered = re.findall(r"#\d+ \S+ [AC][AER]$", sent.stdout, re.MULTILINE)
    assert len(answered) >= len(FIXTURES), sent.stdout + sent.stderr
    received = row.locator("[data-col=received] .total")
    await expect(received).to_have_text(str(before + len(answered)))
    await expect(row.locator("[data-col=received] .recent")).to_have_text(
        f"{before + len(answered)} in 5 min")

    # A resend is counted as one, and a new patient under a control id already used too.
    port = engine.daemon.mllp_port
    first = Adt("PAGE-REUSE-1", "MRN-PAGE-1").text().encode()
    codes = [ack_code(await exchange_one(port, payload)) for payload in (
        first, first, Adt("PAGE-REUSE-1", "MRN-PAGE-2", family="OTHERPATIENT").text().encode())]
    assert codes == ["AA", "AA", "AA"]
    await expect(row.locator("[data-col=received] .senders")).to_have_text(
        "1 resent1 id reused")  # one line each
    # The fixtures include messages the mapping rejects: the errors and the last one show.
    assert await total(page, "errored") > 0
    await expect(row.locator("[data-col=last-error] .error-text")).to_contain_text("PID-")
    await expect(row.locator("[data-col=throughput] .rate-now")).not_to_have_text("0/s")
    assert await page.evaluate("window.notReloaded === true"), "the page reloaded"

    await expect(row.locator("[data-col=sent] .total")).not_to_have_text("0")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000

    # Sign out: the page returns to the form and shows nothing of the engine.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Access token")).to_be_visible()
    await expect(page.locator("tr.channel-row")).to_have_count(0)


async def test_pause_and_resume_a_channel(engine: StatusEngine, sign_in: SignIn) -> None:
    page = await sign_in("operator")
    await open_channel(page)
    state = page.locator(".detail-state")
    await expect(state).to_have_text(re.compile("Started"))

    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(page.get_by_role("dialog")).to_contain_text("stops accepting new messages")
    await confirm(page, "Pause")
    await expect(state).to_have_text(re.compile("Paused"))
    await expect(notice(page, f"{CHANNEL} is now paused")).to_be_visible()
    assert not port_accepts(engine.daemon.mllp_port), "the MLLP port accepts while paused"

    # The overview, fed by the live stream, agrees.
    await page.get_by_role("link", name="All channels").click()
    await expect(channel_row(page).locator("[data-col=state]")).to_contain_text("Paused")
    # Of the five shipped channels, the FHIR, the two X12 and the e-prescribing ones
    # still run.
    await expect(page.locator("[data-tile=channels]")).to_have_text("4 of 5")

    await open_channel(page)
    await page.get_by_role("button", name="Resume", exact=True).click()
    await confirm(page, "Resume")
    await expect(state).to_have_text(re.compile("Started"))
    await eventually(lambda: port_accepts(engine.daemon.mllp_port), timeout=5,
                     message="the MLLP port to accept again")
    msg = Adt(control_id="BRRESUME1", mrn="E2EBRRESUME1")
    assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"
    await expect(page.locator("tr.message-row", has_text="BRRESUME1")).to_be_visible()


async def test_retry_a_dead_letter(engine: StatusEngine, sign_in: SignIn) -> None:
    msg = Adt(control_id="BRDEAD1", mrn="E2EBRDEAD1")
    engine.fhir.refuse.add(msg.mrn)  # the receiving system rejects this patient: 400
    assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"

    page = await sign_in("operator")
    await expect(page.locator("[data-tile=dead]")).to_have_text("1")
    await expect(channel_row(page).locator("[data-col=destinations]")).to_contain_text(
        "1 dead")
    await open_channel(page)
    fhir_row = page.locator(".dests tbody tr", has_text="fhir-server")
    await expect(fhir_row.locator("[data-col=dead]")).to_have_text("1")
    await expect(fhir_row.locator(".last-error")).not_to_contain_text("none")

    engine.fhir.refuse.clear()  # the receiving system is fixed; the operator retries
    await page.get_by_role("button", name="Retry dead letters of fhir-server").click()
    await expect(page.get_by_role("dialog")).to_contain_text("1 dead letter of fhir-server")
    await confirm(page, "Retry")
    await expect(notice(page, "Requeued 1 on fhir-server")).to_be_visible()
    await expect(fhir_row.locator("[data-col=dead]")).to_have_text("0")
    await expect(page.get_by_role("button", name="Retry dead letters of fhir-server")
                 ).to_be_disabled()
    await eventually(lambda: msg.mrn in mrns_in(engine.fhir.bodies()), timeout=10,
                     message="the retried message at the FHIR server")


async def test_a_viewer_sees_status_but_no_content_and_no_actions(engine: StatusEngine,
                                                                   sign_in: SignIn) -> None:
    msg = Adt(control_id="BRVIEW1", mrn="E2EBRVIEW1", family="VIEWERTESTNAME")
    assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"
    page = await sign_in("viewer")
    await expect(channel_row(page).locator("[data-col=state]")).to_contain_text("Started")
    await open_channel(page)
    await open_message(page, msg.control_id)
    panel = page.get_by_role("complementary")
    await expect(panel).to_contain_text("accepted")
    await expect(panel.locator(".hops")).to_contain_text("received")

    for name in ("Pause", "Stop", "Start", "Resume", "View content…", "Reprocess…"):
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("dead letters"))).to_have_count(0)
    text = await page.locator("body").inner_text()
    assert msg.mrn not in text and msg.family not in text

    # Asking the API directly, with the viewer's own session, is refused.
    message_id = page.url.rsplit("/", 1)[1]
    answer = await page.evaluate("""async (id) => {
        const r = await fetch(`/api/messages/${id}?content=1&reason=curious`);
        return {status: r.status, body: await r.text()};
    }""", message_id)
    assert answer["status"] == 403, answer
    assert "forbidden" in answer["body"]
    assert msg.mrn not in answer["body"] and "MSH|" not in answer["body"]

    # When the session goes, the next request brings the sign-in form back, saying why.
    await page.context.clear_cookies()
    # (Whether the channel's heading shows before its data is refused is a race.)
    await page.get_by_role("link", name="All channels").click()
    await channel_row(page).get_by_role("link", name=CHANNEL).click()
    await expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
    await expect(page.get_by_label("Access token")).to_be_visible()
    await expect(page.get_by_role("heading", level=1, name=CHANNEL)).to_be_hidden()


async def test_an_analyst_reads_content_after_stating_a_reason(engine: StatusEngine,
                                                               sign_in: SignIn) -> None:
    msg = Adt(control_id="BRREAD1", mrn="E2EBRREAD1", family="ANALYSTTESTNAME")
    assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"
    page = await sign_in("analyst")
    await open_channel(page)
    for name in ("Pause", "Stop"):  # an analyst does not run channels
        await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await open_message(page, msg.control_id)
    assert msg.mrn not in await page.locator("body").inner_text()

    await page.get_by_role("button", name="View content…").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("audit trail")
    await dialog.get_by_role("button", name="Show content").click()
    await expect(dialog).to_be_visible()  # no reason, no content
    await dialog.get_by_label("Reason").fill("INC-42: checking the Patient identifier")
    await dialog.get_by_role("button", name="Show content").click()

    content = page.get_by_role("region", name=re.compile("Content"))
    await expect(content.locator("pre.raw")).to_contain_text(f"{msg.mrn}^^^NORTHWING^MR")
    await expect(content.locator("pre.output")).to_contain_text('"resourceType": "Bundle"')
    message_id = page.url.rsplit("/", 1)[1]
    shown = await engine.daemon.cli("audit", "show", "--message", message_id)
    assert re.search(r"viewed\s+web:ana .*INC-42", shown.stdout), shown.stdout

    # Hiding it takes it off the page.
    await content.get_by_role("button", name="Hide content").click()
    assert msg.mrn not in await page.locator("body").inner_text()

    # Reprocessing with a named mapping version; an unknown version is a clear error.
    await page.get_by_role("button", name="Reprocess…").click()
    await page.get_by_role("dialog").get_by_label("Mapping version").fill("hl7v2-adt-to-fhir@9")
    await confirm(page, "Reprocess")
    await expect(page.get_by_role("alert")).to_contain_text(
        "unknown mapping hl7v2-adt-to-fhir@9; available: hl7v2-adt-to-fhir@1, @2, @3, @4")
    await page.get_by_role("button", name="Reprocess…").click()
    await page.get_by_role("dialog").get_by_label("Mapping version").fill("hl7v2-adt-to-fhir@1")
    await confirm(page, "Reprocess")
    await expect(notice(page, f"Reprocessed {message_id}: accepted with hl7v2-adt-to-fhir@1")
                 ).to_be_visible()


async def test_an_analyst_reads_what_the_receiver_answered_to_a_dead_letter(
        engine: StatusEngine, sign_in: SignIn) -> None:
    msg = Adt(control_id="BRANSWER1", mrn="E2EBRANSWER1", family="ANSWERTESTNAME")
    engine.fhir.refuse.add(msg.mrn)  # the receiving system refuses it with an OperationOutcome
    assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"
    page = await sign_in("analyst")
    await open_channel(page)
    # The channel lists its dead letters (ids and reasons); one opens the message.
    dead = page.locator("table.dead-letters tr.dead-row")
    await expect(dead).to_have_count(1)
    await expect(dead).to_contain_text("HTTP 400 Bad Request")
    await expect(dead).to_contain_text("answer kept")
    await dead.get_by_role("link").click()
    panel = page.get_by_role("complementary")
    await expect(panel).to_contain_text(msg.control_id)
    # The PHI-free summary is there at once; the answer itself only with the content.
    await expect(panel.locator(".answers")).to_contain_text(
        "fhir-server: HTTP 400 Bad Request: 1 issue (error: invalid)")
    await expect(panel.locator("pre.answer")).to_have_count(0)
    await page.get_by_role("button", name="View content…").click()
    await page.get_by_role("dialog").get_by_label("Reason").fill("INC-43: why refused")
    await page.get_by_role("dialog").get_by_role("button", name="Show content").click()
    content = page.get_by_role("region", name=re.compile("Content"))
    await expect(content).to_contain_text("Answer of adt-to-fhir/fhir-server (HTTP 400)")
    await expect(content.locator("pre.answer")).to_contain_text(
        '"resourceType": "OperationOutcome"')


async def test_find_messages_page_through_them_and_open_one(engine: StatusEngine,
                                                            sign_in: SignIn) -> None:
    since = time.time()
    found = [Adt(control_id=f"BRFIND{i}", mrn=f"E2EBRFIND{i}", family="FINDERTESTNAME")
             for i in range(3)]
    for msg in found:
        assert ack_code(await exchange_one(engine.daemon.mllp_port, msg.payload())) == "AA"
    failing = Adt(control_id="BRFINDERR", mrn="E2EBRFINDERR").text()
    no_pid = "".join(f"{seg}\r" for seg in failing.split("\r") if seg and seg[:3] != "PID")
    await exchange_one(engine.daemon.mllp_port, no_pid.encode())  # the mapping fails

    page = await sign_in("analyst")
    await page.get_by_role("link", name="Messages", exact=True).click()
    await expect(page).to_have_url(re.compile(r"#/messages$"))
    form = page.get_by_role("search")
    rows = page.locator("table.found tbody tr")

    # By channel, control id and status; the search goes into the address.
    await form.get_by_label("Channel").select_option(CHANNEL)
    await form.get_by_label("Control id").fill("BRFIND1")
    await form.get_by_label("Status").select_option("accepted")
    await form.get_by_role("button", name="Search").click()
    await expect(page).to_have_url(re.compile(
        rf"#/messages\?channel={CHANNEL}&control_id=BRFIND1&status=accepted$"))
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("BRFIND1")
    await form.get_by_label("Control id").fill("BRFINDERR")
    await form.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("No messages match.")).to_be_visible()
    await form.get_by_label("Status").select_option("error")
    await form.get_by_role("button", name="Search").click()
    await expect(rows).to_have_count(1)
    await expect(rows.locator("td.note")).not_to_be_empty()  # the PHI-free reason

    # A linked search (since the test began, two a page) survives a refresh, and pages.
    await page.goto(f"{engine.url}#/messages?since={since}&limit=2")
    await page.reload()
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("BRFINDERR")
    await expect(rows.nth(1)).to_contain_text("BRFIND2")
    await expect(form.get_by_label("From")).to_have_value(re.compile(r"^\d{4}-\d\d-\d\dT"))
    newer = page.get_by_role("button", name="← Newer")
    older = page.get_by_role("button", name="Older →")
    await expect(newer).to_be_disabled()
    await older.click()
    await expect(page).to_have_url(re.compile(r"&before=\w+$"))
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("BRFIND1")
    await expect(rows.nth(1)).to_contain_text("BRFIND0")
    await expect(older).to_be_disabled()  # nothing older matches: no empty page offered
    await newer.click()
    await expect(rows.nth(0)).to_contain_text("BRFINDERR")
    await expect(newer).to_be_disabled()

    # A row opens the message beside the results; content only after a reason.
    await rows.filter(has_text="BRFIND2").click()
    panel = page.get_by_role("complementary")
    await expect(panel).to_contain_text("BRFIND2")
    await expect(page).to_have_url(re.compile(r"#/messages/\w{26}\?since="))
    assert found[2].mrn not in await page.locator("body").inner_text()
    await panel.get_by_role("button", name="View content…").click()
    await page.get_by_role("dialog").get_by_label("Reason").fill("INC-44: browsing")
    await page.get_by_role("dialog").get_by_role("button", name="Show content").click()
    await expect(panel.locator("pre.raw")).to_contain_text(found[2].mrn)
    await panel.get_by_role("button", name="Hide content").click()
    await page.screenshot(path=SCREENSHOT.with_name(f"{SCREENSHOT.stem}-messages.png"))

    # A viewer finds and opens the same message, and is offered no content.
    viewer = await sign_in("viewer")
    await viewer.goto(f"{engine.url}#/messages?control_id=BRFIND2")
    await viewer.locator("table.found tbody tr").get_by_role("link").click()
    panel = viewer.get_by_role("complementary")
    await expect(panel).to_contain_text("BRFIND2")
    await expect(panel.locator(".hops")).to_contain_text("received")
    await expect(viewer.get_by_role("button", name="View content…")).to_have_count(0)
    text = await viewer.locator("body").inner_text()
    assert found[2].mrn not in text and found[2].family not in text
