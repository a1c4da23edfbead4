"""A synchronous eventsourcing ``DCBRecorder`` over a uchast store.

It lets eventsourcing's own ``DCBRecorderTestCase`` and its in-memory recorder (as an oracle) check
the ledger's conditional append. DCB positions are 1-based: the entry at leaf index ``i`` has DCB
position ``i + 1``, so "after position P" means "at leaf index P or later", the same number.
Each DCB event becomes an entry ``{"data": base64, "recorded_at", "tags", "type"}``
(:func:`ledger.entry.event_entry_encoder`) sequenced, hashed into the Merkle tree and checkpointed
like any other.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
    DCBSubscription,
)
from eventsourcing.persistence import IntegrityError

from ledger.entry import event_entry_data, event_entry_encoder
from ledger.errors import ConditionFailedError
from ledger.keys import SignerKey
from ledger.sequencer import Draft, Sequencer
from ledger.store import Store, StoredEntry, query_matches

T = TypeVar("T")


def dcb_draft(event: DCBEvent) -> Draft:
    """The entry of a raw DCB event."""
    return event_entry_encoder(event.type, event.data, event.tags)


def dcb_event(entry: StoredEntry) -> DCBSequencedEvent:
    return DCBSequencedEvent(
        event=DCBEvent(type=entry.type, data=event_entry_data(entry.data), tags=list(entry.tags)),
        position=entry.position + 1,
    )


class _ReadResponse(DCBReadResponse):
    def __init__(self, events: list[DCBSequencedEvent], head: int | None) -> None:
        self._events = iter(events)
        self._head = head

    @property
    def head(self) -> int | None:
        return self._head

    def __next__(self) -> DCBSequencedEvent:
        return next(self._events)


class LedgerDCBRecorder(DCBRecorder):
    """Blocking DCB recorder; its store and sequencer live on a private event-loop thread."""

    def __init__(
        self, store: Store, log_id: str = "dcb", *, signer: SignerKey | None = None
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.store = store
        self.log_id = log_id
        self.sequencer = Sequencer(store, log_id, origin=f"uchast.test/{log_id}", signer=signer)
        self._call(self._open())

    async def _open(self) -> None:
        await self.store.open()
        await self.store.create_log(self.log_id)
        await self.sequencer.start()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        async def shut() -> None:
            await self.sequencer.stop()
            await self.store.close()

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DCBReadResponse:
        return self._call(self._read(query or DCBQuery(), after or 0, limit))

    async def _read(self, query: DCBQuery, after: int, limit: int | None) -> DCBReadResponse:
        size = await self.store.size(self.log_id)
        events: list[DCBSequencedEvent] = []
        if limit != 0:
            if query.items and all(item.tags for item in query.items):
                tags = sorted({item.tags[0] for item in query.items})
                candidates = await self.store.tagged(self.log_id, tags, after)
            else:
                candidates = await self.store.read(self.log_id, after, size)
            for entry in candidates:
                if entry.position < size and query_matches(query, entry.type, entry.tags):
                    events.append(dcb_event(entry))
                    if limit is not None and len(events) >= limit:
                        break
        if limit is None:
            head = size or None
        else:
            head = events[-1].position if events else None
        return _ReadResponse(events, head)

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        if not events:
            raise ValueError("an append needs at least one event")
        try:
            entries = self._call(self.sequencer.append([dcb_draft(e) for e in events], condition))
        except ConditionFailedError as exc:
            raise IntegrityError(condition) from exc
        return entries[-1].position + 1

    def wait_for_growth(self, known_size: int, timeout: float) -> int:
        return self._call(self.store.wait_for_growth(self.log_id, known_size, timeout))

    def subscribe(
        self, query: DCBQuery | None = None, *, after: int | None = None
    ) -> _Subscription:
        return _Subscription(self, query, after)


class _Subscription(DCBSubscription[LedgerDCBRecorder]):
    def __init__(
        self, recorder: LedgerDCBRecorder, query: DCBQuery | None, after: int | None
    ) -> None:
        super().__init__(recorder, query, after)
        self._buffer: deque[DCBSequencedEvent] = deque()

    def __next__(self) -> DCBSequencedEvent:
        while not self._has_been_stopped:
            if self._buffer:
                event = self._buffer.popleft()
                self._last_position = event.position
                return event
            response = self._recorder.read(self._query, after=self._last_position, limit=500)
            self._buffer.extend(response)
            if not self._buffer:
                self._recorder.wait_for_growth(self._last_position, 0.2)
        raise StopIteration
