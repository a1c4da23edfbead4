// Ed25519 keys and envelopes, C2SP signed notes and checkpoints, RFC 9162 inclusion proofs and
// receipt codes: the browser half of what ledger/keys.py, ledger/checkpoint.py and
// ledger/merkle.py do on the server. WebCrypto where the browser has it; the vendored @noble code
// (vendor-noble.js) where it does not, as on a page opened over plain HTTP.

import {
  b64decode,
  b64encode,
  b64urlDecode,
  canonicalize,
  concat,
  equalBytes,
  hex,
  noble,
  sha256,
  utf8,
  webCrypto,
} from "./common.js";

export const SIGNING_CONTEXT = utf8("uchast/v1\n");
const ALG_ED25519 = 0x01;
// PKCS#8 (RFC 8410) prefix of an Ed25519 private key: the 32-byte seed follows.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

const ED25519 = { name: "Ed25519" };
// RFC 8032 §7.1 test 1 public key: importing it tells whether WebCrypto has Ed25519 at all.
const PROBE_PUBLIC_KEY = Uint8Array.from(
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".match(/../g),
  (byte) => parseInt(byte, 16),
);

// ---------------------------------------------------------------- Ed25519 engines

// Two implementations of one interface, {name, signer(seed), verify(publicKey, signature,
// message)}. Ed25519 is deterministic (RFC 8032), so both sign the same bytes with the same key.
// WebCrypto keeps the signing key non-extractable; the vendored code can only keep a copy of the
// seed in this page's memory (either way the key lives no longer than the page).

const WEBCRYPTO = {
  name: "webcrypto",
  async signer(seed) {
    const subtle = webCrypto();
    const pkcs8 = concat(PKCS8_PREFIX, seed);
    try {
      // Imported once extractable, only to learn the public key; the signing key is not.
      const probe = await subtle.importKey("pkcs8", pkcs8, ED25519, true, ["sign"]);
      const publicKey = b64urlDecode((await subtle.exportKey("jwk", probe)).x);
      const key = await subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
      return {
        publicKey,
        async sign(message) {
          return new Uint8Array(await subtle.sign(ED25519, key, message));
        },
      };
    } finally {
      pkcs8.fill(0);
    }
  },
  async verify(publicKey, signature, message) {
    const subtle = webCrypto();
    const key = await subtle.importKey("raw", publicKey, ED25519, false, ["verify"]);
    return subtle.verify(ED25519, key, signature, message);
  },
};

const NOBLE = {
  name: "noble",
  async signer(seed) {
    const { ed25519PublicKey, ed25519Sign } = await noble();
    const own = seed.slice();
    return {
      publicKey: ed25519PublicKey(own),
      async sign(message) {
        return ed25519Sign(message, own);
      },
    };
  },
  async verify(publicKey, signature, message) {
    const { ed25519Verify } = await noble();
    try {
      return ed25519Verify(signature, message, publicKey);
    } catch {
      return false; // a signature or key of the wrong length, as WebCrypto answers it
    }
  },
};

export const ED25519_ENGINES = { webcrypto: WEBCRYPTO, noble: NOBLE };

let engine = null;

/** The Ed25519 engine of this browser: WebCrypto when it offers Ed25519 (a secure context in
 * Chrome 113+, Firefox 129+, Safari 17+), else the vendored code. Decided once per page. */
export function ed25519Engine() {
  engine ??= (async () => {
    const subtle = webCrypto();
    if (!subtle) return NOBLE;
    try {
      await subtle.importKey("raw", PROBE_PUBLIC_KEY, ED25519, false, ["verify"]);
      return WEBCRYPTO;
    } catch {
      return NOBLE;
    }
  })();
  return engine;
}

export class KeyError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Split a key string at its first count-1 "+" signs: the base64 key at the end may hold "+". */
function splitKey(text, count) {
  const parts = [];
  let rest = text;
  for (let i = 1; i < count; i++) {
    const at = rest.indexOf("+");
    if (at < 0) return null;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

function validName(name) {
  // C2SP signed-note: non-empty, no "+", no space, no control character.
  return name.length > 0 && !/[+\s\u0000-\u001f]/u.test(name);
}

/** The 4-byte C2SP key hash: SHA-256(name || "\n" || 0x01 || public key)[:4]. */
export async function keyHash(name, publicKey) {
  return (await sha256(concat(utf8(name), utf8("\n"), Uint8Array.of(ALG_ED25519), publicKey))).slice(0, 4);
}

/** Parse a signer key string "PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>" and import it
 * for signing, with `engine` (default: ed25519Engine()). The key hash is checked against the
 * public key derived from the seed, so a mistyped or damaged key is refused here rather than by
 * the server. Returns {name, keyId, publicKey, engine, sign(bytes)}. */
export async function importSignerKey(text, engine = null) {
  const parts = splitKey(String(text).trim(), 5);
  if (!parts || parts[0] !== "PRIVATE" || parts[1] !== "KEY") {
    throw new KeyError("key-format", "not a PRIVATE+KEY+<name>+<hash>+<key> string");
  }
  const [, , name, hash8, encoded] = parts;
  if (!validName(name) || !/^[0-9a-f]{8}$/.test(hash8)) {
    throw new KeyError("key-format", "bad key name or hash");
  }
  let raw;
  try {
    raw = b64decode(encoded);
  } catch {
    throw new KeyError("key-format", "key is not base64");
  }
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) {
    throw new KeyError("key-format", "not an Ed25519 key");
  }
  const ed25519 = engine ?? (await ed25519Engine());
  let signer;
  try {
    signer = await ed25519.signer(raw.subarray(1));
  } finally {
    raw.fill(0);
  }
  if (hex(await keyHash(name, signer.publicKey)) !== hash8) {
    throw new KeyError("key-hash", "the key hash does not match the key");
  }
  return {
    name,
    keyId: `${name}+${hash8}`,
    publicKey: signer.publicKey,
    engine: ed25519.name,
    sign: signer.sign,
  };
}

/** The signed envelope of `payload`: Ed25519 over "uchast/v1\n" + RFC 8785 canonical JSON. */
export async function signEnvelope(payload, signer) {
  const message = concat(SIGNING_CONTEXT, utf8(canonicalize(payload)));
  return { payload, key: signer.keyId, sig: b64encode(await signer.sign(message)) };
}

/** Parse a verifier key "<name>+<hex8>+<base64(0x01 || public key)>", checking its hash. */
export async function parseVerifierKey(vkey) {
  const parts = splitKey(String(vkey).trim(), 3);
  if (!parts) throw new KeyError("key-format", "not a <name>+<hash>+<key> string");
  const [name, hash8, encoded] = parts;
  if (!validName(name) || !/^[0-9a-f]{8}$/.test(hash8)) {
    throw new KeyError("key-format", "bad key name or hash");
  }
  const raw = b64decode(encoded);
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) throw new KeyError("key-format", "not Ed25519");
  const publicKey = raw.slice(1);
  const hash = await keyHash(name, publicKey);
  if (hex(hash) !== hash8) throw new KeyError("key-hash", "the key hash does not match the key");
  return { name, hash, keyId: `${name}+${hash8}`, publicKey };
}

// ---------------------------------------------------------------- signed notes, checkpoints

/** Split a C2SP signed note into its text and signature lines (not verified). */
export function parseNote(note) {
  if (typeof note !== "string" || /[\u0000-\u0009\u000b-\u001f]/.test(note)) {
    throw new Error("note has control characters");
  }
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("note has no blank line before its signatures");
  const body = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block || !block.endsWith("\n")) throw new Error("note has no signature lines");
  const signatures = block
    .slice(0, -1)
    .split("\n")
    .map((line) => {
      const match = /^\u2014 (\S+) (\S+)$/u.exec(line);
      if (!match) throw new Error(`bad signature line: ${line}`);
      const raw = b64decode(match[2]);
      if (raw.length < 5) throw new Error("signature too short");
      return { name: match[1], hash: raw.slice(0, 4), signature: raw.slice(4) };
    });
  return { body, signatures };
}

/** Parse a C2SP tlog-checkpoint note text: origin, size, root (32 bytes), extensions. */
export function parseCheckpoint(body) {
  if (!body.endsWith("\n")) throw new Error("checkpoint must end with a newline");
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3 || lines.some((line) => line === "")) throw new Error("bad checkpoint");
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText)) throw new Error("bad checkpoint size");
  const root = b64decode(rootText);
  if (root.length !== 32) throw new Error("checkpoint root must be 32 bytes");
  return { origin, size: BigInt(sizeText), root, rootText, extensions };
}

/** Verify `note` carries a valid Ed25519 signature by the verifier key `vkey` and return
 * {checkpoint, signer}; throws if no line of that key verifies, or one of its lines fails. */
export async function verifyCheckpointNote(note, vkey) {
  const key = await parseVerifierKey(vkey);
  const { body, signatures } = parseNote(note);
  const ed25519 = await ed25519Engine();
  let verified = 0;
  for (const line of signatures) {
    if (line.name !== key.name || !equalBytes(line.hash, key.hash)) continue;
    const ok = await ed25519.verify(key.publicKey, line.signature, utf8(body));
    if (!ok) throw new Error(`the signature by ${key.keyId} does not verify`);
    verified += 1;
  }
  if (!verified) throw new Error(`the note carries no signature by ${key.keyId}`);
  return { checkpoint: parseCheckpoint(body), signer: key };
}

// ---------------------------------------------------------------- RFC 9162 Merkle trees

export async function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0x00), leaf));
}

export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(0x01), left, right));
}

/** The leaf hash of a log entry: SHA-256(0x00 || RFC 8785 canonical JSON of the entry). */
export function entryLeafHash(entry) {
  return leafHash(utf8(canonicalize(entry)));
}

/** RFC 9162 §2.1.3.2: the root that `proof` leads to from the leaf hash at `index` in a tree of
 * `size` leaves; throws if the proof has the wrong length for them. */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error("leaf index is beyond the tree size");
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("inclusion proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("inclusion proof is too short");
  return r;
}

/** RFC 9162 §2.1.4.2: does `proof` show that the tree of `newSize` leaves (root `newRoot`)
 * extends the tree of `oldSize` leaves (root `oldRoot`)? Returns null when it does, else why
 * not (tally/audit/crypto.py check_consistency, in the browser). */
export async function consistencyProblem(oldSize, newSize, oldRoot, newRoot, proof) {
  const m = BigInt(oldSize);
  const n = BigInt(newSize);
  if (!(m > 0n && m <= n)) return `no consistency proof exists from size ${m} to ${n}`;
  if (m === n) {
    if (proof.length) return "equal sizes need an empty proof";
    return equalBytes(oldRoot, newRoot) ? null : "equal sizes but different roots";
  }
  if (!proof.length || proof.some((h) => h.length !== 32)) return "the proof is empty or malformed";
  const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return "the proof is too long";
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) return "the proof is too short";
  if (!equalBytes(fr, oldRoot)) return "the proof does not lead to the old root";
  if (!equalBytes(sr, newRoot)) return "the proof does not lead to the new root";
  return null;
}

// ---------------------------------------------------------------- receipt codes

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** The receipt code of the ballot whose signature is `signature` (votes/receipts.py):
 * Crockford base32 of the first 50 bits of SHA-256("uchast/receipt\n" || signature). */
export async function receiptCode(signature) {
  const digest = await sha256(concat(utf8("uchast/receipt\n"), signature));
  let value = 0n;
  for (const byte of digest.slice(0, 7)) value = (value << 8n) | BigInt(byte);
  value >>= 6n;
  let chars = "";
  for (let shift = 45n; shift >= 0n; shift -= 5n) chars += CROCKFORD[Number((value >> shift) & 31n)];
  return `${chars.slice(0, 5)}-${chars.slice(5)}`;
}

/** A typed code in canonical form (upper case, look-alikes mapped), or null. */
export function normaliseReceiptCode(text) {
  const compact = String(text)
    .toUpperCase()
    .replace(/[\s-]/g, "")
    .replace(/[IL]/g, "1")
    .replace(/O/g, "0")
    .replace(/U/g, "V");
  const code = `${compact.slice(0, 5)}-${compact.slice(5)}`;
  return /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/.test(code) ? code : null;
}
