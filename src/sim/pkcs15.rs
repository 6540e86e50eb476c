//! sim::pkcs15: builds the PKCS#15 files of a Belgian eID card (EF(DIR), EF(ODF),
//! EF(TokenInfo), EF(CDF)) for the simulator to serve when a dump folder lacks them.
//!
//! Why: OpenSC's `belpic` driver does not emulate anything; it reads the card through
//! its PKCS#15 structure. `pkcs15-tool`, `opensc-pkcs11.so` and everything built on them
//! (browsers, `pkcs11-tool -L`) start at 3F00/2F00 (EF(DIR), which names the application
//! DF 3F00/DF00), then read DF00/5031 (ODF, which points to the directory files),
//! DF00/5032 (TokenInfo) and DF00/5037 (CDF, which lists the certificate files 5038..).
//! Card dumps usually hold only the identity files and the certificates, so without
//! these files an independent reader cannot see the simulated card as a Belgian eID.
//!
//! Layout follows real cards (`docs/card-protocol.md` §4: EF(DIR) and TokenInfo bytes; the ODF form
//! `A4 0A 30 08 04 06 <path>` is the one real cards use). Only the ODF entry for the CDF
//! is written: AODF (PIN) and PrKDF (keys) are not needed to list or read certificates,
//! and the simulator signs nothing.
//!
//! Checked with OpenSC 0.23 (`belpic` driver) through pcscd + vpcd: `opensc-tool -n`,
//! `pkcs15-tool -D`, `--list-certificates`, `--read-certificate`, `pkcs11-tool -L -O`.
//! OpenSC reads these files with `00 A4 08 0C` + the path from 3F00 and `00 B0` Le=00.

/// AID of the PKCS#15 application DF(BELPIC) 3F00/DF00: A0 00 00 01 77 "PKCS-15".
const BELPIC_PKCS15_AID: [u8; 12] = [
    0xA0, 0x00, 0x00, 0x01, 0x77, 0x50, 0x4B, 0x43, 0x53, 0x2D, 0x31, 0x35,
];
/// Absolute path of DF(BELPIC); every path written below starts with it, as on real cards.
const DF_BELPIC_PATH: [u8; 4] = [0x3F, 0x00, 0xDF, 0x00];
/// Application label and token label on real cards.
const BELPIC_LABEL: &[u8] = b"BELPIC";
/// OID 2.16.56.2 (Belgian government arc), carried in EF(DIR)'s discretionary data.
const BELGIAN_GOV_OID: [u8; 3] = [0x60, 0x38, 0x02];

/// File id of EF(DIR) in the MF.
pub const FID_EF_DIR: u16 = 0x2F00;
/// File id of EF(ODF) in DF00.
pub const FID_ODF: u16 = 0x5031;
/// File id of EF(TokenInfo) in DF00.
pub const FID_TOKEN_INFO: u16 = 0x5032;
/// File id of EF(CDF) in DF00.
pub const FID_CDF: u16 = 0x5037;

/// Last 4 TokenInfo bytes (tag 9E): graphical perso version, electrical perso version,
/// electrical perso interface version, RFU. Value of the cards seen (`docs/card-protocol.md` §4); only
/// used when the caller has no real ones.
pub const DEFAULT_PERSO_VERSIONS: [u8; 4] = [0x04, 0x02, 0x00, 0x00];

/// One certificate as listed in the CDF. The `id` ties a certificate to its key on
/// real cards (0x02 authentication, 0x03 signature, 0x04 CA, 0x06 root, 0x08 RRN),
/// which is what `pkcs15-tool --read-certificate <id>` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateEntry {
    /// Human-readable label (UTF-8), shown by OpenSC as `X.509 Certificate [label]`.
    pub label: &'static str,
    /// PKCS#15 object id (one byte on Belgian cards).
    pub id: u8,
    /// File id of the certificate file inside DF00 (0x5038..0x503C).
    pub fid: u16,
    /// True for CA certificates (CA, root): PKCS#15 `authority`.
    pub authority: bool,
}

/// The certificate files of a Belgian eID card (`docs/card-protocol.md` §4). Whether real cards also
/// list the RRN certificate (503C) in their CDF is not confirmed; the middleware reads
/// 503C by path. Listing it does no harm to OpenSC and lets it read that file too.
pub const BELPIC_CERTIFICATES: [CertificateEntry; 5] = [
    CertificateEntry {
        label: "Authentication",
        id: 0x02,
        fid: 0x5038,
        authority: false,
    },
    CertificateEntry {
        label: "Signature",
        id: 0x03,
        fid: 0x5039,
        authority: false,
    },
    CertificateEntry {
        label: "CA",
        id: 0x04,
        fid: 0x503A,
        authority: true,
    },
    CertificateEntry {
        label: "Root",
        id: 0x06,
        fid: 0x503B,
        authority: true,
    },
    CertificateEntry {
        label: "RRN",
        id: 0x08,
        fid: 0x503C,
        authority: false,
    },
];

/// EF(DIR) 3F00/2F00: one application template (tag 61) naming the PKCS#15 application:
/// AID (4F), label "BELPIC" (50), path 3F00DF00 (51), discretionary data (73) holding
/// OID 2.16.56.2. 37 bytes, identical to real cards; OpenSC finds DF00 through it.
pub fn ef_dir() -> Vec<u8> {
    der::constructed(
        0x61,
        &[
            der::prim(0x4F, &BELPIC_PKCS15_AID),
            der::prim(0x50, BELPIC_LABEL),
            der::prim(0x51, &DF_BELPIC_PATH),
            der::prim(0x73, &der::prim(der::OID, &BELGIAN_GOV_OID)),
        ],
    )
}

/// EF(ODF) DF00/5031: the object directory. Only the CDF (tag A4 = certificates) is
/// listed, because only the CDF is generated: `A4 0A 30 08 04 06 3F00DF005037`.
pub fn odf() -> Vec<u8> {
    der::constructed(0xA4, &[path_object(FID_CDF)])
}

/// EF(TokenInfo) DF00/5032 with [`DEFAULT_PERSO_VERSIONS`]:
/// `30 27 02 01 00 04 10 <serial16> 80 06 "BELPIC" 03 02 04 30 9E 04 <4 version bytes>`.
/// `serial` is the chip serial (GET CARD DATA bytes 0..16, identity tag 02).
pub fn token_info(serial: &[u8; 16]) -> Vec<u8> {
    token_info_with_versions(serial, &DEFAULT_PERSO_VERSIONS)
}

/// EF(TokenInfo) with explicit perso version bytes (tag 9E, Belpic-specific), for
/// simulating a given card generation. Fields: version 0, serialNumber, label `[0]`
/// "BELPIC", tokenflags (prnGeneration + eidCompliant, 4 unused bits), then 9E.
pub fn token_info_with_versions(serial: &[u8; 16], versions: &[u8; 4]) -> Vec<u8> {
    der::seq(&[
        der::prim(der::INTEGER, &[0x00]),
        der::prim(der::OCTET_STRING, serial),
        der::prim(0x80, BELPIC_LABEL),
        der::prim(der::BIT_STRING, &[0x04, 0x30]),
        der::prim(0x9E, versions),
    ])
}

/// EF(CDF) DF00/5037: one x509Certificate object per entry, concatenated (a directory
/// file is a sequence of objects, not one SEQUENCE):
/// ```text
/// 30 { 30 { 0C label }                      CommonObjectAttributes
///      30 { 04 id  [01 01 FF] }             CommonCertificateAttributes (iD, authority)
///      A1 { 30 { 30 { 04 06 3F00DF00<fid> } } } }  [1] X509CertificateAttributes.value = Path
/// ```
/// No flags and no authId: the certificates are public, so PKCS#11 lists them without
/// a PIN (OpenSC issue #1293: an authId/private flag makes it ask for the PIN first).
pub fn cdf(entries: &[CertificateEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let common = der::seq(&[der::prim(der::UTF8_STRING, entry.label.as_bytes())]);
        let mut class = vec![der::prim(der::OCTET_STRING, &[entry.id])];
        if entry.authority {
            // DER omits a BOOLEAN equal to its DEFAULT (FALSE), so only TRUE is written.
            class.push(der::prim(der::BOOLEAN, &[0xFF]));
        }
        let type_attrs = der::constructed(0xA1, &[der::seq(&[path_object(entry.fid)])]);
        out.extend(der::seq(&[common, der::seq(&class), type_attrs]));
    }
    out
}

/// PKCS#15 `Path ::= SEQUENCE { path OCTET STRING }` with the absolute path 3F00DF00<fid>.
fn path_object(fid: u16) -> Vec<u8> {
    let mut path = DF_BELPIC_PATH.to_vec();
    path.extend_from_slice(&fid.to_be_bytes());
    der::seq(&[der::prim(der::OCTET_STRING, &path)])
}

/// A tiny DER writer: single-byte tags (all PKCS#15 needs here), definite lengths in
/// short form (< 128) or minimal long form, and constructed values built from parts.
mod der {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0C;
    pub const SEQUENCE: u8 = 0x30;

    /// Appends a definite length: one byte below 128, else 0x80|n then n big-endian
    /// bytes without leading zeros (DER requires the minimal form).
    pub fn len(n: usize, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }

    /// One TLV: tag, length, value (primitive bytes or already-encoded content).
    pub fn prim(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(value.len() + 6);
        out.push(tag);
        len(value.len(), &mut out);
        out.extend_from_slice(value);
        out
    }

    /// A constructed value whose content is the concatenation of `parts`.
    pub fn constructed(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
        prim(tag, &parts.concat())
    }

    /// SEQUENCE of `parts`.
    pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        constructed(SEQUENCE, parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal DER reader for the tests: splits `buf` into (tag, value) pairs and
    /// returns None on any malformed or truncated TLV.
    fn walk(mut buf: &[u8]) -> Option<Vec<(u8, &[u8])>> {
        let mut items = Vec::new();
        while !buf.is_empty() {
            let tag = buf[0];
            let first = *buf.get(1)?;
            let (len, header) = if first < 0x80 {
                (first as usize, 2)
            } else {
                let n = (first & 0x7F) as usize;
                let bytes = buf.get(2..2 + n)?;
                if n == 0 || n > 4 || bytes[0] == 0 {
                    return None; // indefinite or non-minimal
                }
                (
                    bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize),
                    2 + n,
                )
            };
            let value = buf.get(header..header + len)?;
            items.push((tag, value));
            buf = &buf[header + len..];
        }
        Some(items)
    }

    /// Walks `buf`, requiring exactly the given tags in order; returns the values.
    fn expect_tags<'a>(buf: &'a [u8], tags: &[u8]) -> Vec<&'a [u8]> {
        let items = walk(buf).unwrap_or_default();
        let got: Vec<u8> = items.iter().map(|(t, _)| *t).collect();
        assert_eq!(got, tags, "tags of {buf:02X?}");
        items.into_iter().map(|(_, v)| v).collect()
    }

    #[test]
    fn ef_dir_matches_real_card_bytes() {
        let mut expected = vec![0x61, 0x23, 0x4F, 0x0C];
        expected.extend_from_slice(&[0xA0, 0x00, 0x00, 0x01, 0x77]);
        expected.extend_from_slice(b"PKCS-15");
        expected.extend_from_slice(&[0x50, 0x06]);
        expected.extend_from_slice(b"BELPIC");
        expected.extend_from_slice(&[0x51, 0x04, 0x3F, 0x00, 0xDF, 0x00]);
        expected.extend_from_slice(&[0x73, 0x05, 0x06, 0x03, 0x60, 0x38, 0x02]);
        assert_eq!(expected.len(), 37);
        assert_eq!(ef_dir(), expected);
    }

    #[test]
    fn odf_points_to_cdf() {
        assert_eq!(
            odf(),
            [0xA4, 0x0A, 0x30, 0x08, 0x04, 0x06, 0x3F, 0x00, 0xDF, 0x00, 0x50, 0x37]
        );
    }

    #[test]
    fn token_info_layout() {
        let serial: [u8; 16] = core::array::from_fn(|i| 0xA0 + i as u8);
        let ti = token_info_with_versions(&serial, &[0x01, 0x02, 0x03, 0x04]);
        assert_eq!(ti.len(), 41);
        assert_eq!(ti[..7], [0x30, 0x27, 0x02, 0x01, 0x00, 0x04, 0x10]);
        assert_eq!(ti[7..23], serial);
        assert_eq!(ti[23..25], [0x80, 0x06]);
        assert_eq!(&ti[25..31], b"BELPIC");
        assert_eq!(
            ti[31..],
            [0x03, 0x02, 0x04, 0x30, 0x9E, 0x04, 0x01, 0x02, 0x03, 0x04]
        );
        assert_eq!(token_info(&serial)[37..], DEFAULT_PERSO_VERSIONS);
    }

    #[test]
    fn der_length_forms() {
        let enc = |n: usize| {
            let mut out = Vec::new();
            der::len(n, &mut out);
            out
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7F]);
        assert_eq!(enc(128), [0x81, 0x80]);
        assert_eq!(enc(255), [0x81, 0xFF]);
        assert_eq!(enc(256), [0x82, 0x01, 0x00]);
        assert_eq!(enc(65535), [0x82, 0xFF, 0xFF]);
        assert_eq!(enc(65536), [0x83, 0x01, 0x00, 0x00]);
        // The header is followed by exactly the value, also in long form.
        let big = der::prim(der::OCTET_STRING, &[0x55; 300]);
        assert_eq!(big[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(big.len(), 304);
        assert_eq!(walk(&big).map(|items| items.len()), Some(1));
    }

    #[test]
    fn cdf_round_trip() {
        let bytes = cdf(&BELPIC_CERTIFICATES);
        let objects = walk(&bytes).unwrap_or_default();
        assert_eq!(objects.len(), BELPIC_CERTIFICATES.len());
        for ((tag, body), entry) in objects.iter().zip(BELPIC_CERTIFICATES.iter()) {
            assert_eq!(*tag, 0x30);
            let parts = expect_tags(body, &[0x30, 0x30, 0xA1]);
            let label = expect_tags(parts[0], &[0x0C]);
            assert_eq!(label[0], entry.label.as_bytes());

            let class_tags: &[u8] = if entry.authority {
                &[0x04, 0x01]
            } else {
                &[0x04]
            };
            let class = expect_tags(parts[1], class_tags);
            assert_eq!(class[0], [entry.id]);
            if entry.authority {
                assert_eq!(class[1], [0xFF]);
            }

            let x509_attrs = expect_tags(parts[2], &[0x30]);
            let path_seq = expect_tags(x509_attrs[0], &[0x30]);
            let path = expect_tags(path_seq[0], &[0x04]);
            let [hi, lo] = entry.fid.to_be_bytes();
            assert_eq!(path[0], [0x3F, 0x00, 0xDF, 0x00, hi, lo]);
        }
    }

    #[test]
    fn cdf_exact_bytes_for_one_authority_entry() {
        let entry = CertificateEntry {
            label: "CA",
            id: 0x04,
            fid: 0x503A,
            authority: true,
        };
        let expected = [
            0x30, 0x1C, // CertificateObject
            0x30, 0x04, 0x0C, 0x02, b'C', b'A', // CommonObjectAttributes { label }
            0x30, 0x06, 0x04, 0x01, 0x04, 0x01, 0x01, 0xFF, // { iD 04, authority TRUE }
            0xA1, 0x0C, 0x30, 0x0A, 0x30, 0x08, 0x04, 0x06, // [1] { { Path { path
            0x3F, 0x00, 0xDF, 0x00, 0x50, 0x3A, //             3F00DF00503A } } }
        ];
        assert_eq!(cdf(&[entry]), expected);
    }

    #[test]
    fn empty_cdf_is_empty() {
        assert!(cdf(&[]).is_empty());
    }
}
