"""engine/every.py: a background step goes on after a failure, which is logged by type
only (a database error's text may quote bound values), and stops when told."""

from __future__ import annotations

import asyncio
import logging

from engine.every import Every


async def test_a_failing_step_is_logged_and_tried_again_until_stopped(caplog):
    calls = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("INSERT ... ('DOE^JANE')")

    every = Every(0.01, step, name="test", log=logging.getLogger("test.every"),
                  failure="could not do the thing")
    with caplog.at_level(logging.WARNING, logger="test.every"):
        every.start()
        while len(calls) < 4:
            await asyncio.sleep(0.01)
        await every.stop()
    done = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == done, "a stopped step ran again"
    assert [r.getMessage() for r in caplog.records] == ["could not do the thing: RuntimeError"]
