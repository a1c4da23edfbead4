"""One election's signed log: verify, sequence, prove.

Checks for every append, in order (each failure is its own error and writes nothing):
  1. the envelope has the form ``{"payload": {...}, "key": ..., "sig": ...}``;
  2. the payload names this log's election;
  3. the key is registered in this log (the election entry registers its own admin key);
  4. the Ed25519 signature verifies over ``b"uchast/v1\\n" + canonical(payload)``;
  then, under the log's lock, at the position the entry would take:
  5. the key is not revoked and its role may write this entry type;
  6. the entry fits the log's state (one election entry, first; unique key names);
  7. the caller's DCB condition holds against the committed log and the batch so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.dcb.api import DCBAppendCondition

from ledger import merkle
from ledger.batching import MicroBatcher
from ledger.checkpoint import Checkpoint, CheckpointJournal, verify_checkpoint
from ledger.entry import entry_encoder, entry_envelope
from ledger.errors import (
    BadSignatureError,
    KeyRevokedError,
    LogNotInitialisedError,
    LogRolledBackError,
    ProofError,
    UnknownKeyError,
    WrongLogError,
)
from ledger.keys import Envelope, SignerKey, VerifierKey
from ledger.registry import KeyRegistry, election_admin_key
from ledger.sequencer import Sequencer
from ledger.store import SequencingTransaction, Store, StoredCheckpoint, StoredEntry
from ledger.verify import SignatureVerifier
from votes.entries import KEY_EVENT_TYPES, EntryType

_log = logging.getLogger("uchast.ledger")


@dataclass(frozen=True, slots=True)
class Appended:
    """What the log tells the caller once an entry is durable."""

    position: int
    leaf_hash: bytes
    entry: StoredEntry


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """An envelope whose signature verified under a key registered in this log."""

    envelope: Envelope
    role: str

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope.payload


ReadTags = Callable[[VerifiedEnvelope], Sequence[str]]
"""What :meth:`Ledger.verify_then_read` reads for an envelope that verified."""

VerifiedRead = tuple[VerifiedEnvelope, list[StoredEntry], int]


class _LogGatekeeper:
    """Steps 5 and 6 of the checklist, run by the sequencer under the lock."""

    def __init__(self, registry: KeyRegistry) -> None:
        self.registry = registry

    async def catch_up(
        self, tx: SequencingTransaction, size: int, entries: Sequence[StoredEntry] | None = None
    ) -> None:
        if self.registry.size < size:
            if entries is None or not entries or entries[0].position > self.registry.size:
                types = [t.value for t in KEY_EVENT_TYPES]
                entries = await tx.read(self.registry.size, size, types)
            for entry in entries:
                if entry.type in KEY_EVENT_TYPES:
                    envelope = entry_envelope(entry.data)
                    self.registry.apply(envelope["payload"], envelope["key"], entry.position)
            self.registry.commit(size)

    def admit(self, token: object, position: int) -> None:
        assert isinstance(token, Envelope)
        entry_type = token.payload["type"]
        if entry_type != EntryType.ELECTION:
            if position == 0:
                raise LogNotInitialisedError("the first entry of a log must define the election")
            self.registry.check_signer(token.key, entry_type, position)
        if entry_type in KEY_EVENT_TYPES:
            self.registry.stage(token.payload, token.key, position)

    def commit(self, size: int) -> None:
        self.registry.commit(size)

    def abort(self) -> None:
        self.registry.abort()


class Ledger:
    """The signed append-only log of one election, over a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        log_id: str,
        *,
        log_signer: SignerKey | None = None,
        deployment: str = "uchast.local",
        max_batch: int = 512,
        checkpoint_interval: float = 0.0,
        verify_workers: int | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        journal: CheckpointJournal | None = None,
    ) -> None:
        """``on_batch(requests, seconds)`` is called after each committed batch of appends.

        ``journal``: where this log key's published checkpoints are kept, outside the database;
        with it, the log refuses to sign or append anything that does not extend them."""
        self.store = store
        self.log_id = log_id
        self.origin = f"{deployment}/{log_id}"
        self.log_key = log_signer.verifier if log_signer is not None else None
        self.registry = KeyRegistry()
        self.signatures = SignatureVerifier(verify_workers)
        self._refresh_lock = asyncio.Lock()
        self._tagged_reads: MicroBatcher[tuple[str, ...], tuple[list[StoredEntry], int]] = (
            MicroBatcher(self._read_tagged_batch)
        )
        # One batch of all that waits, not two in flight: measured both ways (README, eighth
        # round), two batches were no faster at C=64 and cost 15-25 % more CPU per entry (twice
        # the sequencer's batches, each with its statement, commit and signed checkpoint).
        self._verified_reads: MicroBatcher[tuple[object, ReadTags], VerifiedRead] = MicroBatcher(
            self._verify_read_batch
        )
        self.sequencer = Sequencer(
            store,
            log_id,
            origin=self.origin,
            signer=log_signer,
            gatekeeper=_LogGatekeeper(self.registry),
            max_batch=max_batch,
            checkpoint_interval=checkpoint_interval,
            on_batch=on_batch,
            entry_types=[t.value for t in EntryType],
            journal=journal,
        )

    async def open(self) -> None:
        """Create the log if absent, load its keys and start the sequencer.

        A log that does not extend the journal's checkpoints still opens, for reads (the
        evidence); :attr:`rolled_back` says why every write is refused."""
        await self.store.create_log(self.log_id)
        await self.refresh_keys()
        await self.sequencer.start()
        if self.log_key is not None:
            # Entries may have been written without the log key (uchast init, keys add):
            # make sure the current size has a checkpoint before anyone asks for one.
            try:
                if await self.size() > 0:
                    await self.sequencer.flush_checkpoint()
                else:
                    await self.sequencer.check_journal()
            except LogRolledBackError as exc:
                _log.error(
                    "log %s ROLLED BACK: a checkpoint of %d entries was published, the database"
                    " %s; refusing every write until the database is restored",
                    self.log_id,
                    exc.published,
                    f"holds {exc.size}" if exc.reason == "shorter" else "holds another history",
                )

    @property
    def rolled_back(self) -> LogRolledBackError | None:
        """Why this log refuses writes: it does not extend the checkpoints already published."""
        return self.sequencer.rolled_back

    async def close(self) -> None:
        await self._verified_reads.close()
        await self._tagged_reads.close()
        await self.sequencer.stop()
        await self.signatures.close()

    async def refresh_keys(self) -> None:
        """Apply key entries committed since the registry was last brought up to date."""
        async with self._refresh_lock:
            size = await self.store.size(self.log_id)
            if self.registry.size >= size:
                return
            start = self.registry.size
            types = [t.value for t in KEY_EVENT_TYPES]
            for entry in await self.store.typed(self.log_id, types, start, size):
                if entry.position >= self.registry.size:
                    envelope = entry_envelope(entry.data)
                    self.registry.apply(envelope["payload"], envelope["key"], entry.position)
            self.registry.commit(size)

    async def verifier_for(self, envelope: Envelope) -> VerifierKey:
        """Step 3: the public key the envelope names, as registered in this log."""
        if envelope.payload.get("type") == EntryType.ELECTION:
            admin = election_admin_key(envelope.payload)
            if admin.key_id == envelope.key:
                return admin
        record = self.registry.get(envelope.key)
        if record is None and self.registry.worth_looking_up(envelope.key):
            await self.refresh_keys()
            record = self.registry.get(envelope.key)
        if record is None:
            raise UnknownKeyError(envelope.key)
        return record.key

    async def verify(self, submitted: object, *, check_role: bool = True) -> VerifiedEnvelope:
        """Checks 1-4 and an early look at 5: who signed this, and may they write it?

        Callers verify before they read any state, so an unsigned request learns nothing about
        voters. The role and revocation checks are repeated under the lock when appending.
        """
        envelope, verifier = await self._signed_by(submitted)
        ok = await self.signatures.verify(verifier.public, envelope.message, envelope.sig)
        return self._accept(envelope, verifier, ok, check_role)

    async def verify_then_read(
        self, submitted: object, read_tags: ReadTags
    ) -> tuple[VerifiedEnvelope, list[StoredEntry], int]:
        """:meth:`verify`, then, for an envelope that verified, the DCB read :meth:`tagged` of
        the tags ``read_tags(verified)`` names (none: no read, head 0). Concurrent callers share
        one batch for both, so each meets one batcher instead of two; ``read_tags`` may raise
        to refuse the envelope before anything is read."""
        return await self._verified_reads.submit((submitted, read_tags))

    async def _verify_read_batch(
        self, requests: Sequence[tuple[object, ReadTags]]
    ) -> list[VerifiedRead | BaseException]:
        outcomes: list[VerifiedRead | BaseException | None] = [None] * len(requests)
        signed: list[tuple[int, Envelope, VerifierKey]] = []
        for i, (submitted, _) in enumerate(requests):
            try:
                envelope, verifier = await self._signed_by(submitted)
            except Exception as exc:
                outcomes[i] = exc
                continue
            signed.append((i, envelope, verifier))
        checks = [(v.public, e.message, e.sig) for _, e, v in signed]
        oks = await self.signatures.verify_many(checks) if checks else []
        wanted: list[tuple[int, VerifiedEnvelope, tuple[str, ...]]] = []
        for (i, envelope, verifier), ok in zip(signed, oks, strict=True):
            try:
                verified = self._accept(envelope, verifier, ok, True)
                tags = tuple(requests[i][1](verified))
            except Exception as exc:
                outcomes[i] = exc
                continue
            if tags:
                wanted.append((i, verified, tags))
            else:
                outcomes[i] = (verified, [], 0)
        if wanted:
            try:
                reads = await self._read_tagged_batch([tags for _, _, tags in wanted])
            except Exception as exc:
                for i, _, _ in wanted:
                    outcomes[i] = exc
            else:
                for (i, verified, _), (found, head) in zip(wanted, reads, strict=True):
                    outcomes[i] = (verified, found, head)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _signed_by(self, submitted: object) -> tuple[Envelope, VerifierKey]:
        """Checks 1-3: the envelope's form, election and registered key."""
        envelope = Envelope.parse(submitted)
        if envelope.payload.get("election") != self.log_id:
            raise WrongLogError(self.log_id, envelope.payload.get("election"))
        return envelope, await self.verifier_for(envelope)

    def _accept(
        self, envelope: Envelope, verifier: VerifierKey, ok: bool, check_role: bool
    ) -> VerifiedEnvelope:
        """Check 4 (``ok``: whether the signature verified) and the early look at 5."""
        if verifier.key_id != envelope.key or not ok:
            raise BadSignatureError(envelope.key)
        record = self.registry.get(envelope.key)
        if check_role and record is not None and envelope.payload["type"] != EntryType.ELECTION:
            # As of the registry's position; the sequencer repeats this at the entry's own.
            self.registry.check_signer(
                envelope.key, str(envelope.payload["type"]), self.registry.size
            )
        if record is not None and record.revoked_at is not None:
            raise KeyRevokedError(envelope.key, record.revoked_at)
        return VerifiedEnvelope(envelope, record.role.value if record else "admin")

    async def append(
        self,
        submitted: object,
        *,
        tags: Sequence[str] = (),
        condition: DCBAppendCondition | None = None,
    ) -> Appended:
        """Verify ``submitted`` (a signed envelope as received) and append it durably."""
        return await self.append_verified(
            await self.verify(submitted), tags=tags, condition=condition
        )

    async def append_verified(
        self,
        verified: VerifiedEnvelope,
        *,
        tags: Sequence[str] = (),
        condition: DCBAppendCondition | None = None,
    ) -> Appended:
        """Append an envelope :meth:`verify` accepted; returns once the entry is durable."""
        envelope = verified.envelope
        entry_type = str(envelope.payload["type"])
        all_tags = sorted({*tags, f"key:{envelope.key}"})
        draft = entry_encoder(envelope, all_tags, entry_type)
        [entry] = await self.sequencer.append([draft], condition, token=envelope)
        return Appended(entry.position, entry.leaf_hash, entry)

    # Reads and proofs.

    async def size(self) -> int:
        return await self.store.size(self.log_id)

    async def tagged(self, tags: Sequence[str]) -> tuple[list[StoredEntry], int]:
        """The DCB read behind a decision: entries carrying any of ``tags``, and the head.

        Append with ``DCBAppendCondition(query, after=head)`` to be refused if anything matching
        ``query`` was committed after this read.
        """
        return await self._tagged_reads.submit(tuple(tags))

    async def _read_tagged_batch(
        self, requests: Sequence[tuple[str, ...]]
    ) -> list[tuple[list[StoredEntry], int]]:
        """Concurrent decision reads share one query (and one snapshot)."""
        wanted = sorted({tag for tags in requests for tag in tags})
        entries, head = await self.store.tagged_with_head(self.log_id, wanted)
        if not entries:  # the usual answer on voting day: every voter's first ballot
            return [([], head) for _ in requests]
        by_tag: dict[str, list[StoredEntry]] = {}
        for entry in entries:
            for tag in entry.tags:
                by_tag.setdefault(tag, []).append(entry)
        results = []
        for tags in requests:
            found = {e.position: e for tag in tags for e in by_tag.get(tag, ())}
            results.append(([found[p] for p in sorted(found)], head))
        return results

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        return await self.store.read(self.log_id, start, end)

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[StoredEntry]:
        return self.store.stream(self.log_id, start, end)

    async def subscribe(self, after: int = 0, poll: float = 1.0) -> AsyncIterator[StoredEntry]:
        """Every entry from position ``after`` on, waiting for new ones as they commit."""
        position = after
        while True:
            size = await self.store.wait_for_growth(self.log_id, position, poll)
            if size > position:
                async for entry in self.store.stream(self.log_id, position, size):
                    yield entry
                position = size

    async def _fetch(self, plan: list[list[merkle.NodeId]]) -> list[bytes]:
        ids = sorted(merkle.plan_node_ids(plan))
        nodes = await self.store.nodes(self.log_id, ids)
        missing = [i for i in ids if i not in nodes]
        if missing:
            raise ProofError(f"tree nodes {missing[:3]} are not stored: the log is incomplete")
        return merkle.assemble(plan, nodes)

    async def _check_size(self, size: int) -> None:
        current = await self.size()
        if size > current:
            raise ProofError(f"the log has {current} entries, not {size}")

    async def root(self, size: int) -> bytes:
        """RFC 9162 root of the first ``size`` entries."""
        await self._check_size(size)
        if size == 0:
            return merkle.EMPTY_ROOT
        return merkle.fold(await self._fetch([merkle.frontier_ids(size)]))

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        await self._check_size(size)
        return await self._fetch(merkle.inclusion_plan(index, size))

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        await self._check_size(new_size)
        return await self._fetch(merkle.consistency_plan(old_size, new_size))

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return await self.store.latest_checkpoint(self.log_id)

    async def verified_checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint, verified with the log key and checked against the stored tree."""
        stored = await self.latest_checkpoint()
        if stored is None or self.log_key is None:
            return None
        checkpoint = verify_checkpoint(stored.note, self.log_key, self.origin)
        if checkpoint.root != await self.root(checkpoint.size):
            raise ProofError(f"checkpoint at {checkpoint.size} disagrees with the stored tree")
        return checkpoint
