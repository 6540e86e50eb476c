//! GET CARD DATA and the ATR: what kind of Belpic card this is.

use std::fmt;

/// The applet generation, from GET CARD DATA byte 21.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppletVersion {
    V1_0,
    V1_1,
    V1_7,
    V1_8,
    /// A Belpic applet of a version this agent does not know (read on, report it).
    Other(u8),
}

impl AppletVersion {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0x10 => Self::V1_0,
            0x11 => Self::V1_1,
            0x17 => Self::V1_7,
            0x18 => Self::V1_8,
            other => Self::Other(other),
        }
    }

    /// Applets 1.0 and 1.1 need ≥ 10 ms between a `6Cxx` and the re-issued command
    /// (commons-eid: "mandatory for eID v1.0 and v1.1 cards").
    pub fn needs_wrong_le_delay(self) -> bool {
        matches!(self, Self::V1_0 | Self::V1_1 | Self::Other(_))
    }

    /// Applet 1.8 carries the basic key (4040) for card authentication.
    pub fn has_basic_key(self) -> bool {
        matches!(self, Self::V1_8)
    }
}

impl fmt::Display for AppletVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V1_0 => f.write_str("1.0"),
            Self::V1_1 => f.write_str("1.1"),
            Self::V1_7 => f.write_str("1.7"),
            Self::V1_8 => f.write_str("1.8"),
            Self::Other(byte) => write!(f, "unknown (0x{byte:02X})"),
        }
    }
}

/// The applet life cycle, GET CARD DATA byte 27.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeCycle {
    /// 0x0F: personalised and usable.
    Personalized,
    /// 0x07: selectable but not activated (cards issued abroad arrive like this).
    NotActivated,
    Other(u8),
}

impl LifeCycle {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0x0F => Self::Personalized,
            0x07 => Self::NotActivated,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for LifeCycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Personalized => f.write_str("personalized"),
            Self::NotActivated => f.write_str("not activated"),
            Self::Other(byte) => write!(f, "unknown (0x{byte:02X})"),
        }
    }
}

/// The 28-byte GET CARD DATA answer (SPEC17 Table 32, SPEC18 Table 46).
#[derive(Clone, PartialEq, Eq)]
pub struct CardData {
    raw: [u8; 28],
}

impl CardData {
    pub const LEN: usize = 28;

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let raw: [u8; 28] = bytes.get(..Self::LEN)?.try_into().ok()?;
        Some(Self { raw })
    }

    /// The chip serial number (equals identity tag 0x02).
    pub fn chip_serial(&self) -> &[u8] {
        &self.raw[..16]
    }

    pub fn applet_version(&self) -> AppletVersion {
        AppletVersion::from_byte(self.raw[21])
    }

    pub fn life_cycle(&self) -> LifeCycle {
        LifeCycle::from_byte(self.raw[27])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("applet_version", &self.applet_version())
            .field("life_cycle", &self.life_cycle())
            .finish_non_exhaustive()
    }
}

/// What the ATR suggests; only a hint: the applet selection decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtrHint {
    /// `3B 98 94 40 0A A5 03 01 01 01 AD 13 10`
    Belpic10,
    /// `3B 98 13 40 0A A5 03 01 01 01 AD 13 11` (and its TA1 variants): 1.1 or 1.7.
    Belpic11Or17,
    /// `3B 7F 96 00 00 80 31 80 65 B0 85 04 01 20 12 0F FF 82 90 00`
    Belpic18,
    Unknown,
}

const ATR_18: [u8; 20] = [
    0x3B, 0x7F, 0x96, 0x00, 0x00, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x01, 0x20, 0x12, 0x0F,
    0xFF, 0x82, 0x90, 0x00,
];

impl AtrHint {
    /// commons-eid's mask `3B 98 xx 40 xx xx xx xx 01 01 AD 13 1x` for the old cards,
    /// the exact ATR for 1.8.
    pub fn from_atr(atr: &[u8]) -> Self {
        if atr == ATR_18 {
            return Self::Belpic18;
        }
        match atr {
            [0x3B, 0x98, _, 0x40, _, _, _, _, 0x01, 0x01, 0xAD, 0x13, last] => match last {
                0x10 => Self::Belpic10,
                0x11 => Self::Belpic11Or17,
                _ => Self::Unknown,
            },
            _ => Self::Unknown,
        }
    }

    pub fn is_known(self) -> bool {
        self != Self::Unknown
    }
}

impl fmt::Display for AtrHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Belpic10 => "Belgian eID applet 1.0",
            Self::Belpic11Or17 => "Belgian eID applet 1.1/1.7",
            Self::Belpic18 => "Belgian eID applet 1.8",
            Self::Unknown => "unknown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_applet_1_1_answer() {
        // The specimen card 71715100070's answer (applet 1.1), kept in its middleware container
        // `fixtures/parsing/71715100070-middleware-container.eid`, tag 06.
        let bytes = [
            0x53, 0x4C, 0x49, 0x4E, 0x33, 0x66, 0x00, 0x29, 0x6C, 0xFF, 0x27, 0x8E, 0x44, 0x19,
            0x20, 0x25, 0xA5, 0x03, 0x01, 0x01, 0x01, 0x11, 0x00, 0x02, 0x00, 0x01, 0x01, 0x0F,
        ];
        let data = CardData::parse(&bytes).unwrap();
        assert_eq!(data.applet_version(), AppletVersion::V1_1);
        assert_eq!(data.life_cycle(), LifeCycle::Personalized);
        assert_eq!(data.chip_serial(), &bytes[..16]);
        assert!(CardData::parse(&bytes[..27]).is_none());
    }

    #[test]
    fn recognises_the_documented_atrs() {
        let old = [
            0x3B, 0x98, 0x13, 0x40, 0x0A, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x11,
        ];
        assert_eq!(AtrHint::from_atr(&old), AtrHint::Belpic11Or17);
        let v10 = [
            0x3B, 0x98, 0x94, 0x40, 0x0A, 0xA5, 0x03, 0x01, 0x01, 0x01, 0xAD, 0x13, 0x10,
        ];
        assert_eq!(AtrHint::from_atr(&v10), AtrHint::Belpic10);
        assert_eq!(AtrHint::from_atr(&ATR_18), AtrHint::Belpic18);
        assert_eq!(AtrHint::from_atr(&[0x3B, 0x00]), AtrHint::Unknown);
        // The 1.8 prefix is generic Gemalto IDPrime: a different tail is not ours.
        let mut other = ATR_18;
        other[13] = 0x21;
        assert_eq!(AtrHint::from_atr(&other), AtrHint::Unknown);
    }
}
