//! What a reload costs: `beid-agent serve --config` (an mTLS upstream configured, so each
//! reload reads the certificate, key and CA bundle and builds a new TLS client) is sent
//! SIGHUP with a rotated token each time, as `systemctl reload` does; measured from the
//! signal to the agent's `READY=1` on the notify socket. Meanwhile a POS calls
//! `GET /v1/readers` at 40 requests a second with a token that stays: its latencies and
//! errors across the reloads.
//!
//! cargo bench --bench reload      (50 reloads; `cargo test --bench reload`: 3)

// Bench set-up: a failure must stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/upstream.rs"]
mod upstream;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_beid-agent");

fn secret(path: &Path, token: &str) {
    std::fs::write(path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// 256 random bits in hex, as `openssl rand -hex 32`.
fn token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The next notification with this line.
fn wait_for(socket: &UnixDatagram, line: &str) {
    let mut buffer = [0_u8; 1024];
    loop {
        let n = socket
            .recv(&mut buffer)
            .expect("a notification within 20 s");
        if String::from_utf8_lossy(&buffer[..n])
            .lines()
            .any(|l| l == line)
        {
            return;
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let reloads = if full { 50 } else { 3 };
    upstream::install_crypto();
    let pki = upstream::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let pos = token();
    secret(&dir.path().join("rotated"), &token());
    secret(&dir.path().join("pos"), &pos);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[upstream]\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\nca_bundle = \"{}\"\n\n\
             [device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
             [[api.clients]]\nname = \"rotated\"\ntoken_file = \"rotated\"\nscopes = [\"advice\"]\n\n\
             [[api.clients]]\nname = \"pos\"\ntoken_file = \"pos\"\nscopes = [\"advice\"]\n",
            pki.client_cert.display(),
            pki.client_key.display(),
            pki.ca_bundle.display(),
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(AGENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &socket_path)
        // No pcscd needed: the agent serves and waits for it.
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let base = banner
        .split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    wait_for(&socket, "READY=1");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let pos_calls = runtime.spawn(async move {
        let http = reqwest::Client::new();
        let mut pace = tokio::time::interval(Duration::from_millis(25));
        let (mut latencies, mut errors) = (Vec::new(), 0_usize);
        while !stopped.load(Ordering::Relaxed) {
            pace.tick().await;
            let started = Instant::now();
            match http
                .get(format!("{base}/v1/readers"))
                .bearer_auth(&pos)
                .send()
                .await
            {
                Ok(response) if response.status() == 200 => latencies.push(started.elapsed()),
                _ => errors += 1,
            }
        }
        (latencies, errors)
    });

    let mut took = Vec::with_capacity(reloads);
    for _ in 0..reloads {
        secret(&dir.path().join("rotated"), &token());
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        wait_for(&socket, "RELOADING=1");
        wait_for(&socket, "READY=1");
        took.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, errors) = runtime.block_on(pos_calls).unwrap();
    let _ = child.kill();
    let _ = child.wait();

    took.sort();
    latencies.sort();
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!(
        "reload: SIGHUP -> READY=1 over {reloads} reloads (token rotated, TLS client rebuilt): p50 {:?}, max {:?}",
        at(&took, 0.5),
        took[reloads - 1]
    );
    println!(
        "reload: GET /v1/readers meanwhile: {} answered, {errors} errors, p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(&latencies, 0.5),
        at(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    assert_eq!(errors, 0, "a POS request failed during a reload");
}
