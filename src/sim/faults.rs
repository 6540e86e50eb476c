//! Faults the simulated card can inject, to test what real cards and readers do to us.

use std::str::FromStr;

/// A status word forced on a command: every time, or only its n-th occurrence (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFault {
    pub ins: u8,
    pub occurrence: Option<u32>,
    pub status: [u8; 2],
}

/// The faults of one simulated card.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// The card leaves the reader instead of answering APDU number N + 1.
    pub remove_after_apdus: Option<u32>,
    /// The card stops answering anything after N APDUs (vpcd then freezes that reader).
    pub mute_after_apdus: Option<u32>,
    /// The first READ BINARY of this file at this offset answers `6B00`, as some readers
    /// report an end of file in the middle of one.
    pub eof_glitch: Option<(u16, u16)>,
    pub status_faults: Vec<StatusFault>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultParseError(String);

impl FromStr for StatusFault {
    type Err = FaultParseError;

    /// `B0=6581` (every READ BINARY) or `B0@2=6581` (the second one).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || FaultParseError(format!("{text:?}: expected INS[@N]=SW, e.g. B0@2=6581"));
        let (command, status) = text.split_once('=').ok_or_else(bad)?;
        let (ins, occurrence) = match command.split_once('@') {
            Some((ins, n)) => (ins, Some(n.parse().map_err(|_| bad())?)),
            None => (command, None),
        };
        let ins = u8::from_str_radix(ins, 16).map_err(|_| bad())?;
        let status = u16::from_str_radix(status, 16).map_err(|_| bad())?;
        if !(0x6000..0x7000).contains(&status) {
            return Err(bad());
        }
        Ok(Self {
            ins,
            occurrence,
            status: status.to_be_bytes(),
        })
    }
}

/// `4031:256`: file id and offset, both hex for the file and decimal for the offset.
pub fn parse_eof_glitch(text: &str) -> Result<(u16, u16), FaultParseError> {
    let bad = || FaultParseError(format!("{text:?}: expected FID:OFFSET, e.g. 503C:256"));
    let (fid, offset) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        u16::from_str_radix(fid, 16).map_err(|_| bad())?,
        offset.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_faults() {
        assert_eq!(
            "B0=6581".parse(),
            Ok(StatusFault {
                ins: 0xB0,
                occurrence: None,
                status: [0x65, 0x81]
            })
        );
        assert_eq!(
            "a4@3=6D00".parse::<StatusFault>().unwrap().occurrence,
            Some(3)
        );
        assert!("B0".parse::<StatusFault>().is_err());
        assert!("B0=9000".parse::<StatusFault>().is_err());
        assert!("ZZ=6581".parse::<StatusFault>().is_err());
    }

    #[test]
    fn parses_eof_glitches() {
        assert_eq!(parse_eof_glitch("503C:256"), Ok((0x503C, 256)));
        assert!(parse_eof_glitch("503C").is_err());
    }
}
