//! Raw HTTP/1.1 over a TCP stream, for what an HTTP client library will not send (several
//! `Host` headers, an absolute-form target, a head that never ends) and for holding one
//! kept-alive connection under the test's control.

// Each test binary uses part of this harness.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an answer, or the agent closing a connection, may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// An answer: status, lower-case header lines, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    /// The `error` code of a JSON error body.
    pub fn error(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        value["error"].as_str().map(str::to_owned)
    }
}

/// Sends `request` (the whole text, head and body) on `stream` and reads one answer with a
/// `Content-Length` body; `None` when the agent closes the connection first.
pub async fn exchange(stream: &mut TcpStream, request: &str) -> Option<Answer> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let answer = Answer {
                status: head.split(' ').nth(1)?.parse().ok()?,
                head: head.to_owned(),
                body: body.to_owned(),
            };
            let length = answer
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if answer.body.len() >= length {
                return Some(answer);
            }
        }
    }
}

/// Sends `request` on a new connection to `address` and reads its answer.
pub async fn send(address: &str, request: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    exchange(&mut stream, request).await
}

/// Reads until the agent closes the connection (EOF or reset) and returns what came first;
/// fails after [`WAIT`].
pub async fn closed_by_agent(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let wait = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("the agent kept the connection open for {WAIT:?}"));
    received
}
