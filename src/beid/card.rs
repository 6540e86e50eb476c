//! A session with one Belgian eID card: recognise it, select and read its files.

use std::time::Duration;

use zeroize::Zeroizing;

use super::apdu::{Apdu, Response};
use super::card_data::{AppletVersion, AtrHint, CardData, LifeCycle};
use super::error::CardError;
use super::files::{der_length, CardFile, Df, Extent};
use super::identity::Identity;
use super::status::StatusWord;
use crate::reader::{CardTransport, CountingTransport, IoStats};

/// No file on a Belgian eID is larger (photo ~3 KB, padded certificates ~3.6 KB); the
/// bound keeps a lying card from making the agent read forever.
pub const MAX_FILE_LEN: usize = 16 * 1024;

/// READ BINARY asks for 256 bytes (Le = 00): the largest chunk a T=0 card gives.
const CHUNK: usize = 256;

/// Delay between a `6Cxx` and the re-issued command on applets 1.0/1.1.
const OLD_CARD_WRONG_LE_DELAY: Duration = Duration::from_millis(10);

/// The identity file with its signature, exactly as read (the signature covers these bytes).
pub struct IdentityFiles {
    pub identity_file: Zeroizing<Vec<u8>>,
    pub signature_file: Zeroizing<Vec<u8>>,
    pub identity: Identity,
}

impl std::fmt::Debug for IdentityFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityFiles")
            .field("identity_file_len", &self.identity_file.len())
            .field("signature_file_len", &self.signature_file.len())
            .field("identity", &self.identity)
            .finish()
    }
}

/// An opened Belgian eID: the Belpic applet answered, GET CARD DATA told what it is.
pub struct BeidCard<T: CardTransport> {
    tx: CountingTransport<T>,
    card_data: CardData,
    /// The DF the card has selected, when known, to select siblings with one short APDU.
    current_df: Option<Df>,
    wrong_le_delay: Duration,
    recovered_from_reset: bool,
}

impl<T: CardTransport> BeidCard<T> {
    /// Reads GET CARD DATA (selecting the Belpic applet only when it is not the selected
    /// one): it decides whether this is a Belgian eID (the ATR is only a hint; the 1.8
    /// prefix is generic IDPrime).
    pub fn open(tx: T) -> Result<Self, CardError> {
        Self::open_with_wrong_le_delay(tx, OLD_CARD_WRONG_LE_DELAY)
    }

    /// [`open`](Self::open) with another pause between a `6Cxx` and the re-issued command
    /// on applets 1.0/1.1 (10 ms otherwise). Fuzzing and tests that script a transport pass
    /// zero, so that a run never sleeps.
    pub fn open_with_wrong_le_delay(tx: T, old_card_delay: Duration) -> Result<Self, CardError> {
        let mut card = Self {
            tx: CountingTransport::new(tx),
            card_data: CardData::parse(&[0; CardData::LEN]).ok_or(CardError::Malformed {
                command: "GET CARD DATA",
                reason: "internal placeholder",
            })?,
            current_df: None,
            wrong_le_delay: old_card_delay,
            recovered_from_reset: false,
        };
        match card.identify() {
            Err(error) if error.is_card_reset() => {
                card.recover_from_reset()?;
                card.identify()?;
            }
            other => other?,
        }
        Ok(card)
    }

    /// GET CARD DATA tells the applet version and life cycle; the ATR is only a hint.
    ///
    /// The Belpic applet is the card's default applet: after a reset it is selected and the
    /// MF is current (OpenSC's belpic driver never selects it). So GET CARD DATA is asked
    /// first, which saves the SELECT on every read; only when it fails (another application
    /// selected another applet on this shared connection, or this is no Belgian eID) is the
    /// applet selected by AID and asked again. A card that refuses that SELECT is not Belpic.
    fn identify(&mut self) -> Result<(), CardError> {
        let mut response = self.transmit(&Apdu::get_card_data())?;
        if response.status != StatusWord::Success {
            tracing::debug!(status = %response.status, "GET CARD DATA refused; selecting the applet");
            self.select_applet()?;
            response = self.transmit(&Apdu::get_card_data())?;
        }
        match response.status {
            StatusWord::Success => {}
            StatusWord::InstructionNotAvailable | StatusWord::ClassNotSupported => {
                return Err(CardError::NotBelpic(response.status))
            }
            status => {
                return Err(CardError::Status {
                    command: "GET CARD DATA",
                    status,
                })
            }
        }
        self.card_data = CardData::parse(&response.data).ok_or(CardError::Malformed {
            command: "GET CARD DATA",
            reason: "shorter than 28 bytes",
        })?;
        if !self.card_data.applet_version().needs_wrong_le_delay() {
            self.wrong_le_delay = Duration::ZERO;
        }
        Ok(())
    }

    fn select_applet(&mut self) -> Result<(), CardError> {
        self.current_df = None;
        // P2 = 00 may make the card offer an FCI (`61xx`); the selection worked, and the
        // FCI is of no use, so it is not fetched.
        let raw = self.tx.transmit(&Apdu::select_belpic_applet().to_bytes())?;
        let response = Response::parse(&raw).ok_or(CardError::Malformed {
            command: "SELECT",
            reason: "response shorter than a status word",
        })?;
        match response.status {
            StatusWord::Success | StatusWord::ResponseAvailable(_) => Ok(()),
            status => Err(CardError::NotBelpic(status)),
        }
    }

    /// After another application reset the card: reconnect, re-select the applet, once
    /// per card session (card-backend-pcsc does the same).
    fn recover_from_reset(&mut self) -> Result<(), CardError> {
        if self.recovered_from_reset {
            return Err(CardError::Reader(crate::reader::ReaderError::CardReset(
                None,
            )));
        }
        self.recovered_from_reset = true;
        tracing::info!("card was reset by another application; reconnecting");
        self.tx.reconnect()?;
        self.select_applet()
    }

    pub fn card_data(&self) -> &CardData {
        &self.card_data
    }

    pub fn atr(&self) -> &[u8] {
        self.tx.atr()
    }

    pub fn atr_hint(&self) -> AtrHint {
        AtrHint::from_atr(self.tx.atr())
    }

    /// APDUs and bytes exchanged since the card was opened.
    pub fn stats(&self) -> IoStats {
        self.tx.stats()
    }

    pub fn into_transport(self) -> T {
        self.tx.into_inner()
    }

    /// Reads the identity file and its signature (and nothing else: an advice needs no
    /// address, no photo).
    pub fn read_identity(&mut self) -> Result<IdentityFiles, CardError> {
        let identity_file = self.read_file(CardFile::Identity)?;
        let identity = Identity::parse(&identity_file)?;
        let signature_file = self.read_file(CardFile::IdentitySignature)?;
        Ok(IdentityFiles {
            identity_file,
            signature_file,
            identity,
        })
    }

    /// Reads one whole file (certificates up to their DER length). Recovers once from a
    /// reset by another application.
    pub fn read_file(&mut self, file: CardFile) -> Result<Zeroizing<Vec<u8>>, CardError> {
        if self.card_data.life_cycle() == LifeCycle::NotActivated {
            return Err(CardError::NotActivated);
        }
        match self.read_file_once(file) {
            Err(error) if error.is_card_reset() => {
                self.recover_from_reset()?;
                self.read_file_once(file)
            }
            other => other,
        }
    }

    /// GET CARD DATA with P2 = 01 (applet 1.8): 31 bytes, with the PIN tries left.
    pub fn card_data_extended(&mut self) -> Result<Zeroizing<Vec<u8>>, CardError> {
        let response = self.transmit(&Apdu::get_card_data_extended())?;
        expect_success("GET CARD DATA", response).map(|r| r.data)
    }

    /// INTERNAL AUTHENTICATE with the basic key (applet 1.8): returns the raw r‖s.
    pub fn internal_authenticate(
        &mut self,
        challenge: &[u8; 48],
    ) -> Result<Zeroizing<Vec<u8>>, CardError> {
        let response = self.transmit(&Apdu::internal_authenticate(challenge))?;
        expect_success("INTERNAL AUTHENTICATE", response).map(|r| r.data)
    }

    fn read_file_once(&mut self, file: CardFile) -> Result<Zeroizing<Vec<u8>>, CardError> {
        self.select(file)?;
        let mut content = Zeroizing::new(Vec::new());
        let mut target: Option<usize> = match file.extent() {
            Extent::AtMost(limit) => Some(self.known_length(file).unwrap_or(limit)),
            Extent::Whole | Extent::DerLength => None,
        };
        let mut glitch_retried = false;
        loop {
            let wanted = match target {
                Some(total) => (total - content.len()).min(CHUNK),
                None => CHUNK,
            };
            if content.len() + wanted > MAX_FILE_LEN {
                return Err(CardError::FileTooLarge {
                    file,
                    limit: MAX_FILE_LEN,
                });
            }
            // Bounded by MAX_FILE_LEN above, so the offset fits in 15 bits.
            let offset = content.len() as u16;
            let le = if wanted == CHUNK { 0 } else { wanted as u8 };
            let response = self.transmit(&Apdu::read_binary(offset, le))?;
            match response.status {
                StatusWord::Success if !response.data.is_empty() => {
                    let short = response.data.len() < wanted;
                    content.extend_from_slice(&response.data);
                    if target.is_none() && file.extent() == Extent::DerLength {
                        target = der_length(&content).map(|len| len.min(MAX_FILE_LEN));
                    }
                    if let Some(total) = target.filter(|&total| content.len() >= total) {
                        content.truncate(total);
                        return Ok(content);
                    }
                    if short {
                        return Ok(content);
                    }
                }
                // After whole chunks, an empty answer, "offset outside the file" or (some
                // readers) "no current file" is the end, or a reader's mid-file glitch
                // (Alcor AU9560: `docs/card-protocol.md` §8). Only a short chunk is a sure end, so
                // the same offset is tried once more before the end is believed.
                status @ (StatusWord::Success
                | StatusWord::OffsetOutsideFile
                | StatusWord::NoCurrentFile)
                    if offset > 0 =>
                {
                    if glitch_retried {
                        return Ok(content);
                    }
                    glitch_retried = true;
                    tracing::debug!(%file, offset, %status, "end of file after a full chunk; trying again");
                    if status == StatusWord::NoCurrentFile {
                        self.current_df = None;
                        self.select(file)?;
                    }
                }
                StatusWord::InstructionNotAvailable | StatusWord::ConditionsNotSatisfied => {
                    return Err(CardError::NotActivated)
                }
                status => {
                    return Err(CardError::Status {
                        command: "READ BINARY",
                        status,
                    })
                }
            }
        }
    }

    /// The length a file has on this card generation, asked for in one READ BINARY (saves
    /// the `6Cxx` round). Applets 1.0/1.1 were issued with RSA-1024 National Register keys
    /// only (2003–2014, `docs/card-protocol.md` §6): their signatures are 128 bytes. Were one longer,
    /// the signature check would fail and the card be judged not authentic, never accepted.
    fn known_length(&self, file: CardFile) -> Option<usize> {
        let rsa_1024 = matches!(
            self.card_data.applet_version(),
            AppletVersion::V1_0 | AppletVersion::V1_1
        );
        (rsa_1024
            && matches!(
                file,
                CardFile::IdentitySignature | CardFile::AddressSignature
            ))
        .then_some(128)
    }

    /// Selects a file: by file id when its DF is current (one short APDU), else by path,
    /// falling back to one file id at a time (3F00, DF, file) as the reference middleware
    /// does for cards that refuse a path.
    fn select(&mut self, file: CardFile) -> Result<(), CardError> {
        let df = file.df();
        if self.current_df == Some(df) {
            let status = self.transmit(&Apdu::select_file_id(file.fid()))?.status;
            if status == StatusWord::Success {
                return Ok(());
            }
            self.check_select_status(file, status)?;
        }
        self.current_df = None;
        let status = self
            .transmit(&Apdu::select_path(&[df.fid(), file.fid()]))?
            .status;
        match status {
            StatusWord::Success => {}
            StatusWord::FileNotFound
            | StatusWord::IncorrectP1P2
            | StatusWord::LcInconsistent
            | StatusWord::WrongLength => {
                for fid in [0x3F00, df.fid(), file.fid()] {
                    let status = self.transmit(&Apdu::select_file_id(fid))?.status;
                    if status != StatusWord::Success {
                        self.check_select_status(file, status)?;
                        return Err(CardError::FileNotFound(file));
                    }
                }
            }
            other => {
                self.check_select_status(file, other)?;
            }
        }
        self.current_df = Some(df);
        Ok(())
    }

    /// Turns a failed SELECT into the error a technician can act on. Returns `Ok` only
    /// for statuses that a fallback may still cure.
    fn check_select_status(&self, file: CardFile, status: StatusWord) -> Result<(), CardError> {
        match status {
            StatusWord::InstructionNotAvailable | StatusWord::ConditionsNotSatisfied => {
                Err(CardError::NotActivated)
            }
            StatusWord::FileNotFound
            | StatusWord::IncorrectP1P2
            | StatusWord::LcInconsistent
            | StatusWord::WrongLength => Ok(()),
            _ => {
                tracing::debug!(%file, %status, "select failed");
                Err(CardError::Status {
                    command: "SELECT",
                    status,
                })
            }
        }
    }

    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, CardError> {
        let result = apdu.transmit(&mut self.tx, self.wrong_le_delay);
        if result.is_err() {
            self.current_df = None;
        }
        result
    }
}

fn expect_success(command: &'static str, response: Response) -> Result<Response, CardError> {
    match response.status {
        StatusWord::Success => Ok(response),
        status => Err(CardError::Status { command, status }),
    }
}
