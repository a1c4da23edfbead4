"""Sign an online ballot as a voting site does, and print the envelope for curl.

    python examples/sign_ballot.py --key site.key --voter-key "$VOTER_KEY" \\
        --election zhytomyr-2018 --identity 3012345678 L07 S12 \\
      | curl -s -H 'Content-Type: application/json' --data-binary @- \\
          http://127.0.0.1:8080/v1/elections/zhytomyr-2018/ballots

Choices by ballot kind (README "Ballot kinds"): plain ids go in "projects" (approval, knapsack),
ID=N gives a cumulative category's project N points ("points": {"P1": 3}), and --ranking lists
an ordinal category's projects most preferred first:

    python examples/sign_ballot.py ... T-03=3 T-05=2 --ranking N-2 N-1 N-4

The site turns the voter's identity number into the pseudonymous token with the election's voter
key it shares with uchast: HMAC-SHA256 over b"uchast/voter/v1\\n" + election id + b"\\n" +
normalised number (votes/tokens.py); the number itself is never sent.
The signature is Ed25519 over b"uchast/v1\\n" + RFC 8785 canonical JSON of the payload.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ledger.keys import SignerKey, sign_envelope
from votes.tokens import voter_token


def main() -> None:
    parser = argparse.ArgumentParser(description="sign an online ballot")
    parser.add_argument(
        "projects", nargs="*", help="project ids, e.g. L07 S12; ID=N gives ID N points"
    )
    parser.add_argument("--ranking", nargs="+", default=[], help="ranked ids, best first")
    parser.add_argument("--key", required=True, help="the site's private key file")
    parser.add_argument("--voter-key", required=True, help="the shared voter key file (hex)")
    parser.add_argument("--election", default="zhytomyr-2018")
    parser.add_argument("--identity", required=True, help="the voter's identity number")
    parser.add_argument("--cast-at", help="ISO 8601 with offset (default: now in Kyiv)")
    args = parser.parse_args()

    if not args.projects and not args.ranking:
        parser.error("give project ids, ID=N points, or --ranking")
    voter_key = bytes.fromhex(Path(args.voter_key).read_text().strip())
    payload: dict[str, object] = {
        "type": "ballot",
        "election": args.election,
        "voter": voter_token(voter_key, args.election, args.identity),
        "cast_at": args.cast_at or datetime.now(ZoneInfo("Europe/Kyiv")).isoformat(),
        "nonce": str(uuid.uuid4()),
    }
    projects = [p for p in args.projects if "=" not in p]
    points = {p: int(n) for p, _, n in (a.partition("=") for a in args.projects if "=" in a)}
    if projects or not (points or args.ranking):
        payload["projects"] = projects
    if points:
        payload["points"] = points
    if args.ranking:
        payload["ranking"] = args.ranking
    print(json.dumps(sign_envelope(payload, SignerKey.load(args.key)), ensure_ascii=False))


if __name__ == "__main__":
    main()
