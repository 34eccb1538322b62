"""What a FHIR server answered to a dead letter, as the people around it see it over the
real API: the analyst reads the OperationOutcome (a PHI view, audited with the stated
reason); viewers and operators see only the PHI-free summary, in the message's detail
and in the queues view's bounded list of dead letters."""

from __future__ import annotations

import json

import aiohttp
import sqlalchemy as sa

from engine.store.schema import audit, dead_letter_answers
from tests.fhir_server import Answer
from tests.harness import EngineHarness, adt, exchange, free_port
from tests.integration.test_api_access import WebHarness, audit_rows, bearer
from tests.integration.test_fhir_destination import patient_channel

NAME, MRN = "GRISTLEBURY", "MRN77700042"
DIAGNOSTICS = f"Patient {NAME} (MRN {MRN}) already exists with another birth date"
REASON = "HTTP 422 Unprocessable Entity: 1 issue (error: processing at Patient.identifier)"


async def get(client, url: str, token: str, **params) -> tuple[int, dict | list]:
    async with client.get(url, headers=bearer(token), params=params) as resp:
        return resp.status, await resp.json()


async def test_the_analyst_reads_the_kept_outcome_and_others_do_not(tmp_path, fhir):
    fhir.default = Answer(422, outcome=DIAGNOSTICS)
    harness = WebHarness(tmp_path)
    try:
        port = free_port()
        engine = await harness.start({"adt": patient_channel(port, fhir.url)})
        tokens = harness.add_users()
        await exchange(port, [adt(f"D{i}", f"{MRN}{i}" if i else MRN, family=NAME)
                              for i in range(25)])
        await harness.settle(lambda: engine.services.stats.count("dead-lettered") == 25)
        base = harness.base
        async with aiohttp.ClientSession() as client:
            # The queues view: the newest 20 dead letters, ids and summaries only.
            for role in ("viewer", "operator", "analyst"):
                status, queues = await get(client, f"{base}/api/queues", tokens[role])
                [ehr] = [q for q in queues if q["destination"] == "adt/ehr"]
                assert ehr["dead"] == 25 and len(ehr["dead_letters"]) == 20
                assert all(d["answer_kept"] and d["last_error"] == REASON
                           for d in ehr["dead_letters"])
                assert NAME not in json.dumps(queues) and MRN not in json.dumps(queues)
            listed = {d["message_id"] for d in ehr["dead_letters"]}
            # The channel's page lists the same, for the status page's dead-letter card.
            status, channel = await get(client, f"{base}/api/channels/adt", tokens["viewer"])
            assert [(d["destination"], d["message_id"]) for d in channel["dead_letters"]] == [
                ("ehr", d["message_id"]) for d in ehr["dead_letters"]]
            assert NAME not in json.dumps(channel) and MRN not in json.dumps(channel)
            first = (await get(client, f"{base}/api/messages", tokens["viewer"],
                               control_id="D0"))[1]["messages"][0]["id"]
            assert first not in listed  # newest first: the oldest five are left out

            # The message's detail: the answer's metadata, for anyone who sees status.
            for role in ("viewer", "operator"):
                status, detail = await get(client, f"{base}/api/messages/{first}",
                                           tokens[role])
                assert status == 200
                [kept] = detail["answers"]
                assert (kept["destination"], kept["code"], kept["reason"]) == (
                    "adt/ehr", "422", REASON)
                assert kept["content_type"] == "application/fhir+json"
                assert "content" not in kept and NAME not in json.dumps(detail)
                status, refused = await get(client, f"{base}/api/messages/{first}",
                                            tokens[role], content="1", reason="look")
                assert status == 403 and NAME not in json.dumps(refused)

            # The analyst states why, and reads what the server said.
            status, detail = await get(client, f"{base}/api/messages/{first}",
                                       tokens["analyst"], content="1",
                                       reason="INC-7: why did the EHR refuse it")
            assert status == 200
            [answer] = detail["content"]["answers"]
            outcome = json.loads(answer["content"])
            assert outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["diagnostics"] == DIAGNOSTICS
            assert answer["reason"] == REASON
        viewed = audit_rows(engine, audit.c.kind == "viewed", audit.c.message_id == first)
        assert [(v.actor, json.loads(v.detail)["reason"]) for v in viewed] == [
            ("web:ana", "INC-7: why did the EHR refuse it")]
        with engine.services.db.connect() as conn:
            details = conn.execute(sa.select(audit.c.detail)).scalars().all()
        assert not any(NAME in d or MRN in d for d in details)
    finally:
        await harness.stop()


async def test_a_retried_message_that_finally_goes_through_keeps_no_answer(harness, fhir):
    fhir.script.append(Answer(503, outcome=DIAGNOSTICS))
    port = free_port()
    engine = await harness.start({"adt": patient_channel(port, fhir.url)})
    await exchange(port, [adt("R1", MRN, family=NAME)])
    await fhir.wait_for(1)
    await harness.settle(lambda: engine.services.stats.count("sent") == 1)
    with engine.services.db.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(
            dead_letter_answers)).scalar()
    assert [r.status for r in fhir.requests] == [503, 201] and kept == 0


async def test_answers_are_kept_and_opened_on_postgresql_too(tmp_path, fhir, pg_url):
    fhir.default = Answer(422, outcome=DIAGNOSTICS)
    harness = EngineHarness(tmp_path, store_url=pg_url)
    try:
        port = free_port()
        engine = await harness.start({"adt": patient_channel(port, fhir.url)})
        await exchange(port, [adt("PG1", MRN, family=NAME)])
        await harness.settle(lambda: engine.services.stats.count("dead-lettered") == 1)
        assert engine.services.db.dialect.name == "postgresql"
        [letter] = engine.services.queue.dead_letters("adt/ehr")
        assert letter.answer_kept and letter.last_error == REASON
        content = await engine.ops.content(letter.message_id, "test", "PG check")
        [answer] = content["answers"]
        assert json.loads(answer["content"])["issue"][0]["diagnostics"] == DIAGNOSTICS
    finally:
        await harness.stop()
