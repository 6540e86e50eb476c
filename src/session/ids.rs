//! Card session ids that prove where they came from.
//!
//! A POS must never apply the previous citizen's advice to the next one, so a request about
//! a session whose card left must answer "ended" (410), however long ago that was. Keeping
//! every ended id would grow without bound; keeping the last N would answer "unknown" (404)
//! for older ones. Instead each id carries a tag: 64 random bits, then a MAC of them under
//! a key that lives only in this agent run's memory. An id that is not active but whose tag
//! is right was issued by this run, so it has ended; any other id was never issued by this
//! run (a typo, another device, or an agent that restarted since: the 404 says so).
//!
//! The ids are still UUID version 4 in form (version and variant bits set), so clients that
//! validate UUIDs keep working; 62 bits of tag remain.

use ring::hmac;
use uuid::Uuid;

/// Issues and recognises this agent run's session ids.
pub struct SessionIds {
    key: hmac::Key,
}

impl SessionIds {
    /// A fresh key from the OS random source: ids of another run never verify.
    pub fn new() -> Self {
        let seed = Uuid::new_v4().into_bytes();
        let more = Uuid::new_v4().into_bytes();
        let mut material = [0_u8; 32];
        material[..16].copy_from_slice(&seed);
        material[16..].copy_from_slice(&more);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &material),
        }
    }

    /// A new id: random, tagged.
    pub fn issue(&self) -> Uuid {
        let mut bytes = Uuid::new_v4().into_bytes();
        let tag = self.tag(&bytes[..8]);
        bytes[8..].copy_from_slice(&tag);
        as_v4(bytes)
    }

    /// Whether this run issued `id`.
    pub fn issued(&self, id: Uuid) -> bool {
        let bytes = id.into_bytes();
        let mut expected = bytes;
        expected[8..].copy_from_slice(&self.tag(&bytes[..8]));
        // Not secret-dependent timing worth guarding: a wrong guess only learns "404".
        as_v4(expected) == id
    }

    /// The MAC of the id's first half, as issued (its version nibble already says 4: the
    /// tag covers what the id shows).
    fn tag(&self, random: &[u8]) -> [u8; 8] {
        let mac = hmac::sign(&self.key, random);
        let mut tag = [0_u8; 8];
        tag.copy_from_slice(&mac.as_ref()[..8]);
        tag
    }
}

impl Default for SessionIds {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes as a UUID version 4 (its version and variant bits set).
fn as_v4(bytes: [u8; 16]) -> Uuid {
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_are_uuid_v4_and_recognised_by_their_run_only() {
        let run = SessionIds::new();
        let other = SessionIds::new();
        for _ in 0..1000 {
            let id = run.issue();
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(run.issued(id));
            assert!(!other.issued(id));
        }
        assert!(!run.issued(Uuid::new_v4()));
        assert!(!run.issued(Uuid::nil()));
    }

    #[test]
    fn any_changed_bit_is_not_recognised() {
        let run = SessionIds::new();
        let id = run.issue().into_bytes();
        for byte in 0..16 {
            for bit in 0..8 {
                let mut changed = id;
                changed[byte] ^= 1 << bit;
                assert!(!run.issued(Uuid::from_bytes(changed)), "{byte}:{bit}");
            }
        }
    }
}
