//! `beid-agent serve --simulate` as a child process, for tests and benches: its address and
//! demo token, its resident memory, and one citizen's visit (insert a card, ask an advice,
//! take the card out) through the simulator API. Include it on its own:
//! `#[path = "common/simulated.rs"] mod simulated;`.

// Each test binary uses part of this harness.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

/// Paces requests under the API's per-client limit (50 a second, bursts of 100): one every
/// 21 ms, and after a stall (a slow answer, a busy machine) it carries on at that pace
/// rather than sending the missed requests at once.
pub fn pace() -> tokio::time::Interval {
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(21));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pace
}

/// A running `serve --simulate` on a free loopback port; killed on drop.
pub struct SimulatedServe {
    child: Child,
    pub base: String,
    pub token: String,
    pub state: tempfile::TempDir,
    /// Kept open: the agent prints more lines after the first.
    _stdout: BufReader<ChildStdout>,
}

impl Drop for SimulatedServe {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SimulatedServe {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts with these environment variables (e.g. systemd's `NOTIFY_SOCKET`) and waits for
    /// the banner, printed once the API listens.
    pub fn start_with_env(env: &[(&str, &OsStr)]) -> Self {
        Self::launch(tempfile::tempdir().unwrap(), &[], env, Stdio::null())
    }

    /// Starts in a state directory the test prepared, with extra arguments (e.g.
    /// `--log-format json`) and its log going to `stderr`.
    pub fn start_in(state: tempfile::TempDir, args: &[&str], stderr: Stdio) -> Self {
        Self::launch(state, args, &[], stderr)
    }

    fn launch(
        state: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &OsStr)],
        stderr: Stdio,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_beid-agent"));
        command
            .args([
                "serve",
                "--simulate",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(state.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        let base = banner
            .trim()
            .rsplit(' ')
            .next()
            .filter(|base| base.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in the banner {banner:?}"))
            .to_owned();
        let token = std::fs::read_to_string(state.path().join("demo-token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            child,
            base,
            token,
            state,
            _stdout: stdout,
        }
    }

    /// Stops the agent; its state directory stays until this is dropped.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the agent as systemd does (SIGTERM: it shuts down in order) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(signalled.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    async fn post(&self, http: &reqwest::Client, path: &str, body: Value) -> reqwest::Response {
        http.post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Inserts `card`, asks the advice for UiTPAS, takes the card out. Returns the session
    /// and the decision. `pace` is awaited before each of the three requests (the API allows
    /// a client 50 a second).
    pub async fn visit(
        &self,
        http: &reqwest::Client,
        card: &str,
        pace: &mut tokio::time::Interval,
    ) -> (String, String) {
        pace.tick().await;
        let inserted = self
            .post(http, "/v1/simulator/insert", json!({ "card": card }))
            .await;
        assert_eq!(inserted.status(), 200, "insert {card}");
        let inserted: Value = inserted.json().await.unwrap();
        let session = inserted["session"].as_str().unwrap().to_owned();
        pace.tick().await;
        let advice: Value = self
            .post(
                http,
                &format!("/v1/sessions/{session}/advice"),
                json!({ "useCase": "uitpas-kansentarief" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let decision = advice["decision"]
            .as_str()
            .unwrap_or_else(|| panic!("no decision for {card}: {advice}"))
            .to_owned();
        pace.tick().await;
        let removed = self.post(http, "/v1/simulator/remove", json!({})).await;
        assert_eq!(removed.status(), 204, "remove {card}");
        (session, decision)
    }
}
