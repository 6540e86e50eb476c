//! The whole agent as deployed: `beid-agent serve --config` with real pcscd + vpcd, the
//! simulated card, and a real HTTPS rule service requiring a client certificate. Measures
//! insertion → advice event, and checks the agent's whole log for the national number.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/upstream.rs"]
mod upstream;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{expected, Pcscd};
use serde_json::Value;
use upstream::{Pki, Reply, Upstream};

const TOKEN: &str = "counter-token-0123456789-0123456789-0123";

struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn events_until(response: &mut reqwest::Response, buffer: &mut String, name: &str) -> Value {
    loop {
        if let Some(start) = buffer.find(&format!("event: {name}\n")) {
            let rest = &buffer[start..];
            if let Some(end) = rest.find("\n\n") {
                let block = rest[..end].to_owned();
                buffer.drain(..start + end + 2);
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return serde_json::from_str(data).unwrap();
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} event in time: {buffer}"))
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insertion_to_advice_through_pcscd_and_the_https_upstream() {
    upstream::install_crypto();
    let pki = Pki::new();
    let server = Upstream::start(&pki, Reply::Decide("eligible")).await;
    let pcscd = Pcscd::start();
    let dir = tempfile::tempdir().unwrap();
    let roots = common::fixtures().join("test-pki");
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[upstream]\nkind = \"http\"\nurl = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"\n\n\
             [device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
             [trust]\nextra_roots = [\"{}\", \"{}\"]\nrrn_key_cache = \"rrn-keys.json\"\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nauto_advice = [\"uitpas-kansentarief\"]\n\n\
             [[api.clients]]\nname = \"counter\"\ntoken_file = \"token\"\nscopes = [\"advice\"]\n",
            server.url,
            pki.client_cert.display(),
            pki.client_key.display(),
            pki.ca_bundle.display(),
            roots.join("gen-root-ca4.der").display(),
            roots.join("gen-root-ca6.der").display(),
        ),
    )
    .unwrap();
    let child = pcscd
        .agent()
        .args(["-vv", "--log-format", "json", "serve", "--config"])
        .arg(dir.path().join("config.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    common::wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .expect("the agent listens");
    let ticket: Value = http
        .post(format!("{}/v1/events/ticket", served.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stream = http
        .get(format!(
            "{}/v1/events?ticket={}",
            served.base,
            ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();

    let mut latencies = Vec::new();
    let rounds: [(&str, &[&str]); 4] = [
        ("gen-1.8-ec", &[]),
        ("gen-1.7-rsa2048", &[]),
        ("gen-1.8-ec", &[]),
        ("gen-1.8-ec", &["--wire-time"]),
    ];
    for (round, (card, extra)) in rounds.iter().enumerate() {
        let inserted_at = Instant::now();
        let inserted = pcscd.insert_with(card, 0, extra);
        let event = events_until(&mut stream, &mut buffer, "card-inserted").await;
        let seen_at = Instant::now();
        let session = event["session"].as_str().unwrap().to_owned();
        let read = events_until(&mut stream, &mut buffer, "card-read").await;
        assert_eq!(read["authentic"], true, "{card}");
        let advice = events_until(&mut stream, &mut buffer, "advice").await;
        let latency = inserted_at.elapsed();
        let agent_share = seen_at.elapsed();
        assert_eq!(advice["session"], session.as_str());
        assert_eq!(advice["decision"], "eligible");
        latencies.push(latency);
        eprintln!(
            "round {round} {card} {extra:?}: insertion -> advice event {latency:?}; \
             card-inserted event -> advice event {agent_share:?} (the rest is vpcd's 0-400 ms poll)"
        );
        tokio::task::spawn_blocking(move || inserted.remove())
            .await
            .unwrap();
        let removed = events_until(&mut stream, &mut buffer, "card-removed").await;
        assert_eq!(removed["session"], session.as_str());
        let gone = http
            .post(format!("{}/v1/sessions/{session}/advice", served.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"useCase": "uitpas-kansentarief"}))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 410);
    }
    // The upstream was asked once per card, with the card's own number.
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    assert_eq!(
        bodies[1]["nationalNumber"],
        expected("gen-1.7-rsa2048")["national_number"]
    );

    // The agent's whole log (trace level, JSON): no national number in any line.
    let _ = served.child.kill();
    let _ = served.child.wait();
    let mut log = String::new();
    served
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("card read"), "logging was not on: {log}");
    for card in ["gen-1.8-ec", "gen-1.7-rsa2048"] {
        let number = expected(card)["national_number"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !log.contains(&number),
            "{card}: national number in the agent's log"
        );
    }
    drop(pcscd);
}
