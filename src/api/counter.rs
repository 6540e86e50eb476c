//! The clerk's counter page (`/counter/`), embedded in the binary: it shows, beside the
//! POS, what the agent knows of the card in the reader and records the clerk's decision,
//! through the same `/v1` API and token rules as any client (docs/local-api.md, "Counter
//! page"). The page takes its token from the URL fragment; nothing here knows about it.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::pages;

const PAGE: &str = include_str!("../../assets/counter/index.html");

/// The page's scripts (ES modules, one job each) and its style sheet, by file name.
const ASSETS: &[(&str, &str)] = &[
    (
        "counter.js",
        include_str!("../../assets/counter/counter.js"),
    ),
    ("agent.js", include_str!("../../assets/counter/agent.js")),
    ("card.js", include_str!("../../assets/counter/card.js")),
    (
        "decision.js",
        include_str!("../../assets/counter/decision.js"),
    ),
    ("dom.js", include_str!("../../assets/counter/dom.js")),
    ("words.js", include_str!("../../assets/counter/words.js")),
    ("texts.js", include_str!("../../assets/counter/texts.js")),
    (
        "counter.css",
        include_str!("../../assets/counter/counter.css"),
    ),
];

pub async fn redirect() -> Redirect {
    Redirect::permanent("/counter/")
}

pub async fn page() -> Response {
    pages::html(PAGE)
}

/// `/counter/{file}`: one of [`ASSETS`], else the API's JSON 404 (a name that does not
/// even decode included).
pub async fn asset(file: Result<Path<String>, PathRejection>) -> Response {
    let file = file.map(|Path(file)| file).unwrap_or_default();
    match ASSETS.iter().find(|(name, _)| *name == file) {
        Some((name, source)) if name.ends_with(".css") => pages::style(source),
        Some((_, source)) => pages::script(source),
        None => ApiError::NOT_FOUND.into_response(),
    }
}
