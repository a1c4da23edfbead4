// The polling-point clerk's page: load the clerk key (kept in this page's memory only), type the
// voter's identity number and the ballot (project numbers; points beside them in a cumulative
// category, the voter's order in an ordinal one: see ballot.js), Enter; see at once what the log
// decided. Every limit the typed ballot alone breaks shows as it is typed, and Enter refuses it
// on the page without sending anything; what only the log can know (the voter's earlier
// ballots) comes back as the server's refusal, shown in its own words.
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
import { describeFields, kindOf, readBallot } from "./ballot.js";
import { KeyError, importSignerKey, signEnvelope } from "./crypto.js";
import { MESSAGES } from "./i18n.js";

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
  // limits of the ballot kinds; the codes ballot.js finds on the page before sending are the
  // server's where the limit is the same
  "over-cost-limit": "clerk.status.limit",
  "too-many-points-for-project": "clerk.status.limit",
  "too-many-points": "clerk.status.limit",
  "too-many-categories": "clerk.status.limit",
  "too-few-picks": "clerk.status.belowMin",
  "under-cost-minimum": "clerk.status.belowMin",
  "too-few-points": "clerk.status.belowMin",
  "ranking-exists": "clerk.status.ranked",
  "points-missing": "clerk.status.points",
  "points-not-positive": "clerk.status.points",
  "points-not-cumulative": "clerk.status.points",
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
  entryHint();
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

// ---------------------------------------------------------------- the typed ballot

function reading() {
  return readBallot($("projects").value, state.election, state.projects);
}

function categoryTitle(id) {
  const category = state.election?.categories.find((c) => c.id === id);
  return category ? pick(category.title) : id;
}

const MONEY_VARS = new Set(["cost", "limit"]);

/** The variables of a problem as the clerk reads them: category titles, money in hryvnias. */
function shownVars(problem) {
  const vars = { ...problem.vars };
  if (vars.category) vars.category = categoryTitle(vars.category);
  if (problem.code === "over-cost-limit" || problem.code === "under-cost-minimum") {
    for (const name of MONEY_VARS) vars[name] = money(vars[name]);
  }
  return vars;
}

/** A problem found on the page, as a Problem in both languages (the language switch redraws it). */
function localProblem(problem) {
  const vars = shownVars(problem);
  const text = (lang) => {
    let out = MESSAGES[problem.key]?.[lang] ?? problem.key;
    for (const [name, value] of Object.entries(vars)) out = out.replaceAll(`{${name}}`, String(value));
    return out;
  };
  const found = new Problem(-1, { code: problem.code, message_uk: text("uk"), message_en: text("en") });
  found.local = true;
  return found;
}

function entryHint() {
  const kinds = new Set((state.election?.categories || []).map(kindOf));
  const parts = [];
  for (const kind of ["approval", "knapsack", "cumulative", "ordinal"]) {
    if (!kinds.has(kind)) continue;
    const names = state.election.categories.filter((c) => kindOf(c) === kind).map((c) => pick(c.title));
    parts.push(h("li", { dataset: { kind } }, h("strong", {}, names.join(", ")), ": ", t(`clerk.hint.${kind}`)));
  }
  $("entry-hint").replaceChildren(...parts);
  $("entry-hint").hidden = !(kinds.size > 1 || !kinds.has("approval"));
}

function problemTag(problem) {
  const shown = shownVars(problem);
  return h(
    "span",
    { class: problem.certain ? "tag bad" : "tag note", dataset: { problem: problem.code }, title: localProblem(problem).message_() },
    t(`clerk.preview.${problem.code}`, shown),
  );
}

function categorySummary(sums) {
  const { limits } = sums;
  const vars = {
    category: pick(sums.category.title),
    count: sums.count,
    max: limits.maxPicks,
    cost: money(sums.cost),
    cap: limits.maxTotalCost == null ? "" : money(limits.maxTotalCost),
    points: sums.points,
    maxPoints: limits.maxTotalPoints ?? "—",
  };
  return t(`clerk.preview.sum.${limits.kind}`, vars);
}

function renderPreview() {
  const list = $("preview");
  list.replaceChildren();
  if (!state.election) return;
  const read = reading();
  const byCategory = new Map();
  for (const problem of read.problems) {
    const key = problem.category || problem.vars.project || `group:${problem.vars.group}`;
    if (!byCategory.has(key)) byCategory.set(key, []);
    byCategory.get(key).push(problem);
  }
  const seenProblems = new Set();
  for (const entry of read.entries) {
    const { project } = entry;
    const tags = [];
    if (entry.problem) {
      const problem = read.problems.find((p) => p.code === entry.problem && p.vars.project === entry.id);
      tags.push(problemTag(problem));
    } else if (!seenProblems.has(entry.id)) {
      seenProblems.add(entry.id);
      for (const problem of byCategory.get(project.category) || []) {
        if (problem.code === "too-many-points-for-project" && problem.vars.project === entry.id) tags.push(problemTag(problem));
      }
    }
    const meta = [];
    if (project) meta.push(`${pick(project.title)} · ${money(project.cost_kopecks)}`);
    if (entry.kind === "cumulative" && Number.isSafeInteger(entry.points)) meta.push(t("clerk.preview.points", { points: entry.points }));
    list.append(
      h(
        "li",
        { class: entry.problem ? "warn" : "", dataset: { project: entry.id, kind: entry.kind || "", rank: entry.rank ?? "", points: entry.points ?? "" } },
        entry.rank ? h("span", { class: "rank-no" }, `${entry.rank}.`) : null,
        h("strong", {}, entry.id),
        " ",
        meta.join(" · "),
        tags,
      ),
    );
  }
  for (const sums of read.categories.values()) {
    const problems = (byCategory.get(sums.category.id) || []).filter((p) => p.code !== "too-many-points-for-project");
    list.append(
      h(
        "li",
        { class: problems.some((p) => p.certain) ? "warn summary" : "summary", dataset: { category: sums.category.id } },
        categorySummary(sums),
        problems.map(problemTag),
      ),
    );
  }
  for (const { group, touched } of read.groups) {
    if (!touched.length) continue;
    const problems = byCategory.get(`group:${group.id}`) || [];
    list.append(
      h(
        "li",
        { class: problems.length ? "warn summary" : "summary", dataset: { group: group.id } },
        t("clerk.preview.group", { group: group.id, count: touched.length, max: group.max_categories }),
        problems.map(problemTag),
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
  const { reason = null } = envelope.payload;
  const projects = envelope.payload.type === "paper-ballot" ? describeFields(envelope.payload) : null;
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
  const read = reading();
  const projects = describeFields(read.fields);
  if (!identityEl.value.trim()) {
    setStatus({ kind: "refused", headline: "clerk.status.needIdentity" });
    identityEl.focus();
    return;
  }
  if (!projectsEl.value.trim()) {
    setStatus({ kind: "refused", headline: "clerk.status.needProjects" });
    projectsEl.focus();
    return;
  }
  // A limit this ballot alone breaks is refused here, before the voter lookup (an entry of the
  // public log) and the ballot are sent: the server would refuse it whatever the voter sent before.
  const certain = read.problems.find((p) => p.certain);
  if (certain) {
    showProblem(localProblem(certain), projectsEl.value.split(/[\s,;]+/).filter(Boolean));
    rememberEntry("refused", null, projectsEl.value.split(/[\s,;]+/).filter(Boolean));
    identityEl.value = "";
    projectsEl.value = "";
    renderPreview();
    identityEl.focus();
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
        ...read.fields,
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
    entryHint();
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
