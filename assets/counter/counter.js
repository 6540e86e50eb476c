// The clerk's counter page of beid-agent (docs/local-api.md, "Counter page"): beside the
// POS, the readers, the card in the reader and its advice per use case of the counter
// channel, and the clerk's decision. This module keeps the state and follows the agent's
// events; card.js and decision.js draw the card, words.js speaks the clerk's language,
// agent.js talks to the agent (its own origin only).
//
// Privacy: everything about a citizen lives in `card` and under #card-body, and both are
// dropped whole when the card leaves (or the agent says its session ended): nothing of the
// previous citizen stays in the page.

import { api, refusal, stayConnected, token } from './agent.js';
import { buildCard, renderCard as drawCard } from './card.js';
import { buildUseCase, renderUseCase as drawUseCase, verdict } from './decision.js';
import { $, el, button, announce, silence } from './dom.js';
import { t, label, language, chooseLanguage } from './words.js';

const OFFLINE_CLEAR_MS = 20000; // without the event stream, a card's removal goes unseen
const ADVICE_ATTEMPTS = 3;

const root = $('counter');
// What the agent said about itself (GET /v1/status) and how the page stands with it.
const agent = {
  status: null,
  connection: 'connecting', // connecting | online | offline | refused
  problem: null, // {key, code}: why the page cannot work
  pcscdUp: true
};
let readers = []; // [{id, name, state, session, error}], as the agent lists them
let card = null; // the card session on screen (newCard)
let offlineTimer = null;

// ---- The configuration the page works with

function useCases() {
  const all = agent.status && Array.isArray(agent.status.useCases) ? agent.status.useCases : [];
  return all.filter((useCase) => Array.isArray(useCase.channels) && useCase.channels.includes('counter'));
}

function useCaseLabel(id) {
  const found = useCases().find((useCase) => useCase.id === id);
  return found ? label(found.labels, id) : id;
}

function deviationReasons() {
  const counter = agent.status && agent.status.counter;
  return counter && Array.isArray(counter.deviationReasons) ? counter.deviationReasons : [];
}

// ---- The page around the card

function render() {
  document.documentElement.lang = language();
  document.title = t('title');
  for (const choice of document.querySelectorAll('[data-lang]')) {
    choice.setAttribute('aria-pressed', String(choice.getAttribute('data-lang') === language()));
  }
  for (const element of document.querySelectorAll('[data-text]')) {
    element.textContent = t(element.getAttribute('data-text'));
  }
  renderConnection();
  renderReaders();
  renderCard();
}

function renderConnection() {
  root.setAttribute('data-connection', agent.connection);
  $('connection-text').textContent = t(agent.connection);
  const notes = [];
  if (agent.problem) notes.push(t(agent.problem.key, { code: agent.problem.code }));
  if (agent.status && agent.status.channel && agent.status.channel !== 'counter') notes.push(t('notCounter'));
  if (agent.status && useCases().length === 0) notes.push(t('noUseCases'));
  $('problem').hidden = notes.length === 0;
  $('problem').textContent = notes.join(' ');
}

function renderReaders() {
  const list = $('reader-list');
  list.textContent = '';
  if (!agent.pcscdUp) {
    list.appendChild(el('li', 'reader reader-problem', t('pcscdDown')));
    return;
  }
  if (agent.connection === 'online' && readers.length === 0) {
    list.appendChild(el('li', 'reader reader-problem', t('noReaders')));
    return;
  }
  for (const reader of readers) {
    const item = el('li', 'reader');
    item.setAttribute('data-reader', reader.id);
    item.setAttribute('data-state', reader.state);
    item.append(el('span', 'reader-dot'), el('span', 'reader-name', reader.name || reader.id),
      el('span', 'reader-state', t(`reader_${reader.state}`)));
    if (reader.session && ours(reader.session)) {
      item.appendChild(el('span', 'reader-shown', t('shownCard')));
    } else if (reader.session) {
      const show = button('reader-show', () => {
        if (reader.session) showSession(reader.session, reader.id, reader.state);
      });
      show.textContent = t('showThisCard');
      item.appendChild(show);
    }
    list.appendChild(item);
  }
}

function setReader(id, change) {
  let reader = readers.find((r) => r.id === id);
  if (!reader) {
    reader = { id, name: id, state: 'empty', session: null, error: null };
    readers.push(reader);
    refreshReaderNames();
  }
  Object.assign(reader, change);
  renderReaders();
}

// reader-added carries the reader's id only: its name comes from the readers' list.
async function refreshReaderNames() {
  try {
    const response = await api('GET', '/v1/readers');
    const list = response.ok ? await response.json() : null;
    if (!Array.isArray(list)) return;
    for (const listed of list) {
      const reader = readers.find((r) => r.id === listed.id);
      if (reader) reader.name = listed.name;
    }
    renderReaders();
  } catch (error) {
    console.warn('readers:', error);
  }
}

// ---- The card on screen

function newCard(session, reader) {
  return {
    session,
    reader: reader || null,
    state: 'reading', // reading | ready | error
    error: null, // a card-error code
    view: null, // GET /v1/sessions/{session}
    advice: {}, // use case -> Advice
    asking: {}, // use case -> 'asking' | 'failed'
    outcomes: {}, // use case -> Outcome
    // Without the national-number scope the page says so at once instead of a button that
    // can only be refused.
    nationalNumber: { state: mayAskNationalNumber() ? 'none' : 'refused', value: null },
    dom: null
  };
}

// Whether this page's token may ask for the national number (`GET /v1/status`'s `scopes`;
// an agent that does not list them is asked, and answers 403 when it may not).
function mayAskNationalNumber() {
  const scopes = agent.status && agent.status.scopes;
  return !Array.isArray(scopes) || scopes.includes('national-number');
}

function ours(session) {
  return card !== null && card.session === session;
}

// Shows another card session: a new card, or one the clerk picked in the readers' list.
function showSession(session, reader, state) {
  if (ours(session)) return;
  clearCard(false);
  card = newCard(session, reader);
  if (state === 'ready' || state === 'error') {
    card.state = state;
    loadCard(session);
  }
  render();
  announce(t('announceCard'));
}

// Drops everything about the card on screen: its data, its form, its number, and any
// word about it not yet said.
function clearCard(said) {
  if (!card) return;
  const body = $('card-body');
  const hadFocus = body.contains(document.activeElement);
  card = null;
  body.textContent = '';
  root.setAttribute('data-card', 'none');
  root.removeAttribute('data-session');
  silence();
  if (hadFocus) $('card-title').focus();
  if (said) announce(t('announceRemoved'));
  renderReaders();
  renderCard();
}

function renderCard() {
  $('card-idle').hidden = card !== null;
  $('card-idle').textContent = t(agent.connection === 'online' ? 'insertCard' : 'idleOffline');
  if (!card) {
    $('card-body').textContent = '';
    return;
  }
  root.setAttribute('data-card', card.state);
  root.setAttribute('data-session', card.session); // an id only: for support and tests
  if (!card.dom) {
    card.dom = buildCard($('card-body'), { askNumber: askNationalNumber, hideNumber: hideNationalNumber });
    card.dom.useCases = {};
    for (const useCase of useCases()) {
      const part = buildUseCase(useCase.id, sendOutcome);
      card.dom.useCases[useCase.id] = part;
      card.dom.questions.appendChild(part.root);
    }
  }
  drawCard(card.dom, card);
  for (const useCase of useCases()) renderUseCase(useCase.id);
}

function renderUseCase(id) {
  const part = card && card.dom && card.dom.useCases[id];
  if (!part) return;
  drawUseCase(part, {
    label: useCaseLabel(id),
    advice: card.advice[id] || null,
    outcome: card.outcomes[id] || null,
    asking: card.asking[id],
    reasons: deviationReasons()
  });
}

// An answer about a session that has ended (the card left, or the agent restarted).
function ended(response) {
  return response.status === 410 || response.status === 404;
}

// The card summary (authenticity, validity, the name with scope identity) and whatever
// advice and outcomes the session already has; then the advice not asked yet.
async function loadCard(session) {
  try {
    const response = await api('GET', `/v1/sessions/${encodeURIComponent(session)}`);
    if (!ours(session)) return;
    if (ended(response)) {
      clearCard(true);
      return;
    }
    if (!response.ok) throw new Error(`session answered ${response.status}`);
    const view = await response.json();
    if (!ours(session)) return;
    card.view = view;
    card.state = view.state || card.state;
    card.error = view.error || card.error;
    for (const advice of view.advice || []) card.advice[advice.useCase] = advice;
    for (const outcome of view.outcomes || []) card.outcomes[outcome.useCase] = outcome;
    renderCard();
    if (card.state === 'ready') {
      for (const useCase of useCases()) {
        if (!card.advice[useCase.id] && card.asking[useCase.id] !== 'asking') askAdvice(session, useCase.id, 1);
      }
    }
  } catch (error) {
    console.warn('session:', error.message || error);
  }
}

// The agent asks the rule service once per session and use case, and answers a repeated
// question from what it kept: asking again after an advice event costs nothing.
async function askAdvice(session, useCase, attempt) {
  card.asking[useCase] = 'asking';
  renderUseCase(useCase);
  const retry = () => {
    if (!ours(session)) return;
    if (attempt >= ADVICE_ATTEMPTS) {
      card.asking[useCase] = 'failed';
      renderUseCase(useCase);
      return;
    }
    setTimeout(() => { if (ours(session)) askAdvice(session, useCase, attempt + 1); }, 1000 * attempt);
  };
  try {
    const response = await api('POST', `/v1/sessions/${encodeURIComponent(session)}/advice`, { useCase });
    if (!ours(session)) return;
    if (ended(response)) {
      clearCard(true);
      return;
    }
    if (response.status === 429 || response.status >= 500) {
      retry();
      return;
    }
    if (!response.ok) { // e.g. 409 card_not_read: the card's error says why
      card.asking[useCase] = 'failed';
      renderUseCase(useCase);
      return;
    }
    const advice = await response.json();
    if (!ours(session) || advice.session !== session) return;
    const fresh = !card.advice[useCase];
    card.advice[useCase] = advice;
    delete card.asking[useCase];
    renderUseCase(useCase);
    if (fresh) announce(t('announceAdvice', { label: useCaseLabel(useCase), decision: verdict(advice) }));
  } catch (error) {
    console.warn('advice:', error.message || error);
    retry();
  }
}

// The national number, only when the clerk asks for it: the agent audits each request.
async function askNationalNumber() {
  if (!card) return;
  const { session } = card;
  card.nationalNumber = { state: 'loading', value: null };
  renderCard();
  try {
    const response = await api('GET', `/v1/sessions/${encodeURIComponent(session)}/national-number`);
    if (!ours(session)) return;
    if (ended(response)) {
      clearCard(true);
      return;
    }
    if (response.status === 403) {
      card.nationalNumber = { state: 'refused', value: null };
      renderCard();
      return;
    }
    if (!response.ok) throw new Error(`national number answered ${response.status}`);
    const answer = await response.json();
    if (!ours(session) || answer.session !== session) return;
    card.nationalNumber = { state: 'shown', value: answer.nationalNumber };
    renderCard();
    card.dom.number.hide.focus();
  } catch (error) {
    console.warn('national number:', error.message || error);
    if (!ours(session)) return;
    card.nationalNumber = { state: 'failed', value: null };
    renderCard();
  }
}

function hideNationalNumber() {
  if (!card) return;
  card.nationalNumber = { state: 'hidden', value: null };
  renderCard();
  card.dom.number.show.focus();
}

// Records the clerk's decision (decision.js asks for it once confirmed).
async function sendOutcome(useCase, body) {
  const session = card && card.session;
  if (!session) return { gone: true };
  try {
    const response = await api('POST', `/v1/sessions/${encodeURIComponent(session)}/outcome`, body);
    if (!ours(session)) return { gone: true };
    if (ended(response)) {
      clearCard(true);
      return { gone: true };
    }
    const answer = await response.json().catch(() => ({}));
    if (!ours(session)) return { gone: true };
    if (response.ok) {
      card.outcomes[useCase] = answer;
      renderUseCase(useCase);
      announce(t('announceRecorded', { label: useCaseLabel(useCase) }));
      return { recorded: true };
    }
    if (answer.error === 'outcome_already_recorded') { // the POS was first: show its outcome
      loadCard(session);
      return { recorded: true };
    }
    return { error: answer.error || String(response.status) };
  } catch (error) {
    console.warn('outcome:', error.message || error);
    return ours(session) ? { error: 'network' } : { gone: true };
  }
}

// ---- Events: the stream says what changed. A snapshot and an event may say the same
// thing; each handler ends in the same state however often it runs.

const handlers = {
  'snapshot': (data) => {
    agent.pcscdUp = data.pcscd !== 'down';
    readers = (data.readers || []).map((reader) => ({
      id: reader.id,
      name: reader.name,
      state: reader.state,
      session: reader.session || null,
      error: reader.error || null
    }));
    const sessions = Array.isArray(data.sessions) ? data.sessions : [];
    let current = card && sessions.find((s) => s.session === card.session);
    if (card && !current) clearCard(true); // it left while the page was not listening
    if (!card && sessions.length > 0) {
      current = sessions.find((s) => s.state === 'ready') || sessions[0];
      showSession(current.session, current.reader, null);
    }
    if (card && current) {
      card.state = current.state;
      card.error = current.error || null;
      if (current.state !== 'reading') loadCard(card.session);
    }
    render();
  },
  'events-missed': () => { /* a fresh snapshot follows at once */ },
  'pcscd-up': () => {
    agent.pcscdUp = true; // back, perhaps without a reader yet
    renderReaders();
  },
  'reader-added': (data) => {
    agent.pcscdUp = true;
    setReader(data.reader, {});
  },
  'reader-removed': (data) => {
    readers = readers.filter((reader) => reader.id !== data.reader);
    if (card && card.reader === data.reader) clearCard(true);
    renderReaders();
  },
  'card-inserted': (data) => {
    setReader(data.reader, { state: 'reading', session: data.session, error: null });
    // A new card in the reader on screen (or with nothing on screen) is the next citizen.
    if (!card || card.reader === data.reader) showSession(data.session, data.reader, 'reading');
  },
  'card-read': (data) => {
    setReader(data.reader, { state: 'ready', session: data.session, error: null });
    if (!card) showSession(data.session, data.reader, null);
    if (ours(data.session) && card.state !== 'ready') {
      card.state = 'ready';
      renderCard();
      loadCard(data.session);
    }
  },
  'advice': (data) => {
    if (!ours(data.session) || card.advice[data.useCase] || card.asking[data.useCase] === 'asking') return;
    if (!card.dom || !card.dom.useCases[data.useCase]) return; // not a use case of the counter
    askAdvice(data.session, data.useCase, 1);
  },
  'outcome': (data) => {
    if (ours(data.session) && !card.outcomes[data.useCase]) loadCard(data.session);
  },
  'card-removed': (data) => {
    setReader(data.reader, { state: 'empty', session: null, error: null });
    if (ours(data.session)) clearCard(true);
  },
  'card-error': (data) => {
    setReader(data.reader, { state: 'error', session: data.session, error: data.code });
    if (!card) showSession(data.session, data.reader, null);
    if (ours(data.session)) {
      card.state = 'error';
      card.error = data.code;
      renderCard();
    }
  },
  'reader-error': (data) => {
    if (data.reader) {
      setReader(data.reader, { state: 'error', error: data.code });
    } else if (data.code === 'pcscd_down') {
      agent.pcscdUp = false;
      renderReaders();
    }
  }
};

// ---- The agent

const REFUSALS = ['unauthorized', 'origin_not_allowed', 'scope_missing'];

// What the page needs before following events: the use cases, reasons and labels.
async function loadStatus() {
  const response = await api('GET', '/v1/status');
  const refused = await refusal(response);
  if (refused) return refused;
  if (!response.ok) throw new Error(`status answered ${response.status}`);
  const status = await response.json();
  agent.status = status;
  agent.pcscdUp = status.pcscd !== 'down';
  if (status.simulator === true) setUpSimulator();
  render();
  return null;
}

function connectionChanged(state, code) {
  agent.connection = state;
  clearTimeout(offlineTimer);
  if (state === 'online') {
    agent.problem = null;
  } else if (state === 'refused') {
    agent.problem = { key: REFUSALS.includes(code) ? `problem_${code}` : 'problem_other', code };
    clearCard(false);
  } else if (state === 'offline') {
    // The page cannot see the card leave now: after a while it clears the card rather than
    // leave one citizen's data up for the next.
    offlineTimer = setTimeout(() => clearCard(false), OFFLINE_CLEAR_MS);
  }
  renderConnection();
  renderReaders();
  renderCard();
}

// ---- Simulator (serve --simulate only)

let simulatorReady = false;
async function setUpSimulator() {
  if (simulatorReady) return;
  simulatorReady = true;
  $('simulator').hidden = false;
  const press = async (control, path, body) => {
    control.disabled = true;
    try { await api('POST', path, body()); } catch (error) { console.warn('simulator:', error); }
    control.disabled = false;
  };
  $('sim-insert').addEventListener('click', () =>
    press($('sim-insert'), '/v1/simulator/insert', () => ({ card: $('sim-card').value })));
  $('sim-remove').addEventListener('click', () => press($('sim-remove'), '/v1/simulator/remove', () => ({})));
  try {
    const response = await api('GET', '/v1/simulator/cards');
    const cards = response.ok ? await response.json() : [];
    const select = $('sim-card');
    select.textContent = '';
    for (const name of Array.isArray(cards) ? cards : []) {
      const option = el('option', null, name);
      option.value = name;
      select.appendChild(option);
    }
    root.setAttribute('data-simulator', 'ready');
  } catch (error) {
    console.warn('simulator cards:', error);
  }
}

// ---- Start

// A new token in the fragment later on (same page, so no reload by itself): start again.
window.addEventListener('hashchange', () => {
  if (new URLSearchParams(location.hash.replace(/^#/, '')).get('token')) location.reload();
});

for (const choice of document.querySelectorAll('[data-lang]')) {
  choice.addEventListener('click', () => {
    chooseLanguage(choice.getAttribute('data-lang'));
    render();
  });
}
$('card-title').setAttribute('tabindex', '-1');
render();
if (token) {
  stayConnected({ prepare: loadStatus, handlers, report: connectionChanged });
} else {
  agent.connection = 'refused';
  agent.problem = { key: 'noToken' };
  render();
  console.warn('no token: open the page as /counter/#token=…');
}
