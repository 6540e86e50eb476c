//! What the kiosk page needs from the device's configuration (`[kiosk]`), carried with the
//! engine's settings so the API can hand it to the page.

use serde::{Deserialize, Serialize};

/// Where the kiosk speaks the outcome for blind and low-vision citizens (EN 301 549
/// 5.1.3.9: private speech goes to a headset unless the citizen chooses otherwise).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SpeechOutput {
    /// Only into the headset the citizen plugs in: nobody else hears the outcome.
    #[default]
    Headset,
    /// Through the kiosk's speaker, for everyone around to hear.
    Speaker,
    /// Never spoken: the page says the answer is on the screen instead.
    None,
}

/// The kiosk page's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KioskSettings {
    /// Where the outcome is spoken.
    pub speech_output: SpeechOutput,
}
