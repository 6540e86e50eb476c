//! `serve` under systemd's notify protocol (`Type=notify`, `WatchdogSec=`): READY=1 only once
//! the API answers, WATCHDOG=1 at half the period, STOPPING=1 on SIGTERM. The test plays
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
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

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
