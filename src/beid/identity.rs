//! The identity (4031) and address (4033) files as typed values (tags: `docs/card-protocol.md` §10).
//!
//! `Debug` on these types shows which fields are present, never their values: they hold
//! a person's data and must not leak into logs.

use std::fmt;

use time::Date;

use super::dates::{parse_card_date, BirthDate};
use super::error::CardError;
use super::tlv;
use beid_core::national_number::NationalNumber;

/// Gender, tag 0x0D: M; F, V or W for female.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Unknown,
}

/// Special status, tag 0x10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialStatus {
    None,
    WhiteCane,
    ExtendedMinority,
    WhiteCaneAndExtendedMinority,
    YellowCane,
    YellowCaneAndExtendedMinority,
    Other,
}

/// The identity file, every tag of IDF5 v5.0 typed.
#[derive(Clone, Default)]
pub struct Identity {
    pub file_structure_version: Option<Vec<u8>>,
    pub card_number: String,
    pub chip_number: Vec<u8>,
    pub validity_begin: Option<Date>,
    pub validity_end: Option<Date>,
    pub delivery_municipality: String,
    pub national_number: Option<NationalNumber>,
    pub surname: String,
    pub first_names: String,
    pub third_name_initial: String,
    pub nationality: String,
    pub birth_place: String,
    pub birth_date: Option<BirthDate>,
    pub gender: Option<Gender>,
    pub noble_condition: String,
    pub document_type: String,
    pub special_status: Option<SpecialStatus>,
    pub photo_hash: Vec<u8>,
    pub duplicate: String,
    pub special_organisation: String,
    /// Tag 0x14 is a flag: its presence means "member of family".
    pub member_of_family: bool,
    pub protection_date_and_country: String,
    pub work_permit: String,
    pub employer_vat_1: String,
    pub employer_vat_2: String,
    pub regional_file_number: String,
    /// Tag 0x1A: SHA-384 of the basic public key file 4040 (applet 1.8).
    pub basic_key_hash: Vec<u8>,
    pub brexit_mention_1: String,
    pub brexit_mention_2: String,
    pub card_a_mention_1: String,
    pub card_a_mention_2: String,
    pub eu_registration_date: Option<Date>,
    /// Tags this agent does not know, kept by number only.
    pub unknown_tags: Vec<u8>,
}

impl Identity {
    /// Parses the identity file. Only structure errors fail; a field with odd content is
    /// kept as well as it can be (a date that does not parse becomes `None`).
    pub fn parse(bytes: &[u8]) -> Result<Self, CardError> {
        let mut identity = Identity::default();
        for field in tlv::parse(bytes)? {
            let text = || String::from_utf8_lossy(field.value).trim().to_owned();
            let date = || parse_card_date(&String::from_utf8_lossy(field.value));
            match field.tag {
                0x00 => identity.file_structure_version = Some(field.value.to_vec()),
                0x01 => identity.card_number = text(),
                0x02 => identity.chip_number = field.value.to_vec(),
                0x03 => identity.validity_begin = date(),
                0x04 => identity.validity_end = date(),
                0x05 => identity.delivery_municipality = text(),
                0x06 => identity.national_number = Some(NationalNumber::parse(field.value)?),
                0x07 => identity.surname = text(),
                0x08 => identity.first_names = text(),
                0x09 => identity.third_name_initial = text(),
                0x0A => identity.nationality = text(),
                0x0B => identity.birth_place = text(),
                0x0C => identity.birth_date = BirthDate::parse(&text()),
                0x0D => identity.gender = Some(parse_gender(field.value)),
                0x0E => identity.noble_condition = text(),
                0x0F => identity.document_type = text(),
                0x10 => identity.special_status = Some(parse_special_status(&text())),
                0x11 => identity.photo_hash = field.value.to_vec(),
                0x12 => identity.duplicate = text(),
                0x13 => identity.special_organisation = text(),
                0x14 => identity.member_of_family = true,
                0x15 => identity.protection_date_and_country = text(),
                0x16 => identity.work_permit = text(),
                0x17 => identity.employer_vat_1 = text(),
                0x18 => identity.employer_vat_2 = text(),
                0x19 => identity.regional_file_number = text(),
                0x1A => identity.basic_key_hash = field.value.to_vec(),
                0x1B => identity.brexit_mention_1 = text(),
                0x1C => identity.brexit_mention_2 = text(),
                0x1D => identity.card_a_mention_1 = text(),
                0x1E => identity.card_a_mention_2 = text(),
                0x1F => identity.eu_registration_date = date(),
                other => identity.unknown_tags.push(other),
            }
        }
        Ok(identity)
    }

    /// The national number, which every identity file must carry.
    pub fn national_number(&self) -> Result<&NationalNumber, CardError> {
        self.national_number
            .as_ref()
            .ok_or(CardError::MissingNationalNumber)
    }

    /// Whether the card's validity has ended on `today`; unknown end dates count as valid.
    pub fn is_expired_on(&self, today: Date) -> bool {
        self.validity_end.is_some_and(|end| end < today)
    }
}

fn parse_gender(value: &[u8]) -> Gender {
    match value.first() {
        Some(b'M') => Gender::Male,
        Some(b'F' | b'V' | b'W') => Gender::Female,
        _ => Gender::Unknown,
    }
}

fn parse_special_status(text: &str) -> SpecialStatus {
    match text {
        "0" | "" => SpecialStatus::None,
        "1" => SpecialStatus::WhiteCane,
        "2" => SpecialStatus::ExtendedMinority,
        "3" => SpecialStatus::WhiteCaneAndExtendedMinority,
        "4" => SpecialStatus::YellowCane,
        "5" => SpecialStatus::YellowCaneAndExtendedMinority,
        _ => SpecialStatus::Other,
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("national_number", &self.national_number)
            .field("validity_begin", &self.validity_begin)
            .field("validity_end", &self.validity_end)
            .field("document_type", &self.document_type)
            .finish_non_exhaustive()
    }
}

/// The address file.
#[derive(Clone, Default)]
pub struct Address {
    pub street_and_number: String,
    pub zip: String,
    pub municipality: String,
}

impl Address {
    pub fn parse(bytes: &[u8]) -> Result<Self, CardError> {
        let mut address = Address::default();
        for field in tlv::parse(bytes)? {
            let text = String::from_utf8_lossy(field.value).trim().to_owned();
            match field.tag {
                0x01 => address.street_and_number = text,
                0x02 => address.zip = text,
                0x03 => address.municipality = text,
                _ => {}
            }
        }
        Ok(address)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beid::Checksum;
    use time::macros::date;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn reads_the_alice_specimen() {
        let identity = Identity::parse(&fixture("cards/alice-2009/4031-identity.bin")).unwrap();
        let number = identity.national_number().unwrap();
        assert!(number.checksum().is_valid());
        assert_eq!(identity.gender, Some(Gender::Female));
        assert!(identity.validity_begin.is_some());
        assert!(identity.validity_end > identity.validity_begin);
        assert_eq!(identity.chip_number.len(), 16);
        assert_eq!(identity.photo_hash.len(), 20);
        assert!(identity.birth_date.is_some());
        assert!(identity.unknown_tags.is_empty());
    }

    #[test]
    fn reads_the_ec_specimen_born_after_2000() {
        let identity = Identity::parse(&fixture("cards/nora-ec-2022/4031-identity.bin")).unwrap();
        assert_eq!(
            identity.national_number().unwrap().checksum(),
            Checksum::Valid2000OrLater
        );
        assert_eq!(identity.photo_hash.len(), 32);
    }

    #[test]
    fn reads_special_statuses() {
        let white = Identity::parse(&fixture("parsing/white-cane.bin")).unwrap();
        assert_eq!(white.special_status, Some(SpecialStatus::WhiteCane));
        let yellow = Identity::parse(&fixture("parsing/yellow-cane.bin")).unwrap();
        assert_eq!(yellow.special_status, Some(SpecialStatus::YellowCane));
        let minority = Identity::parse(&fixture("parsing/extended-minority.bin")).unwrap();
        assert_eq!(
            minority.special_status,
            Some(SpecialStatus::ExtendedMinority)
        );
    }

    #[test]
    fn reads_the_address() {
        let address = Address::parse(&fixture("cards/alice-2009/4033-address.bin")).unwrap();
        assert!(!address.zip.is_empty());
        assert!(!address.municipality.is_empty());
        assert_eq!(format!("{address:?}"), "Address { .. }");
    }

    #[test]
    fn debug_shows_no_personal_data() {
        let identity = Identity::parse(&fixture("cards/alice-2009/4031-identity.bin")).unwrap();
        let debug = format!("{identity:?}");
        let number = identity.national_number().unwrap().expose().to_owned();
        assert!(!debug.contains(&number));
        assert!(!debug.contains(&identity.surname));
    }

    #[test]
    fn expiry_is_judged_on_the_end_date() {
        let identity = Identity {
            validity_end: Some(date!(2020 - 01 - 31)),
            ..Identity::default()
        };
        assert!(identity.is_expired_on(date!(2020 - 02 - 01)));
        assert!(!identity.is_expired_on(date!(2020 - 01 - 31)));
    }

    #[test]
    fn a_missing_national_number_is_an_error() {
        let identity = Identity::parse(&tlv::encode(&[(0x01, b"123")])).unwrap();
        assert!(matches!(
            identity.national_number(),
            Err(CardError::MissingNationalNumber)
        ));
    }
}
