//! Where cards come from, behind one seam (the shape of openpgp-card's card-backend): a
//! [`CardBackend`] reports readers and cards and connects to a card; a [`CardConnection`]
//! runs work inside one transaction. Real readers through pcscd and the in-process
//! simulated readers are both backends, and [`run_on_card`] drives every backend the same
//! way: its own thread, a connection, one transaction, a deadline, removal noticed. So no
//! code path is exercised only in production.

use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::watcher::ReaderEvent;
use super::{CardTransport, ReaderError};

/// A supply of readers and the cards in them.
pub trait CardBackend: Send + Sync {
    /// Starts reporting reader events (readers, cards, the service) to `events`, from a
    /// thread of the backend's own.
    fn watch(&self, events: Sender<ReaderEvent>) -> std::io::Result<()>;

    /// Connects to the card in `reader`. Blocking: call it from a thread that may block
    /// ([`run_on_card`] does).
    fn connect(&self, reader: &str) -> Result<Box<dyn CardConnection>, ReaderError>;
}

/// A connection to the card in one reader.
pub trait CardConnection: Send {
    /// The card's answer to reset, as the reader reported it at connect time.
    fn atr(&self) -> &[u8];

    /// Runs `work` inside one transaction, so that no other application interleaves its
    /// commands with ours. `work` is called exactly once when this returns `Ok`.
    fn transaction(
        &mut self,
        work: &mut dyn FnMut(&mut dyn CardTransport),
    ) -> Result<(), ReaderError>;

    /// Ends the connection, leaving the card powered and as it is (a reset would undo the
    /// applet selection other software relies on).
    fn disconnect(self: Box<Self>);
}

impl dyn CardConnection {
    /// [`CardConnection::transaction`] for work that returns a value.
    pub fn with_transaction<R>(
        &mut self,
        work: impl FnOnce(&mut dyn CardTransport) -> R,
    ) -> Result<R, ReaderError> {
        let mut work = Some(work);
        let mut result = None;
        self.transaction(&mut |transport| {
            if let Some(work) = work.take() {
                result = Some(work(transport));
            }
        })?;
        result.ok_or(ReaderError::Backend("the transaction did not run its work"))
    }
}

/// The outcome of work on a card, with what it cost.
#[derive(Debug)]
pub struct CardJob<R> {
    pub result: R,
    pub atr: Vec<u8>,
    pub elapsed: Duration,
}

/// Connects to the card in `reader` on a thread of its own, runs `work` inside one
/// transaction, and leaves the card as it is.
///
/// Waits at most `deadline`: vpcd and some readers never time out a mute card, and
/// `SCardTransmit` has no timeout of its own. On expiry the thread is abandoned (it holds
/// only its own connection) and [`ReaderError::Timeout`] is returned.
pub fn run_on_card<R, E, F>(
    backend: &Arc<dyn CardBackend>,
    reader: &str,
    deadline: Duration,
    work: F,
) -> Result<CardJob<R>, E>
where
    R: Send + 'static,
    E: From<ReaderError> + Send + 'static,
    F: FnOnce(&mut dyn CardTransport) -> Result<R, E> + Send + 'static,
{
    let (done, outcome) = mpsc::sync_channel(1);
    let backend = backend.clone();
    let reader = reader.to_owned();
    std::thread::Builder::new()
        .name("card-io".into())
        .spawn(move || {
            let _ = done.send(work_on_card(backend.as_ref(), &reader, work));
        })
        .map_err(|error| E::from(ReaderError::Thread(error)))?;
    match outcome.recv_timeout(deadline) {
        Ok(result) => result,
        Err(_) => Err(ReaderError::Timeout(deadline).into()),
    }
}

fn work_on_card<R, E, F>(backend: &dyn CardBackend, reader: &str, work: F) -> Result<CardJob<R>, E>
where
    E: From<ReaderError>,
    F: FnOnce(&mut dyn CardTransport) -> Result<R, E>,
{
    let started = Instant::now();
    let mut connection = backend.connect(reader)?;
    let atr = connection.atr().to_vec();
    let result = connection.with_transaction(work);
    connection.disconnect();
    Ok(CardJob {
        result: result??,
        atr,
        elapsed: started.elapsed(),
    })
}
