//! Reloading the configuration of a running agent, as configuration management does it:
//! the agent as deployed (`beid-agent serve --config`, real pcscd + vpcd, the real mTLS
//! upstream), a POS with its event stream open and requests in flight, a card in the
//! reader, and SIGHUP (what `systemctl reload` sends). A token rotated and a client
//! certificate renewed take effect at once, in the same process, and nothing the POS holds
//! is lost; a broken configuration is refused as a whole and the running one stays.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::agent;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::{sample, Counter, ServedAgent, TOKEN};
use common::report_check as check;
use common::Pcscd;
use serde_json::{json, Value};

/// The token the rotation brings (as `openssl rand -hex 32` makes them).
const ROTATED: &str = "9f2b7c4e1a8d3f6b0c5e2a7d9b4f1c8e3a6d0b5f2c9e7a4d1b8f3c6e0a5d2b7f";
const USE_CASE: &str = "uitpas-kansentarief";
/// How long a reload may take to be told in the state file.
const RELOAD_LIMIT: Duration = Duration::from_secs(20);

/// The agent's configuration state (`config-state.json`).
fn config_state(agent: &ServedAgent) -> Value {
    let text = std::fs::read_to_string(agent.state_dir().join("config-state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// SIGHUP, then the reload's record once the agent wrote it.
async fn reload(agent: &ServedAgent) -> Value {
    let before = config_state(agent)["last_reload"].clone();
    agent.hangup();
    let wait = async {
        loop {
            let after = config_state(agent)["last_reload"].clone();
            if after != before {
                return after;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(RELOAD_LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no reload within {RELOAD_LIMIT:?}:\n{}", agent.log()))
}

async fn status_of(agent: &ServedAgent, path: &str, token: &str) -> u16 {
    agent.get_as(path, token).await.status().as_u16()
}

/// The agent accepts `accepted` and refuses `refused`, still as process `pid`.
async fn assert_in_force(agent: &mut ServedAgent, pid: u32, accepted: &str, refused: &str) {
    assert_eq!(status_of(agent, "/v1/readers", accepted).await, 200);
    // Refused: 401, or 429 once failed authentications back off (docs/local-api.md).
    let refusal = status_of(agent, "/v1/readers", refused).await;
    assert!([401, 429].contains(&refusal), "{refusal}");
    assert_eq!(agent.pid(), pid);
    assert!(agent.is_running(), "the same process serves on");
}

/// POS traffic with one token until told to stop: the statuses it got, and every request
/// that got no HTTP answer at all.
struct Load {
    stop: Arc<AtomicBool>,
    statuses: Arc<std::sync::Mutex<BTreeMap<u16, usize>>>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(agent: &ServedAgent, token: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let (http, url, stopped, counted) = (
            agent.http.clone(),
            format!("{}/v1/readers", agent.base),
            stop.clone(),
            statuses.clone(),
        );
        let task = tokio::spawn(async move {
            let mut failures = Vec::new();
            // 40 requests a second: under the client's rate limit, as a busy POS.
            let mut pace = tokio::time::interval(Duration::from_millis(25));
            while !stopped.load(Ordering::Relaxed) {
                pace.tick().await;
                match http.get(&url).bearer_auth(token).send().await {
                    Ok(response) => {
                        let mut counted = counted.lock().unwrap();
                        *counted.entry(response.status().as_u16()).or_default() += 1;
                    }
                    Err(error) => failures.push(error.to_string()),
                }
            }
            failures
        });
        Self {
            stop,
            statuses,
            task,
        }
    }

    /// Waits (bounded) until one of `statuses` was answered since the start.
    async fn until_answered(&self, statuses: &[u16]) {
        let answered = || {
            let counted = self.statuses.lock().unwrap();
            statuses.iter().any(|status| counted.contains_key(status))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !answered() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {statuses:?} in {:?}",
                self.statuses.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn stop(self) -> BTreeMap<u16, usize> {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests without an answer: {failures:?}"
        );
        let statuses = self.statuses.lock().unwrap().clone();
        statuses
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_and_a_renewed_certificate_take_effect_under_load_and_nothing_is_lost() {
    let mut counter = Counter::start(|_| String::new()).await;
    let Counter {
        agent,
        pcscd,
        upstream: server,
        pki,
        ..
    } = &mut counter;
    let pid = agent.pid();

    // The POS as it always is: its event stream open, a citizen's card read and advised.
    let mut events = agent.events().await;
    let card = pcscd.insert("gen-1.8-ec");
    let read = events.until("card-read").await;
    let session = read["session"].as_str().unwrap().to_owned();
    let advice = events.until("advice").await;
    assert_eq!(advice["session"], session.as_str());
    let before = agent.metrics().await;
    assert_eq!(
        sample(&before, "beid_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
    let old_expiry = sample(
        &before,
        "beid_upstream_client_certificate_expiry_timestamp_seconds",
    )
    .unwrap();
    assert!(
        sample(
            &before,
            "beid_upstream_server_certificate_expiry_timestamp_seconds"
        )
        .is_some(),
        "the upstream's certificate was seen in the advice's handshake:\n{before}"
    );

    // Requests in flight, with the old token and the new one, across the reload.
    let old_load = Load::start(agent, TOKEN);
    let new_load = Load::start(agent, ROTATED);
    // Both are under way before the rotation: the old token served, the new one refused
    // (401, or 429 once the failures back off).
    old_load.until_answered(&[200]).await;
    new_load.until_answered(&[401, 429]).await;

    // Configuration management rotates the token and renews the certificate (a drop-in
    // naming the new files), then reloads.
    let now = time::OffsetDateTime::now_utc();
    let renewed_until = now + time::Duration::days(400);
    let (cert, key) = pki.client_valid("renewed", now - time::Duration::days(1), renewed_until);
    common::write_secret(&agent.config().with_file_name("token"), ROTATED);
    let drop_ins = agent.config().with_file_name("config.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::write(
        drop_ins.join("50-renewal.toml"),
        format!(
            "[upstream]\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let reloaded = reload(agent).await;
    assert_eq!(reloaded["applied"], true, "{reloaded}\n{}", agent.log());

    // The rotation is in force, in the same process, for the loads too.
    assert_in_force(agent, pid, ROTATED, TOKEN).await;
    new_load.until_answered(&[200]).await;
    old_load.until_answered(&[401, 429]).await;
    let old = old_load.stop().await;
    let new = new_load.stop().await;
    assert!(
        old.get(&200).is_some_and(|n| *n > 0),
        "old token before: {old:?}"
    );
    assert!(
        new.get(&200).is_some_and(|n| *n > 0),
        "new token after: {new:?}"
    );
    for statuses in [&old, &new] {
        assert!(
            statuses.keys().all(|status| [200, 401, 429].contains(status)),
            "only accepted or refused (a failed token backs off: 429), never an error: {statuses:?}"
        );
    }

    // The card session survives: its data is there with the new token, and a question
    // asked now goes out with the renewed certificate.
    let view: Value = agent
        .get_as(&format!("/v1/sessions/{session}"), ROTATED)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["state"], "ready", "{view}");
    assert_eq!(view["advice"][0]["decision"], "eligible", "{view}");
    let asked = agent
        .http
        .post(format!("{}/v1/sessions/{session}/advice", agent.base))
        .bearer_auth(ROTATED)
        .json(&json!({ "useCase": "lez-social-tariff" }))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let after = agent.metrics().await;
    assert_eq!(
        sample(
            &after,
            "beid_upstream_client_certificate_expiry_timestamp_seconds"
        ),
        Some(renewed_until.unix_timestamp() as f64),
        "the renewed certificate is the one in use (it was {old_expiry})"
    );
    assert_eq!(
        sample(&after, "beid_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "beid_config_last_reload_successful"),
        Some(1.0)
    );

    // The event stream opened before the reload carries the session to its end.
    let advised = events.until("advice").await;
    assert_eq!(advised["session"], session.as_str());
    assert_eq!(advised["useCase"], "lez-social-tariff");
    tokio::task::spawn_blocking(move || card.remove())
        .await
        .unwrap();
    let removed = events.until("card-removed").await;
    assert_eq!(removed["session"], session.as_str());
    assert_eq!(
        server.bodies().len(),
        2,
        "the upstream was asked once per use case"
    );
    assert!(agent.log().contains("configuration reloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_configuration_is_refused_whole_and_the_running_one_stays() {
    let mut counter = Counter::start(|_| String::new()).await;
    let Counter { agent, pcscd, .. } = &mut counter;
    let pid = agent.pid();
    let mut events = agent.events().await;

    // A new token, and a drop-in with a mistake: none of it may apply.
    common::write_secret(&agent.config().with_file_name("token"), ROTATED);
    let drop_ins = agent.config().with_file_name("config.d");
    std::fs::create_dir(&drop_ins).unwrap();
    let broken = drop_ins.join("60-broken.toml");
    std::fs::write(&broken, "[api]\nauto_advice = [\"no-such-use-case\"]\n").unwrap();
    let refused = reload(agent).await;
    assert_eq!(refused["applied"], false, "{refused}");
    let problems = refused["problems"].to_string();
    assert!(
        problems.contains("60-broken.toml:2") && problems.contains("auto_advice"),
        "the problem with its file and line: {problems}"
    );

    // None of it applied: the old token still works.
    assert_in_force(agent, pid, TOKEN, ROTATED).await;
    let text = agent.metrics().await;
    assert_eq!(
        sample(&text, "beid_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "beid_config_last_reload_successful"),
        Some(0.0)
    );
    let log = agent.log();
    assert!(log.contains("configuration refused as a whole"), "{log}");
    assert!(
        log.contains("60-broken.toml:2"),
        "each problem logged: {log}"
    );

    // The running configuration still serves cards, with the auto advice it had.
    let card = pcscd.insert("gen-1.7-rsa2048");
    let advice = events.until("advice").await;
    assert_eq!(advice["useCase"], USE_CASE);

    // diagnose names the refusal and its problem.
    let health = diagnose_health(pcscd, agent).await;
    assert_eq!(health.0, Some(12), "{:#}", health.1);
    let running = check(&health.1, "running configuration");
    assert_eq!(running["status"], "fail", "{running}");
    assert!(
        running["detail"]
            .as_str()
            .unwrap()
            .contains("60-broken.toml:2"),
        "{running}"
    );

    // Fixed and reloaded: now all of it applies.
    std::fs::remove_file(&broken).unwrap();
    let applied = reload(agent).await;
    assert_eq!(applied["applied"], true, "{applied}");
    assert_in_force(agent, pid, ROTATED, TOKEN).await;
    let health = diagnose_health(pcscd, agent).await;
    let running = check(&health.1, "running configuration");
    assert_eq!(running["status"], "pass", "{running}");
    drop(card);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_a_reload_cannot_apply_wait_for_a_restart_and_the_rest_applies() {
    let counter = Counter::start(|_| String::new()).await;
    let Counter { agent, pcscd, .. } = &counter;
    let drop_ins = agent.config().with_file_name("config.d");
    std::fs::create_dir(&drop_ins).unwrap();
    let other_port = common::free_port();
    std::fs::write(
        drop_ins.join("50-device.toml"),
        format!("[api]\nlisten = \"127.0.0.1:{other_port}\"\n"),
    )
    .unwrap();
    common::write_secret(&agent.config().with_file_name("token"), ROTATED);
    let reloaded = reload(agent).await;
    assert_eq!(reloaded["applied"], true, "{reloaded}");
    assert_eq!(
        config_state(agent)["restart_pending"],
        json!(["api.listen"])
    );
    // Still on its port, with the rotated token.
    assert_eq!(status_of(agent, "/v1/readers", ROTATED).await, 200);
    let text = agent.metrics().await;
    assert_eq!(sample(&text, "beid_config_restart_pending"), Some(1.0));
    assert!(agent.log().contains("take effect at the next restart"));
    let health = diagnose_health(pcscd, agent).await;
    let pending = check(&health.1, "restart pending");
    assert_eq!(pending["status"], "warn", "{pending}");
    assert!(pending["detail"].as_str().unwrap().contains("api.listen"));
}

/// `diagnose --health --json` against the served agent; its exit code and report.
async fn diagnose_health(pcscd: &Pcscd, agent: &ServedAgent) -> (Option<i32>, Value) {
    let mut command = pcscd.agent();
    command
        .args(["diagnose", "--health", "--json", "--config"])
        .arg(agent.config())
        .arg("--state-dir")
        .arg(agent.state_dir());
    tokio::task::spawn_blocking(move || {
        let output = common::run(&mut command);
        let report = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", common::stdout(&output)));
        (output.status.code(), report)
    })
    .await
    .unwrap()
}
