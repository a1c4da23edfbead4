// The polling-point clerk's page: load the clerk key (kept in this page's memory only), type the
// voter's identity number and the project numbers, Enter; see at once what the log decided.
//
// Every request is a signed envelope made here: Ed25519 (WebCrypto) over "uchast/v1\n" + the
// RFC 8785 canonical JSON of the payload. The identity number is sent once, beside a signed
// voter-lookup (type, election, polling point, nonce: the number is in no signed payload), and is
// never logged or stored: the field is cleared as soon as it is read. The lookup itself is an
// entry of the public log (this key, this point, this time, the voter's token); it is refused
// outside the paper window, for a voter who can add nothing more, and past a human's pace.

import {
  Problem,
  applyI18n,
  chooseElection,
  electionUrl,
  getJSON,
  h,
  initLang,
  money,
  onLangChange,
  pick,
  postJSON,
  t,
  time,
  uuid,
} from "./common.js";
import { KeyError, importSignerKey, signEnvelope } from "./crypto.js";

const $ = (id) => document.getElementById(id);

const state = {
  signer: null, // {keyId, sign}: in memory only
  electionId: null,
  election: null, // the definition
  projects: new Map(), // id -> project
  clockOffset: 0, // server clock minus this browser's, in ms
  busy: false,
  status: { kind: "idle", headline: "clerk.status.ready" },
  pending: null, // {url, envelope} of a ballot whose answer was lost: resent with the same nonce
  recent: [],
};

// ---------------------------------------------------------------- status

const HEADLINES = {
  "already-voted": "clerk.status.alreadyVoted",
  "limit-exceeded": "clerk.status.limit",
  "project-repeated": "clerk.status.repeated",
  "unknown-project": "clerk.status.unknownProject",
  "empty-ballot": "clerk.status.empty",
  "outside-window": "clerk.status.window",
  "paper-deadline-passed": "clerk.status.window",
  "rate-limited": "clerk.status.rateLimited",
  "nonce-reused": "clerk.status.refused",
  "bad-identity": "clerk.status.badIdentity",
  "bad-signature": "clerk.status.keyRefused",
  "unknown-key": "clerk.status.keyRefused",
  "key-revoked": "clerk.status.keyRefused",
  "role-forbidden": "clerk.status.keyRefused",
  "wrong-polling-point": "clerk.status.wrongPoint",
  "unknown-polling-point": "clerk.status.wrongPoint",
  network: "clerk.status.network",
};

function setStatus(status) {
  state.status = status;
  renderStatus();
}

function renderStatus() {
  const { kind, headline, vars, code, problem, detail, sent } = state.status;
  const box = $("status");
  box.className = `status ${kind}`;
  $("status-headline").textContent = t(headline, vars);
  const codeEl = $("status-code");
  codeEl.hidden = !code;
  codeEl.textContent = code || "";
  const detailEl = $("status-detail");
  detailEl.replaceChildren();
  if (problem) {
    detailEl.append(problem.message_());
    if (problem.code && problem.status !== 0) detailEl.append(" ", h("span", { class: "problem-code" }, `(${problem.code})`));
  } else if (detail) {
    detailEl.append(t(detail, vars));
  }
  if (sent?.length) detailEl.append(h("span", { class: "status-sent" }, t("clerk.status.sent", { projects: sent.join(" ") })));
  if (state.pending && kind === "refused" && problem?.status === 0) {
    const retry = h("button", { type: "button", class: "primary", id: "retry" }, t("clerk.retry"));
    retry.addEventListener("click", () => resend());
    detailEl.append(" ", retry);
  }
}

function showProblem(problem, sent = null) {
  if (!(problem instanceof Problem)) {
    const text = String(problem?.message || problem);
    problem = new Problem(-1, { code: problem?.code || "page-error", message_en: text, message_uk: text });
  }
  setStatus({ kind: "refused", headline: HEADLINES[problem.code] || "clerk.status.refused", problem, sent });
}

// ---------------------------------------------------------------- key

async function loadKey(text) {
  const errorEl = $("key-error");
  errorEl.hidden = true;
  try {
    state.signer = await importSignerKey(text);
  } catch (error) {
    errorEl.textContent = error instanceof KeyError ? t("clerk.key.bad") : t("error.crypto");
    errorEl.hidden = false;
    return;
  } finally {
    $("key-text").value = "";
    $("key-file").value = "";
  }
  $("key-id").textContent = state.signer.keyId;
  $("key-form").hidden = true;
  $("key-loaded").hidden = false;
  const match = /^clerk\.([^.]+)\./.exec(state.signer.name);
  if (match && state.election?.polling_points.some((p) => p.id === match[1])) {
    $("point-select").value = match[1];
    rememberPoint();
  }
  setStatus({ kind: "idle", headline: "clerk.status.ready" });
  $("identity").focus();
}

function forgetKey() {
  state.signer = null;
  $("key-form").hidden = false;
  $("key-loaded").hidden = true;
  setStatus({ kind: "idle", headline: "clerk.status.needKey" });
  $("key-text").focus();
}

// ---------------------------------------------------------------- election and clock

function rememberPoint() {
  try {
    localStorage.setItem(`uchast.point.${state.electionId}`, $("point-select").value);
  } catch {
    // not remembered
  }
}

function renderSetup() {
  const election = state.election;
  if (!election) return;
  $("election-title").textContent = pick(election.title);
  const select = $("point-select");
  const chosen = select.value;
  select.replaceChildren(
    ...election.polling_points.map((p) => h("option", { value: p.id }, `${pick(p.title)} (${p.id})`)),
  );
  if (chosen) select.value = chosen;
}

async function loadElection(id) {
  state.electionId = id;
  state.election = await getJSON(electionUrl(id));
  state.projects = new Map(state.election.projects.map((p) => [p.id, p]));
  renderSetup();
  let saved = null;
  try {
    saved = localStorage.getItem(`uchast.point.${id}`);
  } catch {
    saved = null;
  }
  if (saved && state.election.polling_points.some((p) => p.id === saved)) $("point-select").value = saved;
  renderPreview();
}

async function syncClock() {
  const before = Date.now();
  try {
    const { now } = await getJSON("/v1/clock");
    const after = Date.now();
    state.clockOffset = new Date(now).getTime() - (before + after) / 2;
  } catch {
    // keep the last offset
  }
  renderClock();
}

function renderClock() {
  if (!state.election) return;
  const now = new Date(Date.now() + state.clockOffset);
  const text = new Intl.DateTimeFormat(document.documentElement.lang === "en" ? "en-GB" : "uk-UA", {
    dateStyle: "medium",
    timeStyle: "medium",
    timeZone: state.election.timezone,
  }).format(now);
  $("server-clock").textContent = t("clerk.serverClock", { time: text });
}

/** Minutes east of UTC of `timeZone` at the instant `date`. */
function zoneOffset(date, timeZone) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone, timeZoneName: "longOffset" })
    .formatToParts(date)
    .find((part) => part.type === "timeZoneName").value;
  const match = /GMT([+-])(\d{2}):?(\d{2})?/.exec(name);
  if (!match) return 0;
  return (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3] || 0));
}

/** `date` as ISO 8601 wall time in `timeZone` with its offset: 2018-10-05T12:00:00+03:00. */
function isoInZone(date, timeZone) {
  const offset = zoneOffset(date, timeZone);
  const wall = new Date(Math.floor(date.getTime() / 1000) * 1000 + offset * 60000);
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  const pad = (n) => String(n).padStart(2, "0");
  return `${wall.toISOString().slice(0, 19)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** The instant of a wall-clock time (datetime-local value) in `timeZone`. */
function wallToInstant(value, timeZone) {
  const [datePart, timePart = "00:00"] = value.split("T");
  const [y, m, d] = datePart.split("-").map(Number);
  const [hh, mm, ss = 0] = timePart.split(":").map(Number);
  const asUtc = Date.UTC(y, m - 1, d, hh, mm, ss);
  let guess = asUtc - zoneOffset(new Date(asUtc), timeZone) * 60000;
  guess = asUtc - zoneOffset(new Date(guess), timeZone) * 60000;
  return new Date(guess);
}

function castAt() {
  const zone = state.election.timezone;
  const typed = $("cast-at").value;
  const instant = typed ? wallToInstant(typed, zone) : new Date(Date.now() + state.clockOffset);
  return isoInZone(instant, zone);
}

// ---------------------------------------------------------------- projects

// A clerk on the Ukrainian keyboard layout who types "Д07" meant "L07": letters by key position.
const UK_LAYOUT = Object.fromEntries(
  [..."йцукенгшщзфівапролдячсмить"].map((ch, i) => [ch, "qwertyuiopasdfghjklzxcvbnm"[i]]),
);

function latin(token) {
  return [...token.toLowerCase()].map((ch) => UK_LAYOUT[ch] ?? ch).join("").toUpperCase();
}

/** The project id a typed token means: exact, or letters plus the same number ("l7" → "L07"). */
function resolveProject(token) {
  const upper = latin(token);
  if (state.projects.has(upper)) return upper;
  const match = /^([A-Z]+)0*(\d+)$/.exec(upper);
  if (match) {
    for (const id of state.projects.keys()) {
      const other = /^([A-Z]+)0*(\d+)$/.exec(id);
      if (other && other[1] === match[1] && Number(other[2]) === Number(match[2])) return id;
    }
  }
  return upper;
}

function typedProjects() {
  return $("projects")
    .value.split(/[\s,;]+/)
    .filter(Boolean)
    .map(resolveProject);
}

function renderPreview() {
  const list = $("preview");
  list.replaceChildren();
  if (!state.election) return;
  const ids = typedProjects();
  const seen = new Set();
  const perCategory = new Map();
  for (const id of ids) {
    const project = state.projects.get(id);
    let warning = null;
    if (!project) warning = t("clerk.preview.unknown");
    else if (seen.has(id)) warning = t("clerk.preview.repeated");
    seen.add(id);
    if (project) perCategory.set(project.category, (perCategory.get(project.category) || 0) + 1);
    list.append(
      h(
        "li",
        { class: warning ? "warn" : "" },
        h("strong", {}, id),
        " ",
        project ? `${pick(project.title)} · ${money(project.cost_kopecks)}` : "",
        warning ? h("span", { class: "tag bad" }, warning) : null,
      ),
    );
  }
  for (const category of state.election.categories) {
    const count = perCategory.get(category.id) || 0;
    if (!count) continue;
    const over = count > category.max_picks;
    list.append(
      h(
        "li",
        { class: over ? "warn summary" : "summary" },
        t("clerk.preview.category", { category: pick(category.title), count, max: category.max_picks }),
        over ? h("span", { class: "tag bad" }, t("clerk.preview.over")) : null,
      ),
    );
  }
}

// ---------------------------------------------------------------- submitting

function rememberEntry(kind, answer, projects = null, reason = null) {
  state.recent.unshift({ at: new Date(), kind, projects, reason, receipt: kind === "accepted" ? answer?.receipt || null : null, position: answer?.position ?? null });
  state.recent.length = Math.min(state.recent.length, 12);
  renderRecent();
}

function renderRecent() {
  $("recent-body").replaceChildren(
    ...state.recent.map((row) =>
      h(
        "tr",
        { class: row.kind },
        h("td", {}, time(row.at)),
        h("td", {}, t(`clerk.recent.${row.kind}`)),
        row.projects ? h("td", { class: "mono" }, row.projects.join(" ")) : h("td", {}, row.reason ? t(`reason.${row.reason}`) : "—"),
        h("td", { class: "mono" }, row.receipt || "—"),
        h("td", {}, row.position ?? "—"),
      ),
    ),
  );
}

function ready() {
  if (!state.signer) {
    setStatus({ kind: "refused", headline: "clerk.status.needKey" });
    $("key-text").focus();
    return false;
  }
  if (!state.election || !$("point-select").value) {
    setStatus({ kind: "refused", headline: "clerk.status.needPoint" });
    return false;
  }
  return !state.busy;
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["submit", "spoiled-submit", "spoiled-open"]) $(id).disabled = busy;
  if (busy) setStatus({ kind: "busy", headline: "clerk.status.sending" });
}

async function sendBallot(url, envelope, kind) {
  const { projects = null, reason = null } = envelope.payload;
  state.pending = { url, envelope, kind, projects, reason };
  const answer = await postJSON(url, envelope);
  state.pending = null;
  return answer;
}

function accepted(kind, answer, projects = null, reason = null) {
  if (kind === "spoiled") {
    setStatus({ kind: "spoiled", headline: answer.replay ? "clerk.status.replay" : "clerk.status.spoiledSaved", detail: "clerk.status.position", vars: { position: answer.position } });
  } else {
    setStatus({
      kind: "ok",
      headline: answer.replay ? "clerk.status.replay" : "clerk.status.accepted",
      code: answer.receipt,
      detail: "clerk.status.receiptHint",
      vars: { position: answer.position },
      sent: projects,
    });
  }
  rememberEntry(kind, answer, projects, reason);
}

async function submitBallot() {
  const identityEl = $("identity");
  const projectsEl = $("projects");
  if (!ready()) return;
  const projects = typedProjects();
  if (!identityEl.value.trim()) {
    setStatus({ kind: "refused", headline: "clerk.status.needIdentity" });
    identityEl.focus();
    return;
  }
  if (!projects.length) {
    setStatus({ kind: "refused", headline: "clerk.status.needProjects" });
    projectsEl.focus();
    return;
  }
  state.pending = null; // a new ballot supersedes one whose answer was lost
  setBusy(true);
  const election = state.electionId;
  try {
    // The number goes beside the signed lookup (never into it) and leaves the page's fields at once.
    const lookup = await signEnvelope(
      { type: "voter-lookup", election, polling_point: $("point-select").value, nonce: uuid() },
      state.signer,
    );
    const identity = identityEl.value;
    identityEl.value = "";
    const { voter } = await postJSON(electionUrl(election, "/voter-tokens"), { envelope: lookup, identity });
    const envelope = await signEnvelope(
      {
        type: "paper-ballot",
        election,
        voter,
        projects,
        polling_point: $("point-select").value,
        cast_at: castAt(),
        nonce: uuid(),
      },
      state.signer,
    );
    const answer = await sendBallot(electionUrl(election, "/paper-ballots"), envelope, "accepted");
    accepted("accepted", answer, projects);
  } catch (error) {
    showProblem(error, projects);
    if (!(error instanceof Problem) || error.status !== 0) rememberEntry("refused", null, projects);
  } finally {
    // Both fields start empty for the next ballot: a refused ballot's projects must not carry
    // over to the next voter by a quick Enter. The status and the list show what was sent.
    identityEl.value = "";
    projectsEl.value = "";
    renderPreview();
    setBusy(false);
    identityEl.focus();
  }
}

async function resend() {
  const pending = state.pending;
  if (!pending || state.busy) return;
  setBusy(true);
  try {
    const answer = await sendBallot(pending.url, pending.envelope, pending.kind);
    accepted(pending.kind, answer, pending.projects, pending.reason);
  } catch (error) {
    showProblem(error);
  } finally {
    setBusy(false);
    $("identity").focus();
  }
}

async function submitSpoiled() {
  if (!ready()) return;
  const reason = document.querySelector('input[name="reason"]:checked')?.value || "other";
  state.pending = null;
  setBusy(true);
  try {
    const envelope = await signEnvelope(
      {
        type: "spoiled-ballot",
        election: state.electionId,
        polling_point: $("point-select").value,
        reason,
        cast_at: castAt(),
        nonce: uuid(),
      },
      state.signer,
    );
    const answer = await sendBallot(electionUrl(state.electionId, "/paper-ballots"), envelope, "spoiled");
    accepted("spoiled", answer, null, reason);
    closeSpoiled();
  } catch (error) {
    showProblem(error);
  } finally {
    setBusy(false);
  }
}

function openSpoiled() {
  $("ballot-form").hidden = true;
  $("spoiled-form").hidden = false;
  $("identity").value = "";
  document.querySelector('input[name="reason"]:checked')?.focus();
}

function closeSpoiled() {
  $("spoiled-form").hidden = true;
  $("ballot-form").hidden = false;
  $("identity").focus();
}

function clearEntry() {
  $("identity").value = "";
  $("projects").value = "";
  state.pending = null;
  renderPreview();
  setStatus({ kind: "idle", headline: state.signer ? "clerk.status.ready" : "clerk.status.needKey" });
  $("identity").focus();
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadKey($("key-text").value);
  });
  $("key-file").addEventListener("change", async () => {
    const file = $("key-file").files[0];
    if (file) loadKey(await file.text());
  });
  $("key-forget").addEventListener("click", forgetKey);
  $("point-select").addEventListener("change", rememberPoint);
  $("election-select").addEventListener("change", async () => {
    const id = $("election-select").value;
    const url = new URL(location.href);
    url.searchParams.set("election", id);
    history.replaceState(null, "", url);
    await loadElection(id);
  });
  $("projects").addEventListener("input", renderPreview);
  $("ballot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // Enter on the identity field moves on to the projects while they are still empty.
    if (document.activeElement === $("identity") && !$("projects").value.trim()) {
      $("projects").focus();
      return;
    }
    submitBallot();
  });
  $("clear").addEventListener("click", clearEntry);
  $("spoiled-open").addEventListener("click", openSpoiled);
  $("spoiled-cancel").addEventListener("click", closeSpoiled);
  $("spoiled-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitSpoiled();
  });
  document.addEventListener("keydown", (event) => {
    if (event.altKey && event.code === "KeyS") {
      event.preventDefault();
      openSpoiled();
    } else if (event.key === "Escape") {
      if (!$("spoiled-form").hidden) closeSpoiled();
      else if (!$("key-loaded").hidden) clearEntry();
    } else if (!$("spoiled-form").hidden && ["1", "2", "3"].includes(event.key)) {
      const radios = document.querySelectorAll('input[name="reason"]');
      const radio = radios[Number(event.key) - 1];
      radio.checked = true;
      radio.focus();
      event.preventDefault();
    }
  });
  onLangChange(() => {
    renderSetup();
    renderPreview();
    renderStatus();
    renderRecent();
    renderClock();
  });
}

async function main() {
  wire();
  initLang();
  $("plain-http").hidden = globalThis.isSecureContext !== false;
  setStatus({ kind: "idle", headline: "clerk.status.needKey" });
  try {
    const { id, choices } = await chooseElection();
    const select = $("election-select");
    const options = choices.length ? choices : [{ id, title: {} }];
    select.replaceChildren(...options.map((e) => h("option", { value: e.id }, pick(e.title) || e.id)));
    select.disabled = options.length < 2;
    if (!id && !choices.length) throw new Error(t("error.noElection"));
    const chosen = id || choices[0].id;
    select.value = chosen;
    await loadElection(chosen);
    await syncClock();
    setInterval(syncClock, 60_000);
    setInterval(renderClock, 1000);
  } catch (error) {
    $("fatal").textContent = error instanceof Problem ? error.message_() : String(error.message || error);
    $("fatal").hidden = false;
  }
  applyI18n();
  $("key-text").focus();
  document.body.dataset.ready = "true";
}

main();
