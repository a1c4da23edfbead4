#!/bin/sh
# The image's entrypoint (also usable on a VM). `serve` (the default command) builds the
# `uchast serve` command line from the environment; any other command is `uchast` itself.
#
#   UCHAST_DB             storage URL, e.g. postgresql://uchast@postgres:5432/uchast (required)
#   PGPASSWORD_FILE       file holding the database password (read into PGPASSWORD)
#   UCHAST_LOG_KEY        the log's signer key file        (default /run/secrets/log.key)
#   UCHAST_CHECKPOINT_JOURNAL  every checkpoint the log key published, on a persistent volume
#                         (default: the log key's file + .checkpoints; RUNBOOK.md)
#   UCHAST_VOTER_KEY      the voter HMAC key file, for paper ballots
#                                                          (default /run/secrets/voter.key if present)
#   UCHAST_HOST, UCHAST_PORT                               (default 0.0.0.0, 8080)
#   UCHAST_DEPLOYMENT     names the log in checkpoints: the same on every instance
#   UCHAST_CHECKPOINT_INTERVAL  seconds between checkpoints (default 0: every batch)
#   UCHAST_RATE_LIMIT     signed writes/s for every key (default 0: each role its own rate,
#                         api/ratelimit.ROLE_RATES; limits are on whatever is set here)
#   UCHAST_RATE_LIMIT_SITE, UCHAST_RATE_LIMIT_CLERK, UCHAST_RATE_LIMIT_SUPERVISOR  per role
#   UCHAST_WITNESS_POLICY C2SP tlog-policy file: publish checkpoints once its witnesses cosigned
#
# Extra arguments after `serve` are passed on: `serve --clock 2018-10-05T12:00:00+03:00`.
set -eu

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD=$(cat "$PGPASSWORD_FILE")
    export PGPASSWORD
fi

if [ "$#" -eq 0 ] || [ "$1" = serve ]; then
    [ "$#" -gt 0 ] && shift
    : "${UCHAST_DB:?set UCHAST_DB, e.g. postgresql://uchast@postgres:5432/uchast}"
    log_key=${UCHAST_LOG_KEY:-/run/secrets/log.key}
    voter_key=${UCHAST_VOTER_KEY:-/run/secrets/voter.key}
    set -- serve \
        --db "$UCHAST_DB" \
        --log-key "$log_key" \
        --host "${UCHAST_HOST:-0.0.0.0}" \
        --port "${UCHAST_PORT:-8080}" \
        --deployment "${UCHAST_DEPLOYMENT:-uchast.local}" \
        --checkpoint-interval "${UCHAST_CHECKPOINT_INTERVAL:-0}" \
        --rate-limit "${UCHAST_RATE_LIMIT:-0}" \
        "$@"
    if [ -n "${UCHAST_WITNESS_POLICY:-}" ]; then
        set -- "$@" --witness-policy "$UCHAST_WITNESS_POLICY"
    fi
    if [ -n "${UCHAST_CHECKPOINT_JOURNAL:-}" ]; then
        set -- "$@" --checkpoint-journal "$UCHAST_CHECKPOINT_JOURNAL"
    fi
    if [ -f "$voter_key" ]; then
        set -- "$@" --voter-key "$voter_key"
    elif [ -n "${UCHAST_VOTER_KEY:-}" ]; then
        echo "uchast-entrypoint: voter key file $voter_key does not exist" >&2
        exit 2
    fi
    for role in site clerk supervisor; do
        rate=$(printenv "UCHAST_RATE_LIMIT_$(echo "$role" | tr a-z A-Z)" || true)
        if [ -n "$rate" ]; then
            set -- "$@" --rate-limit-role "$role=$rate"
        fi
    done
fi

exec uchast "$@"
