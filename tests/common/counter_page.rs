//! The counter page's test bench: the agent as deployed on a counter (`serve --config`
//! through pcscd + vpcd, asking the real mTLS test upstream) with the clients a counter
//! page may be given, and what the tests need beyond [`Browser`]'s own steps: typing and
//! pressing keys like a clerk, and finding a national number in any spelling.

// Each test binary uses part of this harness.
#![allow(dead_code)]
// Test support: a failed set-up step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::agent::ServedAgent;
use super::browser::Browser;
use super::upstream::{self, Pki, Reply, Upstream};
use super::Pcscd;

/// The counter page's client with every scope (`openssl rand -hex 32`).
pub const CLERK: &str = "cbe2ab3dfe243b6f8eb6c67aa37f11f4f8b3b35ac2964aa06cc3256eefa63800";
/// A counter page's client with the `advice` scope only.
pub const ADVICE_ONLY: &str = "694e26992e0395e18364efb4238c0102051e932c145d911b73efecb08c524c5d";
/// A token no client has.
pub const UNKNOWN: &str = "ff5220f8e44a22ae782e4e091caba6d7d8597e985daba8f42fafffdb4a364211";

/// How long one step of the page may take on a busy machine (a card is read and advised in
/// well under a second; vpcd notices a card within 0.4 s).
pub const STEP: Duration = Duration::from_secs(30);

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A counter: its pcscd with the vpcd reader, the rule service and the agent.
pub struct Counter {
    // Dropped in this order: the agent before the pcscd it talks to.
    pub agent: ServedAgent,
    pub pcscd: Pcscd,
    pub upstream: Upstream,
    pub pki: Pki,
    /// The page's clients and the catalogue, as given to the agent (for a restart).
    config: String,
    port: u16,
    /// The clients' token files.
    _tokens: tempfile::TempDir,
}

/// The specimen cards (alice-*) need their TEST root too.
const ROOTS: [&str; 1] = ["eid-test-root-ca.crt"];

impl Counter {
    /// A counter whose rule service answers `reply`, with the page's two clients (their
    /// origins are the agent's own: Chromium sends `Origin` on the page's POSTs) and the
    /// POS client of [`ServedAgent`].
    pub async fn start(reply: Reply) -> Counter {
        upstream::install_crypto();
        let pki = Pki::new();
        let upstream = Upstream::start(&pki, reply).await;
        let pcscd = Pcscd::start();
        let port = super::free_port();
        let dir = tempfile::tempdir().unwrap();
        let token_file = |name: &str, token: &str| {
            let path = dir.path().join(name);
            super::write_secret(&path, token);
            path.display().to_string()
        };
        let origins = format!("[\"http://127.0.0.1:{port}\", \"http://localhost:{port}\"]");
        let clients = format!(
            "[[api.clients]]\nname = \"counter-page\"\ntoken_file = \"{}\"\n\
             scopes = [\"advice\", \"identity\", \"national-number\"]\norigins = {origins}\n\n\
             [[api.clients]]\nname = \"counter-page-advice\"\ntoken_file = \"{}\"\n\
             scopes = [\"advice\"]\norigins = {origins}\n\n{USE_CASES}",
            token_file("clerk", CLERK),
            token_file("advice-only", ADVICE_ONLY),
        );
        let agent = ServedAgent::start_on(&pcscd, &upstream.url, &pki, &ROOTS, port, &clients);
        Counter {
            agent,
            pcscd,
            upstream,
            pki,
            config: clients,
            port,
            _tokens: dir,
        }
    }

    /// Stops the agent and starts it again on the same port, as `systemctl restart` does:
    /// its sessions end, and the card in the reader is read again under a new session.
    pub fn restart(&mut self) {
        self.agent.stop();
        self.agent = ServedAgent::start_on(
            &self.pcscd,
            &self.upstream.url,
            &self.pki,
            &ROOTS,
            self.port,
            &self.config,
        );
    }

    /// The counter page with this token in the fragment and `query` (e.g. `lang=en`).
    pub fn page(&self, token: &str, query: &str) -> String {
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{}/counter/{query}#token={token}", self.agent.base)
    }

    /// The agent's audit log as it stands.
    pub fn audit(&self) -> String {
        std::fs::read_to_string(self.audit_path()).unwrap_or_default()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.agent.dir.path().join("state/audit.jsonl")
    }

    /// The audit records of this type.
    pub fn audit_records(&self, kind: &str) -> Vec<Value> {
        self.audit()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|record| record["type"] == kind)
            .collect()
    }

    /// The session as a client with every scope sees it.
    pub async fn session(&self, session: &str) -> Value {
        self.agent
            .http
            .get(format!("{}/v1/sessions/{session}", self.agent.base))
            .bearer_auth(CLERK)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the rule service has received `count` outcomes.
    pub async fn outcomes_received(&self, count: usize) -> Vec<(String, Value)> {
        let deadline = Instant::now() + STEP;
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            poll.tick().await;
            let outcomes = self.upstream.outcomes();
            if outcomes.len() >= count {
                return outcomes;
            }
            assert!(
                Instant::now() < deadline,
                "the rule service received {} outcomes, not {count}, within {STEP:?}",
                outcomes.len()
            );
        }
    }
}

/// The counter's catalogue: UiTPAS on both channels, the LEZ social tariff at the counter
/// only, the free LEZ registration at the kiosk only (the counter page must not show it).
const USE_CASES: &str = r#"
[[use_cases]]
id = "uitpas-kansentarief"
labels = { nl = "UiTPAS met kansentarief", fr = "UiTPAS avec tarif réduit", de = "UiTPAS mit Ermäßigungstarif", en = "UiTPAS with reduced rate" }

[[use_cases]]
id = "lez-social-tariff"
labels = { nl = "LEZ sociaal tarief", fr = "LEZ tarif social", de = "LEZ Sozialtarif", en = "LEZ social tariff" }
channels = ["counter"]

[[use_cases]]
id = "lez-free-registration"
labels = { nl = "Gratis LEZ-registratie", fr = "Enregistrement LEZ gratuit", de = "Kostenlose LEZ-Registrierung", en = "Free LEZ registration" }
channels = ["kiosk"]
"#;

/// A JS expression: the page is connected to the agent's event stream.
pub const ONLINE: &str = "document.getElementById('counter').dataset.connection === 'online'";

/// A JS expression: every use case shown has its advice (or failed to get one).
pub const ADVISED: &str = "(() => { const cases = [...document.querySelectorAll('.use-case')]; \
     return cases.length > 0 && cases.every(c => ['eligible', 'not_eligible', 'unknown', 'failed']\
     .includes(c.dataset.decision)); })()";

/// A JS expression: no card on the page, nothing under `#card-body`.
pub const NO_CARD: &str = "document.getElementById('counter').dataset.card === 'none' && \
     document.getElementById('card-body').childElementCount === 0 && \
     !document.getElementById('card-idle').hidden";

/// The whole page as a user and a script see it: its text and its markup (form values
/// included, which the markup alone does not show).
pub async fn page_content(browser: &Browser) -> String {
    browser
        .eval(
            "return document.body.innerText + '\\n' + document.documentElement.outerHTML + '\\n' + \
             [...document.querySelectorAll('input, select, textarea, output')]\
               .map(e => e.value).join('\\n')",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The text of the first element matching `css` inside the use case `id`.
pub async fn use_case_text(browser: &Browser, id: &str, css: &str) -> String {
    browser
        .text(&format!("[data-use-case=\"{id}\"] {css}"))
        .await
}

async fn element(browser: &Browser, css: &str) -> String {
    let found = browser
        .command(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"));
    found[ELEMENT]
        .as_str()
        .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
        .to_owned()
}

/// Types `text` into the element matching `css` as a clerk would (key by key, so the page
/// sees its input events).
pub async fn type_into(browser: &Browser, css: &str, text: &str) {
    let id = element(browser, css).await;
    browser
        .command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
}

/// Empties the text field matching `css`.
pub async fn clear(browser: &Browser, css: &str) {
    let id = element(browser, css).await;
    browser
        .command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot clear {css}: {e}"));
}

/// A key of the WebDriver keyboard.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    Tab,
    Enter,
    Space,
    Escape,
}

impl Key {
    fn code(self) -> &'static str {
        match self {
            Key::Tab => "\u{E004}",
            Key::Enter => "\u{E007}",
            Key::Space => "\u{E00D}",
            Key::Escape => "\u{E00C}",
        }
    }
}

/// Presses these keys one after the other, wherever the focus is.
pub async fn press(browser: &Browser, keys: &[Key]) {
    let actions: Vec<Value> = keys
        .iter()
        .flat_map(|key| {
            [
                json!({"type": "keyDown", "value": key.code()}),
                json!({"type": "keyUp", "value": key.code()}),
            ]
        })
        .collect();
    browser
        .command(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot press {keys:?}: {e}"));
}

/// The focused element, described as `tag#id.class`.
pub async fn focused(browser: &Browser) -> String {
    browser
        .eval(
            "const e = document.activeElement; \
             return e ? e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + \
                        (e.className ? '.' + String(e.className).split(' ').join('.') : '') : ''",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Whether `text` holds the national number `number` (11 digits) in any spelling the
/// agent's redactor recognises: every run that `beid_core::text::redact_national_numbers`
/// would remove is read back as its digits (separators dropped, digits written as
/// hexadecimal ASCII decoded) and searched for the number. A run of digits that are not
/// ASCII counts as holding it: nothing the agent writes should have one.
pub fn holds_national_number(text: &str, number: &str) -> bool {
    suspicious_runs(text).iter().any(|run| {
        let Some(digits) = run
            .chars()
            .filter(|c| !is_separator(*c))
            .map(|c| c.is_ascii_digit().then_some(c))
            .collect::<Option<String>>()
        else {
            return true;
        };
        let decoded: String = digits
            .as_bytes()
            .chunks(2)
            .filter(|pair| pair.len() == 2 && pair[0] == b'3')
            .map(|pair| pair[1] as char)
            .collect();
        digits.contains(number) || decoded.contains(number)
    })
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | '-' | '/' | '_' | ',' | ':' | '\'')
}

/// The stretches of `text` the redactor changes: text is cut at every character that can
/// be neither a digit nor a separator, and each piece the redactor alters is kept whole.
fn suspicious_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_numeric() || is_separator(c)))
        .filter(|piece| beid_core::text::redact_national_numbers(piece) != *piece)
        .map(str::to_owned)
        .collect()
}

/// Gives the page `width` x `height` CSS pixels through Chromium's device emulation (the
/// window cannot be made narrower than 500 px): what a counter page gets in a narrow window
/// beside the POS. `innerWidth` and screenshots follow it.
pub async fn emulate_viewport(browser: &Browser, width: u32, height: u32) {
    browser
        .command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot emulate {width}x{height}: {e}"));
    let inner = browser.eval("return [innerWidth, innerHeight]").await;
    assert_eq!(inner, json!([width, height]), "the emulated viewport");
}

/// Ends [`emulate_viewport`]: the page gets the window's size again.
pub async fn window_viewport(browser: &Browser) {
    browser
        .command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot end the emulation: {e}"));
}
