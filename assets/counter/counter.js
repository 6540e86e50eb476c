// The clerk's counter page of beid-agent (docs/local-api.md, "Counter page").
//
// Beside the POS it shows the readers, the card in the reader (authentic, valid), the
// advice per use case of the counter channel, the name (scope identity) and, when the clerk
// asks, the national number (scope national-number); and it records the clerk's decision.
// Talks only to its own origin. The token comes from the URL fragment, is kept in
// sessionStorage, and is removed from the address bar at once.
//
// Privacy: everything about a citizen lives in `card` and under #card-body, and both are
// dropped whole when the card leaves (or the agent says the session ended): nothing of the
// previous citizen stays in the page. Text from the agent is only ever set as textContent.
'use strict';

(function () {
  // ---- The token: out of the address bar before anything else happens.
  var TOKEN_KEY = 'beid-agent.counter.token';
  var token = (function takeToken() {
    var fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
    var fromUrl = fragment.get('token');
    if (fromUrl) {
      try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* private mode */ }
      fragment.delete('token');
      var rest = fragment.toString();
      history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
      return fromUrl;
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  })();

  var TEXT = window.COUNTER_TEXTS || {};
  var LANGS = ['nl', 'fr', 'de', 'en'];
  var LOCALES = { nl: 'nl-BE', fr: 'fr-BE', de: 'de-BE', en: 'en-GB' };
  var LANG_KEY = 'beid-agent.counter.lang';
  var NOTE_MAX = 200; // the agent refuses longer notes
  var OFFLINE_CLEAR_MS = 20000; // without the event stream, a card's removal goes unseen
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 10000;
  var ADVICE_ATTEMPTS = 3;
  // What the agent refuses in a note (beid_core::text): 11 digits in any script with at
  // most one separator between two, or the same digits written as hexadecimal ASCII.
  var SEPARATOR = "[\\s.\\-/_,:']";
  var NATIONAL_NUMBER_SHAPES = [
    new RegExp('\\p{Nd}(?:' + SEPARATOR + '?\\p{Nd}){10}', 'u'),
    new RegExp('3[0-9](?:' + SEPARATOR + '?3[0-9]){10}')
  ];
  // Why an advice is unknown, in the clerk's words: several codes share one sentence.
  var UNKNOWN_TEXT = {
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

  var $ = function (id) { return document.getElementById(id); };
  var root = $('counter');

  var ui = { lang: firstLanguage() };
  // What the agent said about itself (GET /v1/status) and how the page stands with it.
  var agent = {
    status: null,
    connection: 'connecting', // connecting | online | offline | refused
    problem: null, // a text key, when the page cannot work
    pcscdUp: true
  };
  var readers = []; // [{id, name, state, session, error}], as the agent lists them
  var card = null; // the card session on screen (see newCard)
  var stream = { source: null, backoff: BACKOFF_MIN_MS, timer: null, offlineTimer: null };

  // ---- Words

  function firstLanguage() {
    var asked = new URLSearchParams(location.search).get('lang');
    if (LANGS.indexOf(asked) >= 0) return asked;
    try {
      var kept = localStorage.getItem(LANG_KEY);
      if (LANGS.indexOf(kept) >= 0) return kept;
    } catch (e) { /* storage off */ }
    var browser = (navigator.languages || [navigator.language || '']).map(function (l) {
      return String(l).slice(0, 2).toLowerCase();
    }).filter(function (l) { return LANGS.indexOf(l) >= 0; });
    return browser[0] || 'nl';
  }

  // The text for `key` in the page's language, {name}s filled in from `values`.
  function t(key, values) {
    var table = TEXT[ui.lang] || {};
    var text = table[key] !== undefined ? table[key] : (TEXT.en || {})[key];
    if (text === undefined) text = key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  // A configured label set ({nl, fr, de, en}) in the page's language.
  function label(labels, fallback) {
    labels = labels || {};
    return labels[ui.lang] || labels.en || labels.nl || fallback || '';
  }

  function formatDate(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
    if (!parts) return iso || ''; // a birth date of only a year or a month: as the card has it
    var date = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3]));
    return new Intl.DateTimeFormat(LOCALES[ui.lang], {
      day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC'
    }).format(date);
  }

  function formatTime(rfc3339) {
    var date = new Date(rfc3339);
    if (isNaN(date.getTime())) return rfc3339 || '';
    return new Intl.DateTimeFormat(LOCALES[ui.lang], { hour: '2-digit', minute: '2-digit' }).format(date);
  }

  // YY.MM.DD-SSS.CC, as Belgian documents write it.
  function formatNationalNumber(digits) {
    if (!/^\d{11}$/.test(digits || '')) return digits || '';
    return digits.slice(0, 2) + '.' + digits.slice(2, 4) + '.' + digits.slice(4, 6) + '-' +
      digits.slice(6, 9) + '.' + digits.slice(9);
  }

  function hasNationalNumberShape(text) {
    return NATIONAL_NUMBER_SHAPES.some(function (shape) { return shape.test(text); });
  }

  // An element with a class and (as text, never markup) its content.
  function el(tag, className, text) {
    var element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined && text !== null) element.textContent = text;
    return element;
  }

  // The one live region. Cleared first so the same words are said again when repeated.
  var announcements = [];
  var announceTimer = null;
  function announce(words) {
    announcements.push(words);
    clearTimeout(announceTimer);
    announceTimer = setTimeout(function () {
      var region = $('announce');
      region.textContent = '';
      var text = announcements.join(' ');
      announcements = [];
      setTimeout(function () { region.textContent = text; }, 50);
    }, 150);
  }

  // ---- The page around the card

  function useCases() {
    var all = (agent.status && Array.isArray(agent.status.useCases)) ? agent.status.useCases : [];
    return all.filter(function (useCase) {
      return Array.isArray(useCase.channels) && useCase.channels.indexOf('counter') >= 0;
    });
  }

  function useCaseLabel(id) {
    var found = useCases().filter(function (useCase) { return useCase.id === id; })[0];
    return found ? label(found.labels, id) : id;
  }

  function deviationReasons() {
    var counter = agent.status && agent.status.counter;
    return counter && Array.isArray(counter.deviationReasons) ? counter.deviationReasons : [];
  }

  function reasonLabel(id) {
    var found = deviationReasons().filter(function (reason) { return reason.id === id; })[0];
    return found ? label(found.labels, id) : id;
  }

  function render() {
    document.documentElement.lang = ui.lang;
    document.title = t('title');
    Array.prototype.forEach.call(document.querySelectorAll('[data-lang]'), function (button) {
      button.setAttribute('aria-pressed', String(button.getAttribute('data-lang') === ui.lang));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-text]'), function (element) {
      element.textContent = t(element.getAttribute('data-text'));
    });
    renderConnection();
    renderReaders();
    renderCard();
  }

  function renderConnection() {
    root.setAttribute('data-connection', agent.connection);
    $('connection-text').textContent = t(agent.connection);
    var problem = $('problem');
    var notes = [];
    if (agent.problem) notes.push(t(agent.problem.key, { code: agent.problem.code }));
    if (agent.status && agent.status.channel && agent.status.channel !== 'counter') notes.push(t('notCounter'));
    if (agent.status && useCases().length === 0) notes.push(t('noUseCases'));
    problem.hidden = notes.length === 0;
    problem.textContent = notes.join(' ');
  }

  function renderReaders() {
    var list = $('reader-list');
    list.textContent = '';
    if (!agent.pcscdUp) {
      list.appendChild(el('li', 'reader reader-problem', t('pcscdDown')));
      return;
    }
    if (agent.connection === 'online' && readers.length === 0) {
      list.appendChild(el('li', 'reader reader-problem', t('noReaders')));
      return;
    }
    readers.forEach(function (reader) {
      var item = el('li', 'reader');
      item.setAttribute('data-reader', reader.id);
      item.setAttribute('data-state', reader.state);
      item.appendChild(el('span', 'reader-dot'));
      item.appendChild(el('span', 'reader-name', reader.name || reader.id));
      item.appendChild(el('span', 'reader-state', t('reader_' + reader.state)));
      if (reader.session && card && card.session === reader.session) {
        item.appendChild(el('span', 'reader-shown', t('shownCard')));
      } else if (reader.session) {
        var show = el('button', 'reader-show', t('showThisCard'));
        show.type = 'button';
        show.addEventListener('click', function () {
          if (reader.session) showSession(reader.session, reader.id, reader.state);
        });
        item.appendChild(show);
      }
      list.appendChild(item);
    });
  }

  function setReader(id, change) {
    var reader = readers.filter(function (r) { return r.id === id; })[0];
    if (!reader) {
      reader = { id: id, name: id, state: 'empty', session: null, error: null };
      readers.push(reader);
      refreshReaderNames();
    }
    Object.keys(change).forEach(function (key) { reader[key] = change[key]; });
    renderReaders();
  }

  // reader-added carries the reader's id only: its name comes from the readers' list.
  function refreshReaderNames() {
    api('GET', '/v1/readers')
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (list) {
        if (!Array.isArray(list)) return;
        list.forEach(function (listed) {
          readers.forEach(function (reader) {
            if (reader.id === listed.id) reader.name = listed.name;
          });
        });
        renderReaders();
      })
      .catch(function (error) { console.warn('readers:', error); });
  }

  // ---- The card on screen

  function newCard(session, reader) {
    return {
      session: session,
      reader: reader || null,
      state: 'reading', // reading | ready | error
      error: null, // a card-error code
      view: null, // GET /v1/sessions/{session}
      advice: {}, // use case -> Advice
      asking: {}, // use case -> 'asking' | 'failed'
      outcomes: {}, // use case -> Outcome
      nationalNumber: { state: 'none', value: null }, // none | loading | shown | hidden | refused | failed
      dom: null
    };
  }

  // Shows another card session (a new card, or one the clerk picked in the readers' list).
  function showSession(session, reader, state) {
    if (card && card.session === session) return;
    clearCard(false);
    card = newCard(session, reader);
    if (state === 'ready' || state === 'error') {
      card.state = state;
      loadCard(session);
    }
    render();
    announce(t('announceCard'));
  }

  // Drops everything about the card on screen: its data, its form, its number.
  function clearCard(announceIt) {
    if (!card) return;
    var body = $('card-body');
    var hadFocus = body.contains(document.activeElement);
    card = null;
    body.textContent = '';
    root.setAttribute('data-card', 'none');
    // Nothing said about this citizen may still be waiting to be spoken.
    announcements = [];
    clearTimeout(announceTimer);
    $('announce').textContent = '';
    if (hadFocus) $('card-title').focus();
    if (announceIt) announce(t('announceRemoved'));
    renderReaders();
    renderCard();
  }

  function ours(session) {
    return card !== null && card.session === session;
  }

  // The card summary (authenticity, validity, the name with scope identity) and whatever
  // advice and outcomes the session already has; then the advice not asked yet.
  function loadCard(session) {
    api('GET', '/v1/sessions/' + encodeURIComponent(session))
      .then(function (response) {
        if (!ours(session)) return null;
        if (response.status === 410 || response.status === 404) {
          clearCard(true);
          return null;
        }
        if (!response.ok) throw new Error('session answered ' + response.status);
        return response.json().then(function (view) {
          if (!ours(session)) return;
          card.view = view;
          card.state = view.state || card.state;
          card.error = view.error || card.error;
          (view.advice || []).forEach(function (advice) { card.advice[advice.useCase] = advice; });
          (view.outcomes || []).forEach(function (outcome) { card.outcomes[outcome.useCase] = outcome; });
          renderCard();
          if (card.state === 'ready') askAllAdvice(session);
        });
      })
      .catch(function (error) { console.warn('session:', error.message || error); });
  }

  function askAllAdvice(session) {
    useCases().forEach(function (useCase) {
      if (!card.advice[useCase.id] && card.asking[useCase.id] !== 'asking') {
        askAdvice(session, useCase.id, 1);
      }
    });
  }

  // The agent asks the rule service once per session and use case, and answers a repeated
  // question from what it kept: asking again after an advice event is free.
  function askAdvice(session, useCase, attempt) {
    card.asking[useCase] = 'asking';
    renderUseCase(useCase);
    var retry = function (after) {
      if (!ours(session)) return;
      if (attempt >= ADVICE_ATTEMPTS) {
        card.asking[useCase] = 'failed';
        renderUseCase(useCase);
        return;
      }
      setTimeout(function () { if (ours(session)) askAdvice(session, useCase, attempt + 1); }, after);
    };
    api('POST', '/v1/sessions/' + encodeURIComponent(session) + '/advice', { useCase: useCase })
      .then(function (response) {
        if (!ours(session)) return null;
        if (response.status === 410 || response.status === 404) {
          clearCard(true);
          return null;
        }
        if (response.status === 429 || response.status >= 500) {
          retry(1000 * attempt);
          return null;
        }
        if (!response.ok) { // e.g. 409 card_not_read: the card's error says why
          card.asking[useCase] = 'failed';
          renderUseCase(useCase);
          return null;
        }
        return response.json().then(function (advice) {
          if (!ours(session) || advice.session !== session) return;
          var fresh = !card.advice[useCase];
          card.advice[useCase] = advice;
          delete card.asking[useCase];
          renderUseCase(useCase);
          if (fresh) {
            announce(t('announceAdvice', { label: useCaseLabel(useCase), decision: verdict(advice) }));
          }
        });
      })
      .catch(function (error) {
        console.warn('advice:', error.message || error);
        retry(1000 * attempt);
      });
  }

  // The headline of an advice. A registered status is said as what it is, never as
  // "eligible": a registry does not decide on entitlement.
  function verdict(advice) {
    if (advice.basis === 'registered_status' && advice.decision !== 'unknown') {
      return t('registered_' + advice.decision);
    }
    return t('decision_' + advice.decision);
  }

  // Decorative (the words say it): a registered status gets its own marks, not a tick.
  function verdictIcon(advice) {
    if (advice.basis === 'registered_status' && advice.decision !== 'unknown') {
      return advice.decision === 'eligible' ? '●' : '○';
    }
    return { eligible: '✓', not_eligible: '✗' }[advice.decision] || '?';
  }

  function renderCard() {
    var body = $('card-body');
    $('card-idle').hidden = card !== null;
    if (!card) {
      body.textContent = '';
      return;
    }
    root.setAttribute('data-card', card.state);
    if (!card.dom) card.dom = buildCard(body);
    renderCardFacts();
    renderIdentity();
    renderNationalNumber();
    useCases().forEach(function (useCase) { renderUseCase(useCase.id); });
  }

  function buildCard(body) {
    body.textContent = '';
    var dom = {};
    dom.state = el('p', 'card-state');
    dom.state.setAttribute('role', 'status');
    dom.facts = el('ul', 'facts');
    dom.identity = el('dl', 'identity');
    dom.nationalNumber = buildNationalNumber();
    dom.questionsTitle = el('h3', 'questions-title');
    dom.questions = el('div', 'questions');
    dom.useCases = {};
    useCases().forEach(function (useCase) {
      var built = buildUseCase(useCase.id);
      dom.useCases[useCase.id] = built;
      dom.questions.appendChild(built.root);
    });
    [dom.state, dom.facts, dom.identity, dom.nationalNumber.root, dom.questionsTitle, dom.questions]
      .forEach(function (part) { body.appendChild(part); });
    return dom;
  }

  function renderCardFacts() {
    var dom = card.dom;
    var ready = card.state === 'ready';
    dom.state.hidden = ready;
    dom.state.setAttribute('data-state', card.state);
    if (card.state === 'reading') {
      dom.state.textContent = t('reading');
    } else if (card.state === 'error') {
      var key = 'cardError_' + card.error;
      dom.state.textContent = (TEXT.en || {})[key] ? t(key) : t('cardError_other', { code: card.error || '?' });
    }
    dom.facts.textContent = '';
    var view = card.view;
    if (ready && view && view.authenticity) {
      var authentic = view.authenticity.authentic === true;
      var fact = el('li', 'fact ' + (authentic ? 'fact-good' : 'fact-bad'));
      fact.setAttribute('data-fact', 'authenticity');
      fact.appendChild(el('span', 'fact-icon', authentic ? '✓' : '✗')).setAttribute('aria-hidden', 'true');
      fact.appendChild(el('span', 'fact-text', t(authentic ? 'authentic' : 'notAuthentic')));
      dom.facts.appendChild(fact);
    }
    if (ready && view && view.card) {
      var expired = view.card.expired === true;
      var validity = el('li', 'fact ' + (expired ? 'fact-bad' : 'fact-good'));
      validity.setAttribute('data-fact', 'validity');
      validity.appendChild(el('span', 'fact-icon', expired ? '✗' : '✓')).setAttribute('aria-hidden', 'true');
      var until = view.card.validUntil ? formatDate(view.card.validUntil) : '?';
      validity.appendChild(el('span', 'fact-text', t(expired ? 'expired' : 'validUntil', { date: until })));
      dom.facts.appendChild(validity);
    }
    dom.questionsTitle.textContent = t('questions');
    dom.questionsTitle.hidden = !ready;
    dom.questions.hidden = !ready;
  }

  // Only what the agent gave: the name is there with the identity scope, absent without.
  function renderIdentity() {
    var dom = card.dom;
    dom.identity.textContent = '';
    var identity = card.view && card.view.identity;
    dom.identity.hidden = !identity;
    if (!identity) return;
    var row = function (term, value, name) {
      var wrapper = el('div', 'identity-row');
      wrapper.setAttribute('data-field', name);
      wrapper.appendChild(el('dt', null, term));
      wrapper.appendChild(el('dd', null, value));
      dom.identity.appendChild(wrapper);
    };
    row(t('name'), [identity.surname, identity.firstNames].filter(Boolean).join(', '), 'name');
    if (identity.birthDate) row(t('birthDate'), formatDate(identity.birthDate), 'birth-date');
  }

  // ---- The national number: fetched only when the clerk asks (audited by the agent)

  function buildNationalNumber() {
    var part = { root: el('div', 'national-number') };
    part.root.setAttribute('data-state', 'none');
    part.label = el('span', 'nn-label');
    part.value = el('output', 'nn-value');
    part.value.id = 'national-number';
    part.show = el('button', 'nn-show');
    part.show.type = 'button';
    part.show.id = 'show-national-number';
    part.hide = el('button', 'nn-hide');
    part.hide.type = 'button';
    part.note = el('p', 'nn-note');
    part.show.addEventListener('click', function () { askNationalNumber(); });
    part.hide.addEventListener('click', function () {
      if (!card) return;
      card.nationalNumber = { state: 'hidden', value: null };
      renderNationalNumber();
      part.show.focus();
    });
    [part.label, part.value, part.show, part.hide, part.note].forEach(function (child) {
      part.root.appendChild(child);
    });
    return part;
  }

  function askNationalNumber() {
    if (!card) return;
    var session = card.session;
    card.nationalNumber = { state: 'loading', value: null };
    renderNationalNumber();
    api('GET', '/v1/sessions/' + encodeURIComponent(session) + '/national-number')
      .then(function (response) {
        if (!ours(session)) return null;
        if (response.status === 410 || response.status === 404) {
          clearCard(true);
          return null;
        }
        if (response.status === 403) {
          card.nationalNumber = { state: 'refused', value: null };
          renderNationalNumber();
          return null;
        }
        if (!response.ok) throw new Error('national number answered ' + response.status);
        return response.json().then(function (answer) {
          if (!ours(session) || answer.session !== session) return;
          card.nationalNumber = { state: 'shown', value: answer.nationalNumber };
          renderNationalNumber();
          card.dom.nationalNumber.hide.focus();
        });
      })
      .catch(function (error) {
        console.warn('national number:', error.message || error);
        if (!ours(session)) return;
        card.nationalNumber = { state: 'failed', value: null };
        renderNationalNumber();
      });
  }

  function renderNationalNumber() {
    var part = card.dom.nationalNumber;
    var state = card.nationalNumber.state;
    part.root.hidden = card.state !== 'ready';
    part.root.setAttribute('data-state', state);
    part.label.textContent = t('nationalNumber');
    part.value.textContent = state === 'shown' ? formatNationalNumber(card.nationalNumber.value) : '';
    part.value.hidden = state !== 'shown';
    part.show.textContent = state === 'loading' ? t('nnLoading') : t('showNationalNumber');
    part.show.hidden = state === 'shown' || state === 'refused';
    part.show.disabled = state === 'loading';
    part.hide.textContent = t('hideNationalNumber');
    part.hide.hidden = state !== 'shown';
    part.note.textContent = state === 'refused' ? t('nnRefused')
      : state === 'failed' ? t('nnFailed') : t('nnAudited');
    part.note.setAttribute('data-problem', String(state === 'refused' || state === 'failed'));
  }

  // ---- One use case: its advice and the clerk's decision

  function buildUseCase(id) {
    var part = { root: el('section', 'use-case') };
    part.root.setAttribute('data-use-case', id);
    part.root.setAttribute('aria-labelledby', 'uc-title-' + id);
    part.title = el('h4', 'uc-title');
    part.title.id = 'uc-title-' + id;
    part.verdict = el('p', 'verdict');
    part.verdictIcon = el('span', 'verdict-icon');
    part.verdictIcon.setAttribute('aria-hidden', 'true');
    part.verdictText = el('span', 'verdict-text');
    part.verdict.appendChild(part.verdictIcon);
    part.verdict.appendChild(part.verdictText);
    part.details = el('dl', 'details');
    part.form = buildDecisionForm(id);
    part.recorded = el('p', 'recorded');
    part.recorded.setAttribute('tabindex', '-1');
    [part.title, part.verdict, part.details, part.form.root, part.recorded].forEach(function (child) {
      part.root.appendChild(child);
    });
    return part;
  }

  function renderUseCase(id) {
    if (!card || !card.dom || !card.dom.useCases[id]) return;
    var part = card.dom.useCases[id];
    var advice = card.advice[id] || null;
    var outcome = card.outcomes[id] || null;
    var asking = card.asking[id];
    part.title.textContent = useCaseLabel(id);
    part.root.setAttribute('data-decision', advice ? advice.decision : (asking || 'pending'));
    part.root.setAttribute('data-basis', advice && advice.basis ? advice.basis : '');
    part.verdict.hidden = !advice && !asking;
    part.verdictIcon.textContent = advice ? verdictIcon(advice) : '…';
    part.verdictText.textContent = advice ? verdict(advice)
      : asking === 'failed' ? t('adviceFailed') : asking ? t('asking') : '';
    renderDetails(part.details, advice);
    part.form.root.hidden = !advice || outcome !== null;
    if (advice && !outcome) renderDecisionForm(id, part.form, advice);
    part.recorded.hidden = outcome === null;
    part.recorded.textContent = outcome ? recordedText(outcome) : '';
  }

  function renderDetails(details, advice) {
    details.textContent = '';
    if (!advice) return;
    var row = function (name, term, value) {
      if (!value) return;
      var wrapper = el('div', 'detail');
      wrapper.setAttribute('data-detail', name);
      wrapper.appendChild(el('dt', null, term));
      wrapper.appendChild(el('dd', null, value));
      details.appendChild(wrapper);
    };
    if (advice.decision === 'unknown') {
      var code = advice.reason || '';
      var key = UNKNOWN_TEXT[code];
      row('why', t('whyNoAdvice'), key ? t('unknown_' + key) : t('unknown_other', { code: code || '?' }));
      return;
    }
    // The configured words for the rule service's reason code, else the code itself.
    if (advice.reasonCode) row('reason', t('reason'), label(advice.reasonLabel, advice.reasonCode));
    if (advice.validUntil) row('valid-until', t('adviceValidUntil'), formatDate(advice.validUntil));
    row('basis', t('basis'), t('basis_' + (advice.basis || 'unspecified')));
    if (advice.clerkMessage) row('message', t('clerkMessage'), advice.clerkMessage);
  }

  function recordedText(outcome) {
    var what = outcome.deviation
      ? t('summaryDeviates', { decision: t(outcome.decision), reason: reasonLabel(outcome.deviation.reason) })
      : t('summaryFollows', { decision: t(outcome.decision) });
    return t('recorded', { time: formatTime(outcome.recordedAt), what: what });
  }

  // The form: granted / not granted; a reason (and an optional note) when the decision
  // differs from the advice or there is none; a confirmation before anything is sent.
  function buildDecisionForm(id) {
    var form = { root: el('div', 'decide') };
    form.fieldset = el('fieldset', 'decision');
    form.legend = el('legend');
    form.fieldset.appendChild(form.legend);
    form.choices = {};
    ['granted', 'not_granted'].forEach(function (value) {
      var choice = el('label', 'choice');
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'decision-' + id;
      input.value = value;
      input.addEventListener('change', function () { formChanged(id); });
      var text = el('span');
      choice.appendChild(input);
      choice.appendChild(text);
      form.fieldset.appendChild(choice);
      form.choices[value] = { input: input, text: text };
    });

    form.deviation = el('div', 'deviation');
    form.why = el('p', 'deviation-why');
    form.reasonLabel = el('label');
    form.reasonLabel.htmlFor = 'reason-' + id;
    form.reason = document.createElement('select');
    form.reason.id = 'reason-' + id;
    form.reason.addEventListener('change', function () { formChanged(id); });
    form.noteLabel = el('label');
    form.noteLabel.htmlFor = 'note-' + id;
    form.note = document.createElement('textarea');
    form.note.id = 'note-' + id;
    form.note.rows = 2;
    form.note.maxLength = NOTE_MAX;
    form.note.setAttribute('aria-describedby', 'note-hint-' + id + ' note-count-' + id + ' note-warning-' + id);
    form.note.addEventListener('input', function () { formChanged(id); });
    form.note.addEventListener('change', function () { formChanged(id); });
    form.noteHint = el('p', 'hint');
    form.noteHint.id = 'note-hint-' + id;
    form.noteCount = el('p', 'hint note-count');
    form.noteCount.id = 'note-count-' + id;
    form.noteWarning = el('p', 'warning note-warning');
    form.noteWarning.id = 'note-warning-' + id;
    [form.why, form.reasonLabel, form.reason, form.noteLabel, form.note, form.noteHint,
      form.noteCount, form.noteWarning].forEach(function (child) { form.deviation.appendChild(child); });

    form.error = el('p', 'form-error');
    form.error.setAttribute('role', 'alert');
    form.record = el('button', 'record');
    form.record.type = 'button';
    form.record.addEventListener('click', function () { openConfirmation(id); });

    form.confirm = el('div', 'confirm');
    form.confirm.setAttribute('role', 'group');
    form.confirmTitle = el('p', 'confirm-title');
    form.confirmTitle.id = 'confirm-title-' + id;
    form.confirmTitle.setAttribute('tabindex', '-1');
    form.confirm.setAttribute('aria-labelledby', form.confirmTitle.id);
    form.summary = el('p', 'confirm-summary');
    form.summaryNote = el('p', 'confirm-note');
    form.yes = el('button', 'confirm-yes');
    form.yes.type = 'button';
    form.yes.addEventListener('click', function () { sendOutcome(id); });
    form.back = el('button', 'confirm-back');
    form.back.type = 'button';
    form.back.addEventListener('click', function () { closeConfirmation(id, true); });
    form.confirm.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') closeConfirmation(id, true);
    });
    var buttons = el('div', 'confirm-buttons');
    buttons.appendChild(form.yes);
    buttons.appendChild(form.back);
    [form.confirmTitle, form.summary, form.summaryNote, buttons].forEach(function (child) {
      form.confirm.appendChild(child);
    });
    form.confirming = false;
    form.sending = false;

    [form.fieldset, form.deviation, form.error, form.record, form.confirm].forEach(function (child) {
      form.root.appendChild(child);
    });
    return form;
  }

  function chosenDecision(form) {
    if (form.choices.granted.input.checked) return 'granted';
    if (form.choices.not_granted.input.checked) return 'not_granted';
    return null;
  }

  // The agent's rule: a reason is required when the decision differs from the advice or
  // the advice is unknown, and refused otherwise.
  function deviates(advice, decision) {
    if (!decision) return false;
    return advice.decision === 'unknown' ||
      (advice.decision === 'eligible' && decision === 'not_granted') ||
      (advice.decision === 'not_eligible' && decision === 'granted');
  }

  function renderDecisionForm(id, form, advice) {
    var decision = chosenDecision(form);
    var needsReason = deviates(advice, decision);
    form.legend.textContent = t('yourDecision');
    form.choices.granted.text.textContent = t('granted');
    form.choices.not_granted.text.textContent = t('not_granted');
    form.deviation.hidden = !needsReason;
    form.why.textContent = t(advice.decision === 'unknown' ? 'deviationUnknown' : 'deviationDiffers');
    form.reasonLabel.textContent = t('deviationReason');
    fillReasons(form.reason);
    form.noteLabel.textContent = t('note');
    form.noteHint.textContent = t('noteHint', { max: NOTE_MAX });
    form.noteCount.textContent = t('noteCount', { n: form.note.value.length, max: NOTE_MAX });
    var shaped = hasNationalNumberShape(form.note.value);
    form.noteWarning.hidden = !shaped;
    form.noteWarning.textContent = shaped ? t('noteHasNationalNumber') : '';
    form.note.setAttribute('aria-invalid', String(shaped));
    form.record.textContent = t('record');
    form.record.hidden = form.confirming;
    form.record.disabled = form.sending;
    form.error.hidden = !form.error.getAttribute('data-key');
    if (form.error.getAttribute('data-key')) {
      form.error.textContent = t(form.error.getAttribute('data-key'), {
        why: form.error.getAttribute('data-why') ? t(form.error.getAttribute('data-why'), {
          code: form.error.getAttribute('data-code')
        }) : ''
      });
    }
    form.confirm.hidden = !form.confirming;
    if (form.confirming) renderSummary(form, advice);
    form.yes.disabled = form.sending;
    form.back.disabled = form.sending;
    form.yes.textContent = form.sending ? t('sending') : t('confirm');
    form.back.textContent = t('back');
    form.confirmTitle.textContent = t('confirmTitle');
  }

  // The configured reasons as options, in the page's language; the clerk's choice stays.
  function fillReasons(select) {
    var chosen = select.value;
    select.textContent = '';
    var prompt = el('option', null, t('chooseReason'));
    prompt.value = '';
    select.appendChild(prompt);
    deviationReasons().forEach(function (reason) {
      var option = el('option', null, label(reason.labels, reason.id));
      option.value = reason.id;
      select.appendChild(option);
    });
    select.value = chosen;
  }

  function renderSummary(form, advice) {
    var decision = chosenDecision(form);
    form.summary.textContent = deviates(advice, decision)
      ? t('summaryDeviates', { decision: t(decision), reason: reasonLabel(form.reason.value) })
      : t('summaryFollows', { decision: t(decision) });
    var note = form.note.value.trim();
    form.summaryNote.hidden = !(note && deviates(advice, decision));
    form.summaryNote.textContent = form.summaryNote.hidden ? '' : t('summaryNote', { note: note });
  }

  function formChanged(id) {
    var form = card && card.dom && card.dom.useCases[id] && card.dom.useCases[id].form;
    if (!form || form.sending) return;
    form.confirming = false; // what was to be confirmed changed: look again
    setFormError(form, null);
    renderUseCase(id);
  }

  function setFormError(form, key, why, code) {
    if (key) form.error.setAttribute('data-key', key); else form.error.removeAttribute('data-key');
    if (why) form.error.setAttribute('data-why', why); else form.error.removeAttribute('data-why');
    if (code) form.error.setAttribute('data-code', code); else form.error.removeAttribute('data-code');
  }

  function openConfirmation(id) {
    var part = card.dom.useCases[id];
    var form = part.form;
    var advice = card.advice[id];
    var decision = chosenDecision(form);
    var problem = !decision ? 'needDecision'
      : deviates(advice, decision) && !form.reason.value ? 'needReason'
        : deviates(advice, decision) && hasNationalNumberShape(form.note.value) ? 'noteHasNationalNumber'
          : null;
    setFormError(form, problem);
    form.confirming = problem === null;
    renderUseCase(id);
    if (problem === 'needDecision') form.choices.granted.input.focus();
    else if (problem === 'needReason') form.reason.focus();
    else if (problem) form.note.focus();
    else form.confirmTitle.focus();
  }

  function closeConfirmation(id, refocus) {
    var form = card && card.dom && card.dom.useCases[id] && card.dom.useCases[id].form;
    if (!form || form.sending) return;
    form.confirming = false;
    renderUseCase(id);
    if (refocus) form.record.focus();
  }

  function sendOutcome(id) {
    if (!card) return;
    var session = card.session;
    var part = card.dom.useCases[id];
    var form = part.form;
    var advice = card.advice[id];
    var decision = chosenDecision(form);
    if (!decision || form.sending) return;
    var body = { useCase: id, decision: decision };
    if (deviates(advice, decision)) {
      body.deviation = { reason: form.reason.value };
      var note = form.note.value.trim();
      if (note) body.deviation.note = note;
    }
    form.sending = true;
    renderUseCase(id);
    var done = function () {
      if (!ours(session)) return;
      form.sending = false;
      renderUseCase(id);
    };
    api('POST', '/v1/sessions/' + encodeURIComponent(session) + '/outcome', body)
      .then(function (response) {
        if (!ours(session)) return null;
        if (response.status === 410 || response.status === 404) {
          clearCard(true);
          return null;
        }
        return response.json().catch(function () { return {}; }).then(function (answer) {
          if (!ours(session)) return;
          if (response.ok) {
            card.outcomes[id] = answer;
            form.confirming = false;
            done();
            part.recorded.focus();
            announce(t('announceRecorded', { label: useCaseLabel(id) }));
            return;
          }
          if (answer.error === 'outcome_already_recorded') { // the POS was first
            form.confirming = false;
            done();
            loadCard(session);
            return;
          }
          var known = { note_has_national_number: 1, note_too_long: 1, deviation_reason_unknown: 1 };
          var why = answer.error === 'note_has_national_number' ? 'noteHasNationalNumber'
            : known[answer.error] ? 'recordError_' + answer.error : 'recordError_other';
          setFormError(form, 'recordFailed', why, answer.error || String(response.status));
          form.confirming = false;
          done();
          form.record.focus();
        });
      })
      .catch(function (error) {
        console.warn('outcome:', error.message || error);
        if (!ours(session)) return;
        setFormError(form, 'recordFailed', 'recordError_network');
        form.confirming = false;
        done();
      });
  }

  // ---- Events: the stream says what changed; each handler may run twice for one fact
  // (a snapshot and an event can say the same thing) and must end in the same state.

  var handlers = {
    'snapshot': function (data) {
      agent.pcscdUp = data.pcscd !== 'down';
      readers = (data.readers || []).map(function (reader) {
        return {
          id: reader.id, name: reader.name, state: reader.state,
          session: reader.session || null, error: reader.error || null
        };
      });
      var sessions = Array.isArray(data.sessions) ? data.sessions : [];
      var current = card && sessions.filter(function (s) { return s.session === card.session; })[0];
      if (card && !current) clearCard(true); // it left while we were not listening
      if (!card && sessions.length > 0) {
        var pick = sessions.filter(function (s) { return s.state === 'ready'; })[0] || sessions[0];
        showSession(pick.session, pick.reader, null);
        current = pick;
      }
      if (card && current) {
        card.state = current.state;
        card.error = current.error || null;
        if (current.state !== 'reading') loadCard(card.session);
      }
      render();
    },
    'events-missed': function () { /* a fresh snapshot follows at once */ },
    'reader-added': function (data) {
      agent.pcscdUp = true;
      setReader(data.reader, {});
      renderConnection();
    },
    'reader-removed': function (data) {
      readers = readers.filter(function (reader) { return reader.id !== data.reader; });
      if (card && card.reader === data.reader) clearCard(true);
      renderReaders();
    },
    'card-inserted': function (data) {
      setReader(data.reader, { state: 'reading', session: data.session, error: null });
      // A new card in the reader on screen (or with nothing on screen) is the next citizen.
      if (!card || card.reader === data.reader) showSession(data.session, data.reader, 'reading');
    },
    'card-read': function (data) {
      setReader(data.reader, { state: 'ready', session: data.session, error: null });
      if (!card) showSession(data.session, data.reader, null);
      if (ours(data.session) && card.state !== 'ready') {
        card.state = 'ready';
        renderCard();
        loadCard(data.session);
      }
    },
    'advice': function (data) {
      if (!ours(data.session) || card.advice[data.useCase] || card.asking[data.useCase] === 'asking') return;
      if (!card.dom || !card.dom.useCases[data.useCase]) return; // not a counter use case
      askAdvice(data.session, data.useCase, 1);
    },
    'outcome': function (data) {
      if (ours(data.session) && !card.outcomes[data.useCase]) loadCard(data.session);
    },
    'card-removed': function (data) {
      setReader(data.reader, { state: 'empty', session: null, error: null });
      if (ours(data.session)) clearCard(true);
    },
    'card-error': function (data) {
      setReader(data.reader, { state: 'error', session: data.session, error: data.code });
      if (!card) showSession(data.session, data.reader, null);
      if (ours(data.session)) {
        card.state = 'error';
        card.error = data.code;
        renderCard();
      }
    },
    'reader-error': function (data) {
      if (data.reader) {
        setReader(data.reader, { state: 'error', error: data.code });
      } else if (data.code === 'pcscd_down') {
        agent.pcscdUp = false;
        renderReaders();
      }
    }
  };

  // ---- The agent

  function api(method, path, body) {
    var init = {
      method: method,
      headers: { Authorization: 'Bearer ' + token },
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error'
    };
    if (method === 'POST') { // the agent takes JSON bodies only, even empty ones
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body === undefined ? {} : body);
    }
    return fetch(path, init);
  }

  // An answer that says the page itself is refused (token, origin, scope): its error code.
  function refusal(response) {
    if (response.status !== 401 && response.status !== 403) return Promise.resolve(null);
    return response.json()
      .then(function (answer) { return answer && answer.error ? answer.error : 'unauthorized'; })
      .catch(function () { return 'unauthorized'; });
  }

  function refuse(code) {
    var known = { unauthorized: 1, origin_not_allowed: 1, scope_missing: 1 };
    agent.problem = { key: known[code] ? 'problem_' + code : 'problem_other', code: code };
    agent.connection = 'refused';
    clearCard(false);
    render();
  }

  function loadStatus() {
    return api('GET', '/v1/status').then(function (response) {
      return refusal(response).then(function (refused) {
        if (refused) {
          refuse(refused);
          return false;
        }
        if (!response.ok) throw new Error('status answered ' + response.status);
        return response.json().then(function (status) {
          agent.status = status;
          agent.problem = null;
          agent.pcscdUp = status.pcscd !== 'down';
          if (status.simulator === true) setUpSimulator();
          render();
          return true;
        });
      });
    });
  }

  function connect() {
    clearTimeout(stream.timer);
    if (stream.source) stream.source.close();
    stream.source = null;
    return api('POST', '/v1/events/ticket').then(function (response) {
      return refusal(response).then(function (refused) {
        if (refused) {
          refuse(refused);
          return;
        }
        if (!response.ok) throw new Error('ticket answered ' + response.status);
        return response.json().then(function (answer) {
          var source = new EventSource('/v1/events?ticket=' + encodeURIComponent(answer.ticket));
          stream.source = source;
          source.onopen = function () {
            stream.backoff = BACKOFF_MIN_MS;
            clearTimeout(stream.offlineTimer);
            agent.connection = 'online';
            renderConnection();
            renderReaders();
          };
          // A ticket is single use: never let EventSource retry with it, buy a new one.
          source.onerror = function () {
            if (stream.source !== source) return;
            source.close();
            stream.source = null;
            wentOffline();
          };
          Object.keys(handlers).forEach(function (name) {
            source.addEventListener(name, function (event) {
              if (stream.source !== source) return;
              var data;
              try { data = JSON.parse(event.data); } catch (e) { return; }
              handlers[name](data || {});
            });
          });
        });
      });
    });
  }

  // Without the stream the page cannot see the card leave: after a while, it clears the
  // card rather than leave one citizen's data up for the next.
  function wentOffline() {
    agent.connection = 'offline';
    renderConnection();
    clearTimeout(stream.offlineTimer);
    stream.offlineTimer = setTimeout(function () {
      if (agent.connection !== 'online') clearCard(false);
    }, OFFLINE_CLEAR_MS);
    reconnectLater();
  }

  function reconnectLater() {
    clearTimeout(stream.timer);
    var wait = stream.backoff;
    stream.backoff = Math.min(stream.backoff * 2, BACKOFF_MAX_MS);
    stream.timer = setTimeout(start, wait);
  }

  // Status first (use cases, reasons, labels), then the event stream. A refused page keeps
  // trying at the slowest pace, in case the agent's configuration is fixed meanwhile.
  function start() {
    (agent.status && agent.connection !== 'refused' ? Promise.resolve(true) : loadStatus())
      .then(function (ok) {
        if (ok) return connect();
        stream.backoff = BACKOFF_MAX_MS;
        reconnectLater();
        return null;
      })
      .catch(function (error) {
        console.warn('agent:', error.message || error);
        wentOffline();
      });
  }

  // ---- Simulator (serve --simulate only)

  var simulatorReady = false;
  function setUpSimulator() {
    if (simulatorReady) return;
    simulatorReady = true;
    $('simulator').hidden = false;
    api('GET', '/v1/simulator/cards')
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (cards) {
        var select = $('sim-card');
        select.textContent = '';
        (Array.isArray(cards) ? cards : []).forEach(function (name) {
          var option = el('option', null, name);
          option.value = name;
          select.appendChild(option);
        });
        root.setAttribute('data-simulator', 'ready');
      })
      .catch(function (error) { console.warn('simulator cards:', error); });
    var press = function (button, path, body) {
      button.disabled = true;
      api('POST', path, body())
        .catch(function (error) { console.warn('simulator:', error); })
        .then(function () { button.disabled = false; });
    };
    $('sim-insert').addEventListener('click', function () {
      press($('sim-insert'), '/v1/simulator/insert', function () { return { card: $('sim-card').value }; });
    });
    $('sim-remove').addEventListener('click', function () {
      press($('sim-remove'), '/v1/simulator/remove', function () { return {}; });
    });
  }

  // ---- Start

  // A new token in the fragment later on (same page, so no reload by itself): take it, and
  // start again with it.
  window.addEventListener('hashchange', function () {
    if (new URLSearchParams(location.hash.replace(/^#/, '')).get('token')) location.reload();
  });

  Array.prototype.forEach.call(document.querySelectorAll('[data-lang]'), function (button) {
    button.addEventListener('click', function () {
      ui.lang = button.getAttribute('data-lang');
      try { localStorage.setItem(LANG_KEY, ui.lang); } catch (e) { /* storage off */ }
      render();
    });
  });
  $('card-title').setAttribute('tabindex', '-1');
  render();
  if (!token) {
    agent.connection = 'refused';
    agent.problem = { key: 'noToken' };
    render();
    console.warn('no token: open the page as /counter/#token=…');
  } else {
    start();
  }
})();
