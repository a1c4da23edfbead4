"""Rate limiting of signed writes: token buckets in front of the write handlers, on by default.

Each registered key has a budget at its role's rate (:data:`ROLE_RATES`): a clerk types at human
speed (one write a second, a burst of ten), the voting site's one key carries every online
ballot (2,000 a second), a supervisor voids the odd entry. ``uchast serve --rate-limit N`` gives
every key N a second instead, ``--rate-limit-role clerk=2`` one role its own rate,
``--rate-burst`` the bucket size. Past the limit a write is answered ``429`` problem+json
``rate-limited`` with ``Retry-After``.

A key's budget pays only for requests its signature verified. A key id is public (the log holds
it), so anything else would let a stranger spend a clerk's budget with unsigned junk under the
clerk's key id. Requests not (or not yet) verified are charged to their sender's address instead
(:data:`UNVERIFIED_RATE` a second): before the handler when they name no election or key this
process knows, after it when their signature did not verify. An address over that budget is
refused before anything is verified, so forged signatures cost at most that many Ed25519 checks
a second per address. Behind the front proxy every request comes from the proxy's address; its
per-address limits (``deploy/nginx.conf``: ``limit_req``) are then what keeps one sender's junk
from spending the others' share.

Buckets exist only for keys registered in an election this process has open, and for client
addresses; both tables are capped (:data:`MAX_BUCKETS`), the least recently used bucket going
first, so invented election or key names cost no memory.

Only ``POST`` requests under ``/v1/elections/`` are counted; reads are bounded elsewhere
(page caps, cached results) and are the proxy's business.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.bodies import body_deadline, parsed_body, wait_for_body
from api.problems import Handler, ProblemError, problem_body, problem_response

WRITE_PREFIX = "/v1/elections/"

ROLE_RATES: Mapping[str, tuple[float, float]] = {
    # role: (writes per second, burst)
    "site": (2000.0, 4000.0),
    "clerk": (1.0, 10.0),
    "supervisor": (0.2, 5.0),
    "admin": (1.0, 20.0),
}
"""The default budget of a key of each role (``uchast serve`` with no rate flags)."""

UNVERIFIED_RATE = (200.0, 2000.0)
"""Unverified requests a second per client address, and the burst."""

MAX_BUCKETS = 100_000
"""The most buckets kept per table (keys; client addresses)."""

# Refusals that come before (or from) the signature check: the named key proved nothing.
UNVERIFIED_CODES = frozenset(
    {
        "bad-json",
        "bad-batch",
        "batch-too-large",
        "bad-envelope",
        "bad-key",
        "bad-signature",
        "unknown-key",
        "unknown-election",
        "wrong-election",
        "unsupported-media-type",
        "payload-too-large",
        "body-timeout",
        "not-initialised",
    }
)


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; each request takes one."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float, ahead: int = 0) -> float:
        """Seconds until a token is there (0.0: there is one now) once ``ahead`` requests
        before this one have taken theirs; takes nothing."""
        self.refill(now)
        tokens = self.tokens - ahead
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there will be."""
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1.0
        return wait

    def charge(self, now: float) -> None:
        """Take a token after the fact, even into debt (a request already served)."""
        self.refill(now)
        self.tokens -= 1.0


class _Buckets:
    """A table of buckets capped at ``capacity``, least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._table: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def get(self, name: Hashable, rate: float, burst: float, now: float) -> TokenBucket:
        bucket = self._table.get(name)
        if bucket is None:
            capacity = max(1.0, burst or rate)
            bucket = self._table[name] = TokenBucket(rate, capacity, capacity, now)
            if len(self._table) > self.capacity:
                self._table.popitem(last=False)
        else:
            self._table.move_to_end(name)
        return bucket

    def peek(self, name: Hashable) -> TokenBucket | None:
        return self._table.get(name)

    def __len__(self) -> int:
        return len(self._table)


class RateLimiter:
    """Token buckets by (election, key) at per-role rates, and by client address for requests
    not verified. A rate of 0 means no limit."""

    def __init__(
        self,
        rate: float = 0.0,
        *,
        burst: float = 0.0,
        role_rates: Mapping[str, float] | None = None,
        role_bursts: Mapping[str, float] | None = None,
        unverified: tuple[float, float] = UNVERIFIED_RATE,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.role_rates = dict(role_rates or {})
        self.role_bursts = dict(role_bursts or {})
        self.unverified_rate, self.unverified_burst = unverified
        self.clock = clock
        self._keys = _Buckets(max_buckets)
        self._addresses = _Buckets(max_buckets)

    @classmethod
    def defaults(cls, **overrides: Any) -> RateLimiter:
        """The limiter ``uchast serve`` runs with no rate flags (:data:`ROLE_RATES`)."""
        return cls(
            role_rates={role: rate for role, (rate, _) in ROLE_RATES.items()},
            role_bursts={role: burst for role, (_, burst) in ROLE_RATES.items()},
            **overrides,
        )

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or any(r > 0 for r in self.role_rates.values())

    def rate_for(self, role: str | None) -> float:
        """Requests per second for a key of ``role``; 0 = no limit."""
        if role is not None and role in self.role_rates:
            return self.role_rates[role]
        return self.rate

    def burst_for(self, role: str | None) -> float:
        """The bucket size for a key of ``role`` (at least one request)."""
        if self.burst:
            return self.burst
        if role is not None and role in self.role_bursts and role in self.role_rates:
            return self.role_bursts[role]
        return max(1.0, self.rate_for(role))

    def _key_bucket(self, election: str, key: str, role: str | None) -> TokenBucket | None:
        rate = self.rate_for(role)
        if rate <= 0:
            return None
        return self._keys.get((election, key), rate, self.burst_for(role), self.clock())

    def take(self, election: str, key: str, role: str | None) -> float:
        """Count one request of a registered key; 0.0 if allowed, else the seconds to wait."""
        bucket = self._key_bucket(election, key, role)
        return 0.0 if bucket is None else bucket.take(self.clock())

    def key_wait(self, election: str, key: str, role: str | None, *, ahead: int = 0) -> float:
        """Seconds before the key may write again (0.0: now) with ``ahead`` of its requests
        already let through before this one; takes nothing."""
        bucket = self._key_bucket(election, key, role)
        return 0.0 if bucket is None else bucket.wait(self.clock(), ahead)

    def charge_key(self, election: str, key: str, role: str | None) -> None:
        """Count a request the key's signature verified (already let through)."""
        bucket = self._key_bucket(election, key, role)
        if bucket is not None:
            bucket.charge(self.clock())

    def unverified_wait(self, address: str) -> float:
        """Seconds before ``address`` may send unverified requests again; takes nothing, and
        makes no bucket for an address that has not been charged."""
        if self.unverified_rate <= 0:
            return 0.0
        bucket = self._addresses.peek(address)
        return 0.0 if bucket is None else bucket.wait(self.clock())

    def charge_unverified(self, address: str) -> None:
        """Count an unverified request from ``address`` against its budget."""
        if self.unverified_rate > 0:
            now = self.clock()
            self._addresses.get(address, self.unverified_rate, self.unverified_burst, now).charge(
                now
            )

    def __len__(self) -> int:
        return len(self._keys) + len(self._addresses)


def envelope_key(body: bytes) -> str | None:
    """The envelope's ``"key"`` field, unverified; None if the body has no such string. A voter
    lookup's body holds its envelope under ``"envelope"``."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return key_of(obj)


def key_of(obj: Any) -> str | None:
    """The ``"key"`` string of a parsed envelope (or of the one under a voter lookup's
    ``"envelope"``), unverified; None if there is none."""
    if isinstance(obj, dict) and isinstance(obj.get("envelope"), dict):
        obj = obj["envelope"]
    if isinstance(obj, dict):
        key = obj.get("key")
        if isinstance(key, str):
            return key
    return None


def _registered_role(request: web.Request, election: str, key: str | None) -> str | None:
    """The role of ``key`` if it is registered in ``election`` as this process last saw it
    (None for an election not open here or a key not registered in it)."""
    from api.keys import SERVICE  # api.keys imports the service: import it when used

    if key is None:
        return None
    for ledger in request.app[SERVICE].open_ledgers():
        if ledger.log_id == election:
            record = ledger.registry.get(key)
            return None if record is None else record.role.value
    return None


def rate_limited(
    wait: float, message_en: str, message_uk: str, *, same_nonce: bool = True
) -> dict[str, Any]:
    """The problem document ``rate-limited``: retry after ``wait`` seconds, rounded up (its
    ``retry_after``). ``same_nonce``: the retry repeats the request as it was (a voter lookup's
    may not: it needs a new nonce)."""
    retry_after = max(1, math.ceil(wait))
    en_nonce, uk_nonce = (" with the same nonce", " з тим самим nonce") if same_nonce else ("", "")
    return problem_body(
        429,
        "rate-limited",
        f"{message_en}; retry after {retry_after} s{en_nonce}",
        f"{message_uk}; повторіть через {retry_after} с{uk_nonce}",
        retry_after=retry_after,
    )


def too_many(
    wait: float, message_en: str, message_uk: str, *, same_nonce: bool = True
) -> web.Response:
    """429 :func:`rate_limited` with Retry-After."""
    body = rate_limited(wait, message_en, message_uk, same_nonce=same_nonce)
    response = problem_response(
        429, "rate-limited", body["message_en"], body["message_uk"], retry_after=body["retry_after"]
    )
    response.headers["Retry-After"] = str(body["retry_after"])
    return response


def middleware(limiter: RateLimiter) -> Middleware:
    """The aiohttp middleware counting signed writes against ``limiter``. It takes the place of
    :func:`api.bodies.body_deadline` (one middleware less on every request) and so first reads
    the body under its deadline, as that one does."""

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = await wait_for_body(request)
        if refused is not None:
            return refused
        if request.method != "POST" or not request.path.startswith(WRITE_PREFIX):
            return await handler(request)
        address = request.remote or ""
        wait = limiter.unverified_wait(address)
        if wait > 0:
            return too_many(
                wait,
                "too many unverified requests from this address",
                "забагато неперевірених запитів з цієї адреси",
            )
        election = request.match_info.get("election", "")
        try:
            # Parsed once: the handler's read_json answers this same value (or problem).
            body = await parsed_body(request)
        except ProblemError:
            body = None
        except web.HTTPException:
            limiter.charge_unverified(address)
            raise
        if isinstance(body, dict) and "envelopes" in body:
            # A batch (api/vote_routes.py): the handler counts each envelope as a request of
            # its own (charge_items); the address pays only for a batch refused whole.
            try:
                return await handler(request)
            except Exception:
                limiter.charge_unverified(address)
                raise
        key = key_of(body)
        role = _registered_role(request, election, key)
        if key is None or role is None:
            # Nothing this process could hold a budget for: the sender's address pays.
            limiter.charge_unverified(address)
            return await handler(request)
        wait = limiter.key_wait(election, key, role)
        if wait > 0:
            return too_many(
                wait, "too many requests under this key", "забагато запитів з цим ключем"
            )
        try:
            response = await handler(request)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code in UNVERIFIED_CODES or (code is None and _unverified_status(exc)):
                limiter.charge_unverified(address)
            else:
                limiter.charge_key(election, key, role)
            raise
        limiter.charge_key(election, key, role)
        return response

    return rate_limit


def item_waits(request: web.Request, envelopes: list[Any]) -> list[float]:
    """For each envelope of a batch, in order, the seconds its key must wait (0.0: it may go
    now): a batch of k envelopes under one key needs k of its tokens, as k requests would.
    Takes nothing (:func:`charge_items` counts them once answered)."""
    limiter = request.app.get(LIMITER)
    if limiter is None:
        return [0.0] * len(envelopes)
    election = request.match_info.get("election", "")
    wanted: dict[tuple[str, str], int] = {}
    waits = []
    for envelope in envelopes:
        key = key_of(envelope)
        role = _registered_role(request, election, key)
        if key is None or role is None:
            waits.append(0.0)
            continue
        earlier = wanted.get((key, role), 0)
        wanted[(key, role)] = earlier + 1
        waits.append(limiter.key_wait(election, key, role, ahead=earlier))
    return waits


def charge_items(request: web.Request, envelopes: list[Any], codes: list[str | None]) -> None:
    """Count each answered envelope of a batch as the middleware counts a request: its key's
    budget if its signature verified (``codes``: the item's problem code, None if written or
    replayed), its sender's address if not; nothing for an item refused ``rate-limited``."""
    limiter = request.app.get(LIMITER)
    if limiter is None:
        return
    election = request.match_info.get("election", "")
    address = request.remote or ""
    for envelope, code in zip(envelopes, codes, strict=True):
        if code == "rate-limited":
            continue
        key = key_of(envelope)
        role = _registered_role(request, election, key)
        if key is None or role is None or code in UNVERIFIED_CODES:
            limiter.charge_unverified(address)
        else:
            limiter.charge_key(election, key, role)


def _unverified_status(exc: BaseException) -> bool:
    """An aiohttp refusal of the request itself (body too large, too slow, malformed)."""
    return isinstance(exc, web.HTTPException) and exc.status in (400, 408, 413, 415)


def setup(app: web.Application) -> None:
    """Register the limiter the service's configuration asks for (:data:`ROLE_RATES` unless
    it says otherwise; none if rate limiting is turned off)."""
    from api.keys import SERVICE

    config = app[SERVICE].config
    if not config.rate_limiting:
        return
    unverified_rate = config.unverified_rate_limit
    unverified = (unverified_rate, max(unverified_rate, UNVERIFIED_RATE[1]))
    role_rates = dict(config.role_rate_limits)
    if config.rate_limit > 0:
        # --rate-limit N: every key at N a second, unless --rate-limit-role names its role.
        limiter = RateLimiter(
            config.rate_limit,
            burst=config.rate_burst,
            role_rates=role_rates,
            unverified=unverified,
        )
    else:
        limiter = RateLimiter.defaults(burst=config.rate_burst, unverified=unverified)
        for role, rate in role_rates.items():
            limiter.role_rates[role] = rate
            limiter.role_bursts.pop(role, None)  # an explicit rate: one second's burst
    if limiter.enabled:
        app[LIMITER] = limiter
        # In the body deadline's place: the limiter's middleware waits for the body first.
        app.middlewares[app.middlewares.index(body_deadline)] = middleware(limiter)


LIMITER = web.AppKey("rate_limiter", RateLimiter)
