// The page's link to the agent: its token, its calls, its event stream.
//
// The token comes from the URL fragment (/counter/#token=…): a fragment never reaches a
// server, and the page takes it out of the address bar at once. It is kept in the tab's
// sessionStorage, so a reload keeps working and closing the tab forgets it.

const TOKEN_KEY = 'beid-agent.counter.token';
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 10000;

export const token = takeToken();

function takeToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const fromUrl = fragment.get('token');
  if (fromUrl) {
    try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) { /* private mode */ }
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    return fromUrl;
  }
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
}

// A call to the agent's API with the token; the agent takes JSON bodies only, even empty.
export function api(method, path, body) {
  const init = {
    method,
    headers: { Authorization: `Bearer ${token}` },
    cache: 'no-store',
    credentials: 'omit',
    redirect: 'error'
  };
  if (method === 'POST') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  return fetch(path, init);
}

// The error code of an answer that refuses the page itself (its token, its origin, its
// scopes), or null.
export async function refusal(response) {
  if (response.status !== 401 && response.status !== 403) return null;
  try {
    const answer = await response.json();
    return (answer && answer.error) || 'unauthorized';
  } catch (e) {
    return 'unauthorized';
  }
}

// Keeps the page connected. `prepare()` (the agent's status) runs until it succeeds; it
// resolves to a refusal code or null. Then the event stream, each event to its handler in
// `handlers`; after a loss, a new ticket (each is single use) after a growing wait.
// `report(state, code)` hears 'online', 'offline' and 'refused' (with the agent's code). A
// refused page keeps trying at the slowest pace: the agent's configuration may be fixed.
export function stayConnected({ prepare, handlers, report }) {
  let source = null;
  let backoff = BACKOFF_MIN_MS;
  let timer = null;
  let prepared = false;

  const later = (wait) => {
    clearTimeout(timer);
    timer = setTimeout(attempt, wait);
  };
  const lost = () => {
    report('offline');
    later(backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  };
  const refuse = (code) => {
    report('refused', code);
    later(BACKOFF_MAX_MS);
  };

  function open(ticket) {
    const stream = new EventSource(`/v1/events?ticket=${encodeURIComponent(ticket)}`);
    source = stream;
    stream.onopen = () => {
      backoff = BACKOFF_MIN_MS;
      report('online');
    };
    // EventSource would retry with the same, used ticket: close it and buy a new one.
    stream.onerror = () => {
      if (source !== stream) return;
      stream.close();
      source = null;
      lost();
    };
    for (const [name, handle] of Object.entries(handlers)) {
      stream.addEventListener(name, (event) => {
        if (source !== stream) return;
        let data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handle(data || {});
      });
    }
  }

  async function attempt() {
    if (source) source.close();
    source = null;
    try {
      if (!prepared) {
        const refused = await prepare();
        if (refused) return refuse(refused);
        prepared = true;
      }
      const response = await api('POST', '/v1/events/ticket');
      const refused = await refusal(response);
      if (refused) return refuse(refused);
      if (!response.ok) throw new Error(`ticket answered ${response.status}`);
      const answer = await response.json();
      open(answer.ticket);
    } catch (error) {
      console.warn('agent:', error.message || error);
      lost();
    }
    return null;
  }

  attempt();
}
