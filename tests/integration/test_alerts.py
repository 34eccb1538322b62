"""Alerts and service levels in a running engine: a FHIR server answering 503 backs a
queue up; a real webhook receiver on 127.0.0.1 hears the alert fire, then clear once the
server recovers; the audit trail holds both; the service levels count the late ones."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
import sqlalchemy as sa
from aiohttp import web

from engine.store.schema import audit
from engine.web.metrics import render
from tests.fhir_server import Answer
from tests.harness import adt, exchange, free_port
from tests.loopback import LoopbackServer


class WebhookReceiver(LoopbackServer):
    """Collects the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict] = []

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        await self.serve(app)
        return self


    def states(self, rule: str) -> list[str]:
        return [p["state"] for p in self.received if p["rule"] == rule]


@pytest.fixture
async def receiver():
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


def channel(port: int, fhir_url: str) -> str:
    return f"""
    source: {{type: mllp, port: {port}, read_timeout: 1s}}
    mapping: hl7v2-adt-to-fhir@1
    retry: {{max_attempts: 1000, initial_delay: 50ms, max_delay: 100ms, jitter: 0}}
    destinations:
      - {{name: fhir, type: fhir, url: "{fhir_url}", timeout: 2s}}
    """


def backlog_alert(receiver: WebhookReceiver) -> str:
    """An `alerts:` section with one rule, fhir-backlog (more than 2 entries queued for
    adt/fhir), evaluated every 100 ms and sent to `receiver`."""
    return f"""
    alerts:
      interval: 100ms
      repeat: 0s
      webhook: {{url: "http://127.0.0.1:{receiver.port}/hook", timeout: 2s}}
      rules:
        - {{name: fhir-backlog, kind: queue_depth, destination: adt/fhir, threshold: 2}}
    """


def alert_rows(engine) -> list[dict]:
    with engine.services.db.connect() as conn:
        rows = conn.execute(sa.select(audit.c.actor, audit.c.channel, audit.c.destination,
                                      audit.c.detail)
                            .where(audit.c.kind == "alert").order_by(audit.c.seq)).all()
    return [{"actor": r.actor, "channel": r.channel, "destination": r.destination,
             **json.loads(r.detail)} for r in rows]


async def test_backed_up_queue_fires_then_clears_through_webhook_and_audit(
        harness, fhir, receiver):
    harness.conf = f"""
    alerts:
      interval: 100ms
      repeat: 0s
      webhook: {{url: "http://127.0.0.1:{receiver.port}/hook", timeout: 2s}}
      rules:
        - {{name: fhir-backlog, kind: queue_depth, destination: adt/fhir, threshold: 2,
           severity: critical}}
        - {{name: slow-burn, kind: slo_burn, objective: delivered-fast, factor: 1,
           window: 60s, short_window: 0s, min_events: 1}}
    slo:
      window: 60s
      bucket: 1s
      interval: 100ms
      objectives:
        - {{name: delivered-fast, kind: delivery, channel: "*", target: 99, within: 300ms}}
        - {{name: accepting, kind: availability, channel: adt, target: 99.9}}
    """
    fhir.default = Answer(503)
    port = free_port()
    engine = await harness.start({"adt": channel(port, fhir.url)})
    acks = await exchange(port, [adt(f"C{i}", f"MRN{i}") for i in range(3)])
    assert [a.value("MSA-1") for a in acks] == ["AA"] * 3

    await harness.settle(lambda: receiver.states("fhir-backlog") == ["fired"])
    [active] = [a for a in engine.alerting.active() if a["rule"] == "fhir-backlog"]
    assert (active["subject"], active["value"], active["threshold"]) == ("adt/fhir", 3, 2)

    # Entries waiting past the objective's 300ms burn its budget while they wait.
    await harness.settle(lambda: receiver.states("slow-burn") == ["fired"])
    fhir.default = Answer(200)
    await fhir.wait_for(3)
    await harness.settle(lambda: receiver.states("fhir-backlog") == ["fired", "cleared"])
    fired, cleared = (p for p in receiver.received if p["rule"] == "fhir-backlog")
    assert (fired["kind"], fired["severity"], fired["subject"], fired["value"]) == (
        "queue_depth", "critical", "adt/fhir", 3)
    assert (cleared["value"], cleared["since"]) == (0, fired["since"])
    await harness.settle(lambda: len([r for r in alert_rows(engine)
                                      if r["rule"] == "fhir-backlog"]) == 2)
    rows = [r for r in alert_rows(engine) if r["rule"] == "fhir-backlog"]
    assert [(r["actor"], r["channel"], r["destination"], r["state"], r["value"],
             r["threshold"]) for r in rows] == [("engine", "adt", "fhir", "fired", 3, 2),
                                                ("engine", "adt", "fhir", "cleared", 0, 2)]
    assert (await engine.ops.verify())["broken"] is None  # alerts sit in the hash chain

    by_objective = {row["objective"]: row for row in engine.slo.status()}
    delivered = by_objective["delivered-fast"]
    assert delivered["bad"] >= 3 and delivered["sli"] < 0.99
    assert delivered["error_budget_remaining"] < 0
    assert by_objective["accepting"]["sli"] == 1.0
    text = render(engine.services.stats, {}, {}, engine.ops.extra_metrics()).decode()
    assert 'conduit_slo_sli{channel="adt",objective="delivered-fast"}' in text
    assert 'conduit_slo_burn_rate{channel="adt",objective="accepting",window="5m"}' in text
    assert msgspec.json.encode(engine.ops.alerts())  # the page's SSE can serialise them


async def test_a_restart_does_not_fire_again_what_it_already_fired(harness, fhir, receiver):
    """The store keeps what the webhook was told (engine.ops.alerts.told): an engine
    restarted with its queue still backed up tracks the alert again without a second
    fire, and sends the clear once the queue drains."""
    harness.conf = backlog_alert(receiver)
    fhir.default = Answer(503)
    port = free_port()
    await harness.start({"adt": channel(port, fhir.url)})
    await exchange(port, [adt(f"C{i}", f"MRN{i}") for i in range(3)])
    await harness.settle(lambda: receiver.states("fhir-backlog") == ["fired"])
    await harness.stop()

    engine = await harness.start({"adt": channel(port, fhir.url)})
    await harness.settle(lambda: [a["rule"] for a in engine.alerting.active()]
                         == ["fhir-backlog"])
    await asyncio.sleep(0.5)  # several more evaluations
    assert receiver.states("fhir-backlog") == ["fired"]
    fhir.default = Answer(200)
    await harness.settle(lambda: receiver.states("fhir-backlog") == ["fired", "cleared"])


async def test_alerting_without_rules_or_objectives_stays_quiet(harness, fhir):
    engine = await harness.start({"adt": channel(free_port(), fhir.url)})
    await asyncio.sleep(0.05)
    assert engine.alerting.active() == [] and engine.ops.alerts() == []
    assert engine.slo.status() == [] and engine.ops.extra_metrics() == []
