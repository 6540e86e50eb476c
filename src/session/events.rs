//! What the engine tells its subscribers (the API's event stream): one tagged enum, ids and
//! states only, never personal data. Each published event carries a sequence number, so a
//! subscriber that resynchronises from a snapshot knows which events the snapshot already
//! holds.

use std::sync::OnceLock;

use serde::Serialize;
use uuid::Uuid;

use crate::advice::Decision;
use crate::beid::CardFault;
use crate::reader::ReaderFault;
use beid_core::contract::StaffDecision;

/// One thing that happened. The JSON form is `{"type": "<name>", ...fields}`; the stream's
/// event name is [`EngineEvent::name`], the same as `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EngineEvent {
    /// A reader appeared (at start, or plugged in).
    ReaderAdded { reader: String },
    /// A reader went away; its session, if any, ended first.
    ReaderRemoved { reader: String },
    /// A card was inserted: its session starts, its read begins.
    CardInserted { reader: String, session: Uuid },
    /// The read finished; `authentic` is the verdict on the card's data.
    CardRead {
        reader: String,
        session: Uuid,
        authentic: bool,
    },
    /// An advice was decided for the session and use case.
    #[serde(rename_all = "camelCase")]
    Advice {
        reader: String,
        session: Uuid,
        use_case: String,
        decision: Decision,
    },
    /// The clerk recorded the final decision for the session and use case.
    #[serde(rename_all = "camelCase")]
    Outcome {
        reader: String,
        session: Uuid,
        use_case: String,
        decision: StaffDecision,
    },
    /// The card left: the session ended, its work was cancelled.
    CardRemoved { reader: String, session: Uuid },
    /// The session's read failed.
    CardError {
        reader: String,
        session: Uuid,
        code: CardFault,
    },
    /// pcscd answers again after it was down (and once at start): a page that showed
    /// `pcscd_down` clears it even when no reader comes back with it.
    PcscdUp,
    /// A reader (or pcscd, without a reader) cannot be used.
    ReaderError {
        #[serde(skip_serializing_if = "Option::is_none")]
        reader: Option<String>,
        code: ReaderFault,
    },
}

impl EngineEvent {
    /// The event's name on the stream (`card-inserted`, ...). Never `error`: EventSource
    /// delivers an event of that name to its own `onerror`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ReaderAdded { .. } => "reader-added",
            Self::ReaderRemoved { .. } => "reader-removed",
            Self::CardInserted { .. } => "card-inserted",
            Self::CardRead { .. } => "card-read",
            Self::Advice { .. } => "advice",
            Self::Outcome { .. } => "outcome",
            Self::CardRemoved { .. } => "card-removed",
            Self::CardError { .. } => "card-error",
            Self::PcscdUp => "pcscd-up",
            Self::ReaderError { .. } => "reader-error",
        }
    }

    /// The card session the event is about, if any.
    pub fn session(&self) -> Option<Uuid> {
        match self {
            Self::CardInserted { session, .. }
            | Self::CardRead { session, .. }
            | Self::Advice { session, .. }
            | Self::Outcome { session, .. }
            | Self::CardRemoved { session, .. }
            | Self::CardError { session, .. } => Some(*session),
            _ => None,
        }
    }
}

/// An event as published: its sequence number (from 1, per agent run) and the event,
/// serialised once however many streams send it.
#[derive(Debug)]
pub struct Published {
    pub id: u64,
    pub event: EngineEvent,
    json: OnceLock<String>,
}

impl Published {
    pub(super) fn new(id: u64, event: EngineEvent) -> Self {
        Self {
            id,
            event,
            json: OnceLock::new(),
        }
    }

    /// The event's JSON (ids and states only).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).unwrap_or_else(|_| "{}".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::ReaderFault;

    #[test]
    fn events_serialise_with_their_name_as_type_and_no_more() {
        let session = Uuid::nil();
        let advice = EngineEvent::Advice {
            reader: "0a1b2c3d".into(),
            session,
            use_case: "uitpas-kansentarief".into(),
            decision: Decision::NotEligible,
        };
        assert_eq!(
            serde_json::to_value(&advice).unwrap(),
            serde_json::json!({"type": "advice", "reader": "0a1b2c3d", "session": session,
                               "useCase": "uitpas-kansentarief", "decision": "not_eligible"})
        );
        let error = EngineEvent::CardError {
            reader: "r".into(),
            session,
            code: CardFault::Reader(ReaderFault::CardRemoved),
        };
        assert_eq!(error.name(), "card-error");
        assert_eq!(
            serde_json::to_value(&error).unwrap()["code"],
            serde_json::json!("card_removed")
        );
        let down = EngineEvent::ReaderError {
            reader: None,
            code: ReaderFault::PcscdDown,
        };
        assert_eq!(
            serde_json::to_value(&down).unwrap(),
            serde_json::json!({"type": "reader-error", "code": "pcscd_down"})
        );
        let up = EngineEvent::PcscdUp;
        assert_eq!(
            serde_json::to_value(&up).unwrap(),
            serde_json::json!({"type": "pcscd-up"})
        );
        for event in [advice, error, down, up] {
            assert_eq!(
                serde_json::to_value(&event).unwrap()["type"],
                serde_json::json!(event.name())
            );
        }
    }
}
