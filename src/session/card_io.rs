//! Runs work on a card in a reader, on a dedicated thread, with a deadline.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::beid::{BeidCard, CardError};
use crate::reader::pcsc::PcscSession;
use crate::reader::{CardTransport, ReaderError};

/// The outcome of work on a card, with what it cost.
#[derive(Debug)]
pub struct CardJob<R> {
    pub result: R,
    pub atr: Vec<u8>,
    pub elapsed: Duration,
}

/// Connects to the card in `reader` on a new thread with its own PC/SC context, opens it
/// as a Belgian eID inside one transaction, runs `work`, and leaves the card as it is.
///
/// Waits at most `deadline`: vpcd and some readers never time out a mute card, and
/// `SCardTransmit` has no timeout of its own. On expiry the thread is abandoned (it holds
/// only its own context) and [`ReaderError::Timeout`] is returned.
pub fn run_on_card<R, F>(reader: &str, deadline: Duration, work: F) -> Result<CardJob<R>, CardError>
where
    R: Send + 'static,
    F: FnOnce(&mut BeidCard<&mut dyn CardTransport>) -> Result<R, CardError> + Send + 'static,
{
    let (done, outcome) = mpsc::sync_channel(1);
    let reader = reader.to_owned();
    std::thread::Builder::new()
        .name("card-io".into())
        .spawn(move || {
            let _ = done.send(work_on_card(&reader, work));
        })
        .map_err(|_| CardError::Reader(ReaderError::Timeout(Duration::ZERO)))?;
    match outcome.recv_timeout(deadline) {
        Ok(result) => result,
        Err(_) => Err(CardError::Reader(ReaderError::Timeout(deadline))),
    }
}

fn work_on_card<R, F>(reader: &str, work: F) -> Result<CardJob<R>, CardError>
where
    F: FnOnce(&mut BeidCard<&mut dyn CardTransport>) -> Result<R, CardError>,
{
    let started = Instant::now();
    let session = PcscSession::establish()?;
    let mut card = session.connect(reader)?;
    let atr = card.atr().to_vec();
    let result = card.with_transaction(|transport| {
        let mut beid = BeidCard::open(transport)?;
        work(&mut beid)
    });
    card.disconnect();
    Ok(CardJob {
        result: result??,
        atr,
        elapsed: started.elapsed(),
    })
}
