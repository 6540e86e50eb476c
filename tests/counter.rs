//! The clerk's counter page in a real (headless) Chromium, against the agent as deployed on
//! a counter: `serve --config` reading cards through pcscd + vpcd and asking the real mTLS
//! test upstream (tests/common/counter_page.rs). Checks what the issue's "Done when" asks:
//! the page shows the advice and its basis; the clerk records a deviation (after a
//! confirmation, by keyboard); the audit log holds the outcome without the national number;
//! the rule service receives the outcome under the right request id; after the card leaves
//! nothing of the citizen stays in the page. And: the scopes (no name without `identity`;
//! the number only after the button, only with `national-number`), a refused token, the
//! four languages, a registered status never worded as entitlement.
//!
//! Leaves screenshots in target/: counter-beside-pos.png (the page at 420 px beside a
//! 1280-px POS), counter-confirm-360.png (the confirmation step at 360 px).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`CHROMIUM` / `CHROMEDRIVER`
//! override), pcscd and vsmartcard-vpcd (scripts/install-deps.sh).

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::agent::TOKEN;
use common::browser::Browser;
use common::counter_page::{
    clear, emulate_viewport, focused, holds_national_number, page_content, press, type_into,
    use_case_text, window_viewport, Counter, Key, ADVICE_ONLY, ADVISED, CLERK, NO_CARD, ONLINE,
    STEP, UNKNOWN,
};
use common::expected;
use common::simulated::SimulatedServe;
use common::upstream::Reply;
use serde_json::Value;

const UITPAS: &str = "uitpas-kansentarief";

fn national_number(card: &str) -> String {
    expected(card)["national_number"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `03641299855` as Belgian documents write it: `03.64.12-998.55`.
fn formatted(number: &str) -> String {
    format!(
        "{}.{}.{}-{}.{}",
        &number[0..2],
        &number[2..4],
        &number[4..6],
        &number[6..9],
        &number[9..]
    )
}

fn target(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

/// The session of the card in the page (from the readers' list the page shows).
async fn shown_session(counter: &Counter) -> String {
    let readers: Value = counter.agent.get("/v1/readers").await.json().await.unwrap();
    readers
        .as_array()
        .unwrap()
        .iter()
        .find_map(|reader| reader["session"].as_str())
        .expect("a reader with a card")
        .to_owned()
}

/// Takes the card out, as a citizen does, and waits until pcscd saw the reader empty.
async fn take_out(card: common::SimulatedCard) {
    tokio::task::spawn_blocking(move || card.remove())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clerk_sees_the_advice_records_a_deviation_and_the_page_clears() {
    let counter = Counter::start(Reply::Decide("eligible")).await;
    let browser = Browser::start(&[]).await;
    emulate_viewport(&browser, 420, 1400).await;
    browser.goto(&counter.page(CLERK, "lang=en")).await;
    browser.wait_for(ONLINE, STEP).await;

    // The token left the address bar at once; the reader is listed, empty.
    let href = browser.eval("return location.href").await;
    assert!(!href.as_str().unwrap().contains("token"), "{href}");
    browser
        .wait_for(
            "document.querySelector('.reader[data-state=\"empty\"] .reader-name')?.textContent === 'Virtual PCD 00 00'",
            STEP,
        )
        .await;
    assert!(browser.text("#card").await.contains("Insert the citizen"));

    // A card: authentic, valid, the name (scope identity), three use cases advised.
    let card = counter.pcscd.insert("gen-1.8-ec");
    browser.wait_for(ADVISED, STEP).await;
    let session = shown_session(&counter).await;
    let facts = browser.text(".facts").await;
    assert!(
        facts.contains("Authentic card: National Register signature valid"),
        "{facts}"
    );
    assert!(facts.contains("Valid until 3 February 2035"), "{facts}");
    let identity = counter.session(&session).await["identity"].clone();
    let name = browser.text(".identity-row[data-field=name] dd").await;
    assert_eq!(
        name,
        format!(
            "{}, {}",
            identity["surname"].as_str().unwrap(),
            identity["firstNames"].as_str().unwrap()
        )
    );
    let shown: Vec<Value> = browser
        .eval("return [...document.querySelectorAll('.use-case')].map(c => c.dataset.useCase)")
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        shown,
        ["uitpas-kansentarief", "lez-social-tariff"],
        "the use cases of the counter channel (not the kiosk's), in the configured order"
    );

    // The advice and its basis, worded for the clerk; the reason code has no configured
    // label here, so the code itself is shown.
    assert_eq!(
        use_case_text(&browser, UITPAS, ".verdict-text").await,
        "Eligible"
    );
    for (detail, expected) in [
        ("reason", "TEST-1"),
        ("valid-until", "31 December 2026"),
        ("basis", "Decided by the city’s rules on authentic sources."),
    ] {
        assert_eq!(
            detail_of(&browser, UITPAS, detail).await,
            expected,
            "{detail}"
        );
    }

    // The national number: nowhere before the clerk asks; then formatted, and audited.
    let number = national_number("gen-1.8-ec");
    assert!(!holds_national_number(
        &page_content(&browser).await,
        &number
    ));
    let asked_before = counter
        .audit_records("api_request")
        .iter()
        .filter(|r| r["route"] == "/v1/sessions/{session}/national-number")
        .count();
    assert_eq!(asked_before, 0, "nothing asked for the number yet");
    browser.click("#show-national-number").await;
    let shown = browser
        .wait_for(
            "document.getElementById('national-number')?.textContent || ''",
            STEP,
        )
        .await;
    assert_eq!(shown.as_str().unwrap(), formatted(&number));
    let asked = counter.audit_records("api_request");
    assert!(
        asked
            .iter()
            .any(|r| r["route"] == "/v1/sessions/{session}/national-number"
                && r["client"] == "counter-page"
                && r["session"] == session.as_str()
                && r["status"] == 200),
        "the request for the number is audited: {asked:?}"
    );
    browser.click(".nn-hide").await;
    assert!(!holds_national_number(
        &page_content(&browser).await,
        &number
    ));

    // What the clerk sees beside the POS, the advice on screen.
    let shots = tempfile::tempdir().unwrap();
    emulate_viewport(&browser, 420, 1000).await;
    let advice_shot = browser.screenshot(shots.path().join("advice.png")).await;
    emulate_viewport(&browser, 420, 1400).await;

    // The clerk decides otherwise than the advice: a reason is asked, and a note shaped
    // like a national number is caught before anything is sent.
    let uitpas = format!("[data-use-case=\"{UITPAS}\"]");
    browser
        .click(&format!("{uitpas} input[value=not_granted]"))
        .await;
    browser
        .wait_for(
            &format!("!document.querySelector('{uitpas} .deviation').hidden"),
            STEP,
        )
        .await;
    assert!(use_case_text(&browser, UITPAS, ".deviation-why")
        .await
        .contains("differs from the advice"));
    browser.click(&format!("{uitpas} .record")).await;
    assert_eq!(
        use_case_text(&browser, UITPAS, ".form-error").await,
        "Choose a reason."
    );
    browser
        .select(&format!("#reason-{UITPAS}"), "household_situation")
        .await;
    type_into(
        &browser,
        &format!("#note-{UITPAS}"),
        "Partner 03 64 12 998 55",
    )
    .await;
    assert!(browser.displayed(&format!("{uitpas} .note-warning")).await);
    browser.click(&format!("{uitpas} .record")).await;
    assert!(
        !browser.displayed(&format!("{uitpas} .confirm")).await,
        "no confirmation with a national number in the note"
    );
    let note = "Lives with a partner since May";
    clear(&browser, &format!("#note-{UITPAS}")).await;
    type_into(&browser, &format!("#note-{UITPAS}"), note).await;
    assert!(!browser.displayed(&format!("{uitpas} .note-warning")).await);

    // A confirmation step, then the keyboard: Tab to "Yes, record", Enter.
    browser.click(&format!("{uitpas} .record")).await;
    assert!(browser.displayed(&format!("{uitpas} .confirm")).await);
    assert_eq!(
        focused(&browser).await,
        format!("p#confirm-title-{UITPAS}.confirm-title")
    );
    assert_eq!(
        use_case_text(&browser, UITPAS, ".confirm-summary").await,
        "Not granted – deviation: Household situation."
    );
    assert_eq!(
        use_case_text(&browser, UITPAS, ".confirm-note").await,
        format!("Note: “{note}”")
    );
    assert!(
        counter.upstream.outcomes().is_empty(),
        "nothing is sent before the clerk confirms"
    );
    emulate_viewport(&browser, 360, 1000).await;
    browser
        .eval(&format!(
            "document.querySelector('{uitpas}').scrollIntoView(); return null"
        ))
        .await;
    let confirm_shot = browser.screenshot(shots.path().join("confirm.png")).await;
    emulate_viewport(&browser, 420, 1400).await;
    assert_eq!(
        focused(&browser).await,
        format!("p#confirm-title-{UITPAS}.confirm-title")
    );
    press(&browser, &[Key::Tab]).await;
    assert_eq!(focused(&browser).await, "button.confirm-yes");
    press(&browser, &[Key::Enter]).await;
    let recorded = browser
        .wait_for(
            &format!("!document.querySelector('{uitpas} .recorded').hidden && document.querySelector('{uitpas} .recorded').textContent"),
            STEP,
        )
        .await;
    let recorded = recorded.as_str().unwrap();
    assert!(
        recorded.starts_with("Recorded at ")
            && recorded.ends_with(": Not granted – deviation: Household situation."),
        "{recorded}"
    );
    assert!(
        !browser.displayed(&format!("{uitpas} .decide")).await,
        "an outcome is recorded once: no form after it"
    );

    // The rule service was asked what the counter offers, nothing else; it receives the
    // outcome under the request id of this card's question.
    let asked: Vec<Value> = counter
        .upstream
        .bodies()
        .iter()
        .map(|body| body["useCase"].clone())
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        !asked.contains(&Value::from("lez-free-registration")),
        "{asked:?}"
    );
    let outcomes = counter.outcomes_received(1).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let (request_id, feedback) = &outcomes[0];
    let question = counter
        .upstream
        .bodies()
        .into_iter()
        .find(|body| body["useCase"] == UITPAS && body["nationalNumber"] == number.as_str())
        .expect("the question for UiTPAS about this card");
    assert_eq!(question["requestId"], request_id.as_str());
    assert_eq!(feedback["decision"], "not_granted");
    assert_eq!(feedback["deviation"]["reason"], "household_situation");
    assert_eq!(feedback["deviation"]["note"], note);
    assert!(!holds_national_number(&feedback.to_string(), &number));

    // The audit log holds the outcome, and the number in no spelling.
    let decisions = counter.audit_records("staff_decision");
    assert!(
        decisions.iter().any(|r| r["session"] == session.as_str()
            && r["use_case"] == UITPAS
            && r["advice"] == "eligible"
            && r["decision"] == "not_granted"
            && r["deviation"] == "household_situation"),
        "{decisions:?}"
    );
    let audit = counter.audit();
    assert!(!holds_national_number(&audit, &number), "{audit}");
    assert!(!audit.contains(note), "the note stays out of the audit log");

    // The card leaves: nothing of this citizen stays in the page.
    let content = page_content(&browser).await;
    assert!(content.contains(&name));
    take_out(card).await;
    browser.wait_for(NO_CARD, STEP).await;
    browser
        .wait_for(
            "document.getElementById('announce').textContent === 'Card removed.'",
            STEP,
        )
        .await;
    let content = page_content(&browser).await;
    for gone in [
        identity["surname"].as_str().unwrap(),
        identity["firstNames"].as_str().unwrap(),
        "Eligible",
        "TEST-1",
        "Recorded at",
        "Household situation",
        note,
        &formatted(&number),
    ] {
        assert!(
            !content.contains(gone),
            "{gone:?} is still in the page:\n{content}"
        );
    }
    assert!(!holds_national_number(&content, &number));
    assert!(browser.text("#card").await.contains("Insert the citizen"));

    // Nothing but the agent itself: no request to another host, no console error.
    let foreign = browser
        .eval(
            "return performance.getEntries().map(e => e.name)\
               .filter(n => /^[a-z]+:/i.test(n) && !n.startsWith(location.origin + '/'))",
        )
        .await;
    assert_eq!(foreign, serde_json::json!([]), "requests to other hosts");
    let console = browser.console_logs().await;
    assert!(
        !console.iter().any(|l| l.starts_with("SEVERE")),
        "console errors: {console:#?}"
    );

    for (shot, name) in [
        (advice_shot, "counter-beside-pos.png"),
        (confirm_shot, "counter-confirm-360.png"),
    ] {
        let composed = beside_pos(&browser, &shot, name).await;
        eprintln!("screenshot: {}", composed.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_a_refused_token_languages_a_registered_status_and_no_advice() {
    let counter = Counter::start(Reply::Registered("not_eligible")).await;
    let browser = Browser::start(&["--lang=de-BE", "--accept-lang=de-BE,de"]).await;
    emulate_viewport(&browser, 420, 1400).await;

    // An unknown token: the page says so plainly, and shows no card.
    browser.goto(&counter.page(UNKNOWN, "lang=en")).await;
    browser
        .wait_for(
            "document.getElementById('counter').dataset.connection === 'refused'",
            STEP,
        )
        .await;
    assert_eq!(
        browser.text("#problem").await,
        "The agent refuses this page’s access token. Ask the IT team to set up the counter page again."
    );
    assert_eq!(
        browser.text("#connection").await,
        "Not signed in to the agent"
    );
    assert!(
        !browser.displayed("#card").await && !browser.displayed("#readers").await,
        "nothing on a refused page suggests that it works"
    );

    // The advice scope alone: the advice, no name; the page says the number may not be shown.
    browser.goto(&counter.page(ADVICE_ONLY, "lang=en")).await;
    browser.wait_for(ONLINE, STEP).await;
    let card = counter.pcscd.insert("gen-1.7-rsa2048");
    browser.wait_for(ADVISED, STEP).await;
    let number = national_number("gen-1.7-rsa2048");
    assert!(
        !browser.displayed(".identity").await,
        "no name without the identity scope"
    );
    let session = shown_session(&counter).await;
    let identity = counter.session(&session).await["identity"].clone();
    let content = page_content(&browser).await;
    assert!(!content.contains(identity["surname"].as_str().unwrap()));
    assert!(!content.contains(identity["firstNames"].as_str().unwrap()));

    // A registered status is said as what it is, never as a decision on entitlement; its
    // reason code gets the configured words.
    assert_eq!(
        use_case_text(&browser, UITPAS, ".verdict-text").await,
        "No status registered"
    );
    assert_eq!(
        detail_of(&browser, UITPAS, "reason").await,
        "No social tariff registered"
    );
    assert_eq!(
        detail_of(&browser, UITPAS, "basis").await,
        "What a card system (such as UiTPAS) has registered. \
         This is not a decision on whether the citizen is entitled today."
    );
    let card_text = browser.text("#card").await.to_lowercase();
    assert!(!card_text.contains("eligible"), "{card_text}");

    // The page knows its scopes (`GET /v1/status`): no button that can only be refused.
    browser
        .wait_for(
            "document.querySelector('.national-number').dataset.state === 'refused'",
            STEP,
        )
        .await;
    assert!(
        !browser.displayed("#show-national-number").await,
        "no button for what this token may not ask"
    );
    assert_eq!(
        browser.text(".nn-note").await,
        "This counter may not show national numbers."
    );
    assert!(!holds_national_number(
        &page_content(&browser).await,
        &number
    ));

    // The four languages, by the switch; the clerk's choice stays across a reload.
    for (lang, verdict, title, basis) in [
        (
            "nl",
            "Geen status geregistreerd",
            "Balie – advies eID",
            "Dit is geen beslissing",
        ),
        (
            "fr",
            "Aucun statut enregistré",
            "Guichet – avis eID",
            "Ce n’est pas une décision",
        ),
        (
            "de",
            "Kein Status registriert",
            "Schalter – eID-Empfehlung",
            "Das ist keine Entscheidung",
        ),
        (
            "en",
            "No status registered",
            "Counter – eID advice",
            "This is not a decision",
        ),
    ] {
        browser.click(&format!("[data-lang={lang}]")).await;
        browser
            .wait_for(&format!("document.documentElement.lang === '{lang}'"), STEP)
            .await;
        assert_eq!(
            browser
                .attribute(&format!("[data-lang={lang}]"), "aria-pressed")
                .await
                .as_deref(),
            Some("true")
        );
        assert_eq!(browser.eval("return document.title").await, title);
        assert_eq!(
            use_case_text(&browser, UITPAS, ".verdict-text").await,
            verdict
        );
        let said = detail_of(&browser, UITPAS, "basis").await;
        assert!(said.contains(basis), "{lang}: {said}");
    }
    browser.click("[data-lang=fr]").await;
    browser
        .goto(&format!("{}/counter/", counter.agent.base))
        .await;
    browser.wait_for(ADVISED, STEP).await;
    assert_eq!(
        browser.eval("return document.documentElement.lang").await,
        "fr",
        "the clerk's language is kept; the token from the tab's storage"
    );
    take_out(card).await;
    browser.wait_for(NO_CARD, STEP).await;

    // The first language of a new clerk's browser: `?lang=` wins, else the browser's.
    browser.eval("localStorage.clear(); return null").await;
    browser.goto(&counter.page(ADVICE_ONLY, "")).await;
    browser.wait_for(ONLINE, STEP).await;
    assert_eq!(
        browser.eval("return document.documentElement.lang").await,
        "de"
    );
    assert_eq!(
        browser.text("#card-idle").await,
        "Stecken Sie die eID-Karte der Person in das Lesegerät."
    );
    browser.goto(&counter.page(ADVICE_ONLY, "lang=nl")).await;
    browser.wait_for(ONLINE, STEP).await;
    assert_eq!(
        browser.eval("return document.documentElement.lang").await,
        "nl"
    );

    // No advice (the rule service fails): whatever the clerk decides needs a reason.
    browser.click("[data-lang=en]").await;
    counter.upstream.reply(Reply::Status(503, None));
    let card = counter.pcscd.insert("gen-1.8-ec");
    browser.wait_for(ADVISED, STEP).await;
    assert_eq!(
        use_case_text(&browser, UITPAS, ".verdict-text").await,
        "No advice"
    );
    let why = detail_of(&browser, UITPAS, "why").await;
    assert!(
        [
            "The rule service gave no usable answer.",
            "The rule service did not answer. Decide yourself, or take the card out and insert it again later."
        ]
        .contains(&why.as_str()),
        "{why}"
    );
    let uitpas = format!("[data-use-case=\"{UITPAS}\"]");
    for decision in ["granted", "not_granted"] {
        browser
            .click(&format!("{uitpas} input[value={decision}]"))
            .await;
        assert_eq!(
            use_case_text(&browser, UITPAS, ".deviation-why").await,
            "There is no advice: choose a reason for your decision."
        );
    }

    // The POS records the outcome first: the page shows it at once, and no form.
    let session = shown_session(&counter).await;
    let recorded = counter
        .agent
        .http
        .post(format!(
            "{}/v1/sessions/{session}/outcome",
            counter.agent.base
        ))
        .bearer_auth(TOKEN)
        .json(
            &serde_json::json!({"useCase": UITPAS, "decision": "granted",
                                  "deviation": {"reason": "recently_moved"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.status(), 200);
    let shown = browser
        .wait_for(
            &format!("!document.querySelector('{uitpas} .recorded').hidden && document.querySelector('{uitpas} .recorded').textContent"),
            STEP,
        )
        .await;
    assert!(
        shown
            .as_str()
            .unwrap()
            .ends_with(": Granted – deviation: Recently moved here."),
        "{shown}"
    );
    assert!(!browser.displayed(&format!("{uitpas} .decide")).await);
    take_out(card).await;
    browser.wait_for(NO_CARD, STEP).await;

    // An expired card: said so on the card, and why there is no advice.
    let card = counter.pcscd.insert("alice-2009");
    browser.wait_for(ADVISED, STEP).await;
    assert_eq!(
        browser.text("[data-fact=validity] .fact-text").await,
        "Expired on 23 July 2014"
    );
    assert_eq!(
        browser
            .attribute("[data-fact=validity]", "class")
            .await
            .as_deref(),
        Some("fact fact-bad")
    );
    assert_eq!(
        detail_of(&browser, UITPAS, "why").await,
        "The card has expired: the rule service was not asked."
    );
    take_out(card).await;
    browser.wait_for(NO_CARD, STEP).await;
}

/// One detail of an advice (`reason`, `valid-until`, `basis`, `message`, `why`), as shown.
async fn detail_of(browser: &Browser, use_case: &str, detail: &str) -> String {
    use_case_text(browser, use_case, &format!("[data-detail={detail}] dd")).await
}

/// `counter_shot` (a screenshot of the counter page) beside a 1280-px stand-in for the POS,
/// as one PNG in target/: the page forbids framing, so the two are shot apart and put side
/// by side on a local page. The browser is left on that page.
async fn beside_pos(browser: &Browser, counter_shot: &Path, name: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let pos = dir.path().join("pos.html");
    std::fs::write(&pos, POS_STAND_IN).unwrap();
    browser.goto(&format!("file://{}", pos.display())).await;
    window_viewport(browser).await;
    browser.set_viewport_size(1280, 1000).await;
    let pos_shot = browser.screenshot(dir.path().join("pos.png")).await;
    let both = dir.path().join("both.html");
    std::fs::write(
        &both,
        format!(
            "<!doctype html><style>body{{margin:0;display:flex;align-items:flex-start;background:#555}}\
             img{{display:block}} .gap{{width:4px}}</style>\
             <img src=\"{}\"><div class=gap></div><img src=\"{}\">",
            pos_shot.display(),
            counter_shot.display()
        ),
    )
    .unwrap();
    browser.goto(&format!("file://{}", both.display())).await;
    let size = browser
        .wait_for(
            "[...document.images].every(i => i.complete && i.naturalWidth > 0) && \
             [document.images[1].naturalWidth, document.images[1].naturalHeight]",
            STEP,
        )
        .await;
    let (width, height) = (size[0].as_u64().unwrap(), size[1].as_u64().unwrap());
    browser
        .set_viewport_size(1280 + 4 + width as u32, (height as u32).max(1000))
        .await;
    browser.screenshot(target(name)).await
}

/// A POS at 1280 px: a cash register's layout, no agent involved.
const POS_STAND_IN: &str = r#"<!doctype html>
<meta charset="utf-8"><title>POS</title>
<style>
body { margin: 0; font: 15px "DejaVu Sans", sans-serif; background: #f6f6f6; color: #222; }
header { background: #6b2c91; color: #fff; padding: 14px 24px; font-size: 20px; }
main { display: grid; grid-template-columns: 1fr 380px; gap: 24px; padding: 24px; }
.search, .basket { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 16px; }
input { width: 70%; padding: 8px; font: inherit; }
table { width: 100%; border-collapse: collapse; margin-top: 16px; }
td, th { border-bottom: 1px solid #ddd; padding: 8px; text-align: left; }
.total { font-size: 22px; font-weight: bold; text-align: right; margin-top: 16px; }
button { padding: 10px 16px; font: inherit; background: #6b2c91; color: #fff; border: 0; border-radius: 4px; }
</style>
<header>UiTPAS balie · Stad (stand-in POS, 1280 px)</header>
<main>
  <section class="search"><h2>Pashouder zoeken</h2>
    <p><input placeholder="INSZ of UiTPAS-nummer"> <button>Zoeken</button></p>
    <table><tr><th>Activiteit</th><th>Tarief</th><th>Prijs</th></tr>
      <tr><td>Zwembad – beurtenkaart</td><td>Standaard</td><td>€ 30,00</td></tr>
      <tr><td>Bibliotheek – lidmaatschap</td><td>Standaard</td><td>€ 5,00</td></tr>
      <tr><td>Cultuurcentrum – voorstelling</td><td>Standaard</td><td>€ 18,00</td></tr></table>
  </section>
  <aside class="basket"><h2>Mandje</h2><p>3 artikelen</p><p class="total">€ 53,00</p>
    <p><button>Kansentarief toepassen</button></p></aside>
</main>"#;

#[test]
fn a_national_number_is_found_in_every_spelling_and_nothing_else_is() {
    let number = "03641299855";
    for text in [
        "x 03641299855 y",
        "{\"n\":\"03.64.12-998.55\"}",
        "03 64 12 998 55",
        "3033363431323939383535",
        "30-33-36-34-31-32-39-39-38-35-35",
        "０３６４１２９９８５５",
    ] {
        assert!(holds_national_number(text, number), "{text}");
    }
    for text in [
        "85073003328",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "at 2025-02-03T10:11:12Z",
    ] {
        assert!(!holds_national_number(text, number), "{text}");
    }
}

/// `hardware/counter/beid-counter-page` with `token` in a file of this `mode`, the page at
/// `url`, and a stand-in for Chromium that writes down its arguments. Returns the run's
/// output and the folder (runtime dir `run/`, the stand-in's arguments in `browser.args`).
fn open_counter_page(
    token: &str,
    mode: u32,
    url: &str,
) -> (std::process::Output, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(mode)).unwrap();
    let browser = dir.path().join("browser");
    std::fs::write(&browser, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$0.args\"\n").unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/counter/beid-counter-page"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("BEID_COUNTER_TOKEN_FILE", &token_file)
        .env("BEID_COUNTER_URL", url)
        .env("BEID_COUNTER_CHROMIUM", &browser)
        .output()
        .unwrap();
    (output, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_opens_the_page_signed_in_without_the_token_on_a_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    // The demo agent: its client has every scope and the agent's own origins.
    let agent = SimulatedServe::start();
    let url = format!("{}/counter/?lang=en", agent.base);

    let (output, dir) = open_counter_page(&agent.token, 0o640, &url);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let start = dir.path().join("run/beid-counter/start.html");
    let arguments = std::fs::read_to_string(dir.path().join("browser.args")).unwrap();
    assert_eq!(
        arguments.lines().next(),
        Some(format!("--app=file://{}", start.display()).as_str())
    );
    assert!(
        !arguments.contains(&agent.token),
        "the token on a command line"
    );
    assert_eq!(mode(&start), 0o600, "the start page is private");
    assert_eq!(mode(start.parent().unwrap()), 0o700);
    let page = std::fs::read_to_string(&start).unwrap();
    assert!(
        page.contains(&format!(
            "location.replace(\"{url}#token={}\")",
            agent.token
        )),
        "{page}"
    );

    // Refused: a token others may read, a token that could break out of the page, and any
    // page but the agent's counter page on loopback.
    let token = agent.token.as_str();
    for (token, mode, url, why) in [
        (token, 0o644, url.as_str(), "others may read it"),
        (token, 0o660, url.as_str(), "its group may change it"),
        (
            "\");alert(1);(\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            0o600,
            url.as_str(),
            "may hold only",
        ),
        (
            token,
            0o600,
            "https://pos.example/counter/",
            "must be the agent's counter page",
        ),
        (
            token,
            0o600,
            "http://127.0.0.1:8099/kiosk/",
            "must be the agent's counter page",
        ),
        (
            token,
            0o600,
            "http://127.0.0.1:8099/counter/?lang=xx",
            "must be the agent's counter page",
        ),
    ] {
        let (output, dir) = open_counter_page(token, mode, url);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(
            !dir.path().join("run/beid-counter/start.html").exists(),
            "{why}"
        );
        assert!(
            !dir.path().join("browser.args").exists(),
            "{why}: the browser started"
        );
    }

    // Chromium on the start page arrives at the counter page, signed in, the token gone.
    let browser = Browser::start(&[]).await;
    browser.goto(&format!("file://{}", start.display())).await;
    browser.wait_for(ONLINE, STEP).await;
    let href = browser.eval("return location.href").await;
    assert_eq!(href, url.as_str(), "the token left the address bar");
}

#[tokio::test]
async fn the_page_and_every_module_it_imports_are_served_under_a_strict_csp() {
    common::upstream::install_crypto();
    let agent = SimulatedServe::start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| http.get(format!("{}{path}", agent.base)).send();

    let moved = get("/counter".into()).await.unwrap();
    assert_eq!(moved.status(), 308);
    assert_eq!(moved.headers()["location"], "/counter/");

    let page = get("/counter/".into()).await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }

    // Every file the page names, and every module those import, is served with its type.
    let mut pending: Vec<String> = Vec::new();
    let html = page.text().await.unwrap();
    for attribute in ["src=\"/counter/", "href=\"/counter/"] {
        for part in html.split(attribute).skip(1) {
            pending.push(part.split('"').next().unwrap().to_owned());
        }
    }
    assert!(pending.contains(&"counter.js".to_owned()), "{pending:?}");
    let mut served = std::collections::BTreeSet::new();
    while let Some(file) = pending.pop() {
        if !served.insert(file.clone()) {
            continue;
        }
        let answer = get(format!("/counter/{file}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{file}");
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = answer.text().await.unwrap();
        if file.ends_with(".css") {
            assert_eq!(kind, "text/css; charset=utf-8", "{file}");
            continue;
        }
        assert_eq!(kind, "text/javascript; charset=utf-8", "{file}");
        for part in text.split(" from './").skip(1) {
            pending.push(part.split('\'').next().unwrap().to_owned());
        }
    }
    assert!(served.len() >= 7, "{served:?}");

    let missing = get("/counter/missing.js".into()).await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

#[test]
fn every_text_of_the_page_is_in_all_four_languages() {
    let texts = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/counter/texts.js"),
    )
    .unwrap();
    let keys = |lang: &str| -> std::collections::BTreeSet<String> {
        let block = texts
            .split(&format!("\n  {lang}: {{\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {lang} block"));
        let block = block.split("\n  }").next().unwrap();
        block
            .lines()
            .filter_map(|line| line.strip_prefix("    ")?.split_once(": ").map(|(k, _)| k))
            .map(str::to_owned)
            .collect()
    };
    let english = keys("en");
    assert!(english.len() > 100, "{english:?}");
    for lang in ["nl", "fr", "de"] {
        let own = keys(lang);
        assert_eq!(
            english.symmetric_difference(&own).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{lang} and en differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_agent_restarts_the_page_reconnects_and_shows_the_new_session() {
    let mut counter = Counter::start(Reply::Decide("eligible")).await;
    let browser = Browser::start(&[]).await;
    emulate_viewport(&browser, 420, 1400).await;
    browser.goto(&counter.page(CLERK, "lang=en")).await;
    browser.wait_for(ONLINE, STEP).await;
    let card = counter.pcscd.insert("gen-1.8-ec");
    browser.wait_for(ADVISED, STEP).await;
    let before = shown_session(&counter).await;
    assert_eq!(
        browser
            .attribute("#counter", "data-session")
            .await
            .as_deref(),
        Some(before.as_str())
    );

    // The stream ends with the agent; the page says so, buys a new ticket from the new
    // agent, and its snapshot holds only the new session of the card still in the reader.
    let restart = tokio::task::spawn_blocking(move || {
        counter.restart();
        counter
    });
    browser
        .wait_for(
            "document.getElementById('counter').dataset.connection === 'offline'",
            STEP,
        )
        .await;
    assert_eq!(
        browser.text("#connection").await,
        "Connection to the agent lost. Reconnecting…"
    );
    let counter = restart.await.unwrap();
    browser.wait_for(ONLINE, STEP).await;
    let after = browser
        .wait_for(
            &format!(
                "(() => {{ const s = document.getElementById('counter').dataset.session; \
                 return s && s !== '{before}' && ({ADVISED}) && s; }})()"
            ),
            STEP,
        )
        .await;
    assert_eq!(after, shown_session(&counter).await.as_str());
    assert_eq!(
        use_case_text(&browser, UITPAS, ".verdict-text").await,
        "Eligible"
    );
    take_out(card).await;
    browser.wait_for(NO_CARD, STEP).await;
}
