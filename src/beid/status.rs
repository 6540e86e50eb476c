//! Status words (SW1 SW2) of the Belpic applet, named as in its reference manuals.

use std::fmt;

/// A card's status word, mapped to the meanings of `docs/card-protocol.md` §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusWord {
    /// `90 00`
    Success,
    /// `61 xx`: T=0 case 4, `xx` bytes wait for GET RESPONSE (`00` = 256 or more).
    ResponseAvailable(u8),
    /// `6C xx`: wrong Le, `xx` bytes are available.
    WrongLe(u8),
    /// `6B 00`: offset outside the file (READ BINARY) or wrong P1-P2.
    OffsetOutsideFile,
    /// `6A 82`
    FileNotFound,
    /// `6A 86`
    IncorrectP1P2,
    /// `6A 87`
    LcInconsistent,
    /// `6A 80`
    IncorrectData,
    /// `6A 88`: referenced key not found.
    KeyNotFound,
    /// `67 00`
    WrongLength,
    /// `69 82`
    SecurityStatusNotSatisfied,
    /// `69 85`: file not activated, or INTERNAL AUTHENTICATE blocked.
    ConditionsNotSatisfied,
    /// `69 86`: no current EF.
    NoCurrentFile,
    /// `6D 00`: command not available in this life cycle (card not activated) or unknown INS.
    InstructionNotAvailable,
    /// `6E 00`
    ClassNotSupported,
    /// `68 81`: logical channel not supported (the Belpic applet lives on channel 0 only).
    LogicalChannelNotSupported,
    /// `64 00`
    NoPreciseDiagnosis,
    /// `65 81`: EEPROM corrupted; the card may be mute afterwards.
    MemoryFailure,
    Other(u16),
}

impl From<(u8, u8)> for StatusWord {
    fn from((sw1, sw2): (u8, u8)) -> Self {
        match (sw1, sw2) {
            (0x90, 0x00) => Self::Success,
            (0x61, n) => Self::ResponseAvailable(n),
            (0x6C, n) => Self::WrongLe(n),
            (0x6B, 0x00) => Self::OffsetOutsideFile,
            (0x6A, 0x82) => Self::FileNotFound,
            (0x6A, 0x86) => Self::IncorrectP1P2,
            (0x6A, 0x87) => Self::LcInconsistent,
            (0x6A, 0x80) => Self::IncorrectData,
            (0x6A, 0x88) => Self::KeyNotFound,
            (0x67, 0x00) => Self::WrongLength,
            (0x69, 0x82) => Self::SecurityStatusNotSatisfied,
            (0x69, 0x85) => Self::ConditionsNotSatisfied,
            (0x69, 0x86) => Self::NoCurrentFile,
            (0x6D, 0x00) => Self::InstructionNotAvailable,
            (0x6E, 0x00) => Self::ClassNotSupported,
            (0x68, 0x81) => Self::LogicalChannelNotSupported,
            (0x64, 0x00) => Self::NoPreciseDiagnosis,
            (0x65, 0x81) => Self::MemoryFailure,
            (a, b) => Self::Other(u16::from_be_bytes([a, b])),
        }
    }
}

impl StatusWord {
    /// The two bytes as the card sends them.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Self::Success => [0x90, 0x00],
            Self::ResponseAvailable(n) => [0x61, n],
            Self::WrongLe(n) => [0x6C, n],
            Self::OffsetOutsideFile => [0x6B, 0x00],
            Self::FileNotFound => [0x6A, 0x82],
            Self::IncorrectP1P2 => [0x6A, 0x86],
            Self::LcInconsistent => [0x6A, 0x87],
            Self::IncorrectData => [0x6A, 0x80],
            Self::KeyNotFound => [0x6A, 0x88],
            Self::WrongLength => [0x67, 0x00],
            Self::SecurityStatusNotSatisfied => [0x69, 0x82],
            Self::ConditionsNotSatisfied => [0x69, 0x85],
            Self::NoCurrentFile => [0x69, 0x86],
            Self::InstructionNotAvailable => [0x6D, 0x00],
            Self::ClassNotSupported => [0x6E, 0x00],
            Self::LogicalChannelNotSupported => [0x68, 0x81],
            Self::NoPreciseDiagnosis => [0x64, 0x00],
            Self::MemoryFailure => [0x65, 0x81],
            Self::Other(sw) => sw.to_be_bytes(),
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.to_bytes();
        write!(f, "{a:02X}{b:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_round_trips_through_its_bytes() {
        for sw1 in 0..=255u8 {
            for sw2 in [
                0x00, 0x01, 0x1C, 0x80, 0x81, 0x82, 0x85, 0x86, 0x87, 0x88, 0xFF,
            ] {
                let sw = StatusWord::from((sw1, sw2));
                assert_eq!(sw.to_bytes(), [sw1, sw2], "{sw:?}");
            }
        }
    }

    #[test]
    fn displays_as_hex() {
        assert_eq!(StatusWord::WrongLe(0xB3).to_string(), "6CB3");
    }
}
