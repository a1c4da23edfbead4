"""Micro-batching: calls that arrive while one batch runs are served together by the next."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class MicroBatcher(Generic[Request, Result]):
    """Run ``handle`` on every request queued since the last batch, one batch at a time.

    ``handle`` returns one result (or exception) per request, in order. Under load this turns N
    round trips into one; when idle a request runs at once, so latency does not grow.

    ``in_flight``: how many batches may run at once. With more than one, requests queued while
    every slot is busy wait for the first slot to free, then go together (``max_batch`` at a
    time); a batch's requests are answered as soon as its own ``handle`` returns.
    """

    def __init__(
        self,
        handle: Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_batch: int = 1024,
        in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or in_flight < 1:
            raise ValueError("max_batch and in_flight must be at least 1")
        self._handle = handle
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, request: Request) -> Result:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        tasks = [*self._running, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self._in_flight)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await slots.acquire()
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                task = asyncio.create_task(self._serve(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                task.add_done_callback(lambda _: slots.release())

    async def _serve(self, batch: list[tuple[Request, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._handle([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
