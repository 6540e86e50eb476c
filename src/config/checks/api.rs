//! `[api]`: where the API listens, its clients (names, scopes, origins, token files and the
//! tokens in them), and the use cases asked on every card.

use std::path::{Path, PathBuf};

use url::{Host, Url};

use super::super::de::suggestion;
use super::super::model::{ApiClientConfig, ApiConfig};
use super::super::path::KeyPath;
use super::super::problem::ProblemKind;
use super::super::secrets;
use super::Checker;

pub(super) fn check(checker: &mut Checker<'_>, api: &ApiConfig, use_cases: &[String]) {
    let table = KeyPath::of(&["api"]);
    if !api.listen.ip().is_loopback() {
        checker.report(
            table.key("listen"),
            ProblemKind::invalid_with(
                "must be a loopback address",
                "the agent never listens on the network: e.g. 127.0.0.1:8099",
            ),
        );
    }
    check_clients(checker, api);
    let auto_advice = table.key("auto_advice");
    for (position, id) in api.auto_advice.iter().enumerate() {
        if !use_cases.contains(id) {
            let known: Vec<&str> = use_cases.iter().map(String::as_str).collect();
            checker.report(
                checker.element(&auto_advice, position),
                ProblemKind::UnknownUseCase {
                    suggestion: suggestion(id, &known).map(str::to_owned),
                    known: use_cases.to_vec(),
                },
            );
        }
    }
}

/// A client seen before, to tell the second of two.
struct Seen {
    /// How problems name it: `api.clients[0] ("pos")`.
    key: String,
    name: String,
    token_file: PathBuf,
    token: Option<String>,
}

fn check_clients(checker: &mut Checker<'_>, api: &ApiConfig) {
    let clients = KeyPath::of(&["api", "clients"]);
    let own_origin = format!("http://127.0.0.1:{}", api.listen.port());
    let mut seen: Vec<Seen> = Vec::new();
    for (position, client) in api.clients.iter().enumerate() {
        let path = checker.element(&clients, position);
        if let Some(first) = seen.iter().find(|s| s.name == client.name) {
            let first = first.key.clone();
            checker.report(path.key("name"), ProblemKind::DuplicateName { first });
        }
        if client.scopes.is_empty() && checker.written_empty(&path.key("scopes")) {
            checker.report(path.key("scopes"), ProblemKind::NoScopes);
        }
        check_origins(checker, &path, client, api.listen.port(), &own_origin);
        let token = check_token_file(checker, &path, client, &seen);
        seen.push(Seen {
            key: format!("{path} ({:?})", client.name),
            name: client.name.clone(),
            token_file: canonical(&client.token_file),
            token,
        });
    }
}

/// The file's real path when it has one, so that two spellings of one file are one file.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// Checks the token file and its token; returns the token when it could be read.
fn check_token_file(
    checker: &mut Checker<'_>,
    path: &KeyPath,
    client: &ApiClientConfig,
    seen: &[Seen],
) -> Option<String> {
    let key = path.key("token_file");
    let file = canonical(&client.token_file);
    if let Some(first) = seen.iter().find(|s| s.token_file == file) {
        // A client written twice is one mistake, told once: as the duplicate name.
        if first.name != client.name {
            let first = first.key.clone();
            checker.report(key, ProblemKind::SharedTokenFile { first });
        }
        return None;
    }
    if !checker.readable_file(&key, &client.token_file) {
        return None;
    }
    if let Some(problem) = secrets::exposure(&client.token_file) {
        checker.report(key.clone(), problem);
    }
    let token = match secrets::read_token(&client.token_file) {
        Ok(token) => token,
        Err(error) => {
            let why = error.to_string();
            checker.report(
                key,
                ProblemKind::FileUnreadable(client.token_file.clone(), why),
            );
            return None;
        }
    };
    if let Some(problem) = secrets::token_problem(&token) {
        checker.report(key.clone(), problem);
    }
    if let Some(first) = seen
        .iter()
        .find(|s| s.token.as_deref() == Some(token.as_str()))
    {
        let first = first.key.clone();
        checker.report(key, ProblemKind::SameToken { first });
    }
    Some(token)
}

/// Each origin is a bare origin (scheme, host, port), and https unless it is the agent's own
/// loopback page: Chromium lets only secure pages reach loopback.
fn check_origins(
    checker: &mut Checker<'_>,
    path: &KeyPath,
    client: &ApiClientConfig,
    port: u16,
    own_origin: &str,
) {
    let origins = path.key("origins");
    for (position, origin) in client.origins.iter().enumerate() {
        let key = checker.element(&origins, position);
        let url = match Url::parse(origin) {
            Ok(url) if url.origin().ascii_serialization() == *origin => url,
            _ => {
                checker.report(
                    key,
                    ProblemKind::invalid_with(
                        format!("{origin:?} is not an origin like https://pos.example"),
                        "scheme, host and port only: no path, no trailing slash",
                    ),
                );
                continue;
            }
        };
        let own = url.port_or_known_default() == Some(port)
            && match url.host() {
                Some(Host::Domain(domain)) => domain == "localhost",
                Some(Host::Ipv4(ip)) => ip.is_loopback(),
                Some(Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
        if url.scheme() != "https" && !(url.scheme() == "http" && own) {
            let own = own_origin.to_owned();
            checker.report(key, ProblemKind::InsecureOrigin { own });
        }
    }
}
