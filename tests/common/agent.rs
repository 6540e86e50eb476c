//! The agent as deployed, for end-to-end tests: `beid-agent serve --config` on a test pcscd,
//! asking the real mTLS test upstream, and its event stream read as a POS would. Include
//! beside `common` and `upstream`: `#[path = "common/agent.rs"] mod agent;`.

// Each test binary uses part of this harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::Pcscd;
use crate::upstream::Pki;

pub const TOKEN: &str = "counter-token-0123456789-0123456789-0123";

/// A running `serve`; killed when dropped.
pub struct ServedAgent {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Drop for ServedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServedAgent {
    /// Serves with the TEST roots of the generated cards, the counter client (scope advice),
    /// auto advice for `uitpas-kansentarief`, and `extra` appended to the configuration.
    pub fn start(pcscd: &Pcscd, upstream_url: &str, pki: &Pki, extra: &str) -> Self {
        Self::start_trusting(pcscd, upstream_url, pki, &[], extra)
    }

    /// As [`ServedAgent::start`], also trusting these roots of `fixtures/test-pki/` (e.g.
    /// `eid-test-root-ca.crt` for the Alice specimen cards).
    pub fn start_trusting(
        pcscd: &Pcscd,
        upstream_url: &str,
        pki: &Pki,
        more_roots: &[&str],
        extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let roots = crate::common::fixtures().join("test-pki");
        let more_roots: String = more_roots
            .iter()
            .map(|name| format!(", \"{}\"", roots.join(name).display()))
            .collect();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let port = crate::common::free_port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[upstream]\nkind = \"http\"\nurl = \"{upstream_url}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"\n\n\
                 [device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
                 [trust]\nextra_roots = [\"{}\", \"{}\"{more_roots}]\nrrn_key_cache = \"state/rrn-keys.json\"\n\n\
                 [api]\nlisten = \"127.0.0.1:{port}\"\nauto_advice = [\"uitpas-kansentarief\"]\n\n\
                 [[api.clients]]\nname = \"counter\"\ntoken_file = \"token\"\nscopes = [\"advice\"]\n\n{extra}",
                pki.client_cert.display(),
                pki.client_key.display(),
                pki.ca_bundle.display(),
                roots.join("gen-root-ca4.der").display(),
                roots.join("gen-root-ca6.der").display(),
            ),
        )
        .unwrap();
        // Trace level, JSON: what the agent logs is checked for personal data.
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut child = pcscd
            .agent()
            .args(["-vv", "--log-format", "json", "serve", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let agent = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            dir,
        };
        assert!(
            banner.contains("serving on"),
            "serve did not start: {banner:?}"
        );
        agent
    }

    /// Stops the agent and returns its whole log.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap()
    }

    /// GET with the counter's token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// A subscription to the event stream (ticket, then SSE).
    pub async fn events(&self) -> Events {
        let ticket: Value = self
            .http
            .post(format!("{}/v1/events/ticket", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = self
            .http
            .get(format!(
                "{}/v1/events?ticket={}",
                self.base,
                ticket["ticket"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Events {
            response,
            buffer: String::new(),
        }
    }
}

/// An SSE stream, read event by event.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

/// How long any one event may take to come.
const EVENT_WAIT: Duration = Duration::from_secs(20);

impl Events {
    /// The next event: its name and data.
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let name = block.lines().find_map(|l| l.strip_prefix("event: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(name), Some(data)) = (name, data) {
                    return (name.to_owned(), serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {EVENT_WAIT:?}: {}", self.buffer))
                .unwrap()
                .expect("the event stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips to the next event with this name.
    pub async fn until(&mut self, name: &str) -> Value {
        loop {
            let (event, data) = self.next().await;
            if event == name {
                return data;
            }
        }
    }

    /// Every event of `session` up to and including its `card-removed`.
    pub async fn session(&mut self, session: &str) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        loop {
            let (event, data) = self.next().await;
            if data["session"] != session {
                continue;
            }
            let ended = event == "card-removed";
            seen.push((event, data));
            if ended {
                return seen;
            }
        }
    }

    /// The code of `session`'s `error` event; it must come before its advice or its end.
    pub async fn error_of(&mut self, session: &str) -> String {
        loop {
            let (event, data) = self.next().await;
            if data["session"] != session {
                continue;
            }
            match event.as_str() {
                "error" => return data["code"].as_str().unwrap().to_owned(),
                "advice" | "card-removed" => panic!("{event} before an error: {data}"),
                _ => {}
            }
        }
    }

    /// Events of `session` until its advice or its `card-removed`.
    pub async fn ending(&mut self, session: &str) -> Ending {
        let mut names = Vec::new();
        loop {
            let (event, data) = self.next().await;
            if data["session"] != session {
                continue;
            }
            match event.as_str() {
                "advice" => return Ending::Advice(data["decision"].as_str().unwrap().to_owned()),
                "card-removed" => {
                    names.push(event);
                    return Ending::Removed(names);
                }
                _ => names.push(event),
            }
        }
    }
}

/// How a session ended, as its events tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Its advice came, with this decision.
    Advice(String),
    /// It ended without one: the names of its events, the last `card-removed`.
    Removed(Vec<String>),
}
