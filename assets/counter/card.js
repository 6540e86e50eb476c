// The card on screen, apart from its advice: whether it is being read or failed, whether it
// is authentic and still valid, the name (only when the agent gave it: scope identity), and
// the national number, fetched only when the clerk asks (the agent audits each request).

import { el, button } from './dom.js';
import { t, has, formatDate, formatNationalNumber } from './words.js';

// Builds the card's parts in `body`. `askNumber` and `hideNumber` are the clerk's buttons.
export function buildCard(body, { askNumber, hideNumber }) {
  const dom = {
    state: el('p', 'card-state'),
    facts: el('ul', 'facts'),
    identity: el('dl', 'identity'),
    number: buildNumber(askNumber, hideNumber),
    questionsTitle: el('h3', 'questions-title'),
    questions: el('div', 'questions')
  };
  dom.state.setAttribute('role', 'status');
  body.textContent = '';
  for (const part of [dom.state, dom.facts, dom.identity, dom.number.root, dom.questionsTitle, dom.questions]) {
    body.appendChild(part);
  }
  return dom;
}

// `card`: {state: reading|ready|error, error, view (GET /v1/sessions/{session}),
// nationalNumber: {state, value}}.
export function renderCard(dom, card) {
  const ready = card.state === 'ready';
  renderState(dom.state, card);
  renderFacts(dom.facts, ready ? card.view : null);
  renderIdentity(dom.identity, card.view && card.view.identity);
  renderNumber(dom.number, card.nationalNumber, ready);
  dom.questionsTitle.textContent = t('questions');
  dom.questionsTitle.hidden = !ready;
  dom.questions.hidden = !ready;
}

function renderState(state, card) {
  state.hidden = card.state === 'ready';
  state.setAttribute('data-state', card.state);
  if (card.state === 'reading') {
    state.textContent = t('reading');
  } else if (card.state === 'error') {
    const key = `cardError_${card.error}`;
    state.textContent = has(key) ? t(key) : t('cardError_other', { code: card.error || '?' });
  }
}

function fact(name, good, text) {
  const item = el('li', `fact ${good ? 'fact-good' : 'fact-bad'}`);
  item.setAttribute('data-fact', name);
  const mark = el('span', 'fact-icon', good ? '✓' : '✗');
  mark.setAttribute('aria-hidden', 'true');
  item.appendChild(mark);
  item.appendChild(el('span', 'fact-text', text));
  return item;
}

function renderFacts(facts, view) {
  facts.textContent = '';
  if (view && view.authenticity) {
    const authentic = view.authenticity.authentic === true;
    facts.appendChild(fact('authenticity', authentic, t(authentic ? 'authentic' : 'notAuthentic')));
  }
  if (view && view.card) {
    const expired = view.card.expired === true;
    const date = view.card.validUntil ? formatDate(view.card.validUntil) : '?';
    facts.appendChild(fact('validity', !expired, t(expired ? 'expired' : 'validUntil', { date })));
  }
}

function renderIdentity(list, identity) {
  list.textContent = '';
  list.hidden = !identity;
  if (!identity) return;
  const row = (name, term, value) => {
    const wrapper = el('div', 'identity-row');
    wrapper.setAttribute('data-field', name);
    wrapper.appendChild(el('dt', null, term));
    wrapper.appendChild(el('dd', null, value));
    list.appendChild(wrapper);
  };
  row('name', t('name'), [identity.surname, identity.firstNames].filter(Boolean).join(', '));
  if (identity.birthDate) row('birth-date', t('birthDate'), formatDate(identity.birthDate));
}

function buildNumber(askNumber, hideNumber) {
  const part = {
    root: el('div', 'national-number'),
    label: el('span', 'nn-label'),
    value: el('output', 'nn-value'),
    show: button('nn-show', askNumber),
    hide: button('nn-hide', hideNumber),
    note: el('p', 'nn-note')
  };
  part.value.id = 'national-number';
  part.show.id = 'show-national-number';
  for (const child of [part.label, part.value, part.show, part.hide, part.note]) {
    part.root.appendChild(child);
  }
  return part;
}

// `number.state`: none | loading | shown | hidden | refused | failed.
function renderNumber(part, number, ready) {
  const { state } = number;
  part.root.hidden = !ready;
  part.root.setAttribute('data-state', state);
  part.label.textContent = t('nationalNumber');
  part.value.textContent = state === 'shown' ? formatNationalNumber(number.value) : '';
  part.value.hidden = state !== 'shown';
  part.show.textContent = state === 'loading' ? t('nnLoading') : t('showNationalNumber');
  part.show.hidden = state === 'shown' || state === 'refused';
  part.show.disabled = state === 'loading';
  part.hide.textContent = t('hideNationalNumber');
  part.hide.hidden = state !== 'shown';
  const problem = state === 'refused' || state === 'failed';
  part.note.textContent = state === 'refused' ? t('nnRefused') : state === 'failed' ? t('nnFailed') : t('nnAudited');
  part.note.setAttribute('data-problem', String(problem));
}
