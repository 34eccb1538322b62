"""A channel paused (or stopped) on the status page of a group on PostgreSQL stays so in
a process that joins the group afterwards: a worker the supervisor restarts after a
crash, or another host's engine started later.

Before, a joining process followed only the channel actions appended after its own
start, so the restarted worker opened the paused channel's port (the kernel then handed
it the senders' connections, and their messages were accepted while the page said
paused), and a stopped channel delivered again to a receiver the operator had stopped
it for.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.support import Daemon, eventually, use_postgres
from tests.e2e.test_workers import act, listening, started_workers, token_of, workers


@pytest.mark.parametrize(("action", "done", "undo"),
                         [("pause", "paused", "resume"), ("stop", "stopped", "start")])
async def test_a_restarted_worker_keeps_the_channel_as_the_group_left_it(
        daemon: Daemon, pg_url: str, tmp_path: Path, action: str, done: str, undo: str
) -> None:
    use_postgres(daemon, pg_url, tmp_path / "keys")
    daemon.env["CONDUIT_QUEUE"] = "sql"
    await daemon.start("--workers", "2")
    await started_workers(daemon, 2)
    token = await token_of(daemon, "operator")
    await act(daemon, token, action)  # served by worker 0, followed by worker 1
    await eventually(lambda: not listening(daemon.mllp_port), timeout=30,
                     message=f"neither worker listening once the channel is {done}")

    before = workers(daemon)
    os.kill(before[-1], signal.SIGKILL)  # the supervisor restarts it
    await eventually(lambda: len(workers(daemon)) == 2 and workers(daemon) != before,
                     timeout=30, message="the killed worker restarted")
    await eventually(lambda: " started: " in daemon.logs().split("restarting", 1)[-1],
                     timeout=60, message="the restarted worker up")
    await asyncio.sleep(2)  # time for it to open the port, if it were to
    assert not listening(daemon.mllp_port), (f"the restarted worker took the traffic of "
                                             f"the channel the group has {done}")

    await act(daemon, token, undo)
    await eventually(lambda: listening(daemon.mllp_port) == set(workers(daemon)),
                     timeout=30, message=f"both workers listening again after {undo}")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]


async def test_an_engine_alone_starts_its_channels_afresh_for_a_later_group(
        daemon: Daemon) -> None:
    """A group's pause holds through the group's restart, not through a run of the engine
    alone (which starts every channel, as it always did): a group started after it does
    not find the old pause."""
    await daemon.start("--workers", "2")
    await started_workers(daemon, 2)
    token = await token_of(daemon, "operator")
    await act(daemon, token, "pause")
    await eventually(lambda: not listening(daemon.mllp_port), timeout=30,
                     message="neither worker listening once the channel is paused")
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]

    await daemon.start()  # alone: the channel starts, as after any restart
    assert listening(daemon.mllp_port)
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]

    await daemon.start("--workers", "2")
    await started_workers(daemon, 2)  # both listening: the old pause is gone
    assert await daemon.stop(timeout=30) == 0, daemon.logs()[-3000:]
