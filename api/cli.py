"""The ``uchast`` command line. Every error is one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib
import json
import secrets
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.messages import english
from votes.errors import DomainError

# The server's modules (aiohttp, the ledger, the stores) are imported by the commands that use
# them: `uchast audit` imports none of them and starts in a fraction of the time.
if TYPE_CHECKING:
    from ledger.keys import SignerKey, VerifierKey
    from ledger.store import Store

DEFAULT_DB = "sqlite:///uchast.db"


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _run(coro: Coroutine[Any, Any, int]) -> int:
    import asyncio

    return asyncio.run(coro)


# keygen


def cmd_keygen(args: argparse.Namespace) -> int:
    from ledger.keys import SignerKey

    signer = SignerKey.generate(args.name)
    try:
        signer.save(args.out, overwrite=args.force)
    except FileExistsError:
        raise CommandError(f"{args.out} exists; use --force to replace it") from None
    print(signer.verifier.vkey)
    return 0


# helpers


def load_signer(path: str, what: str) -> SignerKey:
    from ledger.keys import SignerKey

    if not Path(path).exists():
        raise CommandError(f"{what} file {path} does not exist (make one with: uchast keygen)")
    return SignerKey.load(path)


def load_voter_key(path: str) -> bytes:
    """The election's secret HMAC key for voter tokens: 32 or more random bytes, hex."""
    file = Path(path)
    if not file.exists():
        raise CommandError(f"voter key file {path} does not exist")
    text = file.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise CommandError(f"voter key file {path} is not hex") from None
    if len(key) < 32:
        raise CommandError(f"voter key in {path} is shorter than 32 bytes")
    return key


async def _with_store(url: str, work: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    from ledger.store import open_store

    store = open_store(url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


async def _single_election(store: Store, election: str | None) -> str:
    logs = await store.log_ids()
    if election is not None:
        if election not in logs:
            raise CommandError(f"no election {election!r} in this database")
        return election
    if len(logs) != 1:
        names = ", ".join(logs) or "none"
        raise CommandError(f"say which election with --election (this database has: {names})")
    return logs[0]


async def _submit_signed(
    store: Store,
    election: str,
    payload: dict[str, Any],
    signer: SignerKey,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Sign ``payload`` and put it through the election's write path; its log position."""
    from ledger.casting import Casting
    from ledger.keys import sign_envelope
    from ledger.log import Ledger

    ledger = Ledger(store, election, verify_workers=0)
    await ledger.open()
    try:
        casting = Casting(ledger) if clock is None else Casting(ledger, clock)
        cast = await casting.submit(sign_envelope(payload, signer))
    finally:
        await ledger.close()
    return cast.position


# init


def cmd_init(args: argparse.Namespace) -> int:
    from ledger.casting import check_election_size
    from ledger.keydir import keys_root, private_directory, write_private
    from votes.admin import election_payload, voter_key_id
    from votes.election import parse_election_toml

    admin = load_signer(args.admin_key, "admin key")
    try:
        text = Path(args.election_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {args.election_file}: {exc.strerror}") from None
    election = parse_election_toml(text)
    key_file = Path(args.voter_key) if args.voter_key else keys_root() / election.id / "voter.key"
    # A voter key is never reused: a file already there is a stray key (another election's, or
    # this one's from an attempt that should be looked at), never picked up silently.
    if key_file.exists():
        raise CommandError(
            f"voter key file {key_file} already exists: init makes a new voter key for every "
            "election and never reuses one (move the file away or name another --voter-key)"
        )
    voter_key = secrets.token_bytes(32)
    check_election_size(election, admin, voter_key)  # before any key or log is made

    async def work(store: Store) -> int:
        if election.id in await store.log_ids() and await store.size(election.id) > 0:
            raise CommandError(f"election {election.id!r} already exists in this database")
        await _refuse_reused_voter_key(store, voter_key_id(voter_key))
        private_directory(key_file.parent)
        try:
            write_private(key_file, voter_key.hex() + "\n")
        except FileExistsError:
            raise CommandError(f"voter key file {key_file} appeared meanwhile") from None
        try:
            await store.create_log(election.id)
            payload = election_payload(election, admin.verifier.vkey, voter_key)
            await _submit_signed(store, election.id, payload, admin)
        except BaseException:
            key_file.unlink(missing_ok=True)  # no election names it: it was never used
            raise
        print(f"election {election.id} created in {args.db}")
        print(f"admin vkey: {admin.verifier.vkey}")
        print(f"voter key:  {key_file} (share with the voting site only)")
        return 0

    return _run(_with_store(args.db, work))


async def _refuse_reused_voter_key(store: Store, key_id: str) -> None:
    """Refuse a voter key whose id an election of this database already names."""
    from ledger.entry import entry_payload

    for log_id in await store.log_ids():
        for entry in await store.read(log_id, 0, min(1, await store.size(log_id))):
            if entry_payload(entry.data).get("voter_key_id") == key_id:
                raise CommandError(
                    f"election {log_id!r} of this database already uses this voter key "
                    "(a voter key is never reused across elections)"
                )


def cmd_amend(args: argparse.Namespace) -> int:
    from votes.admin import amendment_payload
    from votes.election import parse_election_toml

    admin = load_signer(args.admin_key, "admin key")
    try:
        amended = parse_election_toml(Path(args.election_file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {args.election_file}: {exc.strerror}") from None
    clock = simulated_clock(args.clock) if args.clock else None

    async def work(store: Store) -> int:
        await _single_election(store, amended.id)
        payload = amendment_payload(amended)
        position = await _submit_signed(store, amended.id, payload, admin, clock)
        print(f"election {amended.id} amended at log position {position}")
        return 0

    return _run(_with_store(args.db, work))


# keys


def cmd_keys_add(args: argparse.Namespace) -> int:
    from ledger.keys import VerifierKey
    from votes.admin import key_registration

    admin = load_signer(args.admin_key, "admin key")
    vkey = VerifierKey.parse(args.vkey)

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        payload = key_registration(election, vkey.vkey, args.role, args.polling_point)
        position = await _submit_signed(store, election, payload, admin)
        print(f"registered {vkey.key_id} as {args.role} at log position {position}")
        return 0

    return _run(_with_store(args.db, work))


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from votes.admin import key_revocation

    admin = load_signer(args.admin_key, "admin key")

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        payload = key_revocation(election, args.key, args.reason)
        position = await _submit_signed(store, election, payload, admin)
        print(f"revoked {args.key} at log position {position}")
        return 0

    return _run(_with_store(args.db, work))


# void


async def _server_json(
    method: str, url: str, body: object | None = None
) -> tuple[int, dict[str, Any]]:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.request(method, url, json=body) as response,
        ):
            document = await response.json(content_type=None)
            return response.status, document if isinstance(document, dict) else {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CommandError(
            f"cannot reach the server at {url}: {exc or type(exc).__name__}"
        ) from None
    except ValueError:
        raise CommandError(f"{url} did not answer JSON: is it a uchast server?") from None


def cmd_void(args: argparse.Namespace) -> int:
    import uuid

    from ledger.keys import sign_envelope

    supervisor = load_signer(args.key, "supervisor key")
    base = args.server.rstrip("/")

    async def work() -> int:
        election = args.election
        if election is None:
            _, listing = await _server_json("GET", f"{base}/v1/elections")
            names = [e.get("id") for e in listing.get("elections", []) if isinstance(e, dict)]
            if len(names) != 1:
                raise CommandError(
                    "say which election with --election (the server has: "
                    f"{', '.join(map(str, names)) or 'none'})"
                )
            election = names[0]
        payload = {
            "type": "void",
            "election": election,
            "entry": args.entry,
            "reason": args.reason,
            "nonce": str(uuid.uuid4()),
        }
        url = f"{base}/v1/elections/{election}/voids"
        status, answer = await _server_json("POST", url, sign_envelope(payload, supervisor))
        if status not in (200, 201):
            code = answer.get("code", f"HTTP {status}")
            detail = answer.get("detail") or answer.get("title") or "refused"
            raise CommandError(f"void refused ({code}): {detail}")
        print(
            f"voided entry {args.entry} of {election}: the void is log entry "
            f"{answer.get('position')}, receipt {answer.get('receipt')}"
        )
        return 0

    return _run(work())


# export


def cmd_export_log(args: argparse.Namespace) -> int:
    from ledger.export import export_log

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        if args.out == "-":
            size = await export_log(store, election, sys.stdout.buffer)
        else:
            with open(args.out, "wb") as out:
                size = await export_log(store, election, out)
            print(f"exported {size} entries of {election} to {args.out}", file=sys.stderr)
        return 0

    return _run(_with_store(args.db, work))


def _write_output(out: str, text: str, what: str) -> None:
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
        print(f"exported {what} to {out}", file=sys.stderr)


def cmd_export_tiles(args: argparse.Namespace) -> int:
    from ledger.tiles import export_tiles

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        try:
            size, files = await export_tiles(store, election, Path(args.out))
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from None
        print(
            f"exported the tiles of {election} at its checkpoint of {size} entries "
            f"({files} files) to {args.out}",
            file=sys.stderr,
        )
        return 0

    return _run(_with_store(args.db, work))


def cmd_export_results(args: argparse.Namespace) -> int:
    from tally.export import results_from_log
    from tally.results import results_csv

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        document = await results_from_log(store, election)
        if args.format == "csv":
            text = results_csv(document)
        else:
            text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        _write_output(
            args.out, text, f"results of {election} at log size {document['log']['size']}"
        )
        return 0

    return _run(_with_store(args.db, work))


def cmd_export_pabulib(args: argparse.Namespace) -> int:
    from tally.export import pabulib_export

    async def work(store: Store) -> int:
        election = await _single_election(store, args.election)
        text, size = await pabulib_export(store, election)
        _write_output(args.out, text, f"counted ballots of {election} at log size {size}")
        return 0

    return _run(_with_store(args.db, work))


def cmd_import_pabulib(args: argparse.Namespace) -> int:
    import asyncio

    from tally.pabulib_import import (
        PabulibImportError,
        format_report,
        import_pabulib,
        parse_category_budgets,
    )

    try:
        report = asyncio.run(
            import_pabulib(
                Path(args.file),
                args.db,
                Path(args.dir) if args.dir else None,
                election_id=args.election,
                category_budgets=parse_category_budgets(args.category_budget),
                rule_name=args.rule,
                timezone=args.timezone,
                concurrency=args.concurrency,
                progress=True,
            )
        )
    except PabulibImportError as exc:
        raise CommandError(str(exc)) from None
    print(format_report(report, args.file))
    if args.report:
        _write_output(args.report, json.dumps(report.to_dict(), indent=2) + "\n", "import report")
    return 0 if report.totals_match and not report.refused else 1


# demo


def cmd_demo(args: argparse.Namespace) -> int:
    from api.demo import run_demo
    from ledger.keydir import keys_root

    # Told where: everything there. Not told: the throwaway database in ./demo-data, the keys
    # outside the working directory, which is often a checkout.
    directory = Path(args.dir or "demo-data")
    return _run(
        run_demo(
            directory,
            keys_dir=directory / "keys" if args.dir else keys_root() / "demo",
            host=args.host,
            port=args.port,
            voters=args.voters,
            exit_after_simulation=args.exit_after_simulation,
        )
    )


# serve


def simulated_clock(start: str) -> Callable[[], datetime]:
    """A clock that starts at ``start`` (ISO 8601 with offset) and runs at real speed: for
    replaying a past election and for trials. It decides windows and deadlines only; recorded
    times in the log stay real."""
    import time

    try:
        origin = datetime.fromisoformat(start)
    except ValueError:
        raise CommandError(f"--clock {start!r} is not an ISO 8601 time") from None
    if origin.utcoffset() is None:
        raise CommandError("--clock needs a UTC offset, e.g. 2018-10-05T12:00:00+03:00")
    began = time.monotonic()
    return lambda: origin + timedelta(seconds=time.monotonic() - began)


def role_rate(text: str) -> tuple[str, float]:
    """``ROLE=N`` for --rate-limit-role."""
    role, _, rate = text.partition("=")
    if role not in ("site", "clerk", "supervisor") or not rate:
        raise argparse.ArgumentTypeError(f"{text!r}: expected site=N, clerk=N or supervisor=N")
    try:
        return role, float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {rate!r} is not a number") from None


def lookup_limit(text: str) -> tuple[int, float]:
    """``BURST/SECONDS`` for --lookup-limit."""
    burst, sep, seconds = text.partition("/")
    try:
        if not sep or int(burst) < 0 or float(seconds) < 0:
            raise ValueError(text)
        return int(burst), float(seconds)
    except ValueError:
        message = f"expected BURST/SECONDS, e.g. 5/3, not {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def routes_file(path: str, default_db: str) -> Path:
    """``serve --routes FILE``, checked before serving (api/routing.py)."""
    from api.routing import RoutesError, RoutesFile

    try:
        RoutesFile(Path(path)).read(default_db)
    except RoutesError as exc:
        raise CommandError(str(exc)) from None
    return Path(path)


async def _check_replicas(urls: Sequence[str]) -> None:
    """``serve --read-only``: refuse to start on a database without the schema (a read-only
    server creates nothing). One that does not answer is left to the service, as without."""
    from api.routing import redact
    from ledger.errors import SchemaMissingError, StoreUnavailableError
    from ledger.store import open_store

    for url in urls:
        store = open_store(url, read_only=True)
        try:
            await store.open()
        except SchemaMissingError as exc:
            raise CommandError(f"{redact(url)}: {exc}") from None
        except StoreUnavailableError:
            continue
        finally:
            await store.close()


def log_verifier(vkey: str) -> VerifierKey:
    """``serve --log-vkey``."""
    from ledger.errors import KeyFormatError
    from ledger.keys import VerifierKey

    try:
        return VerifierKey.parse(vkey)
    except (KeyFormatError, ValueError) as exc:
        raise CommandError(f"--log-vkey {vkey!r} is not a vkey: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from api.app import create_app
    from api.service import ServiceConfig
    from ledger.checkpoint import JOURNAL_SUFFIX

    if args.log_vkey and not args.read_only:
        raise CommandError("--log-vkey is for --read-only servers: a server that writes signs")
    if not args.log_key and not args.log_vkey:
        raise CommandError("name the log key: --log-key FILE (or, with --read-only, --log-vkey)")
    journal: Path | None = None
    if args.read_only:  # the primary's servers keep the journal; a replica never opens it
        urls = [args.db]
        if args.routes:
            from api.routing import RoutesError, RoutesFile

            try:
                urls = RoutesFile(Path(args.routes)).read(args.db).urls()
            except RoutesError as exc:
                raise CommandError(str(exc)) from None
        import asyncio

        asyncio.run(_check_replicas(urls))
    else:
        journal = Path(args.checkpoint_journal or args.log_key + JOURNAL_SUFFIX)
        try:  # found unwritable at the first checkpoint, every write would fail: say so now
            journal.open("ab").close()
        except OSError as exc:
            raise CommandError(
                f"cannot write the checkpoint journal {journal}: {exc.strerror}; give"
                " --checkpoint-journal a file on a writable disk that outlives the server"
            ) from None
    config = ServiceConfig(
        db_url=args.db,
        log_key=log_verifier(args.log_vkey)
        if args.log_vkey
        else load_signer(args.log_key, "log key"),
        checkpoint_journal=journal,
        deployment=args.deployment,
        voter_key=load_voter_key(args.voter_key) if args.voter_key else None,
        checkpoint_interval=args.checkpoint_interval,
        rate_limiting=not args.no_rate_limit,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        role_rate_limits=tuple(args.rate_limit_role),
        ready_max_lag=args.ready_max_lag,
        read_only=args.read_only,
    )
    if args.lookup_limit is not None:
        config = dataclasses.replace(config, lookup_limit=args.lookup_limit)
    if args.rate_limit_unverified is not None:
        config = dataclasses.replace(config, unverified_rate_limit=args.rate_limit_unverified)
    if args.clock:
        config = dataclasses.replace(config, clock=simulated_clock(args.clock))
    if args.witness_policy:
        from api.cosigning import load_policy

        policy = load_policy(args.witness_policy, config.log_verifier)
        config = dataclasses.replace(config, witness_policy=policy)
    if args.routes:
        config = dataclasses.replace(config, routes_file=routes_file(args.routes, args.db))
    app = create_app(config)
    # Under the default thresholds the collector ran about every 20 requests, and every few
    # thousand a full collection over every object since startup (imports included): about a
    # tenth of the server's CPU under load (0.34 -> 0.30 ms per ballot, bench/ingest_http.py).
    # Startup's objects are frozen out of its way; young ones are collected less often.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


# witness


def cmd_witness(args: argparse.Namespace) -> int:
    from aiohttp import web

    from api.witness_app import create_witness_app
    from ledger.cosignature import CosignerKey
    from ledger.keys import VerifierKey
    from ledger.witness import Witness, open_witness_state

    signer = load_signer(args.key, "witness key")
    if args.print_vkey:
        print(CosignerKey.of(signer.verifier).vkey)
        return 0
    if not args.log:
        raise CommandError("name at least one log to witness: --log VKEY")
    logs = [VerifierKey.parse(vkey) for vkey in args.log]
    witness = Witness(signer, logs, open_witness_state(args.db))
    print(CosignerKey.of(signer.verifier).vkey, flush=True)
    web.run_app(create_witness_app(witness), host=args.host, port=args.port, print=None)
    return 0


# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uchast",
        description="Verifiable, event-sourced vote tallying for participatory budgets.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="make a new Ed25519 key; prints its public vkey")
    p.add_argument("name", help="key name, unique in an election, e.g. clerk.point-2.olena")
    p.add_argument("--out", required=True, help="file for the private key (mode 0600)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("init", help="write an election's first entry from its TOML file")
    p.add_argument("election_file", metavar="ELECTION.toml")
    p.add_argument("--db", default=DEFAULT_DB, help=f"storage URL (default {DEFAULT_DB})")
    p.add_argument("--admin-key", required=True, help="the administrator's private key file")
    p.add_argument(
        "--voter-key",
        help="new file for the election's HMAC voter key; refused if it exists (default "
        "<keys dir>/<election>/voter.key, the keys dir being $UCHAST_KEYS_DIR, else "
        "$XDG_DATA_HOME/uchast/keys, else ~/.local/share/uchast/keys)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("amend", help="replace the definition before voting opens (signed)")
    p.add_argument("election_file", metavar="ELECTION.toml")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--clock", help="pretend it is this time (ISO 8601 with offset)")
    p.set_defaults(func=cmd_amend)

    keys = sub.add_parser("keys", help="register or revoke signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    p = keys.add_parser("add", help="register a site, clerk or supervisor key")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--role", required=True, choices=["site", "clerk", "supervisor"])
    p.add_argument("--vkey", required=True, help="the key's public vkey string")
    p.add_argument(
        "--polling-point", help="the polling point a clerk key serves (required for clerks)"
    )
    p.add_argument("--election", help="election id (needed when the database holds several)")
    p.set_defaults(func=cmd_keys_add)
    p = keys.add_parser("revoke", help="revoke a key from now on")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--key", required=True, help="key id name+hex8")
    p.add_argument("--reason", required=True)
    p.add_argument("--election")
    p.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser(
        "void",
        help="take an entry out of the count, with a reason (supervisor-signed, via the server)",
        description="Sign a void of log entry ENTRY with a supervisor key and send it to a "
        "running server, which checks it against the rules like any other write. Nothing is "
        "deleted: the void is itself a log entry.",
    )
    p.add_argument("entry", type=int, metavar="ENTRY", help="log position of the entry to void")
    p.add_argument("--reason", required=True, help="why, in words the audit trail will show")
    p.add_argument("--key", required=True, help="the supervisor's private key file")
    p.add_argument("--server", default="http://127.0.0.1:8080", help="the server's base URL")
    p.add_argument("--election", help="needed when the server holds several elections")
    p.set_defaults(func=cmd_void)

    export = sub.add_parser("export", help="export the log, results or ballots").add_subparsers(
        dest="export_command", required=True, metavar="WHAT"
    )
    p = export.add_parser("log", help="the whole log with its checkpoints, as JSON lines")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--election")
    p.add_argument("--out", default="-", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export_log)
    p = export.add_parser(
        "tiles",
        help="the log as static C2SP tlog-tiles files (checkpoint, tiles, entry bundles)",
        description="Write DIR/checkpoint and DIR/tile/... exactly as the server serves them "
        "under /v1/elections/ID/log/, for nginx or object storage. Safe to rerun as the log "
        "grows: tiles never change and the checkpoint is replaced last.",
    )
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--election")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write")
    p.set_defaults(func=cmd_export_tiles)
    p = export.add_parser("results", help="totals and winners (as GET /results), from the log")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--election")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--out", default="-", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export_results)
    p = export.add_parser(
        "pabulib", help="counted ballots, anonymised, one row per voter, in Pabulib format"
    )
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--election")
    p.add_argument("--out", required=True, metavar="FILE.pb", help="file to write ('-': stdout)")
    p.set_defaults(func=cmd_export_pabulib)

    p = sub.add_parser(
        "import-pabulib",
        help="replay a real election from a Pabulib file: definition, keys, every ballot cast",
    )
    p.add_argument("file", metavar="FILE.pb")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument(
        "--dir", help="directory for the generated keys (default: <keys dir>/<election>)"
    )
    p.add_argument("--election", help="election id (default: from the file name)")
    p.add_argument(
        "--category-budget",
        action="append",
        default=[],
        metavar="NAME=AMOUNT",
        help="use the file's categories, with this budget in the file's currency (repeatable)",
    )
    p.add_argument(
        "--rule", choices=["greedy", "greedy-no-skip"], help="instead of the file's rule"
    )
    p.add_argument("--timezone", help="IANA zone of the voting dates (default: by country)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent casts (default 64)")
    p.add_argument(
        "--report",
        metavar="FILE.json",
        help="also write the report as JSON (ballots outside the file's limits by voter id...)",
    )
    p.set_defaults(func=cmd_import_pabulib)

    p = sub.add_parser(
        "demo", help="the Zhytomyr-2018 example: simulated voting, then the service with pages"
    )
    p.add_argument(
        "--dir",
        help="directory for the database and (in DIR/keys) the keys; default: the database in "
        "demo-data, the keys in <keys dir>/demo",
    )
    p.add_argument("--voters", type=int, default=12527, help="voters to simulate (2018: 12527)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--exit-after-simulation", action="store_true", help="stop instead of serving on"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run the HTTP service")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument(
        "--routes",
        metavar="FILE",
        help="routing file (TOML, [elections] election = storage URL): each election named "
        "there is served from its own database, the others from --db; re-read on SIGHUP and "
        "when it changes (README: Many elections, many clusters)",
    )
    p.add_argument(
        "--log-key", help="private key that signs checkpoints (required but with --log-vkey)"
    )
    p.add_argument(
        "--log-vkey",
        metavar="VKEY",
        help="with --read-only: the log key's public vkey instead of its private file (a server"
        " on a replica signs nothing, its host need not hold the key)",
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        help="serve reads from a replica (a hot standby; with --routes, the file names each"
        " election's replica): creates, writes, signs and cosigns nothing, answers every write"
        " 503 read-only (README: How reads scale)",
    )
    p.add_argument(
        "--checkpoint-journal",
        metavar="FILE",
        help="append-only file of every checkpoint the log key published, kept off the database;"
        " a log that does not extend it is refused writes (default: the log key's file"
        " + .checkpoints)",
    )
    p.add_argument("--voter-key", help="HMAC voter key file (needed for paper ballots)")
    p.add_argument(
        "--witness-policy",
        metavar="FILE",
        help="C2SP tlog-policy file: checkpoints go to its witnesses and are published (served "
        "at /log/checkpoint, with cosignatures) once its quorum cosigned them",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--deployment", default="uchast.local", help="names the log in checkpoints")
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        default=0.0,
        help="seconds between checkpoints (0: after every batch)",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="N",
        help="signed writes per second for every key, token bucket (default 0: each role's "
        "own rate, api/ratelimit.ROLE_RATES: site 2000, clerk 1, supervisor 0.2, admin 1)",
    )
    p.add_argument(
        "--rate-burst", type=float, default=0.0, metavar="N", help="bucket size (default: N)"
    )
    p.add_argument(
        "--rate-limit-role",
        type=role_rate,
        action="append",
        default=[],
        metavar="ROLE=N",
        help="per-key rate for keys of one role, e.g. site=5000; 0 = no limit (repeatable)",
    )
    p.add_argument(
        "--rate-limit-unverified",
        type=float,
        default=None,
        metavar="N",
        help="requests per second per client address before a signature is verified (default 200)",
    )
    p.add_argument(
        "--lookup-limit",
        type=lookup_limit,
        default=None,
        metavar="BURST/SECONDS",
        help="voter lookups per clerk key: a burst, then one every SECONDS (default 5/3; "
        "0/0: no limit, for replays and trials only)",
    )
    p.add_argument(
        "--no-rate-limit",
        action="store_true",
        help="turn every rate limit off (trials and replays on a closed machine only)",
    )
    p.add_argument(
        "--ready-max-lag",
        type=int,
        default=1000,
        metavar="N",
        help="/readyz fails while a tally is more than N entries behind its log (default 1000)",
    )
    p.add_argument(
        "--clock",
        help="simulated start time for windows and deadlines (ISO 8601 with offset); "
        "for replaying past elections and trials",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "witness", help="cosign other logs' checkpoints (C2SP tlog-witness add-checkpoint)"
    )
    p.add_argument("--key", required=True, help="the witness's private key (uchast keygen)")
    p.add_argument(
        "--db",
        default="sqlite:///uchast-witness.db",
        help="where the latest cosigned checkpoint of each log is kept"
        " (default sqlite:///uchast-witness.db)",
    )
    p.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="VKEY",
        help="checkpoint vkey of a log to witness (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument(
        "--print-vkey",
        action="store_true",
        help="print the cosigner vkey (type 0x04) a policy file names, and exit",
    )
    p.set_defaults(func=cmd_witness)

    # The auditor's commands keep their own parsers (tally/audit/) and import none of the server:
    # everything after the command's name is theirs.
    for name, (module, summary, metavar) in AUDITOR_COMMANDS.items():
        p = sub.add_parser(name, help=summary, add_help=False, prefix_chars="\0")
        p.add_argument("tool_args", nargs=argparse.REMAINDER, metavar=metavar)
        p.set_defaults(func=functools.partial(cmd_auditor, module))
    return parser


AUDITOR_COMMANDS = {
    "audit": (
        "tally.audit.cli",
        "replay a log independently: signatures, Merkle roots, rules, results",
        "SOURCE ...",
    ),
    "verify-receipt": (
        "tally.audit.receipts",
        "check a receipt's proof file (C2SP tlog-proof) offline against the log key",
        "FILE --log-vkey V",
    ),
    "monitor": (
        "tally.audit.monitor",
        "follow a live log's tiles: signatures, witnesses, consistency, audit; alarms",
        "URL --log-vkey V",
    ),
}
"""Commands the auditor's package runs: name -> (module with ``main(argv)``, help, usage)."""


def cmd_auditor(module: str, args: argparse.Namespace) -> int:
    main: Callable[[list[str]], int] = importlib.import_module(module).main
    return main(args.tool_args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except CommandError as exc:
        print(f"uchast: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"uchast: {english(exc)}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"uchast: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
