"""One process sends the cluster's alerts (issue 14: alerts show the whole cluster, once):
the `alerts` lease is held by one process at a time on a shared store, passes to another
when its holder stops or goes silent, and an Alerting that does not hold it tracks its
alerts without sending them, then sends what changed meanwhile when it takes over."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.config.alerts import AlertsConfig, ChannelStateRule
from engine.ops import leader
from engine.ops.alerts.rules import ChannelView, Snapshot
from engine.ops.alerts.runner import Alerting
from engine.ops.alerts.told import Told
from engine.ops.leader import ClusterLease
from engine.store.database import open_database
from engine.store.writer import Writer
from tests.fhir_server import Answer
from tests.harness import EngineHarness, adt, exchange, free_port
from tests.integration.test_alerts import WebhookReceiver, backlog_alert, channel

AUDIT_KEY = b"k" * 32


@pytest.fixture
async def writers(db_url):
    """Two processes' writers on one store (each with its own connection pool)."""
    made = []
    for _ in range(2):
        db = open_database(db_url)
        writer = Writer(db, AUDIT_KEY)
        writer.start()
        made.append((db, writer))
    yield [w for _, w in made]
    for db, writer in made:
        await writer.close()
        db.dispose()


@pytest.fixture
async def receiver():
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


async def test_one_holder_at_a_time_and_a_clean_stop_hands_it_over(writers) -> None:
    first = ClusterLease(writers[0], "alerts", "host-a:1:aa")
    second = ClusterLease(writers[1], "alerts", "host-b:1:bb")
    await asyncio.gather(first.start(), second.start())
    try:
        assert [first.held, second.held].count(True) == 1
        holder, other = (first, second) if first.held else (second, first)
        await holder.stop()
        await other._claim()  # its next renewal, without waiting a second
        assert other.held and not holder.held
    finally:
        await first.stop()
        await second.stop()


async def test_a_silent_holder_loses_the_lease_after_its_ttl(writers) -> None:
    assert await writers[0].commit(leader.claim("alerts", "dead:1:aa", ttl=0.5))
    assert not await writers[1].commit(leader.claim("alerts", "live:1:bb", ttl=0.5))
    await asyncio.sleep(0.7)
    assert await writers[1].commit(leader.claim("alerts", "live:1:bb", ttl=0.5))
    assert not await writers[0].commit(leader.claim("alerts", "dead:1:aa", ttl=0.5))


async def test_a_lease_not_renewed_in_time_is_not_trusted(writers) -> None:
    lease = ClusterLease(writers[0], "alerts", "slow:1:aa", ttl=0.4)
    await lease._claim()
    assert lease.held
    await asyncio.sleep(0.25)  # past half the TTL with no renewal: another may take it
    assert not lease.held


async def test_the_process_that_takes_over_sends_the_clear_nobody_sent(writers) -> None:
    """Process A speaks and sends a fire; it stops speaking, the alert clears while B is
    still silent (B's next renewal has not come yet), then B takes over: B sends that
    clear, once, and never the fire again. What was told lives in the shared store."""
    config = AlertsConfig(rules=[ChannelStateRule(name="adt-down")])
    state = "stopped"

    async def snapshot() -> Snapshot:
        return Snapshot(time.time(), time.time() - 60,
                        {"adt": ChannelView(state, None, {}, {}, {})}, {}, [])

    speaking = [True, False]
    sent: list[list[str]] = [[], []]
    alertings = []
    for i, writer in enumerate(writers):
        store = Told(writer)
        alertings.append(Alerting(config, snapshot, store.record, recall=store.recall,
                                  speaks=lambda i=i: speaking[i]))
    for i, alerting in enumerate(alertings):
        sent[i] += [n.state for n in await alerting.run_once()]
    assert sent == [["fired"], []]
    assert [a["rule"] for a in alertings[1].active()] == ["adt-down"]  # tracked, unsent

    speaking[0] = False  # A stopped; B has not taken the lease yet
    state = "started"
    for i, alerting in enumerate(alertings):
        sent[i] += [n.state for n in await alerting.run_once()]
    assert sent == [["fired"], []] and alertings[1].active() == []

    speaking[1] = True  # B took the lease
    for _ in range(3):
        sent[1] += [n.state for n in await alertings[1].run_once()]
    assert sent == [["fired"], ["cleared"]]

    state = "stopped"  # a new alert, then B stops speaking, A takes the lease back
    sent[1] += [n.state for n in await alertings[1].run_once()]
    speaking[:] = [True, False]
    sent[0] += [n.state for n in await alertings[0].run_once()]
    assert sent == [["fired"], ["cleared", "fired"]]  # B told it: A does not again


async def test_two_engines_on_one_database_send_a_cluster_alert_once(
        tmp_path, pg_url, fhir, receiver) -> None:
    """Both engines see the same backlog in the shared queue and track the alert; the
    receiver hears it fire once, and clear once from the engine left running after the
    one that sent the fire stopped."""
    fhir.default = Answer(503)
    conf = f"""
    keys: {{directory: {tmp_path / "keys"}}}""" + backlog_alert(receiver)
    harnesses = [EngineHarness(tmp_path / name, pg_url, conf=conf) for name in ("a", "b")]
    ports = [free_port(), free_port()]
    engines = []
    try:
        for harness, port in zip(harnesses, ports, strict=True):
            (harness.root).mkdir()
            engines.append(await harness.start({"adt": channel(port, fhir.url)}))
        acks = await exchange(ports[0], [adt(f"C{i}", f"MRN{i}") for i in range(3)])
        assert [a.value("MSA-1") for a in acks] == ["AA"] * 3
        await harnesses[0].settle(lambda: all(
            [a["rule"] for a in e.alerting.active()] == ["fhir-backlog"] for e in engines))
        await asyncio.sleep(0.5)  # several more evaluations on both
        assert receiver.states("fhir-backlog") == ["fired"]

        sender = next(h for h, e in zip(harnesses, engines, strict=True)
                      if e._alerts_lease is not None and e._alerts_lease.held)
        await sender.stop()
        fhir.default = Answer(200)
        await fhir.wait_for(3)
        await harnesses[0].settle(
            lambda: receiver.states("fhir-backlog") == ["fired", "cleared"])
    finally:
        for harness in harnesses:
            await harness.stop()
