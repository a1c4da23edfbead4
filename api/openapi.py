"""The OpenAPI 3.1 description of the HTTP service, served at ``GET /openapi.json``.

Kept by hand next to the handlers; ``tests/api/test_openapi.py`` holds the service to it with
schemathesis (no 5xx, every response documented and matching its schema) and checks that every
route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.pages import OPENAPI_PATHS as PAGE_PATHS

JSON = "application/json"
PROBLEM = "application/problem+json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": ref("Problem")}}}


def unavailable() -> dict[str, Any]:
    return {
        "description": "The database is unreachable (or the service is not ready); nothing was "
        "written. Retry after the given seconds.",
        "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
        "content": {PROBLEM: {"schema": ref("Problem")}},
    }


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ELECTION_PARAM = {
    "name": "election",
    "in": "path",
    "required": True,
    "description": "Election id, e.g. `zhytomyr-2018`.",
    "schema": {"type": "string", "minLength": 1},
}


def count_param(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": 0},
    }


def signed_errors(roles: str) -> dict[str, Any]:
    """What any endpoint taking a signed envelope may refuse with."""
    return {
        "400": problem("Malformed JSON or envelope (`bad-json`, `bad-envelope`, `bad-key`)."),
        "401": problem("Unknown key or bad signature (`unknown-key`, `bad-signature`)."),
        "403": problem(
            f"The key may not do this ({roles} only; `role-forbidden`, `key-revoked`), "
            "or the calendar forbids it (`outside-window`, `paper-deadline-passed`)."
        ),
        "404": problem("No such election (`unknown-election`)."),
        "413": problem(
            "Body larger than the server's limit (`too-large`, 64 KiB by default), or an entry "
            "over 65,535 bytes, the most a C2SP entry bundle holds (`entry-too-large`)."
        ),
        "415": problem("Body is not `application/json` (`unsupported-media-type`)."),
        "422": problem("Wrong content whatever the log holds (`wrong-type`, `bad-payload`...)."),
        "429": {
            "description": "Too many writes under this key (`rate-limited`; only with "
            "`serve --rate-limit`). Retry after the given seconds.",
            "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
            "content": {PROBLEM: {"schema": ref("Problem")}},
        },
        "503": unavailable(),
    }


def write_operation(
    summary: str,
    description: str,
    payload: str,
    *,
    roles: str,
    ok: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A POST of a signed envelope; by default one that appends to the log."""
    if ok is None:
        ok = {
            "200": json_body(
                ref("Receipt"), "A retry with the same nonce: the original receipt, counted once."
            ),
            "201": json_body(ref("Receipt"), "Written to the log; durable when this is sent."),
            "409": problem(
                "Conflicts with the log: the voter's limit, a repeated project, a reused nonce..."
            ),
        }
    return {
        "summary": summary,
        "description": description,
        "parameters": [ELECTION_PARAM],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": ref("SignedEnvelope")}},
            "description": f"A signed envelope whose payload is {payload}.",
        },
        "responses": dict(sorted({**signed_errors(roles), **ok}.items())),
    }


def read_operation(
    summary: str,
    ok: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A GET under ``/v1/elections/{election}``."""
    responses: dict[str, Any] = {
        "200": ok,
        "404": problem("No such election (`unknown-election`)."),
        "503": unavailable(),
    }
    for status, text in (errors or {}).items():
        responses[status] = problem(text)
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [ELECTION_PARAM, *(parameters or [])],
        "responses": dict(sorted(responses.items())),
    }
    if description:
        operation["description"] = description
    return operation


BASE64 = {"type": "string", "contentEncoding": "base64"}
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
TITLE = {
    "type": "object",
    "description": "Text by language code (`uk`, `en`).",
    "additionalProperties": {"type": "string"},
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details with a stable `code` and messages in Ukrainian "
        "and English. Refusals may add members with their facts (e.g. the voter's counted "
        "picks).",
        "required": ["type", "title", "status", "code", "detail", "message_uk", "message_en"],
        "properties": {
            "type": {"type": "string", "description": "`urn:uchast:problem:<code>`"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "code": {"type": "string", "pattern": "^[a-z0-9-]+$"},
            "detail": {"type": "string"},
            "message_uk": {"type": "string"},
            "message_en": {"type": "string"},
        },
    },
    "SignedEnvelope": {
        "type": "object",
        "description": "Every write. `sig` is Ed25519 over `uchast/v1\\n` followed by the RFC "
        "8785 canonical JSON of `payload`, by the registered key named in `key`.",
        "required": ["payload", "key", "sig"],
        "additionalProperties": False,
        "properties": {
            "payload": {
                "type": "object",
                "required": ["type", "election"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "ballot",
                            "paper-ballot",
                            "spoiled-ballot",
                            "void",
                            "voter-lookup",
                        ],
                    },
                    "election": {"type": "string"},
                    "projects": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Ballots: the chosen projects of approval and knapsack "
                        "categories (DESIGN.md §3b).",
                    },
                    "points": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 1},
                        "description": "Ballots: points by project id, for projects of "
                        'cumulative categories, e.g. `{"P1": 3, "P7": 2}`.',
                    },
                    "ranking": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Ballots: projects of ordinal categories, most preferred "
                        "first; scored k, k-1, ..., 1 by position with k = the category's "
                        "`max_picks`.",
                    },
                },
                "examples": [
                    {
                        "type": "ballot",
                        "election": "zhytomyr-2018",
                        "voter": "5f1c" + "0" * 60,
                        "projects": ["L07", "S12"],
                        "cast_at": "2018-10-03T10:15:00+03:00",
                        "nonce": "0b6f4f3e-8d1c-4a55-9a76-2f0c1d3b7e90",
                    }
                ],
            },
            "key": {
                "type": "string",
                "description": "Key id: `<name>+<hex8 key hash>`.",
                "pattern": "^[^+\\s]+\\+[0-9a-f]{8}$",
            },
            "sig": {**BASE64, "description": "Ed25519 signature, base64."},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["receipt", "position", "leaf_hash", "type", "replay"],
        "properties": {
            "receipt": {"type": "string", "description": "Receipt code, e.g. `ABCDE-12345`."},
            "position": {"type": "integer", "minimum": 0},
            "leaf_hash": BASE64,
            "type": {"type": "string"},
            "replay": {"type": "boolean"},
        },
    },
    "BallotBatch": {
        "type": "object",
        "required": ["envelopes"],
        "additionalProperties": False,
        "properties": {
            "envelopes": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": ref("SignedEnvelope"),
            }
        },
    },
    "BatchResults": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "description": "One per envelope, in order: a receipt or a problem document, "
                "each with the HTTP `status` that envelope sent alone would have got.",
                "items": {
                    "oneOf": [
                        {
                            "allOf": [
                                ref("Receipt"),
                                {
                                    "required": ["status"],
                                    "properties": {"status": {"enum": [200, 201]}},
                                },
                            ]
                        },
                        ref("Problem"),
                    ]
                },
            }
        },
    },
    "VoterToken": {
        "type": "object",
        "required": ["voter", "lookup", "receipt", "position", "leaf_hash", "type", "replay"],
        "properties": {
            "voter": HEX64,
            "lookup": {
                "type": "integer",
                "minimum": 0,
                "description": "The position of the lookup's voter-lookup entry in the log.",
            },
            "receipt": {"type": "string"},
            "position": {"type": "integer", "minimum": 0},
            "leaf_hash": BASE64,
            "type": {"type": "string", "enum": ["voter-lookup"]},
            "replay": {"type": "boolean"},
        },
    },
    "VoterLookup": {
        "type": "object",
        "required": ["envelope", "identity"],
        "additionalProperties": False,
        "properties": {
            "envelope": {
                **ref("SignedEnvelope"),
                "description": "Signed by a clerk; payload exactly `{type: voter-lookup, "
                "election, polling_point, nonce}`.",
            },
            "identity": {
                "type": "string",
                "description": "The typed identity number (8-12 digits; spaces and dashes "
                "ignored), never stored or logged.",
            },
        },
    },
    "Election": {
        "type": "object",
        "description": "The election definition; money in integer kopecks, times in UTC.",
        "required": ["id", "title", "timezone", "voting_opens", "voting_closes", "categories"],
        "properties": {
            "id": {"type": "string"},
            "title": TITLE,
            "timezone": {"type": "string"},
            "voting_opens": {"type": "string"},
            "voting_closes": {"type": "string"},
            "paper_deadline": {"type": "string"},
            "results": {
                "type": "string",
                "enum": ["open", "sealed-until-close"],
                "description": "`sealed-until-close`: until `voting_closes`, no entries and no "
                "totals are served (turnout, checkpoints, proofs and receipts are).",
            },
            "budget_kopecks": {"type": "integer"},
            "categories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "max_picks", "budget_kopecks"],
                    "properties": {
                        "id": {"type": "string"},
                        "title": TITLE,
                        "max_picks": {"type": "integer"},
                        "budget_kopecks": {"type": "integer"},
                        "max_cost_kopecks": {"type": "integer"},
                        "ballot": {
                            "enum": ["approval", "knapsack", "cumulative", "ordinal"],
                            "description": "Absent: approval.",
                        },
                        "min_picks": {"type": "integer", "description": "Absent: 0."},
                        "max_total_cost_kopecks": {"type": "integer", "description": "Knapsack."},
                        "min_total_cost_kopecks": {"type": "integer", "description": "Knapsack."},
                        "max_points": {"type": "integer", "description": "Cumulative."},
                        "max_total_points": {"type": "integer", "description": "Cumulative."},
                        "min_total_points": {"type": "integer", "description": "Cumulative."},
                    },
                },
            },
            "category_groups": {
                "type": "array",
                "description": "A voter takes part in at most `max_categories` of a group's "
                "categories. Absent: no groups.",
                "items": {
                    "type": "object",
                    "required": ["id", "categories", "max_categories"],
                    "properties": {
                        "id": {"type": "string"},
                        "categories": {"type": "array", "items": {"type": "string"}},
                        "max_categories": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "projects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "category", "cost_kopecks"],
                    "properties": {
                        "id": {"type": "string"},
                        "title": TITLE,
                        "category": {"type": "string"},
                        "cost_kopecks": {"type": "integer"},
                    },
                },
            },
            "polling_points": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Results": {
        "type": "object",
        "description": "Live (or final) totals and winners; money in kopecks.",
        "required": ["election", "log", "categories"],
        "properties": {
            "election": {"type": "string"},
            "sealed": {"const": False},
            "log": {
                "type": "object",
                "required": ["size", "root"],
                "properties": {"size": {"type": "integer", "minimum": 0}, "root": BASE64},
            },
            "categories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "budget", "projects"],
                    "properties": {
                        "id": {"type": "string"},
                        "ballot": {
                            "enum": ["approval", "knapsack", "cumulative", "ordinal"],
                            "description": "The category's ballot kind (DESIGN.md §3b).",
                        },
                        "budget": {"type": "integer"},
                        "projects": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "cost", "votes", "score", "funded"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "cost": {"type": "integer"},
                                    "votes": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": "Voters who chose the project.",
                                    },
                                    "score": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": (
                                            "What winners rank by: the votes (approval,"
                                            " knapsack), the sum of points (cumulative), the"
                                            " sum of positional scores k, k-1, ..., 1 with"
                                            " k = max_picks (ordinal)."
                                        ),
                                    },
                                    "funded": {"type": "boolean"},
                                },
                            },
                        },
                    },
                },
            },
            "refusals": {
                "type": "object",
                "description": (
                    "Refused writes so far, by problem `code` and by channel: counted by the"
                    " services that answered them (refusals are not log entries), so not part"
                    " of what `uchast export results` or an audit recomputes."
                ),
                "required": ["total", "by_reason", "by_channel"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "by_reason": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "by_channel": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
    },
    "SealedResults": {
        "type": "object",
        "description": "While the election's results are sealed (`results = "
        '"sealed-until-close"`, before voting closes): the log\'s size and root and the '
        "turnout; no totals, no winners.",
        "required": ["election", "sealed", "results_open_at", "timezone", "log", "turnout"],
        "properties": {
            "election": {"type": "string"},
            "title": TITLE,
            "sealed": {"const": True},
            "results_open_at": {
                "type": "string",
                "format": "date-time",
                "description": "When voting closes and everything opens (in `timezone`).",
            },
            "timezone": {"type": "string"},
            "log": {
                "type": "object",
                "required": ["size", "root"],
                "properties": {"size": {"type": "integer", "minimum": 0}, "root": BASE64},
            },
            "turnout": {
                "type": "object",
                "required": ["voters", "by_channel", "ballots", "spoiled", "voided"],
                "properties": {
                    "voters": {"type": "integer", "minimum": 0},
                    "by_channel": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "ballots": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                    "spoiled": {"type": "integer", "minimum": 0},
                    "voided": {"type": "integer", "minimum": 0},
                },
            },
            "refusals": {"type": "object"},
        },
        "not": {"required": ["categories"]},
    },
    "ReceiptStatus": {
        "type": "object",
        "description": "A ballot's status and its inclusion proof against the latest checkpoint.",
        "required": ["receipt", "status", "position", "entry", "leaf_hash", "checkpoint", "proof"],
        "properties": {
            "receipt": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["counted", "awaiting-second-keying", "disputed", "voided"],
                "description": "What the results count: `counted` (in the totals), "
                "`awaiting-second-keying` (double entry: a paper keying no matching keying by "
                "another clerk has followed yet), `disputed` (double entry: the keyings differ; "
                "none counts until a supervisor voids the wrong one and a matching keying "
                "follows), `voided`.",
            },
            "voided_by": {"type": ["integer", "null"]},
            "type": {"type": "string"},
            "position": {"type": "integer", "minimum": 0},
            "entry": {
                "type": ["object", "null"],
                "description": "The log entry; null while the election's results are sealed "
                "(its picks are not shown, not even to the code's holder, until voting closes).",
            },
            "sealed_until": {
                "type": "string",
                "format": "date-time",
                "description": "Only while sealed: when the entry is shown.",
            },
            "leaf_hash": BASE64,
            "checkpoint": {"type": "string", "description": "C2SP signed checkpoint note."},
            "cosigned": {
                "type": "boolean",
                "description": "Whether `checkpoint` is published: cosigned by the quorum of the "
                "server's witness policy (`serve --witness-policy`), with the witnesses' "
                "cosignature lines in the note. false: the proof is against the latest signed "
                "checkpoint, which the witnesses have not (yet) cosigned, or the server has no "
                "witness policy.",
            },
            "proof": {
                "type": "object",
                "required": ["index", "size", "hashes"],
                "properties": {
                    "index": {"type": "integer"},
                    "size": {"type": "integer"},
                    "hashes": {"type": "array", "items": BASE64},
                },
            },
        },
    },
    "Checkpoints": {
        "type": "object",
        "required": ["checkpoints"],
        "properties": {
            "checkpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["size", "note"],
                    "properties": {"size": {"type": "integer"}, "note": {"type": "string"}},
                },
            }
        },
    },
    "InclusionProof": {
        "type": "object",
        "required": ["index", "size", "leaf_hash", "hashes"],
        "properties": {
            "index": {"type": "integer"},
            "size": {"type": "integer"},
            "leaf_hash": BASE64,
            "hashes": {"type": "array", "items": BASE64},
        },
    },
    "ConsistencyProof": {
        "type": "object",
        "required": ["old", "new", "hashes"],
        "properties": {
            "old": {"type": "integer"},
            "new": {"type": "integer"},
            "hashes": {"type": "array", "items": BASE64},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["status", "database", "max_lag", "elections"],
        "properties": {
            "status": {"const": "ready"},
            "database": {
                "enum": ["ok", "degraded"],
                "description": "degraded: a database of `serve --routes` does not answer; its "
                "elections answer 503 store-unavailable, the others are served.",
            },
            "max_lag": {"type": "integer"},
            "elections": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["size", "lag"],
                    "properties": {"size": {"type": "integer"}, "lag": {"type": "integer"}},
                },
            },
            "clusters": {
                "type": "object",
                "description": "With `serve --routes` only: each database by its URL without "
                "the password, whether it answers and the elections served from it.",
                "additionalProperties": {
                    "type": "object",
                    "required": ["database", "elections"],
                    "properties": {
                        "database": {"enum": ["ok", "unavailable"]},
                        "elections": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
            "read_only": {
                "const": True,
                "description": "With `serve --read-only` only: this server reads replicas and "
                "answers every write 503 `read-only`, without Retry-After.",
            },
            "replicas": {
                "type": "object",
                "description": "With `serve --read-only` only: each database by its URL without "
                "the password: whether it is a standby in recovery and the age in seconds of "
                "the last commit it replayed (null: none, or not a standby; it also grows "
                "while the primary is idle). Null when the database did not answer.",
                "additionalProperties": {
                    "type": ["object", "null"],
                    "properties": {
                        "in_recovery": {"type": "boolean"},
                        "replay_age_seconds": {"type": ["number", "null"]},
                    },
                },
            },
        },
    },
}

V1 = "/v1/elections/{election}"
TILE_BODY = {
    "description": "The tile's bytes.",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
TILE_LEVEL_PARAM = {
    "name": "level",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]?)$"},
    "description": "Tile level L, 0 to 63.",
}
TILE_INDEX_PARAM = {
    "name": "index",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Tile index N in 3-digit groups, all but the last prefixed by `x` "
    "(`x001/x234/067`), then `.p/W` (W from 1 to 255) for a partial tile. Holds slashes.",
}

PATHS: dict[str, Any] = {
    f"{V1}/ballots": {
        "post": write_operation(
            "Cast an online ballot",
            "Signed by the voting site. Payload: `{type: ballot, election, voter (64 hex), "
            "projects, cast_at, nonce}`, with `points` (cumulative categories) or `ranking` "
            "(ordinal) beside or instead of `projects`. Per-voter limits (each with its own "
            "problem code) hold for the voter's counted ballots together, across channels and "
            "processes.",
            "an online ballot",
            roles="site keys",
        )
    },
    f"{V1}/ballot-batches": {
        "post": {
            "summary": "Cast online ballots in a batch",
            "description": "The voting site forwards up to 64 online ballots in one request, "
            "each its own signed envelope (exactly what `POST .../ballots` takes, with its own "
            "nonce and receipt). Each is cast on its own, as if sent alone: the voter's limits, "
            "nonce replays and durability before the answer hold per envelope, and two "
            "envelopes of one voter in one batch are decided one after the other. 200 with one "
            "result per envelope, in order: its receipt (`status` 201, or 200 for a replay) or "
            "its problem document (`status` 4xx/5xx, the code `POST .../ballots` would answer). "
            "Each envelope counts against its key's rate limit as a request of its own; those "
            "past it are answered `rate-limited` (with `retry_after`) and not cast.",
            "parameters": [ELECTION_PARAM],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": ref("BallotBatch")}},
                "description": "1 to 64 signed envelopes, each of an online ballot.",
            },
            "responses": {
                "200": json_body(
                    ref("BatchResults"),
                    "Every envelope answered; those accepted are durable when this is sent.",
                ),
                "400": problem(
                    "Malformed JSON, or not `{envelopes: [1 to 64 envelopes]}` (`bad-json`, "
                    "`bad-batch`)."
                ),
                "404": problem("No such election (`unknown-election`)."),
                "413": problem(
                    "More than 64 envelopes (`batch-too-large`) or a body larger than the "
                    "server's limit (`too-large`, 64 KiB by default); nothing was written."
                ),
                "415": problem("Body is not `application/json` (`unsupported-media-type`)."),
                "429": {
                    "description": "Too many unverified requests from this address "
                    "(`rate-limited`); nothing was cast. Retry after the given seconds.",
                    "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                    "content": {PROBLEM: {"schema": ref("Problem")}},
                },
                "503": unavailable(),
            },
        }
    },
    f"{V1}/paper-ballots": {
        "post": write_operation(
            "Enter a paper (or spoiled) ballot",
            "Signed by a polling-point clerk. Payload type `paper-ballot` (with `polling_point`) "
            "or `spoiled-ballot`.",
            "a paper or spoiled ballot",
            roles="clerk keys",
        )
    },
    f"{V1}/voids": {
        "post": write_operation(
            "Void an entry",
            "Signed by a supervisor. Payload: `{type: void, election, entry (position), reason, "
            "nonce}`. Nothing is deleted: the void is an entry of its own.",
            "a void",
            roles="supervisor keys",
        )
    },
    f"{V1}/voter-tokens": {
        "post": write_operation(
            "Look up the voter token of an identity number",
            "Body: `{envelope, identity}`: `envelope` signed by a clerk, payload `{type: "
            "voter-lookup, election, polling_point, nonce}`; `identity` the typed number, beside "
            "the signed payload, never stored or logged. The lookup becomes a `voter-lookup` "
            "entry tagged `lookup:<token>`. Refused outside [voting opens, paper deadline], for "
            "a reused nonce, for a voter who can add nothing, for a revoked key; 429 "
            "`rate-limited` past a clerk key's lookup pace. 503 `no-voter-key` if the server has "
            "no voter key.",
            "a voter lookup",
            roles="clerk keys",
            ok={
                "201": json_body(ref("VoterToken"), "The token, the lookup's position, receipt."),
                "409": problem("A reused nonce, or a voter who can add nothing more."),
                "429": problem("Past the clerk key's lookup pace (`rate-limited`, Retry-After)."),
            },
        )
        | {
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": ref("VoterLookup")}},
                "description": "The signed lookup, and the typed number beside it.",
            }
        }
    },
    V1: {
        "get": read_operation(
            "The election's definition",
            json_body(ref("Election"), "As its first entry (or latest amendment) holds it."),
            errors={"409": "The election's log is empty (`not-initialised`)."},
        )
    },
    f"{V1}/results": {
        "get": read_operation(
            "Totals and winners",
            {
                "description": "Results as JSON, or CSV with `format=csv`; while sealed, the "
                "turnout only (`SealedResults`).",
                "content": {
                    JSON: {"schema": {"oneOf": [ref("Results"), ref("SealedResults")]}},
                    "text/csv": {"schema": {}},
                },
            },
            parameters=[
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["json", "csv"]},
                }
            ],
            errors={
                "403": "CSV while the results are sealed (`results-sealed`).",
                "409": "The election's log is empty (`not-initialised`).",
            },
        )
    },
    f"{V1}/receipts/{{code}}": {
        "get": read_operation(
            "A ballot's status and inclusion proof, by receipt code",
            json_body(ref("ReceiptStatus"), "The ballot's status, with the proof."),
            parameters=[
                {
                    "name": "code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                    "description": "Receipt code, e.g. `ABCDE-12345` (case and dash optional).",
                }
            ],
            errors={"400": "Not a receipt code (`bad-receipt`)."},
            description="404 `unknown-receipt` when no ballot has this code.",
        )
    },
    f"{V1}/receipts/{{code}}/proof": {
        "get": read_operation(
            "A ballot's offline proof file (C2SP tlog-proof), by receipt code",
            {
                "description": "`c2sp.org/tlog-proof@v1`: `extra` (base64 of the entry's "
                "canonical bytes), `index`, the inclusion proof hashes, an empty line, the "
                "signed checkpoint. Saved as `<code>.tlog-proof`; `uchast verify-receipt` "
                "checks it offline.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            parameters=[
                {
                    "name": "code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                    "description": "Receipt code, e.g. `ABCDE-12345` (case and dash optional).",
                }
            ],
            errors={
                "400": "Not a receipt code (`bad-receipt`).",
                "403": "The election's results are sealed until voting closes "
                "(`results-sealed`): the file carries the entry, kept back until then.",
            },
            description="404 `unknown-receipt` when no ballot has this code; 503 "
            "`no-checkpoint` before a checkpoint covers it.",
        )
    },
    f"{V1}/log/checkpoint": {
        "get": read_operation(
            "The latest published checkpoint",
            {
                "description": "C2SP tlog-checkpoint, a signed note. With a witness policy "
                "(`serve --witness-policy`): the latest checkpoint its quorum cosigned, with the "
                "witnesses' C2SP cosignature/v1 lines after the log's signature.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            description="404 `no-checkpoint` before the first one is published.",
        )
    },
    f"{V1}/log/checkpoints": {
        "get": read_operation(
            "Kept checkpoints, smallest first (at most 1000 per call)",
            json_body(ref("Checkpoints"), "Signed notes with their sizes."),
            parameters=[count_param("min_size", "Smallest size to list (default 0).")],
            errors={"400": "Bad query parameter (`bad-parameter`)."},
        )
    },
    f"{V1}/log/entries": {
        "get": read_operation(
            "Log entries as JSON lines",
            {
                "description": 'One `{"index": i, "entry": {...}}` per line; the Merkle leaf of '
                "entry i is the RFC 8785 canonical JSON of its `entry` (at most 100000 a call).",
                "content": {"application/jsonl": {"schema": {"type": "string"}}},
            },
            parameters=[
                count_param("start", "First index (default 0)."),
                count_param("end", "One past the last index (default: the log size)."),
            ],
            errors={
                "400": "Bad query parameter (`bad-parameter`).",
                "403": "The election's results are sealed until voting closes (`results-sealed`).",
            },
        )
    },
    f"{V1}/log/proof/inclusion": {
        "get": read_operation(
            "RFC 9162 inclusion proof",
            json_body(ref("InclusionProof"), "Audit path of entry `index` in the tree of `size`."),
            parameters=[
                count_param("index", "Entry index.", required=True),
                count_param("size", "Tree size (default: the log size)."),
            ],
            errors={"400": "Bad parameters, or not provable (`bad-parameter`, `bad-proof`)."},
        )
    },
    f"{V1}/log/proof/consistency": {
        "get": read_operation(
            "RFC 9162 consistency proof",
            json_body(ref("ConsistencyProof"), "Proof that tree `old` is a prefix of tree `new`."),
            parameters=[
                count_param("old", "Older tree size.", required=True),
                count_param("new", "Newer tree size (default: the log size)."),
            ],
            errors={"400": "Bad parameters, or not provable (`bad-parameter`, `bad-proof`)."},
        )
    },
    f"{V1}/log/tile/{{level}}/{{index}}": {
        "get": read_operation(
            "C2SP tlog-tiles hash tile",
            TILE_BODY,
            parameters=[TILE_LEVEL_PARAM, TILE_INDEX_PARAM],
            description="The 32-byte hashes of the complete subtrees of height 8L numbered "
            "N*256 .. N*256+W-1 (level 0: leaf hashes). Only tiles within the latest checkpoint "
            "are served; 404 `no-tile` otherwise, or for a path that is not a canonical tile "
            "path. Full tiles are cached for a year (`immutable`), partial ones for a minute.",
        )
    },
    f"{V1}/log/tile/entries/{{index}}": {
        "get": read_operation(
            "C2SP tlog-tiles entry bundle",
            TILE_BODY,
            parameters=[TILE_INDEX_PARAM],
            description="Entries N*256 .. N*256+W-1, each its canonical bytes (the Merkle leaf) "
            "behind a big-endian uint16 length. Only bundles within the latest checkpoint are "
            "served; 404 `no-tile` otherwise. Cached like hash tiles; gzipped when the client "
            "accepts it (`Vary: Accept-Encoding`).",
            errors={
                "403": "The election's results are sealed until voting closes (`results-sealed`)."
            },
        )
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: the process is up",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    },
                    "Always, while the process serves.",
                )
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: database answers, tallies within the lag bound",
            "responses": {
                "200": json_body(ref("Ready"), "Ready to serve."),
                "503": unavailable(),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1.")},
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "uchast",
        "version": "1",
        "summary": "Event-sourced, verifiable vote tallying for participatory budgets.",
        "description": "Every write is a signed envelope appended to the election's Merkle log "
        "(RFC 9162, C2SP checkpoints). Errors are RFC 9457 `application/problem+json` with a "
        "stable `code`, `message_uk` and `message_en`; 503 carries `Retry-After`, but for "
        "`read-only`: a server on a read replica (`serve --read-only`) answers every write so, "
        "and a retry there never succeeds; writes go to the primary's servers.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "paths": {**PATHS, **PAGE_PATHS},
    "components": {
        "schemas": SCHEMAS,
        "headers": {
            "RetryAfter": {
                "description": "Seconds to wait before retrying.",
                "required": True,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    },
}

routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
