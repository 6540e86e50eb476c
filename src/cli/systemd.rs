//! Readiness, reloads and watchdog for systemd (`Type=notify-reload`, `WatchdogSec=` in
//! `systemd/beid-agent.service`). Outside systemd (`$NOTIFY_SOCKET` unset) every call does
//! nothing, so `serve` behaves the same by hand.
//!
//! `READY=1` is sent once the API listens and the card engine runs: units ordered after the
//! agent (a kiosk browser) start only when the page can load. The watchdog is fed from a tokio
//! task: if the runtime that serves the API and the card sessions stops scheduling, systemd
//! restarts the agent.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tell systemd the agent is ready, with a status line for `systemctl status`.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell systemd a reload begins: `RELOADING=1` with `MONOTONIC_USEC=`, which systemd
/// (`Type=notify-reload`, v253 and later) compares with the time it sent SIGHUP, so that it
/// waits for the `READY=1` of this reload and not of an earlier one.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the configuration"),
        ]),
        Err(error) => {
            tracing::warn!(%error, "cannot read the monotonic clock for systemd");
            notify(&[NotifyState::Reloading]);
        }
    }
}

/// Tell systemd the reload is over (applied or refused: the agent serves either way).
pub fn reloaded(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell systemd the agent is stopping (so a slow shutdown is not mistaken for a hang).
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Feed the watchdog at half its period, when systemd asked for one.
pub fn spawn_watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec) / 2;
    tracing::debug!(
        period_ms = period.as_millis(),
        "feeding the systemd watchdog"
    );
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}
