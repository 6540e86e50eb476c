//! Another application (the eID viewer, a browser extension) holds the card exclusively:
//! `read` and `diagnose` must say so, and work again once it lets go. Its own binary:
//! libpcsclite reads PCSCLITE_CSOCK_NAME once per process.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json, run, stderr, Pcscd};

#[test]
fn a_card_held_exclusively_by_another_application_is_reported() {
    let pcscd = Pcscd::start();
    std::env::set_var("PCSCLITE_CSOCK_NAME", pcscd.socket());
    let _inserted = pcscd.insert("gen-1.8-ec");
    pcscd.wait_for_card(0);

    let context = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = std::ffi::CString::new("Virtual PCD 00 00").unwrap();
    let other_application = context
        .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
        .unwrap();

    let output = run(pcscd.agent().args(["read", "--trust-test-roots"]));
    assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exclusively"),
        "{}",
        stderr(&output)
    );

    let output = run(pcscd.agent().args(["diagnose", "--json", "--readers-only"]));
    assert_eq!(output.status.code(), Some(12));
    let report = json(&output);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .unwrap()
        .clone();
    assert!(
        check["detail"].as_str().unwrap().contains("exclusively"),
        "{check}"
    );
    assert!(check["hint"].as_str().unwrap().contains("close"), "{check}");

    other_application
        .disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let output = run(pcscd.agent().args(["read", "--trust-test-roots"]));
    assert!(output.status.success(), "{}", stderr(&output));
}
