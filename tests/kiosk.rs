//! The kiosk page in a real (headless) Chromium against the real agent: `beid-agent serve
//! --simulate`, the page at /kiosk/ with the demo token in the fragment, cards inserted and
//! removed with the page's own simulator buttons. Checks what a citizen sees (the outcome in
//! their language, never a reason or personal data), that the token leaves the address bar,
//! and that the page talks to no other host.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`,
//! `chromium-driver`; `CHROMIUM` / `CHROMEDRIVER` override). Leaves a screenshot of the
//! eligible outcome at target/kiosk-outcome.png.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;

const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");
/// Long enough for a slow CI machine; a simulated card is read in well under a second.
const STEP: Duration = Duration::from_secs(15);
const USE_CASE: &str = "uitpas-kansentarief";

/// `beid-agent serve --simulate` on a free loopback port, killed on drop (panics included).
struct Agent {
    child: Child,
    base: String,
    token: String,
    _state: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    async fn start() -> Agent {
        let state = tempfile::Builder::new()
            .prefix("beid-kiosk-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(AGENT)
            .args(["serve", "--simulate", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("beid-agent starts");
        let mut agent = Agent {
            child,
            base: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            _state: state,
        };
        agent.wait_healthy().await;
        agent.token = std::fs::read_to_string(agent._state.path().join("demo-token"))
            .expect("serve --simulate writes the demo token")
            .trim()
            .to_owned();
        assert!(
            agent.token.len() >= 32,
            "a demo token of at least 32 characters"
        );
        agent
    }

    /// Waits until GET /healthz answers 200 (the process is starting: nothing else to wait on).
    async fn wait_healthy(&mut self) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("beid-agent serve exited early: {status}");
            }
            let healthy = http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "no /healthz answer in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kiosk-outcome.png")
}

/// A JS expression: the kiosk shows `state` (and, for an outcome, `outcome`).
fn shows(state: &str, outcome: Option<&str>) -> String {
    let kiosk = "document.getElementById('kiosk')";
    match outcome {
        Some(outcome) => format!(
            "{kiosk}.dataset.state === 'outcome' && \
             document.getElementById('outcome').dataset.outcome === '{outcome}'"
        ),
        None => format!("{kiosk}.dataset.state === '{state}'"),
    }
}

/// The national numbers of the fixture cards: none may ever appear on the page.
fn national_number(card: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/expected")
        .join(format!("{card}.json"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    expected["national_number"].as_str().unwrap().to_owned()
}

async fn insert(browser: &Browser, card: &str) {
    browser.select("#sim-card", card).await;
    browser.click("#sim-insert").await;
}

async fn remove(browser: &Browser) {
    browser.click("#sim-remove").await;
    browser.wait_for(&shows("idle", None), STEP).await;
}

/// The whole page, as text and as markup: what must never be shown.
async fn page_content(browser: &Browser) -> String {
    browser
        .eval("return document.body.innerText + '\\n' + document.documentElement.outerHTML")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_sees_the_outcome_in_their_language_and_nothing_else() {
    let agent = Agent::start().await;
    let browser = Browser::start(&[]).await;
    browser
        .goto(&format!(
            "{}/kiosk/?useCase={USE_CASE}&lang=nl#token={}",
            agent.base, agent.token
        ))
        .await;

    // Connected, in Dutch, simulator ready; the token is out of the address bar.
    browser
        .wait_for(
            "document.getElementById('kiosk').dataset.connection === 'online' && \
             document.getElementById('kiosk').dataset.simulator === 'ready' && \
             document.querySelector('#sim-card option[value=\"gen-1.8-ec\"]') !== null",
            STEP,
        )
        .await;
    assert_eq!(
        browser.attribute("#kiosk", "data-state").await.as_deref(),
        Some("idle")
    );
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("nl")
    );
    let href = browser.eval("return location.href").await;
    let href = href.as_str().unwrap();
    assert!(
        !href.contains(&agent.token),
        "the token is still in the address bar: {href}"
    );
    assert!(!href.contains("token="), "{href}");
    assert!(
        browser.displayed("#simulator").await,
        "serve --simulate shows the simulator panel"
    );
    assert!(browser
        .text("#view-idle")
        .await
        .contains("identiteitskaart"));

    // nl: an eligible card.
    insert(&browser, "gen-1.8-ec").await;
    browser
        .wait_for(&shows("outcome", Some("eligible")), STEP)
        .await;
    let outcome = browser.text("#outcome").await;
    assert!(outcome.contains("Goed nieuws"), "{outcome}");
    assert!(outcome.contains("UiTPAS met kansentarief"), "{outcome}");
    assert!(
        browser.displayed("#reminder").await,
        "the take-your-card reminder shows"
    );
    assert!(!page_content(&browser)
        .await
        .contains(&national_number("gen-1.8-ec")));
    browser.screenshot(screenshot_path()).await;
    remove(&browser).await;

    // fr: the citizen picks French, then a card the rule service says no to.
    browser.click("[data-lang=fr]").await;
    browser
        .wait_for("document.documentElement.lang === 'fr'", STEP)
        .await;
    assert_eq!(
        browser
            .attribute("[data-lang=fr]", "aria-pressed")
            .await
            .as_deref(),
        Some("true")
    );
    insert(&browser, "gen-1.7-rsa2048").await;
    browser
        .wait_for(&shows("outcome", Some("not_eligible")), STEP)
        .await;
    let outcome = browser.text("#outcome").await;
    assert!(
        outcome.contains("ne pouvez pas obtenir le tarif réduit"),
        "{outcome}"
    );
    assert!(outcome.contains("UiTPAS avec tarif réduit"), "{outcome}");
    assert!(outcome.contains("guichet"), "{outcome}");
    remove(&browser).await;

    // fr: an expired card: the agent cannot decide; the page never says why.
    insert(&browser, "alice-2009").await;
    browser
        .wait_for(&shows("outcome", Some("unknown")), STEP)
        .await;
    let outcome = browser.text("#outcome").await;
    assert!(
        outcome.contains("Nous ne pouvons pas décider ici"),
        "{outcome}"
    );
    let content = page_content(&browser).await.to_lowercase();
    for secret in [
        "expir",
        "card_expired",
        "2014",
        &national_number("alice-2009"),
    ] {
        assert!(!content.contains(secret), "the page shows {secret:?}");
    }
    remove(&browser).await;

    // Nothing but the agent itself: no CDN, no font, no image from elsewhere.
    let foreign = browser
        .eval(
            "return performance.getEntries()\
               .map(e => e.name)\
               .filter(n => /^[a-z]+:/i.test(n) && !n.startsWith(location.origin + '/'))",
        )
        .await;
    assert_eq!(foreign, serde_json::json!([]), "requests to other hosts");
    let requests = browser
        .eval("return performance.getEntriesByType('resource').length")
        .await;
    assert!(
        requests.as_u64().unwrap() > 0,
        "the Performance API saw the page's requests"
    );

    // No CSP violation, no uncaught error.
    let console = browser.console_logs().await;
    assert!(
        !console.iter().any(|l| l.starts_with("SEVERE")),
        "console errors: {console:#?}"
    );
}
