// How often the results page asks for fresh results: ?refresh=N milliseconds, but never more
// often than every MIN_REFRESH_MS (each refresh is two requests; a page left open with
// ?refresh=1 must not become a flood). No DOM here, so it runs under node too.

export const DEFAULT_REFRESH_MS = 5000;
export const MIN_REFRESH_MS = 2000;

export function refreshInterval(search) {
  const asked = Number(new URLSearchParams(search).get("refresh"));
  if (!Number.isFinite(asked) || asked <= 0) return DEFAULT_REFRESH_MS;
  return Math.max(MIN_REFRESH_MS, asked);
}
