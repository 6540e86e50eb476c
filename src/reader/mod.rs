//! reader: moves APDU bytes to and from a card, and reports readers coming and going.
//!
//! This layer knows nothing of the Belgian eID. It is the only module that names `pcsc::`,
//! so the card protocol above it runs unchanged over real readers, over pcscd with the
//! vpcd virtual reader, and over the in-process simulated card.

mod backend;
mod error;
pub mod pcsc;
pub mod watcher;

pub use backend::{run_on_card, CardBackend, CardConnection, CardJob};
pub use error::{ReaderError, ReaderFault};
pub use pcsc::PcscBackend;
pub use watcher::ReaderEvent;

/// A connection to one card that exchanges raw APDUs.
///
/// Implementations never interpret status words: `61xx`, `6Cxx` and friends are the card
/// protocol's business (`beid`). They only report transport failures as [`ReaderError`].
pub trait CardTransport {
    /// Sends one command APDU and returns the response APDU (data followed by SW1 SW2).
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError>;

    /// The card's answer to reset, as the reader reported it at connect time.
    fn atr(&self) -> &[u8];

    /// Reconnects after another application reset the card (`SCARD_W_RESET_CARD`), leaving
    /// the card as it is. Transports that cannot be reset keep the default.
    fn reconnect(&mut self) -> Result<(), ReaderError> {
        Err(ReaderError::CardReset(None))
    }
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        (**self).transmit(apdu)
    }

    fn atr(&self) -> &[u8] {
        (**self).atr()
    }

    fn reconnect(&mut self) -> Result<(), ReaderError> {
        (**self).reconnect()
    }
}

/// Counts what crosses a transport, for the `apdus`/`bytes` figures technicians and
/// benchmarks compare against the reference middleware.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IoStats {
    /// Command APDUs sent, including GET RESPONSE and `6Cxx` re-issues.
    pub apdus: u32,
    /// Bytes sent to the card (command APDUs).
    pub bytes_sent: u64,
    /// Bytes received from the card (response data and status words).
    pub bytes_received: u64,
}

/// Wraps a transport and counts its traffic.
pub struct CountingTransport<T> {
    inner: T,
    stats: IoStats,
}

impl<T: CardTransport> CountingTransport<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            stats: IoStats::default(),
        }
    }

    pub fn stats(&self) -> IoStats {
        self.stats
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: CardTransport> CardTransport for CountingTransport<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        self.stats.apdus += 1;
        self.stats.bytes_sent += apdu.len() as u64;
        let response = self.inner.transmit(apdu)?;
        self.stats.bytes_received += response.len() as u64;
        Ok(response)
    }

    fn atr(&self) -> &[u8] {
        self.inner.atr()
    }

    fn reconnect(&mut self) -> Result<(), ReaderError> {
        self.inner.reconnect()
    }
}
