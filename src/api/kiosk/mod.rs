//! The kiosk page and its speech clips, embedded in the binary: same origin, no external
//! requests (its CSP says so to the browser too). The page's words come from one catalogue
//! (`assets/kiosk/messages.json`), spliced into the page as data, so the words on screen
//! and the clips made from them (see [`speech`]) cannot drift apart unnoticed.

mod clips;
pub mod speech;

use std::sync::LazyLock;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;

const TEMPLATE: &str = include_str!("../../../assets/kiosk/index.html");
const SCRIPT: &str = include_str!("../../../assets/kiosk/kiosk.js");
const STYLE: &str = include_str!("../../../assets/kiosk/kiosk.css");
/// Where the catalogue goes in the page: the text of a `<script type="application/json">`.
const MESSAGES_SLOT: &str = "{{messages}}";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The page with its catalogue. `</` is escaped so no text can close the data block.
static PAGE: LazyLock<String> =
    LazyLock::new(|| TEMPLATE.replace(MESSAGES_SLOT, &speech::MESSAGES.replace("</", "<\\/")));

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
        PAGE.as_str(),
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

/// `GET /kiosk/speech/{language}/{clip}.ogg`: one clip of the kiosk's voice (Ogg Opus).
pub async fn clip(path: Result<Path<(String, String)>, PathRejection>) -> Response {
    let found = path.ok().and_then(|Path((language, file))| {
        let name = file.strip_suffix(".ogg")?;
        clips::CLIPS
            .iter()
            .find(|(lang, clip, _)| *lang == language && *clip == name)
    });
    match found {
        Some((_, _, bytes)) => ([(header::CONTENT_TYPE, "audio/ogg")], *bytes).into_response(),
        None => ApiError::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_whole_catalogue_as_data() {
        assert!(TEMPLATE.matches(MESSAGES_SLOT).count() == 1);
        assert!(!PAGE.contains(MESSAGES_SLOT));
        let start = PAGE
            .find("<script type=\"application/json\" id=\"messages\">")
            .unwrap();
        let data = &PAGE[start..];
        let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
        let served: serde_json::Value = serde_json::from_str(data).unwrap();
        let source: serde_json::Value = serde_json::from_str(speech::MESSAGES).unwrap();
        assert_eq!(served, source);
    }
}
