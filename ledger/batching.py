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
    """

    def __init__(
        self,
        handle: Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_batch: int = 1024,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._handle = handle
        self._max_batch = max_batch
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stop; every caller still waiting, queued or in the batch running, is cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._handle([request for request, _ in batch])
                except asyncio.CancelledError:  # close(): nobody is left waiting for this batch
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
