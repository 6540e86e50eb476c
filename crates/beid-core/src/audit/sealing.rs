//! Forward-secure sealing, the pure part: the epoch schedule, the keys and how they evolve,
//! the verification key, and the MAC of a seal. No files (the sealing state on disk is
//! [`super::seal_state`]), no clock (callers pass the time).
//!
//! In the spirit of journald's Forward Secure Sealing, with a hash chain instead of FSPRG:
//!
//! - `seed`: 32 random bytes made once by `seal-init`. With the schedule it forms the
//!   *verification key*, which leaves the counter and is kept by the city.
//! - `k_0 = HMAC-SHA256(seed, "beid-audit-seal-v1 epoch 0")`, `k_{i+1} = HMAC-SHA256(k_i,
//!   "evolve")`: the *sealing key* of epoch `i`. (So the seed itself is never on the counter.)
//!   The agent keeps only the current one and erases the one before after each step, so
//!   whoever reads its state at epoch `c` cannot compute `k_i` for any `i < c` (HMAC-SHA256
//!   is one-way), while the verifier computes every `k_i` from the seed.
//! - epoch of a time `t`: `floor((t - start) / length)`, 0 before `start`.
//! - key id: the first 8 bytes of SHA-256(`"beid-audit-seal-v1 key id"` ‖ seed), in hex. It
//!   names the key in seal records without revealing it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ring::{digest, hmac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::record::{hex, parse_hex, SealReason, Sha256};

/// The default epoch length: a quarter of an hour, as journald's default.
pub const DEFAULT_EPOCH: Duration = Duration::from_secs(15 * 60);
/// Shorter epochs shrink what an intruder can rewrite (the current epoch) but add a seal
/// record each; below a minute the log would be mostly seals.
pub const MIN_EPOCH: Duration = Duration::from_secs(60);
pub const MAX_EPOCH: Duration = Duration::from_secs(24 * 60 * 60);

/// No schedule runs longer: a clock further away is wrong, and evolving a key that far
/// would take minutes.
const MAX_SPAN_SECONDS: i128 = 100 * 366 * 24 * 60 * 60;

const EVOLVE: &[u8] = b"evolve";
const FIRST_KEY_LABEL: &[u8] = b"beid-audit-seal-v1 epoch 0";
const KEY_ID_LABEL: &[u8] = b"beid-audit-seal-v1 key id";
const MAC_LABEL: &str = "beid-audit-seal-v1";
const VERIFICATION_KEY_PREFIX: &str = "beid-seal-v1";

/// When epochs start and how long they last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Unix time (seconds) when epoch 0 starts.
    pub start: i64,
    /// Epoch length in seconds.
    pub length: u32,
}

impl Schedule {
    /// A schedule starting at `start` (whole seconds) with epochs of `length`.
    pub fn new(start: OffsetDateTime, length: Duration) -> Result<Self, SealingError> {
        if !(MIN_EPOCH..=MAX_EPOCH).contains(&length) || length.subsec_nanos() != 0 {
            return Err(SealingError::EpochLength);
        }
        let length = u32::try_from(length.as_secs()).map_err(|_| SealingError::EpochLength)?;
        Ok(Self {
            start: start.unix_timestamp(),
            length,
        })
    }

    fn valid(&self) -> bool {
        (MIN_EPOCH.as_secs()..=MAX_EPOCH.as_secs()).contains(&u64::from(self.length))
    }

    /// The epoch `at` falls in (0 before the start), or `None` when `at` is further from the
    /// start than any schedule runs (the clock is wrong).
    pub fn epoch_of(&self, at: OffsetDateTime) -> Option<u64> {
        let since = i128::from(at.unix_timestamp()) - i128::from(self.start);
        if since > MAX_SPAN_SECONDS {
            return None;
        }
        u64::try_from(since.max(0) / i128::from(self.length)).ok()
    }

    /// When `epoch` starts.
    pub fn start_of(&self, epoch: u64) -> OffsetDateTime {
        let seconds = i128::from(self.start) + i128::from(epoch) * i128::from(self.length);
        i64::try_from(seconds)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The epoch length.
    pub fn length(&self) -> Duration {
        Duration::from_secs(u64::from(self.length))
    }
}

/// Names a verification key (and the seals made under it) without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    fn of_seed(seed: &[u8; 32]) -> Self {
        let mut input = Zeroizing::new(Vec::with_capacity(KEY_ID_LABEL.len() + seed.len()));
        input.extend_from_slice(KEY_ID_LABEL);
        input.extend_from_slice(seed);
        let digest = digest::digest(&digest::SHA256, &input);
        let mut id = [0; 8];
        id.copy_from_slice(digest.as_ref().get(..8).unwrap_or(&[0; 8]));
        Self(id)
    }
}

/// A MAC of a seal record (HMAC-SHA256), 64 lowercase hex digits in the log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 32]);

macro_rules! hex_newtype {
    ($name:ident, $len:literal, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex(&self.0))
            }
        }

        impl FromStr for $name {
            type Err = SealingError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>(text)
                    .map(Self)
                    .ok_or(SealingError::Hex($what))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&hex(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_newtype!(KeyId, 8, "a key id (16 lowercase hex digits)");
hex_newtype!(Mac, 32, "a MAC (64 lowercase hex digits)");

/// The sealing key of one epoch. Erased from memory when dropped or evolved.
pub(crate) struct SealingKey {
    epoch: u64,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey(epoch {}, ..)", self.epoch)
    }
}

impl SealingKey {
    pub(crate) fn new(epoch: u64, key: Zeroizing<[u8; 32]>) -> Self {
        Self { epoch, key }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Moves forward to `epoch` (never back), erasing each key it leaves.
    pub(crate) fn evolve_to(&mut self, epoch: u64) {
        while self.epoch < epoch {
            let next = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &*self.key), EVOLVE);
            self.key.copy_from_slice(next.as_ref());
            self.epoch += 1;
        }
    }

    /// The MAC of the seal described by `message`.
    pub(crate) fn mac(&self, message: &SealMessage<'_>) -> Mac {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &*self.key);
        let tag = hmac::sign(&key, message.to_string().as_bytes());
        let mut mac = [0; 32];
        mac.copy_from_slice(tag.as_ref());
        Mac(mac)
    }

    /// Whether `mac` is the MAC of `message` under this key (constant time).
    pub(crate) fn verifies(&self, message: &SealMessage<'_>, mac: &Mac) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &*self.key);
        hmac::verify(&key, message.to_string().as_bytes(), &mac.0).is_ok()
    }
}

/// What a seal's MAC covers, as the exact text it is computed over: six lines after the label,
/// separated by `\n`, no newline at the end:
///
/// ```text
/// beid-audit-seal-v1
/// <seq, decimal>
/// <at, exactly as in the record>
/// <reason: start | epoch | stop>
/// <epoch, decimal>
/// <key_id, 16 hex>
/// <prev, 64 hex>
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SealMessage<'a> {
    pub seq: u64,
    pub at: &'a str,
    pub reason: SealReason,
    pub epoch: u64,
    pub key_id: KeyId,
    pub prev: Sha256,
}

impl fmt::Display for SealMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MAC_LABEL}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.seq, self.at, self.reason, self.epoch, self.key_id, self.prev
        )
    }
}

/// The verification key: the seed and the schedule. Whoever holds it can check every seal
/// and also forge any: it is kept off the counter. Written
/// `beid-seal-v1:<seed, 64 hex>:<start, unix seconds>:<epoch length, seconds>`. Its `Debug`
/// shows only the key id.
#[derive(Clone)]
pub struct VerificationKey {
    seed: Zeroizing<[u8; 32]>,
    schedule: Schedule,
}

impl VerificationKey {
    pub(crate) fn new(seed: Zeroizing<[u8; 32]>, schedule: Schedule) -> Self {
        Self { seed, schedule }
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::of_seed(&self.seed)
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// The sealing key of epoch 0.
    pub(crate) fn first_key(&self) -> SealingKey {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &*self.seed),
            FIRST_KEY_LABEL,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(tag.as_ref());
        SealingKey::new(0, key)
    }

    /// The text to hand to the city (and to `audit verify --verification-key`).
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{VERIFICATION_KEY_PREFIX}:{}:{}:{}",
            hex(&*self.seed),
            self.schedule.start,
            self.schedule.length
        ))
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationKey(key id {})", self.key_id())
    }
}

impl FromStr for VerificationKey {
    type Err = SealingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split(':');
        let (Some(VERIFICATION_KEY_PREFIX), Some(seed), Some(start), Some(length), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealingError::VerificationKey);
        };
        let seed = Zeroizing::new(parse_hex::<32>(seed).ok_or(SealingError::VerificationKey)?);
        let schedule = Schedule {
            start: start.parse().map_err(|_| SealingError::VerificationKey)?,
            length: length.parse().map_err(|_| SealingError::VerificationKey)?,
        };
        if !schedule.valid() {
            return Err(SealingError::EpochLength);
        }
        Ok(Self { seed, schedule })
    }
}

/// The sealing key of each epoch, computed forward from the verification key, for `verify`.
pub(crate) struct KeyWalk {
    key: SealingKey,
}

impl KeyWalk {
    pub(crate) fn new(verification: &VerificationKey) -> Self {
        Self {
            key: verification.first_key(),
        }
    }

    /// The key of `epoch`, or `None` if it comes before one asked earlier (keys only go
    /// forward; `verify` asks in the chain's order).
    pub(crate) fn at(&mut self, epoch: u64) -> Option<&SealingKey> {
        if epoch < self.key.epoch() {
            return None;
        }
        self.key.evolve_to(epoch);
        Some(&self.key)
    }
}

/// A verification key or an epoch length that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    #[error("not a verification key: expected beid-seal-v1:<64 hex digits>:<start>:<seconds>")]
    VerificationKey,
    #[error("the epoch length must be whole seconds between 1 minute and 24 hours")]
    EpochLength,
    #[error("not {0}")]
    Hex(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn key() -> VerificationKey {
        let schedule = Schedule::new(datetime!(2025-03-01 08:00 UTC), DEFAULT_EPOCH).unwrap();
        VerificationKey::new(Zeroizing::new([7; 32]), schedule)
    }

    #[test]
    fn epochs_follow_the_schedule() {
        let schedule = key().schedule();
        assert_eq!(schedule.epoch_of(datetime!(2025-03-01 07:00 UTC)), Some(0));
        assert_eq!(
            schedule.epoch_of(datetime!(2025-03-01 08:14:59 UTC)),
            Some(0)
        );
        assert_eq!(schedule.epoch_of(datetime!(2025-03-01 08:15 UTC)), Some(1));
        assert_eq!(schedule.epoch_of(datetime!(2025-03-02 08:00 UTC)), Some(96));
        assert_eq!(schedule.start_of(96), datetime!(2025-03-02 08:00 UTC));
        assert_eq!(schedule.epoch_of(datetime!(2300-01-01 00:00 UTC)), None);
        assert!(Schedule::new(datetime!(2025-03-01 08:00 UTC), Duration::from_secs(59)).is_err());
    }

    /// The bounds `docs/audit.md` states, written out here rather than taken from the
    /// constants, so that a wrong constant fails.
    #[test]
    fn epoch_lengths_run_from_a_minute_to_a_day_and_default_to_a_quarter_hour() {
        let start = datetime!(2025-03-01 08:00 UTC);
        assert_eq!(DEFAULT_EPOCH, Duration::from_secs(900));
        for seconds in [60, 900, 86_400] {
            let schedule = Schedule::new(start, Duration::from_secs(seconds)).unwrap();
            assert_eq!(schedule.length(), Duration::from_secs(seconds));
            assert_eq!(
                schedule.epoch_of(start + Duration::from_secs(seconds)),
                Some(1)
            );
        }
        for seconds in [59, 86_401] {
            assert_eq!(
                Schedule::new(start, Duration::from_secs(seconds)),
                Err(SealingError::EpochLength),
                "{seconds} s"
            );
        }
        assert_eq!(
            Schedule::new(start, Duration::from_millis(60_500)),
            Err(SealingError::EpochLength)
        );
    }

    /// A schedule runs a century of 366-day years (3 162 240 000 s), its last second
    /// included; a clock past that is wrong, not an epoch.
    #[test]
    fn a_schedule_ends_a_century_after_its_start() {
        let schedule = Schedule::new(datetime!(2025-03-01 08:00 UTC), MAX_EPOCH).unwrap();
        let span = 100 * 366 * 86_400;
        let last = datetime!(2025-03-01 08:00 UTC) + Duration::from_secs(span);
        assert_eq!(schedule.epoch_of(last), Some(100 * 366));
        assert_eq!(schedule.epoch_of(last + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_sealing_key_shows_its_epoch_and_never_its_bytes() {
        let key = SealingKey::new(3, Zeroizing::new([0xab; 32]));
        assert_eq!(format!("{key:?}"), "SealingKey(epoch 3, ..)");
    }

    #[test]
    fn keys_evolve_as_documented_and_only_forward() {
        let verification = key();
        let mut key = verification.first_key();
        let k0 = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[7; 32]),
            b"beid-audit-seal-v1 epoch 0",
        );
        assert_eq!(key.bytes().as_slice(), k0.as_ref());
        key.evolve_to(2);
        let k1 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k0.as_ref()), b"evolve");
        let k2 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k1.as_ref()), b"evolve");
        assert_eq!(key.bytes().as_slice(), k2.as_ref());
        key.evolve_to(1);
        assert_eq!(key.epoch(), 2, "a key never goes back");

        let mut walk = KeyWalk::new(&verification);
        assert_eq!(walk.at(2).map(SealingKey::bytes), Some(key.bytes()));
        assert!(walk.at(1).is_none());
    }

    #[test]
    fn a_seal_mac_is_over_the_documented_message() {
        let verification = key();
        let message = SealMessage {
            seq: 12,
            at: "2025-03-01T08:15:00.5Z",
            reason: SealReason::Epoch,
            epoch: 0,
            key_id: verification.key_id(),
            prev: Sha256::of(b"x"),
        };
        let text = message.to_string();
        assert_eq!(
            text,
            format!(
                "beid-audit-seal-v1\n12\n2025-03-01T08:15:00.5Z\nepoch\n0\n{}\n{}",
                verification.key_id(),
                Sha256::of(b"x")
            )
        );
        let key = verification.first_key();
        let mac = key.mac(&message);
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.bytes()),
            text.as_bytes(),
        );
        assert_eq!(mac.0.as_slice(), expected.as_ref());
        assert!(key.verifies(&message, &mac));
        assert!(!key.verifies(&SealMessage { seq: 13, ..message }, &mac));
    }

    #[test]
    fn the_verification_key_round_trips_and_never_shows_in_debug() {
        let verification = key();
        let text = verification.expose();
        assert!(text.starts_with("beid-seal-v1:0707"));
        let parsed: VerificationKey = text.parse().unwrap();
        assert_eq!(parsed.key_id(), verification.key_id());
        assert_eq!(parsed.schedule(), verification.schedule());
        assert_eq!(
            format!("{parsed:?}"),
            format!("VerificationKey(key id {})", verification.key_id())
        );
        assert!(!format!("{parsed:?}").contains("0707"));
        for bad in [
            "",
            "beid-seal-v1:07:1:900",
            &text.replace("beid-seal-v1", "beid-seal-v2"),
            &format!("{}:1", &*text),
            &text.replace(":900", ":1"),
        ] {
            assert!(bad.parse::<VerificationKey>().is_err(), "{bad}");
        }
        let id = verification.key_id();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
    }
}
