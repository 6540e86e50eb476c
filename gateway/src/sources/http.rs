//! What both HTTP sources need: reading a bounded body into memory that is wiped after
//! use (it may hold personal data), `Retry-After`, and judging a transport error without
//! its URL (UiTPAS URLs carry the national number).

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use zeroize::Zeroizing;

use super::Reason;

/// Reads the body, refusing more than `limit` bytes.
pub(super) async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, Reason> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(Reason::SourceMalformed);
    }
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_reason(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(Reason::SourceMalformed);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds (the form publiq and most services send).
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The reason for a failed call. Never log the error itself: its text names the URL.
pub(super) fn transport_reason(error: &reqwest::Error) -> Reason {
    if error.is_timeout() {
        Reason::SourceTimeout
    } else if error.is_decode() || error.is_body() {
        Reason::SourceMalformed
    } else {
        Reason::SourceUnavailable
    }
}

/// What kind of transport error, for a log line (no URL, no text from the peer).
pub(super) fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_request() {
        "request"
    } else {
        "other"
    }
}
