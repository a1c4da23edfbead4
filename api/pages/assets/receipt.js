// A voter checks a receipt code. The server sends the entry, its inclusion proof and the latest
// signed checkpoint; this page trusts none of it and verifies, with WebCrypto:
//   1. the code is the one this entry's signature gives (votes/receipts.py);
//   2. the leaf hash is SHA-256(0x00 || RFC 8785 canonical JSON of the entry);
//   3. the checkpoint note carries a valid Ed25519 signature by the log key (C2SP signed-note),
//      and names this election's log;
//   4. the RFC 9162 inclusion proof leads from that leaf to the checkpoint's root hash.
// The log key comes from /log/key, or from ?vkey= when the voter pins the published one.

import {
  Problem,
  applyI18n,
  b64decode,
  b64encode,
  chooseElection,
  dateTime,
  electionUrl,
  equalBytes,
  getJSON,
  h,
  initLang,
  number,
  onLangChange,
  pick,
  request,
  t,
} from "./common.js";
import {
  consistencyProblem,
  entryLeafHash,
  normaliseReceiptCode,
  receiptCode,
  rootFromInclusionProof,
  verifyCheckpointNote,
} from "./crypto.js";

const $ = (id) => document.getElementById(id);

const state = {
  electionId: null,
  election: null,
  logKey: null, // {vkey, origin}
  memory: null, // the last comparison with the remembered checkpoint, and the checkpoint compared
  result: null, // what the last check found, re-rendered on a language change
};

async function check(name, run) {
  try {
    const value = await run();
    return { name, ok: value !== false, value };
  } catch (error) {
    return { name, ok: false, error: String(error?.message || error) };
  }
}

async function verify(answer) {
  const vkey = new URLSearchParams(location.search).get("vkey") || state.logKey.vkey;
  const entry = answer.entry;
  const checks = [];
  let leaf = null;
  if (entry) {
    checks.push(
      await check("receipt.check.code", async () => (await receiptCode(b64decode(entry.envelope.sig))) === answer.receipt),
    );
    checks.push(
      await check("receipt.check.leaf", async () => {
        leaf = await entryLeafHash(entry);
        return equalBytes(leaf, b64decode(answer.leaf_hash));
      }),
    );
  } else {
    // Sealed results: the entry is withheld until voting closes, so only the leaf hash the
    // server names can be shown to be in the signed log; the code and the picks are checked
    // against it after the close.
    leaf = b64decode(answer.leaf_hash);
  }
  let checkpoint = null;
  let signer = null;
  checks.push(
    await check("receipt.check.signature", async () => {
      ({ checkpoint, signer } = await verifyCheckpointNote(answer.checkpoint, vkey));
      return checkpoint.origin === state.logKey.origin;
    }),
  );
  checks.push(
    await check("receipt.check.inclusion", async () => {
      if (!checkpoint || !leaf) return false;
      if (BigInt(answer.proof.size) !== checkpoint.size || answer.proof.index !== answer.position) return false;
      const hashes = answer.proof.hashes.map(b64decode);
      const root = await rootFromInclusionProof(answer.position, checkpoint.size, leaf, hashes);
      return equalBytes(root, checkpoint.root);
    }),
  );
  const ok = checks.every((c) => c.ok);
  if (ok) await checkLog(checkpoint, vkey);
  return { answer, checks, checkpoint, signer, vkey, ok };
}

// ---------------------------------------------------------------- the log this browser saw

// This browser keeps the last checkpoint it verified, per log origin: {size, root, vkey}. On
// each later visit the new checkpoint must extend it (RFC 9162 consistency proof, checked here)
// and be signed by the same log key, so a log that was rewritten or rolled back since, or a server
// that now presents another key for the same log, shows a warning instead of a quiet "verified".
function memoryKey() {
  return `uchast.checkpoint.${state.logKey.origin}`;
}

function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(memoryKey()));
    if (saved && /^[0-9]+$/.test(String(saved.size)) && typeof saved.root === "string") {
      const vkey = typeof saved.vkey === "string" ? saved.vkey : null;
      return { size: BigInt(saved.size), root: b64decode(saved.root), vkey };
    }
  } catch {
    // nothing usable remembered: start afresh
  }
  return null;
}

function remember(checkpoint, vkey) {
  try {
    const memory = { size: String(checkpoint.size), root: b64encode(checkpoint.root), vkey };
    localStorage.setItem(memoryKey(), JSON.stringify(memory));
  } catch {
    // private mode: nothing kept
  }
}

/** Why the log cannot prove that the tree of `newer` extends the tree of `older` (both
 * {size, root}), or null when it proves it. */
async function extensionProblem(older, newer) {
  try {
    const hashes =
      older.size === newer.size
        ? []
        : (await getJSON(electionUrl(state.electionId, `/log/proof/consistency?old=${older.size}&new=${newer.size}`))).hashes.map(b64decode);
    return await consistencyProblem(older.size, newer.size, older.root, newer.root, hashes);
  } catch (error) {
    return String(error?.message || error);
  }
}

async function compareWithMemory(checkpoint, vkey) {
  const old = remembered();
  const facts = { old: old ? number(Number(old.size)) : "", size: number(Number(checkpoint.size)) };
  if (!old) {
    remember(checkpoint, vkey);
    return { state: "first", ...facts };
  }
  // Another key for the same log: whatever it signs proves nothing about what the old key signed.
  if (old.vkey && old.vkey !== vkey) return { state: "key-changed", ...facts };
  if (checkpoint.size < old.size) {
    // An older checkpoint is no alarm by itself (a receipt is proved against the published,
    // cosigned one, which may lag the latest): the log must prove that the one remembered here
    // extends it. A log rolled back below the remembered size cannot.
    const problem = await extensionProblem(checkpoint, old);
    return problem ? { state: "rollback", problem, ...facts } : { state: "behind", ...facts };
  }
  const problem = await extensionProblem(old, checkpoint);
  if (problem) return { state: "inconsistent", problem, ...facts };
  remember(checkpoint, vkey);
  return { state: checkpoint.size === old.size ? "unchanged" : "consistent", ...facts };
}

/** Compare a verified checkpoint with the remembered one, once per checkpoint per page. */
async function checkLog(checkpoint, vkey) {
  const last = state.memory;
  if (last && last.checkpoint.size === checkpoint.size && equalBytes(last.checkpoint.root, checkpoint.root)) return;
  state.memory = { ...(await compareWithMemory(checkpoint, vkey)), checkpoint };
}

/** On arrival, before any code is typed: the log's current checkpoint, verified with the log
 * key, against the one remembered from the last visit. */
async function checkLogOnArrival() {
  const vkey = new URLSearchParams(location.search).get("vkey") || state.logKey.vkey;
  let checkpoint;
  try {
    ({ checkpoint } = await verifyCheckpointNote(await request(electionUrl(state.electionId, "/log/checkpoint")), vkey));
  } catch {
    return; // no checkpoint yet, or one that does not verify: checking a code says which
  }
  if (checkpoint.origin === state.logKey.origin) await checkLog(checkpoint, vkey);
}

function renderMemory() {
  const memory = state.memory;
  const box = $("log-memory");
  box.hidden = !memory;
  if (!memory) return;
  const alarm = ["rollback", "inconsistent", "key-changed"].includes(memory.state);
  box.className = alarm ? "banner bad" : "banner note";
  box.dataset.state = memory.state;
  box.textContent = t(`receipt.memory.${memory.state}`, memory) + (memory.problem ? ` (${memory.problem})` : "");
}

// ---------------------------------------------------------------- rendering

function setVerdict(kind, headline, detail = "") {
  const box = $("verdict");
  box.hidden = false;
  box.className = `status ${kind}`;
  box.dataset.verdict = kind;
  $("verdict-headline").textContent = headline;
  $("verdict-detail").textContent = detail;
}

function projectLine(id) {
  const project = state.election?.projects.find((p) => p.id === id);
  return project ? `${id} — ${pick(project.title)}` : id;
}

function pointTitle(id) {
  const point = state.election?.polling_points.find((p) => p.id === id);
  return point ? `${pick(point.title)} (${id})` : id;
}

function render() {
  const result = state.result;
  if (!result) {
    renderMemory();
    return;
  }
  if (result.problem) {
    const p = result.problem;
    if (p.code === "unknown-receipt") setVerdict("refused", t("receipt.notFound"), t("receipt.notFound.detail"));
    else if (p.code === "bad-receipt") setVerdict("refused", t("receipt.badCode"));
    else if (p.code === "no-checkpoint") setVerdict("busy", t("receipt.noCheckpoint"));
    else setVerdict("refused", t("receipt.failed"), p instanceof Problem ? p.message_() : String(p.message || p));
    $("checks-card").hidden = true;
    $("details-card").hidden = true;
    renderMemory();
    return;
  }
  const { answer, checks, checkpoint, ok, vkey } = result;
  const zone = state.election?.timezone;
  if (!ok) setVerdict("refused", t("receipt.verifyFailed"), t("receipt.verifyFailed.detail"));
  else if (answer.status === "voided") {
    setVerdict("spoiled", t("receipt.voided"), t("receipt.voided.detail", { position: answer.voided_by ?? "?" }));
  } else if (answer.status === "awaiting-second-keying") {
    setVerdict("busy", t("receipt.awaiting"), t("receipt.awaiting.detail", { position: answer.position }));
  } else if (answer.status === "disputed") {
    setVerdict("spoiled", t("receipt.disputed"), t("receipt.disputed.detail", { position: answer.position }));
  } else if (answer.status !== "counted") {
    setVerdict("refused", t("receipt.failed"), String(answer.status));
  } else setVerdict("ok", t(answer.entry ? "receipt.counted" : "receipt.countedSealed"), t("receipt.counted.detail", { position: answer.position, size: number(Number(checkpoint.size)) }));

  renderMemory();
  $("proof-link").hidden = !answer.entry;
  $("proof-link").href = electionUrl(state.electionId, `/receipts/${encodeURIComponent(answer.receipt)}/proof`);
  $("proof-link").download = `${answer.receipt}.tlog-proof`;

  $("checks-card").hidden = false;
  $("checks").replaceChildren(
    ...checks.map((c) =>
      h(
        "li",
        { class: c.ok ? "pass" : "fail", dataset: { check: c.name } },
        h("span", { class: "mark", "aria-hidden": "true" }, c.ok ? "✔" : "✘"),
        h("span", {}, t(c.name), c.error ? h("span", { class: "hint" }, ` (${c.error})`) : null),
      ),
    ),
  );

  const payload = answer.entry?.envelope.payload ?? { type: answer.type };
  $("sealed-note").hidden = Boolean(answer.entry);
  if (!answer.entry) $("sealed-note").textContent = t("receipt.sealed", { time: dateTime(answer.sealed_until, zone), zone: zone ?? "" });
  const rows = [
    ["receipt.d.code", answer.receipt, "mono"],
    ["receipt.d.status", t(`receipt.status.${answer.status}`)],
    ["receipt.d.type", t(`type.${payload.type}`)],
  ];
  if (Array.isArray(payload.projects)) rows.push(["receipt.d.projects", payload.projects.map(projectLine).join("\n"), "pre"]);
  if (payload.points && typeof payload.points === "object") {
    const lines = Object.entries(payload.points).map(([id, points]) => `${projectLine(id)}: ${t("receipt.d.pointsOf", { points })}`);
    rows.push(["receipt.d.points", lines.join("\n"), "pre"]);
  }
  if (Array.isArray(payload.ranking)) {
    rows.push(["receipt.d.ranking", payload.ranking.map((id, i) => `${i + 1}. ${projectLine(id)}`).join("\n"), "pre"]);
  }
  if (payload.polling_point) rows.push(["receipt.d.point", pointTitle(payload.polling_point)]);
  if (payload.reason) rows.push(["receipt.d.reason", t(`reason.${payload.reason}`)]);
  if (payload.cast_at) rows.push(["receipt.d.castAt", dateTime(payload.cast_at, zone)]);
  if (answer.entry?.recorded_at) rows.push(["receipt.d.recordedAt", dateTime(answer.entry.recorded_at, zone)]);
  rows.push(["receipt.d.position", String(answer.position)]);
  if (checkpoint) {
    rows.push(["receipt.d.checkpoint", `${checkpoint.origin} · ${number(Number(checkpoint.size))}`]);
    rows.push(["receipt.d.root", checkpoint.rootText, "mono"]);
  }
  // The server's word: its witness policy's quorum cosigned this checkpoint (lines in the note).
  if (typeof answer.cosigned === "boolean") rows.push(["receipt.d.cosigned", t(`receipt.cosigned.${answer.cosigned}`)]);
  if (answer.entry) rows.push(["receipt.d.signedBy", answer.entry.envelope.key, "mono"]);
  rows.push(["receipt.d.logKey", vkey, "mono"]);
  $("details").replaceChildren(
    ...rows.flatMap(([key, value, cls]) => [h("dt", {}, t(key)), h("dd", { class: cls === "pre" ? "pre" : cls || "" }, value)]),
  );
  $("details-card").hidden = false;
  $("raw").textContent = JSON.stringify({ entry: answer.entry, proof: answer.proof, checkpoint: answer.checkpoint }, null, 2);
}

// ---------------------------------------------------------------- flow

async function lookUp(typed) {
  const code = normaliseReceiptCode(typed);
  if (!code) {
    state.result = { problem: new Problem(400, { code: "bad-receipt" }) };
    render();
    return;
  }
  $("code").value = code;
  setVerdict("busy", t("receipt.checking"));
  try {
    const answer = await getJSON(electionUrl(state.electionId, `/receipts/${encodeURIComponent(code)}`));
    state.result = await verify(answer);
  } catch (error) {
    state.result = { problem: error };
  }
  render();
  document.body.dataset.checked = code;
}

async function main() {
  initLang();
  $("plain-http").hidden = globalThis.isSecureContext !== false;
  onLangChange(() => {
    if (state.election) $("election-title").textContent = pick(state.election.title);
    render();
  });
  $("receipt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    lookUp($("code").value);
  });
  try {
    const { id } = await chooseElection();
    if (!id) throw new Error(t("error.noElection"));
    state.electionId = id;
    [state.election, state.logKey] = await Promise.all([
      getJSON(electionUrl(id)),
      getJSON(electionUrl(id, "/log/key")),
    ]);
    $("election-title").textContent = pick(state.election.title);
  } catch (error) {
    $("fatal").textContent = error instanceof Problem ? error.message_() : String(error.message || error);
    $("fatal").hidden = false;
    return;
  }
  applyI18n();
  await checkLogOnArrival();
  renderMemory();
  document.body.dataset.ready = "true";
  const fromQuery = new URLSearchParams(location.search).get("code");
  if (fromQuery) await lookUp(fromQuery);
  $("code").focus();
}

main();
