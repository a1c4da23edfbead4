"""A clerk key's voter lookups, held to a human's pace.

A voter token opens that person's picks in the public log, so a clerk key that could turn
identity numbers into tokens at machine speed would be a de-anonymiser. Each clerk key may make
a burst of lookups (a queue at the desk), then one every few seconds: :data:`DEFAULT_LOOKUP_LIMIT`,
``ServiceConfig.lookup_limit``. This is apart from the general per-role write limit
(api/ratelimit.py): a lookup is charged here only once its signature verified, so junk naming a
clerk's key id spends nothing of the clerk's lookups, and there is one bucket per verified key
(registered keys only, so their number is bounded by the log).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.service import Service

__all__ = ["DEFAULT_LOOKUP_LIMIT", "LookupLimiter", "lookup_limiter"]

DEFAULT_LOOKUP_LIMIT = (5, 3.0)
"""A burst of 5 lookups per clerk key, then one every 3 seconds."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class LookupLimiter:
    """Per-key token buckets: ``burst`` lookups at once, one more every ``interval`` seconds.
    A burst of 0 is no limit."""

    def __init__(
        self, burst: int, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def take(self, election: str, key: str) -> float:
        """Spend one lookup of ``key`` in ``election``: 0 if allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get((election, key))
        if bucket is None:
            bucket = self._buckets[(election, key)] = _Bucket(float(self.burst), now)
        elif self.interval > 0:
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.at) / self.interval
            )
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) * self.interval if self.interval > 0 else float("inf")

    def __len__(self) -> int:
        return len(self._buckets)


_LIMITERS: weakref.WeakKeyDictionary[Service, LookupLimiter] = weakref.WeakKeyDictionary()


def lookup_limiter(service: Service) -> LookupLimiter:
    """The lookup limiter of ``service``, made on first use from its configuration. A refused
    lookup (already voted, outside the window) is charged too: its answer tells something."""
    limiter = _LIMITERS.get(service)
    if limiter is None:
        burst, interval = service.config.lookup_limit
        limiter = _LIMITERS[service] = LookupLimiter(burst, interval)
    return limiter
