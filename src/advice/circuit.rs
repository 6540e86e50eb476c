//! A consecutive-failure circuit breaker.
//!
//! Closed: every call goes through. After `failure_threshold` consecutive failures it opens:
//! calls fail fast for `cooldown`. Then it lets exactly one probe through (half-open): a success
//! closes it, a failure opens it for another cool-down. A probe that is dropped unfinished (the
//! card was removed, the caller gave up) frees the slot for the next probe. Time is
//! `tokio::time::Instant`, so tests steer it with `tokio::time::pause`/`advance`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// The breaker's state, for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail fast as `circuit_open` until the cool-down ends.
    Open,
    /// The cool-down is over: the next call is a probe (or one is in flight).
    HalfOpen,
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failures that open the breaker; 0 disables it.
    pub failure_threshold: u32,
    /// How long it stays open before letting a probe through.
    pub cooldown: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    settings: CircuitSettings,
    inner: Mutex<Inner>,
}

/// Leave to make one call. Report how it went with [`Permit::record`].
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(settings: CircuitSettings) -> Self {
        Self {
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit to call, or `None` while open (or while a probe is in flight).
    pub(crate) fn admit(&self) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        let probe = match inner.open_until {
            None => false,
            Some(until) if Instant::now() < until => return None,
            Some(_) if inner.probe_in_flight => return None,
            Some(_) => {
                inner.probe_in_flight = true;
                true
            }
        };
        Some(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    pub(crate) fn state(&self) -> CircuitState {
        let inner = self.lock();
        match inner.open_until {
            None => CircuitState::Closed,
            Some(until) if Instant::now() < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }
}

impl Permit<'_> {
    /// Whether this call is the half-open probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe
    }

    /// Record the call's outcome: `healthy` when the upstream answered (whatever it said),
    /// `false` when it could not be reached or failed (transport errors, 5xx, 429).
    pub(crate) fn record(mut self, healthy: bool) {
        self.recorded = true;
        let settings = self.breaker.settings;
        let mut inner = self.breaker.lock();
        if self.probe {
            inner.probe_in_flight = false;
        }
        if healthy {
            inner.consecutive_failures = 0;
            inner.open_until = None;
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        if settings.failure_threshold == 0 {
            return;
        }
        if self.probe
            || (inner.open_until.is_none()
                && inner.consecutive_failures >= settings.failure_threshold)
        {
            inner.open_until = Some(Instant::now() + settings.cooldown);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(CircuitSettings {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_recovers_after_a_good_probe() {
        let breaker = breaker();
        for _ in 0..2 {
            breaker.admit().unwrap().record(false);
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.admit().unwrap().record(false);
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(breaker.admit().is_none());

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        let probe = breaker.admit().unwrap();
        assert!(probe.is_probe());
        assert!(breaker.admit().is_none(), "one probe at a time");
        probe.record(true);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
        assert!(!breaker.admit().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_for_another_cooldown() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.admit().unwrap().record(false);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        breaker.admit().unwrap().record(false);
        assert_eq!(breaker.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(breaker.admit().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.admit().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_the_slot() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.admit().unwrap().record(false);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(breaker.admit().unwrap());
        assert!(breaker.admit().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_and_zero_disables() {
        let breaker = breaker();
        breaker.admit().unwrap().record(false);
        breaker.admit().unwrap().record(false);
        breaker.admit().unwrap().record(true);
        breaker.admit().unwrap().record(false);
        assert_eq!(breaker.state(), CircuitState::Closed);

        let disabled = CircuitBreaker::new(CircuitSettings {
            failure_threshold: 0,
            cooldown: Duration::from_secs(10),
        });
        for _ in 0..100 {
            disabled.admit().unwrap().record(false);
        }
        assert_eq!(disabled.state(), CircuitState::Closed);
    }
}
