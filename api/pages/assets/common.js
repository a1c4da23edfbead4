// Shared by the three pages: language, formatting, HTTP, RFC 8785 canonical JSON, bytes.
// No dependencies; everything runs in the browser from this server.

import { MESSAGES } from "./i18n.js";

const LANG_KEY = "uchast.lang";
const listeners = [];

function storedLang() {
  try {
    const value = localStorage.getItem(LANG_KEY);
    return value === "en" || value === "uk" ? value : "uk";
  } catch {
    return "uk";
  }
}

let lang = storedLang();

export function currentLang() {
  return lang;
}

/** The text of `key` in the current language, with {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const entry = MESSAGES[key];
  let text = entry ? entry[lang] ?? entry.uk : key;
  for (const [name, value] of Object.entries(vars)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

/** A {uk, en} object (titles from the election) in the current language. */
export function pick(value) {
  if (value == null) return "";
  if (typeof value === "string") return value;
  return value[lang] ?? value.uk ?? value.en ?? Object.values(value)[0] ?? "";
}

/** Fill every [data-i18n] (text), [data-i18n-placeholder], [data-i18n-title] and
 * [data-i18n-aria-label] under `root`. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  document.documentElement.lang = lang;
  const titleKey = document.body?.dataset.titleKey;
  if (titleKey) document.title = `${t(titleKey)} · uchast`;
}

export function onLangChange(callback) {
  listeners.push(callback);
}

export function setLang(value) {
  lang = value === "en" ? "en" : "uk";
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // private mode: the choice lasts for this page only
  }
  applyI18n();
  const button = document.getElementById("lang-switch");
  if (button) {
    button.textContent = lang === "uk" ? "English" : "Українська";
    button.lang = lang === "uk" ? "en" : "uk";
  }
  for (const callback of listeners) callback(lang);
}

/** Wire the language button and apply the stored language. */
export function initLang() {
  const button = document.getElementById("lang-switch");
  if (button) button.addEventListener("click", () => setLang(lang === "uk" ? "en" : "uk"));
  setLang(lang);
}

// ---------------------------------------------------------------- formatting

const LOCALES = { uk: "uk-UA", en: "en-GB" };

export function number(value) {
  return new Intl.NumberFormat(LOCALES[lang]).format(value);
}

/** Kopecks (integer) as hryvnias: "1 350 000,00 грн" / "1,350,000.00 UAH". */
export function money(kopecks) {
  const format = new Intl.NumberFormat(LOCALES[lang], {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  return `${format.format(kopecks / 100)} ${t("uah")}`;
}

/** Kopecks as a short amount for chart labels: "1,35 млн грн" / "1.35 M UAH". */
export function moneyShort(kopecks) {
  const uah = kopecks / 100;
  const format = new Intl.NumberFormat(LOCALES[lang], { maximumFractionDigits: 2 });
  if (Math.abs(uah) >= 1e6) return `${format.format(uah / 1e6)} ${t("million")} ${t("uah")}`;
  if (Math.abs(uah) >= 1e3) return `${format.format(uah / 1e3)} ${t("thousand")} ${t("uah")}`;
  return `${format.format(uah)} ${t("uah")}`;
}

export function time(date) {
  return new Intl.DateTimeFormat(LOCALES[lang], { timeStyle: "medium" }).format(date);
}

export function dateTime(text, timeZone) {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return new Intl.DateTimeFormat(LOCALES[lang], {
    dateStyle: "medium",
    timeStyle: "medium",
    timeZone: timeZone || undefined,
  }).format(date);
}

// ---------------------------------------------------------------- DOM

/** Create an element: h("p", {class: "x"}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value != null) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child == null) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------- HTTP

/** A refusal or failure from the server (RFC 9457 problem), or a network failure. */
export class Problem extends Error {
  constructor(status, body) {
    super(body?.message_en || body?.title || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || (status === 0 ? "network" : `http-${status}`);
    this.body = body || {};
  }

  /** The message in the current language. */
  message_() {
    if (this.status === 0) return t("problem.network");
    const body = this.body;
    const own = lang === "uk" ? body.message_uk : body.message_en;
    return own || body.message_en || body.message_uk || body.detail || this.message;
  }
}

async function parse(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

export async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, { cache: "no-store", credentials: "same-origin", ...options });
  } catch (error) {
    throw new Problem(0, { message_en: String(error) });
  }
  const body = await parse(response).catch(() => null);
  if (!response.ok) throw new Problem(response.status, typeof body === "object" ? body : null);
  return body;
}

export function getJSON(url) {
  return request(url, { headers: { Accept: "application/json" } });
}

export function postJSON(url, value) {
  return request(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(value),
  });
}

export function electionUrl(election, tail = "") {
  return `/v1/elections/${encodeURIComponent(election)}${tail}`;
}

/** The election to show: ?election=..., else the only one on this server (null if none). */
export async function chooseElection() {
  const fromQuery = new URLSearchParams(location.search).get("election");
  if (fromQuery) return { id: fromQuery, choices: [] };
  const { elections } = await getJSON("/v1/elections");
  if (elections.length === 1) return { id: elections[0].id, choices: elections };
  return { id: null, choices: elections };
}

// ---------------------------------------------------------------- RFC 8785

/** RFC 8785 (JCS) canonical JSON of `value`: object members sorted by UTF-16 code units (the
 * default JavaScript string order), no whitespace, strings and numbers as JSON.stringify (ES2015+)
 * writes them, which is what RFC 8785 specifies. */
export function canonicalize(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("RFC 8785 has no NaN or Infinity");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalize(value[key])}`).join(",")}}`;
  }
  throw new TypeError(`cannot canonicalize a ${typeof value}`);
}

// ---------------------------------------------------------------- bytes

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

export function concat(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function b64encode(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** Strict standard base64 (with padding) to bytes; throws on anything else. */
export function b64decode(text) {
  if (typeof text !== "string" || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new Error("not standard base64");
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function b64urlDecode(text) {
  const standard = text.replaceAll("-", "+").replaceAll("_", "/");
  return b64decode(standard + "=".repeat((4 - (standard.length % 4)) % 4));
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// ---------------------------------------------------------------- cryptography

/** WebCrypto, which browsers give only to secure contexts (HTTPS, localhost); null on a page
 * opened over plain HTTP, as a polling point on a closed network often does. */
export function webCrypto() {
  return globalThis.crypto?.subtle ?? null;
}

let vendored = null;

/** The vendored plain-JavaScript Ed25519 and SHA-256 (@noble, vendor-noble.js), for where
 * WebCrypto cannot do the work; fetched from this server the first time it is asked for. */
export function noble() {
  vendored ??= import("./vendor-noble.js").catch((error) => {
    vendored = null; // a failed fetch is tried again next time
    throw error;
  });
  return vendored;
}

export async function sha256(bytes) {
  const subtle = webCrypto();
  if (subtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
  return (await noble()).sha256(bytes);
}

/** A random lowercase UUID (version 4). */
export function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = hex(b);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
