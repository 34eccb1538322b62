"""A stored message whose content key this engine's provider does not hold (a row brought
from a store whose keys were not copied), as people meet it over the real API: a JSON
error naming the record and the key, not a traceback; its metadata still answers."""

from __future__ import annotations

import time

import aiohttp

from engine.security.crypto import Vault, content_hash
from engine.security.key_providers import FileKeys
from engine.security.keys import KeyRing
from engine.store.messages import MessageStore
from engine.store.writer import UnitOfWork
from tests.harness import free_port
from tests.integration.test_api_operations import Api, WebHarness


async def test_content_under_a_missing_key_answers_a_named_json_error(tmp_path):
    web = WebHarness(tmp_path)
    try:
        port = free_port()
        engine = await web.start({"adt": f"""
    source: {{type: mllp, port: {port}}}
    destinations:
      - {{name: files, type: file, directory: "{tmp_path / 'out'}"}}
    """})
        tokens = web.add_users()
        svc = engine.services
        foreign = Vault(KeyRing.open(FileKeys(tmp_path / "elsewhere")))
        raw = b"MSH|^~\\&|EPIC|NW|||2024||ADT^A01|F1|P|2.5.1"
        uow = UnitOfWork()
        MessageStore(svc.db, foreign).add_message(uow, {
            "id": "0" * 25 + "F", "channel": "adt", "received_at": time.time(),
            "status": "accepted", "message_type": "ADT^A01", "control_id": "F1",
            "peer": "", "patient": None, "content_hash": content_hash(raw), "error": None},
            raw)
        await svc.writer.commit(uow)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            analyst = Api(client, web.base, tokens["analyst"])
            mid = "0" * 25 + "F"
            assert (await analyst.get(f"/api/messages/{mid}"))["control_id"] == "F1"
            status, body = await analyst.call(
                "GET", f"/api/messages/{mid}", params={"content": "1", "reason": "INC-7"})
            assert status == 500 and body["error"] == "key-missing"
            assert f"record {mid} needs content key {foreign.key_id}" in body["message"]
            assert (await analyst.get("/api/channels/adt"))["name"] == "adt"  # still serving
    finally:
        await web.stop()
