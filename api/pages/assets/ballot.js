// What a clerk types for one paper ballot, read against the election's definition: which
// project each token means, the ballot kind of its category, the payload fields to sign and every
// limit this ballot alone already breaks. No DOM here: the clerk page and the tests use it alike.
//
// One field takes every kind, tokens split by spaces, commas or semicolons:
//   approval, knapsack: project numbers ("L07 S12");
//   cumulative: a project number and its points, "P7:3" or "P7 3" (a bare number right after a
//     project of a cumulative category is that project's points);
//   ordinal: project numbers in the voter's order, most preferred first (the typed order is the
//     rank: 1, 2, 3, ...).
// A ballot may hold choices of several categories and kinds at once.

/** The ballot kind of a category of the definition (approval when the key is absent). */
export function kindOf(category) {
  return category.ballot || "approval";
}

/** A category's limits with the definition's defaults applied. */
export function limitsOf(category, projectCount) {
  const kind = kindOf(category);
  return {
    kind,
    minPicks: category.min_picks || 0,
    maxPicks: category.max_picks ?? projectCount,
    maxTotalCost: kind === "knapsack" ? category.max_total_cost_kopecks ?? category.budget_kopecks : null,
    minTotalCost: kind === "knapsack" ? category.min_total_cost_kopecks || 0 : 0,
    maxPoints: kind === "cumulative" ? category.max_points ?? null : null,
    maxTotalPoints: kind === "cumulative" ? category.max_total_points ?? null : null,
    minTotalPoints: kind === "cumulative" ? category.min_total_points || 0 : 0,
  };
}

// A clerk on the Ukrainian keyboard layout who types "Д07" meant "L07": letters by key position.
const UK_LAYOUT = Object.fromEntries(
  [..."йцукенгшщзфівапролдячсмить"].map((ch, i) => [ch, "qwertyuiopasdfghjklzxcvbnm"[i]]),
);

function latin(token) {
  return [...token.toLowerCase()].map((ch) => UK_LAYOUT[ch] ?? ch).join("").toUpperCase();
}

const NUMBERED = /^([A-Z/._-]*?)[/._-]?0*(\d+)$/;

/** Letters and number of an id, separators and leading zeros aside: "T-01" → "T|1". */
function numbered(id) {
  const match = NUMBERED.exec(id.toUpperCase());
  return match ? `${match[1].replace(/[/._-]/g, "")}|${Number(match[2])}` : null;
}

/** The project id a typed token means: exact, or the same letters and number ("l7" → "L07",
 * "t1" → "T-01", "bad18" → "BAD/0018", "7" → "007"); the token itself (upper case) when nothing
 * matches. */
export function resolveProject(token, projects) {
  if (projects.has(token)) return token;
  const upper = latin(token);
  if (projects.has(upper)) return upper;
  const wanted = numbered(upper);
  if (wanted) {
    for (const id of projects.keys()) {
      if (numbered(id) === wanted) return id;
    }
  }
  return upper;
}

/**
 * Read `text` against `election` (the definition the server serves).
 *
 * Returns `{entries, categories, groups, problems, fields}`:
 * - `entries`: each typed choice in order, `{id, project, kind, points, rank, problem}`;
 * - `categories`: per touched category, `{category, limits, count, cost, points, ranking}`;
 * - `problems`: every limit broken, `{code, key, vars, certain}`; `certain` when the server is
 *   bound to refuse the ballot whatever the voter sent before (a maximum, an unknown project),
 *   not certain for a minimum a voter's earlier ballot may already make up (multiple ballots);
 * - `fields`: `{projects?, points?, ranking?}` for the signed payload (absent when empty).
 */
export function readBallot(text, election, projects) {
  const tokens = text.split(/[\s,;]+/).filter(Boolean);
  const categories = new Map(election.categories.map((c) => [c.id, c]));
  const perCategory = new Map();
  const entries = [];
  const seen = new Set();
  const problems = [];
  const counts = new Map();
  for (const project of projects.values()) counts.set(project.category, (counts.get(project.category) || 0) + 1);

  const touch = (category) => {
    if (!perCategory.has(category.id)) {
      perCategory.set(category.id, {
        category,
        limits: limitsOf(category, counts.get(category.id) || 0),
        count: 0,
        cost: 0,
        points: 0,
        ranking: [],
      });
    }
    return perCategory.get(category.id);
  };

  for (let i = 0; i < tokens.length; i++) {
    let token = tokens[i];
    let points = null;
    const paired = /^(.+):(\d*)$/.exec(token);
    if (paired && !projects.has(token)) {
      token = paired[1];
      points = paired[2] === "" ? NaN : Number(paired[2]);
    }
    const id = resolveProject(token, projects);
    const project = projects.get(id);
    const category = project ? categories.get(project.category) : null;
    const kind = category ? kindOf(category) : null;
    if (kind === "cumulative" && points === null && /^\d+$/.test(tokens[i + 1] || "")) {
      points = Number(tokens[i + 1]);
      i++;
    }
    const entry = { id, project, kind, points, rank: null, problem: null };
    entries.push(entry);
    if (!project) {
      entry.problem = "unknown-project";
      continue;
    }
    if (seen.has(id)) {
      entry.problem = "project-repeated";
      continue;
    }
    seen.add(id);
    if (kind === "cumulative") {
      if (points === null) entry.problem = "points-missing";
      else if (!Number.isSafeInteger(points) || points < 1) entry.problem = "points-not-positive";
    } else if (points !== null) {
      entry.problem = "points-not-cumulative";
    }
    if (entry.problem) continue;
    const sums = touch(category);
    sums.count += 1;
    sums.cost += project.cost_kopecks;
    if (kind === "cumulative") sums.points += points;
    if (kind === "ordinal") {
      sums.ranking.push(id);
      entry.rank = sums.ranking.length;
    }
  }

  for (const entry of entries) {
    if (entry.problem) {
      const key = `ballot.problem.${entry.problem}`;
      problems.push({ code: entry.problem, key, vars: { project: entry.id }, certain: true });
    }
  }
  // Minima can be made up by a voter's earlier ballots only where a voter may cast several.
  const minimaCertain = !election.multiple_ballots;
  for (const sums of perCategory.values()) {
    const { limits, category } = sums;
    const vars = { category: category.id, count: sums.count };
    const add = (code, certain, extra) =>
      problems.push({ code, key: `ballot.problem.${code}`, vars: { ...vars, ...extra }, certain, category: category.id });
    if (sums.count > limits.maxPicks) add("limit-exceeded", true, { limit: limits.maxPicks });
    // A ranking cannot be added to later (ranking-exists): its minimum is this ballot's alone.
    const rankingAlone = limits.kind === "ordinal";
    if (sums.count < limits.minPicks) add("too-few-picks", minimaCertain || rankingAlone, { limit: limits.minPicks });
    if (limits.maxTotalCost != null && sums.cost > limits.maxTotalCost) {
      add("over-cost-limit", true, { cost: sums.cost, limit: limits.maxTotalCost });
    }
    if (sums.cost < limits.minTotalCost) add("under-cost-minimum", minimaCertain, { cost: sums.cost, limit: limits.minTotalCost });
    if (limits.kind === "cumulative") {
      for (const entry of entries) {
        if (!entry.problem && entry.project.category === category.id && limits.maxPoints != null && entry.points > limits.maxPoints) {
          add("too-many-points-for-project", true, { project: entry.id, points: entry.points, limit: limits.maxPoints });
        }
      }
      if (limits.maxTotalPoints != null && sums.points > limits.maxTotalPoints) {
        add("too-many-points", true, { points: sums.points, limit: limits.maxTotalPoints });
      }
      if (sums.points < limits.minTotalPoints) {
        add("too-few-points", minimaCertain, { points: sums.points, limit: limits.minTotalPoints });
      }
    }
  }
  const groups = [];
  for (const group of election.category_groups || []) {
    const touched = group.categories.filter((id) => perCategory.has(id));
    groups.push({ group, touched });
    if (touched.length > group.max_categories) {
      problems.push({
        code: "too-many-categories",
        key: "ballot.problem.too-many-categories",
        vars: { group: group.id, categories: touched.join(", "), count: touched.length, limit: group.max_categories },
        certain: true,
      });
    }
  }

  const fields = {};
  const picks = entries.filter((e) => !e.problem && (e.kind === "approval" || e.kind === "knapsack")).map((e) => e.id);
  const points = entries.filter((e) => !e.problem && e.kind === "cumulative");
  const ranking = entries.filter((e) => !e.problem && e.kind === "ordinal").map((e) => e.id);
  if (picks.length) fields.projects = picks;
  if (points.length) fields.points = Object.fromEntries(points.map((e) => [e.id, e.points]));
  if (ranking.length) fields.ranking = ranking;
  return { entries, categories: perCategory, groups, problems, fields };
}

/** The ballot's choices as one line for the status and the list of entries:
 * "L07 S12 P7:3 P2:1 1.R6 2.R3". */
export function describeFields(fields) {
  const parts = [...(fields.projects || [])];
  for (const [id, points] of Object.entries(fields.points || {})) parts.push(`${id}:${points}`);
  (fields.ranking || []).forEach((id, i) => parts.push(`${i + 1}.${id}`));
  return parts;
}
