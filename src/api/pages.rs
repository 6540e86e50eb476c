//! How the agent serves its own pages (the counter page; the kiosk page can use it too):
//! assets embedded in the binary, same origin, and headers that tell the browser so.
//!
//! The CSP allows nothing but the agent's own scripts, styles and API: no inline script
//! (a citizen's name or an upstream's text can never become code), no external request, no
//! form posting elsewhere, and no framing (no other page can overlay or read it).
//! `Referrer-Policy: no-referrer` keeps the page's address, whose fragment held the token
//! before the page removed it, out of every request.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The pages' Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An HTML page, with the CSP and no referrer.
pub fn html(page: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
        .into_response()
}

/// A page's script.
pub fn script(source: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        source,
    )
        .into_response()
}

/// A page's style sheet.
pub fn style(source: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], source).into_response()
}
