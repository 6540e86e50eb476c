//! How long an APDU takes on the wire at the card's T=0 speed, so the simulated card can
//! be as slow as a real one (ISO 7816-3: one character = 12 etu with the guard time;
//! etu = Fi / Di clock cycles; readers clock Belgian cards at about 4 MHz).

use std::time::Duration;

/// Reader clock assumed for the model.
const CLOCK_HZ: u64 = 4_000_000;
/// Characters per byte on the wire, in etu: start, 8 data, parity, 2 guard.
const ETU_PER_CHARACTER: u64 = 12;

/// The wire-time model of one card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireTime {
    clocks_per_etu: u64,
}

impl WireTime {
    /// From the ATR's TA1 (Fi in the high nibble, Di in the low one); without TA1 the
    /// defaults Fi = 372, Di = 1 apply.
    pub fn from_atr(atr: &[u8]) -> Self {
        let ta1 = match atr {
            [_, t0, ta1, ..] if t0 & 0x10 != 0 => *ta1,
            _ => 0x11,
        };
        let fi: u64 = match ta1 >> 4 {
            0x0 | 0x1 => 372,
            0x2 => 558,
            0x3 => 744,
            0x4 => 1116,
            0x5 => 1488,
            0x6 => 1860,
            0x9 => 512,
            0xA => 768,
            0xB => 1024,
            0xC => 1536,
            0xD => 2048,
            _ => 372,
        };
        let di: u64 = match ta1 & 0x0F {
            0x2 => 2,
            0x3 => 4,
            0x4 => 8,
            0x5 => 16,
            0x6 => 32,
            0x7 => 64,
            0x8 => 12,
            0x9 => 20,
            _ => 1,
        };
        Self {
            clocks_per_etu: fi / di,
        }
    }

    /// Time on the wire for `bytes` characters.
    pub fn for_bytes(&self, bytes: usize) -> Duration {
        let clocks = bytes as u64 * ETU_PER_CHARACTER * self.clocks_per_etu;
        Duration::from_nanos(clocks * 1_000_000_000 / CLOCK_HZ)
    }

    /// One APDU: the 5-byte header, a procedure byte, the command data, the response data
    /// and the status word.
    pub fn for_apdu(&self, command_len: usize, response_len: usize) -> Duration {
        self.for_bytes(command_len + 1 + response_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_cards_run_at_about_43_kbit() {
        let atr = [
            0x3B, 0x98, 0x13, 0x40, 0x0A, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x11,
        ];
        let model = WireTime::from_atr(&atr);
        // 372/4 = 93 clocks per etu; 12 etu per byte at 4 MHz = 279 µs per byte.
        assert_eq!(model.for_bytes(1), Duration::from_micros(279));
        // docs/card-protocol.md §15: ~0.4 s for 1.5 KB.
        let t = model.for_bytes(1500).as_secs_f64();
        assert!((0.40..0.43).contains(&t), "{t}");
    }

    #[test]
    fn applet_1_8_is_faster() {
        let atr = [0x3B, 0x7F, 0x96, 0x00];
        assert_eq!(
            WireTime::from_atr(&atr).for_bytes(1),
            Duration::from_micros(48)
        );
    }
}
