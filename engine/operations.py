"""What operators, analysts and auditors can ask of a running engine, in one place.

The web API is a thin layer over this (and a future CLI talking to a daemon could be
too): status snapshots, channel actions, dead letters, message search, audited content
reads, reprocessing and the audit trail. Every action that changes something records an
event with the actor who asked for it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from engine import group_controls
from engine.change.revisions import RevisionStore
from engine.change.snapshot import mapping_hashes
from engine.errors import ConduitError
from engine.events import Event, Kind
from engine.queue import owners
from engine.queue.base import QueueStats
from engine.store import answers, correlation, retention, x12_sent
from engine.store import audit as audit_chain
from engine.store import disclosures as accounting
from engine.store.database import reader, snapshot_reader
from engine.store.search import AuditQuery, MessageQuery, find_audit, find_messages
from engine.store.writer import UnitOfWork

if TYPE_CHECKING:
    from engine.channel import Channel
    from engine.runtime import Engine

ACTIONS = ("start", "stop", "pause", "resume")
# A channel's counts as the API shows them: since the store began (the audit trail's
# totals), rejected (refused with AR) apart from errored (mapping or filter failed), and
# resends apart from new messages under a reused control id; fields_dropped counts the
# fields that held a value no rule of the mapping read.
CHANNEL_COUNTS = ("received", "filtered", "duplicate", "control_id_reused", "queued", "sent",
                  "rejected", "errored", "dead_lettered", "retried", "fields_dropped")
QUEUE_STATS_TTL = 1.0  # seconds a queue count is reused: pages poll; the database need not


def _conversion(hops: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the latest mapping of a message could not read and what it left behind (the
    newest mapped hop's account: a reprocess supersedes the first), or None."""
    for hop in reversed(hops):
        detail = hop.get("detail") or {}
        if hop.get("kind") == "mapped" and "output" in detail:
            return {"mapping": detail.get("mapping"),
                    "warnings": detail.get("warnings", []),
                    "left_behind": detail.get("left_behind", []),
                    "tracked": detail.get("tracked", True)}
    return None


class NotFound(ConduitError):
    """No such channel, destination or message (only said to callers allowed to know)."""


class NotApproved(ConduitError):
    """Under change control, a mapping version no live revision pins: its output must
    not reach production without the review a deploy gets."""


class Operations:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue_cache: tuple[float, list[QueueStats]] | None = None
        self._peers_cache: tuple[float, dict[str, set[str]]] | None = None

    @property
    def _svc(self) -> Any:
        assert self._engine.services is not None
        return self._engine.services

    # -- status ------------------------------------------------------------------------

    async def queue_stats(self) -> dict[str, QueueStats]:
        now = time.monotonic()
        if self._queue_cache is None or now - self._queue_cache[0] > QUEUE_STATS_TTL:
            self._queue_cache = (now, await asyncio.to_thread(self._svc.queue.stats))
        return {s.destination: s for s in self._queue_cache[1]}

    async def channels(self) -> list[dict[str, Any]]:
        queues = await self.queue_stats()
        peers = await self.cluster_peers()
        levels = self._service_levels()
        return [{**self._summary(c, queues, peers), "slo": levels.get(c.name, [])}
                for c in self._engine.channels.values()]

    async def cluster_peers(self) -> dict[str, set[str]]:
        """Each channel's connected peers in the whole group, as every live process last
        wrote them with its heartbeat (engine.queue.owners); a lone process has only its
        own, which _summary reads from the source itself."""
        if self._svc.alone:
            return {}
        now = time.monotonic()
        if self._peers_cache is None or now - self._peers_cache[0] > QUEUE_STATS_TTL:
            self._peers_cache = (now, await asyncio.to_thread(self._read_cluster_peers))
        return self._peers_cache[1]

    def _read_cluster_peers(self) -> dict[str, set[str]]:
        merged: dict[str, set[str]] = {}
        with reader(self._svc.db).connect() as conn:
            for row in owners.live_peers(conn):
                for channel, peers in msgspec.json.decode(row).items():
                    merged.setdefault(channel, set()).update(peers)
        return merged

    def _service_levels(self) -> dict[str, list[dict[str, Any]]]:
        """Each channel's service-level rows (none when no objective is configured)."""
        slo = getattr(self._engine, "slo", None)
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in slo.status() if slo is not None else []:
            by_channel.setdefault(row["channel"], []).append(row)
        return by_channel

    def _summary(self, channel: Channel, queues: dict[str, QueueStats],
                 cluster_peers: dict[str, set[str]]) -> dict[str, Any]:
        stats = self._svc.stats.channels[channel.name]
        source = channel.source.describe()
        if channel.name in cluster_peers:
            source["peers"] = sorted(cluster_peers[channel.name].union(source.get("peers", [])))
        now = time.time()
        p50, p99 = stats.latency.percentiles(0.5, 0.99, now=now)
        destinations = []
        for worker in channel.workers:
            q = queues.get(worker.key) or QueueStats(worker.key)
            dest = stats.destinations[worker.name]
            destinations.append({
                "name": worker.name,
                "address": worker.destination.address,
                "queued": q.ready + q.leased, "in_flight": q.leased,
                "retrying": q.retrying, "dead": q.dead,
                "oldest_age_s": round(now - q.oldest_at, 1) if q.oldest_at else None,
                "sent": dest.counts["sent"], "sent_5m": dest.recent["sent"].total(now=now),
                "last_error": dest.last_error, "last_error_at": dest.last_error_at,
            })
        counts = {k: stats.counts[k] for k in CHANNEL_COUNTS}
        recent = {k: stats.recent[k].total(now=now) for k in counts}
        last_error, last_error_at = stats.last_error, stats.last_error_at
        if channel.last_error_at and (last_error_at is None
                                      or channel.last_error_at > last_error_at):
            last_error, last_error_at = channel.last_error, channel.last_error_at
        return {
            "name": channel.name,
            "description": channel.config.description,
            "state": channel.state.value,
            "source": source,
            "mapping": channel.mapping.ref if channel.mapping else None,
            "retention": retention.describe(channel.config.retention
                                            if channel.config.retention is not None
                                            else self._engine.config.retention),
            "shadow": channel.shadow.summary() if channel.shadow else None,
            "counts": counts,
            "counts_5m": recent,
            "throughput_per_s": round(stats.throughput(now=now), 2),
            "latency_ms": {"p50": _ms(p50), "p99": _ms(p99)},
            "last_message_at": stats.last_message_at,
            "last_error": last_error,
            "last_error_at": last_error_at,
            "destinations": destinations,
        }

    async def channel(self, name: str) -> dict[str, Any]:
        channel = self._channel(name)
        summary = self._summary(channel, await self.queue_stats(), await self.cluster_peers())
        summary["slo"] = self._service_levels().get(name, [])
        stats = self._svc.stats.channels[name]
        summary["series"] = {k: stats.series[k].values() for k in
                             ("received", "sent", "errored", "rejected", "dead_lettered")}
        if channel.config.x12 is not None:  # X12 sent to a partner, by the partner's 999
            summary["counts"].update(await asyncio.to_thread(x12_sent.counts, self._svc.db,
                                                             name))
        summary["recent_messages"] = await self.search(MessageQuery(channel=name, limit=50))
        summary["dead_letters"] = [
            {"destination": d["name"], **msgspec.to_builtins(letter)}
            for d in summary["destinations"] if d["dead"]
            for letter in await asyncio.to_thread(self._svc.queue.dead_letters,
                                                  f"{name}/{d['name']}")]
        return summary

    def _channel(self, name: str) -> Channel:
        channel = self._engine.channels.get(name)
        if channel is None:
            raise NotFound(f"no channel {name}")
        return channel

    async def queues(self) -> list[dict[str, Any]]:
        """Counts per destination, and the newest dead letters of those that have any
        (message ids and PHI-free reasons; a receiver's answer is read with content)."""
        out = []
        for s in (await self.queue_stats()).values():
            row = msgspec.to_builtins(s)
            if s.dead:
                row["dead_letters"] = msgspec.to_builtins(
                    await asyncio.to_thread(self._svc.queue.dead_letters, s.destination))
            out.append(row)
        return out

    # -- actions -----------------------------------------------------------------------

    async def control(self, name: str, action: str, actor: str) -> dict[str, Any]:
        if action not in ACTIONS:
            raise NotFound(f"no action {action}")
        async with self._engine.steady():  # on the channel a deploy swaps in, if one runs
            channel = self._channel(name)
            before = channel.state.value
            await getattr(channel, action)()
        after = channel.state.value
        uow = UnitOfWork()
        uow.record(Event(kind=Kind.ADMIN, actor=actor, channel=name, detail={
            "action": f"channel-{action}", "from": before, "to": after}))
        # what a process joining the group later starts the channel as
        uow.query = functools.partial(group_controls.remember, channel=name, state=after)
        await self._svc.writer.commit(uow)
        return {"name": name, "state": after}

    def _destination(self, key: str) -> str:
        for channel in self._engine.channels.values():
            for worker in channel.workers:
                if worker.key == key:
                    return key
        raise NotFound(f"no destination {key}")

    async def retry_dead(self, key: str, actor: str) -> int:
        count = await self._svc.writer.commit(self._svc.queue.replay(self._destination(key),
                                                                      actor))
        self._queue_cache = None
        for channel in self._engine.channels.values():
            for worker in channel.workers:
                if worker.key == key:
                    worker.notify()
        return count

    async def discard_dead(self, key: str, actor: str) -> int:
        count = await self._svc.writer.commit(self._svc.queue.discard(self._destination(key),
                                                                       actor))
        self._queue_cache = None
        return count

    # -- messages ----------------------------------------------------------------------

    def pseudonym(self, identifier: str) -> str | None:
        return self._svc.vault.patient_pseudonym(identifier)

    async def search(self, query: MessageQuery) -> list[dict[str, Any]]:
        def run() -> list[Any]:
            with self._svc.db.connect() as conn:
                return find_messages(conn, query)
        return [msgspec.to_builtins(m) for m in await asyncio.to_thread(run)]

    async def record_read(self, actor: str, action: str, patient: str | None = None,
                          **detail: Any) -> None:
        """A read that discloses without opening content (a search by patient, an export
        of the trail) is an event of its own, committed before the answer goes out; one
        by patient is in that patient's accounting of disclosures."""
        await self._record(Event(kind=Kind.ADMIN, actor=actor, patient=patient,
                                 detail={"action": action, **detail}))

    async def message(self, message_id: str) -> dict[str, Any]:
        stored = await asyncio.to_thread(self._svc.store.get, message_id)
        if stored is None:
            raise NotFound(f"no message {message_id}")
        out = msgspec.to_builtins(stored)
        # Content pruned under the channel's retention: the metadata and hops remain.
        out["pruned"] = await asyncio.to_thread(retention.pruned, self._svc.db, message_id)
        out["outputs"] = await asyncio.to_thread(self._svc.store.outputs_of, message_id)
        # Receivers' answers to dead letters: metadata here, the text only with content.
        out["answers"] = await asyncio.to_thread(answers.of_message, self._svc.db, message_id)
        # X12 sent to a trading partner: what its 999/TA1 said (None: nothing sent)
        out["partner_ack"] = await asyncio.to_thread(x12_sent.of_message, self._svc.db,
                                                     message_id)
        out["hops"] = [_public_event(e) for e in await self.audit(
            AuditQuery(message_id=message_id, limit=500))][::-1]
        out["conversion"] = _conversion(out["hops"])
        # what it answers and what answered it (a NewRx's Status or Error), ids only
        out["related"] = await asyncio.to_thread(self._related, message_id)
        return out

    def _related(self, message_id: str) -> list[dict[str, Any]]:
        with reader(self._svc.db).connect() as conn:
            return correlation.related(conn, message_id)

    async def content(self, message_id: str, actor: str, reason: str) -> dict[str, Any]:
        """Raw message and outputs, after recording who read them and why."""
        store = self._svc.store
        raw = await store.read(self._svc.writer, message_id, actor, reason)
        outputs = await asyncio.to_thread(store.open_outputs, message_id)
        kept = await asyncio.to_thread(answers.open_for_message, self._svc.db,
                                       self._svc.vault, message_id)
        return {
            "raw": raw.decode("utf-8", errors="replace"),
            "outputs": [{"mapping": m, "content_type": t,
                         "content": c.decode("utf-8", errors="replace")}
                        for m, t, c in outputs],
            "answers": kept,  # what receivers answered to its dead letters (may quote PHI)
        }

    async def reprocess(self, message_id: str, mapping_ref: str | None, actor: str
                        ) -> dict[str, Any]:
        stored = await asyncio.to_thread(self._svc.store.get, message_id)
        if stored is None:
            raise NotFound(f"no message {message_id}")
        channel = self._channel(stored.channel)
        mapping = None
        if mapping_ref:
            mapping = self._engine.catalog.get(mapping_ref)
            if mapping is None:
                raise NotFound(self._engine.catalog.unknown(mapping_ref))
        used = mapping or channel.mapping
        source = await asyncio.to_thread(self._mapping_source, used.ref) if used else None
        if mapping is not None and mapping is not channel.mapping:
            await asyncio.to_thread(self._check_pinned, mapping.ref, source)
        raw = await asyncio.to_thread(self._svc.store.open_raw, message_id)
        assert raw is not None
        status = await channel.reprocess(message_id, raw, mapping, actor, source)
        return {"id": message_id, "status": status.value,
                "mapping": used.ref if used else None}

    def _mapping_source(self, ref: str) -> str:
        """The sha256 of the mapping version's source file as it is now ("" without
        one), so the trail says which code made what a reprocess sent."""
        return mapping_hashes(Path(self._engine.config.mappings_dir), [ref])[ref]

    def _check_pinned(self, ref: str, source: str | None) -> None:
        """Under change control, only a version the live revision pins, unchanged since,
        may map a message again; any version may without it."""
        if not self._engine.config.change_control.enabled:
            return
        live = RevisionStore(self._svc.db, self._svc.keys.audit).live()
        pinned = live.snapshot.mappings if live is not None else {}
        if ref not in pinned:
            raise NotApproved(f"{ref} is in no live revision: under change control a "
                              "message is reprocessed only with a mapping version the live "
                              "revision pins (deploy a channel that uses it first)")
        if pinned[ref] != source:
            raise NotApproved(f"{ref} on disk is not the source the live revision pinned")

    # -- audit -------------------------------------------------------------------------

    async def audit(self, query: AuditQuery) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self._svc.db.connect() as conn:
                return find_audit(conn, query)
        return await asyncio.to_thread(run)

    async def disclosures(self, identifier: str, since_us: int, until_us: int, actor: str,
                          fmt: str) -> tuple[str, list[dict[str, Any]]]:
        """One patient's accounting of disclosures, its reading audited
        (engine.store.disclosures)."""
        return await accounting.report(self._svc, identifier, since_us, until_us, actor, fmt)

    async def verify(self) -> dict[str, Any]:
        def run() -> Any:  # one snapshot while this and other processes append
            with snapshot_reader(self._svc.db).connect() as conn:
                return audit_chain.verify(conn, self._svc.keys.audit)
        return msgspec.to_builtins(await asyncio.to_thread(run))

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts that hold now (empty when alerting is not configured)."""
        alerting = getattr(self._engine, "alerting", None)
        return alerting.active() if alerting is not None else []

    def extra_metrics(self) -> list[Any]:
        """Metric families of features beyond the core counts (service levels)."""
        slo = getattr(self._engine, "slo", None)
        return slo.metrics() if slo is not None else []

    async def _record(self, event: Event) -> None:
        uow = UnitOfWork()
        uow.record(event)
        await self._svc.writer.commit(uow)

    async def record(self, event: Event) -> None:
        """Audit something the web layer saw (a denied request, a sign-in)."""
        await self._record(event)


def _public_event(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as the API shows it: time in seconds, detail decoded."""
    out = {k: v for k, v in row.items() if k not in ("prev_hash", "hash", "at_us")}
    out["at"] = row["at_us"] / 1e6
    out["detail"] = msgspec.json.decode(row["detail"])
    return out


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None
