//! audit: the gateway's own hash-chained log (`beid_core::audit`). Citizens appear only as
//! the keyed pseudonym of their national number.
//!
//! Each record is synced to disk (three syncs: the record, the head file, the directory),
//! which on a busy disk takes milliseconds and now and then, when the file system commits
//! its journal, whole seconds. So that this never reaches the devices' answers, one writer
//! thread appends the records in order from a bounded queue: a check's record is queued
//! before its answer is sent, and when the queue is full (the disk has fallen
//! [`QUEUE`] records behind) the gateway answers `503` rather than answer unaudited. A
//! crash loses at most the records still queued; the chain itself stays verifiable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use beid_core::audit::{
    AuditError, AuditLog, ChainHead, CheckAnswered, CheckRefused, GatewayStarted, OutcomeRecord,
};
use beid_core::national_number::NationalNumber;

use crate::metrics::Metrics;

/// Records waiting for the disk at most: 30 s of checks at 500 a second.
pub const QUEUE: usize = 16 * 1024;

type Job = Box<dyn FnOnce(&AuditLog) -> Result<ChainHead, AuditError> + Send>;

enum Message {
    Append(Job),
    /// Answered once every record queued before it is written.
    Flush(mpsc::Sender<()>),
}

#[derive(Clone)]
pub struct Audit {
    queue: SyncSender<Message>,
    metrics: Arc<Metrics>,
    /// The queue was full at the last try: said once, not per check.
    full: Arc<AtomicBool>,
}

impl Audit {
    /// Opens the log (creating it and the secret if needed), records the start and starts
    /// the writer thread (it ends when the last `Audit` is dropped, after the queue).
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
        let path = log.path().to_path_buf();
        let (queue, jobs) = mpsc::sync_channel::<Message>(QUEUE);
        let errors = metrics.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                for message in jobs {
                    match message {
                        Message::Append(job) => {
                            if let Err(error) = job(&log) {
                                tracing::error!(error = %error, "audit record not written");
                                errors.audit_error();
                            }
                        }
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|source| AuditError::Io {
                op: "start the writer thread for",
                path,
                source,
            })?;
        Ok(Self {
            queue,
            metrics,
            full: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Queues a check's record. False when the queue is full (logged, counted).
    pub fn check(&self, answered: CheckAnswered, national_number: NationalNumber) -> bool {
        self.submit(Box::new(move |log| {
            log.check(&answered, national_number.expose())
        }))
    }

    pub fn refused(&self, refused: CheckRefused) -> bool {
        self.submit(Box::new(move |log| log.check_refused(&refused)))
    }

    pub fn outcome(&self, outcome: OutcomeRecord) -> bool {
        self.submit(Box::new(move |log| log.outcome(&outcome)))
    }

    /// Waits until every record queued so far is on disk (shutdown, tests).
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    fn submit(&self, job: Job) -> bool {
        match self.queue.try_send(Message::Append(job)) {
            Ok(()) => {
                if self.full.swap(false, Ordering::Relaxed) {
                    tracing::warn!("audit queue accepts records again");
                }
                true
            }
            Err(TrySendError::Full(_)) => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        queued = QUEUE,
                        "audit queue full: the disk is too slow; checks get 503 until it drains"
                    );
                }
                self.metrics.audit_error();
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("audit writer stopped");
                self.metrics.audit_error();
                false
            }
        }
    }
}
