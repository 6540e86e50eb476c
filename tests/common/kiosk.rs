//! Support for the kiosk page's tests (`tests/kiosk.rs`):
//!
//! - [`InProcess`]: the agent in the test process on simulated readers, as a kiosk device,
//!   restartable on its own port with another set-up (another token, use cases, speech
//!   output) or stopped, with advice that can be held back to keep a card "reading";
//! - [`serve_kiosk`]: `beid-agent serve --config` as a kiosk on a test [`Pcscd`], whose
//!   daemon the test stops, restarts and gives readers;
//! - what a test does to the page beyond [`Browser`]: keys pressed as a keypad would, the
//!   axe-core audit (injected through WebDriver: the page's CSP stays as it is), the speech
//!   clips it requested, screenshots of each state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use beid_agent::advice::{
    AdviceFuture, AdviceRequest, AdviceService, Catalogue, Channel, ServiceStatus, UseCase,
};
use beid_agent::api::{self, AppState, Client, Clients, Scope};
use beid_agent::metrics::Metrics;
use beid_agent::session::{reader_id, Engine, EngineSettings, SpeechOutput};
use beid_agent::sim::SimulatedReaders;

use super::agent::ServedAgent;
use super::browser::Browser;
use super::Pcscd;

/// The kiosk's token, as `openssl rand -hex 32` makes them.
pub const TOKEN: &str = "7d0b5e2a9c41f8e36a5d1c0b9e8f7a6d5c4b3a29180f7e6d5c4b3a2918f0e1d2";
/// Another good token, for an agent that does not know the page's.
pub const OTHER_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// How long one step of a page may take on a slow, shared machine.
pub const STEP: Duration = Duration::from_secs(20);
/// How long the page may take to notice that a cause went away (it checks every 3 s).
pub const RECOVERY: Duration = Duration::from_secs(30);
pub const USE_CASE: &str = "uitpas-kansentarief";
pub const LANGUAGES: [&str; 4] = ["nl", "fr", "de", "en"];
const READERS: [&str; 2] = ["Simulated reader 1", "Simulated reader 2"];

/// A JS expression: the kiosk shows `state`.
pub fn shows(state: &str) -> String {
    format!("document.getElementById('kiosk').dataset.state === '{state}'")
}

/// A JS expression: the kiosk shows this outcome.
pub fn shows_outcome(decision: &str) -> String {
    format!(
        "{} && document.getElementById('outcome').dataset.outcome === '{decision}'",
        shows("outcome")
    )
}

/// A JS expression: the kiosk is out of order for `cause`.
pub fn out_of_order_for(cause: &str) -> String {
    format!(
        "{} && document.getElementById('kiosk').dataset.cause === '{cause}'",
        shows("out-of-order")
    )
}

/// A JS expression: the kiosk is in service, waiting for a card, connected.
pub fn ready() -> String {
    format!(
        "{} && document.getElementById('kiosk').dataset.connection === 'online'",
        shows("idle")
    )
}

/// A JS expression: the voice has said everything it was given.
pub const SILENT: &str = "document.getElementById('kiosk').dataset.speaking !== 'true'";

// ---------------------------------------------------------------------------------------
// The agent in-process

/// What an in-process agent starts with.
#[derive(Clone)]
pub struct Setup {
    /// The token its kiosk client accepts.
    pub token: &'static str,
    pub speech_output: SpeechOutput,
    /// The use cases; the defaults when `None`.
    pub use_cases: Option<Vec<UseCase>>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            token: TOKEN,
            speech_output: SpeechOutput::Headset,
            use_cases: None,
        }
    }
}

/// A kiosk agent in this process: simulated readers, the simulated rule service behind a
/// gate the test opens and closes, the real API on a loopback port.
pub struct InProcess {
    pub base: String,
    port: u16,
    gate: watch::Sender<bool>,
    running: Option<Running>,
}

/// One run of the agent: its own thread and runtime, so that stopping it ends everything it
/// served (event streams included), as when the process ends.
struct Running {
    readers: Arc<SimulatedReaders>,
    engine: Engine,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl InProcess {
    pub async fn start(setup: Setup) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (gate, _) = watch::channel(true);
        let mut agent = Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            gate,
            running: None,
        };
        agent.running = Some(agent.serve(listener, setup).await);
        agent
    }

    async fn serve(&self, listener: std::net::TcpListener, setup: Setup) -> Running {
        listener.set_nonblocking(true).unwrap();
        let (started, running) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let gate = self.gate.subscribe();
        let port = self.port;
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (state, readers, engine) = Self::agent(port, setup, gate);
                let _ = started.send((readers, engine));
                let _ = api::serve(listener, state, async {
                    let _ = stopped.await;
                })
                .await;
            });
            // Dropping the runtime ends every connection it still served.
        });
        let (readers, engine) = running.await.expect("the agent started");
        Running {
            readers,
            engine,
            stop,
            thread,
        }
    }

    /// The agent's state: a kiosk device on two simulated readers.
    fn agent(
        port: u16,
        setup: Setup,
        gate: watch::Receiver<bool>,
    ) -> (AppState, Arc<SimulatedReaders>, Engine) {
        let readers = Arc::new(SimulatedReaders::new(&READERS, false));
        let mut settings = EngineSettings::simulated(None).unwrap();
        settings.channel = Channel::Kiosk;
        settings.device_id = "kiosk-1".into();
        settings.kiosk.speech_output = setup.speech_output;
        settings.advice = Arc::new(Gated {
            inner: settings.advice.clone(),
            open: gate,
        });
        if let Some(use_cases) = setup.use_cases {
            settings.catalogue = Catalogue::new(use_cases).unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::start(readers.clone(), settings, metrics.clone()).unwrap();
        let origins = vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ];
        let clients = Clients::new(vec![Client::new(
            "kiosk",
            setup.token,
            vec![Scope::Advice],
            origins,
        )]);
        let state = AppState::new(engine.clone(), clients, metrics, port);
        (state, readers, engine)
    }

    /// Stops serving: the port refuses connections until [`InProcess::restart`].
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            tokio::task::spawn_blocking(move || running.thread.join())
                .await
                .unwrap()
                .expect("the agent's thread ends");
        }
    }

    /// Serves again on the same port, set up anew (a new engine: sessions start over).
    pub async fn restart(&mut self, setup: Setup) {
        self.stop().await;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.running = Some(self.serve(listener, setup).await);
    }

    /// Advice waits until [`InProcess::release_advice`]: the page stays "reading".
    pub fn hold_advice(&self) {
        self.gate.send_replace(false);
    }

    pub fn release_advice(&self) {
        self.gate.send_replace(true);
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("the agent is running")
    }

    /// Inserts a fixture card into reader 0 or 1.
    pub fn insert(&self, reader: usize, card: &str) {
        self.running()
            .readers
            .insert(Some(READERS[reader]), card)
            .unwrap();
    }

    pub fn remove(&self, reader: usize) {
        self.running()
            .readers
            .remove(Some(READERS[reader]))
            .unwrap();
    }

    /// The public id of reader 0 or 1 (`?reader=`).
    pub fn reader_id(reader: usize) -> String {
        reader_id(READERS[reader])
    }

    /// Waits until the agent has read the card in `reader` (its state is `ready`).
    pub async fn wait_read(&self, reader: usize) {
        let id = Self::reader_id(reader);
        let engine = self.running().engine.clone();
        let mut events = engine.subscribe();
        let is_ready = || {
            engine
                .readers()
                .iter()
                .any(|r| r.id == id && serde_json::to_value(r.state).unwrap() == "ready")
        };
        tokio::time::timeout(STEP, async {
            while !is_ready() {
                let _ = events.recv().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("reader {reader} not ready within {STEP:?}"));
    }

    /// The kiosk page with the kiosk's token, and `query` (`useCase=...&lang=...`).
    pub fn page(&self, query: &str) -> String {
        kiosk_page(&self.base, query)
    }
}

/// The simulated rule service, answering only while the gate is open.
struct Gated {
    inner: Arc<dyn AdviceService>,
    open: watch::Receiver<bool>,
}

impl AdviceService for Gated {
    fn advise<'a>(&'a self, request: AdviceRequest<'a>) -> AdviceFuture<'a> {
        let mut open = self.open.clone();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            self.inner.advise(request).await
        })
    }

    fn status(&self) -> ServiceStatus {
        self.inner.status()
    }
}

/// A use case of the defaults' kind, offered on `channels`.
pub fn use_case(id: &str, channels: Vec<Channel>) -> UseCase {
    let defaults = Catalogue::defaults();
    let labels = defaults.get(USE_CASE).unwrap().labels().clone();
    UseCase::new(id, Some(USE_CASE.into()), labels, channels)
}

// ---------------------------------------------------------------------------------------
// The agent as deployed, on a test pcscd

/// `beid-agent serve --config` as a kiosk device on `pcscd`, asking the simulated rule
/// service, its kiosk client's token [`TOKEN`]; killed when dropped.
pub fn serve_kiosk(pcscd: &Pcscd) -> ServedAgent {
    let dir = tempfile::Builder::new()
        .prefix("beid-kiosk-")
        .tempdir()
        .unwrap();
    super::write_secret(&dir.path().join("token"), TOKEN);
    let port = super::free_port();
    let roots = super::fixtures().join("test-pki");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[upstream]\nkind = \"simulated\"\n\n\
             [device]\nid = \"kiosk-1\"\nchannel = \"kiosk\"\n\n\
             [trust]\nextra_roots = [\"{}\", \"{}\"]\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[api.clients]]\nname = \"kiosk\"\ntoken_file = \"token\"\nscopes = [\"advice\"]\n\
             origins = [\"http://127.0.0.1:{port}\", \"http://localhost:{port}\"]\n\n\
             [kiosk]\nspeech_output = \"headset\"\n",
            roots.join("gen-root-ca4.der").display(),
            roots.join("gen-root-ca6.der").display(),
        ),
    )
    .unwrap();
    ServedAgent::serve(pcscd, dir, port)
}

/// The kiosk page of the agent at `base` with the kiosk's token, and `query`
/// (`useCase=...&lang=...`).
pub fn kiosk_page(base: &str, query: &str) -> String {
    format!("{base}/kiosk/?{query}#token={TOKEN}")
}

impl Pcscd {
    /// Gives a pcscd started without readers its two vpcd readers: they appear when it is
    /// launched again (pcscd reads its reader configuration at start only).
    pub fn configure_readers(&self) {
        std::fs::write(
            self.dir.path().join("conf/vpcd"),
            super::vpcd_reader_conf(self.port),
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// The page

/// Presses and releases each key in turn, as a keyboard or keypad does (WebDriver
/// actions: the page gets trusted events, and with them the right to play sound).
pub async fn press(browser: &Browser, keys: &[&str]) {
    let actions: Vec<Value> = keys
        .iter()
        .flat_map(|key| {
            [
                json!({"type": "keyDown", "value": key}),
                json!({"type": "keyUp", "value": key}),
            ]
        })
        .collect();
    browser
        .command(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keypad", "actions": actions}]})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot press {keys:?}: {e}"));
}

/// WebDriver's codes for keypad keys.
pub mod key {
    pub const NUMPAD_0: &str = "\u{E01A}";
    pub const NUMPAD_4: &str = "\u{E01E}";
    pub const NUMPAD_5: &str = "\u{E01F}";
    pub const NUMPAD_6: &str = "\u{E020}";
    pub const ADD: &str = "\u{E025}";
    pub const SUBTRACT: &str = "\u{E027}";
    pub const TAB: &str = "\u{E004}";
    pub const ENTER: &str = "\u{E007}";
}

/// The speech clips the page has requested so far, in order, as `lang/clip`.
pub async fn clips(browser: &Browser) -> Vec<String> {
    let value = browser
        .eval(
            "return performance.getEntriesByType('resource')\
               .map(e => new URL(e.name).pathname)\
               .filter(p => p.startsWith('/kiosk/speech/'))\
               .map(p => decodeURIComponent(p.slice('/kiosk/speech/'.length).replace(/\\.ogg$/, '')))",
        )
        .await;
    serde_json::from_value(value).unwrap()
}

/// Lets the page record every request it makes (the default buffer holds 250).
pub async fn record_requests(browser: &Browser) {
    browser
        .eval("performance.setResourceTimingBufferSize(100000); return true")
        .await;
}

/// `lang/clip` for each clip, in this order.
pub fn said(lang: &str, clips: &[&str]) -> Vec<String> {
    clips.iter().map(|clip| format!("{lang}/{clip}")).collect()
}

fn axe_source() -> String {
    let root = std::process::Command::new("npm")
        .args(["root", "--global"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    let path = Path::new(&root).join("axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing ({}: {e}): run scripts/install-deps.sh test",
            path.display()
        )
    })
}

/// axe-core's violations on the page as it is now (every rule of axe-core's default run:
/// WCAG 2.x A and AA and its best practices), as `rule: targets` lines.
pub async fn axe_violations(browser: &Browser) -> Vec<String> {
    let loaded = browser.eval("return typeof axe === 'object'").await;
    if loaded != Value::Bool(true) {
        let source = axe_source();
        browser
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": format!("{source}\nreturn true;"), "args": []})),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot inject axe-core: {e}"));
    }
    let result = browser
        .command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({
                "script": "const done = arguments[arguments.length - 1];\n\
                           axe.run(document, {resultTypes: ['violations']})\n\
                             .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' ' +\n\
                                 JSON.stringify(v.nodes.map(n => n.target)))))\n\
                             .catch(e => done(['axe failed: ' + e]));",
                "args": []
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("axe-core did not run: {e}"));
    serde_json::from_value(result).unwrap()
}

/// Where screenshots go: `target/kiosk-screens/`.
pub fn screens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kiosk-screens")
}

/// In each language in turn (chosen with the page's own buttons): no axe-core violation,
/// and a screenshot `target/kiosk-screens/{name}-{lang}.png`; `still` must hold after each
/// change of language. Ends in Dutch.
pub async fn audit_every_language(browser: &Browser, name: &str, still: &str) {
    for lang in LANGUAGES.iter().rev() {
        browser.click(&format!("[data-lang={lang}]")).await;
        browser
            .wait_for(
                &format!("document.documentElement.lang === '{lang}' && ({still})"),
                STEP,
            )
            .await;
        let violations = axe_violations(browser).await;
        assert!(
            violations.is_empty(),
            "{name} in {lang}: axe-core violations:\n{}",
            violations.join("\n")
        );
        browser
            .screenshot(screens().join(format!("{name}-{lang}.png")))
            .await;
    }
}
