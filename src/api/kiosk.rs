//! The kiosk page, embedded in the binary: same origin, no external requests (its CSP says
//! so to the browser too).

use axum::http::header;
use axum::response::{IntoResponse, Redirect};

const PAGE: &str = include_str!("../../assets/kiosk/index.html");
const SCRIPT: &str = include_str!("../../assets/kiosk/kiosk.js");
const STYLE: &str = include_str!("../../assets/kiosk/kiosk.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn redirect() -> Redirect {
    Redirect::permanent("/kiosk/")
}

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}
