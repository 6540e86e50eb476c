//! The agent as deployed, for end-to-end tests: `beid-agent serve --config` on a test pcscd,
//! asking the real mTLS test upstream, and its event stream read as a POS would. Include
//! beside `common` and `upstream`: `#[path = "common/agent.rs"] mod agent;`.

// Each test binary uses part of this harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::upstream::{Pki, Reply, Upstream};
use super::Pcscd;

/// A token as `openssl rand -hex 32` makes them (the agent refuses weak ones).
pub const TOKEN: &str = "5c1e9a0f7b3d2e8c4a6f1b9d0e7c3a5f8b2d4e6a1c9f0b7e3d5a2c8f6e4b1d09";
/// The token of the `prometheus` client (scope `metrics`) of [`metrics_client`].
pub const METRICS_TOKEN: &str = "3d8a1f6c9e2b5d0a7f4c1e8b3a6d9f2c5e0b7a4d1f8c3e6b9a2d5f0c7e4b1a8d";

/// Configuration for a `prometheus` client that may scrape `/metrics`, its token written
/// into `dir`: append it to [`ServedAgent::start`]'s `extra`.
pub fn metrics_client(dir: &std::path::Path) -> String {
    let token = dir.join("metrics-token");
    super::write_secret(&token, METRICS_TOKEN);
    format!(
        "[[api.clients]]\nname = \"prometheus\"\ntoken_file = \"{}\"\nscopes = [\"metrics\"]\n\n",
        token.display()
    )
}

/// The value of the sample on the line that starts with `name` (labels included) and a
/// space, in Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The status `GET {base}{path}` gets with `token`.
pub async fn status(base: &str, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A whole counter: the mTLS test upstream (answering `eligible`), a test pcscd with the
/// vpcd reader, and the agent served on them, with the `prometheus` client of
/// [`metrics_client`] beside the counter's. Fields drop in order: the agent first.
pub struct Counter {
    pub agent: ServedAgent,
    pub pcscd: Pcscd,
    pub upstream: Upstream,
    pub pki: Pki,
    /// A folder for the test's own files (the metrics token, a textfile folder).
    pub files: tempfile::TempDir,
}

impl Counter {
    /// `extra(files)` returns configuration to append; it may write into `files` first.
    pub async fn start(extra: impl FnOnce(&std::path::Path) -> String) -> Self {
        super::upstream::install_crypto();
        let pki = Pki::new();
        let upstream = Upstream::start(&pki, Reply::Decide("eligible")).await;
        let pcscd = Pcscd::start();
        let files = tempfile::tempdir().unwrap();
        let config = format!("{}{}", metrics_client(files.path()), extra(files.path()));
        let agent = ServedAgent::start(&pcscd, &upstream.url, &pki, &config);
        Self {
            agent,
            pcscd,
            upstream,
            pki,
            files,
        }
    }
}

/// How to start the agent: another binary (the same command of an older build, for a
/// comparison), a limit on open files (systemd's default soft limit is 1024).
#[derive(Debug, Default, Clone)]
pub struct Launch {
    pub binary: Option<std::path::PathBuf>,
    pub open_files: Option<u64>,
    /// Log at info, as the unit does (tests trace by default, to check what is logged).
    pub info_logging: bool,
}

impl Launch {
    fn command(&self, pcscd: &Pcscd) -> std::process::Command {
        let configured = pcscd.agent();
        let binary = self
            .binary
            .clone()
            .unwrap_or_else(|| configured.get_program().into());
        let mut command = match self.open_files {
            Some(limit) => {
                let mut limited = std::process::Command::new("prlimit");
                limited
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(binary);
                limited
            }
            None => std::process::Command::new(binary),
        };
        for (key, value) in configured.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }
}

/// What the `ServedAgent::start…` helpers vary.
#[derive(Default)]
struct Options<'a> {
    /// More roots of `fixtures/test-pki/` to trust.
    more_roots: &'a [&'a str],
    /// Where to listen; a free port when none.
    port: Option<u16>,
    /// A `config.d/` drop-in.
    drop_in: Option<&'a str>,
    launch: Launch,
}

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
        let options = Options {
            more_roots,
            ..Options::default()
        };
        Self::start_with(pcscd, upstream_url, pki, extra, options)
    }

    /// As [`ServedAgent::start_trusting`], started as `launch` says.
    pub fn start_launched(
        pcscd: &Pcscd,
        upstream_url: &str,
        pki: &Pki,
        more_roots: &[&str],
        extra: &str,
        launch: &Launch,
    ) -> Self {
        let options = Options {
            more_roots,
            launch: launch.clone(),
            ..Options::default()
        };
        Self::start_with(pcscd, upstream_url, pki, extra, options)
    }

    /// As [`ServedAgent::start_trusting`], listening on `port`: a client's `origins` can then
    /// name the agent's own origin, as the agent's own pages need.
    pub fn start_on(
        pcscd: &Pcscd,
        upstream_url: &str,
        pki: &Pki,
        more_roots: &[&str],
        port: u16,
        extra: &str,
    ) -> Self {
        let options = Options {
            more_roots,
            port: Some(port),
            ..Options::default()
        };
        Self::start_with(pcscd, upstream_url, pki, extra, options)
    }

    /// As [`ServedAgent::start`], as a kiosk: a `config.d/` drop-in sets the device's
    /// channel, as a city's configuration management would.
    pub fn start_kiosk(pcscd: &Pcscd, upstream_url: &str, pki: &Pki, extra: &str) -> Self {
        let options = Options {
            drop_in: Some("[device]\nchannel = \"kiosk\"\n"),
            ..Options::default()
        };
        Self::start_with(pcscd, upstream_url, pki, extra, options)
    }

    fn start_with(
        pcscd: &Pcscd,
        upstream_url: &str,
        pki: &Pki,
        extra: &str,
        options: Options,
    ) -> Self {
        let Options {
            more_roots,
            port,
            drop_in,
            launch,
        } = options;
        let port = port.unwrap_or_else(super::free_port);
        let dir = tempfile::tempdir().unwrap();
        if let Some(drop_in) = drop_in {
            std::fs::create_dir(dir.path().join("config.d")).unwrap();
            std::fs::write(dir.path().join("config.d/50-device.toml"), drop_in).unwrap();
        }
        let roots = super::fixtures().join("test-pki");
        let more_roots: String = more_roots
            .iter()
            .map(|name| format!(", \"{}\"", roots.join(name).display()))
            .collect();
        super::write_secret(&dir.path().join("token"), TOKEN);
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
        Self::serve_launched(pcscd, dir, port, &launch)
    }

    /// Serves `dir/config.toml` (which listens on `port`) on `pcscd`, state in `dir/state`.
    pub fn serve(pcscd: &Pcscd, dir: tempfile::TempDir, port: u16) -> Self {
        Self::serve_launched(pcscd, dir, port, &Launch::default())
    }

    /// As [`ServedAgent::serve`], started as `launch` says.
    fn serve_launched(pcscd: &Pcscd, dir: tempfile::TempDir, port: u16, launch: &Launch) -> Self {
        // Trace level, JSON: what the agent logs is checked for personal data.
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut child = launch
            .command(pcscd)
            .args(if launch.info_logging {
                &["--log-format", "json"][..]
            } else {
                &["-vv", "--log-format", "json"][..]
            })
            .args(["serve", "--config"])
            .arg(dir.path().join("config.toml"))
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

    /// The agent's process id (prlimit execs it, so the child is the agent).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the agent's process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGHUP (what `systemctl reload` sends): the agent reloads its configuration.
    pub fn hangup(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -HUP {}", self.pid());
    }

    /// The configuration file the agent was started with (`config.d/` beside it).
    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Its state directory.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Stops the agent and returns its whole log.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap()
    }

    /// GET with the counter's token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(path, TOKEN).await
    }

    /// GET with this token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /metrics` as the [`metrics_client`] scrapes it.
    pub async fn metrics(&self) -> String {
        let response = self.get_as("/metrics", METRICS_TOKEN).await;
        assert_eq!(response.status(), 200, "GET /metrics");
        response.text().await.unwrap()
    }

    /// A subscription to the event stream (ticket, then SSE).
    pub async fn events(&self) -> Events {
        Events::subscribe(&self.http, &self.base, TOKEN).await
    }
}

/// An SSE stream, read event by event.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

/// How long any one awaited event may take to come (keep-alives do not count).
const EVENT_WAIT: Duration = Duration::from_secs(20);

impl Events {
    /// Subscribes to the event stream of the agent at `base` (`http://127.0.0.1:PORT`) with
    /// `token`: a ticket, then SSE.
    pub async fn subscribe(http: &reqwest::Client, base: &str, token: &str) -> Self {
        let ticket: Value = http
            .post(format!("{base}/v1/events/ticket"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = http
            .get(format!(
                "{base}/v1/events?ticket={}",
                ticket["ticket"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event: its name and data. Fails after [`EVENT_WAIT`] without one.
    pub async fn next(&mut self) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
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
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {EVENT_WAIT:?}: {}", self.buffer))
                .unwrap()
                .expect("the event stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips to the next event with this name; fails if it does not come within
    /// [`EVENT_WAIT`] of the call, whatever else comes meanwhile.
    pub async fn until(&mut self, name: &str) -> Value {
        let wait = async {
            loop {
                let (event, data) = self.next().await;
                if event == name {
                    return data;
                }
            }
        };
        tokio::time::timeout(EVENT_WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {name} event within {EVENT_WAIT:?}"))
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

    /// The code of `session`'s `card-error` event; it must come before its advice or its end.
    pub async fn error_of(&mut self, session: &str) -> String {
        loop {
            let (event, data) = self.next().await;
            if data["session"] != session {
                continue;
            }
            match event.as_str() {
                "card-error" => return data["code"].as_str().unwrap().to_owned(),
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
