//! audit: the gateway's own hash-chained log (`beid_core::audit`), written off the async
//! workers. Citizens appear only as the keyed pseudonym of their national number.

use std::path::Path;
use std::sync::Arc;

use beid_core::audit::{AuditError, AuditLog, ChainHead, CheckAnswered, CheckRefused, GatewayStarted, OutcomeRecord};
use beid_core::national_number::NationalNumber;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Audit {
    log: Arc<AuditLog>,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// Opens the log (creating it and the secret if needed) and records the start.
    pub fn open(log: &Path, secret: &Path, metrics: Arc<Metrics>) -> Result<Self, AuditError> {
        let log = AuditLog::open(log, secret)?;
        log.gateway_started(&GatewayStarted {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|host| host.trim().to_owned())
                .filter(|host| !host.is_empty()),
        })?;
        Ok(Self {
            log: Arc::new(log),
            metrics,
        })
    }

    /// A check answered. False when the record could not be written (logged, counted).
    pub async fn check(&self, answered: CheckAnswered, national_number: NationalNumber) -> bool {
        self.append(move |log| log.check(&answered, national_number.expose()))
            .await
    }

    pub async fn refused(&self, refused: CheckRefused) -> bool {
        self.append(move |log| log.check_refused(&refused)).await
    }

    pub async fn outcome(&self, outcome: OutcomeRecord) -> bool {
        self.append(move |log| log.outcome(&outcome)).await
    }

    /// Each append syncs the file: done on the blocking pool.
    async fn append(
        &self,
        write: impl FnOnce(&AuditLog) -> Result<ChainHead, AuditError> + Send + 'static,
    ) -> bool {
        let log = self.log.clone();
        let written = tokio::task::spawn_blocking(move || write(&log)).await;
        match written {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::error!(error = %error, "audit record not written");
                self.metrics.audit_error();
                false
            }
            Err(_) => {
                tracing::error!("audit writer task failed");
                self.metrics.audit_error();
                false
            }
        }
    }
}
