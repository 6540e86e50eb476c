//! One read of a card for an advice: identity and signature, then authenticity.

use std::sync::Arc;
use std::time::Duration;

use crate::beid::{BeidCard, CardData, CardError, IdentityFiles};
use crate::reader::{run_on_card, CardBackend, CardJob, CardTransport, IoStats};

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

/// Runs `work` on the card in `reader` opened as a Belgian eID, on its own thread, inside
/// one transaction, waiting at most `deadline` ([`run_on_card`]).
pub fn on_card<R, F>(
    backend: &Arc<dyn CardBackend>,
    reader: &str,
    deadline: Duration,
    work: F,
) -> Result<CardJob<R>, CardError>
where
    R: Send + 'static,
    F: FnOnce(&mut BeidCard<&mut dyn CardTransport>) -> Result<R, CardError> + Send + 'static,
{
    run_on_card(backend, reader, deadline, move |transport| {
        let mut card = BeidCard::open(transport)?;
        work(&mut card)
    })
}
