//! The reader watcher against a real pcscd: card events, and pcscd stopping and coming
//! back without restarting the watcher. One test per binary: libpcsclite reads
//! PCSCLITE_CSOCK_NAME once per process.

// Test code: a broken expectation must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use beid_agent::reader::watcher::{ReaderEvent, Watcher};
use common::Pcscd;

/// The next event, within `limit`.
fn next(events: &Receiver<ReaderEvent>, limit: Duration) -> ReaderEvent {
    let event = events
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no reader event within {limit:?}"));
    event
}

#[test]
fn the_watcher_follows_cards_and_survives_a_pcscd_restart() {
    let mut pcscd = Pcscd::start();
    std::env::set_var("PCSCLITE_CSOCK_NAME", pcscd.socket());
    let (sender, events) = channel();
    let _watcher = Watcher::spawn(sender).unwrap();
    let limit = Duration::from_secs(5);

    assert_eq!(next(&events, limit), ReaderEvent::ServiceUp);
    let added: Vec<ReaderEvent> = (0..2).map(|_| next(&events, limit)).collect();
    assert!(added.contains(&ReaderEvent::ReaderAdded {
        reader: "Virtual PCD 00 00".into()
    }));

    let card = pcscd.insert("alice-2009");
    match next(&events, limit) {
        ReaderEvent::CardInserted { reader, atr } => {
            assert_eq!(reader, "Virtual PCD 00 00");
            assert_eq!(atr[..2], [0x3B, 0x98]);
        }
        other => panic!("{other:?}"),
    }
    card.remove();
    assert_eq!(
        next(&events, limit),
        ReaderEvent::CardRemoved {
            reader: "Virtual PCD 00 00".into()
        }
    );

    // pcscd stops while the watcher waits: it reports the loss and keeps trying.
    let card = pcscd.insert("gen-1.8-ec");
    assert!(matches!(
        next(&events, limit),
        ReaderEvent::CardInserted { .. }
    ));
    pcscd.kill();
    drop(card);
    let mut lost = Vec::new();
    loop {
        let event = next(&events, limit);
        lost.push(event.clone());
        if event == ReaderEvent::ServiceDown {
            break;
        }
    }
    assert!(lost.contains(&ReaderEvent::CardRemoved {
        reader: "Virtual PCD 00 00".into()
    }));
    assert!(lost.contains(&ReaderEvent::ReaderRemoved {
        reader: "Virtual PCD 00 01".into()
    }));

    // pcscd returns: the watcher finds it and its readers, and follows cards again (the
    // simulated card left with the old vpcd socket, as a card leaves a powered-off reader).
    pcscd.launch();
    let back = Instant::now();
    assert_eq!(next(&events, limit), ReaderEvent::ServiceUp);
    let recovered_in = back.elapsed();
    let added: Vec<ReaderEvent> = (0..2).map(|_| next(&events, limit)).collect();
    assert!(added.contains(&ReaderEvent::ReaderAdded {
        reader: "Virtual PCD 00 01".into()
    }));
    let _again = pcscd.insert("alice-2009");
    assert!(matches!(
        next(&events, limit),
        ReaderEvent::CardInserted { .. }
    ));
    // Informational; the recovery time is a benchmark figure.
    eprintln!("watcher recovered {recovered_in:?} after pcscd came back");
}
