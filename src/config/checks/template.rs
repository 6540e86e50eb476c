//! The shipped template left as it is: its placeholders would send a made-up device id to
//! the rule service and ask a host that does not exist.

use url::Url;

use super::super::model::Sections;
use super::super::path::KeyPath;
use super::super::problem::ProblemKind;
use super::Checker;

/// The template's device id.
const PLACEHOLDER_ID: &str = "change-me";

pub(super) fn check(checker: &mut Checker<'_>, sections: &Sections) {
    if sections
        .device
        .as_ref()
        .is_some_and(|d| d.id == PLACEHOLDER_ID)
    {
        checker.report(
            KeyPath::of(&["device", "id"]),
            ProblemKind::Placeholder {
                what: "this device's id, as on its client certificate (e.g. \"balie-3\")",
            },
        );
    }
    let url = sections.upstream.as_ref().and_then(|u| u.url.as_deref());
    if url.is_some_and(is_placeholder) {
        checker.report(
            KeyPath::of(&["upstream", "url"]),
            ProblemKind::Placeholder {
                what: "the city's rule service URL",
            },
        );
    }
    let clients = KeyPath::of(&["api", "clients"]);
    for (position, client) in sections.api.clients.iter().enumerate() {
        let origins = checker.element(&clients, position).key("origins");
        for (index, origin) in client.origins.iter().enumerate() {
            if is_placeholder(origin) {
                checker.report(
                    checker.element(&origins, index),
                    ProblemKind::Placeholder {
                        what: "the origin of the city's POS (https://…)",
                    },
                );
            }
        }
    }
}

/// A URL on a name reserved for examples (RFC 2606): `*.example`, `example.com`,
/// `example.net`, `example.org` and their subdomains. None of them is a real service.
fn is_placeholder(url: &str) -> bool {
    let Some(host) = Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "example"
        || host.ends_with(".example")
        || ["example.com", "example.net", "example.org"]
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

#[cfg(test)]
mod tests {
    use super::is_placeholder;

    #[test]
    fn example_names_are_placeholders() {
        for placeholder in [
            "https://rules.city.example/",
            "https://pos.city.example",
            "https://example.com",
            "https://www.example.org/api",
            "https://EXAMPLE.NET.",
        ] {
            assert!(is_placeholder(placeholder), "{placeholder}");
        }
        for real in [
            "https://rules.gent.be/",
            "https://example.gent.be",
            "https://myexample.com",
            "not a url",
        ] {
            assert!(!is_placeholder(real), "{real}");
        }
    }
}
