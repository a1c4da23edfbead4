"""The monitor's witness policies (tally/audit/policy.py) read as the server's (ledger/policy.py,
ledger/cosignature.py): the same files accepted and refused, the same quorums met by the same
witnesses, the same cosignature lines counted."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.cosignature import CosignerKey, cosign, cosignature_line, verified_cosignatures
from ledger.keys import SignerKey
from ledger.policy import PolicyError as ServerPolicyError
from ledger.policy import parse_policy as server_policy
from tally.audit.policy import PolicyError, WitnessKey, cosigners, parse_policy

LOG = SignerKey.generate("uchast.local/log")
WITNESSES = [SignerKey.generate(f"witness-{n}.example") for n in range(4)]
W = [CosignerKey.of(w.verifier).vkey for w in WITNESSES]
HEAD = f"log {LOG.verifier.vkey}\n" + "".join(
    f"witness w{n} {vkey} https://w{n}.example/\n" for n, vkey in enumerate(W)
)

POLICIES = [
    HEAD + "quorum none\n",
    HEAD + "quorum w0\n",
    HEAD + "group two 2 w0 w1 w2\nquorum two\n",
    HEAD + "group a any w0 w1\ngroup b all w2 w3\ngroup ab all a b\nquorum ab\n",
    HEAD + "# comment\n\n\tgroup g 1 w3\t\nquorum g",
    # refused by both
    HEAD,
    HEAD + "quorum w9\n",
    HEAD + "quorum none\nquorum w0\n",
    HEAD + "group g 4 w0 w1 w2\nquorum g\n",
    HEAD + "group g 0 w0\nquorum g\n",
    HEAD + "group g any w0 w0\nquorum g\n",
    HEAD + "group none any w0\nquorum none\n",
    HEAD + "witness w0 " + W[0] + "\nquorum w0\n",
    HEAD + f"witness again {W[1]}\nquorum w0\n",
    HEAD + f"witness bad {LOG.verifier.vkey}\nquorum none\n",
    HEAD + "frobnicate\nquorum none\n",
    HEAD + "quorum w0\x0c\n",
    f"log {LOG.verifier.vkey}\nlog {LOG.verifier.vkey}\nquorum none\n",
]


@pytest.mark.parametrize("text", POLICIES)
def test_both_read_a_policy_alike(text: str) -> None:
    """Accepted by both or refused by both; when accepted, every set of witnesses meets the
    quorum of one exactly when it meets the other's."""
    try:
        server = server_policy(text)
    except ServerPolicyError:
        with pytest.raises(PolicyError):
            parse_policy(text)
        return
    mine = parse_policy(text)
    assert [k.vkey for k in mine.logs] == [log.key.vkey for log in server.logs]
    names = [f"w{n}" for n in range(len(W))]
    for r in range(len(names) + 1):
        for cosigned in itertools.combinations(names, r):
            assert mine.satisfied(set(cosigned)) == server.satisfied(set(cosigned)), cosigned


@given(signers=st.sets(st.integers(0, 3)), broken=st.sets(st.integers(0, 3)))
def test_both_count_the_same_cosignatures(signers: set[int], broken: set[int]) -> None:
    """Lines by some witnesses, some with a broken signature, plus one by a witness the policy
    does not know: both count exactly the valid lines of the policy's witnesses."""
    text = POLICIES[3]
    note = sign_checkpoint(Checkpoint("uchast.local/e", 7, bytes(range(32))), LOG)
    body = note[: note.index("\n\n") + 1]
    lines = []
    for n in sorted(signers):
        line = cosignature_line(WITNESSES[n], body, 1_700_000_000 + n)
        if n in broken:  # one base64 digit of the Ed25519 signature changed
            head, b64 = line.rsplit(" ", 1)
            line = f"{head} {b64[:50]}{'B' if b64[50] == 'A' else 'A'}{b64[51:]}"
        lines.append(line)
    lines.append(cosignature_line(SignerKey.generate("stranger.example"), body, 1))
    cosigned = cosign(note, lines)
    server = {
        c.witness for c in verified_cosignatures(cosigned, server_policy(text).witness_keys())
    }
    mine = cosigners(cosigned, parse_policy(text))
    assert mine == server == {f"w{n}" for n in signers - broken}


def test_a_witness_key_reads_as_the_servers() -> None:
    """The cosigner vkey (type 0x04) of a keygen key: the same key ID both ways."""
    key = WitnessKey.parse(W[0])
    assert key.key_id == CosignerKey.parse(W[0]).key_id
    with pytest.raises(ValueError):
        WitnessKey.parse(WITNESSES[0].verifier.vkey)  # the 0x01 form is a log key's
