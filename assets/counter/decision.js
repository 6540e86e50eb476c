// One use case on the card: its advice, worded for the clerk, and the clerk's decision.
//
// The decision is granted or not granted. When it differs from the advice, or there is no
// advice, the clerk gives a reason from the configured list and may add a note (at most
// 200 characters, never a national number: the page warns, the agent refuses). Nothing is
// sent before the clerk confirms; once recorded, the form gives way to what was recorded.

import { el, button } from './dom.js';
import { t, label, formatDate, formatTime } from './words.js';

const NOTE_MAX = 200; // the agent refuses longer notes

// What the agent refuses in a note (beid_core::text): 11 digits in any script with at most
// one separator between two, or the same digits written as hexadecimal ASCII.
const SEPARATOR = "[\\s.\\-/_,:']";
const NATIONAL_NUMBER_SHAPES = [
  new RegExp(`\\p{Nd}(?:${SEPARATOR}?\\p{Nd}){10}`, 'u'),
  new RegExp(`3[0-9](?:${SEPARATOR}?3[0-9]){10}`)
];

export function hasNationalNumberShape(text) {
  return NATIONAL_NUMBER_SHAPES.some((shape) => shape.test(text));
}

// Why an advice is unknown, in the clerk's words: several codes share one sentence.
const UNKNOWN_TEXT = {
  upstream_unavailable: 'unanswered', upstream_timeout: 'unanswered',
  upstream_body_timeout: 'unanswered', circuit_open: 'unanswered',
  upstream_tls: 'tls', upstream_tls_rejected: 'tls',
  upstream_status: 'unusable', upstream_malformed: 'unusable',
  upstream_unknown_decision: 'unusable', upstream_mismatch: 'unusable',
  upstream_too_large: 'unusable', upstream_error: 'unusable',
  upstream_undecided: 'upstream_undecided', use_case_not_allowed: 'use_case_not_allowed',
  card_not_authentic: 'card_not_authentic', card_expired: 'card_expired',
  national_number_invalid: 'national_number_invalid'
};

// What the agent may answer to an outcome that the clerk can act on.
const RECORD_ERRORS = {
  note_has_national_number: 'noteHasNationalNumber',
  note_too_long: 'recordError_note_too_long',
  deviation_reason_unknown: 'recordError_deviation_reason_unknown',
  network: 'recordError_network'
};

// The headline of an advice. A registered status is said as what it is, never as
// "eligible": a registry does not decide on entitlement.
export function verdict(advice) {
  if (advice.basis === 'registered_status' && advice.decision !== 'unknown') {
    return t(`registered_${advice.decision}`);
  }
  return t(`decision_${advice.decision}`);
}

// Decorative (the words say it): a registered status gets its own marks, not a tick.
function verdictMark(advice) {
  if (advice.basis === 'registered_status' && advice.decision !== 'unknown') {
    return advice.decision === 'eligible' ? '●' : '○';
  }
  return { eligible: '✓', not_eligible: '✗' }[advice.decision] || '?';
}

// The agent's rule: a reason is required when the decision differs from the advice or the
// advice is unknown, and refused otherwise.
export function deviates(advice, decision) {
  if (!decision) return false;
  return advice.decision === 'unknown' ||
    (advice.decision === 'eligible' && decision === 'not_granted') ||
    (advice.decision === 'not_eligible' && decision === 'granted');
}

// The part of use case `id`. `send(id, body)` records an outcome and resolves to
// {recorded: true}, {gone: true} (the card left) or {error: code}.
export function buildUseCase(id, send) {
  const part = {
    id,
    send,
    model: null,
    root: el('section', 'use-case'),
    title: el('h4', 'uc-title'),
    verdict: el('p', 'verdict'),
    mark: el('span', 'verdict-icon'),
    words: el('span', 'verdict-text'),
    details: el('dl', 'details'),
    recorded: el('p', 'recorded')
  };
  part.root.setAttribute('data-use-case', id);
  part.title.id = `uc-title-${id}`;
  part.root.setAttribute('aria-labelledby', part.title.id);
  part.mark.setAttribute('aria-hidden', 'true');
  part.verdict.append(part.mark, part.words);
  part.recorded.setAttribute('tabindex', '-1');
  part.form = buildForm(part);
  part.root.append(part.title, part.verdict, part.details, part.form.root, part.recorded);
  return part;
}

// `model`: {label, advice, outcome, asking: undefined | 'asking' | 'failed', reasons}.
export function renderUseCase(part, model) {
  part.model = model;
  const { advice, outcome, asking } = model;
  part.title.textContent = model.label;
  part.root.setAttribute('data-decision', advice ? advice.decision : (asking || 'pending'));
  part.root.setAttribute('data-basis', (advice && advice.basis) || '');
  part.verdict.hidden = !advice && !asking;
  part.mark.textContent = advice ? verdictMark(advice) : '…';
  part.words.textContent = advice ? verdict(advice)
    : asking === 'failed' ? t('adviceFailed') : asking ? t('asking') : '';
  renderDetails(part.details, advice);
  part.form.root.hidden = !advice || Boolean(outcome);
  if (advice && !outcome) renderForm(part.form, model);
  part.recorded.hidden = !outcome;
  part.recorded.textContent = outcome ? recordedText(outcome, model.reasons) : '';
}

function rerender(part) {
  if (part.model) renderUseCase(part, part.model);
}

function renderDetails(details, advice) {
  details.textContent = '';
  if (!advice) return;
  const row = (name, term, value) => {
    if (!value) return;
    const wrapper = el('div', 'detail');
    wrapper.setAttribute('data-detail', name);
    wrapper.append(el('dt', null, term), el('dd', null, value));
    details.appendChild(wrapper);
  };
  if (advice.decision === 'unknown') {
    const key = UNKNOWN_TEXT[advice.reason];
    row('why', t('whyNoAdvice'), key ? t(`unknown_${key}`) : t('unknown_other', { code: advice.reason || '?' }));
    return;
  }
  // The configured words for the rule service's reason code, else the code itself.
  if (advice.reasonCode) row('reason', t('reason'), label(advice.reasonLabel, advice.reasonCode));
  if (advice.validUntil) row('valid-until', t('adviceValidUntil'), formatDate(advice.validUntil));
  row('basis', t('basis'), t(`basis_${advice.basis || 'unspecified'}`));
  if (advice.clerkMessage) row('message', t('clerkMessage'), advice.clerkMessage);
}

function reasonLabel(reasons, id) {
  const reason = (reasons || []).find((r) => r.id === id);
  return reason ? label(reason.labels, id) : id;
}

function summary(decision, reason, reasons) {
  return reason
    ? t('summaryDeviates', { decision: t(decision), reason: reasonLabel(reasons, reason) })
    : t('summaryFollows', { decision: t(decision) });
}

function recordedText(outcome, reasons) {
  const what = summary(outcome.decision, outcome.deviation && outcome.deviation.reason, reasons);
  return t('recorded', { time: formatTime(outcome.recordedAt), what });
}

// ---- The form

function buildForm(part) {
  const { id } = part;
  const changed = () => formChanged(part);
  const form = {
    root: el('div', 'decide'),
    fieldset: el('fieldset', 'decision'),
    legend: el('legend'),
    choices: {},
    deviation: el('div', 'deviation'),
    why: el('p', 'deviation-why'),
    reasonLabel: el('label'),
    reason: el('select'),
    noteLabel: el('label'),
    note: el('textarea'),
    noteHint: el('p', 'hint'),
    noteCount: el('p', 'hint note-count'),
    noteWarning: el('p', 'warning note-warning'),
    error: el('p', 'form-error'),
    problem: null, // {key, why, code}: why the decision was not recorded (yet)
    record: button('record', () => openConfirmation(part)),
    confirm: el('div', 'confirm'),
    confirmTitle: el('p', 'confirm-title'),
    summary: el('p', 'confirm-summary'),
    summaryNote: el('p', 'confirm-note'),
    yes: button('confirm-yes', () => confirmed(part)),
    back: button('confirm-back', () => closeConfirmation(part)),
    confirming: false,
    sending: false
  };
  form.fieldset.appendChild(form.legend);
  for (const value of ['granted', 'not_granted']) {
    const input = el('input');
    input.type = 'radio';
    input.name = `decision-${id}`;
    input.value = value;
    input.addEventListener('change', changed);
    const words = el('span');
    const choice = el('label', 'choice');
    choice.append(input, words);
    form.fieldset.appendChild(choice);
    form.choices[value] = { input, words };
  }

  form.reason.id = `reason-${id}`;
  form.reasonLabel.htmlFor = form.reason.id;
  form.reason.addEventListener('change', changed);
  form.note.id = `note-${id}`;
  form.noteLabel.htmlFor = form.note.id;
  form.note.rows = 2;
  form.note.maxLength = NOTE_MAX;
  form.noteHint.id = `note-hint-${id}`;
  form.noteCount.id = `note-count-${id}`;
  form.noteWarning.id = `note-warning-${id}`;
  form.note.setAttribute('aria-describedby', `${form.noteHint.id} ${form.noteCount.id} ${form.noteWarning.id}`);
  form.note.addEventListener('input', changed);
  form.note.addEventListener('change', changed);
  form.deviation.append(form.why, form.reasonLabel, form.reason, form.noteLabel, form.note,
    form.noteHint, form.noteCount, form.noteWarning);

  form.error.setAttribute('role', 'alert');
  form.confirm.setAttribute('role', 'group');
  form.confirmTitle.id = `confirm-title-${id}`;
  form.confirmTitle.setAttribute('tabindex', '-1');
  form.confirm.setAttribute('aria-labelledby', form.confirmTitle.id);
  form.confirm.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closeConfirmation(part);
  });
  const buttons = el('div', 'confirm-buttons');
  buttons.append(form.yes, form.back);
  form.confirm.append(form.confirmTitle, form.summary, form.summaryNote, buttons);

  form.root.append(form.fieldset, form.deviation, form.error, form.record, form.confirm);
  return form;
}

function chosen(form) {
  if (form.choices.granted.input.checked) return 'granted';
  if (form.choices.not_granted.input.checked) return 'not_granted';
  return null;
}

function renderForm(form, model) {
  const { advice, reasons } = model;
  const decision = chosen(form);
  const deviating = deviates(advice, decision);
  form.legend.textContent = t('yourDecision');
  form.choices.granted.words.textContent = t('granted');
  form.choices.not_granted.words.textContent = t('not_granted');
  form.deviation.hidden = !deviating;
  form.why.textContent = t(advice.decision === 'unknown' ? 'deviationUnknown' : 'deviationDiffers');
  form.reasonLabel.textContent = t('deviationReason');
  fillReasons(form.reason, reasons);
  form.noteLabel.textContent = t('note');
  form.noteHint.textContent = t('noteHint', { max: NOTE_MAX });
  form.noteCount.textContent = t('noteCount', { n: form.note.value.length, max: NOTE_MAX });
  const shaped = hasNationalNumberShape(form.note.value);
  form.noteWarning.hidden = !shaped;
  form.noteWarning.textContent = shaped ? t('noteHasNationalNumber') : '';
  form.note.setAttribute('aria-invalid', String(shaped));
  form.error.hidden = !form.problem;
  form.error.textContent = form.problem
    ? t(form.problem.key, { why: form.problem.why ? t(form.problem.why, { code: form.problem.code }) : '' })
    : '';
  form.record.textContent = t('record');
  form.record.hidden = form.confirming;
  form.record.disabled = form.sending;
  form.confirm.hidden = !form.confirming;
  form.confirmTitle.textContent = t('confirmTitle');
  if (form.confirming) {
    form.summary.textContent = summary(decision, deviating ? form.reason.value : null, reasons);
    const note = form.note.value.trim();
    form.summaryNote.hidden = !(note && deviating);
    form.summaryNote.textContent = form.summaryNote.hidden ? '' : t('summaryNote', { note });
  }
  form.yes.disabled = form.sending;
  form.back.disabled = form.sending;
  form.yes.textContent = form.sending ? t('sending') : t('confirm');
  form.back.textContent = t('back');
}

// The configured reasons as options, in the language on screen; the clerk's choice stays.
function fillReasons(select, reasons) {
  const choice = select.value;
  select.textContent = '';
  const prompt = el('option', null, t('chooseReason'));
  prompt.value = '';
  select.appendChild(prompt);
  for (const reason of reasons || []) {
    const option = el('option', null, label(reason.labels, reason.id));
    option.value = reason.id;
    select.appendChild(option);
  }
  select.value = choice;
}

// What was to be confirmed changed: look at it again.
function formChanged(part) {
  const { form } = part;
  if (form.sending) return;
  form.confirming = false;
  form.problem = null;
  rerender(part);
}

function openConfirmation(part) {
  const { form } = part;
  const decision = chosen(form);
  const deviating = deviates(part.model.advice, decision);
  const key = !decision ? 'needDecision'
    : deviating && !form.reason.value ? 'needReason'
      : deviating && hasNationalNumberShape(form.note.value) ? 'noteHasNationalNumber'
        : null;
  form.problem = key ? { key } : null;
  form.confirming = key === null;
  rerender(part);
  if (key === 'needDecision') form.choices.granted.input.focus();
  else if (key === 'needReason') form.reason.focus();
  else if (key) form.note.focus();
  else form.confirmTitle.focus();
}

function closeConfirmation(part) {
  const { form } = part;
  if (form.sending) return;
  form.confirming = false;
  rerender(part);
  form.record.focus();
}

async function confirmed(part) {
  const { form } = part;
  const decision = chosen(form);
  if (!decision || form.sending) return;
  const body = { useCase: part.id, decision };
  if (deviates(part.model.advice, decision)) {
    body.deviation = { reason: form.reason.value };
    const note = form.note.value.trim();
    if (note) body.deviation.note = note;
  }
  form.sending = true;
  rerender(part);
  const result = await part.send(part.id, body);
  if (result.gone) return; // the card left: this part is gone with it
  form.sending = false;
  form.confirming = false;
  if (result.error) {
    form.problem = {
      key: 'recordFailed',
      why: RECORD_ERRORS[result.error] || 'recordError_other',
      code: result.error
    };
  }
  rerender(part);
  if (result.error) form.record.focus();
  else if (part.model.outcome) part.recorded.focus();
}
