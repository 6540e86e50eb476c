//! The uitpas source through the whole gateway: a device asks over mutual TLS, the gateway
//! asks the UiTPAS stand-in. Every kind of passholder of the test dataset, the token's
//! life, permissions, and every failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use serde_json::Value;
use uitpas_standin::{Fault, Kind};

fn decision(answer: &Value) -> (&str, &str) {
    (
        answer["decision"].as_str().unwrap_or(""),
        answer["reasonCode"].as_str().unwrap_or(""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_passholder_gets_its_decision() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    let expected = [
        (Kind::ActiveGent, "eligible", ""),
        (Kind::GracePeriod, "eligible", "in_grace_period"),
        (Kind::ActiveOtherRegion, "not_eligible", "not_registered"),
        (Kind::Expired, "not_eligible", "social_tariff_expired"),
        (Kind::Suspended, "not_eligible", "social_tariff_suspended"),
        (Kind::None, "not_eligible", "not_registered"),
        (Kind::FamilyParent, "not_eligible", "no_social_tariff"),
        (Kind::FamilyChild, "eligible", ""),
        (Kind::Blocked, "unknown", "card_blocked"),
    ];
    for (kind, want, reason) in expected {
        let (status, answer) = device.check(kind.national_number()).await;
        assert_eq!(status, 200, "{kind:?}: {answer}");
        assert_eq!(decision(&answer), (want, reason), "{kind:?}: {answer}");
        if want != "unknown" {
            assert_eq!(answer["basis"], "registered_status", "{kind:?}");
        }
        assert!(
            answer.get("validUntil").is_none(),
            "endDate is not a validity: {answer}"
        );
    }
    // The search was by INSZ and organizer; one token served every check.
    let query = gateway.standin.last_query().unwrap();
    assert_eq!(query["organizerId"], uitpas_standin::ORGANIZER_ID);
    assert_eq!(query["inszNumber"], Kind::Blocked.national_number());
    assert_eq!(gateway.standin.token_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_once_and_the_check_goes_on() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    assert_eq!(
        device.check(Kind::ActiveGent.national_number()).await.0,
        200
    );
    assert_eq!(gateway.standin.token_calls(), 1);
    gateway.standin.revoke_tokens();
    let (_, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(decision(&answer).0, "eligible");
    assert_eq!(
        gateway.standin.token_calls(),
        2,
        "one renewal after the 401"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_again_after_renewal_is_unknown_without_a_loop() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    gateway.standin.refuse_every_token(true);
    let before = gateway.standin.token_calls();
    let (status, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(status, 200);
    assert_eq!(decision(&answer), ("unknown", "source_unauthorized"));
    assert_eq!(
        gateway.standin.token_calls(),
        before + 1,
        "renewed exactly once"
    );
    // Revoked client credentials: the token endpoint refuses; still never a "no".
    gateway.standin.refuse_client(true);
    gateway.standin.revoke_tokens();
    let (_, answer) = device.check(Kind::Expired.national_number()).await;
    assert_eq!(decision(&answer), ("unknown", "source_unauthorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_renewed_before_it_expires() {
    // Tokens of 1 s with the default 60 s margin: each is used for half its life at most,
    // so the gateway renews it before UiTPAS would refuse it.
    let gateway = Harness::start().await;
    gateway.standin.set_token_lifetime(Duration::from_secs(1));
    gateway.standin.revoke_tokens();
    let device = gateway.device("balie-3");
    let refused = gateway.standin.unauthorized();
    assert_eq!(
        decision(&device.check(Kind::ActiveGent.national_number()).await.1).0,
        "eligible"
    );
    let calls = gateway.standin.token_calls();
    // Ask until the gateway has renewed the token (a condition, bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gateway.standin.token_calls() == calls {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token was never renewed"
        );
        assert_eq!(
            decision(&device.check(Kind::ActiveGent.national_number()).await.1).0,
            "eligible"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gateway.standin.token_calls(), calls + 1);
    assert_eq!(
        gateway.standin.unauthorized(),
        refused + 1,
        "only the revoked token was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_fails_health_and_never_says_no() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    assert_eq!(device.get("/v1/health").await.status(), 200);
    // The permission is withdrawn: the next search is refused (403).
    gateway.standin.forbid_search(true);
    let reads = gateway.standin.permission_calls();
    let (status, answer) = device.check(Kind::Expired.national_number()).await;
    assert_eq!(status, 200);
    assert_eq!(decision(&answer), ("unknown", "permission_missing"));
    // The 403 makes the gateway read the permissions again at once (not a day later).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gateway.standin.permission_calls() == reads {
        assert!(
            tokio::time::Instant::now() < deadline,
            "permissions not read again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = device.get("/v1/health").await;
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["sources"]["uitpas"], "permission_missing");
    // Every later check is unknown without asking, until permissions are read again.
    let lookups = gateway.standin.lookups();
    let (_, answer) = device.check(Kind::None.national_number()).await;
    assert_eq!(decision(&answer), ("unknown", "permission_missing"));
    assert_eq!(gateway.standin.lookups(), lookups);
    gateway.standin.forbid_search(false);
    assert!(gateway.gateway.refresh_permissions().await);
    assert_eq!(device.get("/v1/health").await.status(), 200);
    assert_eq!(
        decision(&device.check(Kind::None.national_number()).await.1).0,
        "not_eligible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_missing_at_start_is_a_configuration_error() {
    common::install_crypto();
    let gateway = Harness::start().await;
    gateway.standin.forbid_search(true);
    assert!(gateway.gateway.refresh_permissions().await);
    let device = gateway.device("balie-3");
    assert_eq!(device.get("/v1/health").await.status(), 503);
    let lookups = gateway.standin.lookups();
    let (_, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(decision(&answer), ("unknown", "permission_missing"));
    assert_eq!(gateway.standin.lookups(), lookups, "not even asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_malformed_answers_are_unknown_with_backoff() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    for fault in [
        Fault::Status(429, Some(1)),
        Fault::Status(503, None),
        Fault::Status(500, None),
        Fault::Malformed,
    ] {
        gateway.standin.fail_next(fault.clone());
        let (status, answer) = device.check(Kind::Expired.national_number()).await;
        assert_eq!(status, 200, "{fault:?}");
        let (decided, reason) = decision(&answer);
        assert_eq!(decided, "unknown", "{fault:?}: {answer}");
        assert!(
            reason == "source_unavailable" || reason == "source_malformed",
            "{fault:?}: {reason}"
        );
        // Backing off: the next check is unknown at once, UiTPAS not asked.
        let lookups = gateway.standin.lookups();
        let (_, answer) = device.check(Kind::Expired.national_number()).await;
        assert_eq!(
            decision(&answer),
            ("unknown", "source_unavailable"),
            "{fault:?}"
        );
        assert_eq!(
            gateway.standin.lookups(),
            lookups,
            "{fault:?}: asked during back-off"
        );
        assert_eq!(device.get("/v1/health").await.status(), 503);
        // After the pause, UiTPAS is asked again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, answer) = device.check(Kind::Expired.national_number()).await;
            if decision(&answer).0 == "not_eligible" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{fault:?}: back-off never ended"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_uitpas_is_unknown_not_late() {
    // UiTPAS gets 1 s per call (the configuration), well inside the answer time.
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    gateway
        .standin
        .fail_next(Fault::Slow(Duration::from_secs(5)));
    let (status, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(status, 200);
    assert_eq!(decision(&answer), ("unknown", "source_timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_details_are_read_and_the_end_user_message_reaches_the_clerk() {
    let gateway = Harness::start().await;
    let device = gateway.device("balie-3");
    gateway.standin.fail_next(Fault::Problem {
        status: 400,
        problem_type: "https://api.publiq.be/probs/uitpas/card-blocked",
        title: "Card blocked",
        end_user_message: Some("Deze UiTPAS is geblokkeerd. Neem contact op met je UiTPAS-balie."),
    });
    let (_, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(decision(&answer), ("unknown", "card_blocked"));
    assert_eq!(
        answer["clerkMessage"],
        "Deze UiTPAS is geblokkeerd. Neem contact op met je UiTPAS-balie."
    );
    gateway.standin.fail_next(Fault::Problem {
        status: 400,
        problem_type: "https://api.publiq.be/probs/uitpas/social-tariff-expired",
        title: "Social tariff expired",
        end_user_message: Some("Je kansentarief is verlopen (85610100147)."),
    });
    let (_, answer) = device.check(Kind::ActiveGent.national_number()).await;
    assert_eq!(decision(&answer), ("not_eligible", "social_tariff_expired"));
    assert_eq!(
        answer["clerkMessage"],
        "Je kansentarief is verlopen ([redacted])."
    );
}
