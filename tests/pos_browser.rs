//! The POS page in a real (headless) Chromium 156 against the agent, through Local Network
//! Access (hardware/chromium/README.md): a POS page on its configured HTTPS origin, counted
//! as public with `--ip-address-space-overrides`, reads the advice when the managed policy
//! `LoopbackNetworkAllowedForUrls` (the shipped `beid-agent.json`, its origin rewritten to
//! the test's) is in place, and is blocked by the browser without it; a page from another
//! origin cannot read `/v1` data, whether or not the policy lists it (the agent refuses its
//! Origin).
//!
//! The agent runs in-process with a simulated reader; the POS page is served over HTTPS from
//! two loopback ports, `pos.uitpas.example` (the client's origin) and `other.example`, mapped
//! to 127.0.0.1 with `--host-resolver-rules`, with a fresh self-signed certificate trusted
//! through `--ignore-certificate-errors-spki-list`. Chromium is started through a wrapper
//! script that runs it in a private mount namespace whose `/etc/chromium` is an empty tmpfs
//! holding only the case's policy: the machine's real `/etc` is never touched. As root it uses
//! `unshare --mount`, otherwise `unshare --user --map-root-user --mount`.
//!
//! Needs `/usr/bin/chromium`, `/usr/bin/chromedriver` (`CHROMIUM` / `CHROMEDRIVER` override)
//! and `unshare`.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::browser;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use beid_agent::api::{self, AppState, Client, Clients, Scope};
use beid_agent::metrics::Metrics;
use beid_agent::session::{Engine, EngineSettings};
use beid_agent::sim::SimulatedReaders;
use browser::Browser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "pos-browser-token-0123456789-0123456789-0123";
/// Prometheus' token: `/metrics` needs the `metrics` scope.
const METRICS_TOKEN: &str = "pos-browser-metrics-0123456789-0123456789";
const POS_HOST: &str = "pos.uitpas.example";
const OTHER_HOST: &str = "other.example";
/// The origin in the shipped policy file, replaced by the test's own.
const SHIPPED_ORIGIN: &str = "https://pos.uitpas.example";
const SHIPPED_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/hardware/chromium/beid-agent.json"
);
/// The page gives up after 4.5 s; this covers it and a slow start.
const PAGE_LIMIT: Duration = Duration::from_secs(10);
const LNA_DENIED: &str =
    "Permission was denied for this request to access the `loopback` address space";

/// The counter's POS, reduced to what it does with the agent: the first reader's session,
/// then the advice for the use case. `@AGENT@` and `@TOKEN@` are filled in as JS strings.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>POS</title></head>
<body>
<p id="permission">pending</p>
<p id="result">pending</p>
<script>
const agent = @AGENT@;
const token = @TOKEN@;
(async () => {
  // What a POS can check first (hardware/chromium/README.md): granted when the policy lists
  // this origin. Asked before any call, since a refused call is remembered as "denied".
  let permission;
  try {
    permission = (await navigator.permissions.query({name: "loopback-network"})).state;
  } catch (e) {
    permission = "ERR " + e.name;
  }
  document.getElementById("permission").textContent = permission;
  const out = document.getElementById("result");
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 4500);
  const call = async (method, path, body) => {
    const headers = {"Authorization": "Bearer " + token};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(agent + path, {
      method, headers, signal: controller.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  };
  try {
    const readers = await call("GET", "/v1/readers");
    const session = readers.length > 0 ? readers[0].session : undefined;
    if (!session) throw new Error("no card session");
    const advice = await call("POST", "/v1/sessions/" + session + "/advice",
                              {useCase: "uitpas-kansentarief"});
    out.textContent = "OK " + advice.decision;
  } catch (e) {
    out.textContent = "ERR " + e.name + ": " + e.message;
  } finally {
    clearTimeout(timer);
  }
})();
</script>
</body></html>
"#;

#[test]
fn pos_page_reads_the_advice_only_with_the_policy_and_from_its_own_origin() {
    // The harness takes Chromium's binary from CHROMIUM only: point it at the wrapper before
    // any other thread exists (the runtime is built below).
    let real_chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let tools = Tools::new(&real_chromium);
    std::env::set_var("CHROMIUM", tools.wrapper());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(&tools));
}

async fn run(tools: &Tools) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (tls, spki) = certificate();
    let pos_port = serve_https(tls.clone()).await;
    let other_port = serve_https(tls).await;
    let pos_origin = format!("https://{POS_HOST}:{pos_port}");
    let other_origin = format!("https://{OTHER_HOST}:{other_port}");
    let agent = Agent::start(&pos_origin).await;
    PAGE_FOR_AGENT
        .set(
            PAGE.replace("@AGENT@", &json!(agent.base).to_string())
                .replace("@TOKEN@", &json!(TOKEN).to_string()),
        )
        .unwrap();
    agent.insert("gen-1.8-ec").await;

    let args = vec![
        "--no-proxy-server".to_owned(),
        format!("--host-resolver-rules=MAP {POS_HOST} 127.0.0.1, MAP {OTHER_HOST} 127.0.0.1"),
        format!("--ignore-certificate-errors-spki-list={spki}"),
        // Only the two page ports are public: the agent's port stays loopback.
        format!("--ip-address-space-overrides=127.0.0.1:{pos_port}=public,127.0.0.1:{other_port}=public"),
    ];

    // The shipped file with the test origin in place of the POS's: same policy, same shape.
    let shipped = std::fs::read_to_string(SHIPPED_POLICY).unwrap();
    assert!(
        shipped.contains(&format!("\"{SHIPPED_ORIGIN}\"")),
        "{shipped}"
    );
    let pos_only = shipped.replace(
        &format!("\"{SHIPPED_ORIGIN}\""),
        &json!(pos_origin).to_string(),
    );
    let mut both: Value = serde_json::from_str(&pos_only).unwrap();
    both["LoopbackNetworkAllowedForUrls"]
        .as_array_mut()
        .expect("LoopbackNetworkAllowedForUrls is a list")
        .push(json!(other_origin));
    let pos_only = tools.policy("pos-only.json", &pos_only);
    let both = tools.policy("both.json", &both.to_string());

    let started = std::time::Instant::now();

    // (1) The POS origin without the policy: headless Chromium refuses at once.
    let seen = visit(&agent, &args, None, &pos_origin).await;
    eprintln!("(1) POS, no policy: {seen:?}");
    assert!(seen.result.starts_with("ERR TypeError"), "{seen:?}");
    assert!(seen.console_mentions(LNA_DENIED), "{seen:?}");
    assert_eq!(seen.permission, "prompt", "{seen:?}");
    assert!(seen.requests.is_empty(), "the agent saw requests: {seen:?}");

    // (2) The POS origin with the shipped policy: the advice is read.
    let seen = visit(&agent, &args, Some(&pos_only), &pos_origin).await;
    eprintln!("(2) POS, shipped policy: {seen:?}");
    assert_eq!(seen.result, "OK eligible", "{seen:?}");
    assert_eq!(seen.permission, "granted", "{seen:?}");
    assert_eq!(seen.count("/v1/readers", 200), 1, "{seen:?}");
    assert_eq!(
        seen.count("/v1/sessions/{session}/advice", 200),
        1,
        "{seen:?}"
    );

    // (3) Another origin with the same policy (not listed): refused by the browser.
    let seen = visit(&agent, &args, Some(&pos_only), &other_origin).await;
    eprintln!("(3) other origin, shipped policy: {seen:?}");
    assert!(seen.result.starts_with("ERR TypeError"), "{seen:?}");
    assert!(seen.console_mentions(LNA_DENIED), "{seen:?}");
    assert_eq!(seen.permission, "prompt", "{seen:?}");
    assert!(seen.requests.is_empty(), "the agent saw requests: {seen:?}");

    // (4) Another origin that the policy lists too: the browser lets it ask, the agent
    // refuses its Origin on the preflight (403, no CORS headers), so the page reads nothing.
    let seen = visit(&agent, &args, Some(&both), &other_origin).await;
    eprintln!("(4) other origin, listed in the policy: {seen:?}");
    assert!(seen.result.starts_with("ERR TypeError"), "{seen:?}");
    assert_eq!(seen.permission, "granted", "{seen:?}");
    assert!(seen.count("/v1/readers", 403) >= 1, "{seen:?}");
    assert!(
        seen.requests.iter().all(|((_, status), _)| *status == 403),
        "the agent answered something else than 403: {seen:?}"
    );
    assert!(seen.console_mentions("CORS"), "{seen:?}");

    eprintln!("four cases in {:?}", started.elapsed());
}

/// What one fresh Chromium saw on `origin`'s page, and which `/v1` requests (route, status)
/// the agent counted meanwhile.
#[derive(Debug)]
struct Visit {
    result: String,
    permission: String,
    console: Vec<String>,
    requests: BTreeMap<(String, u16), u64>,
}

impl Visit {
    fn console_mentions(&self, text: &str) -> bool {
        self.console.iter().any(|line| line.contains(text))
    }

    fn count(&self, route: &str, status: u16) -> u64 {
        self.requests
            .get(&(route.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }
}

async fn visit(agent: &Agent, args: &[String], policy: Option<&Path>, origin: &str) -> Visit {
    let before = agent.requests().await;
    let mut args = args.to_vec();
    if let Some(policy) = policy {
        args.push(format!("--beid-test-policy={}", policy.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let browser = Browser::start(&args).await;
    browser.goto(&format!("{origin}/")).await;
    let shown = browser
        .wait_for(
            "(() => { \
               const result = document.getElementById('result').textContent; \
               const permission = document.getElementById('permission').textContent; \
               return result !== 'pending' && permission !== 'pending' && [result, permission]; \
             })()",
            PAGE_LIMIT,
        )
        .await;
    let console = browser.console_logs().await;
    close(browser, &agent.http).await;
    let after = agent.requests().await;
    let requests = after
        .into_iter()
        .filter(|((route, _), _)| route.starts_with("/v1/"))
        .filter_map(|(key, count)| {
            let new = count - before.get(&key).copied().unwrap_or(0);
            (new > 0).then_some((key, new))
        })
        .collect();
    Visit {
        result: shown[0].as_str().unwrap_or_default().to_owned(),
        permission: shown[1].as_str().unwrap_or_default().to_owned(),
        console,
        requests,
    }
}

/// Drops `browser` without the harness's 20 s stall: its Drop ends the session with a blocking
/// DELETE and reads until chromedriver closes the connection, which chromedriver never does
/// (it answers `Connection: close` and keeps the socket open), so every drop waits for the
/// 20 s read timeout. Here the session is ended first over HTTP and chromedriver (this
/// process's child, started by the harness) is stopped by pid: Drop then finds no driver to
/// talk to, reaps it and finds no Chromium left.
async fn close(browser: Browser, http: &reqwest::Client) {
    for (pid, port) in chromedrivers() {
        if let Ok(answer) = http
            .get(format!("http://127.0.0.1:{port}/sessions"))
            .send()
            .await
        {
            let sessions: Value = answer.json().await.unwrap_or_default();
            for session in sessions["value"].as_array().into_iter().flatten() {
                if let Some(id) = session["id"].as_str() {
                    let _ = http
                        .delete(format!("http://127.0.0.1:{port}/session/{id}"))
                        .timeout(Duration::from_secs(20))
                        .send()
                        .await;
                }
            }
        }
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    drop(browser);
}

/// This process's chromedriver children still running: (pid, port).
fn chromedrivers() -> Vec<(u32, u16)> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...
            let (comm, rest) = stat.split_once(") ")?;
            let mut fields = rest.split_whitespace();
            let (state, ppid) = (fields.next()?, fields.next()?);
            if !comm.ends_with("(chromedriver") || ppid != me || state == "Z" {
                return None;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let port = cmdline.split(|b| *b == 0).find_map(|arg| {
                std::str::from_utf8(arg.strip_prefix(b"--port=")?)
                    .ok()?
                    .parse()
                    .ok()
            })?;
            Some((pid, port))
        })
        .collect()
}

// ---- the agent

struct Agent {
    base: String,
    http: reqwest::Client,
}

impl Agent {
    /// The agent's API on 127.0.0.1 port 0, simulated readers and rule service, one POS
    /// client whose only origin is `pos_origin`.
    async fn start(pos_origin: &str) -> Agent {
        let source = Arc::new(SimulatedReaders::new(&["Simulated reader 1"], false));
        let settings = EngineSettings {
            device_id: "balie-3".into(),
            ..EngineSettings::simulated(None).unwrap()
        };
        let metrics = Arc::new(Metrics::default());
        let engine = Engine::start(source.clone(), settings, metrics.clone()).unwrap();
        let clients = Clients::new(vec![
            Client::new(
                "uitpas-pos",
                TOKEN,
                vec![Scope::Advice],
                vec![pos_origin.to_owned()],
            ),
            Client::new("prometheus", METRICS_TOKEN, vec![Scope::Metrics], vec![]),
        ]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = AppState::new(engine, clients, metrics, port).with_simulator(Some(source));
        tokio::spawn(api::serve(listener, state, std::future::pending()));
        Agent {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Answers once the engine saw the card: there is a session from then on.
    async fn insert(&self, card: &str) {
        let response = self
            .http
            .post(format!("{}/v1/simulator/insert", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({"card": card}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// `beid_api_requests_total` from /metrics, by (route, status).
    async fn requests(&self) -> BTreeMap<(String, u16), u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("beid_api_requests_total{route=\"")?;
                let (route, rest) = rest.split_once("\",status=\"")?;
                let (status, count) = rest.split_once("\"} ")?;
                Some((
                    (route.to_owned(), status.parse().ok()?),
                    count.trim().parse().ok()?,
                ))
            })
            .collect()
    }
}

// ---- the POS's HTTPS server

/// The page, with the agent's address and the token, once the agent runs.
static PAGE_FOR_AGENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A self-signed certificate for both test hosts: its TLS config, and the base64 SHA-256 of
/// its SubjectPublicKeyInfo for `--ignore-certificate-errors-spki-list`.
fn certificate() -> (Arc<rustls::ServerConfig>, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec![POS_HOST.to_owned(), OTHER_HOST.to_owned()])
            .unwrap();
    let spki = ring::digest::digest(&ring::digest::SHA256, &certified.key_pair.public_key_der());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    (Arc::new(config), base64(spki.as_ref()))
}

/// Serves the POS page over HTTPS (HTTP/1.1, one request per connection) on a free loopback
/// port, for as long as the runtime lives.
async fn serve_https(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                    if head.len() > 16 * 1024 {
                        return;
                    }
                }
                let (status, body) = if head.starts_with(b"GET / ") {
                    ("200 OK", PAGE_FOR_AGENT.get().map_or("", String::as_str))
                } else {
                    ("404 Not Found", "")
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- Chromium with a private /etc/chromium

/// A temporary folder with the Chromium wrapper, its HOME and the cases' policy files.
struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    fn new(real_chromium: &str) -> Tools {
        let dir = tempfile::Builder::new()
            .prefix("pos-browser-")
            .tempdir()
            .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        for path in [home.to_string_lossy(), real_chromium.into()] {
            assert!(!path.contains('\''), "no quotes in {path}");
        }
        // The policy file comes from our own flag --beid-test-policy=FILE (Chromium ignores
        // switches it does not know); without it /etc/chromium is empty: no policy at all,
        // whatever the machine has installed.
        let script = format!(
            r#"#!/bin/sh
# Chromium for tests/pos_browser.rs: in a private mount namespace whose /etc/chromium is a
# fresh tmpfs holding only this run's managed policy. The real /etc is never touched.
policy=
for arg in "$@"; do
  case "$arg" in --beid-test-policy=*) policy="${{arg#--beid-test-policy=}}" ;; esac
done
export HOME='{home}'
if [ "$(id -u)" = 0 ]; then ns="--mount --propagation private"; else ns="--user --map-root-user --mount"; fi
exec unshare $ns /bin/sh -c '
  mount -t tmpfs -o mode=0755 tmpfs /etc/chromium || exit 1
  mkdir -p /etc/chromium/policies/managed || exit 1
  if [ -n "$1" ]; then cp "$1" /etc/chromium/policies/managed/beid-agent.json || exit 1; fi
  shift
  exec "$0" "$@"' '{chromium}' "$policy" "$@"
"#,
            home = home.display(),
            chromium = real_chromium,
        );
        let wrapper = dir.path().join("chromium");
        std::fs::write(&wrapper, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Tools { dir }
    }

    fn wrapper(&self) -> PathBuf {
        self.dir.path().join("chromium")
    }

    fn policy(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}
