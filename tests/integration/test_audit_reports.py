"""The auditor's reports through real traffic: the accounting of disclosures for one
patient (CLI and API) and the signed export of the chain, checked by the CLI in another
process that has only the export file and the public key.

One engine serves the module: an MLLP channel mapping ADT to FHIR under
hl7v2-adt-to-fhir@1 and delivering to two file destinations; two patients' admissions go
through it, and an analyst reads one of them with a reason.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine import audit_export
from engine.security.signing import public_pem
from engine.store import disclosures
from engine.store.schema import audit
from tests.harness import REPO, adt, exchange, free_port
from tests.integration.test_api_access import WebHarness, audit_rows, bearer, last_seq

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Distinctive fake patients: neither may appear in any report, export or audit row.
MRN, NAME = "QX40417ZR", "ZYMURGELLA"
OTHER_MRN, OTHER_NAME = "QX99812KT", "VOBBLESNIT"
MAPPING = "hl7v2-adt-to-fhir@1"
REASON = "chart review, ticket 4471"


class World(msgspec.Struct):
    harness: WebHarness
    engine: Any
    tokens: dict[str, str]
    conf: Path
    ours: list[str]  # the patient's message ids
    theirs: list[str]  # the other patient's


def channel(port: int, root: Path) -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 2s}}
    mapping: {MAPPING}
    destinations:
      - {{name: files_a, type: file, directory: "{root / 'a'}"}}
      - {{name: files_b, type: file, directory: "{root / 'b'}"}}
    """


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    harness = WebHarness(root)
    try:
        port = free_port()
        engine = await harness.start({"adt": channel(port, root)})
        tokens = harness.add_users()
        acks = await exchange(port, [adt("DIS1", MRN, family=NAME),
                                     adt("DIS2", OTHER_MRN, family=OTHER_NAME),
                                     adt("DIS3", MRN, event="A08", family=NAME)])
        assert [a.value("MSA-1") for a in acks] == ["AA", "AA", "AA"]
        stats = engine.services.stats
        await harness.settle(lambda: stats.count("sent", "adt", "files_a") == 3
                             and stats.count("sent", "adt", "files_b") == 3)
        with engine.services.db.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, control_id FROM messages ORDER BY id").all()
        ids = {control: mid for mid, control in rows}
        ours, theirs = [ids["DIS1"], ids["DIS3"]], [ids["DIS2"]]
        async with aiohttp.ClientSession() as client, client.get(
                f"{harness.base}/api/messages/{ours[0]}",
                params={"content": "1", "reason": REASON},
                headers=bearer(tokens["analyst"])) as resp:
            assert resp.status == 200
        yield World(harness, engine, tokens, root / "conduit.yaml", ours, theirs)
    finally:
        await harness.stop()


def conduit(*args: str, cwd: Path | None = None, conf: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "engine.cli", *(("--conf", str(conf)) if conf else ()),
            *args]
    return subprocess.run(argv, cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def no_phi(text: str) -> None:
    for secret in (MRN, NAME, OTHER_MRN, OTHER_NAME):
        assert secret not in text, secret


# -- accounting of disclosures ----------------------------------------------------------------

async def test_cli_json_lists_every_hop_and_read_of_the_patient_only(world):
    before = last_seq(world.engine)
    run = conduit("audit", "disclosures", "--patient", f"{MRN}^^^NORTHWING^MR",
                  "--format", "json", conf=world.conf)
    assert run.returncode == 0, run.stderr
    no_phi(run.stdout + run.stderr)
    report = json.loads(run.stdout)
    events = report["events"]
    assert {e["message_id"] for e in events if e["message_id"]} == set(world.ours)
    first = [e for e in events if e["message_id"] == world.ours[0]]
    kinds = [e["event"] for e in first]
    for kind in ("received", "parsed", "acknowledged", "mapped", "queued", "sent", "viewed"):
        assert kind in kinds, kinds
    received = next(e for e in first if e["event"] == "received")
    assert received["channel"] == "adt" and received["peer"].startswith("127.0.0.1")
    assert received["sender"] and received["message_type"].startswith("ADT")
    mapped = next(e for e in first if e["event"] == "mapped")
    assert mapped["mapping"] == MAPPING and MAPPING in mapped["what"]
    sent = {e["destination"]: e for e in first if e["event"] == "sent"}
    assert set(sent) == {"files_a", "files_b"}
    assert all(e["mapping"] == MAPPING and e["channel"] == "adt" for e in sent.values())
    viewed = next(e for e in first if e["event"] == "viewed")
    assert (viewed["actor"], viewed["reason"]) == ("web:ana", REASON)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    # the report's reading is itself audited: who, the pseudonym, the period; no identifier
    [asked] = audit_rows(world.engine, audit.c.seq > before, audit.c.kind == "admin")
    assert asked.patient == report["patient_pseudonym"] and asked.actor.startswith("cli:")
    detail = json.loads(asked.detail)
    assert detail["action"] == "audit-disclosures" and detail["events"] == len(events)
    assert {"from", "to"} <= set(detail)
    every_row = "".join(str(tuple(r)) for r in audit_rows(world.engine))
    no_phi(every_row)


async def test_cli_csv_has_a_stable_header_and_the_same_rows(world):
    bare = conduit("audit", "disclosures", "--patient", MRN, conf=world.conf)
    assert bare.returncode == 0, bare.stderr
    rows = list(csv.DictReader(io.StringIO(bare.stdout)))
    assert bare.stdout.splitlines()[0] == ",".join(disclosures.COLUMNS)
    assert {r["message_id"] for r in rows if r["message_id"]} == set(world.ours)
    sent = [r for r in rows if r["event"] == "sent"]
    assert len(sent) == 4 and {r["destination"] for r in sent} == {"files_a", "files_b"}
    assert all(json.loads(r["detail"])["attempt"] == 1 for r in sent)
    # the same patient by a FHIR token (system|value) finds the same hops
    token = conduit("audit", "disclosures", "--patient", f"urn:oid:1.2.3|{MRN}",
                    conf=world.conf)
    hops = [r["seq"] for r in rows if r["event"] != "admin"]
    assert [r["seq"] for r in csv.DictReader(io.StringIO(token.stdout))
            if r["event"] != "admin"] == hops


async def test_period_bounds_the_report(world):
    svc = world.engine.services
    pseudonym = svc.vault.pseudonym(MRN)

    def hops(since: str | None, until: str | None) -> list[str]:
        lo, hi = disclosures.period(since, until, 2**62)
        with svc.db.connect() as conn:
            return [r["event"] for r in disclosures.find(conn, pseudonym, lo, hi)]

    assert "sent" in hops("2000-01-01", None)
    assert hops("2999-01-01", "2999-12-31") == [] and hops(None, "2000-01-01") == []
    bad = conduit("audit", "disclosures", "--patient", MRN, "--from", "last tuesday",
                  conf=world.conf)
    assert bad.returncode == 2 and "not a date" in bad.stderr


async def _ask(world: World, role: str, method: str, body: dict[str, str] | None = None,
               query: dict[str, str] | None = None) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as client, client.request(
            method, f"{world.harness.base}/api/audit/disclosures", json=body, params=query,
            headers=bearer(world.tokens[role])) as resp:
        return resp.status, resp.content_type, await resp.text()


async def test_api_gives_the_report_to_the_auditor_and_admin(world):
    status, kind, text = await _ask(world, "auditor", "POST", {"patient": MRN})
    assert (status, kind) == (200, "application/json"), text
    no_phi(text)
    events = json.loads(text)["events"]
    assert {e["message_id"] for e in events if e["message_id"]} == set(world.ours)
    assert {e["destination"] for e in events if e["event"] == "sent"} == {"files_a",
                                                                          "files_b"}
    status, kind, text = await _ask(world, "admin", "GET", query={
        "patient": MRN, "format": "csv", "from": "2000-01-01"})
    assert (status, kind) == (200, "text/csv")
    assert text.splitlines()[0] == ",".join(disclosures.COLUMNS)
    asked = audit_rows(world.engine, audit.c.actor == "web:aud", audit.c.kind == "admin")
    assert asked and json.loads(asked[-1].detail)["action"] == "audit-disclosures"
    status, _, text = await _ask(world, "auditor", "POST", {"patient": MRN, "from": "x"})
    assert status == 400 and "not a date" in text


@pytest.mark.parametrize("role", ["viewer", "operator", "analyst"])
async def test_api_refuses_other_roles_and_audits_the_refusal(world, role):
    before = last_seq(world.engine)
    status, _, text = await _ask(world, role, "POST", {"patient": MRN})
    assert status == 403 and json.loads(text)["error"] == "forbidden"
    [denied] = audit_rows(world.engine, audit.c.seq > before)
    assert denied.kind == "denied" and denied.patient is None
    assert json.loads(denied.detail)["route"] == "/api/audit/disclosures"


# -- the signed export ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(world, tmp_path_factory) -> Path:
    """The export and the public key, copied alone into a folder of their own."""
    out = tmp_path_factory.mktemp("made") / "audit.json"
    run = conduit("audit", "export", "--from", "2000-01-01", "--out", str(out),
                  conf=world.conf)
    assert run.returncode == 0, run.stderr
    assert "exported" in run.stdout
    key = conduit("audit", "public-key", conf=world.conf)
    assert key.returncode == 0 and key.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    away = tmp_path_factory.mktemp("auditor")
    shutil.copy(out, away / "audit.json")
    (away / "engine.pem").write_text(key.stdout)
    return away


def check_export(folder: Path, name: str = "audit.json", key: str = "engine.pem"
                 ) -> subprocess.CompletedProcess[str]:
    """check-export where there is no store, no conf and no engine key."""
    return conduit("audit", "check-export", name, "--public-key", key, cwd=folder)


async def test_export_checks_out_on_another_machine(world, exported):
    assert sorted(p.name for p in exported.iterdir()) == ["audit.json", "engine.pem"]
    run = check_export(exported)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok ") and "signed by the key given" in run.stdout
    text = (exported / "audit.json").read_text()
    no_phi(text)
    payload = json.loads(text)["payload"]
    assert payload["rows"][0]["seq"] == 1 and payload["start"]["hash"] == "0" * 64
    assert payload["engine_version"] and payload["chain_head"]["seq"] >= payload["events"]
    kinds = {r["kind"] for r in payload["rows"]}
    assert {"received", "mapped", "sent", "viewed"} <= kinds
    pseudonyms = {r["patient"] for r in payload["rows"] if r["patient"]}
    assert len(pseudonyms) == 2  # keyed stand-ins, never the identifiers
    made = audit_rows(world.engine, audit.c.kind == "admin")
    assert any(json.loads(r.detail).get("action") == "audit-export" for r in made)
    assert not list(exported.glob("*.db")) and not (exported / "data").exists()


def _edit(rows: list[dict[str, Any]]) -> None:
    rows[3]["actor"] = "someone-else"


def _drop(rows: list[dict[str, Any]]) -> None:
    del rows[4]


def _swap(rows: list[dict[str, Any]]) -> None:
    rows[2], rows[3] = rows[3], rows[2]


@pytest.mark.parametrize("change", [_edit, _drop, _swap], ids=["edit", "drop", "swap"])
async def test_a_tampered_export_fails(exported, change):
    doc = json.loads((exported / "audit.json").read_text())
    change(doc["payload"]["rows"])
    data = json.dumps(doc).encode()
    problems, _ = audit_export.check(data, (exported / "engine.pem").read_bytes())
    assert any("signature does not match" in p for p in problems), problems
    if change is _edit:  # and the CLI says so, with a failing exit, on its own
        (exported / "bad.json").write_bytes(data)
        run = check_export(exported, "bad.json")
        assert run.returncode == 1
        assert "TAMPERED" in run.stderr and "signature does not match" in run.stderr
    else:  # the links say what moved, too
        assert any("missing" in p or "out of order" in p for p in problems), problems


async def test_an_export_checked_with_another_key_fails(exported):
    (exported / "other.pem").write_text(public_pem(Ed25519PrivateKey.generate()))
    run = check_export(exported, key="other.pem")
    assert run.returncode == 1 and "signed by another key" in run.stderr


async def test_the_links_catch_what_the_signature_would_vouch_for(exported):
    """Re-signed rows (as a faulty or dishonest exporter would) still fail the links."""
    signer = Ed25519PrivateKey.generate()
    pem = public_pem(signer).encode()
    original = json.loads((exported / "audit.json").read_text())["payload"]

    def signed(rows: list[dict[str, Any]]) -> bytes:
        payload = {**original, "rows": rows, "events": len(rows)}
        sig = base64.b64encode(signer.sign(audit_export.canonical(payload))).decode()
        return json.dumps({"payload": payload, "signature": {
            "algorithm": "Ed25519", "key": audit_export.fingerprint(signer.public_key()),
            "value": sig}}).encode()

    rows = original["rows"]
    assert audit_export.check(signed(rows), pem)[0] == []
    dropped = audit_export.check(signed(rows[:4] + rows[5:]), pem)[0]
    assert any("missing" in p for p in dropped) and any("link" in p for p in dropped)
    swapped = audit_export.check(signed([rows[0], rows[2], rows[1], *rows[3:]]), pem)[0]
    assert any("out of order" in p or "missing" in p for p in swapped)
    relinked = [dict(r) for r in rows]
    relinked[0]["prev_hash"] = "f" * 64
    assert any("does not link" in p for p in audit_export.check(signed(relinked), pem)[0])
    cut = audit_export.check(signed(rows[1:]), pem)[0]  # no longer from the start hash
    assert cut


async def test_searches_by_patient_and_api_exports_are_reads_on_the_record(world):
    """A list of a patient's messages or events discloses as much as a report does: each
    is an event naming who looked and how much they saw, in that patient's accounting;
    an export of the trail through the API is on the record as the CLI's is."""
    before = last_seq(world.engine)
    pseudonym = world.engine.services.vault.pseudonym(MRN)
    async with aiohttp.ClientSession() as client:
        for role, path in (("analyst", "/api/messages"), ("auditor", "/api/audit")):
            async with client.get(f"{world.harness.base}{path}", params={"patient": MRN},
                                  headers=bearer(world.tokens[role])) as resp:
                assert resp.status == 200
        async with client.get(f"{world.harness.base}/api/audit/export",
                              params={"channel": "adt"},
                              headers=bearer(world.tokens["auditor"])) as resp:
            assert resp.status == 200
            await resp.read()
    rows = audit_rows(world.engine, audit.c.seq > before, audit.c.kind == "admin")
    seen = [(r.actor, r.patient, json.loads(r.detail)) for r in rows]
    assert seen[0] == ("web:ana", pseudonym,
                       {"action": "patient-search", "of": "messages", "found": 2})
    assert seen[1][:2] == ("web:aud", pseudonym)
    assert seen[1][2]["action"] == "patient-search" and seen[1][2]["of"] == "audit"
    assert seen[2] == ("web:aud", None, {"action": "audit-export", "via": "api",
                                         "channel": "adt"})
    no_phi("".join(str(tuple(r)) for r in rows))
    status, _, text = await _ask(world, "auditor", "POST", {"patient": MRN})
    assert status == 200
    searched = [e for e in json.loads(text)["events"] if e["event"] == "admin"
                and "searched by patient" in e["what"]]
    assert {e["actor"] for e in searched} == {"web:ana", "web:aud"}
