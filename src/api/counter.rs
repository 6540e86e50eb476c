//! The clerk's counter page (`/counter/`), embedded in the binary: it shows, beside the
//! POS, what the agent knows of the card in the reader and records the clerk's decision,
//! through the same `/v1` API and token rules as any client (docs/local-api.md, "Counter
//! page"). The page takes its token from the URL fragment; nothing here knows about it.

use axum::response::{Redirect, Response};

use super::pages;

const PAGE: &str = include_str!("../../assets/counter/index.html");
const SCRIPT: &str = include_str!("../../assets/counter/counter.js");
const TEXTS: &str = include_str!("../../assets/counter/texts.js");
const STYLE: &str = include_str!("../../assets/counter/counter.css");

pub async fn redirect() -> Redirect {
    Redirect::permanent("/counter/")
}

pub async fn page() -> Response {
    pages::html(PAGE)
}

pub async fn script() -> Response {
    pages::script(SCRIPT)
}

/// The page's words in nl, fr, de and en (a file of its own: translators work on it alone).
pub async fn texts() -> Response {
    pages::script(TEXTS)
}

pub async fn style() -> Response {
    pages::style(STYLE)
}
