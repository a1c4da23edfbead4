#!/bin/sh
# uchast-backup: one verified backup of a PostgreSQL-backed uchast.
#
#     uchast-backup [DIR]          (default DIR: /var/backups/uchast)
#
# Writes DIR/<UTC timestamp>/ with
#   uchast.dump             pg_dump --format=custom of the whole database (restore: pg_restore)
#   <election>.log.jsonl    `uchast export log` of each election: every entry and checkpoint
#   <election>.audit.txt    `uchast audit` of that export: it must pass, or the backup fails
#   SHA256SUMS
# and exits non-zero if any step fails (the systemd timer then reports the unit failed).
#
#   UCHAST_DB            postgresql://... (password from PGPASSWORD, PGPASSFILE or
#                        PGPASSWORD_FILE)
#   UCHAST_ELECTIONS     election ids, space-separated
#   UCHAST_LOG_VKEY      the log's public key (vkey), as published
#   UCHAST_ADMIN_VKEY    the administrator's public key (vkey), as published
#   UCHAST_BACKUP_KEEP   backups to keep in DIR (default 48; older ones are removed)
set -eu

: "${UCHAST_DB:?set UCHAST_DB}"
: "${UCHAST_ELECTIONS:?set UCHAST_ELECTIONS (election ids, space-separated)}"
: "${UCHAST_LOG_VKEY:?set UCHAST_LOG_VKEY}"
: "${UCHAST_ADMIN_VKEY:?set UCHAST_ADMIN_VKEY}"
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD=$(cat "$PGPASSWORD_FILE")
    export PGPASSWORD
fi

root=${1:-/var/backups/uchast}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dir=$root/$stamp
mkdir -p "$dir.partial"
umask 077

# The dump first: the exports taken after it are at least as long, and the audit of each
# export proves the log it holds. A restore is checked against the exports (RUNBOOK.md).
pg_dump --format=custom --no-owner --file "$dir.partial/uchast.dump" "$UCHAST_DB"
for election in $UCHAST_ELECTIONS; do
    uchast export log --db "$UCHAST_DB" --election "$election" \
        --out "$dir.partial/$election.log.jsonl"
    if ! uchast audit "$dir.partial/$election.log.jsonl" \
        --log-vkey "$UCHAST_LOG_VKEY" --admin-vkey "$UCHAST_ADMIN_VKEY" \
        > "$dir.partial/$election.audit.txt" 2>&1; then
        echo "uchast-backup: the audit of $election FAILED; see $dir.partial/$election.audit.txt" >&2
        exit 1
    fi
done
(cd "$dir.partial" && sha256sum -- * > SHA256SUMS)
mv "$dir.partial" "$dir"
echo "uchast-backup: $dir"

# Keep the newest UCHAST_BACKUP_KEEP complete backups.
keep=${UCHAST_BACKUP_KEEP:-48}
ls -1d "$root"/*Z 2>/dev/null | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
    rm -rf -- "$old"
done
