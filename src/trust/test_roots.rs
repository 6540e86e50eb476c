//! The TEST roots of the specimen and generated test cards, compiled in so that demos and
//! test benches need no files, but trusted only when asked for explicitly
//! (`--trust-test-roots`, `serve --simulate`): never by default.

use super::error::TrustError;
use super::roots::TrustStore;

/// "eID test Root CA" (specimen Alice cards) and the beid-agent TEST roots of the
/// generated applet 1.7 and 1.8 cards (`fixtures/test-pki/`).
const TEST_ROOTS: [&[u8]; 3] = [
    include_bytes!("../../fixtures/test-pki/eid-test-root-ca.crt"),
    include_bytes!("../../fixtures/test-pki/gen-root-ca4.der"),
    include_bytes!("../../fixtures/test-pki/gen-root-ca6.der"),
];

impl TrustStore {
    /// Adds the test roots. Cards signed under them are fake by definition: use this only
    /// for simulation and tests.
    pub fn with_test_roots(self) -> Result<Self, TrustError> {
        tracing::warn!("TEST roots trusted: cards of the test PKI will count as authentic");
        TEST_ROOTS
            .iter()
            .try_fold(self, |store, der| store.with_extra_root(der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_roots_load_and_are_not_in_production() {
        let production = TrustStore::production();
        let with_tests = TrustStore::production().with_test_roots().unwrap();
        assert_eq!(
            with_tests.anchors().count(),
            production.anchors().count() + 3
        );
        assert!(production
            .anchors()
            .all(|a| !a.name().contains("test") && !a.name().contains("TEST")));
    }
}
