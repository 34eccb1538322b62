"""Change control over real HTTP and a running engine: the revision history and diff on
the API, approval with a session's CSRF token (admin only, never the author), and the
engine swapping to the approved revision without a restart, loaded from the store."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from engine.change.revisions import RevisionStore
from engine.change.snapshot import Snapshot, take
from engine.security.roles import Role
from engine.store.schema import audit
from tests.harness import EngineHarness, adt, exchange, free_port, written


def channel(port: int, out: Path) -> str:
    return textwrap.dedent(f"""\
        source: {{type: mllp, port: {port}, read_timeout: 2s}}
        destinations:
          - {{name: files, type: file, directory: "{out}"}}
        """)


def browser() -> aiohttp.ClientSession:
    """A client that keeps the session cookie of 127.0.0.1 (an address, not a name)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def session(client: aiohttp.ClientSession, base: str, token: str) -> dict[str, str]:
    """Sign in as the browser does: the CSRF header every POST must carry."""
    async with client.post(f"{base}/api/session", json={"token": token}) as resp:
        assert resp.status == 200
        return {"X-CSRF-Token": (await resp.json())["csrf"]}


@pytest.mark.asyncio
async def test_an_admin_approves_on_the_api_and_the_engine_follows(tmp_path):
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    web_port, port = free_port(), free_port()
    harness = EngineHarness(tmp_path, web_port=web_port, mappings_dir=mappings,
                            conf="change_control:\n  approvals: 1\n")
    first, second = tmp_path / "out-1", tmp_path / "out-2"
    engine = await harness.start({"adt": channel(port, first)})
    try:
        svc = engine.services
        store = RevisionStore(svc.db, svc.keys.audit)
        config = engine.config
        store.make(take(config.channels_dir, mappings, []), author="ann", actor="cli:ann",
                   reason="bootstrap", approvals=0, force_live=True)
        users = engine.users
        for name, role in (("ann", Role.ADMIN), ("bob", Role.ADMIN), ("nia", Role.ANALYST)):
            users.add(name, role)
        tokens = {name: users.new_token(name) for name in ("ann", "bob", "nia")}
        (tmp_path / "channels" / "adt.yaml").write_text(channel(port, second))
        pending = store.make(take(config.channels_dir, mappings, []), author="ann",
                             actor="cli:ann", reason="move the output folder", approvals=1)
        await harness.settle(lambda: engine.revision == 1, timeout=5)
        base = f"http://127.0.0.1:{web_port}"
        approve = f"{base}/api/revisions/{pending.number}/approve"

        async with browser() as client:
            headers = await session(client, base, tokens["nia"])
            async with client.get(f"{base}/api/revisions") as resp:
                listing = await resp.json()
            assert listing["live"] == 1 and listing["approvals_required"] == 1
            assert [r["state"] for r in listing["revisions"]] == ["pending", "live"]
            assert listing["channels"]["adt"]["revision"] == 1
            async with client.get(f"{base}/api/revisions/{pending.number}") as resp:
                detail = await resp.json()
            assert f'-  - {{name: files, type: file, directory: "{first}"}}' in detail["diff"]
            assert f'+  - {{name: files, type: file, directory: "{second}"}}' in detail["diff"]
            async with client.post(approve, headers=headers) as resp:
                assert resp.status == 403  # an analyst may not approve

        async with browser() as client:
            headers = await session(client, base, tokens["ann"])
            async with client.post(approve) as resp:
                assert resp.status == 403 and (await resp.json())["error"] == "csrf"
            async with client.post(approve, headers=headers) as resp:
                assert resp.status == 403, "the author approved their own revision"
                assert "another admin" in (await resp.json())["message"]

        await exchange(port, [adt("BEFORE", "1001")])
        await harness.settle(lambda: len(written(first)) == 1)
        assert engine.revision == 1

        async with browser() as client:
            headers = await session(client, base, tokens["bob"])
            async with client.post(approve, headers=headers) as resp:
                assert resp.status == 200
                assert (await resp.json())["state"] == "live"
        await harness.settle(lambda: engine.revision == pending.number, timeout=10)
        await exchange(port, [adt("AFTER", "1002")])
        await harness.settle(lambda: len(written(second)) == 1)
        assert len(written(first)) == 1, "a message after the swap went to the old"
        with svc.db.connect() as conn:
            details = [json.loads(d) for d in conn.execute(
                sa.select(audit.c.detail).where(audit.c.kind == "admin")).scalars()]
        applied = [d for d in details if d["action"] == "revision-applied"]
        assert [(d["revision"], d["swapped"], d["host"]) for d in applied] == [
            (1, [], socket.gethostname()), (pending.number, ["adt"], socket.gethostname())]
        assert [d["approver"] for d in details if d["action"] == "revision-approved"] == [
            "bob"]
    finally:
        await harness.stop()


async def test_a_live_revision_that_cannot_run_leaves_the_channels_running(tmp_path, caplog):
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    port = free_port()
    harness = EngineHarness(tmp_path, mappings_dir=mappings)
    out = tmp_path / "out"
    engine = await harness.start({"adt": channel(port, out)})
    try:
        svc = engine.services
        store = RevisionStore(svc.db, svc.keys.audit)
        broken = channel(port, out) + "colour: blue\n"
        store.make(Snapshot({"adt.yaml": broken}), author="ann", actor="cli:ann",
                   reason="typo", approvals=0)
        await harness.settle(lambda: "cannot run here" in caplog.text, timeout=5)
        assert "adt.yaml:4:1: colour: unknown setting" in caplog.text
        assert engine.revision is None  # still what it started with
        await exchange(port, [adt("STILL", "1003")])
        await harness.settle(lambda: len(written(out)) == 1)
    finally:
        await harness.stop()
