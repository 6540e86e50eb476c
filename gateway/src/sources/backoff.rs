//! backoff: after a source failed (429, 5xx, a timeout, an unreadable answer), it is not
//! asked again for a while, growing with each failure in a row; the checks meanwhile get
//! `unknown` / `source_unavailable` at once instead of piling onto a struggling service.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause after a failure.
const FIRST: Duration = Duration::from_millis(500);
/// The longest pause (also the cap of a `Retry-After`).
const LONGEST: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Backoff {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the source is paused now.
    pub fn paused(&self) -> bool {
        self.state()
            .until
            .is_some_and(|until| Instant::now() < until)
    }

    /// A failure: pause for `FIRST` doubled per failure in a row, or for what the source
    /// asked (`Retry-After`) if longer; at most `LONGEST`.
    pub fn failed(&self, retry_after: Option<Duration>) {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        let doubled =
            FIRST.saturating_mul(2_u32.saturating_pow(state.failures.saturating_sub(1).min(16)));
        let pause = doubled.max(retry_after.unwrap_or_default()).min(LONGEST);
        state.until = Some(Instant::now() + pause);
    }

    /// A success: no pause.
    pub fn succeeded(&self) {
        let mut state = self.state();
        state.failures = 0;
        state.until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_honour_retry_after_and_end_on_success() {
        let backoff = Backoff::default();
        assert!(!backoff.paused());
        backoff.failed(None);
        assert!(backoff.paused());
        tokio::time::advance(FIRST).await;
        assert!(!backoff.paused());
        backoff.failed(None);
        tokio::time::advance(FIRST).await;
        assert!(
            backoff.paused(),
            "the second failure in a row pauses longer"
        );
        backoff.failed(Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(backoff.paused(), "Retry-After is honoured");
        backoff.succeeded();
        assert!(!backoff.paused());
        backoff.failed(Some(Duration::from_secs(3600)));
        tokio::time::advance(LONGEST).await;
        assert!(!backoff.paused(), "a Retry-After is capped");
    }
}
