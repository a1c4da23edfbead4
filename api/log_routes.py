"""Log endpoints: checkpoint, entries, inclusion and consistency proofs."""

from __future__ import annotations

import base64

from aiohttp import web

from api.keys import SERVICE
from api.problems import ProblemError
from ledger.tiles import Tile, TilePathError, parse_tile_path, read_tile

routes = web.RouteTableDef()

# A longer range is clipped to its first page (readers page on from the last index they got),
# so one request costs the server a bounded read, whatever ``end`` says.
MAX_ENTRIES_PER_REQUEST = 1000
# Positions and sizes fit a signed 64-bit column (both stores) with room to spare.
MAX_DIGITS = 18


def int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise ProblemError(400, "bad-parameter", f"query parameter {name!r} is required")
        return default
    # isascii: str.isdigit() also accepts digits like "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_DIGITS:
        raise ProblemError(
            400,
            "bad-parameter",
            f"{name} must be a non-negative integer of at most {MAX_DIGITS} digits",
            f"{name} має бути невід'ємним цілим числом (не більше {MAX_DIGITS} цифр)",
        )
    return int(raw)


# C2SP tlog-tiles: the checkpoint changes with every batch, so caches keep it for seconds; a
# full tile never changes; a partial tile's bytes never change either, but a wider one
# supersedes it within moments on a live log, so caches need not hold on to it.
CHECKPOINT_CACHE = "public, max-age=2"
FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@routes.get("/v1/elections/{election}/log/checkpoint")
async def checkpoint(request: web.Request) -> web.Response:
    # With a witness policy: the latest checkpoint the quorum cosigned, with their lines.
    stored = await request.app[SERVICE].published_checkpoint(request.match_info["election"])
    if stored is None:
        raise ProblemError(404, "no-checkpoint", "no checkpoint has been published yet")
    return web.Response(
        text=stored.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": CHECKPOINT_CACHE},
    )


@routes.get("/v1/elections/{election}/log/checkpoints")
async def checkpoints(request: web.Request) -> web.Response:
    """Every kept checkpoint from ``min_size`` on (at most 1000 per call), smallest first, so an
    auditor can check consistency between successive ones."""
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    kept = await ledger.store.checkpoints(ledger.log_id, int_param(request, "min_size", 0))
    return web.json_response({"checkpoints": [{"size": c.size, "note": c.note} for c in kept]})


@routes.get("/v1/elections/{election}/log/entries")
async def entries(request: web.Request) -> web.StreamResponse:
    """Entries ``start`` to ``end`` (default: the log's size), at most
    MAX_ENTRIES_PER_REQUEST of them: a longer range is answered with its first page. Refused
    (403 ``results-sealed``) while the election's results are sealed."""
    await request.app[SERVICE].require_unsealed(request.match_info["election"])
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    size = await ledger.size()
    start = int_param(request, "start", 0)
    end = min(int_param(request, "end", size), size, start + MAX_ENTRIES_PER_REQUEST)
    response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
    await response.prepare(request)
    chunk: list[bytes] = []
    async for entry in ledger.stream(start, max(start, end)):
        # The entry's stored bytes go out untouched: they are the Merkle leaf.
        chunk.append(b'{"index":%d,"entry":%s}\n' % (entry.position, entry.data))
        if len(chunk) >= 500:
            await response.write(b"".join(chunk))
            chunk.clear()
    if chunk:
        await response.write(b"".join(chunk))
    await response.write_eof()
    return response


@routes.get("/v1/elections/{election}/log/proof/inclusion")
async def inclusion_proof(request: web.Request) -> web.Response:
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    index = int_param(request, "index")
    size = int_param(request, "size", await ledger.size())
    hashes = await ledger.inclusion_proof(index, size)
    [entry] = await ledger.entries(index, index + 1)
    return web.json_response(
        {
            "index": index,
            "size": size,
            "leaf_hash": b64(entry.leaf_hash),
            "hashes": [b64(h) for h in hashes],
        }
    )


@routes.get("/v1/elections/{election}/log/proof/consistency")
async def consistency_proof(request: web.Request) -> web.Response:
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    old = int_param(request, "old")
    new = int_param(request, "new", await ledger.size())
    hashes = await ledger.consistency_proof(old, new)
    return web.json_response({"old": old, "new": new, "hashes": [b64(h) for h in hashes]})


async def _serve_tile(request: web.Request, tile: Tile) -> web.Response:
    """A tile within the latest checkpoint's size, so that it agrees with a signed checkpoint."""
    ledger = await request.app[SERVICE].ledger(request.match_info["election"])
    stored = await ledger.latest_checkpoint()
    data = await read_tile(ledger.store, ledger.log_id, tile, stored.size if stored else 0)
    if data is None:
        raise ProblemError(
            404,
            "no-tile",
            f"{tile.path} lies beyond the latest checkpoint",
            f"{tile.path} виходить за межі останньої контрольної точки журналу",
        )
    response = web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Cache-Control": PARTIAL_TILE_CACHE if tile.partial else FULL_TILE_CACHE},
    )
    if tile.entries:  # JSON text, as the spec asks compressed; hashes would not shrink
        response.headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
    return response


def _tile(path: str) -> Tile:
    try:
        return parse_tile_path(path)
    except TilePathError as exc:
        raise ProblemError(
            404, "no-tile", str(exc), "Такого тайлу немає: шлях не за C2SP tlog-tiles."
        ) from None


@routes.get("/v1/elections/{election}/log/tile/entries/{index:.+}")
async def entry_bundle(request: web.Request) -> web.Response:
    """C2SP entry bundle: entries N*256 .. N*256+W-1, each its leaf bytes behind a uint16 length.
    Refused (403 ``results-sealed``) while the election's results are sealed."""
    await request.app[SERVICE].require_unsealed(request.match_info["election"])
    tile = _tile(f"tile/entries/{request.match_info['index']}")
    return await _serve_tile(request, tile)


@routes.get("/v1/elections/{election}/log/tile/{level:[0-9]+}/{index:.+}")
async def hash_tile(request: web.Request) -> web.Response:
    """C2SP hash tile: the hashes of complete subtrees of height 8L, N*256 .. N*256+W-1."""
    tile = _tile(f"tile/{request.match_info['level']}/{request.match_info['index']}")
    return await _serve_tile(request, tile)
