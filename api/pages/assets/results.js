// Live results: totals and winners per category (SVG budget bar, CSS vote bars), each
// category's ballot rule in words (its kind and limits, how a project scores, how winners are
// chosen), per project votes and score, turnout by channel and the latest signed checkpoint of
// the log; refreshed every few seconds.

import {
  Problem,
  chooseElection,
  dateTime,
  electionUrl,
  getJSON,
  h,
  initLang,
  money,
  moneyShort,
  number,
  onLangChange,
  pick,
  request,
  svg,
  t,
  time,
} from "./common.js";
import { parseCheckpoint, parseNote } from "./crypto.js";
import { refreshInterval } from "./refresh.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = refreshInterval(location.search);
const SHOWN = 15;

const state = {
  electionId: null,
  definition: null, // the election definition: ballot kinds and limits
  results: null,
  note: null,
  updatedAt: null,
  failing: false,
  expanded: new Set(),
};

// ---------------------------------------------------------------- turnout

function stat(label, value, extra) {
  return h("div", { class: "stat" }, h("span", { class: "stat-value" }, value), h("span", { class: "stat-label" }, label), extra);
}

function renderTurnout(turnout) {
  const online = turnout.by_channel?.online ?? 0;
  const paper = turnout.by_channel?.paper ?? 0;
  const total = Math.max(online + paper, 1);
  const split = h(
    "div",
    { class: "channel-bar", role: "img", "aria-label": `${t("results.online")} ${online}, ${t("results.paper")} ${paper}` },
    h("span", { class: "online" }),
    h("span", { class: "paper" }),
  );
  split.children[0].style.width = `${(100 * online) / total}%`;
  split.children[1].style.width = `${(100 * paper) / total}%`;
  const ballots = turnout.ballots || {};
  const ballotCount = typeof ballots === "number" ? ballots : (ballots.online ?? 0) + (ballots.paper ?? 0);
  $("turnout").replaceChildren(
    stat(t("results.voters"), number(turnout.voters ?? 0), split),
    stat(t("results.online"), number(online)),
    stat(t("results.paper"), number(paper)),
    stat(t("results.ballots"), number(ballotCount)),
    stat(t("results.spoiled"), number(turnout.spoiled ?? 0)),
    stat(t("results.voided"), number(turnout.voided ?? 0)),
  );
  $("turnout").dataset.voters = String(turnout.voters ?? 0);
}

// ---------------------------------------------------------------- categories

/** The budget bar: funded projects' costs end to end, the budget line, the money left. */
function budgetChart(category) {
  const funded = category.projects.filter((p) => p.funded);
  // Drawn at the width it is shown at, so that its labels keep their shape on any screen.
  const width = Math.max(280, Math.round(($("categories").clientWidth || 1040) - 42));
  const barTop = 28;
  const barHeight = 26;
  const scale = width / Math.max(category.budget * 1.04, category.spent, 1);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} 84`,
    class: "budget-chart",
    role: "img",
    "aria-label": t("results.budgetChart", { spent: money(category.spent), budget: money(category.budget) }),
  });
  chart.append(svg("rect", { x: 0, y: barTop, width: category.budget * scale, height: barHeight, class: "budget-bg" }));
  let x = 0;
  funded.forEach((project, i) => {
    const w = project.cost * scale;
    const segment = svg("rect", { x, y: barTop, width: Math.max(w - 1, 0.5), height: barHeight, class: i % 2 ? "seg seg-b" : "seg seg-a" });
    segment.append(svg("title", {}, `${project.id} · ${pick(project.title)} · ${money(project.cost)}`));
    chart.append(segment);
    if (w > 44) chart.append(svg("text", { x: x + w / 2, y: barTop + 18, class: "seg-label", "text-anchor": "middle" }, project.id));
    x += w;
  });
  const bx = category.budget * scale;
  chart.append(svg("line", { x1: bx, x2: bx, y1: 4, y2: 80, class: "budget-line" }));
  chart.append(
    svg("text", { x: bx - 6, y: 18, class: "budget-label", "text-anchor": "end" }, `${t("results.budget")}: ${moneyShort(category.budget)}`),
  );
  chart.append(
    svg(
      "text",
      { x: 4, y: 76, class: "spent-label" },
      width < 560
        ? `${t("results.spent")}: ${moneyShort(category.spent)}`
        : `${t("results.spent")}: ${moneyShort(category.spent)} · ${t("results.left")}: ${moneyShort(category.left)}`,
    ),
  );
  return chart;
}

// ---------------------------------------------------------------- ballot rules

function definitionOf(categoryId) {
  return state.definition?.categories.find((c) => c.id === categoryId) || null;
}

function kindOf(categoryId) {
  const published = state.results?.categories?.find((c) => c.id === categoryId)?.ballot;
  return definitionOf(categoryId)?.ballot || published || "approval";
}

/** Votes and score differ only where points or positions count. */
function scored(categoryId) {
  const kind = kindOf(categoryId);
  return kind === "cumulative" || kind === "ordinal";
}

function scoreOf(project) {
  return project.score ?? project.votes;
}

/** A category's ballot in words: its kind, every limit, and what a project's score is. */
function ballotRule(categoryId, projectCount) {
  const c = definitionOf(categoryId);
  if (!c) return [];
  const kind = c.ballot || "approval";
  const maxPicks = c.max_picks ?? projectCount;
  const lines = [t(`results.rule.${kind}`, {
    max: maxPicks,
    min: c.min_picks || 0,
    cap: money(c.max_total_cost_kopecks ?? c.budget_kopecks),
    minCost: money(c.min_total_cost_kopecks || 0),
    maxPoints: c.max_points ?? "—",
    maxTotal: c.max_total_points ?? "—",
    minTotal: c.min_total_points || 0,
    second: Math.max(maxPicks - 1, 1),
  })];
  if (c.min_picks && c.min_picks === maxPicks) lines.push(t("results.rule.exactPicks", { min: c.min_picks }));
  else if (c.min_picks) lines.push(t("results.rule.minPicks", { min: c.min_picks }));
  if (kind === "knapsack" && maxPicks < projectCount) lines.push(t("results.rule.maxPicks", { max: maxPicks }));
  if (kind === "knapsack" && c.min_total_cost_kopecks) lines.push(t("results.rule.minCost", { minCost: money(c.min_total_cost_kopecks) }));
  if (kind === "cumulative" && c.min_total_points) lines.push(t("results.rule.minPoints", { minTotal: c.min_total_points }));
  lines.push(t(`results.score.${kind}`, { max: maxPicks }));
  return lines;
}

/** How winners are chosen, and which categories form a group, in words. */
function renderRules() {
  const rule = state.results?.rule || state.definition?.rule;
  const items = [];
  if (rule) {
    items.push(h("li", { dataset: { rule: rule.method } }, t(`results.method.${rule.method}`)));
    if (rule.min_votes) items.push(h("li", {}, t("results.method.threshold", { n: number(rule.min_votes) })));
  }
  for (const group of state.definition?.category_groups || []) {
    const names = group.categories.map((id) => pick(definitionOf(id)?.title) || id).join(", ");
    items.push(h("li", { dataset: { group: group.id } }, t("results.group", { max: group.max_categories, categories: names })));
  }
  $("rules").replaceChildren(...items);
  $("rules-card").hidden = items.length === 0;
}

function projectRow(project, maxScore, withScore) {
  const bar = h("div", { class: "bar" }, h("span", { class: "bar-online" }), h("span", { class: "bar-paper" }));
  const scale = maxScore ? 100 / maxScore : 0;
  // Where points or positions count, the bar is the score, split online/paper in the voters' share.
  const perVote = withScore && project.votes ? scoreOf(project) / project.votes : 1;
  bar.children[0].style.width = `${project.votes_online * perVote * scale}%`;
  bar.children[1].style.width = `${project.votes_paper * perVote * scale}%`;
  bar.title = `${t("results.online")}: ${number(project.votes_online)} · ${t("results.paper")}: ${number(project.votes_paper)}`;
  const figure = withScore
    ? h(
        "span",
        { class: "votes score" },
        number(scoreOf(project)),
        h("span", { class: "voters" }, t("results.votersOf", { n: number(project.votes) })),
      )
    : h("span", { class: "votes" }, number(project.votes));
  return h(
    "li",
    {
      class: project.funded ? "project funded" : "project",
      dataset: { project: project.id, votes: String(project.votes), score: String(scoreOf(project)) },
    },
    h("span", { class: "rank" }, project.rank ?? "—"),
    h(
      "span",
      { class: "name" },
      h("strong", {}, project.id),
      " ",
      h("span", { class: "title" }, pick(project.title)),
      h("span", { class: "meta" }, `${money(project.cost)}${project.district ? ` · ${project.district}` : ""}`),
    ),
    bar,
    figure,
    h("span", { class: "badge" }, project.funded ? `✔ ${t("results.funded")}` : ""),
  );
}

function renderCategory(category) {
  const withScore = scored(category.id);
  const maxScore = Math.max(...category.projects.map(scoreOf), 0);
  const expanded = state.expanded.has(category.id);
  const shown = expanded ? category.projects : category.projects.slice(0, SHOWN);
  const rest = category.projects.length - shown.length;
  const toggle =
    category.projects.length > SHOWN
      ? h("button", { type: "button", class: "secondary small" }, expanded ? t("results.showTop", { n: SHOWN }) : t("results.showAll", { n: category.projects.length }))
      : null;
  toggle?.addEventListener("click", () => {
    if (expanded) state.expanded.delete(category.id);
    else state.expanded.add(category.id);
    render();
  });
  const ties = (category.ties || []).map((tie) => {
    const many = tie.projects.length > 6;
    const projects = many
      ? `${tie.projects.slice(0, 6).join(", ")} ${t("results.andMore", { n: tie.projects.length - 6 })}`
      : tie.projects.join(", ");
    const how = String(tie.resolved_by || "")
      .split("+")
      .filter(Boolean)
      .map((name) => t(`tieBreak.${name}`))
      .join(", ");
    const level = tie.score ?? tie.votes;
    return h("p", { class: "hint tie" }, t(withScore ? "results.tieScore" : "results.tie", { projects, votes: level, how }));
  });
  return h(
    "section",
    { class: "card category", dataset: { category: category.id }, "aria-label": pick(category.title) },
    h("h2", {}, pick(category.title)),
    h(
      "ul",
      { class: "ballot-rule", dataset: { kind: kindOf(category.id) } },
      ballotRule(category.id, category.projects.length).map((line) => h("li", {}, line)),
    ),
    h(
      "dl",
      { class: "facts inline" },
      h("dt", {}, t("results.budget")),
      h("dd", {}, money(category.budget)),
      h("dt", {}, t("results.spent")),
      h("dd", {}, money(category.spent)),
      h("dt", {}, t("results.left")),
      h("dd", {}, money(category.left)),
      h("dt", {}, t("results.winners")),
      h("dd", { class: "winners" }, number(category.funded.length)),
    ),
    budgetChart(category),
    h(
      "div",
      { class: "legend" },
      h("span", { class: "key online" }),
      t("results.online"),
      h("span", { class: "key paper" }),
      t("results.paper"),
      h("span", { class: "key funded" }),
      t("results.fundedLegend"),
    ),
    withScore
      ? h("p", { class: "hint score-legend" }, t("results.scoreLegend"))
      : null,
    h("ol", { class: "projects" }, shown.map((p) => projectRow(p, maxScore, withScore))),
    ties,
    rest > 0 || expanded ? toggle : null,
  );
}

// ---------------------------------------------------------------- checkpoint

function renderCheckpoint() {
  if (!state.note) return;
  try {
    const { body, signatures } = parseNote(state.note);
    const checkpoint = parseCheckpoint(body);
    $("cp-origin").textContent = checkpoint.origin;
    $("cp-size").textContent = number(Number(checkpoint.size));
    $("cp-root").textContent = checkpoint.rootText;
    $("cp-signer").textContent = state.note.slice(state.note.lastIndexOf("\n\n") + 2).trim();
    $("cp-signer").title = signatures.map((s) => s.name).join(", ");
  } catch {
    $("cp-origin").textContent = "—";
  }
  if (state.results && !state.results.sealed) {
    $("cp-hint").textContent = t("results.computedFrom", { size: number(state.results.log.size), root: state.results.log.root });
  }
}

// ---------------------------------------------------------------- refresh

function render() {
  const results = state.results;
  if (!results) return;
  $("election-title").textContent = pick(results.title);
  renderTurnout(results.turnout);
  // Sealed (results = "sealed-until-close"): the server sends turnout only, until the close.
  const sealed = results.sealed === true;
  $("sealed").hidden = !sealed;
  if (sealed) {
    $("sealed").textContent = t("results.sealed", { time: dateTime(results.results_open_at, results.timezone), zone: results.timezone });
  }
  $("csv-link").hidden = sealed;
  document.body.dataset.sealed = String(sealed);
  renderRules();
  $("categories").replaceChildren(...(sealed ? [] : results.categories.map(renderCategory)));
  renderCheckpoint();
  const updated = state.updatedAt ? t("results.updated", { time: time(state.updatedAt), size: number(results.log.size) }) : "";
  $("updated").textContent = state.failing ? `${updated} · ${t("results.offline")}` : updated;
  $("updated").parentElement.classList.toggle("stale", state.failing);
}

async function refresh() {
  try {
    const [results, note] = await Promise.all([
      getJSON(electionUrl(state.electionId, "/results")),
      request(electionUrl(state.electionId, "/log/checkpoint")).catch(() => state.note),
    ]);
    state.results = results;
    state.note = note;
    state.updatedAt = new Date();
    state.failing = false;
  } catch (error) {
    state.failing = true;
    if (!state.results) throw error;
  }
  render();
  document.body.dataset.size = String(state.results.log.size);
}

async function main() {
  initLang();
  onLangChange(render);
  try {
    const { id } = await chooseElection();
    if (!id) throw new Error(t("error.noElection"));
    state.electionId = id;
    $("csv-link").href = electionUrl(id, "/results?format=csv");
    $("json-link").href = electionUrl(id, "/results");
    // The definition (ballot kinds and limits) is fixed once voting opens: read once.
    state.definition = await getJSON(electionUrl(id)).catch(() => null);
    await refresh();
  } catch (error) {
    $("fatal").textContent = error instanceof Problem ? error.message_() : String(error.message || error);
    $("fatal").hidden = false;
    return;
  }
  document.body.dataset.ready = "true";
  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  let resizing = null;
  addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(render, 150);
  });
}

main();
