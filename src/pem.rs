//! pem: certificates and keys read from files, for the two layers that need them: `advice`
//! (the device's client certificate and key, the upstream's CA bundle) and `trust` (extra
//! card roots). One reader and one error type, so a technician gets the same words for the
//! same mistake wherever it is made. No network, no card; never prints file contents.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{Error as SyntaxError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The PEM armour's first bytes: what tells a PEM file from a DER one.
const PEM_BEGIN: &[u8] = b"-----BEGIN ";

/// Why a certificate or key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file cannot be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        /// What the file is for, e.g. "client certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM armour is broken.
    #[error("the {what} file {} is not usable PEM: {source}", path.display())]
    Syntax {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: SyntaxError,
    },
    /// The file holds no item of the kind wanted (no certificate, no private key).
    #[error("the {what} file {} holds no PEM item usable as {what}", path.display())]
    NoItem {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file is neither PEM nor a DER certificate.
    #[error("the {what} file {} is neither a PEM nor a DER certificate", path.display())]
    NotCertificate {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A certificate that rustls cannot use as a root.
    #[error("the {what} file {} holds a certificate that cannot be used: {source}", path.display())]
    Unusable {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The client certificate is X.509 version 1 or 2. rustls could send it, but every
    /// rustls or webpki peer (the city's gateway among them) refuses anything but version 3
    /// during the handshake, so it is refused here, where the cause can still be named.
    #[error(
        "the client certificate {} is an X.509 version {version} certificate; TLS peers such as the city's gateway accept only version 3",
        path.display()
    )]
    CertificateVersion {
        /// The certificate file.
        path: PathBuf,
        /// The X.509 version (1 or 2).
        version: u32,
    },
    /// The key is not the client certificate's key, or the TLS stack cannot use it.
    #[error("the client key {} does not fit the client certificate: {source}", path.display())]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
}

impl PemError {
    /// What to do about it, for a technician: one short sentence.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::Read { .. } => "check the path and that the agent's user may read the file",
            Self::Syntax { .. } | Self::NoItem { .. } | Self::NotCertificate { .. } => {
                "install the file the city provided, as PEM (-----BEGIN ...)"
            }
            Self::Unusable { .. } => "ask the city for the CA certificate(s) again",
            Self::CertificateVersion { .. } => {
                "reissue it as version 3 with extendedKeyUsage = clientAuth (docs/configuration.md, \"Client certificate\")"
            }
            Self::KeyMismatch { .. } => {
                "install the key the certificate was issued for (compare `openssl x509 -noout -pubkey` with `openssl pkey -pubout`)"
            }
        }
    }
}

/// A client certificate chain and its key, checked to belong together.
pub struct ClientIdentity {
    /// The device's certificate first, then any intermediate CAs.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn syntax(what: &'static str, path: &Path, source: SyntaxError) -> PemError {
    let path = path.to_owned();
    match source {
        SyntaxError::NoItemsFound => PemError::NoItem { what, path },
        source => PemError::Syntax { what, path, source },
    }
}

fn pem_certificates(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| syntax(what, path, source))?;
    if certificates.is_empty() {
        return Err(syntax(what, path, SyntaxError::NoItemsFound));
    }
    Ok(certificates)
}

/// All certificates of a PEM file (at least one).
pub fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    pem_certificates(what, path, &read(what, path)?)
}

/// The certificates of a PEM file, or the one certificate of a DER file (the Belgian roots
/// are published as DER, test PKIs often as PEM).
pub fn read_certificates_pem_or_der(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(what, path)?;
    if bytes.windows(PEM_BEGIN.len()).any(|w| w == PEM_BEGIN) {
        return pem_certificates(what, path, &bytes);
    }
    // A DER certificate is one ASN.1 SEQUENCE; anything else is not a certificate at all.
    if bytes.first() != Some(&0x30) {
        return Err(PemError::NotCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(vec![CertificateDer::from(bytes)])
}

/// A CA bundle as a root store (at least one certificate, all usable).
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    const WHAT: &str = "CA bundle";
    let mut roots = rustls::RootCertStore::empty();
    for certificate in read_certificates(WHAT, path)? {
        roots
            .add(certificate)
            .map_err(|source| PemError::Unusable {
                what: WHAT,
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    const WHAT: &str = "client key";
    let bytes = read(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| syntax(WHAT, path, source))
}

/// The client certificate chain and its key: an X.509 version 3 certificate first, and the
/// key that belongs to it, usable by the ring provider.
pub fn read_client_identity(
    certificate: &Path,
    key_path: &Path,
) -> Result<ClientIdentity, PemError> {
    let chain = read_certificates("client certificate", certificate)?;
    check_version(certificate, &chain)?;
    let key = read_private_key(key_path)?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
        |source| PemError::KeyMismatch {
            path: key_path.to_owned(),
            source,
        },
    )?;
    Ok(ClientIdentity { chain, key })
}

/// Refuses a version 1 or 2 end-entity certificate by name. A certificate x509-parser cannot
/// read passes here: the key check that follows then says what rustls finds wrong with it.
fn check_version(path: &Path, chain: &[CertificateDer<'static>]) -> Result<(), PemError> {
    let Some(leaf) = chain.first() else {
        return Ok(());
    };
    match X509Certificate::from_der(leaf) {
        Ok((_, parsed)) if parsed.version().0 < 2 => Err(PemError::CertificateVersion {
            path: path.to_owned(),
            version: parsed.version().0 + 1,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn client(dir: &Path) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["balie-3".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            write(dir, "client.pem", certificate.pem().as_bytes()),
            write(dir, "client.key", key.serialize_pem().as_bytes()),
        )
    }

    #[test]
    fn a_certificate_and_its_own_key_make_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = client(dir.path());
        let identity = read_client_identity(&certificate, &key).unwrap();
        assert_eq!(identity.chain.len(), 1);
    }

    #[test]
    fn another_key_is_named_as_not_fitting() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = client(dir.path());
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let other = write(dir.path(), "other.key", other.as_bytes());
        let error = read_client_identity(&certificate, &other).err().unwrap();
        assert!(matches!(error, PemError::KeyMismatch { .. }), "{error}");
    }

    /// openssl writes version 1 certificates when no extension is asked for
    /// (`openssl x509 -req` without `-extfile`); this is one, with its key.
    #[test]
    fn a_version_1_certificate_is_named_as_such() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-pki");
        let error = read_client_identity(
            &fixtures.join("client-v1.pem"),
            &fixtures.join("client-v1.key"),
        )
        .err()
        .unwrap();
        assert!(
            matches!(error, PemError::CertificateVersion { version: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("X.509 version 1"), "{error}");
        assert!(error.hint().contains("version 3"));
    }

    #[test]
    fn pem_der_and_garbage_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = write(dir.path(), "root.pem", certificate.pem().as_bytes());
        let der = write(dir.path(), "root.der", certificate.der());
        let garbage = write(dir.path(), "root.txt", b"not a certificate");
        let empty = write(dir.path(), "empty.pem", b"-----BEGIN NOTHING-----\n");
        let what = "root certificate";
        assert_eq!(read_certificates_pem_or_der(what, &pem).unwrap().len(), 1);
        assert_eq!(
            read_certificates_pem_or_der(what, &der).unwrap()[0].as_ref(),
            certificate.der().as_ref()
        );
        assert!(matches!(
            read_certificates_pem_or_der(what, &garbage),
            Err(PemError::NotCertificate { .. })
        ));
        assert!(read_certificates_pem_or_der(what, &empty).is_err());
        assert!(matches!(
            read_certificates(what, &dir.path().join("absent.pem")),
            Err(PemError::Read { .. })
        ));
        assert!(matches!(read_roots(&garbage), Err(PemError::NoItem { .. })));
    }
}
