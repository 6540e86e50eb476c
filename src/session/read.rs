//! One read of a card for an advice: identity and signature, then authenticity.

use crate::beid::{BeidCard, CardData, CardError, IdentityFiles};
use crate::reader::{CardTransport, IoStats};

use super::authenticity::{AuthenticityReport, Verifier};

/// What one read of a card yields.
pub struct CardRead {
    pub card_data: CardData,
    pub files: IdentityFiles,
    pub authenticity: AuthenticityReport,
    pub stats: IoStats,
}

/// Reads the identity file and its signature and judges them (the RRN certificate only when
/// no cached key verifies; the chip when `authenticate_chip`).
pub fn read_and_verify(
    card: &mut BeidCard<&mut dyn CardTransport>,
    verifier: &Verifier,
    authenticate_chip: bool,
) -> Result<CardRead, CardError> {
    let files = card.read_identity()?;
    let authenticity = verifier.verify(card, &files, authenticate_chip)?;
    Ok(CardRead {
        card_data: card.card_data().clone(),
        files,
        authenticity,
        stats: card.stats(),
    })
}
