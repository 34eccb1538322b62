"""How the supervisor judges its workers' stop: its exit code is what an init system and
an operator see after `systemctl stop`."""

from __future__ import annotations

import subprocess
import sys

from engine.supervisor import _stop_all, _Worker

# Installs a SIGTERM handler that exits with the given code, then waits.
HANDLES_TERM = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, lambda *_: sys.exit({code}))\n"
                "print('ready', flush=True)\n"
                "time.sleep(60)\n")


def worker(index: int, code: int | None) -> _Worker:
    """A worker process: with `code`, one that drains and exits with it; without, one
    still starting, which SIGTERM's default action ends."""
    w = _Worker(index)
    script = HANDLES_TERM.format(code=code) if code is not None else (
        "print('ready', flush=True)\nimport time\ntime.sleep(60)\n")
    w.process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert w.process.stdout is not None
    assert w.process.stdout.readline() == b"ready\n"
    return w


def test_workers_that_drain_or_were_still_starting_stop_cleanly() -> None:
    assert _stop_all([worker(0, 0), worker(1, None)]) == 0


def test_a_worker_failing_its_drain_makes_the_stop_fail() -> None:
    assert _stop_all([worker(0, 0), worker(1, 1)]) == 1


def test_a_group_whose_worker_cannot_start_stops_with_its_code(monkeypatch) -> None:
    """A second group started by mistake: worker 0 cannot bind the status page's port and
    exits 2 at each start. The group gives up with 2 after a few tries (worker 1, which
    shares the MLLP port and would take traffic, stopped with it), rather than restart
    worker 0 for ever."""
    import signal

    from engine import supervisor

    started: list[subprocess.Popen] = []

    def spawn(slot: supervisor.WorkerSlot, argv: object) -> subprocess.Popen:
        script = "import sys; sys.exit(2)" if slot.index == 0 else HANDLES_TERM.format(code=0)
        started.append(subprocess.Popen([sys.executable, "-c", script],
                                        stdout=subprocess.DEVNULL))
        return started[-1]

    monkeypatch.setattr(supervisor, "_spawn", spawn)
    monkeypatch.setattr(supervisor, "RESTART_AFTER", (0.1,))
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert supervisor.supervise(["all", "all"], []) == 2
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert len(started) == 1 + supervisor.GIVE_UP_AFTER  # worker 1 once, worker 0 thrice
    assert all(p.poll() is not None for p in started)
