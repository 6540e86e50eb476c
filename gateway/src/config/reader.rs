//! Reads the TOML document key by key, with the positions the parser keeps, collecting
//! every problem instead of stopping at the first.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use beid_core::contract::Basis;
use toml_edit::{ImDocument, Item, TableLike};
use url::Url;

use super::{
    AuditSettings, Combine, Config, MetricsSettings, Problem, RulesHttpSettings, ServerSettings,
    SourceKind, UitpasSettings, UseCaseSettings,
};
use crate::tls;

pub(super) struct Reader<'t> {
    text: &'t str,
    base: &'t Path,
    problems: Vec<Problem>,
}

/// A table being read: its dotted name and where it starts.
#[derive(Clone, Copy)]
struct Table<'d> {
    name: &'d str,
    table: &'d dyn TableLike,
    /// Where its header starts: missing keys are reported there.
    span: Option<usize>,
}

impl<'t> Reader<'t> {
    pub(super) fn read(text: &'t str, base: &'t Path) -> (Option<Config>, Vec<Problem>) {
        let mut reader = Reader {
            text,
            base,
            problems: Vec::new(),
        };
        let document = match ImDocument::parse(text) {
            Ok(document) => document,
            Err(error) => {
                reader.report(
                    "",
                    error.span().map(|s| s.start),
                    error.message().trim().to_owned(),
                );
                return (None, reader.problems);
            }
        };
        let config = reader.config(document.as_table());
        (config, reader.problems)
    }

    fn config(&mut self, root: &dyn TableLike) -> Option<Config> {
        let root = Table {
            name: "",
            table: root,
            span: None,
        };
        self.unknown_keys(
            root,
            &[
                "server",
                "metrics",
                "audit",
                "uitpas",
                "rules_http",
                "use_cases",
            ],
        );
        let server = self
            .required_table(root, "server")
            .and_then(|t| self.server(t));
        let metrics = self.table(root, "metrics").and_then(|t| self.metrics(t));
        let audit = self
            .required_table(root, "audit")
            .and_then(|t| self.audit(t));
        let uitpas_table = self.table(root, "uitpas");
        let uitpas = uitpas_table.and_then(|t| self.uitpas(t));
        let rules_table = self.table(root, "rules_http");
        let rules_http = rules_table.and_then(|t| self.rules_http(t));
        let configured = |kind| match kind {
            SourceKind::Uitpas => uitpas_table.is_some(),
            SourceKind::RulesHttp => rules_table.is_some(),
        };
        let use_cases = self.use_cases(root, configured);
        let complete = self.problems.is_empty();
        Some(Config {
            server: server?,
            metrics,
            audit: audit?,
            uitpas,
            rules_http,
            use_cases: use_cases?,
        })
        .filter(|_| complete)
    }

    fn server(&mut self, t: Table<'_>) -> Option<ServerSettings> {
        let base = self.base;
        self.unknown_keys(
            t,
            &[
                "listen",
                "cert",
                "key",
                "client_ca",
                "answer_within_ms",
                "rate_limit_per_minute",
                "rate_limit_burst",
            ],
        );
        let listen = self.required(t, "listen", parse_address);
        let cert = self.required(t, "cert", |p| pem_certificates(base, p));
        let key = self.required(t, "key", |p| pem_key(base, p));
        let client_ca = self.required(t, "client_ca", |p| pem_certificates(base, p));
        let answer_within = self.millis(t, "answer_within_ms", 2500, 100..=60_000);
        let rate_per_minute = self.integer(t, "rate_limit_per_minute", 60, 1..=100_000);
        let rate_burst = self.integer(t, "rate_limit_burst", 10, 1..=10_000);
        Some(ServerSettings {
            listen: listen?,
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            answer_within: answer_within?,
            rate_per_minute: u32::try_from(rate_per_minute?).ok()?,
            rate_burst: u32::try_from(rate_burst?).ok()?,
        })
    }

    fn metrics(&mut self, t: Table<'_>) -> Option<MetricsSettings> {
        self.unknown_keys(t, &["listen"]);
        Some(MetricsSettings {
            listen: self.required(t, "listen", parse_address)?,
        })
    }

    fn audit(&mut self, t: Table<'_>) -> Option<AuditSettings> {
        let base = self.base;
        self.unknown_keys(t, &["log", "secret_file"]);
        let log = self.required(t, "log", |p| writable_place(base, p));
        let secret_file = self.required(t, "secret_file", |p| writable_place(base, p));
        Some(AuditSettings {
            log: log?,
            secret_file: secret_file?,
        })
    }

    fn uitpas(&mut self, t: Table<'_>) -> Option<UitpasSettings> {
        let base = self.base;
        self.unknown_keys(
            t,
            &[
                "api_url",
                "token_url",
                "client_id",
                "client_secret_file",
                "organizer_id",
                "ca_bundle",
                "timeout_ms",
                "token_margin_s",
                "permissions_refresh_s",
                "message_language",
            ],
        );
        let api_url = self.required(t, "api_url", parse_base_url);
        let token_url = self.required(t, "token_url", parse_https_url);
        let client_id = self.required(t, "client_id", non_empty);
        let client_secret_file = self.required(t, "client_secret_file", |p| secret(base, p));
        let organizer_id = self.required(t, "organizer_id", non_empty);
        let ca_bundle = self.optional(t, "ca_bundle", |p| pem_certificates(base, p));
        let timeout = self.millis(t, "timeout_ms", 2000, 50..=60_000);
        let margin = self.integer(t, "token_margin_s", 60, 0..=3600);
        let refresh = self.integer(t, "permissions_refresh_s", 86_400, 60..=7 * 86_400);
        let language = self.optional(t, "message_language", |text| match text {
            "nl" | "fr" | "de" | "en" => Ok(text.to_owned()),
            _ => Err("must be one of nl, fr, de, en".to_owned()),
        });
        Some(UitpasSettings {
            api_url: api_url?,
            token_url: token_url?,
            client_id: client_id?,
            client_secret_file: client_secret_file?,
            organizer_id: organizer_id?,
            ca_bundle: ca_bundle?,
            timeout: timeout?,
            token_margin: Duration::from_secs(margin?),
            permissions_refresh: Duration::from_secs(refresh?),
            message_language: language?.unwrap_or_else(|| "nl".to_owned()),
        })
    }

    fn rules_http(&mut self, t: Table<'_>) -> Option<RulesHttpSettings> {
        let base = self.base;
        self.unknown_keys(
            t,
            &[
                "url",
                "client_cert",
                "client_key",
                "ca_bundle",
                "timeout_ms",
                "national_number_field",
                "rule_field",
                "decision_pointer",
                "reason_pointer",
                "valid_until_pointer",
                "eligible_values",
                "not_eligible_values",
                "basis",
            ],
        );
        let url = self.required(t, "url", parse_https_url);
        let client_cert = self.optional(t, "client_cert", |p| pem_certificates(base, p));
        let client_key = self.optional(t, "client_key", |p| pem_key(base, p));
        if let (Some(cert), Some(key)) = (&client_cert, &client_key) {
            if cert.is_some() != key.is_some() {
                self.report_key(t, "client_key", "client_cert and client_key go together");
            }
        }
        let ca_bundle = self.optional(t, "ca_bundle", |p| pem_certificates(base, p));
        let timeout = self.millis(t, "timeout_ms", 2000, 50..=60_000);
        let field = |reader: &mut Self, key, default: &str| {
            reader
                .optional(t, key, non_empty)
                .map(|v| v.unwrap_or_else(|| default.to_owned()))
        };
        let national_number_field = field(self, "national_number_field", "nationalNumber");
        let rule_field = field(self, "rule_field", "rule");
        let decision_pointer = self.optional(t, "decision_pointer", parse_pointer);
        let reason_pointer = self.optional(t, "reason_pointer", parse_pointer);
        let valid_until_pointer = self.optional(t, "valid_until_pointer", parse_pointer);
        let eligible = self.strings(t, "eligible_values", &["eligible"]);
        let not_eligible = self.strings(t, "not_eligible_values", &["not_eligible"]);
        if let (Some(yes), Some(no)) = (&eligible, &not_eligible) {
            if yes.iter().any(|value| no.contains(value)) {
                self.report_key(
                    t,
                    "not_eligible_values",
                    "a value cannot mean both eligible and not eligible",
                );
            }
        }
        let basis = self.optional(t, "basis", |text| match text {
            "entitlement_rule" => Ok(Basis::EntitlementRule),
            "registered_status" => Ok(Basis::RegisteredStatus),
            _ => Err("must be entitlement_rule or registered_status".to_owned()),
        });
        Some(RulesHttpSettings {
            url: url?,
            client_cert: client_cert?,
            client_key: client_key?,
            ca_bundle: ca_bundle?,
            timeout: timeout?,
            national_number_field: national_number_field?,
            rule_field: rule_field?,
            decision_pointer: decision_pointer?.unwrap_or_else(|| "/decision".to_owned()),
            reason_pointer: reason_pointer?,
            valid_until_pointer: valid_until_pointer?,
            eligible_values: eligible?,
            not_eligible_values: not_eligible?,
            basis: basis?.unwrap_or(Basis::EntitlementRule),
        })
    }

    fn use_cases(
        &mut self,
        root: Table<'_>,
        configured: impl Fn(SourceKind) -> bool,
    ) -> Option<Vec<UseCaseSettings>> {
        let Some((key, item)) = root.table.get_key_value("use_cases") else {
            self.report(
                "use_cases",
                None,
                "at least one [[use_cases]] is needed".into(),
            );
            return None;
        };
        let Some(array) = item.as_array_of_tables() else {
            self.report(
                "use_cases",
                key.span().map(|s| s.start),
                "must be an array of tables ([[use_cases]])".into(),
            );
            return None;
        };
        let names: Vec<String> = (0..array.len())
            .map(|i| format!("use_cases[{i}]"))
            .collect();
        let mut use_cases = Vec::new();
        let mut complete = true;
        for (table, name) in array.iter().zip(&names) {
            let t = Table {
                name,
                table,
                span: table.span().map(|s| s.start),
            };
            match self.use_case(t, &configured) {
                Some(use_case) => {
                    if use_cases
                        .iter()
                        .any(|u: &UseCaseSettings| u.id == use_case.id)
                    {
                        self.report_key(t, "id", "another use case has this id");
                    }
                    use_cases.push(use_case);
                }
                None => complete = false,
            }
        }
        if array.is_empty() {
            self.report(
                "use_cases",
                key.span().map(|s| s.start),
                "at least one use case is needed".into(),
            );
        }
        Some(use_cases).filter(|_| complete)
    }

    fn use_case(
        &mut self,
        t: Table<'_>,
        configured: &impl Fn(SourceKind) -> bool,
    ) -> Option<UseCaseSettings> {
        self.unknown_keys(t, &["id", "sources", "combine", "rule"]);
        let id = self.required(t, "id", use_case_id);
        let combine = self.optional(t, "combine", |text| match text {
            "first_decisive" => Ok(Combine::FirstDecisive),
            "eligible_if_any" => Ok(Combine::EligibleIfAny),
            _ => Err("must be first_decisive or eligible_if_any".to_owned()),
        });
        let rule = self.optional(t, "rule", use_case_id);
        let names = self.strings(t, "sources", &[]);
        let mut sources = Vec::new();
        for name in names.iter().flatten() {
            let kind = match name.as_str() {
                "uitpas" => SourceKind::Uitpas,
                "rules-http" => SourceKind::RulesHttp,
                other => {
                    self.report_key(
                        t,
                        "sources",
                        &format!("unknown source {other:?} (uitpas, rules-http)"),
                    );
                    continue;
                }
            };
            if !configured(kind) {
                let table = kind.name().replace('-', "_");
                self.report_key(
                    t,
                    "sources",
                    &format!("names {name:?} but the file has no [{table}]"),
                );
            } else if sources.contains(&kind) {
                self.report_key(t, "sources", &format!("names {name:?} twice"));
            } else {
                sources.push(kind);
            }
        }
        if names.as_ref().is_some_and(Vec::is_empty) {
            self.report_key(t, "sources", "needs at least one source");
        }
        Some(UseCaseSettings {
            id: id?,
            sources,
            combine: combine?.unwrap_or(Combine::FirstDecisive),
            rule: rule?,
        })
    }

    // --- tables and keys -------------------------------------------------------------------

    fn table<'d>(&mut self, parent: Table<'d>, key: &'d str) -> Option<Table<'d>> {
        let (k, item) = parent.table.get_key_value(key)?;
        match item.as_table_like() {
            Some(table) => Some(Table {
                name: key,
                table,
                span: k.span().map(|s| s.start),
            }),
            None => {
                self.report(key, k.span().map(|s| s.start), "must be a table".into());
                None
            }
        }
    }

    fn required_table<'d>(&mut self, parent: Table<'d>, key: &'d str) -> Option<Table<'d>> {
        if parent.table.get(key).is_none() {
            self.report(key, None, format!("the [{key}] table is missing"));
            return None;
        }
        self.table(parent, key)
    }

    fn unknown_keys(&mut self, t: Table<'_>, known: &[&str]) {
        let unknown: Vec<String> = t
            .table
            .iter()
            .map(|(key, _)| key.to_owned())
            .filter(|key| !known.contains(&key.as_str()))
            .collect();
        for key in unknown {
            let span = t
                .table
                .get_key_value(&key)
                .and_then(|(k, _)| k.span())
                .map(|s| s.start);
            self.report(
                &dotted(t.name, &key),
                span,
                format!("unknown key (known here: {})", known.join(", ")),
            );
        }
    }

    /// A string value, parsed; `None` (and a problem) when missing, mistyped or invalid.
    fn required<T>(
        &mut self,
        t: Table<'_>,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.optional(t, key, parse) {
            Some(Some(value)) => Some(value),
            Some(None) => {
                self.report(&dotted(t.name, key), t.span, "is missing".into());
                None
            }
            None => None,
        }
    }

    /// `Some(None)` when absent, `None` when present but wrong (reported).
    fn optional<T>(
        &mut self,
        t: Table<'_>,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        let Some((_, item)) = t.table.get_key_value(key) else {
            return Some(None);
        };
        let Some(text) = item.as_str() else {
            self.report(&dotted(t.name, key), start(item), "must be a string".into());
            return None;
        };
        match parse(text) {
            Ok(value) => Some(Some(value)),
            Err(why) => {
                self.report(&dotted(t.name, key), start(item), why);
                None
            }
        }
    }

    fn integer(
        &mut self,
        t: Table<'_>,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let Some(item) = t.table.get(key) else {
            return Some(default);
        };
        match item.as_integer().and_then(|n| u64::try_from(n).ok()) {
            Some(value) if range.contains(&value) => Some(value),
            _ => {
                self.report(
                    &dotted(t.name, key),
                    start(item),
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    fn millis(
        &mut self,
        t: Table<'_>,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<Duration> {
        self.integer(t, key, default, range)
            .map(Duration::from_millis)
    }

    /// An array of strings; `default` when absent.
    fn strings(&mut self, t: Table<'_>, key: &str, default: &[&str]) -> Option<Vec<String>> {
        let Some(item) = t.table.get(key) else {
            return Some(default.iter().map(|s| (*s).to_owned()).collect());
        };
        let values: Option<Vec<String>> = item.as_array().and_then(|array| {
            array
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        });
        if values.is_none() {
            self.report(
                &dotted(t.name, key),
                start(item),
                "must be an array of strings".into(),
            );
        }
        values
    }

    fn report_key(&mut self, t: Table<'_>, key: &str, message: &str) {
        let span = t
            .table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .map(|s| s.start)
            .or(t.span);
        self.report(&dotted(t.name, key), span, message.to_owned());
    }

    fn report(&mut self, key: &str, offset: Option<usize>, message: String) {
        let line = offset.map(|offset| line_of(self.text, offset));
        self.problems.push(Problem {
            line,
            key: key.to_owned(),
            message,
        });
    }
}

fn start(item: &Item) -> Option<usize> {
    item.span().map(|span| span.start)
}

// --- files ------------------------------------------------------------------------------

fn resolve(base: &Path, text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_owned()
    }
}

fn pem_certificates(base: &Path, text: &str) -> Result<PathBuf, String> {
    let path = resolve(base, text);
    tls::read_certificates(&path)
        .map(|_| path)
        .map_err(|error| error.to_string())
}

fn pem_key(base: &Path, text: &str) -> Result<PathBuf, String> {
    let path = resolve(base, text);
    tls::read_private_key(&path)
        .map(|_| path)
        .map_err(|error| error.to_string())
}

/// A secret file: readable, not empty, not readable by others.
fn secret(base: &Path, text: &str) -> Result<PathBuf, String> {
    let path = resolve(base, text);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() == 0 {
        return Err(format!(
            "{}: not a file with a secret in it",
            path.display()
        ));
    }
    if meta.mode() & 0o007 != 0 {
        return Err(format!(
            "{}: readable by others (mode {:03o}); make it 0640 or tighter",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// A file the gateway creates or appends to: its folder must exist.
fn writable_place(base: &Path, text: &str) -> Result<PathBuf, String> {
    let path = resolve(base, text);
    match path.parent() {
        Some(folder) if folder.is_dir() => Ok(path),
        _ => Err(format!("{}: its folder does not exist", path.display())),
    }
}

fn dotted(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .get(..offset.min(text.len()))
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| "must be an IP address and port, e.g. \"0.0.0.0:8443\"".to_owned())
}

fn parse_https_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err("must be an https URL".into());
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("must have no query and no credentials".into());
    }
    Ok(url)
}

/// A base URL: https, and ending in `/` so that paths join under it.
fn parse_base_url(text: &str) -> Result<Url, String> {
    let mut url = parse_https_url(text)?;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn non_empty(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text.to_owned())
    }
}

/// As the contract's `useCase`: no white space, 1 to 64 characters.
fn use_case_id(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 64 || text.chars().any(char::is_whitespace) {
        Err("must be 1 to 64 characters without white space".into())
    } else {
        Ok(text.to_owned())
    }
}

fn parse_pointer(text: &str) -> Result<String, String> {
    if text.is_empty() || text.starts_with('/') {
        Ok(text.to_owned())
    } else {
        Err("must be a JSON pointer (RFC 6901), e.g. \"/decision\"".into())
    }
}
