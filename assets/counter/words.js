// The counter page's language and how it writes things: texts.js looked up in the language
// on screen, configured labels ({nl, fr, de, en}) picked, dates, times and national
// numbers written the Belgian way.

import { TEXTS } from './texts.js';

export const LANGS = ['nl', 'fr', 'de', 'en'];
const LOCALES = { nl: 'nl-BE', fr: 'fr-BE', de: 'de-BE', en: 'en-GB' };
const LANG_KEY = 'beid-agent.counter.lang';

let current = firstLanguage();

// `?lang=` first, then the clerk's last choice on this browser, then the browser's own
// languages, then Dutch.
function firstLanguage() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (LANGS.includes(asked)) return asked;
  try {
    const kept = localStorage.getItem(LANG_KEY);
    if (LANGS.includes(kept)) return kept;
  } catch (e) { /* storage off */ }
  const browser = (navigator.languages || [navigator.language || ''])
    .map((tag) => String(tag).slice(0, 2).toLowerCase())
    .filter((lang) => LANGS.includes(lang));
  return browser[0] || 'nl';
}

export function language() {
  return current;
}

// The clerk's choice, kept for the next time the page opens on this browser.
export function chooseLanguage(lang) {
  if (!LANGS.includes(lang)) return;
  current = lang;
  try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* storage off */ }
}

// The text for `key`, {name}s filled in from `values`.
export function t(key, values) {
  const table = TEXTS[current] || {};
  let text = table[key] !== undefined ? table[key] : TEXTS.en[key];
  if (text === undefined) text = key;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    values && values[name] !== undefined ? String(values[name]) : whole);
}

// Whether there is a text for `key` (codes from the agent may be new to this page).
export function has(key) {
  return TEXTS.en[key] !== undefined;
}

// A configured label set ({nl, fr, de, en}) in the language on screen.
export function label(labels, fallback) {
  const set = labels || {};
  return set[current] || set.en || set.nl || fallback || '';
}

// A date of the API (YYYY-MM-DD); a birth date of only a year or a month as the card has it.
export function formatDate(iso) {
  const parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
  if (!parts) return iso || '';
  const date = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3]));
  return new Intl.DateTimeFormat(LOCALES[current], {
    day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC'
  }).format(date);
}

export function formatTime(rfc3339) {
  const date = new Date(rfc3339);
  if (isNaN(date.getTime())) return rfc3339 || '';
  return new Intl.DateTimeFormat(LOCALES[current], { hour: '2-digit', minute: '2-digit' }).format(date);
}

// YY.MM.DD-SSS.CC, as Belgian documents write it.
export function formatNationalNumber(digits) {
  if (!/^\d{11}$/.test(digits || '')) return digits || '';
  return `${digits.slice(0, 2)}.${digits.slice(2, 4)}.${digits.slice(4, 6)}-${digits.slice(6, 9)}.${digits.slice(9)}`;
}
