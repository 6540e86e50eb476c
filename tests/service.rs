//! `serve` under systemd's notify protocol (`Type=notify-reload`, `WatchdogSec=`): READY=1
//! only once the API answers, WATCHDOG=1 at half the period, STOPPING=1 on SIGTERM, and on
//! SIGHUP RELOADING=1 stamped with the monotonic clock, then READY=1 with a status line
//! that says whether the new configuration is in force or was refused. The test plays
//! systemd: it binds the notify socket and sets the variables systemd would.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The notify socket systemd would bind for the service, in `dir`.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (path, socket)
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0_u8; 4096];
    let length = socket
        .recv(&mut buffer)
        .expect("a notification within the socket's timeout");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[test]
fn serve_tells_systemd_when_it_is_ready_feeds_the_watchdog_and_says_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (path, socket) = notify_socket(dir.path());

    // `exec` keeps the shell's pid, so WATCHDOG_PID names the agent, as systemd's would.
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" serve --simulate --listen 127.0.0.1:0 --state-dir "$1""#)
        .arg(common::AGENT)
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child = Child(child);

    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving on "))
        .unwrap_or_else(|| panic!("{ready}"));
    // Ready means the API already answers.
    let mut stream = std::net::TcpStream::connect(status).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {status}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    for _ in 0..3 {
        assert_eq!(receive(&socket).trim(), "WATCHDOG=1");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    loop {
        let message = receive(&socket);
        if message.trim() != "WATCHDOG=1" {
            assert_eq!(message.trim(), "STOPPING=1");
            break;
        }
    }
}

/// The next notification that is not the watchdog's.
fn receive_state(socket: &UnixDatagram) -> String {
    loop {
        let message = receive(socket);
        if message.trim() != "WATCHDOG=1" {
            return message;
        }
    }
}

/// The value of `KEY=` in a notification.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// The monotonic clock as systemd reads it (CLOCK_MONOTONIC), in µs.
fn monotonic_usec() -> i128 {
    match sd_notify::NotifyState::monotonic_usec_now().unwrap() {
        sd_notify::NotifyState::MonotonicUsec(usec) => usec,
        other => panic!("{other:?}"),
    }
}

#[test]
fn serve_reloads_on_sighup_as_type_notify_reload_expects() {
    let dir = tempfile::tempdir().unwrap();
    let (path, socket) = notify_socket(dir.path());
    let token = "7e1c9a3f5b0d8e2a6c4f1b7d9e3a0c5f8b2e6d4a1c7f9b0e3d5a8c2f6e4b1d07";
    common::write_secret(&dir.path().join("token"), token);
    let config = dir.path().join("config.toml");
    let port = common::free_port();
    std::fs::write(
        &config,
        format!(
            "[upstream]\nkind = \"simulated\"\n\n[device]\nid = \"balie-3\"\nchannel = \"counter\"\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[api.clients]]\nname = \"pos\"\ntoken_file = \"token\"\nscopes = [\"advice\"]\n"
        ),
    )
    .unwrap();
    let child = Command::new(common::AGENT)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        // No pcscd: the agent waits for it and serves meanwhile.
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child = Child(child);
    let ready = receive_state(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

    let hangup = || {
        let sent = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // systemd sends SIGHUP, then waits for RELOADING=1 stamped no earlier than its signal,
    // and for READY=1 after it.
    let signalled = monotonic_usec();
    hangup();
    let reloading = receive_state(&socket);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let stamp: i128 = field(&reloading, "MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {reloading}"))
        .parse()
        .unwrap();
    assert!(stamp >= signalled, "{stamp} < {signalled}");
    let done = receive_state(&socket);
    assert!(done.lines().any(|l| l == "READY=1"), "{done}");
    let status = field(&done, "STATUS").unwrap();
    assert!(
        status.starts_with(&format!(
            "serving on 127.0.0.1:{port}; configuration reloaded at "
        )),
        "{status}"
    );

    // A broken configuration: still READY=1 (the agent serves on), and the status says so.
    std::fs::write(&config, "[upstream]\nkind = \"nonsense\"\n").unwrap();
    hangup();
    let reloading = receive_state(&socket);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let done = receive_state(&socket);
    assert!(done.lines().any(|l| l == "READY=1"), "{done}");
    let status = field(&done, "STATUS").unwrap();
    assert!(status.contains("REFUSED"), "{status}");
    assert!(
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .unwrap()
            .success(),
        "the agent runs on"
    );
}
