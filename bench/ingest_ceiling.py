"""The ceiling of the HTTP ingest stack on this machine: a bare aiohttp server for
bench/ingest_http.py.

Its one handler does the least an ingest of signed ballots can do and still be durable: parse the
envelope (:meth:`ledger.keys.Envelope.parse`: the canonical payload is what the signature covers),
verify its one Ed25519 signature against the site key (:class:`ledger.verify.SignatureVerifier`,
batched on worker threads as the ledger does), and append it through the ledger's own group
commit (:class:`ledger.sequencer.Sequencer` on :class:`ledger.postgres.PostgresStore`: one
statement per batch, Merkle nodes and a checkpoint signed per batch). The entry written is the
one ``uchast serve`` writes for the same ballot (same bytes, same tags: voter, nonce, projects,
receipt, key), so the database does the same work.

What it leaves out is everything that makes a ballot count once and correctly: no read of the
voter's or the nonce's entries, no rules, no append condition, no key registry, no receipt look-up,
no live tally, no middlewares (metrics, problems, rate limits, body deadline). The rate it reaches
is therefore an upper bound for ``uchast serve``, not a competitor.

    .venv/bin/python -m bench.ingest_ceiling --db URL --port P --log-key FILE --site-vkey VKEY
                                             --election ID

Answers ``POST /v1/elections/{ID}/ballots`` with 201 and ``{"position": N, "receipt": CODE,
"replay": false}`` (400 on a malformed envelope, 403 on a bad signature); ``GET /readyz`` with
200.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.entry import entry_encoder
from ledger.errors import BadSignatureError, EnvelopeError
from ledger.keys import Envelope, SignerKey, VerifierKey
from ledger.postgres import PostgresStore
from ledger.sequencer import Sequencer
from ledger.store import StoredEntry
from ledger.verify import SignatureVerifier
from votes.receipts import receipt_code, receipt_tag
from votes.tags import nonce_tag, project_tag, voter_tag

STORE = web.AppKey("store", PostgresStore)
SEQUENCER = web.AppKey("sequencer", Sequencer)
VERIFIER = web.AppKey("verifier", SignatureVerifier)


def ballot_tags(payload: dict[str, object], key: str, receipt: str) -> list[str]:
    """The tags ``uchast serve`` gives an approval ballot's entry (rules' tags, the receipt's
    and the key's), sorted as :meth:`ledger.log.Ledger.append_verified` sorts them."""
    projects = payload.get("projects")
    tags = {
        voter_tag(str(payload.get("voter"))),
        nonce_tag(str(payload.get("nonce"))),
        receipt_tag(receipt),
        f"key:{key}",
    }
    if isinstance(projects, list):
        tags.update(project_tag(str(p)) for p in projects)
    return sorted(tags)


async def append_bare(
    sequencer: Sequencer, verifier: SignatureVerifier, site: VerifierKey, envelope: Envelope
) -> tuple[StoredEntry, str]:
    """The ceiling's whole work for one parsed ballot: its one signature checked against the
    site key, then its entry (as ``uchast serve`` writes it) appended durably; returns the entry
    and its receipt code. Raises :class:`BadSignatureError` for a key or signature that is not
    the site's. ``bench/ingest_ledger.py`` measures the same without HTTP."""
    if envelope.key != site.key_id or not await verifier.verify(
        site.public, envelope.message, envelope.sig
    ):
        raise BadSignatureError(envelope.key)
    receipt = receipt_code(envelope.sig)
    tags = ballot_tags(envelope.payload, str(envelope.key), receipt)
    [entry] = await sequencer.append([entry_encoder(envelope, tags, "ballot")])
    return entry, receipt


def create_ceiling_app(
    db_url: str, election: str, site: VerifierKey, log_key: SignerKey, *, max_batch: int = 512
) -> web.Application:
    """The bare app: one write route and a readiness probe."""
    app = web.Application()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = PostgresStore(db_url)
        await store.open()
        await store.create_log(election)
        sequencer = Sequencer(
            store,
            election,
            origin=f"uchast.ceiling/{election}",
            signer=log_key,
            max_batch=max_batch,
        )
        await sequencer.start()
        app[STORE], app[SEQUENCER], app[VERIFIER] = store, sequencer, SignatureVerifier()
        yield
        await sequencer.stop()
        await app[VERIFIER].close()
        await store.close()

    app.cleanup_ctx.append(resources)

    async def ballot(request: web.Request) -> web.Response:
        try:
            envelope = Envelope.parse(json.loads(await request.read()))
        except (ValueError, EnvelopeError) as exc:
            return web.json_response({"detail": str(exc)}, status=400)
        try:
            entry, receipt = await append_bare(
                request.app[SEQUENCER], request.app[VERIFIER], site, envelope
            )
        except BadSignatureError:
            return web.json_response({"detail": "bad signature"}, status=403)
        return web.json_response(
            {"position": entry.position, "receipt": receipt, "replay": False}, status=201
        )

    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app.router.add_post(f"/v1/elections/{election}/ballots", ballot)
    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="PostgreSQL URL (a fresh database)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-key", required=True, help="file of the key signing checkpoints")
    parser.add_argument("--site-vkey", required=True, help="the one key ballots are signed with")
    parser.add_argument("--election", required=True, help="the election id in the route")
    args = parser.parse_args()
    app = create_ceiling_app(
        args.db, args.election, VerifierKey.parse(args.site_vkey), SignerKey.load(args.log_key)
    )
    # As `uchast serve` does (api/cli.py cmd_serve): the same collector settings for both.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
