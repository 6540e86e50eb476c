//! The OAuth2 client-credentials token (publiq's `client-access-token.md`): asked once,
//! cached until its expiry minus a margin, renewed by one request at a time for all
//! checks, and dropped after a `401` so that exactly one fresh token is asked for.
//!
//! publiq: never parse the token (it need not be a JWT); cache it, do not ask per request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::sources::Reason;

/// Without `expires_in`, a token is taken to live this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token as the authorization server issued it.
pub(crate) struct Issued {
    pub(crate) value: Zeroizing<String>,
    pub(crate) lifetime: Option<Duration>,
}

pub(crate) type IssueFuture<'a> = Pin<Box<dyn Future<Output = Result<Issued, Reason>> + Send + 'a>>;

/// Asks the authorization server for a token.
pub(crate) trait Issuer: Send + Sync {
    fn issue(&self) -> IssueFuture<'_>;
}

/// A cached token. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Token {
    value: Arc<Zeroizing<String>>,
    renew_at: Instant,
    generation: u64,
}

impl Token {
    pub(crate) fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(#{})", self.generation)
    }
}

pub(crate) struct TokenCache {
    current: RwLock<Option<Token>>,
    /// Held while a token is asked for: the others wait, then take the new one.
    renewing: tokio::sync::Mutex<()>,
    margin: Duration,
    generation: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(margin: Duration) -> Self {
        Self {
            current: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
            margin,
            generation: AtomicU64::new(0),
        }
    }

    fn fresh(&self) -> Option<Token> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|token| Instant::now() < token.renew_at)
            .cloned()
    }

    /// A usable token: the cached one, or a new one (one request for all waiting callers).
    pub(crate) async fn get(&self, issuer: &dyn Issuer) -> Result<Token, Reason> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _renewing = self.renewing.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let issued = issuer.issue().await?;
        let lifetime = issued.lifetime.unwrap_or(DEFAULT_LIFETIME);
        // Renew `margin` before expiry, but never use less than half of a token's life.
        let early = self.margin.min(lifetime / 2);
        let token = Token {
            value: Arc::new(issued.value),
            renew_at: Instant::now() + lifetime - early,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// The source refused `token` (`401`): forget it, unless another caller already
    /// replaced it, so that many refusals of one token cause one renewal.
    pub(crate) fn refused(&self, token: &Token) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|t| t.generation == token.generation)
        {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts issues; each waits for `gate` when one is set.
    struct Counting {
        issued: AtomicUsize,
        lifetime: Duration,
        gate: Option<Arc<tokio::sync::Notify>>,
    }

    impl Issuer for Counting {
        fn issue(&self) -> IssueFuture<'_> {
            Box::pin(async move {
                if let Some(gate) = &self.gate {
                    gate.notified().await;
                }
                let n = self.issued.fetch_add(1, Ordering::SeqCst);
                Ok(Issued {
                    value: Zeroizing::new(format!("token-{n}")),
                    lifetime: Some(self.lifetime),
                })
            })
        }
    }

    fn counting(lifetime: Duration, gate: Option<Arc<tokio::sync::Notify>>) -> Counting {
        Counting {
            issued: AtomicUsize::new(0),
            lifetime,
            gate,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cached_until_expiry_minus_the_margin() {
        let issuer = counting(Duration::from_secs(3600), None);
        let cache = TokenCache::new(Duration::from_secs(60));
        let first = cache.get(&issuer).await.unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 61)).await;
        assert_eq!(cache.get(&issuer).await.unwrap().value(), first.value());
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_ne!(cache.get(&issuer).await.unwrap().value(), first.value());
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_token_is_used_for_half_its_life_at_least() {
        let issuer = counting(Duration::from_secs(30), None);
        let cache = TokenCache::new(Duration::from_secs(60));
        cache.get(&issuer).await.unwrap();
        tokio::time::advance(Duration::from_secs(14)).await;
        cache.get(&issuer).await.unwrap();
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn one_renewal_for_many_waiting_callers() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let issuer = Arc::new(counting(Duration::from_secs(3600), Some(gate.clone())));
        let cache = Arc::new(TokenCache::new(Duration::from_secs(60)));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (cache, issuer) = (cache.clone(), issuer.clone());
                tokio::spawn(
                    async move { cache.get(issuer.as_ref()).await.unwrap().value().to_owned() },
                )
            })
            .collect();
        // One caller is inside issue(), waiting for the gate; let it through.
        gate.notify_one();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), "token-0");
        }
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn many_refusals_of_one_token_renew_it_once() {
        let issuer = counting(Duration::from_secs(3600), None);
        let cache = TokenCache::new(Duration::from_secs(60));
        let stale = cache.get(&issuer).await.unwrap();
        cache.refused(&stale);
        let fresh = cache.get(&issuer).await.unwrap();
        cache.refused(&stale);
        assert_eq!(cache.get(&issuer).await.unwrap().value(), fresh.value());
        assert_eq!(issuer.issued.load(Ordering::SeqCst), 2);
        assert!(!format!("{fresh:?}").contains("token-"));
    }
}
