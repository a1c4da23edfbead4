"""The one write path: every signed entry joins an election's log through :class:`Casting`.

The HTTP endpoints, the CLI (``init``, ``amend``, ``keys``), the demo, ``import-pabulib``, the
benchmarks and the tests' log builders all submit signed envelopes here, and nowhere else is an
entry decided and appended. For each envelope, in order (each failure is its own domain or
ledger error and writes nothing):

  1. verify it: form, election, registered key, signature, role (:meth:`Ledger.verify`);
  2. check that its type is one the caller takes (an endpoint takes some types only);
  3. check what only the signer's registration says (a clerk key serves its polling point);
  4. read the entries its rule needs (one DCB read, batched with concurrent ones; in :meth:`submit`
     the same batch as their verification, step 1) and the head;
  5. decide with :mod:`votes` (pure): refuse, answer a replay, or a :class:`~votes.rules.Decision`;
  6. append under the DCB condition "no entry carrying the decision's condition tags after the
     head of the read"; the ledger re-checks key and role at the entry's own position;
  7. if another writer got in between (:class:`~ledger.errors.ConditionFailedError`), go back to
     step 4 and decide on the fresh history, at most :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.dcb.api import DCBAppendCondition, DCBQuery, DCBQueryItem

from ledger.entry import entry_encoder, entry_envelope, entry_payload
from ledger.errors import (
    BadBatchError,
    BatchTooLargeError,
    CastingBusyError,
    ConditionFailedError,
    ElectionEmptyError,
)
from ledger.keys import Envelope, SignerKey, sign_envelope
from ledger.log import Ledger, VerifiedEnvelope
from ledger.sequencer import check_entry_size
from ledger.store import StoredEntry
from votes import rules
from votes.admin import election_payload, key_registration
from votes.election import Election, check_amendment, election_from_dict
from votes.entries import EntryType
from votes.errors import BadPayloadError, DomainError, WrongEntryTypeError
from votes.receipts import receipt_code, receipt_tag
from votes.tags import DEFINITION_TAG

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BATCH",
    "Cast",
    "Casting",
    "batch_of",
    "check_election_size",
    "create_election",
    "prior_entry",
]

MAX_ATTEMPTS = 8
"""Decisions tried per envelope before :class:`~ledger.errors.CastingBusyError`."""

MAX_BATCH = 64
"""The most envelopes :meth:`Casting.submit_all` takes at once."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def prior_entry(entry: StoredEntry) -> rules.PriorEntry:
    """A stored entry as the rules see it: position, type, signed payload, signer."""
    envelope = entry_envelope(entry.data)
    return rules.PriorEntry(entry.position, entry.type, envelope["payload"], envelope["key"])


@dataclass(frozen=True, slots=True)
class Cast:
    """A submitted envelope's place in the log: the entry it became, or the entry it repeats.

    ``replay`` is true when the envelope repeated an entry already in the log (same nonce, same
    payload): nothing was appended and ``entry`` is the original, whose receipt it gets.
    """

    entry: StoredEntry
    replay: bool
    receipt: str

    @property
    def position(self) -> int:
        return self.entry.position


def batch_of(submitted: object) -> list[Any]:
    """The envelopes of a batch as received: a list of 1 to :data:`MAX_BATCH` of them, else
    :class:`~ledger.errors.BadBatchError` or :class:`~ledger.errors.BatchTooLargeError`."""
    if not isinstance(submitted, list) or not submitted:
        raise BadBatchError("a batch is a non-empty list of signed envelopes")
    if len(submitted) > MAX_BATCH:
        raise BatchTooLargeError(len(submitted), MAX_BATCH)
    return submitted


@dataclass(frozen=True, slots=True)
class _Rule:
    """How entries of one type are decided."""

    read_tags: Callable[[Mapping[str, Any]], Sequence[str]]
    receipt_tagged: bool = False


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    """An envelope's rule, what its decision reads, and the time it is decided at."""

    rule: _Rule
    tags: list[str]
    now: datetime


_NOTHING_TO_READ = _Rule(lambda payload: ())

_RULES: dict[str, _Rule] = {
    EntryType.BALLOT: _Rule(rules.read_tags_for_ballot, receipt_tagged=True),
    EntryType.PAPER_BALLOT: _Rule(rules.read_tags_for_ballot, receipt_tagged=True),
    EntryType.SPOILED_BALLOT: _Rule(rules.read_tags_for_spoiled),
    EntryType.VOID: _Rule(rules.read_tags_for_void),
    EntryType.ELECTION_AMENDED: _Rule(lambda payload: (DEFINITION_TAG,)),
    # The ledger itself keeps these in order under its lock: one election entry, first;
    # key names unique; revocations of registered keys only.
    EntryType.ELECTION: _NOTHING_TO_READ,
    EntryType.KEY_REGISTERED: _NOTHING_TO_READ,
    EntryType.KEY_REVOKED: _NOTHING_TO_READ,
    EntryType.RESULTS_PUBLISHED: _NOTHING_TO_READ,
    # Read by the voter's token, which the server derives beside the payload: see submit().
    EntryType.VOTER_LOOKUP: _NOTHING_TO_READ,
}


def _condition(decision: rules.Decision, head: int) -> DCBAppendCondition | None:
    if not decision.condition_tags:
        return None  # a query without items would match every entry
    items = [DCBQueryItem(tags=[tag]) for tag in decision.condition_tags]
    return DCBAppendCondition(DCBQuery(items), after=head)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a shared read's failure as seen: its waiters may all have been cancelled."""
    if not future.cancelled():
        future.exception()


def _receipt_of(entry: StoredEntry) -> str:
    return receipt_code(base64.b64decode(entry_envelope(entry.data)["sig"]))


class Casting:
    """Decides and appends every signed entry of one election's :class:`Ledger`.

    ``clock`` decides windows and deadlines (a simulated one replays a past election); the
    times recorded in the log stay the ledger's own.
    """

    def __init__(self, ledger: Ledger, clock: Clock = _utc_now) -> None:
        self.ledger = ledger
        self.clock = clock
        self._election: Election | None = None
        self._definition_read: asyncio.Future[Election] | None = None
        self.voter_key_id: str | None = None  # the election entry's, once the definition is read

    # The definition every decision is taken against.

    async def election(self) -> Election:
        """The election's definition: its first entry's, or the latest amendment's (only
        possible before voting opens). Read once, then kept; see :meth:`definition_seen`."""
        if self._election is None:
            # One read for all who ask at once: at start every concurrent caller does, and each
            # read took a pooled connection (opening one) and parsed the definition. They all
            # wait on the one read and go on together (as one batch, further on).
            read = self._definition_read
            if read is None:
                read = self._definition_read = asyncio.ensure_future(self._read_definition())
                read.add_done_callback(_retrieved)
            try:
                election = await asyncio.shield(read)
            finally:
                if self._definition_read is read and read.done():
                    self._definition_read = None
            self._election = election
        return self._election

    def definition_seen(self, election: Election) -> None:
        """A reader of the log (the live tally) saw ``election`` become the definition."""
        self._election = election

    async def _read_definition(self) -> Election:
        first = await self.ledger.entries(0, 1)
        if not first:
            raise ElectionEmptyError(self.ledger.log_id)
        latest = first[0]
        key_id = entry_payload(latest.data).get("voter_key_id")
        self.voter_key_id = key_id if isinstance(key_id, str) else None
        amendments, _ = await self.ledger.tagged([DEFINITION_TAG])
        for entry in amendments:
            if entry.type == EntryType.ELECTION_AMENDED and entry.position > latest.position:
                latest = entry
        return election_from_dict(entry_payload(latest.data)["definition"])

    # Submitting.

    async def submit(
        self,
        submitted: object,
        *,
        types: Collection[str] | None = None,
        token: str | None = None,
    ) -> Cast:
        """Verify the signed envelope ``submitted`` (as received), decide it, append it.

        ``types``: the entry types the caller takes (all when None). ``token``: for a
        ``voter-lookup`` only, the voter token the server derived from the number typed beside
        the envelope (it is in no payload; the entry is tagged with it). Returns once the entry is
        durable, or, for a replay, with the original entry.
        """
        plans: list[_ReadPlan] = []

        def read_tags(verified: VerifiedEnvelope) -> list[str]:
            plans.append(self._read_plan(verified, types, token))
            return plans[-1].tags

        # Verified and read in one batch with concurrent submissions (the read only once the
        # signature verified, as for submit_verified).
        verified, found, head = await self.ledger.verify_then_read(submitted, read_tags)
        return await self._cast(verified, plans[0], token, (found, head))

    async def submit_all(
        self, envelopes: Sequence[object], *, types: Collection[str] | None = None
    ) -> list[Cast | DomainError]:
        """Each of ``envelopes`` (at most :data:`MAX_BATCH`, each as received; see
        :func:`batch_of`) through :meth:`submit`, all at once, each on its own: one's refusal
        stops none of the others, and two of one voter (or one nonce) are decided as two
        requests would be, the second on a history holding the first. Answers, in order, each
        one's :class:`Cast` (durable) or the domain error that refused it. Any other exception
        is raised once every envelope has had its answer."""
        if len(envelopes) > MAX_BATCH:
            raise BatchTooLargeError(len(envelopes), MAX_BATCH)
        outcomes = await asyncio.gather(
            *(self.submit(envelope, types=types) for envelope in envelopes),
            return_exceptions=True,
        )
        answers: list[Cast | DomainError] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, DomainError):
                raise outcome
            answers.append(outcome)
        return answers

    async def submit_verified(
        self,
        verified: VerifiedEnvelope,
        *,
        types: Collection[str] | None = None,
        token: str | None = None,
    ) -> Cast:
        """Steps 2-7 for an envelope :meth:`Ledger.verify` accepted."""
        return await self._cast(verified, self._read_plan(verified, types, token), token, None)

    def _read_plan(
        self, verified: VerifiedEnvelope, types: Collection[str] | None, token: str | None
    ) -> _ReadPlan:
        """Steps 2 and 3, and what step 4 reads."""
        payload = verified.payload
        entry_type = payload.get("type")
        if types is not None and entry_type not in types:
            raise WrongEntryTypeError(tuple(types), entry_type)
        rule = _RULES.get(str(entry_type))
        if rule is None:
            raise WrongEntryTypeError(tuple(_RULES), entry_type)
        if entry_type in (EntryType.PAPER_BALLOT, EntryType.SPOILED_BALLOT, EntryType.VOTER_LOOKUP):
            record = self.ledger.registry.get(verified.envelope.key)
            rules.check_polling_point(record.polling_point if record else None, payload)
        now = self.clock()
        read_tags = list(rule.read_tags(payload))
        if entry_type == EntryType.VOTER_LOOKUP:
            if token is None:  # only the voter-token route derives one
                raise WrongEntryTypeError(tuple(t for t in _RULES if t != entry_type), entry_type)
            read_tags = list(rules.read_tags_for_lookup(payload, token))
        return _ReadPlan(rule, read_tags, now)

    async def _cast(
        self,
        verified: VerifiedEnvelope,
        plan: _ReadPlan,
        token: str | None,
        first_read: tuple[list[StoredEntry], int] | None,
    ) -> Cast:
        """Steps 4-7; ``first_read``: the first step 4's read, if already done."""
        entry_type = verified.payload.get("type")
        code = receipt_code(verified.envelope.sig)
        extra_tags = (receipt_tag(code),) if plan.rule.receipt_tagged else ()
        now = plan.now
        read_tags = plan.tags
        for _ in range(MAX_ATTEMPTS):
            if first_read is not None:
                (found, head), first_read = first_read, None
                history = [prior_entry(e) for e in found]
            elif read_tags:
                found, head = await self.ledger.tagged(read_tags)
                history = [prior_entry(e) for e in found]
            else:
                history, head = [], 0
            decision = await self._decide(verified, history, now, token)
            if decision.replay_of is not None:
                [original] = await self.ledger.entries(decision.replay_of, decision.replay_of + 1)
                # The original may be a write whose commit failed (503) yet took locally: not
                # acknowledged until it is as durable as a new entry would be.
                await self.ledger.store.wait_durable()
                return Cast(original, True, _receipt_of(original))
            try:
                appended = await self.ledger.append_verified(
                    verified,
                    tags=[*decision.tags, *extra_tags],
                    condition=_condition(decision, head),
                )
            except ConditionFailedError:
                continue
            if entry_type == EntryType.ELECTION_AMENDED:
                self._election = None  # read again, from the log, on next use
            return Cast(appended.entry, False, code)
        raise CastingBusyError()

    async def _decide(
        self,
        verified: VerifiedEnvelope,
        history: list[rules.PriorEntry],
        now: datetime,
        token: str | None = None,
    ) -> rules.Decision:
        """Step 5: the decision of the rules for the envelope's type."""
        payload = verified.payload
        entry_type = payload["type"]
        if entry_type in (EntryType.BALLOT, EntryType.PAPER_BALLOT):
            return rules.decide_ballot(
                await self.election(), payload, history, now=now, key=verified.envelope.key
            )
        if entry_type == EntryType.VOTER_LOOKUP:
            assert token is not None  # submit_verified refuses a lookup without one
            election = await self.election()
            return rules.decide_lookup(election, payload, history, now=now, token=token)
        if entry_type == EntryType.SPOILED_BALLOT:
            return rules.decide_spoiled(await self.election(), payload, history, now=now)
        if entry_type == EntryType.VOID:
            return rules.decide_void(
                await self.election(), payload, await self._void_target(payload), history, now=now
            )
        if entry_type == EntryType.ELECTION_AMENDED:
            self._election = None  # decide against the log's latest definition, not a cache
            current = await self.election()
            definition = payload.get("definition")
            if not isinstance(definition, dict):
                raise BadPayloadError("definition", "must be the election's definition (an object)")
            check_amendment(current, election_from_dict(definition), now=now)
            return rules.Decision(tags=(DEFINITION_TAG,), condition_tags=(DEFINITION_TAG,))
        if entry_type == EntryType.ELECTION:
            return rules.Decision(tags=(DEFINITION_TAG,), condition_tags=())
        return rules.Decision(tags=(), condition_tags=())

    async def _void_target(self, payload: Mapping[str, Any]) -> rules.PriorEntry | None:
        position = payload.get("entry")
        if isinstance(position, int) and not isinstance(position, bool) and position >= 0:
            found = await self.ledger.entries(position, position + 1)
            return prior_entry(found[0]) if found else None
        return None


async def create_election(
    casting: Casting,
    election: Election,
    admin: SignerKey,
    voter_key: bytes,
    keys: Sequence[tuple[SignerKey, str, str | None]] = (),
) -> None:
    """Write an empty log's first entries: the definition signed by ``admin``, then each
    ``(key, role, polling point)`` registration, as ``uchast init`` and ``keys add`` would."""
    definition = election_payload(election, admin.verifier.vkey, voter_key)
    await casting.submit(sign_envelope(definition, admin))
    for key, role, point in keys:
        registration = key_registration(election.id, key.verifier.vkey, role, point)
        await casting.submit(sign_envelope(registration, admin))


def check_election_size(election: Election, admin: SignerKey, voter_key: bytes) -> None:
    """Refuse, before anything is written, an election whose first entry would not fit the log
    (:class:`~ledger.errors.EntryTooLargeError`): ``uchast init`` and ``import-pabulib`` ask
    this before they make keys or a log. Any key of the admin key's name gives the same size."""
    payload = election_payload(election, admin.verifier.vkey, voter_key)
    envelope = Envelope.parse(sign_envelope(payload, admin))
    # The tags the election entry gets: its decision's, and its key's (Ledger.append_verified).
    tags = sorted({DEFINITION_TAG, f"key:{envelope.key}"})
    check_entry_size(entry_encoder(envelope, tags, EntryType.ELECTION.value))
