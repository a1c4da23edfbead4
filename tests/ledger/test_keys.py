"""Ed25519 keys as C2SP key strings, and signed envelopes (DESIGN.md §3)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import BadSignatureError, EnvelopeError, KeyFormatError
from ledger.keys import (
    SIGNING_CONTEXT,
    Envelope,
    KeyId,
    SignerKey,
    VerifierKey,
    decode_b64,
    envelope_message,
    key_hash,
    parse_key_id,
    sign_envelope,
    validate_key_name,
    verify_envelope,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def _load(relative: str) -> Any:
    path = SHARED / "vectors" / relative
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _need(data: Any, relative: str) -> Any:
    """Return loaded vectors, or fail (in CI) / skip (elsewhere) when the shared dir is missing."""
    if data is None:
        message = f"test vectors missing: {SHARED / 'vectors' / relative}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return data


NOTE_FILE = "signed-note/note_vectors.json"
RFC8032_FILE = "ed25519/rfc8032_tests.json"
NOTE_VECTORS = _load(NOTE_FILE)
RFC8032 = _load(RFC8032_FILE)
NOTE_IDS = [v["id"] for v in NOTE_VECTORS["vectors"]] if NOTE_VECTORS else ["missing"]
RFC8032_IDS = [t["name"] for t in RFC8032["tests"]] if RFC8032 else ["missing"]


def _note_vector(vector_id: str) -> dict[str, Any]:
    data = _need(NOTE_VECTORS, NOTE_FILE)
    found: dict[str, Any] = next(v for v in data["vectors"] if v["id"] == vector_id)
    return found


def _rfc8032(name: str) -> dict[str, str]:
    data = _need(RFC8032, RFC8032_FILE)
    found: dict[str, str] = next(t for t in data["tests"] if t["name"] == name)
    return found


ALG1 = b"\x01"
ALG2 = b"\x02"
SEED = bytes(range(32))
SIGNER = SignerKey.from_seed("site.e-dem", SEED)
OTHER = SignerKey.from_seed("clerk.point-2.olena", bytes(range(1, 33)))
BALLOT: dict[str, Any] = {
    "type": "ballot",
    "election": "zhytomyr-2018",
    "voter": "ab" * 32,
    "projects": ["L07", "S12"],
    "cast_at": "2018-10-03T10:15:00+03:00",
    "nonce": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- RFC 8032 and vectors


@pytest.mark.parametrize("name", RFC8032_IDS)
def test_rfc8032_vectors_sign_and_verify_byte_for_byte(name: str) -> None:
    """SignerKey.from_seed reproduces the RFC 8032 public key and signature exactly."""
    case = _rfc8032(name)
    signer = SignerKey.from_seed("rfc8032", bytes.fromhex(case["secret_key"]))
    message = bytes.fromhex(case["message"])
    assert signer.verifier.public == bytes.fromhex(case["public_key"])
    assert signer.sign(message) == bytes.fromhex(case["signature"])
    signer.verifier.verify(message, bytes.fromhex(case["signature"]))
    with pytest.raises(BadSignatureError):
        signer.verifier.verify(message + b"\x00", bytes.fromhex(case["signature"]))


@pytest.mark.parametrize("vector_id", NOTE_IDS)
def test_note_vector_vkey_round_trips(vector_id: str) -> None:
    """Every vkey of the signed-note vectors parses and re-encodes to the same string."""
    vkey = _note_vector(vector_id)["vkey"]
    key = VerifierKey.parse(vkey)
    assert key.vkey == vkey
    name, hex8, _ = vkey.split("+", 2)
    assert key.name == name
    assert key.key_hash.hex() == hex8
    assert key.key_id == f"{name}+{hex8}"


def test_go_skey_vector_parses_and_matches_its_vkey() -> None:
    """The Go sumdb PeterNeumann skey parses, re-encodes identically and derives its vkey."""
    vector = _note_vector("go-sumdb-note-PeterNeumann")
    signer = SignerKey.parse(vector["skey"])
    assert signer.skey == vector["skey"]
    assert signer.name == "PeterNeumann"
    assert signer.verifier.vkey == vector["vkey"]
    assert signer.key_id == "PeterNeumann+c74f20a3"


# --------------------------------------------------------------------------- key strings


def test_key_hash_is_c2sp_signed_note_hash() -> None:
    """key_hash is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)."""
    public = SIGNER.verifier.public
    expected = hashlib.sha256(b"site.e-dem\n\x01" + public).digest()[:4]
    assert key_hash("site.e-dem", public) == expected
    assert SIGNER.verifier.key_hash == expected
    assert SIGNER.verifier.key_id == KeyId("site.e-dem+" + expected.hex())


def test_vkey_has_the_c2sp_layout() -> None:
    """A vkey is <name>+<hex8>+<base64(0x01 || 32-byte public key)>."""
    key = SIGNER.verifier
    assert key.vkey == f"site.e-dem+{key.key_hash.hex()}+{_b64(ALG1 + key.public)}"


def test_generated_keys_round_trip_as_strings() -> None:
    """A generated key's skey and vkey parse back to the same key."""
    signer = SignerKey.generate("clerk.point-2.olena")
    again = SignerKey.parse(signer.skey)
    assert again.verifier == signer.verifier
    assert again.skey == signer.skey
    assert VerifierKey.parse(signer.verifier.vkey) == signer.verifier
    assert signer.skey.startswith("PRIVATE+KEY+clerk.point-2.olena+")


def test_vkey_with_plus_in_base64_round_trips() -> None:
    """Base64 may contain '+', so the key part is split off at the second '+' only."""
    for i in range(200):
        signer = SignerKey.from_seed("k", hashlib.sha256(bytes([i])).digest())
        if "+" in signer.verifier.vkey.split("+", 2)[2]:
            assert VerifierKey.parse(signer.verifier.vkey) == signer.verifier
            assert SignerKey.parse(signer.skey).verifier == signer.verifier
            return
    pytest.fail("no key with '+' in its base64 among 200 seeds")


def _vkey(name: str, hex8: str, raw: bytes) -> str:
    return f"{name}+{hex8}+{_b64(raw)}"


def _bad_vkeys() -> list[tuple[str, str, str]]:
    public = SIGNER.verifier.public
    good_hash = SIGNER.verifier.key_hash.hex()
    key64 = _b64(b"\x01" + public)
    wrong_hash = f"{(int(good_hash, 16) ^ 1):08x}"
    return [
        ("wrong hash", _vkey("site.e-dem", wrong_hash, b"\x01" + public), "does not match"),
        ("upper-case hash", f"site.e-dem+{good_hash.upper()}+{key64}", "lowercase hex"),
        ("short hash", f"site.e-dem+{good_hash[:7]}+{key64}", "8 lowercase hex"),
        ("wrong alg", _vkey("site.e-dem", good_hash, b"\x02" + public), "algorithm 0x02"),
        ("short key", _vkey("site.e-dem", good_hash, b"\x01" + public[:31]), "32 bytes"),
        ("long key", _vkey("site.e-dem", good_hash, b"\x01" + public + b"\x00"), "32 bytes"),
        ("empty key", f"site.e-dem+{good_hash}+", "empty"),
        ("bad base64 char", f"site.e-dem+{good_hash}+{key64[:-2]}*=", "base64"),
        ("extra padding", f"site.e-dem+{good_hash}+{key64}=", "base64"),
        ("truncated base64", f"site.e-dem+{good_hash}+{key64[:-1]}", "base64"),
        ("url-safe base64", f"site.e-dem+{good_hash}+{key64.replace('/', '_')}", "base64"),
        ("whitespace in base64", f"site.e-dem+{good_hash}+{key64[:8]} {key64[8:]}", "base64"),
        ("trailing newline", f"site.e-dem+{good_hash}+{key64}\n", "base64"),
        ("two parts", f"site.e-dem+{good_hash}", "form"),
        ("empty name", f"+{good_hash}+{key64}", "empty"),
        ("space in name", f"site e-dem+{good_hash}+{key64}", "space"),
        ("NBSP in name", f"site\u00a0e-dem+{good_hash}+{key64}", "space"),
        ("ideographic space", f"site\u3000e-dem+{good_hash}+{key64}", "space"),
        ("control in name", f"site\x01e-dem+{good_hash}+{key64}", "control"),
    ]


@pytest.mark.parametrize(("what", "vkey", "needle"), _bad_vkeys(), ids=[b[0] for b in _bad_vkeys()])
def test_bad_vkeys_are_rejected_with_a_clear_message(what: str, vkey: str, needle: str) -> None:
    """Malformed vkey strings raise KeyFormatError saying what is wrong."""
    with pytest.raises(KeyFormatError, match=needle):
        VerifierKey.parse(vkey)


def test_non_canonical_base64_is_rejected() -> None:
    """Base64 with non-zero spare bits (a second spelling of the same bytes) is refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    raw = SIGNER.sign(b"m")[:32]  # 32 bytes: 43 characters carry 2 spare bits, then one '='
    text = _b64(raw)
    tweaked = text[:-2] + alphabet[alphabet.index(text[-2]) ^ 1] + "="
    assert base64.b64decode(tweaked) == raw
    assert decode_b64(text) == raw
    with pytest.raises(ValueError, match="canonical"):
        decode_b64(tweaked)


def test_vkey_parse_refuses_private_key_without_echoing_it() -> None:
    """A signer key given as a vkey is refused and its secret is not in the message."""
    with pytest.raises(KeyFormatError) as caught:
        VerifierKey.parse(SIGNER.skey)
    assert SIGNER.skey.rsplit("+", 1)[1] not in str(caught.value)
    assert "private" in str(caught.value)


def test_verifier_key_constructor_checks_name_and_length() -> None:
    """VerifierKey(name, public) refuses invalid names and keys that are not 32 bytes."""
    with pytest.raises(KeyFormatError):
        VerifierKey("a+b", bytes(32))
    with pytest.raises(KeyFormatError, match="32 bytes"):
        VerifierKey("a", bytes(31))


def _bad_skeys() -> list[tuple[str, str]]:
    seed64 = _b64(b"\x01" + SEED)
    good_hash = SIGNER.verifier.key_hash.hex()
    wrong_hash = f"{(int(good_hash, 16) ^ 0x100):08x}"
    return [
        ("wrong hash", f"PRIVATE+KEY+site.e-dem+{wrong_hash}+{seed64}"),
        ("other name", f"PRIVATE+KEY+site.other+{good_hash}+{seed64}"),
        ("no prefix", f"site.e-dem+{good_hash}+{seed64}"),
        ("lower-case prefix", f"private+key+site.e-dem+{good_hash}+{seed64}"),
        ("wrong alg", f"PRIVATE+KEY+site.e-dem+{good_hash}+{_b64(ALG2 + SEED)}"),
        ("short seed", f"PRIVATE+KEY+site.e-dem+{good_hash}+{_b64(ALG1 + SEED[:31])}"),
        ("bad base64", f"PRIVATE+KEY+site.e-dem+{good_hash}+{seed64[:-1]}"),
        ("bad name", f"PRIVATE+KEY+site e-dem+{good_hash}+{seed64}"),
    ]


@pytest.mark.parametrize(("what", "skey"), _bad_skeys(), ids=[b[0] for b in _bad_skeys()])
def test_bad_skeys_are_rejected_without_leaking_the_secret(what: str, skey: str) -> None:
    """Malformed signer keys raise KeyFormatError whose message holds no key material."""
    with pytest.raises(KeyFormatError) as caught:
        SignerKey.parse(skey)
    secret = skey.rsplit("+", 1)[1]
    assert secret not in str(caught.value)


def test_skey_layout() -> None:
    """An skey is PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || 32-byte seed)>."""
    expected = f"PRIVATE+KEY+{SIGNER.key_id}+{_b64(ALG1 + SEED)}"
    assert SIGNER.skey == expected
    assert SignerKey.parse(expected).verifier == SIGNER.verifier


def test_signer_repr_hides_the_secret() -> None:
    """repr(SignerKey) shows the key id and never the seed."""
    text = repr(SIGNER)
    assert SIGNER.key_id in text
    assert SIGNER.skey.rsplit("+", 1)[1] not in text
    assert SEED.hex() not in text


@pytest.mark.parametrize(
    "name", ["site.e-dem", "clerk.point-2.olena", "example.com/foo", "Житомир", "a", "x—y"]
)
def test_valid_key_names_are_accepted(name: str) -> None:
    """Names without '+', Unicode spaces or control characters are valid."""
    assert validate_key_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a+b", "a b", "a\tb", "a\nb", "a\u00a0b", "a\u2028b", "a\x00b", "a\x1fb", "\ud800"]
)
def test_invalid_key_names_are_rejected(name: str) -> None:
    """Empty names and names with '+', Unicode spaces, controls or surrogates are refused."""
    with pytest.raises(KeyFormatError):
        validate_key_name(name)


def test_parse_key_id_checks_the_name_and_hash() -> None:
    """Key ids are <valid name>+<8 lowercase hex digits>."""
    assert parse_key_id("site.e-dem+0a1b2c3d") == "site.e-dem+0a1b2c3d"
    for bad in ["site.e-dem", "site.e-dem+0A1B2C3D", "site.e-dem+0a1b2c3", "a b+0a1b2c3d", 5]:
        with pytest.raises(KeyFormatError):
            parse_key_id(bad)


# --------------------------------------------------------------------------- signing primitives


def test_verify_rejects_wrong_length_signature_with_the_key_id() -> None:
    """A signature that is not 64 bytes raises BadSignatureError naming the key."""
    with pytest.raises(BadSignatureError) as caught:
        SIGNER.verifier.verify(b"m", SIGNER.sign(b"m")[:63])
    assert caught.value.key == SIGNER.key_id


def test_verify_rejects_signature_by_another_key() -> None:
    """A valid signature by another key does not verify."""
    with pytest.raises(BadSignatureError):
        SIGNER.verifier.verify(b"m", OTHER.sign(b"m"))


def test_sign_and_verify_insist_on_bytes() -> None:
    """Text is never silently encoded: str messages raise TypeError."""
    with pytest.raises(TypeError):
        SIGNER.sign("m")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SIGNER.verifier.verify("m", SIGNER.sign(b"m"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- key files


def test_save_writes_skey_and_newline_with_mode_0600(tmp_path: Path) -> None:
    """save() writes exactly the skey and a newline, readable by the owner only."""
    path = tmp_path / "site.key"
    SIGNER.save(path)
    assert path.read_bytes() == (SIGNER.skey + "\n").encode("ascii")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SignerKey.load(path).skey == SIGNER.skey
    assert SignerKey.load(str(path)).verifier == SIGNER.verifier


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    """An existing key file is never replaced by accident; overwrite=True replaces it."""
    path = tmp_path / "site.key"
    SIGNER.save(path)
    with pytest.raises(FileExistsError):
        OTHER.save(path)
    assert SignerKey.load(path).skey == SIGNER.skey
    path.chmod(0o644)
    OTHER.save(path, overwrite=True)
    assert SignerKey.load(path).skey == OTHER.skey
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.key"]


def test_load_accepts_go_style_file_without_newline(tmp_path: Path) -> None:
    """A key file holding the skey with or without a trailing newline loads."""
    path = tmp_path / "k"
    path.write_text(SIGNER.skey, encoding="ascii")
    assert SignerKey.load(path).skey == SIGNER.skey


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read"),
        (b"", "form"),
        (b"\xff\xfe", "UTF-8"),
        (b"site.e-dem+0a1b2c3d+AAAA\n", "form"),
    ],
)
def test_load_problems_name_the_path(tmp_path: Path, content: bytes | None, needle: str) -> None:
    """Missing, empty, non-UTF-8 or malformed key files raise KeyFormatError naming the path."""
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFormatError, match=needle) as caught:
        SignerKey.load(path)
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- envelopes


def test_envelope_message_is_context_then_canonical_json() -> None:
    """The signed bytes are exactly b"uchast/v1\\n" + RFC 8785 canonical JSON of the payload."""
    payload = {"type": "ballot", "b": [1, "x"], "a": 1.5}
    assert SIGNING_CONTEXT == b"uchast/v1\n"
    assert envelope_message(payload) == b'uchast/v1\n{"a":1.5,"b":[1,"x"],"type":"ballot"}'


def test_envelope_round_trip() -> None:
    """sign_envelope output survives JSON transport, parses and verifies."""
    signed = sign_envelope(BALLOT, SIGNER)
    assert set(signed) == {"payload", "key", "sig"}
    assert signed["key"] == SIGNER.key_id
    assert signed["payload"] == BALLOT
    wire = json.loads(json.dumps(signed))
    envelope = Envelope.parse(wire)
    assert envelope.raw is wire
    assert envelope.key == SIGNER.key_id
    assert envelope.payload == BALLOT
    verify_envelope(envelope, SIGNER.verifier)


def test_envelope_signature_is_ed25519_over_explicit_bytes() -> None:
    """The sig field is a standard base64 Ed25519 signature over the explicit message bytes."""
    signed = sign_envelope({"type": "ballot", "n": 1}, SIGNER)
    sig = base64.b64decode(signed["sig"], validate=True)
    assert len(sig) == 64
    assert signed["sig"].endswith("=")
    public = Ed25519PublicKey.from_public_bytes(SIGNER.verifier.public)
    public.verify(sig, b'uchast/v1\n{"n":1,"type":"ballot"}')
    assert sig == SIGNER.sign(b'uchast/v1\n{"n":1,"type":"ballot"}')


def test_sign_envelope_copies_the_payload() -> None:
    """Changing the caller's payload after signing does not change the signed envelope."""
    payload: dict[str, Any] = {"type": "ballot", "projects": ["L07"]}
    signed = sign_envelope(payload, SIGNER)
    payload["projects"].append("S12")
    verify_envelope(Envelope.parse(signed), SIGNER.verifier)
    assert signed["payload"]["projects"] == ["L07"]


def test_sign_envelope_refuses_payloads_parse_would_refuse() -> None:
    """sign_envelope raises EnvelopeError for a payload without a string type or not JSON."""
    with pytest.raises(EnvelopeError, match=r"payload\.type"):
        sign_envelope({"election": "x"}, SIGNER)
    with pytest.raises(EnvelopeError, match="payload"):
        sign_envelope({"type": "x", "v": float("nan")}, SIGNER)
    with pytest.raises(EnvelopeError, match="round trip"):
        sign_envelope({"type": "x", "v": 1e16}, SIGNER)  # would be read back as int 10**16


def test_verify_envelope_rejects_another_verifier() -> None:
    """An envelope checked against a key other than the one it names fails with its key id."""
    envelope = Envelope.parse(sign_envelope(BALLOT, SIGNER))
    with pytest.raises(BadSignatureError) as caught:
        verify_envelope(envelope, OTHER.verifier)
    assert caught.value.key == SIGNER.key_id


def _good() -> dict[str, Any]:
    return sign_envelope(BALLOT, SIGNER)


def _with(**changes: Any) -> dict[str, Any]:
    envelope = _good()
    for name, value in changes.items():
        if value is _DROP:
            del envelope[name]
        else:
            envelope[name] = value
    return envelope


_DROP = object()
_SIG = _good()["sig"]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "envelope"),
        ("{}", "envelope"),
        (_with(payload=_DROP), "payload"),
        (_with(key=_DROP), "key"),
        (_with(sig=_DROP), "sig"),
        (_with(extra=1), "extra"),
        (_with(payload=[]), "payload"),
        (_with(payload={"election": "x"}), "payload.type"),
        (_with(payload={"type": 1}), "payload.type"),
        (_with(payload={"type": ""}), "payload.type"),
        (_with(payload={"type": "x", "f": float("inf")}), "payload"),
        (_with(payload={"type": "x", "n": 2**60}), "payload"),
        (_with(key=None), "key"),
        (_with(key="site.e-dem"), "key"),
        (_with(key="site.e-dem+ABCDEF01"), "key"),
        (_with(key="site e-dem+abcdef01"), "key"),
        (_with(sig=None), "sig"),
        (_with(sig=_SIG.rstrip("=")), "sig"),
        (_with(sig=_SIG.replace("=", "")[:-1] + "!="), "sig"),
        (_with(sig=_b64(bytes(63))), "sig"),
        (_with(sig=_b64(bytes(65))), "sig"),
        (_with(sig=" " + _SIG), "sig"),
    ],
)
def test_envelope_parse_names_the_bad_field(obj: object, field: str) -> None:
    """Envelope.parse refuses any other shape with an EnvelopeError that starts with the field."""
    with pytest.raises(EnvelopeError) as caught:
        Envelope.parse(obj)
    assert str(caught.value).startswith(field + ":")
