"""Micro-batching (``ledger.batching.MicroBatcher``): every request answered by its own batch's
result, batches no larger than ``max_batch``, one running at a time, one batch's failure confined
to its requests, nobody left waiting after ``close``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.batching import MicroBatcher


class Recorder:
    """A batch handler that squares numbers, records each batch and how many ran at once,
    and fails any batch holding a negative number."""

    def __init__(self, delays: Sequence[float] = (0.0,)) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most_running = 0
        self._delays = delays

    async def handle(self, requests: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(requests))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self._delays[len(self.batches) % len(self._delays)])
            if any(r < 0 for r in requests):
                raise RuntimeError("negative")
            return [r * r for r in requests]
        finally:
            self.running -= 1


async def test_the_next_batch_runs_only_after_the_first() -> None:
    recorder = Recorder(delays=(0.01,))
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder.handle, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 1, 4, 9, 16]
    assert recorder.most_running == 1
    assert recorder.batches == [[0, 1], [2, 3], [4]]
    await batcher.close()


async def test_a_failing_batch_fails_only_its_own_requests() -> None:
    recorder = Recorder(delays=(0.01,))
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder.handle, max_batch=2)
    outcomes = await asyncio.gather(
        *(batcher.submit(i) for i in (1, -1, 2, 3)), return_exceptions=True
    )
    assert [type(o).__name__ for o in outcomes[:2]] == ["RuntimeError", "RuntimeError"]
    assert outcomes[2:] == [4, 9]
    await batcher.close()


async def test_close_answers_every_waiter_in_the_running_batch_or_queued() -> None:
    never = asyncio.Event()

    async def handle(requests: Sequence[int]) -> list[int]:
        await never.wait()
        return list(requests)

    batcher: MicroBatcher[int, int] = MicroBatcher(handle, max_batch=1)
    calls = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    for _ in range(5):
        await asyncio.sleep(0)
    await batcher.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


def test_refuses_an_empty_batch_size() -> None:
    async def handle(requests: Sequence[int]) -> list[int]:
        return list(requests)

    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(handle, max_batch=0)


@settings(max_examples=60, deadline=None)
@given(
    max_batch=st.integers(1, 6),
    waves=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    failing=st.sets(st.integers(0, 59), max_size=4),
    delays=st.lists(st.sampled_from([0.0, 0.001, 0.003]), min_size=1, max_size=4),
)
def test_every_request_answered_by_its_batch_within_the_limits(
    max_batch: int, waves: list[int], failing: set[int], delays: list[float]
) -> None:
    async def run() -> None:
        recorder = Recorder(delays)
        batcher: MicroBatcher[int, int] = MicroBatcher(recorder.handle, max_batch=max_batch)
        calls: dict[int, asyncio.Future[int]] = {}
        for wave in waves:  # requests arrive in waves, some while batches run
            for _ in range(wave):
                request = len(calls)
                calls[request] = asyncio.ensure_future(
                    batcher.submit(-request if request in failing else request)
                )
            await asyncio.sleep(0.002)
        await asyncio.gather(*calls.values(), return_exceptions=True)
        await batcher.close()

        assert sorted(abs(r) for b in recorder.batches for r in b) == list(calls)
        assert all(1 <= len(b) <= max_batch for b in recorder.batches)
        assert recorder.most_running <= 1  # none when every wave was empty
        for batch in recorder.batches:
            failed = any(r < 0 for r in batch)
            for r in batch:
                future = calls[abs(r)]
                if failed:
                    assert isinstance(future.exception(), RuntimeError)
                else:
                    assert future.result() == r * r

    asyncio.run(run())
