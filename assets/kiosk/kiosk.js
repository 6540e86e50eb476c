// The self-service kiosk page of beid-agent (docs/local-api.md, "Kiosk page").
//
// Shows only the outcome in the citizen's language: never a reason, never personal data.
// Talks only to its own origin. The token comes from the URL fragment, is kept in
// sessionStorage, and is removed from the address bar at once.
'use strict';

(function () {
  // ---- The token: out of the address bar before anything else happens.
  var TOKEN_KEY = 'beid-agent.kiosk.token';
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

  // ---- Texts (B1 level). {label} is the use case's label in the same language.
  var TEXT = {
    nl: {
      pageTitle: 'Verminderd tarief – kiosk',
      languages: 'Kies uw taal',
      idleTitle: 'Steek uw identiteitskaart in de kaartlezer',
      idleText: 'Zo kijken we of u het verminderd tarief kunt krijgen voor {label}.',
      idleTextGeneric: 'Zo kijken we of u een verminderd tarief kunt krijgen.',
      readingTitle: 'We lezen uw kaart…',
      readingText: 'Laat uw kaart in de lezer zitten. Dit duurt even.',
      eligibleTitle: 'Goed nieuws!',
      eligibleText: 'U kunt het verminderd tarief krijgen voor {label}.',
      not_eligibleTitle: 'U kunt het verminderd tarief voor {label} niet krijgen op basis van de gegevens die we hebben.',
      not_eligibleText: 'Hebt u vragen? Stel ze aan de balie.',
      unknownTitle: 'We kunnen hier niet beslissen.',
      unknownText: 'Vraag het aan de balie, alstublieft.',
      errorTitle: 'We konden uw kaart niet lezen',
      errorText: 'Neem uw kaart uit de lezer en probeer opnieuw. Of vraag hulp aan de balie.',
      takeCard: 'Vergeet uw kaart niet. Neem uw kaart uit de lezer.',
      connecting: 'Verbinding maken…',
      readerDown: 'De kaartlezer werkt nu niet. Vraag hulp aan de balie.',
      unconfigured: 'Deze kiosk is niet ingesteld. Vraag hulp aan de balie.',
      simTitle: 'Simulator',
      simCard: 'Kaart',
      simInsert: 'Kaart insteken',
      simRemove: 'Kaart uitnemen'
    },
    fr: {
      pageTitle: 'Tarif réduit – borne',
      languages: 'Choisissez votre langue',
      idleTitle: 'Introduisez votre carte d’identité dans le lecteur',
      idleText: 'Nous regardons si vous pouvez obtenir le tarif réduit pour {label}.',
      idleTextGeneric: 'Nous regardons si vous pouvez obtenir un tarif réduit.',
      readingTitle: 'Nous lisons votre carte…',
      readingText: 'Laissez votre carte dans le lecteur. Cela prend un moment.',
      eligibleTitle: 'Bonne nouvelle\u00a0!',
      eligibleText: 'Vous pouvez obtenir le tarif réduit pour {label}.',
      not_eligibleTitle: 'Avec les informations dont nous disposons, vous ne pouvez pas obtenir le tarif réduit pour {label}.',
      not_eligibleText: 'Vous avez des questions\u00a0? Adressez-vous au guichet.',
      unknownTitle: 'Nous ne pouvons pas décider ici.',
      unknownText: 'Adressez-vous au guichet, s’il vous plaît.',
      errorTitle: 'Nous n’avons pas pu lire votre carte',
      errorText: 'Retirez votre carte du lecteur et réessayez. Ou demandez de l’aide au guichet.',
      takeCard: 'N’oubliez pas votre carte. Retirez\u2011la du lecteur.',
      connecting: 'Connexion en cours…',
      readerDown: 'Le lecteur de cartes ne fonctionne pas. Demandez de l’aide au guichet.',
      unconfigured: 'Cette borne n’est pas configurée. Demandez de l’aide au guichet.',
      simTitle: 'Simulateur',
      simCard: 'Carte',
      simInsert: 'Introduire la carte',
      simRemove: 'Retirer la carte'
    },
    de: {
      pageTitle: 'Ermäßigter Tarif – Kiosk',
      languages: 'Wählen Sie Ihre Sprache',
      idleTitle: 'Stecken Sie Ihren Personalausweis in das Lesegerät',
      idleText: 'Wir sehen dann nach, ob Sie den ermäßigten Tarif für {label} bekommen können.',
      idleTextGeneric: 'Wir sehen dann nach, ob Sie einen ermäßigten Tarif bekommen können.',
      readingTitle: 'Wir lesen Ihre Karte\u00a0…',
      readingText: 'Lassen Sie Ihre Karte im Lesegerät. Das dauert einen Moment.',
      eligibleTitle: 'Gute Nachricht!',
      eligibleText: 'Sie können den ermäßigten Tarif für {label} bekommen.',
      not_eligibleTitle: 'Mit den Angaben, die wir haben, können Sie den ermäßigten Tarif für {label} nicht bekommen.',
      not_eligibleText: 'Haben Sie Fragen? Fragen Sie am Schalter.',
      unknownTitle: 'Wir können das hier nicht entscheiden.',
      unknownText: 'Bitte fragen Sie am Schalter.',
      errorTitle: 'Wir konnten Ihre Karte nicht lesen',
      errorText: 'Nehmen Sie Ihre Karte aus dem Lesegerät und versuchen Sie es noch einmal. Oder fragen Sie am Schalter.',
      takeCard: 'Vergessen Sie Ihre Karte nicht. Nehmen Sie sie aus dem Lesegerät.',
      connecting: 'Verbindung wird hergestellt\u00a0…',
      readerDown: 'Das Lesegerät funktioniert gerade nicht. Fragen Sie am Schalter.',
      unconfigured: 'Dieser Kiosk ist nicht eingerichtet. Fragen Sie am Schalter.',
      simTitle: 'Simulator',
      simCard: 'Karte',
      simInsert: 'Karte einstecken',
      simRemove: 'Karte herausnehmen'
    },
    en: {
      pageTitle: 'Reduced rate – kiosk',
      languages: 'Choose your language',
      idleTitle: 'Put your ID card in the card reader',
      idleText: 'We will check if you can get the reduced rate for {label}.',
      idleTextGeneric: 'We will check if you can get a reduced rate.',
      readingTitle: 'Reading your card…',
      readingText: 'Please leave your card in the reader. This takes a moment.',
      eligibleTitle: 'Good news!',
      eligibleText: 'You can get the reduced rate for {label}.',
      not_eligibleTitle: 'You cannot get the reduced rate for {label} based on the information we have.',
      not_eligibleText: 'Questions? Ask at the counter.',
      unknownTitle: 'We cannot decide here.',
      unknownText: 'Please ask at the counter.',
      errorTitle: 'We could not read your card',
      errorText: 'Take your card out and try again. Or ask at the counter.',
      takeCard: 'Don’t forget your card. Take it out of the reader.',
      connecting: 'Connecting…',
      readerDown: 'The card reader is not working right now. Please ask at the counter.',
      unconfigured: 'This kiosk is not set up. Please ask at the counter.',
      simTitle: 'Simulator',
      simCard: 'Card',
      simInsert: 'Insert card',
      simRemove: 'Remove card'
    }
  };
  var LANGS = ['nl', 'fr', 'de', 'en'];
  var DECISIONS = ['eligible', 'not_eligible', 'unknown'];
  var REMINDER_AFTER_MS = 20000; // the "take your card" reminder grows after this
  var LANGUAGE_RESET_MS = 120000; // back to the default language when nobody is there
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 10000;

  var query = new URLSearchParams(location.search);
  var defaultLang = LANGS.indexOf(query.get('lang')) >= 0 ? query.get('lang') : 'nl';

  var ui = {
    lang: defaultLang,
    view: 'idle', // idle | reading | outcome | error
    outcome: null, // eligible | not_eligible | unknown
    connection: 'connecting', // connecting | online | unconfigured
    readerDown: false
  };
  var card = { session: null, reader: null, asked: null };
  var useCase = { id: query.get('useCase'), labels: null };
  var stream = { source: null, backoff: BACKOFF_MIN_MS, timer: null, epoch: 0 };
  var timers = { reminder: null, language: null };

  var $ = function (id) { return document.getElementById(id); };
  var root = $('kiosk');

  // ---- Rendering

  function t(key) {
    var table = TEXT[ui.lang] || TEXT.nl;
    var text = table[key] !== undefined ? table[key] : TEXT.en[key];
    // Before /v1/status has named the use case: the sentence without it, if there is one.
    if (text && text.indexOf('{label}') >= 0 && !label() && table[key + 'Generic']) {
      return table[key + 'Generic'];
    }
    return text;
  }

  function label() {
    var labels = useCase.labels || {};
    return labels[ui.lang] || labels.en || labels.nl || useCase.id || '';
  }

  // Fills an element with a text, the label (configuration, so text only) in bold.
  function fill(element, key) {
    var text = t(key) || '';
    element.textContent = '';
    text.split('{label}').forEach(function (part, index) {
      if (index > 0) {
        var strong = document.createElement('strong');
        strong.className = 'label';
        strong.textContent = label();
        element.appendChild(strong);
      }
      element.appendChild(document.createTextNode(part));
    });
    element.hidden = text === '';
  }

  function render() {
    document.documentElement.lang = ui.lang;
    document.title = t('pageTitle');
    $('languages').setAttribute('aria-label', t('languages'));
    Array.prototype.forEach.call(document.querySelectorAll('[data-lang]'), function (button) {
      button.setAttribute('aria-pressed', String(button.getAttribute('data-lang') === ui.lang));
    });
    Array.prototype.forEach.call(document.querySelectorAll('[data-text]'), function (element) {
      fill(element, element.getAttribute('data-text'));
    });

    root.setAttribute('data-state', ui.view);
    $('view-idle').hidden = ui.view !== 'idle';
    $('view-reading').hidden = ui.view !== 'reading';
    $('view-error').hidden = ui.view !== 'error';
    var outcome = $('outcome');
    outcome.hidden = ui.view !== 'outcome';
    if (ui.outcome) {
      outcome.setAttribute('data-outcome', ui.outcome);
      fill($('outcome-title'), ui.outcome + 'Title');
      fill($('outcome-text'), ui.outcome + 'Text');
    } else { // nothing of the previous citizen's outcome stays in the page
      outcome.removeAttribute('data-outcome');
      $('outcome-title').textContent = '';
      $('outcome-text').textContent = '';
    }
    $('reminder').hidden = ui.view !== 'outcome';

    root.setAttribute('data-connection', ui.connection);
    var problem = ui.connection === 'unconfigured' ? 'unconfigured'
      : ui.connection !== 'online' ? 'connecting'
        : ui.readerDown ? 'readerDown' : null;
    $('connection').hidden = problem === null;
    $('connection').setAttribute('data-problem', problem || '');
    $('connection-text').textContent = problem ? t(problem) : '';
  }

  // The one live region. Cleared first so the same words are said again when repeated.
  function announce() {
    var region = $('announce');
    var words;
    if (ui.view === 'idle') words = [t('idleTitle'), fillText('idleText')];
    else if (ui.view === 'reading') words = [t('readingTitle'), t('readingText')];
    else if (ui.view === 'error') words = [t('errorTitle'), t('errorText')];
    else {
      words = [fillText(ui.outcome + 'Title'), fillText(ui.outcome + 'Text'), t('takeCard')];
    }
    region.textContent = '';
    setTimeout(function () {
      region.textContent = words.filter(Boolean).join(' ');
    }, 100);
  }

  function fillText(key) {
    return (t(key) || '').split('{label}').join(label());
  }

  function show(view, outcome) {
    var changed = view !== ui.view || outcome !== ui.outcome;
    ui.view = view;
    ui.outcome = view === 'outcome' ? outcome : null;
    clearTimeout(timers.reminder);
    $('reminder').setAttribute('data-urgent', 'false');
    if (view === 'outcome') {
      timers.reminder = setTimeout(function () {
        $('reminder').setAttribute('data-urgent', 'true');
        var region = $('announce');
        region.textContent = '';
        setTimeout(function () { region.textContent = t('takeCard'); }, 100);
      }, REMINDER_AFTER_MS);
    }
    render();
    if (changed) announce();
    scheduleLanguageReset();
  }

  function setLanguage(lang) {
    if (LANGS.indexOf(lang) < 0) return;
    ui.lang = lang;
    render();
    announce();
    scheduleLanguageReset();
  }

  // The next citizen starts in the default language once the kiosk has been idle a while.
  function scheduleLanguageReset() {
    clearTimeout(timers.language);
    if (ui.view !== 'idle' || ui.lang === defaultLang) return;
    timers.language = setTimeout(function () {
      if (ui.view === 'idle' && ui.lang !== defaultLang) {
        ui.lang = defaultLang;
        render();
      }
    }, LANGUAGE_RESET_MS);
  }

  function setConnection(connection) {
    if (ui.connection === connection) return;
    ui.connection = connection;
    render();
  }

  // ---- The card session this page follows

  function goIdle() {
    card.session = null;
    card.reader = null;
    card.asked = null;
    show('idle');
  }

  // Whether an event about this session concerns us. Takes the card on when the kiosk is
  // free, or when it is a new card in our reader (the old one left while we were not
  // listening): the previous citizen's outcome never stays on screen for the next one.
  function follow(session, reader) {
    if (!session) return false;
    if (card.session === session) return true;
    if (card.session === null || (reader && reader === card.reader)) {
      card.session = session;
      card.reader = reader || null;
      card.asked = null;
      show('reading');
      return true;
    }
    return false; // another reader's card while we follow one
  }

  function showOutcome(session, decision) {
    if (card.session !== session || ui.view === 'outcome') return;
    show('outcome', DECISIONS.indexOf(decision) >= 0 ? decision : 'unknown');
  }

  function askAdvice(session) {
    if (card.asked === session) return;
    card.asked = session;
    var attempt = 0;
    var ask = function () {
      attempt += 1;
      api('POST', '/v1/sessions/' + encodeURIComponent(session) + '/advice', { useCase: useCase.id })
        .then(function (response) {
          if (card.session !== session) return null;
          if (response.status === 410 || response.status === 404) {
            goIdle(); // the card is gone
            return null;
          }
          if (response.status === 429 || response.status >= 500) {
            return retry(response.headers.get('Retry-After'));
          }
          if (!response.ok) {
            console.warn('advice refused:', response.status);
            showOutcome(session, 'unknown'); // never a "no" from a failure of ours
            return null;
          }
          return response.json().then(function (answer) {
            if (answer.session === session && answer.useCase === useCase.id) {
              showOutcome(session, answer.decision);
            } else {
              showOutcome(session, 'unknown');
            }
          });
        })
        .catch(function (error) {
          console.warn('advice failed:', error);
          retry(null);
        });
    };
    var retry = function (retryAfter) {
      if (card.session !== session) return;
      if (attempt >= 4) {
        showOutcome(session, 'unknown');
        return;
      }
      var wait = retryAfter ? Math.min(Number(retryAfter) * 1000 || 1000, 10000) : 1000 * attempt;
      setTimeout(function () { if (card.session === session) ask(); }, wait);
    };
    ask();
  }

  // A reader state ("reading" | "ready" | "error") for the session we follow ("reading" is
  // already on screen: follow() put it there).
  function applyReaderState(session, state) {
    if (state === 'ready') {
      askAdvice(session);
    } else if (state === 'error') {
      show('error');
    }
  }

  var handlers = {
    'card-inserted': function (data) {
      follow(data.session, data.reader); // shows "reading" when it is ours
      if (ui.readerDown) {
        ui.readerDown = false;
        render();
      }
    },
    'card-read': function (data) {
      if (follow(data.session, data.reader)) applyReaderState(data.session, 'ready');
    },
    'advice': function (data) {
      if (data.useCase !== useCase.id) return; // another use case, asked by someone else
      if (follow(data.session, data.reader)) showOutcome(data.session, data.decision);
    },
    'snapshot': function () {
      resync();
    },
    'events-missed': function () {
      resync();
    },
    'card-error': function (data) {
      if (data.code === 'card_removed') {
        if (data.session === card.session) goIdle();
        return;
      }
      if (follow(data.session, data.reader)) show('error');
    },
    'reader-error': function (data) {
      if (data.code === 'pcscd_down') {
        ui.readerDown = true;
        render();
        return;
      }
      if (card.reader !== null && data.reader === card.reader) show('error');
    },
    'card-removed': function (data) {
      if (data.session === card.session || (data.reader && data.reader === card.reader)) goIdle();
    },
    'reader-added': function () {
      ui.readerDown = false;
      render();
    },
    'reader-removed': function (data) {
      if (data.reader && data.reader === card.reader) goIdle();
    }
  };

  // After (re)connecting, events may have been missed: the readers' states say where we are.
  function resync() {
    var epoch = stream.epoch;
    api('GET', '/v1/readers')
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (readers) {
        if (!Array.isArray(readers) || epoch !== stream.epoch) return; // events moved on meanwhile
        var mine = null;
        var first = null;
        readers.forEach(function (reader) {
          if (!reader.session) return;
          if (reader.session === card.session) mine = reader;
          if (!first) first = reader;
        });
        if (card.session !== null && !mine) goIdle(); // removed while we were not listening
        var reader = mine || first;
        if (reader && follow(reader.session, reader.id)) applyReaderState(reader.session, reader.state);
      })
      .catch(function (error) { console.warn('resync failed:', error); });
  }

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

  function refused(response, what) {
    var error = new Error(what + ' answered ' + response.status);
    error.unauthorized = response.status === 401 || response.status === 403;
    return error;
  }

  function loadStatus() {
    return api('GET', '/v1/status').then(function (response) {
      if (!response.ok) throw refused(response, 'status');
      return response.json();
    }).then(function (status) {
      var cases = Array.isArray(status.useCases) ? status.useCases : [];
      var chosen = null;
      cases.forEach(function (c) {
        if (useCase.id ? c.id === useCase.id : (!chosen && (c.channels || []).indexOf('kiosk') >= 0)) {
          chosen = chosen || c;
        }
      });
      if (chosen) {
        useCase.id = chosen.id;
        useCase.labels = chosen.labels || null;
      } else {
        console.error('no use case for the kiosk:', useCase.id || '(none on the kiosk channel)');
      }
      ui.readerDown = status.pcscd === 'down';
      if (status.simulator === true) setUpSimulator();
      render();
    });
  }

  function connect() {
    clearTimeout(stream.timer);
    if (stream.source) stream.source.close();
    stream.source = null;
    setConnection('connecting');
    api('POST', '/v1/events/ticket')
      .then(function (response) {
        if (!response.ok) throw refused(response, 'ticket');
        return response.json();
      })
      .then(function (answer) {
        var source = new EventSource('/v1/events?ticket=' + encodeURIComponent(answer.ticket));
        stream.source = source;
        source.onopen = function () {
          stream.backoff = BACKOFF_MIN_MS;
          setConnection('online');
          resync();
        };
        // A ticket is single use: never let EventSource retry with it, buy a new one.
        source.onerror = function () {
          if (stream.source !== source) return;
          source.close();
          stream.source = null;
          reconnectLater();
        };
        Object.keys(handlers).forEach(function (name) {
          source.addEventListener(name, function (event) {
            if (stream.source !== source) return;
            var data;
            try { data = JSON.parse(event.data); } catch (e) { return; }
            stream.epoch += 1;
            handlers[name](data || {});
          });
        });
      })
      .catch(function (error) {
        console.warn('event stream:', error.message || error);
        reconnectLater(error.unauthorized);
      });
  }

  // A token the agent does not accept is a set-up problem, not a connection problem: the
  // page says so, and keeps trying (at the slowest pace) in case the token is fixed.
  function reconnectLater(unauthorized) {
    setConnection(unauthorized ? 'unconfigured' : 'connecting');
    if (unauthorized) stream.backoff = BACKOFF_MAX_MS;
    clearTimeout(stream.timer);
    var wait = stream.backoff;
    stream.backoff = Math.min(stream.backoff * 2, BACKOFF_MAX_MS);
    stream.timer = setTimeout(start, wait);
  }

  // Status first (use case, labels, simulator), then the event stream.
  var started = false;
  function start() {
    (started ? Promise.resolve() : loadStatus().then(function () { started = true; }))
      .then(connect)
      .catch(function (error) {
        console.warn('agent:', error.message || error);
        reconnectLater(error.unauthorized);
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
          var option = document.createElement('option');
          option.value = name;
          option.textContent = name;
          select.appendChild(option);
        });
        root.setAttribute('data-simulator', 'ready');
      })
      .catch(function (error) { console.warn('simulator cards:', error); });
    var press = function (button, path, body) {
      button.disabled = true;
      $('sim-status').textContent = '';
      api('POST', path, body())
        .then(function (response) {
          if (!response.ok) $('sim-status').textContent = 'HTTP ' + response.status;
        })
        .catch(function (error) { $('sim-status').textContent = String(error.message || error); })
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
    button.addEventListener('click', function () { setLanguage(button.getAttribute('data-lang')); });
  });
  render();
  if (!token) {
    setConnection('unconfigured');
    console.error('no token: open the page as /kiosk/#token=…');
  } else {
    start();
  }
})();
