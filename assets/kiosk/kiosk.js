// The self-service kiosk page of beid-agent (docs/local-api.md "Kiosk page"; the keypad and
// the headset: hardware/kiosk.md).
//
// Shows only the outcome in the citizen's language: never a reason, never personal data.
// Talks only to its own origin. The token comes from the URL fragment, is kept in
// sessionStorage, and is removed from the address bar at once.
//
// It never invites a card it cannot read: whenever the agent, pcscd, a reader or the use
// case is missing, the page is out of order (says so, logs why, and recovers by itself).
// Its speech is the kiosk's own: clips of its own words, in the screen's language.
'use strict';

(() => {
  // ---- The token: out of the address bar before anything else happens.
  const TOKEN_KEY = 'beid-agent.kiosk.token';
  const token = (() => {
    const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
    const fromUrl = fragment.get('token');
    if (fromUrl) {
      try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* private mode */ }
      fragment.delete('token');
      const rest = fragment.toString();
      history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
      return fromUrl;
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  })();

  // ---- Words: the catalogue the agent put into the page (assets/kiosk/messages.json).
  const CATALOGUE = JSON.parse(document.getElementById('messages').textContent);
  const LANGS = CATALOGUE.languages;

  // ---- Settings from the address: ?lang=nl|fr|de|en, ?useCase=ID, ?reader=ID,
  // ?timeout=SECONDS (how long a citizen's choices last without a card; 20 to 600).
  const query = new URLSearchParams(location.search);
  const DEFAULT_LANG = LANGS.includes(query.get('lang')) ? query.get('lang') : 'nl';
  const WANTED_USE_CASE = query.get('useCase');
  const WANTED_READER = query.get('reader');
  const TIMEOUT_MS = 1000 * Math.min(600, Math.max(20, Number(query.get('timeout')) || 60));

  // ---- Timings
  const WARNING_MS = Math.min(20000, TIMEOUT_MS / 2); // warned this long before starting over
  const REMINDER_AFTER_MS = 20000; // the take-your-card reminder grows after this
  const CHECK_IN_SERVICE_MS = 30000; // the agent's status is read again this often
  const CHECK_OUT_OF_ORDER_MS = 3000; // ... and this often while the kiosk cannot serve
  const RETRY_STREAM_MS = 1000; // a lost event stream is bought again after this
  const UNREACHABLE_AFTER_MS = 2500; // a short reconnect is no failure yet

  // Volume steps of the voice (relative to the system's volume); the reset goes back to
  // DEFAULT_LEVEL (EN 301 549 5.1.3.13).
  const LEVELS = [0.3, 0.45, 0.6, 0.8, 1];
  const DEFAULT_LEVEL = 2;
  const DECISIONS = ['eligible', 'not_eligible', 'unknown'];

  const $ = (id) => document.getElementById(id);
  const root = $('kiosk');

  // ---- What the page knows

  const agent = {
    connection: 'connecting', // connecting | online | refused | unreachable
    refusal: null, // the API's error code when refused
    failingSince: null,
    statusLoaded: false,
    pcscd: 'up',
    readers: new Map(), // id -> state ("empty" | "reading" | "ready" | "error")
    useCase: null, // {id, labels}
    useCaseProblem: null, // use_case_unknown | use_case_not_on_kiosk
    speechOutput: 'headset', // headset | speaker | none
    channelWarned: false // a counter device serving the kiosk page is said once
  };
  // The card this page follows. `view` is what it shows for it: reading | outcome | error.
  const NO_CARD = { session: null, reader: null, asked: null, view: null, decision: null, errorKind: null };
  let card = { ...NO_CARD };
  const ui = { lang: DEFAULT_LANG, cause: null, screen: '' };
  // `prefix`: clips said before the next screen (the speech mode's introduction, a language's
  // name).
  const voice = { on: false, level: DEFAULT_LEVEL, queue: [], generation: 0, prefix: [] };
  const timers = { check: null, reminder: null, warn: null, startOver: null };
  const stream = { source: null };
  let warning = null; // {returnFocus} while the time-out warning shows

  // ---- Words

  function t(key) {
    const table = CATALOGUE.messages[ui.lang] || CATALOGUE.messages.nl;
    return table[key] !== undefined ? table[key] : (CATALOGUE.messages.en[key] || '');
  }

  function label() {
    const labels = (agent.useCase && agent.useCase.labels) || {};
    return labels[ui.lang] || labels.en || '';
  }

  // The clip of the use case's label, when the configured label is the one it was made from.
  function labelClip() {
    if (!agent.useCase) return null;
    const made = (CATALOGUE.useCases[agent.useCase.id] || {})[ui.lang];
    return made && made === label() ? 'use-case.' + agent.useCase.id : null;
  }

  // ---- Why the kiosk cannot serve a citizen now, if it cannot (logged, shown to staff)

  function outOfOrderCause() {
    if (!token) return 'token_missing';
    if (agent.connection === 'refused') return agent.refusal || 'token_refused';
    if (agent.connection === 'unreachable') return 'agent_unreachable';
    if (!agent.statusLoaded) return null;
    if (agent.useCaseProblem) return agent.useCaseProblem;
    if (agent.pcscd === 'down') return 'pcscd_down';
    const hasReader = WANTED_READER ? agent.readers.has(WANTED_READER) : agent.readers.size > 0;
    return hasReader ? null : 'no_reader';
  }

  function state() {
    if (ui.cause) return 'out-of-order';
    if (!agent.statusLoaded) return 'starting';
    return card.view || 'idle';
  }

  // ---- Rendering

  function render() {
    const cause = outOfOrderCause();
    if (cause !== ui.cause) {
      if (cause) console.warn('kiosk: out of order: ' + cause);
      else if (ui.cause) console.info('kiosk: in service again after ' + ui.cause);
      ui.cause = cause;
    }
    const now = state();
    document.documentElement.lang = ui.lang;
    document.title = t('page.title');
    $('languages').setAttribute('aria-label', t('languages.label'));
    document.querySelectorAll('[data-lang]').forEach((button) => {
      button.setAttribute('aria-pressed', String(button.dataset.lang === ui.lang));
    });
    document.querySelectorAll('[data-text]').forEach((element) => {
      element.textContent = t(element.dataset.text);
    });
    $('speech').setAttribute('aria-pressed', String(voice.on));

    root.dataset.state = now;
    root.dataset.connection = agent.connection === 'refused' ? 'unconfigured' : agent.connection;
    root.dataset.speech = voice.on ? 'on' : 'off';
    if (ui.cause) root.dataset.cause = ui.cause; else delete root.dataset.cause;

    const views = { starting: 'view-starting', idle: 'view-idle', reading: 'view-reading', outcome: 'outcome', error: 'view-error', 'out-of-order': 'view-out-of-order' };
    Object.keys(views).forEach((name) => { $(views[name]).hidden = name !== now; });

    const topic = $('topic');
    topic.textContent = label();
    topic.hidden = !label() || now === 'starting' || now === 'out-of-order';

    const outcome = $('outcome');
    if (now === 'outcome') {
      outcome.dataset.outcome = card.decision;
      $('outcome-title').textContent = t(card.decision + '.title');
      $('outcome-text').textContent = t(card.decision + '.text');
    } else { // nothing of the previous citizen's outcome stays in the page
      delete outcome.dataset.outcome;
      $('outcome-title').textContent = '';
      $('outcome-text').textContent = '';
    }
    const error = $('view-error');
    if (now === 'error') {
      error.dataset.kind = card.errorKind;
      $('error-title').textContent = t('error.' + card.errorKind + '.title');
      $('error-text').textContent = t('error.' + card.errorKind + '.text');
    } else {
      delete error.dataset.kind;
    }
    $('service-code').textContent = ui.cause ? t('out_of_order.code').replace('{code}', ui.cause) : '';
    $('reminder').hidden = !(now === 'outcome' || now === 'error' || (now === 'out-of-order' && card.session));

    // A new screen (or the same one in another language) is announced, and spoken in
    // speech mode.
    const screen = [now, card.decision, card.errorKind, ui.cause, ui.lang, agent.useCase && agent.useCase.id].join('|');
    if (screen !== ui.screen || voice.prefix.length > 0) {
      if (screen !== ui.screen) announce(screenWords(now));
      ui.screen = screen;
      if (voice.on) say(voice.prefix.concat(screenClips(now)));
      voice.prefix = [];
    }
  }

  function screenWords(now) {
    switch (now) {
      case 'idle': return [label(), t('idle.title'), t('idle.text')];
      case 'reading': return [t('reading.title'), t('reading.text')];
      case 'outcome': return [label(), t(card.decision + '.title'), t(card.decision + '.text'), t('take_card')];
      case 'error': return [t('error.' + card.errorKind + '.title'), t('error.' + card.errorKind + '.text'), t('take_card')];
      case 'out-of-order': return [t('out_of_order.title'), t('out_of_order.text')];
      default: return [t('starting.title')];
    }
  }

  // The clips that speak a screen. The outcome itself only where [kiosk] speech_output
  // allows it; with "none" the citizen hears that the answer is on the screen.
  function screenClips(now) {
    let clips;
    switch (now) {
      case 'idle': clips = [labelClip(), 'idle.title', 'idle.text']; break;
      case 'reading': clips = ['reading.title', 'reading.text']; break;
      case 'outcome':
        clips = [labelClip()].concat(
          agent.speechOutput === 'none' ? ['outcome.private'] : [card.decision + '.title', card.decision + '.text'],
          ['take_card']);
        break;
      case 'error': clips = ['error.' + card.errorKind + '.title', 'error.' + card.errorKind + '.text', 'take_card']; break;
      case 'out-of-order': clips = ['out_of_order.title', 'out_of_order.text'].concat(card.session ? ['take_card'] : []); break;
      default: clips = [];
    }
    return clips.filter(Boolean);
  }

  // The one live region. Cleared first so that the same words are said again.
  function announce(words) {
    const region = $('announce');
    region.textContent = '';
    setTimeout(() => { region.textContent = words.filter(Boolean).join(' '); }, 100);
  }

  // ---- The voice: clips played one after the other; a new sentence cuts the old one off.

  const player = $('voice');

  function say(clips) {
    voice.generation += 1;
    voice.queue = clips.map((clip) => '/kiosk/speech/' + ui.lang + '/' + encodeURIComponent(clip) + '.ogg');
    playNext(voice.generation);
  }

  function playNext(generation) {
    if (generation !== voice.generation) return;
    const next = voice.queue.shift();
    if (!next) {
      root.dataset.speaking = 'false';
      return;
    }
    root.dataset.speaking = 'true';
    player.src = next;
    player.volume = LEVELS[voice.level];
    player.play().catch((error) => {
      if (generation !== voice.generation) return; // cut off by a newer sentence
      console.warn('kiosk: cannot play ' + next + ': ' + error.name);
      playNext(generation);
    });
  }

  player.addEventListener('ended', () => playNext(voice.generation));
  player.addEventListener('error', () => {
    if (!player.getAttribute('src')) return;
    console.warn('kiosk: clip failed: ' + player.getAttribute('src'));
    playNext(voice.generation);
  });

  function hush() {
    voice.generation += 1;
    voice.queue = [];
    player.pause();
    root.dataset.speaking = 'false';
  }

  function startSpeech() {
    voice.on = true;
    voice.prefix = ['speech.on'].concat(agent.speechOutput === 'headset' ? ['speech.headset'] : [], ['speech.keys']);
    render();
    rearm();
  }

  function stopSpeech() {
    if (!voice.on) return;
    voice.on = false;
    say(['speech.off']);
    render();
    rearm();
  }

  function repeatScreen() {
    say(screenClips(state()));
  }

  function changeVolume(step) {
    voice.level = Math.min(LEVELS.length - 1, Math.max(0, voice.level + step));
    player.volume = LEVELS[voice.level];
    root.dataset.volume = String(LEVELS[voice.level]);
    if (root.dataset.speaking !== 'true') say(['volume']); // heard at the new volume
    rearm();
  }

  // Back to the standard volume: when the card leaves, and when the kiosk starts over.
  function resetVolume() {
    voice.level = DEFAULT_LEVEL;
    player.volume = LEVELS[DEFAULT_LEVEL];
    root.dataset.volume = String(LEVELS[DEFAULT_LEVEL]);
  }

  // ---- Language

  function setLanguage(lang) {
    if (!LANGS.includes(lang)) return;
    if (lang === ui.lang) return;
    ui.lang = lang;
    voice.prefix = ['lang.name'];
    render();
    rearm();
  }

  function stepLanguage(step) {
    const at = LANGS.indexOf(ui.lang);
    setLanguage(LANGS[(at + step + LANGS.length) % LANGS.length]);
  }

  // ---- Time (WCAG 2.2.1): a citizen's choices (language, speech, volume) last TIMEOUT_MS
  // without a card; WARNING_MS before, the kiosk asks, on screen and aloud, whether they need
  // more time. Any key or touch gives it. Then the next citizen finds the kiosk as new.

  function engaged() {
    return ui.lang !== DEFAULT_LANG || voice.on || voice.level !== DEFAULT_LEVEL;
  }

  function rearm() {
    clearTimeout(timers.warn);
    clearTimeout(timers.startOver);
    if (warning) closeWarning();
    if (!engaged() || card.session || card.view) return;
    timers.warn = setTimeout(openWarning, TIMEOUT_MS - WARNING_MS);
  }

  function openWarning() {
    warning = { returnFocus: document.activeElement };
    $('warning').hidden = false;
    root.dataset.warning = 'true';
    $('more-time').focus();
    announce([t('warning.title'), t('warning.text')]);
    say(['warning.title', 'warning.text']); // aloud even without speech mode: it is no secret
    timers.startOver = setTimeout(startOver, WARNING_MS);
  }

  function closeWarning() {
    const returnFocus = warning && warning.returnFocus;
    warning = null;
    $('warning').hidden = true;
    root.dataset.warning = 'false';
    hush();
    if (returnFocus && returnFocus.focus && returnFocus !== document.body) returnFocus.focus();
  }

  function startOver() {
    closeWarning();
    voice.on = false;
    resetVolume();
    ui.lang = DEFAULT_LANG;
    render();
    console.info('kiosk: started over for the next citizen');
  }

  // Any sign of a citizen: more time.
  function activity() {
    rearm();
  }

  // ---- The card this page follows

  function mayFollow(reader) {
    return !WANTED_READER || reader === WANTED_READER;
  }

  function cardGone() {
    card = { ...NO_CARD };
    clearTimeout(timers.reminder);
    $('reminder').dataset.urgent = 'false';
    resetVolume();
    render();
    rearm();
  }

  // Whether an event about this session concerns us. Takes the card on when the kiosk is
  // free, or when it is a new card in our reader (the old one left while we were not
  // listening): the previous citizen's outcome never stays on screen for the next one.
  function follow(session, reader) {
    if (!session || !mayFollow(reader)) return false;
    if (card.session === session) return true;
    if (card.session === null || reader === card.reader) {
      card = { ...NO_CARD, session, reader, view: 'reading' };
      setReminder();
      rearm();
      render();
      return true;
    }
    return false; // another reader's card while we follow one
  }

  function setReminder() {
    clearTimeout(timers.reminder);
    $('reminder').dataset.urgent = 'false';
    if (card.view !== 'outcome' && card.view !== 'error') return;
    timers.reminder = setTimeout(() => {
      $('reminder').dataset.urgent = 'true';
      announce([t('take_card')]);
      if (voice.on) say(['take_card']);
    }, REMINDER_AFTER_MS);
  }

  function showOutcome(session, decision) {
    if (card.session !== session || card.view === 'outcome') return;
    card.view = 'outcome';
    card.decision = DECISIONS.includes(decision) ? decision : 'unknown';
    setReminder();
    render();
  }

  // A card problem, worded by its cause: a damaged or deactivated card needs the
  // population desk; a card that is no eID needs the right card; anything else, a retry.
  function showError(code) {
    card.view = 'error';
    card.errorKind = code === 'card_damaged' || code === 'not_activated' ? 'desk'
      : code === 'not_beid' ? 'not_beid' : 'retry';
    card.decision = null;
    setReminder();
    render();
  }

  function askAdvice(session) {
    if (card.asked === session || !agent.useCase) return;
    card.asked = session;
    const useCase = agent.useCase.id;
    let attempt = 0;
    const retry = (retryAfter) => {
      if (card.session !== session) return;
      if (attempt >= 4) {
        showOutcome(session, 'unknown');
        return;
      }
      const wait = retryAfter ? Math.min(Number(retryAfter) * 1000 || 1000, 10000) : 1000 * attempt;
      setTimeout(() => { if (card.session === session) ask(); }, wait);
    };
    const ask = () => {
      attempt += 1;
      api('POST', '/v1/sessions/' + encodeURIComponent(session) + '/advice', { useCase })
        .then((response) => {
          if (card.session !== session) return null;
          if (response.status === 410 || response.status === 404) {
            cardGone(); // the card is gone
            return null;
          }
          if (response.status === 429 || response.status >= 500) return retry(response.headers.get('Retry-After'));
          if (!response.ok) {
            console.warn('kiosk: advice refused: ' + response.status);
            showOutcome(session, 'unknown'); // never a "no" from a failure of ours
            return null;
          }
          return response.json().then((answer) => {
            const ours = answer.session === session && answer.useCase === useCase;
            showOutcome(session, ours ? answer.decision : 'unknown');
          });
        })
        .catch((error) => {
          console.warn('kiosk: advice failed: ' + (error.message || error));
          retry(null);
        });
    };
    ask();
  }

  // A session as a snapshot describes it.
  function applySession(summary) {
    if (summary.state === 'error') {
      showError(summary.error);
    } else if (summary.state === 'ready') {
      const advice = (summary.advice || []).find((a) => agent.useCase && a.useCase === agent.useCase.id);
      if (advice) showOutcome(summary.session, advice.decision); else askAdvice(summary.session);
    }
  }

  // A reader whose card cannot be used at all (a mute card, a reader held by another
  // application): a card problem without a session, over once the reader is no longer in
  // error.
  function readerFault(reader) {
    card = { ...NO_CARD, reader };
    showError('reader_error');
    rearm();
  }

  function readersChanged() {
    if (card.view === 'error' && !card.session && card.reader && agent.readers.get(card.reader) !== 'error') cardGone();
  }

  function setReaders(list) {
    agent.readers = new Map((Array.isArray(list) ? list : []).map((reader) => [reader.id, reader.state]));
    readersChanged();
  }

  const handlers = {
    'snapshot': (data) => {
      agent.pcscd = data.pcscd === 'down' ? 'down' : 'up';
      setReaders(data.readers);
      const sessions = Array.isArray(data.sessions) ? data.sessions : [];
      let mine = card.session ? sessions.find((s) => s.session === card.session) : null;
      if (card.session && !mine) cardGone(); // removed while we were not listening
      if (!card.session) {
        mine = sessions.find((s) => mayFollow(s.reader));
        if (mine) follow(mine.session, mine.reader);
      }
      if (mine) {
        applySession(mine);
      } else if (!card.session) {
        const faulty = (data.readers || []).find((r) => r.state === 'error' && !r.session && mayFollow(r.id));
        if (faulty) readerFault(faulty.id);
      }
      render();
    },
    'events-missed': () => { /* a snapshot follows at once */ },
    'pcscd-up': () => {
      agent.pcscd = 'up'; // back, perhaps without a reader yet
      render();
    },
    'reader-added': (data) => {
      agent.readers.set(data.reader, 'empty');
      agent.pcscd = 'up'; // a reader appears only through pcscd
      render();
    },
    'reader-removed': (data) => {
      agent.readers.delete(data.reader);
      if (card.reader === data.reader) cardGone(); else render();
    },
    'card-inserted': (data) => { follow(data.session, data.reader); },
    'card-read': (data) => { if (follow(data.session, data.reader)) askAdvice(data.session); },
    'advice': (data) => {
      if (!agent.useCase || data.useCase !== agent.useCase.id) return; // asked by someone else
      if (follow(data.session, data.reader)) showOutcome(data.session, data.decision);
    },
    'card-removed': (data) => { if (data.session === card.session) cardGone(); },
    'card-error': (data) => {
      if (data.code === 'card_removed') {
        if (data.session === card.session) cardGone();
      } else if (follow(data.session, data.reader)) {
        showError(data.code);
      }
    },
    'reader-error': (data) => {
      if (!data.reader) { // pcscd itself
        agent.pcscd = 'down';
        render();
      } else {
        agent.readers.set(data.reader, 'error');
        if (card.reader === data.reader || (!card.session && mayFollow(data.reader))) readerFault(data.reader);
      }
    }
  };

  // ---- The agent

  function api(method, path, body) {
    const init = {
      method,
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

  class Refused extends Error {
    constructor(code) {
      super('refused: ' + code);
      this.code = code;
    }
  }

  // 401: the token; 403: the client's origins or scopes. Both are set-up problems.
  async function answer(response) {
    if (response.status === 401) throw new Refused('token_refused');
    if (response.status === 403) {
      const body = await response.json().catch(() => ({}));
      throw new Refused(body.error || 'forbidden');
    }
    if (!response.ok) throw new Error('answered ' + response.status);
    return response.json();
  }

  function applyStatus(status) {
    agent.statusLoaded = true;
    agent.pcscd = status.pcscd === 'down' ? 'down' : 'up';
    setReaders(status.readers);
    agent.speechOutput = (status.kiosk && status.kiosk.speechOutput) || 'headset';
    if (status.channel !== 'kiosk' && !agent.channelWarned) {
      agent.channelWarned = true;
      console.warn('kiosk: this agent is a ' + status.channel + ' device: the rule service hears that channel');
    }
    const cases = Array.isArray(status.useCases) ? status.useCases : [];
    const onKiosk = (c) => (c.channels || []).includes('kiosk');
    const chosen = WANTED_USE_CASE ? cases.find((c) => c.id === WANTED_USE_CASE) : cases.find(onKiosk);
    agent.useCase = chosen ? { id: chosen.id, labels: chosen.labels || {} } : null;
    agent.useCaseProblem = !chosen && WANTED_USE_CASE ? 'use_case_unknown'
      : !chosen || !onKiosk(chosen) ? 'use_case_not_on_kiosk' : null;
    if (status.simulator === true) setUpSimulator();
  }

  function connected() {
    agent.connection = 'online';
    agent.refusal = null;
    agent.failingSince = null;
  }

  function failed(error) {
    if (error instanceof Refused) {
      agent.connection = 'refused';
      agent.refusal = error.code;
      return;
    }
    console.warn('kiosk: agent: ' + (error.message || error));
    const now = Date.now();
    if (agent.failingSince === null) agent.failingSince = now;
    if (now - agent.failingSince >= UNREACHABLE_AFTER_MS) agent.connection = 'unreachable';
    else if (agent.connection !== 'unreachable') agent.connection = 'connecting';
  }

  // Reads the status, then opens the event stream when it is not open; again and again,
  // more often while the kiosk cannot serve (that is how it recovers by itself).
  async function check() {
    clearTimeout(timers.check);
    try {
      applyStatus(await answer(await api('GET', '/v1/status')));
      if (agent.connection === 'refused' || agent.connection === 'unreachable') agent.connection = 'connecting';
      agent.failingSince = null;
      if (!stream.source) await openStream();
    } catch (error) {
      failed(error);
      closeStream(); // a stream to an agent that does not answer is no stream: buy a new one
    }
    render();
    const troubled = ui.cause || agent.connection !== 'online' || (card.view === 'error' && !card.session);
    timers.check = setTimeout(check, troubled ? CHECK_OUT_OF_ORDER_MS : CHECK_IN_SERVICE_MS);
  }

  async function openStream() {
    const { ticket } = await answer(await api('POST', '/v1/events/ticket'));
    const source = new EventSource('/v1/events?ticket=' + encodeURIComponent(ticket));
    stream.source = source;
    source.onopen = () => {
      if (stream.source !== source) return;
      connected();
      render();
    };
    // A ticket is single use: never let EventSource retry with it, buy a new one.
    source.onerror = () => {
      if (stream.source !== source) return;
      closeStream();
      failed(new Error('event stream lost'));
      render();
      clearTimeout(timers.check);
      timers.check = setTimeout(check, RETRY_STREAM_MS);
    };
    Object.keys(handlers).forEach((name) => {
      source.addEventListener(name, (event) => {
        if (stream.source !== source) return;
        let data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handlers[name](data || {});
      });
    });
  }

  function closeStream() {
    if (stream.source) stream.source.close();
    stream.source = null;
  }

  // ---- Simulator (serve --simulate only)

  let simulatorReady = false;
  function setUpSimulator() {
    if (simulatorReady) return;
    simulatorReady = true;
    $('simulator').hidden = false;
    api('GET', '/v1/simulator/cards')
      .then((response) => (response.ok ? response.json() : []))
      .then((cards) => {
        const select = $('sim-card');
        select.textContent = '';
        (Array.isArray(cards) ? cards : []).forEach((name) => {
          const option = document.createElement('option');
          option.value = name;
          option.textContent = name;
          select.appendChild(option);
        });
        root.dataset.simulator = 'ready';
      })
      .catch((error) => console.warn('kiosk: simulator cards: ' + (error.message || error)));
    const press = (button, path, body) => {
      button.disabled = true;
      $('sim-status').textContent = '';
      api('POST', path, body())
        .then((response) => { if (!response.ok) $('sim-status').textContent = 'HTTP ' + response.status; })
        .catch((error) => { $('sim-status').textContent = String(error.message || error); })
        .then(() => { button.disabled = false; });
    };
    $('sim-insert').addEventListener('click', () => press($('sim-insert'), '/v1/simulator/insert', () => ({ card: $('sim-card').value })));
    $('sim-remove').addEventListener('click', () => press($('sim-remove'), '/v1/simulator/remove', () => ({})));
  }

  // ---- The keypad and the keyboard (hardware/kiosk.md): the digits of a numeric keypad,
  // with NumLock on or off.

  function command(event) {
    const { key, code } = event;
    if (key === '5' || code === 'Numpad5' || key === 'Clear') return 'speech';
    if (key === '0' || code === 'Numpad0') return 'stop';
    if (key === '4' || code === 'Numpad4') return 'previous';
    if (key === '6' || code === 'Numpad6') return 'next';
    if (key === '+' || code === 'NumpadAdd') return 'louder';
    if (key === '-' || code === 'NumpadSubtract') return 'softer';
    return null;
  }

  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    if (event.target.closest && event.target.closest('#simulator')) return;
    if (warning) { // the key only asks for more time
      event.preventDefault();
      activity();
      return;
    }
    activity();
    switch (command(event)) {
      case 'speech': if (voice.on) repeatScreen(); else startSpeech(); break;
      case 'stop': stopSpeech(); break;
      case 'previous': stepLanguage(-1); break;
      case 'next': stepLanguage(1); break;
      case 'louder': changeVolume(1); break;
      case 'softer': changeVolume(-1); break;
      default: return;
    }
    event.preventDefault();
  });
  document.addEventListener('pointerdown', activity, true);

  document.querySelectorAll('[data-lang]').forEach((button) => {
    button.addEventListener('click', () => setLanguage(button.dataset.lang));
  });
  $('speech').addEventListener('click', () => { if (voice.on) stopSpeech(); else startSpeech(); });
  $('more-time').addEventListener('click', activity);

  // A new token in the fragment later on (same page, so no reload by itself): take it, and
  // start again with it.
  window.addEventListener('hashchange', () => {
    if (new URLSearchParams(location.hash.replace(/^#/, '')).get('token')) location.reload();
  });

  // ---- Start

  resetVolume();
  render();
  if (token) check();
})();
