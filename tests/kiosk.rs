//! The kiosk page in a real (headless) Chromium against the real agent: what a citizen
//! sees and hears, in each language, from the idle screen to the outcome, and what the
//! kiosk does when it cannot serve.
//!
//! - `serve --simulate --channel kiosk` with its simulator panel: the outcome in the
//!   citizen's language, never a reason or personal data, no request to another host;
//! - the agent in-process (`tests/common/kiosk.rs`): each out-of-order cause that the agent
//!   decides (token, agent gone, use case) and the recovery, the reader the page follows,
//!   speech from the keypad with the clips requested in order, the outcome withheld with
//!   `speech_output = "none"`, the warning before starting over;
//! - `serve --config` on a test pcscd: pcscd down, no reader, card problems by cause.
//!
//! Every state is checked with axe-core in each language, and photographed (portrait,
//! 1080x1920) into `target/kiosk-screens/`. Needs `/usr/bin/chromium`,
//! `/usr/bin/chromedriver` and axe-core (`scripts/install-deps.sh test`).

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::browser;
use common::kiosk::{
    audit_every_language, clips, key, kiosk_page, out_of_order_for, press, ready, record_requests,
    said, screens, serve_kiosk, shows, shows_outcome, use_case, InProcess, Setup, OTHER_TOKEN,
    RECOVERY, SILENT, STEP, USE_CASE,
};
use common::Pcscd;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beid_agent::advice::Channel;
use beid_agent::session::SpeechOutput;
use browser::Browser;

const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");
/// Long enough for the longest run of clips (the speech mode's introduction is ~25 s).
const SPEECH: Duration = Duration::from_secs(90);

/// `beid-agent serve --simulate --channel kiosk` on a free loopback port, killed on drop
/// (panics included).
struct Simulated {
    child: Child,
    base: String,
    token: String,
    _state: tempfile::TempDir,
}

impl Drop for Simulated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Simulated {
    async fn start() -> Simulated {
        let state = tempfile::Builder::new()
            .prefix("beid-kiosk-")
            .tempdir()
            .unwrap();
        let port = common::free_port();
        let child = Command::new(AGENT)
            .args(["serve", "--simulate", "--channel", "kiosk", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("beid-agent starts");
        let mut agent = Simulated {
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

/// The national numbers of the fixture cards: none may ever appear on the page.
fn national_number(card: &str) -> String {
    common::expected(card)["national_number"]
        .as_str()
        .unwrap()
        .to_owned()
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

async fn console_errors(browser: &Browser) -> Vec<String> {
    browser
        .console_logs()
        .await
        .into_iter()
        .filter(|line| line.starts_with("SEVERE"))
        .collect()
}

/// Waits until the page has requested at least `count` clips and said them all; returns
/// the clips requested so far.
async fn wait_said(browser: &Browser, count: usize) -> Vec<String> {
    browser
        .wait_for(
            &format!(
                "performance.getEntriesByType('resource')\
                   .filter(e => e.name.includes('/kiosk/speech/')).length >= {count} && {SILENT}"
            ),
            SPEECH,
        )
        .await;
    clips(browser).await
}

/// An in-process kiosk agent set up so, and a browser on its page for `USE_CASE` with
/// `query`, in service.
async fn open_kiosk(setup: Setup, query: &str) -> (InProcess, Browser) {
    let agent = InProcess::start(setup).await;
    let browser = Browser::start(&[]).await;
    browser
        .goto(&agent.page(&format!("useCase={USE_CASE}&{query}")))
        .await;
    browser.wait_for(&ready(), STEP).await;
    (agent, browser)
}

/// The citizen's card, in speech mode: "reading" said in full in `lang` (the rule service
/// holds its answer meanwhile), then the outcome on screen.
async fn insert_eligible_card(
    agent: &InProcess,
    browser: &Browser,
    lang: &str,
    expected: &mut Vec<String>,
) {
    agent.hold_advice();
    agent.insert(0, "gen-1.8-ec");
    expected.extend(said(lang, &["reading.title", "reading.text"]));
    assert_eq!(wait_said(browser, expected.len()).await, *expected);
    agent.release_advice();
    browser.wait_for(&shows_outcome("eligible"), STEP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_sees_the_outcome_in_their_language_and_nothing_else() {
    let agent = Simulated::start().await;
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
            &format!(
                "{} && document.getElementById('kiosk').dataset.simulator === 'ready' && \
                 document.querySelector('#sim-card option[value=\"gen-1.8-ec\"]') !== null",
                ready()
            ),
            STEP,
        )
        .await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("nl")
    );
    let href = browser.eval("return location.href").await;
    let href = href.as_str().unwrap();
    assert!(
        !href.contains(&agent.token) && !href.contains("token="),
        "{href}"
    );
    assert!(browser.displayed("#simulator").await);
    assert!(browser
        .text("#view-idle")
        .await
        .contains("Steek uw identiteitskaart in de kaartlezer"));
    assert_eq!(browser.text("#topic").await, "UiTPAS met kansentarief");

    // nl: an eligible card. The use case is named once, above the outcome, never repeated
    // inside a sentence.
    browser.select("#sim-card", "gen-1.8-ec").await;
    browser.click("#sim-insert").await;
    browser.wait_for(&shows_outcome("eligible"), STEP).await;
    let outcome = browser.text("#outcome").await;
    assert!(outcome.contains("Goed nieuws"), "{outcome}");
    assert!(!outcome.contains("UiTPAS"), "{outcome}");
    assert!(browser.displayed("#reminder").await);
    assert!(!page_content(&browser)
        .await
        .contains(&national_number("gen-1.8-ec")));
    browser.click("#sim-remove").await;
    browser.wait_for(&shows("idle"), STEP).await;

    // fr: the citizen picks French, then a card the rule service says no to.
    browser.click("[data-lang=fr]").await;
    browser
        .wait_for("document.documentElement.lang === 'fr'", STEP)
        .await;
    assert_eq!(browser.text("#topic").await, "UiTPAS avec tarif réduit");
    browser.select("#sim-card", "gen-1.7-rsa2048").await;
    browser.click("#sim-insert").await;
    browser.wait_for(&shows_outcome("not_eligible"), STEP).await;
    let outcome = browser.text("#outcome").await;
    assert!(
        outcome.contains("Pas possible selon nos données"),
        "{outcome}"
    );
    assert!(outcome.contains("guichet"), "{outcome}");
    browser.click("#sim-remove").await;
    browser.wait_for(&shows("idle"), STEP).await;

    // fr: an expired card: the agent cannot decide; the page never says why.
    browser.select("#sim-card", "alice-2009").await;
    browser.click("#sim-insert").await;
    browser.wait_for(&shows_outcome("unknown"), STEP).await;
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
    browser.click("#sim-remove").await;
    browser.wait_for(&shows("idle"), STEP).await;

    // Nothing but the agent itself: no CDN, no font, no image from elsewhere.
    let foreign = browser
        .eval(
            "return performance.getEntries()\
               .map(e => e.name)\
               .filter(n => /^[a-z]+:/i.test(n) && !n.startsWith(location.origin + '/'))",
        )
        .await;
    assert_eq!(foreign, serde_json::json!([]), "requests to other hosts");
    // No CSP violation, no uncaught error.
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cause_the_agent_decides_puts_the_kiosk_out_of_order_until_it_goes_away() {
    // The agent does not know the page's token.
    let mut agent = InProcess::start(Setup {
        token: OTHER_TOKEN,
        ..Setup::default()
    })
    .await;
    let browser = Browser::start(&[]).await;
    browser
        .goto(&agent.page(&format!("useCase={USE_CASE}&timeout=600")))
        .await;
    browser
        .wait_for(&out_of_order_for("token_refused"), STEP)
        .await;
    // Nothing invites a card; the citizen is sent to the counter, in large type.
    assert!(!browser.displayed("#view-idle").await);
    let screen = browser.text("#view-out-of-order").await;
    assert!(screen.contains("Deze kiosk werkt nu niet"), "{screen}");
    assert!(screen.contains("Ga naar de balie"), "{screen}");
    assert!(!browser.text("main").await.contains("Steek uw"));
    let title_size = browser
        .eval("return parseFloat(getComputedStyle(document.getElementById('out-of-order-title')).fontSize)")
        .await;
    assert!(title_size.as_f64().unwrap() >= 60.0, "{title_size}");
    audit_every_language(&browser, "out-of-order", &out_of_order_for("token_refused")).await;

    // The token is set up: the page comes back by itself.
    agent.restart(Setup::default()).await;
    browser.wait_for(&ready(), RECOVERY).await;

    // The agent stops, and starts again.
    agent.stop().await;
    browser
        .wait_for(&out_of_order_for("agent_unreachable"), RECOVERY)
        .await;
    agent.restart(Setup::default()).await;
    browser.wait_for(&ready(), RECOVERY).await;

    // The use case is offered at the counter only, then on the kiosk too.
    agent
        .restart(Setup {
            use_cases: Some(vec![use_case(USE_CASE, vec![Channel::Counter])]),
            ..Setup::default()
        })
        .await;
    browser
        .wait_for(&out_of_order_for("use_case_not_on_kiosk"), RECOVERY)
        .await;
    agent.restart(Setup::default()).await;
    browser.wait_for(&ready(), RECOVERY).await;

    // A mistyped use case in the kiosk's address: never shown, never asked.
    browser
        .goto(&agent.page("useCase=uitpas-kansentarif&timeout=600"))
        .await;
    browser
        .wait_for(&out_of_order_for("use_case_unknown"), STEP)
        .await;
    assert!(!browser.text("body").await.contains("uitpas-kansentarif"));
    agent
        .restart(Setup {
            use_cases: Some(vec![use_case("uitpas-kansentarif", vec![Channel::Kiosk])]),
            ..Setup::default()
        })
        .await;
    browser.wait_for(&ready(), RECOVERY).await;

    // Each cause is in the browser's log (the kiosk unit's journal keeps it).
    let console = browser.console_logs().await.join("\n");
    for cause in [
        "token_refused",
        "agent_unreachable",
        "use_case_not_on_kiosk",
        "use_case_unknown",
    ] {
        assert!(
            console.contains(&format!("kiosk: out of order: {cause}")),
            "{cause} not logged:\n{console}"
        );
        assert!(
            console.contains(&format!("kiosk: in service again after {cause}")),
            "{cause}'s end not logged:\n{console}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcscd_down_or_no_reader_puts_the_kiosk_out_of_order_until_they_come_back() {
    let mut pcscd = Pcscd::start_without_readers();
    let agent = serve_kiosk(&pcscd);
    let browser = Browser::start(&[]).await;
    browser.goto(&kiosk_page(&agent.base, "timeout=600")).await;
    browser.wait_for(&out_of_order_for("no_reader"), STEP).await;
    assert!(!browser.displayed("#view-idle").await);

    // The technician plugs the reader in (pcscd learns of vpcd's readers at start).
    pcscd.kill();
    pcscd.configure_readers();
    pcscd.launch();
    browser.wait_for(&ready(), RECOVERY).await;

    pcscd.kill();
    browser
        .wait_for(&out_of_order_for("pcscd_down"), RECOVERY)
        .await;
    pcscd.launch();
    browser.wait_for(&ready(), RECOVERY).await;

    let console = browser.console_logs().await.join("\n");
    for cause in ["no_reader", "pcscd_down"] {
        assert!(
            console.contains(&format!("kiosk: out of order: {cause}")),
            "{cause} not logged:\n{console}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_problems_are_worded_by_cause_and_followed_by_the_take_your_card_reminder() {
    let pcscd = Pcscd::start();
    let agent = serve_kiosk(&pcscd);
    let browser = Browser::start(&[]).await;
    browser.goto(&kiosk_page(&agent.base, "timeout=600")).await;
    browser.wait_for(&ready(), STEP).await;

    // (simulated fault, what the page calls it, words the citizen must read in Dutch)
    let problems = [
        // The chip's memory failed: a new card, at the population desk.
        ("B0=6581", "desk", "dienst Burgerzaken"),
        // A refusal that may pass: take it out, put it in again.
        ("B0=6400", "retry", "opnieuw in"),
        // Not a Belgian eID at all.
        ("E4=6D00", "not_beid", "Belgische identiteitskaart in"),
    ];
    for (fault, kind, words) in problems {
        let inserted = pcscd.insert_with("gen-1.8-ec", 0, &["--status-fault", fault]);
        let showing = format!(
            "{} && document.getElementById('view-error').dataset.kind === '{kind}'",
            shows("error")
        );
        browser.wait_for(&showing, STEP).await;
        let text = browser.text("#view-error").await;
        assert!(text.contains(words), "{fault}: {text}");
        assert!(
            browser.displayed("#reminder").await,
            "{fault}: the take-your-card reminder follows a card problem"
        );
        audit_every_language(&browser, &format!("error-{kind}"), &showing).await;
        inserted.remove();
        browser.wait_for(&ready(), STEP).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_in_every_language_passes_axe_and_the_no_fits_in_two_lines() {
    let (agent, browser) = open_kiosk(Setup::default(), "timeout=600").await;
    audit_every_language(&browser, "idle", &ready()).await;

    agent.hold_advice();
    agent.insert(0, "gen-1.8-ec");
    browser.wait_for(&shows("reading"), STEP).await;
    audit_every_language(&browser, "reading", &shows("reading")).await;
    agent.release_advice();
    browser.wait_for(&shows_outcome("eligible"), STEP).await;
    audit_every_language(&browser, "outcome-eligible", &shows_outcome("eligible")).await;
    agent.remove(0);
    browser.wait_for(&ready(), STEP).await;

    agent.insert(0, "gen-1.7-rsa2048");
    browser.wait_for(&shows_outcome("not_eligible"), STEP).await;
    audit_every_language(
        &browser,
        "outcome-not_eligible",
        &shows_outcome("not_eligible"),
    )
    .await;
    // The headline fits in two lines in portrait, in every language, at its size.
    for lang in ["fr", "de", "en", "nl"] {
        browser.click(&format!("[data-lang={lang}]")).await;
        let lines = browser
            .wait_for(
                &format!(
                    "document.documentElement.lang === '{lang}' && \
                     (() => {{ const h = document.getElementById('outcome-title'); \
                     return [h.textContent, h.getBoundingClientRect().height / \
                     parseFloat(getComputedStyle(h).lineHeight), \
                     parseFloat(getComputedStyle(h).fontSize)]; }})()"
                ),
                STEP,
            )
            .await;
        let (headline, lines, size) = (
            lines[0].as_str().unwrap().to_owned(),
            lines[1].as_f64().unwrap(),
            lines[2].as_f64().unwrap(),
        );
        assert!(
            lines.round() <= 2.0,
            "{lang}: {headline:?} takes {lines:.1} lines"
        );
        assert!(size >= 60.0, "{lang}: the headline shrank to {size}px");
    }
    agent.remove(0);
    browser.wait_for(&ready(), STEP).await;

    agent.insert(0, "alice-2009");
    browser.wait_for(&shows_outcome("unknown"), STEP).await;
    audit_every_language(&browser, "outcome-unknown", &shows_outcome("unknown")).await;
    agent.remove(0);
    browser.wait_for(&ready(), STEP).await;

    // Speech mode on: the button says so.
    press(&browser, &[key::NUMPAD_5]).await;
    let speaking = format!(
        "{} && document.getElementById('speech').getAttribute('aria-pressed') === 'true'",
        ready()
    );
    browser.wait_for(&speaking, STEP).await;
    audit_every_language(&browser, "idle-speech", &speaking).await;

    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    assert!(screens().join("outcome-not_eligible-de.png").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyboard_only_path_with_speech_reaches_the_outcome_and_the_clips_come_in_order() {
    let (agent, browser) = open_kiosk(Setup::default(), "timeout=600").await;
    record_requests(&browser).await;
    assert!(clips(&browser).await.is_empty(), "silent until asked");

    // The keypad's 5 (the raised dot) starts speech mode: the keys, then the screen.
    press(&browser, &[key::NUMPAD_5]).await;
    let mut expected = said(
        "nl",
        &[
            "speech.on",
            "speech.headset",
            "speech.keys",
            "use-case.uitpas-kansentarief",
            "idle.title",
            "idle.text",
        ],
    );
    assert_eq!(wait_said(&browser, expected.len()).await, expected);

    // 6: the next language; the screen again, in French.
    press(&browser, &[key::NUMPAD_6]).await;
    expected.extend(said(
        "fr",
        &[
            "lang.name",
            "use-case.uitpas-kansentarief",
            "idle.title",
            "idle.text",
        ],
    ));
    assert_eq!(wait_said(&browser, expected.len()).await, expected);
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("fr")
    );

    // Louder, twice: one "volume" heard at the new level.
    press(&browser, &[key::ADD, key::ADD]).await;
    expected.extend(said("fr", &["volume"]));
    assert_eq!(wait_said(&browser, expected.len()).await, expected);
    assert_eq!(
        browser
            .eval("return document.getElementById('voice').volume")
            .await,
        1.0
    );

    insert_eligible_card(&agent, &browser, "fr", &mut expected).await;
    expected.extend(said(
        "fr",
        &[
            "use-case.uitpas-kansentarief",
            "eligible.title",
            "eligible.text",
            "take_card",
        ],
    ));
    let heard = wait_said(&browser, expected.len()).await;
    assert_eq!(heard[..expected.len()], expected[..], "heard: {heard:#?}");

    // The card leaves: the volume is back to the standard level, the idle screen is said.
    agent.remove(0);
    browser.wait_for(&ready(), STEP).await;
    browser
        .wait_for(
            "document.getElementById('voice').volume === 0.6 && \
             document.getElementById('kiosk').dataset.volume === '0.6'",
            STEP,
        )
        .await;
    let heard = wait_said(&browser, expected.len() + 3).await;
    assert_eq!(
        heard[heard.len() - 2..],
        said("fr", &["idle.title", "idle.text"])[..],
        "{heard:#?}"
    );

    // 0 ends speech mode, and says so.
    press(&browser, &[key::NUMPAD_0]).await;
    browser
        .wait_for(
            "document.getElementById('kiosk').dataset.speech === 'off'",
            STEP,
        )
        .await;
    let heard = wait_said(&browser, heard.len() + 1).await;
    assert_eq!(heard.last().unwrap(), "fr/speech.off");
    let errors = console_errors(&browser).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_speech_output_none_the_outcome_stays_on_the_screen_only() {
    let setup = Setup {
        speech_output: SpeechOutput::None,
        ..Setup::default()
    };
    let (agent, browser) = open_kiosk(setup, "timeout=600").await;
    record_requests(&browser).await;

    // Keyboard only, through the screen's own button: Tab past the four languages, Enter.
    press(
        &browser,
        &[key::TAB, key::TAB, key::TAB, key::TAB, key::TAB],
    )
    .await;
    assert_eq!(
        browser.eval("return document.activeElement.id").await,
        "speech"
    );
    press(&browser, &[key::ENTER]).await;
    let mut expected = said(
        "nl",
        &[
            "speech.on",
            "speech.keys",
            "use-case.uitpas-kansentarief",
            "idle.title",
            "idle.text",
        ],
    );
    assert_eq!(wait_said(&browser, expected.len()).await, expected);

    insert_eligible_card(&agent, &browser, "nl", &mut expected).await;
    expected.extend(said(
        "nl",
        &[
            "use-case.uitpas-kansentarief",
            "outcome.private",
            "take_card",
        ],
    ));
    assert_eq!(wait_said(&browser, expected.len()).await, expected);

    // Left in the reader: the reminder grows, and is said again.
    browser
        .wait_for(
            "document.getElementById('reminder').dataset.urgent === 'true'",
            Duration::from_secs(40),
        )
        .await;
    expected.extend(said("nl", &["take_card"]));
    assert_eq!(wait_said(&browser, expected.len()).await, expected);

    // On the screen, the outcome is there; aloud, never.
    assert!(browser.text("#outcome").await.contains("Goed nieuws"));
    let heard = clips(&browser).await;
    assert!(
        !heard.iter().any(|clip| clip.contains("eligible")),
        "{heard:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_warns_before_starting_over_and_any_key_gives_more_time() {
    // A citizen's choices last 20 s without a card; the warning comes 10 s before the end.
    let (_agent, browser) = open_kiosk(Setup::default(), "timeout=20").await;
    record_requests(&browser).await;
    let warned = "document.getElementById('kiosk').dataset.warning === 'true'";

    // In each language the citizen chose: the warning on screen (focus on "more time") and
    // aloud, without speech mode.
    for lang in ["fr", "de", "en"] {
        if browser.eval(&format!("return {warned}")).await == true {
            press(&browser, &[key::SUBTRACT]).await; // any key: more time
        }
        browser.click(&format!("[data-lang={lang}]")).await;
        browser.wait_for(warned, Duration::from_secs(40)).await;
        assert_eq!(
            browser.eval("return document.activeElement.id").await,
            "more-time"
        );
        let heard = wait_said(&browser, 2).await;
        assert_eq!(
            heard[heard.len() - 2..],
            said(lang, &["warning.title", "warning.text"])[..]
        );
        let violations = common::kiosk::axe_violations(&browser).await;
        assert!(violations.is_empty(), "{lang}: {violations:#?}");
        browser
            .screenshot(screens().join(format!("warning-{lang}.png")))
            .await;
    }

    // Any key gives more time, and the citizen's language stays.
    press(&browser, &[key::TAB]).await;
    browser
        .wait_for(
            "document.getElementById('kiosk').dataset.warning === 'false'",
            STEP,
        )
        .await;
    assert_eq!(
        browser.attribute("html", "lang").await.as_deref(),
        Some("en")
    );
    // No answer this time: the kiosk starts over in its own language, in service.
    browser.wait_for(warned, Duration::from_secs(40)).await;
    browser
        .wait_for(
            &format!(
                "document.documentElement.lang === 'nl' && {} && \
                 document.getElementById('kiosk').dataset.warning === 'false'",
                ready()
            ),
            Duration::from_secs(40),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_only_the_reader_named_in_its_address() {
    let second = InProcess::reader_id(1);
    let (agent, browser) = open_kiosk(Setup::default(), &format!("reader={second}")).await;

    // A card in the other reader (another citizen's): read by the agent, not shown here.
    agent.insert(0, "gen-1.8-ec");
    agent.wait_read(0).await;
    assert_eq!(
        browser.attribute("#kiosk", "data-state").await.as_deref(),
        Some("idle")
    );
    // A card in this kiosk's reader.
    agent.insert(1, "gen-1.7-rsa2048");
    browser.wait_for(&shows_outcome("not_eligible"), STEP).await;
    agent.remove(1);
    browser.wait_for(&ready(), STEP).await;

    // A reader that is not there: the kiosk cannot serve.
    browser
        .goto(&agent.page(&format!("useCase={USE_CASE}&reader=00000000")))
        .await;
    browser.wait_for(&out_of_order_for("no_reader"), STEP).await;
}
