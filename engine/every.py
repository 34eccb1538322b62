"""A step the engine repeats in the background (follow the trail, roll up totals) until
it stops, without one failure ending the repetition: the store may be away for a while,
and the next try, not a dead task, is what an operator expects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Every:
    """Calls `step` every `seconds` (first after one interval) from start() to stop();
    a step that raises is logged as `failure` with the error's type and tried again."""

    def __init__(self, seconds: float, step: Callable[[], Awaitable[object]], *,
                 name: str, log: logging.Logger, failure: str) -> None:
        self._seconds = seconds
        self._step = step
        self._name = name
        self._log = log
        self._failure = failure
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._seconds)
            try:
                await self._step()
            except Exception as exc:  # its type only: a message may quote bound values
                self._log.warning("%s: %s", self._failure, type(exc).__name__)
