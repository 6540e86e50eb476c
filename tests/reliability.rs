//! The agent under faults, as deployed: `serve --config` on a real pcscd with vpcd, the
//! simulated card with its faults, the real mTLS upstream, and the event stream a POS reads.
//! A card pulled at every APDU, a mute card beside a good one, pcscd killed idle and in the
//! middle of a read, the card's refusals, and an upstream failing while cards are read.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent;
use common::upstream;

use std::time::{Duration, Instant};

use agent::{Ending, Events, ServedAgent};
use common::Pcscd;
use upstream::{Pki, Reply, Upstream};

/// The card whose read is longest: applet 1.8 with the chip's INTERNAL AUTHENTICATE.
const CARD: &str = "gen-1.8-ec";
const CHIP_CHECK: &str = "[policy]\ncard_authentication = \"always\"\n";

async fn inserted(events: &mut Events) -> String {
    events.until("card-inserted").await["session"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A good card in `slot` gets its advice, then leaves.
async fn good_card_works(pcscd: &Pcscd, events: &mut Events, slot: u16) {
    let card = pcscd.insert_with(CARD, slot, &[]);
    let session = inserted(events).await;
    assert_eq!(
        events.ending(&session).await,
        Ending::Advice("eligible".into()),
        "a good card in slot {slot} works"
    );
    card.remove();
    events.session(&session).await;
}

struct Setup {
    server: Upstream,
    _pki: Pki,
    pcscd: Pcscd,
    agent: ServedAgent,
    events: Events,
}

async fn setup(reply: Reply, extra: &str) -> Setup {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, reply).await;
    let pcscd = Pcscd::start();
    let agent = ServedAgent::start(&pcscd, &server.url, &pki, extra);
    let events = agent.events().await;
    Setup {
        server,
        _pki: pki,
        pcscd,
        agent,
        events,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pulled_at_any_apdu_gets_no_advice_and_the_next_card_does() {
    let mut s = setup(Reply::Decide("eligible"), CHIP_CHECK).await;
    // The first read fetches the RRN certificate; every read after it is the warm path.
    good_card_works(&s.pcscd, &mut s.events, 0).await;

    // The card leaves instead of answering APDU index + 1, for every index of the read,
    // until an index past its last APDU: that card stays and gets its advice.
    let mut index = 0;
    loop {
        let limit = index.to_string();
        let card = s
            .pcscd
            .insert_with(CARD, 0, &["--remove-after-apdus", &limit]);
        let session = inserted(&mut s.events).await;
        match s.events.ending(&session).await {
            Ending::Advice(decision) => {
                assert_eq!(decision, "eligible");
                card.remove();
                s.events.session(&session).await;
                break;
            }
            Ending::Removed(names) => {
                // Told as an error of the read, or only by the removal itself.
                assert!(
                    names == ["card-removed"] || names == ["card-error", "card-removed"],
                    "index {index}: {names:?}"
                );
                let _ = card.wait_gone();
            }
        }
        good_card_works(&s.pcscd, &mut s.events, 0).await;
        index += 1;
    }
    // Applet 1.8, warm, with the chip check: SELECTs, GET CARD DATA, the identity and its
    // signature, the basic key and INTERNAL AUTHENTICATE.
    assert!(index >= 10, "only {index} APDUs in a read?");
    assert_eq!(s.server.hits(), index + 2, "one question per good card");
    println!("pulled the card at each of {index} APDU indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_card_stalls_only_its_own_reader_and_is_reported() {
    let mut s = setup(Reply::Decide("eligible"), "").await;
    let mute = s.pcscd.insert_with(CARD, 0, &["--mute-after-apdus", "3"]);
    let stalled = inserted(&mut s.events).await;

    // Meanwhile the other reader serves a citizen, and the API answers.
    good_card_works(&s.pcscd, &mut s.events, 1).await;
    assert_eq!(s.agent.get("/v1/readers").await.status(), 200);
    // The stalled reader is reported (the read's deadline is 5 s; the event wait 20 s).
    assert_eq!(s.events.error_of(&stalled).await, "card_mute");
    // Taking the card out ends its session; the reader works again.
    drop(mute);
    s.events.session(&stalled).await;
    good_card_works(&s.pcscd, &mut s.events, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcscd_killed_idle_or_mid_read_is_followed() {
    let mut s = setup(Reply::Decide("eligible"), "").await;
    good_card_works(&s.pcscd, &mut s.events, 0).await;

    // Idle.
    s.pcscd.kill();
    assert_eq!(s.events.until("reader-error").await["code"], "pcscd_down");
    let relaunched = Instant::now();
    s.pcscd.launch();
    s.events.until("pcscd-up").await;
    s.events.until("reader-added").await;
    let recovered = relaunched.elapsed();
    good_card_works(&s.pcscd, &mut s.events, 0).await;

    // In the middle of a read: the card answers at its wire speed, pcscd dies under it.
    let card = s.pcscd.insert_with(CARD, 0, &["--wire-time"]);
    let session = inserted(&mut s.events).await;
    s.pcscd.kill();
    let ending = s.events.ending(&session).await;
    assert!(matches!(ending, Ending::Removed(_)), "{ending:?}");
    drop(card);
    // No stale session: the id is gone for good.
    let gone = s.agent.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(gone.status(), 410);
    let relaunched_again = Instant::now();
    s.pcscd.launch();
    s.events.until("reader-added").await;
    let recovered_again = relaunched_again.elapsed();
    good_card_works(&s.pcscd, &mut s.events, 0).await;
    assert_eq!(
        s.server.hits(),
        3,
        "no advice for the card read while pcscd died"
    );

    // Informational: how fast is a benchmark's question (`cargo bench --bench
    // pcscd_latency`), not this test's.
    println!("reader back {recovered:?} / {recovered_again:?} after pcscd's relaunch returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cards_refusals_are_told_apart_and_a_mid_file_end_is_survived() {
    let mut s = setup(Reply::Decide("eligible"), "").await;
    // First read: the RRN certificate (applet 1.8: 503C) is read; the reader reports an end
    // of file after its first full chunk, once. The read goes on.
    let glitch = s.pcscd.insert_with(CARD, 0, &["--eof-glitch", "503C:256"]);
    let session = inserted(&mut s.events).await;
    assert_eq!(
        s.events.ending(&session).await,
        Ending::Advice("eligible".into())
    );
    glitch.remove();
    s.events.session(&session).await;

    for (fault, code) in [
        ("B0=6581", "card_damaged"),
        ("B0=6D00", "not_activated"),
        ("B0=6985", "not_activated"),
        ("B0=6400", "card_unreadable"),
    ] {
        let card = s.pcscd.insert_with(CARD, 0, &["--status-fault", fault]);
        let session = inserted(&mut s.events).await;
        assert_eq!(s.events.error_of(&session).await, code, "{fault}");
        card.remove();
        s.events.session(&session).await;
    }
    good_card_works(&s.pcscd, &mut s.events, 0).await;
    assert_eq!(
        s.server.hits(),
        2,
        "no question for a card that could not be read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_never_turns_into_a_no_and_the_api_keeps_answering() {
    let mut s = setup(Reply::Hang, "").await;
    let replies = [
        Reply::Hang,
        Reply::Status(503, None),
        Reply::Status(500, None),
        Reply::Raw("{\"decision\": \"not_eligible\"}"),
        Reply::WrongRequestId,
        Reply::Drip {
            len: 200,
            every: Duration::from_millis(100),
        },
    ];
    for reply in replies {
        let label = format!("{reply:?}");
        s.server.reply(reply);
        let card = s.pcscd.insert_with(CARD, 0, &[]);
        let session = inserted(&mut s.events).await;
        // While the question is pending or failing, the API keeps answering (its latency
        // under such load is measured by `cargo bench --bench load`).
        for _ in 0..20 {
            let answer = tokio::time::timeout(Duration::from_secs(2), s.agent.get("/v1/readers"))
                .await
                .unwrap_or_else(|_| panic!("the API stalled while the upstream did {label}"));
            assert_eq!(answer.status(), 200);
        }
        assert_eq!(
            s.events.ending(&session).await,
            Ending::Advice("unknown".into()),
            "{label}"
        );
        card.remove();
        s.events.session(&session).await;
    }
    s.server.reply(Reply::Decide("not_eligible"));
    let card = s.pcscd.insert_with(CARD, 0, &[]);
    let session = inserted(&mut s.events).await;
    assert_eq!(
        s.events.ending(&session).await,
        Ending::Advice("not_eligible".into()),
        "a real no still comes through"
    );
    card.remove();
}

/// A clone of an applet 1.8 card: every file copied, but its own basic key (a clone
/// cannot read the genuine card's private key).
fn clone_of(card: &str) -> tempfile::TempDir {
    common::card_variant(card, |dir| {
        let key = dir.join("basic-private-key.pk8");
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ])
            .args(["-outform", "DER", "-out"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_kiosk_a_cloned_chip_gets_no_advice_and_the_genuine_card_does() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    // No [policy]: the default chip check applies on the kiosk channel.
    let agent = ServedAgent::start_kiosk(&pcscd, &server.url, &pki, "");
    let mut events = agent.events().await;

    let clone = clone_of(CARD);
    let card = pcscd.insert_with(clone.path().to_str().unwrap(), 0, &[]);
    let session = inserted(&mut events).await;
    let read = events.until("card-read").await;
    assert_eq!(read["session"], session.as_str());
    assert_eq!(
        read["authentic"], false,
        "the clone's chip did not prove itself"
    );
    let advice = events.until("advice").await;
    assert_eq!(advice["decision"], "unknown");
    let view: serde_json::Value = agent
        .get(&format!("/v1/sessions/{session}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["authenticity"]["chip"], "not_genuine", "{view}");
    assert_eq!(view["advice"][0]["reason"], "card_not_authentic", "{view}");
    assert_eq!(
        server.hits(),
        0,
        "the rule service was not asked for a clone"
    );
    card.remove();
    events.session(&session).await;

    good_card_works(&pcscd, &mut events, 0).await;
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_counter_the_default_policy_leaves_the_chip_to_the_clerk() {
    // The same clone at a counter: the 5000 INTERNAL AUTHENTICATEs a card allows are not
    // spent there by default (a clerk looks at the card), so its signed data decides.
    let mut s = setup(Reply::Decide("eligible"), "").await;
    let clone = clone_of(CARD);
    let card = s.pcscd.insert_with(clone.path().to_str().unwrap(), 0, &[]);
    let session = inserted(&mut s.events).await;
    assert_eq!(
        s.events.ending(&session).await,
        Ending::Advice("eligible".into())
    );
    card.remove();
    s.events.session(&session).await;
}
