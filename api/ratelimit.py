"""Rate limiting of signed writes, per signing key: a token bucket in front of the handlers.

``uchast serve --rate-limit N`` lets each key send N signed writes per second on average, with a
burst of ``--rate-burst`` (default: one second's worth); ``--rate-limit-role site=5000`` gives
every key of a role its own rate (the voting site's one key carries every online ballot, a clerk
types a few a minute). Past the limit a write is answered ``429`` problem+json ``rate-limited``
with ``Retry-After``. Off by default: ``--rate-limit 0``.

Which bucket a request draws from is decided *before* its signature is verified, from the
envelope's ``"key"`` field read without checking anything (a JSON parse; no database, no
cryptography):

- a key registered in the election (as this process last saw the registry) has its own bucket,
  at its role's rate;
- any other key name, and bodies with no readable key, share one bucket per election (one for
  requests that name no election), so inventing fresh key names gains nothing and the bucket
  table stays as small as the registry.

The trade-off, chosen knowingly: counting before verifying means a flood of forged requests is
stopped before it costs an Ed25519 verification each (about 4.5k/s per core), but it also means
anyone who knows a key's public id (it is in the log) can spend that key's budget and get the
real holder refused with 429s. The real holder loses nothing permanently (a refused write is not
written; the client retries by nonce) and the flood is bounded; the front proxy's per-address
limits (``deploy/nginx.conf``: ``limit_req``) are what stop one address from doing it. Counting
after verification would protect the holder but let a forger burn CPU at will; that is the worse
failure on voting day.

Only ``POST`` requests under ``/v1/elections/`` are counted; reads are the proxy's business.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.keys import SERVICE
from api.problems import Handler, problem_response

UNREGISTERED = "*unregistered*"
WRITE_PREFIX = "/v1/elections/"


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; each request takes one."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Token buckets by (election, key), with a default rate and per-role rates."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 0.0,
        role_rates: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.role_rates = dict(role_rates or {})
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or any(r > 0 for r in self.role_rates.values())

    def rate_for(self, role: str | None) -> float:
        """Requests per second for a key of ``role`` (None: not a registered key); 0 = no limit."""
        if role is not None and role in self.role_rates:
            return self.role_rates[role]
        return self.rate

    def take(self, election: str, key: str, role: str | None) -> float:
        """Count one request; 0.0 if allowed, else the seconds to wait before retrying."""
        rate = self.rate_for(role)
        if rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get((election, key))
        if bucket is None:
            capacity = max(1.0, self.burst or rate)
            bucket = TokenBucket(rate, capacity, capacity, now)
            self._buckets[(election, key)] = bucket
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


def envelope_key(body: bytes) -> str | None:
    """The envelope's ``"key"`` field, unverified; None if the body has no such string."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        key = obj.get("key")
        if isinstance(key, str):
            return key
    return None


def _bucket(request: web.Request, election: str, key: str | None) -> tuple[str, str | None]:
    """The bucket's key name and the role its rate comes from."""
    if key is None:
        return UNREGISTERED, None
    for ledger in request.app[SERVICE].open_ledgers():
        if ledger.log_id == election:
            record = ledger.registry.get(key)
            if record is not None:
                return key, record.role.value
    return UNREGISTERED, None


def middleware(limiter: RateLimiter) -> Middleware:
    """The aiohttp middleware counting signed writes against ``limiter``."""

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.startswith(WRITE_PREFIX):
            return await handler(request)
        election = request.match_info.get("election", "")
        # Reading the body here is what the handler would do first anyway; aiohttp keeps it for
        # the handler, and refuses bodies over the app's size limit (413) before we see them.
        body = await request.read()
        name, role = _bucket(request, election, envelope_key(body))
        wait = limiter.take(election, name, role)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            response = problem_response(
                429,
                "rate-limited",
                f"too many requests under this key; retry after {retry_after} s "
                "with the same nonce",
                f"забагато запитів з цим ключем; повторіть через {retry_after} с з тим самим nonce",
                retry_after=retry_after,
            )
            response.headers["Retry-After"] = str(retry_after)
            return response
        return await handler(request)

    return rate_limit


def setup(app: web.Application) -> None:
    """Register the limiter if the service's configuration asks for one."""
    config = app[SERVICE].config
    limiter = RateLimiter(
        config.rate_limit, burst=config.rate_burst, role_rates=dict(config.role_rate_limits)
    )
    if limiter.enabled:
        app[LIMITER] = limiter
        app.middlewares.append(middleware(limiter))


LIMITER = web.AppKey("rate_limiter", RateLimiter)
