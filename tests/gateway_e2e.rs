//! The whole chain as deployed: `beid-agent serve --config` reads simulated cards through
//! real pcscd + vpcd, asks the city gateway (`beid-gateway`, in-process, mutual TLS with
//! the device's certificate), the gateway asks the UiTPAS stand-in, and the POS (a client
//! of the agent's local API) receives eligible / not_eligible / unknown for the cards
//! whose national numbers the stand-in's dataset knows.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent;
use common::upstream;

use std::os::unix::fs::PermissionsExt;

use agent::{ServedAgent, TOKEN};
use beid_gateway::{serve, Config, Gateway};
use common::{expected, Pcscd};
use uitpas_standin::{Kind, StandIn};
use upstream::Pki;

/// The gateway for `pki`'s devices (its server certificate, its CA as the device CA),
/// asking `standin`.
fn gateway_config(dir: &std::path::Path, pki: &Pki, standin: &StandIn) -> Config {
    let (cert, key) = pki.server_identity();
    let secret = dir.join("uitpas-secret");
    std::fs::write(&secret, uitpas_standin::CLIENT_SECRET).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("uitpas-ca.pem"), standin.ca_pem()).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\n\
             [audit]\nlog = \"audit.jsonl\"\nsecret_file = \"audit.key\"\n\n\
             [uitpas]\napi_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"uitpas-secret\"\n\
             organizer_id = \"{}\"\nca_bundle = \"uitpas-ca.pem\"\n\n\
             [[use_cases]]\nid = \"uitpas-kansentarief\"\nsources = [\"uitpas\"]\n",
            cert.display(),
            key.display(),
            pki.ca_bundle.display(),
            standin.api_url(),
            standin.token_url(),
            uitpas_standin::CLIENT_ID,
            uitpas_standin::ORGANIZER_ID,
        ),
    )
    .unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pos_gets_the_gateways_decision_for_each_card() {
    upstream::install_crypto();
    let pki = Pki::new();
    let standin = StandIn::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::build(&gateway_config(dir.path(), &pki, &standin)).unwrap();
    assert!(gateway.refresh_permissions().await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve(listener, &gateway, async {
        let _ = stopped.await;
    }));

    let pcscd = Pcscd::start();
    // The Alice specimen card chains to the eID test root, and expired long ago.
    let mut served = ServedAgent::start_trusting(
        &pcscd,
        &url,
        &pki,
        &["eid-test-root-ca.crt"],
        "[policy]\nallow_expired_cards = true\n",
    );
    let mut events = served.events().await;
    // The cards' numbers are in the stand-in's dataset: gen-1.8-ec is active in Gent,
    // gen-1.7-rsa2048 has an expired social tariff, the Alice specimen's card is blocked.
    let cards = [
        ("gen-1.8-ec", Kind::ActiveGent, "eligible", None),
        ("gen-1.7-rsa2048", Kind::Expired, "not_eligible", None),
        (
            "alice-2009",
            Kind::Blocked,
            "unknown",
            Some("upstream_undecided"),
        ),
    ];
    for (card, kind, decision, reason) in cards {
        let number = expected(card)["national_number"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(Kind::of(&number), kind, "{card}");
        let inserted = pcscd.insert(card);
        let session = events.until("card-inserted").await["session"]
            .as_str()
            .unwrap()
            .to_owned();
        let read = events.until("card-read").await;
        assert_eq!(read["authentic"], true, "{card}: {read}");
        let advice = events.until("advice").await;
        assert_eq!(advice["session"], session.as_str());
        assert_eq!(advice["decision"], decision, "{card}: {advice}");
        // The POS asks for the advice: the same decision, with the agent's reason.
        let asked: serde_json::Value = served
            .http
            .post(format!("{}/v1/sessions/{session}/advice", served.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"useCase": "uitpas-kansentarief"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(asked["decision"], decision, "{card}: {asked}");
        assert_eq!(asked["reason"].as_str(), reason, "{card}: {asked}");
        tokio::task::spawn_blocking(move || inserted.remove())
            .await
            .unwrap();
        events.until("card-removed").await;
    }
    assert_eq!(standin.lookups(), 3, "one UiTPAS search per card");
    assert_eq!(standin.token_calls(), 1);

    // The gateway's audit: one check per card from the device, pseudonyms only.
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    gateway.flush_audit();
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let checks: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|record: &serde_json::Value| record["type"] == "check")
        .collect();
    let decisions: Vec<&str> = checks
        .iter()
        .map(|c| c["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["eligible", "not_eligible", "unknown"]);
    assert!(checks.iter().all(|c| c["device"] == "balie-3"));
    let log = served.stop();
    for (card, ..) in cards {
        let number = expected(card)["national_number"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !audit.contains(&number),
            "{card}: national number in the gateway's audit"
        );
        assert!(
            !log.contains(&number),
            "{card}: national number in the agent's log"
        );
    }
    drop(pcscd);
}
