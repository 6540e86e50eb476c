//! Back-off after failed authentication (a missing or wrong token, an unknown ticket).
//!
//! Every local caller comes from 127.0.0.1, so there is no source address to block. Two
//! limits instead: per connection (after [`PER_CONNECTION`] failures a connection gets `429`
//! and is closed, so every few guesses cost a new connection, which the connection budget
//! ranks first for eviction), and a failure budget for the whole agent (a token bucket: past
//! a burst of [`BURST`] failures, more than [`PER_SECOND`] a second are answered `429`).
//!
//! A valid token is always served, whatever the failures around it: a guesser could
//! otherwise lock the POS out with a few wrong tokens a second. Guessing itself is hopeless
//! because tokens carry at least 128 bits (`config check` refuses weaker ones); the back-off
//! keeps a guesser from hammering the agent, and the log line and the metric make it seen.
//!
//! One warning per burst (failures less than [`QUIET`] apart), never with the token.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed authentications one connection may have; the next request on it is refused.
pub const PER_CONNECTION: u32 = 3;
/// Failures the whole agent absorbs at once before answering 429.
pub const BURST: f64 = 20.0;
/// Failures a second the agent absorbs in the long run.
pub const PER_SECOND: f64 = 5.0;
/// A failure after this long without one starts a new burst (and a new log line).
const QUIET: Duration = Duration::from_secs(30);

/// How a failed authentication is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `401`: within the failure budget.
    Unauthorized,
    /// `429`: the budget is spent (or the connection had its share).
    Throttled,
}

/// The agent-wide failure budget.
#[derive(Debug)]
pub struct AuthFailures {
    state: Mutex<Budget>,
    burst: f64,
    per_second: f64,
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
    /// The last failure, for telling bursts apart.
    last_failure: Option<Instant>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new(BURST, PER_SECOND)
    }
}

impl AuthFailures {
    pub fn new(burst: f64, per_second: f64) -> Self {
        Self {
            state: Mutex::new(Budget {
                tokens: burst,
                at: Instant::now(),
                last_failure: None,
            }),
            burst,
            per_second,
        }
    }

    /// Counts one failure (`what`: which kind, for the log) and says how to answer it.
    pub fn failed(&self, what: &'static str, route: &str) -> Verdict {
        let now = Instant::now();
        let mut budget = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let refill = now.duration_since(budget.at).as_secs_f64() * self.per_second;
        budget.tokens = (budget.tokens + refill).min(self.burst);
        budget.at = now;
        let new_burst = budget
            .last_failure
            .is_none_or(|last| now.duration_since(last) >= QUIET);
        budget.last_failure = Some(now);
        if new_burst {
            tracing::warn!(
                kind = what,
                route,
                "API authentication failed; failures less than {}s apart are counted in beid_api_auth_failures_total, not logged again",
                QUIET.as_secs()
            );
        }
        if budget.tokens >= 1.0 {
            budget.tokens -= 1.0;
            Verdict::Unauthorized
        } else {
            Verdict::Throttled
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_failures_turns_401_into_429() {
        let failures = AuthFailures::new(5.0, 0.001);
        let verdicts: Vec<Verdict> = (0..8)
            .map(|_| failures.failed("wrong token", "/v1/status"))
            .collect();
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::Unauthorized)
                .count(),
            5
        );
        assert_eq!(verdicts[5..], [Verdict::Throttled; 3]);
    }
}
