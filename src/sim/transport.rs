//! The simulated card in-process, behind the same [`CardTransport`] as a real reader.

use super::card::{SimCard, SimOutcome};
use crate::reader::{CardTransport, ReaderError};

/// Talks to a [`SimCard`] directly, without pcscd. Once removed, it stays removed.
pub struct SimTransport {
    card: SimCard,
    removed: bool,
}

impl SimTransport {
    pub fn new(mut card: SimCard) -> Self {
        card.reset();
        Self {
            card,
            removed: false,
        }
    }

    pub fn card(&self) -> &SimCard {
        &self.card
    }
}

impl CardTransport for SimTransport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        if self.removed {
            return Err(ReaderError::CardRemoved(None));
        }
        match self.card.process(apdu) {
            SimOutcome::Respond(response) => {
                // As slow as the card's T=0 wire when the model is on (zero otherwise).
                let wire = self.card.wire_time_for(apdu.len(), response.len());
                if !wire.is_zero() {
                    std::thread::sleep(wire);
                }
                Ok(response)
            }
            SimOutcome::Removed => {
                self.removed = true;
                Err(ReaderError::CardRemoved(None))
            }
            SimOutcome::Mute => Err(ReaderError::CardMute(None)),
        }
    }

    fn atr(&self) -> &[u8] {
        self.card.atr()
    }
}
