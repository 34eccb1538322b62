"""`conduit run --workers N`: N engine processes sharing one store, kept running.

Python runs one core per process, so a box with several cores runs several engines on
one store, which is the same thing as engines on several hosts: the store's queues give
each destination's head to one process at a time, its audit chain takes every
process's events in one order, and a process that dies has its leases taken over by
the others once its heartbeat stops (engine.queue.owners).

The supervisor only starts, restarts and stops them. Each worker is an ordinary
`conduit run` told its place by CONDUIT_WORKER ("index/count/role"): all of them listen on
the channels' ports (SO_REUSEPORT, so the kernel spreads connections over them) and
deliver; worker 0 alone serves the status page, runs alerts and service levels, and polls
folders (two pollers would take one file twice). On the embedded store the supervisor
holds the data folder's lock for the whole group.

A worker may also do half of that (`--workers ingest=1,deliver=1`): an ingest worker
takes messages in (listeners, pollers) and leaves their deliveries to the queue; a
deliver worker listens on nothing and delivers every channel's queue. Taking a message
in (parse, map, commit, ACK) then never waits behind the sends of earlier ones on the same
event loop, and the two halves run on two cores.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import msgspec

log = logging.getLogger("conduit.supervisor")

ENV = "CONDUIT_WORKER"
RESTART_AFTER = (0.5, 1.0, 2.0, 5.0, 10.0)  # back-off for a worker that keeps dying
STEADY = 30.0  # seconds up after which a worker's restarts count from the start again
STOP_TIMEOUT = 60.0  # seconds a worker has to drain after SIGTERM before SIGKILL
# A worker that never ran STEADY seconds and exits this many times in a row with code 2
# (what `conduit` says for a setting it cannot use: a port taken, a store that will not
# open) stops the group: a second group started by mistake, or a wrong setting, fails
# with its error instead of restarting for ever while half of it takes traffic. Once a
# worker has run steadily, it is restarted however it ends (a store away for a while).
GIVE_UP_AFTER = 3
CANNOT_START = 2


ROLES = ("all", "ingest", "deliver")


class WorkerSlot(msgspec.Struct, frozen=True):
    """This process's place in a group of workers."""

    index: int
    count: int
    role: str = "all"  # one of ROLES
    taking_in: int = -1  # workers of the group that run the sources (-1: not told, all)

    @property
    def intake_shared(self) -> bool:
        """Whether other workers of the group take messages in too."""
        return (self.count if self.taking_in < 0 else self.taking_in) > 1

    @property
    def takes_in(self) -> bool:
        """Whether this worker runs the channels' sources."""
        return self.role != "deliver"

    @property
    def delivers(self) -> bool:
        """Whether this worker sends what the channels queued."""
        return self.role != "ingest"

    @property
    def primary(self) -> bool:
        """The worker that serves the status page and does what must happen once."""
        return self.index == 0

    @classmethod
    def from_env(cls) -> WorkerSlot | None:
        value = os.environ.get(ENV)
        if not value:
            return None
        index, count, *rest = value.split("/")
        return cls(int(index), int(count), *rest[:1], *(int(n) for n in rest[1:2]))


def keep_to_own_cpu(slot: WorkerSlot) -> int | None:
    """Run this worker, and every thread it starts later, on one CPU of those the group
    may use, the next worker on the next one; returns that CPU, or None when the group has
    one worker, or more workers than CPUs (then they float, as the system balances them).

    Python lets one thread of a process run at a time: the event loop and the store's
    writer hand the GIL to each other many times a commit. Left to float, each worker's
    two threads sat on two cores and every handover woke the other core: pinned, a group
    of two on two cores took 16-41% more messages a second, at less CPU each
    (docs/performance.md); four on two cores, two to a core, ran no faster than floating.
    Called first thing, before any thread exists, so that all of them inherit it."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not 2 <= slot.count <= len(allowed):
        return None
    cpu = allowed[slot.index]
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:  # a container that forbids it: the worker runs where it is put
        return None
    return cpu


def parse_workers(text: str) -> tuple[str, ...]:
    """`--workers`: "N" (N workers doing everything) or "ingest=N,deliver=M" (and "all=K"),
    as one role per worker, ingest workers first so that worker 0 polls the folders."""
    if text.isdecimal():
        if int(text) < 1:
            raise ValueError("at least one worker")
        return ("all",) * int(text)
    counts: dict[str, int] = {}
    for part in text.split(","):
        role, sep, number = part.strip().partition("=")
        if not sep or role not in ROLES or not number.isdecimal():
            raise ValueError(f"{part.strip()!r} is not ROLE=N with ROLE one of "
                             f"{', '.join(ROLES)}")
        counts[role] = counts.get(role, 0) + int(number)
    roles = tuple(role for role in ("ingest", "all", "deliver")
                  for _ in range(counts.get(role, 0)))
    if not roles:
        raise ValueError("at least one worker")
    return roles


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.failures = 0
        self.due = 0.0  # when to start it (again)
        self.steady = False  # it has run STEADY seconds once


def supervise(roles: Sequence[str], argv: Sequence[str]) -> int:
    """Run a worker of `python -m engine.cli <argv>` per role until SIGTERM or SIGINT, then
    stop them all (each drains) and return 0 if all of them stopped cleanly."""
    count = len(roles)
    taking_in = sum(role != "deliver" for role in roles)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [_Worker(i) for i in range(count)]
    log.info("starting %d workers (%s)", count, ", ".join(roles))
    while not stopping:
        now = time.monotonic()
        for w in workers:
            if w.process is not None and w.process.poll() is not None:
                code = w.process.returncode
                w.process = None
                w.steady = w.steady or now - w.started > STEADY
                w.failures = 0 if now - w.started > STEADY else w.failures + 1
                if code == CANNOT_START and not w.steady and w.failures >= GIVE_UP_AFTER:
                    log.error("worker %d cannot start (exited with %s %d times, its error "
                              "above); stopping the group", w.index, _describe(code),
                              w.failures)
                    _stop_all(workers)
                    return CANNOT_START
                w.due = now + RESTART_AFTER[min(w.failures, len(RESTART_AFTER) - 1)]
                log.error("worker %d exited with %s; restarting in %.1fs", w.index,
                          _describe(code), w.due - now)
            if w.process is None and now >= w.due:
                w.process = _spawn(WorkerSlot(w.index, count, roles[w.index], taking_in),
                                   argv)
                w.started = now
        time.sleep(0.2)
    log.info("stopping %d workers", count)
    return _stop_all(workers)


def _spawn(slot: WorkerSlot, argv: Sequence[str]) -> subprocess.Popen:
    env = dict(os.environ,
               **{ENV: f"{slot.index}/{slot.count}/{slot.role}/{slot.taking_in}"})
    # The workers' own signal handlers drain them; a terminal's Ctrl-C reaches the whole
    # process group, so the supervisor does not forward SIGINT twice.
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], env=env)


def _stop_all(workers: list[_Worker]) -> int:
    running = [w for w in workers if w.process is not None and w.process.poll() is None]
    for w in running:
        assert w.process is not None
        w.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    clean = True
    for w in running:
        assert w.process is not None
        try:
            code = w.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker %d did not stop in %.0fs; killing it", w.index, STOP_TIMEOUT)
            w.process.kill()
            code = w.process.wait()
        # A worker still starting (its drain handler not yet installed) dies of the
        # SIGTERM itself: it had taken nothing, so that stop is clean too.
        if code not in (0, -signal.SIGTERM):
            log.error("worker %d stopped with %s", w.index, _describe(code))
            clean = False
    return 0 if clean else 1


def _describe(code: int) -> str:
    if code >= 0:
        return f"code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"
