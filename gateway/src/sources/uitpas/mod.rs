//! uitpas: the UiTPAS API 4.0 (publiq) as a source of registered social tariff
//! ("kansentarief").
//!
//! - **Token**: OAuth2 client credentials against `token_url` ([`token`]).
//! - **Permissions**: `GET /permissions` at start and every `permissions_refresh` (daily),
//!   and again after a `403`, learns the organizer's card systems ([`permissions`]).
//! - **Lookup**: `GET /passholders?inszNumber=&organizerId=` ([`passholder`] decides);
//!   problems are read as RFC 7807 ([`problem`]).
//! - **Failures**: 429, 5xx, a timeout or an unreadable answer are `unknown` and pause the
//!   source ([`crate::sources::backoff`]).
//!
//! The national number travels in the search URL, so no URL and no `reqwest` error text
//! (which names the URL) is ever logged here.

mod passholder;
pub(crate) mod permissions;
mod problem;
pub(crate) mod token;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;
use zeroize::Zeroizing;

use self::permissions::Permissions;
use self::token::{IssueFuture, Issued, Token, TokenCache};
use super::backoff::Backoff;
use super::http::{read_body, retry_after, transport_kind, transport_reason};
use super::{AnswerFuture, Health, Question, Reason, Source, SourceAnswer};
use crate::config::UitpasSettings;
use crate::metrics::Metrics;
use crate::tls::{self, TlsError};

/// The source's name.
pub const NAME: &str = "uitpas";

/// The largest answer read (a passholder page, the permissions).
const MAX_BODY: usize = 1024 * 1024;
/// While the permissions are unknown or missing, ask again this soon.
const PERMISSIONS_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UitpasError {
    #[error("uitpas: {0}")]
    Tls(#[from] TlsError),
    #[error("uitpas: cannot read the client secret {path}")]
    Secret {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("uitpas: the client secret file {path} is empty")]
    EmptySecret { path: std::path::PathBuf },
    #[error("uitpas: api_url cannot hold the operation paths")]
    ApiUrl(#[source] url::ParseError),
}

/// The UiTPAS source. Start its permission refresh with [`Uitpas::start`].
pub struct Uitpas {
    http: reqwest::Client,
    passholders_url: Url,
    permissions_url: Url,
    issuer: TokenIssuer,
    tokens: TokenCache,
    organizer_id: String,
    language: String,
    permissions_refresh: Duration,
    permissions: RwLock<Permissions>,
    /// Wakes the permission task early (after a `403`).
    recheck: Arc<Notify>,
    backoff: Backoff,
}

/// Posts the client credentials to the token URL.
struct TokenIssuer {
    http: reqwest::Client,
    url: Url,
    client_id: String,
    secret: Zeroizing<String>,
    metrics: Arc<Metrics>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl token::Issuer for TokenIssuer {
    fn issue(&self) -> IssueFuture<'_> {
        Box::pin(async move {
            let result = self.request().await;
            self.metrics.token_refresh(NAME, result.is_ok());
            match &result {
                Ok(issued) => tracing::info!(
                    lifetime_s = issued.lifetime.map(|l| l.as_secs()),
                    "uitpas: new access token"
                ),
                Err(reason) => tracing::warn!(reason = reason.code(), "uitpas: no access token"),
            }
            result
        })
    }
}

impl TokenIssuer {
    async fn request(&self) -> Result<Issued, Reason> {
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.client_id)
                .append_pair("client_secret", &self.secret)
                .finish(),
        );
        let mut response = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(kind = transport_kind(&e), "uitpas: token request failed");
                transport_reason(&e)
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            tracing::warn!(status, "uitpas: the token endpoint refused");
            return Err(match status {
                400 | 401 | 403 => Reason::SourceUnauthorized,
                _ => Reason::SourceUnavailable,
            });
        }
        let body = read_body(&mut response, MAX_BODY).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| Reason::SourceMalformed)?;
        if answer.access_token.is_empty() {
            return Err(Reason::SourceMalformed);
        }
        Ok(Issued {
            value: Zeroizing::new(answer.access_token),
            lifetime: answer.expires_in.map(Duration::from_secs),
        })
    }
}

impl Uitpas {
    /// Reads the client secret and builds the HTTPS client. Nothing is asked yet.
    pub fn new(settings: &UitpasSettings, metrics: Arc<Metrics>) -> Result<Self, UitpasError> {
        let secret = std::fs::read_to_string(&settings.client_secret_file).map_err(|source| {
            UitpasError::Secret {
                path: settings.client_secret_file.clone(),
                source,
            }
        })?;
        let secret = Zeroizing::new(secret.trim().to_owned());
        if secret.is_empty() {
            return Err(UitpasError::EmptySecret {
                path: settings.client_secret_file.clone(),
            });
        }
        let http = tls::http_client(settings.ca_bundle.as_deref(), None, settings.timeout)?;
        let join = |path| settings.api_url.join(path).map_err(UitpasError::ApiUrl);
        Ok(Self {
            passholders_url: join("passholders")?,
            permissions_url: join("permissions")?,
            issuer: TokenIssuer {
                http: http.clone(),
                url: settings.token_url.clone(),
                client_id: settings.client_id.clone(),
                secret,
                metrics,
            },
            http,
            tokens: TokenCache::new(settings.token_margin),
            organizer_id: settings.organizer_id.clone(),
            language: settings.message_language.clone(),
            permissions_refresh: settings.permissions_refresh,
            permissions: RwLock::new(Permissions::Unknown),
            recheck: Arc::new(Notify::new()),
            backoff: Backoff::default(),
        })
    }

    /// Starts the permission task: now, then every `permissions_refresh` (every 30 s while
    /// unknown or missing), and at once after a `403`.
    pub fn start(self: &Arc<Self>) -> JoinHandle<()> {
        let source = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(uitpas) = source.upgrade() else {
                    return;
                };
                uitpas.refresh_permissions().await;
                // Granted: again in a day. Unknown or missing: soon, so that a permission
                // publiq grants (or a network that heals) is noticed within a minute.
                let wait = match uitpas.permissions() {
                    Permissions::Granted(_) => uitpas.permissions_refresh,
                    _ => PERMISSIONS_RETRY,
                };
                let recheck = uitpas.recheck.clone();
                // Hold no strong reference while waiting: the source may be dropped.
                drop(uitpas);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = recheck.notified() => {}
                }
            }
        })
    }

    fn permissions(&self) -> Permissions {
        self.permissions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_permissions(&self, permissions: Permissions) {
        *self.permissions.write().unwrap_or_else(|p| p.into_inner()) = permissions;
    }

    /// Asks `GET /permissions`; true when the answer was read (granted or not).
    pub async fn refresh_permissions(&self) -> bool {
        let read = match self.authorized_get(self.permissions_url.clone()).await {
            Ok((200, body)) => permissions::read(&body, &self.organizer_id),
            Ok((status, _)) => {
                tracing::warn!(status, "uitpas: GET /permissions refused");
                None
            }
            Err(reason) => {
                tracing::warn!(reason = reason.code(), "uitpas: GET /permissions failed");
                None
            }
        };
        match read {
            Some(permissions) => {
                match &permissions {
                    Permissions::Granted(systems) => tracing::info!(
                        card_systems = ?systems,
                        "uitpas: permissions read; passholder search allowed"
                    ),
                    Permissions::Missing(what) => tracing::error!(
                        missing = what,
                        "uitpas: the organizer may not search passholders: ask publiq for the permission; every check is unknown until then"
                    ),
                    Permissions::Unknown => {}
                }
                self.set_permissions(permissions);
                true
            }
            // Keep what was known: a failed refresh does not take a permission away.
            None => false,
        }
    }

    /// A `GET` with the token, renewed once after a `401`: the status and body.
    async fn authorized_get(&self, url: Url) -> Result<(u16, Zeroizing<Vec<u8>>), Reason> {
        let mut renewed = false;
        loop {
            let token = self.tokens.get(&self.issuer).await?;
            let mut response = self.get(url.clone(), &token).await?;
            let status = response.status().as_u16();
            if status == 401 {
                self.tokens.refused(&token);
                if renewed {
                    tracing::warn!("uitpas: a fresh token was refused too");
                    return Err(Reason::SourceUnauthorized);
                }
                tracing::info!("uitpas: token refused (401); renewing it once");
                renewed = true;
                continue;
            }
            if status == 429 || status >= 500 {
                self.backoff.failed(retry_after(&response));
                tracing::warn!(status, "uitpas: service unavailable; pausing");
                return Err(Reason::SourceUnavailable);
            }
            let body = read_body(&mut response, MAX_BODY).await.inspect_err(|_| {
                self.backoff.failed(None);
            })?;
            return Ok((status, body));
        }
    }

    async fn get(&self, url: Url, token: &Token) -> Result<reqwest::Response, Reason> {
        let bearer = Zeroizing::new(format!("Bearer {}", token.value()));
        self.http
            .get(url)
            .header(AUTHORIZATION, bearer.as_str())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(kind = transport_kind(&e), "uitpas: call failed");
                self.backoff.failed(None);
                transport_reason(&e)
            })
    }

    async fn lookup(&self, question: Question<'_>) -> SourceAnswer {
        if self.backoff.paused() {
            return SourceAnswer::unknown(Reason::SourceUnavailable);
        }
        let card_systems = match self.permissions() {
            Permissions::Granted(systems) => systems,
            Permissions::Missing(_) => return SourceAnswer::unknown(Reason::PermissionMissing),
            Permissions::Unknown => return SourceAnswer::unknown(Reason::SourceNotReady),
        };
        let number = question.national_number.expose();
        let mut url = self.passholders_url.clone();
        url.query_pairs_mut()
            .append_pair("inszNumber", number)
            .append_pair("organizerId", &self.organizer_id);
        let result = self.authorized_get(url).await;
        let (status, body) = match result {
            Ok(answer) => answer,
            Err(reason) => return SourceAnswer::unknown(reason),
        };
        match status {
            200 => match passholder::decide(&body, number, &card_systems) {
                Some(answer) => {
                    self.backoff.succeeded();
                    answer
                }
                None => {
                    tracing::warn!("uitpas: the passholder search answer is not a passholder page");
                    self.backoff.failed(None);
                    SourceAnswer::unknown(Reason::SourceMalformed)
                }
            },
            403 => {
                tracing::error!(
                    "uitpas: passholder search forbidden (403); re-reading the permissions"
                );
                self.set_permissions(Permissions::Missing("passholder_search_forbidden"));
                self.recheck.notify_one();
                SourceAnswer::unknown(Reason::PermissionMissing)
            }
            400 | 404 => {
                self.backoff.succeeded();
                problem::answer(status, &body, &self.language)
            }
            other => {
                tracing::warn!(status = other, "uitpas: unexpected status");
                SourceAnswer::unknown(Reason::SourceRejected)
            }
        }
    }
}

impl Source for Uitpas {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check<'a>(&'a self, question: Question<'a>) -> AnswerFuture<'a> {
        Box::pin(self.lookup(question))
    }

    fn health(&self) -> Health {
        match self.permissions() {
            Permissions::Granted(_) if self.backoff.paused() => Health::NotReady("backoff"),
            Permissions::Granted(_) => Health::Ready,
            Permissions::Missing(_) => Health::NotReady("permission_missing"),
            Permissions::Unknown => Health::NotReady("permissions_unknown"),
        }
    }
}
