//! `[trust]`: the extra roots must be certificates.

use super::super::model::TrustConfig;
use super::super::path::KeyPath;
use super::upstream::credentials;
use super::Checker;
use crate::pem;

pub(super) fn check(checker: &mut Checker<'_>, trust: &TrustConfig) {
    let roots = KeyPath::of(&["trust", "extra_roots"]);
    for (position, path) in trust.extra_roots.iter().enumerate() {
        let key = checker.element(&roots, position);
        if !checker.readable_file(&key, path) {
            continue;
        }
        if let Err(error) = pem::read_certificates_pem_or_der("root certificate", path) {
            checker.report(key, credentials(&error));
        }
    }
}
