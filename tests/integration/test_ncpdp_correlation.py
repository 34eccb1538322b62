"""Answers correlated with what they answer, through a real engine: a NewRx goes out
through one channel, the pharmacy's later Error (or a CancelRxResponse to a CancelRx)
comes back through another, and both are linked by RelatesToMessageID = the original's
Header/MessageID: `conduit audit show` on the NewRx prints the answer's hops under it,
the status API's message view lists it under `related`, and each side has a
`correlated` audit event holding ids and the answer's type, nothing of the patient."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from engine.events import Kind
from engine.store.schema import audit, message_relations
from tests.harness import free_port
from tests.integration.test_api_access import WebHarness, bearer

NEWRX = (Path(__file__).parent.parent / "fixtures" / "ncpdp" / "newrx_default_ns.xml"
         ).read_bytes()
NEWRX_ID = "a3f1c2d4e5b6478899aa0011bb22cc33"
CONDUIT = Path(sys.executable).parent / "conduit"


def script(message_id: str, body: str, relates_to: str = "", prefix: str = "") -> bytes:
    """A SCRIPT message from the pharmacy (prefixed namespace when `prefix`)."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f"xmlns{':' + prefix if prefix else ''}"
    relates = (f"<{p}RelatesToMessageID>{relates_to}</{p}RelatesToMessageID>"
               if relates_to else "")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{p}Message '
            f'{xmlns}="http://www.ncpdp.org/schema/SCRIPT" TransactionVersion="2017071">'
            f'<{p}Header><{p}To Qualifier="C">HARBORSIDEEHR</{p}To>'
            f'<{p}From Qualifier="P">7701630</{p}From><{p}MessageID>{message_id}</{p}MessageID>'
            f"{relates}<{p}SentTime>2026-12-01T15:00:00Z</{p}SentTime></{p}Header>"
            f"<{p}Body>{body}</{p}Body></{p}Message>").encode()


ERROR_900 = ("<Error><Code>900</Code><DescriptionCode>1000</DescriptionCode>"
             "<Description>Lindqvist, Astrid: no such patient</Description></Error>")
CANCELRX = ("<CancelRx><Patient><HumanPatient><Name><LastName>Lindqvist</LastName>"
            "<FirstName>Astrid</FirstName></Name></HumanPatient></Patient>"
            "<MedicationPrescribed><DrugDescription>Lisinopril 10 mg tablet"
            "</DrugDescription></MedicationPrescribed></CancelRx>")
CANCEL_RESPONSE = ("<CancelRxResponse><Response><Approved/></Response>"
                   "</CancelRxResponse>")


def channel(port: int, out: Path) -> str:
    return f"""
        format: ncpdp
        validation: lenient
        source: {{type: http, port: {port}, path: /script, auth: {{type: none}},
                  reply_status: always-ok}}
        destinations:
          - {{name: files, type: file, directory: "{out}"}}
        """


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request, tmp_path):
    harness = WebHarness(tmp_path)
    if request.param == "postgres":  # the link and its query on both stores
        harness.store_url = request.getfixturevalue("pg_url")
    prescriber, pharmacy = free_port(), free_port()
    await harness.start({"prescriptions": channel(prescriber, tmp_path / "out-rx"),
                         "pharmacy-answers": channel(pharmacy, tmp_path / "out-answers")})
    tokens = harness.add_users()
    try:
        yield harness, prescriber, pharmacy, tokens
    finally:
        await harness.stop()


async def post(port: int, body: bytes) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/script", data=body) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["X-Conduit-Message-Id"]


async def detail(harness: WebHarness, token: str, message_id: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(
            f"{harness.base}/api/messages/{message_id}", headers=bearer(token)) as resp:
        assert resp.status == 200
        return await resp.json()


def audited(harness: WebHarness, message_id: str) -> list[tuple[str, str]]:
    assert harness.engine is not None and harness.engine.services is not None
    with harness.engine.services.db.connect() as conn:
        return [(r.kind, r.detail) for r in conn.execute(
            sa.select(audit.c.kind, audit.c.detail).where(audit.c.message_id == message_id)
            .order_by(audit.c.seq))]


async def audit_show(harness: WebHarness, message_id: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    proc = await asyncio.create_subprocess_exec(
        str(CONDUIT), "--conf", str(harness.root / "conduit.yaml"), "audit", "show",
        "--message", message_id, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_a_pharmacys_error_is_shown_with_the_newrx_it_answers(world):
    harness, prescriber, pharmacy, tokens = world
    newrx = await post(prescriber, NEWRX)
    error = await post(pharmacy, script("ph-err-1", ERROR_900, NEWRX_ID))

    shown = await detail(harness, tokens["analyst"], newrx)
    assert [(r["message_id"], r["type"], r["relation"]) for r in shown["related"]] == [
        (error, "Error", "answered-by")]
    assert shown["related"][0]["status"] == "accepted" and shown["related"][0]["at"] > 0
    answer = await detail(harness, tokens["viewer"], error)
    assert [(r["message_id"], r["type"], r["relation"]) for r in answer["related"]] == [
        (newrx, "NewRx", "answers")]

    await harness.settle(lambda: Kind.ACKNOWLEDGED in dict(audited(harness, newrx)))
    printed = await audit_show(harness, newrx)
    head, _, tail = printed.partition(f"related: {error} Error (answered-by this message)")
    assert tail, printed
    assert re.search(r"acknowledged .*\"verdict\":\"accepted\"}  answered Status 000$", head,
                     re.MULTILINE), head
    assert "correlated" in head and "correlated" in tail and "received" in tail
    assert "  answered " not in tail  # an Error is never answered: none is claimed
    assert "Lindqvist" not in printed  # the Error's Description quotes the patient

    kinds = dict(audited(harness, newrx))
    assert f'"answer":"{error}"' in kinds[Kind.CORRELATED]
    assert '"type":"Error"' in kinds[Kind.CORRELATED]
    assert f'"relates_to":"{newrx}"' in dict(audited(harness, error))[Kind.CORRELATED]


async def test_a_cancel_response_in_a_prefixed_namespace_correlates(world):
    harness, prescriber, pharmacy, tokens = world
    cancel = await post(prescriber, script("cx-20261201-7", CANCELRX))
    response = await post(pharmacy, script("ph-cx-7", CANCEL_RESPONSE, "cx-20261201-7",
                                           prefix="ncpdp"))
    shown = await detail(harness, tokens["analyst"], cancel)
    assert [(r["message_id"], r["type"]) for r in shown["related"]] == [
        (response, "CancelRxResponse")]


async def test_an_answer_to_nothing_we_know_is_taken_on_unlinked(world):
    harness, _, pharmacy, tokens = world
    status = await post(pharmacy, script("ph-st-9", "<Status><Code>000</Code></Status>",
                                         "never-sent-0001"))
    assert (await detail(harness, tokens["analyst"], status))["related"] == []
    assert Kind.CORRELATED not in dict(audited(harness, status))
    assert harness.engine is not None and harness.engine.services is not None
    with harness.engine.services.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(message_relations)
                            ).scalar() == 0


async def test_the_engines_own_answers_are_audited_with_their_code(world):
    harness, prescriber, _, _ = world
    accepted = await post(prescriber, NEWRX.replace(NEWRX_ID.encode(), b"b7" * 16))
    refused = await post(prescriber, b"<Message><Header/></Message>")
    await harness.settle(lambda: Kind.ACKNOWLEDGED in dict(audited(harness, refused)))
    await harness.settle(lambda: Kind.ACKNOWLEDGED in dict(audited(harness, accepted)))
    assert dict(audited(harness, accepted))[Kind.ACKNOWLEDGED] == '{"verdict":"accepted"}'
    assert '"code":"900"' in dict(audited(harness, refused))[Kind.ACKNOWLEDGED]
    printed = await audit_show(harness, refused)
    assert re.search(r"acknowledged .*  answered Error 900$", printed, re.MULTILINE), printed


async def test_the_original_from_the_answers_receiver_wins_over_a_newer_one(world):
    """A MessageID is unique per sender only: the answer is linked to the message whose
    sender it is addressed to, even when another sender used the same id since."""
    harness, prescriber, pharmacy, tokens = world
    ours = await post(prescriber, NEWRX)
    other = NEWRX.replace(b"<From Qualifier=\"C\">HARBORSIDEEHR</From>",
                          b"<From Qualifier=\"C\">LAKESIDECLINIC</From>")
    assert other != NEWRX
    theirs = await post(prescriber, other)
    status = await post(pharmacy, script("ph-st-2", "<Status><Code>000</Code></Status>",
                                         NEWRX_ID))
    linked = (await detail(harness, tokens["analyst"], status))["related"]
    assert [r["message_id"] for r in linked] == [ours] and ours != theirs
