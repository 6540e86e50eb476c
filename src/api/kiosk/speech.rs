//! The kiosk's own voice: one pre-rendered clip per spoken message and language, made from
//! the page's message catalogue (`assets/kiosk/messages.json`) by `scripts/kiosk-speech.sh`
//! with espeak-ng, and embedded in the binary. Chromium's `speechSynthesis` has no voices on
//! many Linux kiosks, and none headless; clips also sound the same on every kiosk.
//!
//! The manifest (`assets/kiosk/speech/manifest.json`) records the hash of the text each clip
//! was made from and how it was made, so a changed text, voice or rate without new clips
//! fails the tests here instead of speaking yesterday's words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The catalogue as the page gets it (spliced into its HTML).
pub const MESSAGES: &str = include_str!("../../../assets/kiosk/messages.json");
/// What the clips were made from.
pub const MANIFEST: &str = include_str!("../../../assets/kiosk/speech/manifest.json");

/// The espeak-ng voice for each page language: Belgian French; espeak-ng has one Dutch.
pub const VOICES: [(&str, &str); 4] =
    [("nl", "nl"), ("fr", "fr-be"), ("de", "de"), ("en", "en-gb")];
/// Slower than espeak-ng's 175: the kiosk speaks to citizens who may find the words hard.
pub const WORDS_PER_MINUTE: u32 = 145;
/// Mono Opus at this rate keeps speech clear and every clip a few kilobytes.
pub const OPUS_KBPS: u32 = 16;

/// `assets/kiosk/messages.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    /// The page's languages, in the order of its language buttons.
    pub languages: Vec<String>,
    /// Message keys that are shown but never spoken (titles, button labels, the simulator).
    pub unspoken: Vec<String>,
    /// language → key → text.
    pub messages: BTreeMap<String, BTreeMap<String, String>>,
    /// The default use cases' labels (`Catalogue::defaults()` of the advice layer): use case
    /// → language → label. The page speaks a label only when the configured one is this.
    #[serde(rename = "useCases")]
    pub use_cases: BTreeMap<String, BTreeMap<String, String>>,
    /// language → word → how the synthesiser should hear it (`UiTPAS` is Dutch, in every
    /// language).
    pub pronounce: BTreeMap<String, BTreeMap<String, String>>,
}

/// One clip the page may play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub language: String,
    /// The clip's name: the message key, or `use-case.<id>` for a label.
    pub clip: String,
    /// What the synthesiser says (the shown text, respelled per `pronounce`).
    pub spoken: String,
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub fn embedded() -> Result<Self, serde_json::Error> {
        serde_json::from_str(MESSAGES)
    }

    /// Every clip the page may play, by language then clip name.
    pub fn lines(&self) -> Vec<Line> {
        let mut lines = Vec::new();
        for language in &self.languages {
            let messages = self.messages.get(language).into_iter().flatten();
            let spoken = messages.filter(|(key, _)| !self.unspoken.contains(key));
            let labels = self.use_cases.iter().filter_map(|(id, labels)| {
                Some((format!("use-case.{id}"), labels.get(language)?.clone()))
            });
            for (clip, text) in spoken
                .map(|(key, text)| (key.clone(), text.clone()))
                .chain(labels)
            {
                lines.push(Line {
                    language: language.clone(),
                    spoken: self.respell(language, &text),
                    clip,
                });
            }
        }
        lines.sort_by(|a, b| (&a.language, &a.clip).cmp(&(&b.language, &b.clip)));
        lines
    }

    fn respell(&self, language: &str, text: &str) -> String {
        let words = self.pronounce.get(language).into_iter().flatten();
        words.fold(text.to_owned(), |text, (word, said)| {
            text.replace(word, said)
        })
    }
}

/// `assets/kiosk/speech/manifest.json`: how the clips were made, and from which texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// language → espeak-ng voice.
    pub voices: BTreeMap<String, String>,
    pub words_per_minute: u32,
    pub opus_kbps: u32,
    /// language → clip → entry.
    pub clips: BTreeMap<String, BTreeMap<String, ClipEntry>>,
}

/// One clip in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClipEntry {
    /// SHA-256 of the spoken text (UTF-8), hex.
    pub text_sha256: String,
    /// SHA-256 of the clip file, hex: a clip replaced by hand is noticed too.
    pub clip_sha256: String,
    pub bytes: usize,
}

impl Manifest {
    /// The committed manifest.
    pub fn embedded() -> Result<Self, serde_json::Error> {
        serde_json::from_str(MANIFEST)
    }

    /// An empty manifest with today's voice settings.
    pub fn current_settings() -> Self {
        Self {
            voices: VOICES
                .iter()
                .map(|(language, voice)| ((*language).to_owned(), (*voice).to_owned()))
                .collect(),
            words_per_minute: WORDS_PER_MINUTE,
            opus_kbps: OPUS_KBPS,
            clips: BTreeMap::new(),
        }
    }

    /// Whether the clip `bytes` was made for `line` with these settings.
    pub fn holds(&self, line: &Line, bytes: &[u8]) -> bool {
        self.clips
            .get(&line.language)
            .and_then(|clips| clips.get(&line.clip))
            .is_some_and(|entry| {
                entry.text_sha256 == sha256_hex(line.spoken.as_bytes())
                    && entry.clip_sha256 == sha256_hex(bytes)
                    && entry.bytes == bytes.len()
            })
    }
}

/// SHA-256, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::clips::CLIPS;
    use super::*;
    use crate::advice::{Catalogue as UseCases, Language};

    fn catalogue() -> Catalogue {
        Catalogue::embedded().unwrap()
    }

    #[test]
    fn every_language_has_every_message_and_nothing_else() {
        let catalogue = catalogue();
        assert_eq!(catalogue.languages, ["nl", "fr", "de", "en"]);
        let keys =
            |language: &str| -> BTreeSet<&String> { catalogue.messages[language].keys().collect() };
        for language in &catalogue.languages {
            assert_eq!(keys(language), keys("nl"), "{language} differs from nl");
            for (key, text) in &catalogue.messages[language] {
                assert!(!text.trim().is_empty(), "{language} {key} is blank");
            }
        }
        assert_eq!(catalogue.messages.len(), catalogue.languages.len());
        for key in &catalogue.unspoken {
            assert!(keys("nl").contains(key), "unspoken {key} is no message");
        }
    }

    #[test]
    fn the_catalogue_knows_the_default_use_cases_labels() {
        let catalogue = catalogue();
        let defaults = UseCases::defaults();
        assert_eq!(catalogue.use_cases.len(), defaults.len());
        for use_case in defaults.iter() {
            let labels = &catalogue.use_cases[use_case.id()];
            for language in [Language::Nl, Language::Fr, Language::De, Language::En] {
                assert_eq!(
                    labels[language.code()],
                    use_case.labels().get(language),
                    "{} in {}: the page would not speak the label",
                    use_case.id(),
                    language.code()
                );
            }
        }
    }

    #[test]
    fn every_spoken_message_in_every_language_has_a_clip_made_from_its_text() {
        let manifest = Manifest::embedded().unwrap();
        let made_now = Manifest::current_settings();
        assert_eq!(
            (
                &manifest.voices,
                manifest.words_per_minute,
                manifest.opus_kbps
            ),
            (
                &made_now.voices,
                made_now.words_per_minute,
                made_now.opus_kbps
            ),
            "the clips were made with other voice settings: run scripts/kiosk-speech.sh --all"
        );
        let lines = catalogue().lines();
        assert_eq!(
            lines.len(),
            4 * 31,
            "28 spoken messages and 3 labels per language"
        );
        let mut stale = Vec::new();
        for line in &lines {
            let clip = CLIPS
                .iter()
                .find(|(language, clip, _)| *language == line.language && *clip == line.clip);
            match clip {
                Some((_, _, bytes)) if manifest.holds(line, bytes) => {
                    assert!(bytes.starts_with(b"OggS"), "{line:?} is not Ogg");
                }
                _ => stale.push(format!("{}/{}", line.language, line.clip)),
            }
        }
        assert!(
            stale.is_empty(),
            "missing or stale clips (run scripts/kiosk-speech.sh): {stale:?}"
        );
    }

    #[test]
    fn no_clip_is_left_over_from_a_removed_message() {
        let wanted: BTreeSet<(String, String)> = catalogue()
            .lines()
            .into_iter()
            .map(|line| (line.language, line.clip))
            .collect();
        let embedded: BTreeSet<(String, String)> = CLIPS
            .iter()
            .map(|(language, clip, _)| ((*language).to_owned(), (*clip).to_owned()))
            .collect();
        assert_eq!(embedded, wanted);
        let listed: BTreeSet<(String, String)> = Manifest::embedded()
            .unwrap()
            .clips
            .iter()
            .flat_map(|(language, clips)| clips.keys().map(|clip| (language.clone(), clip.clone())))
            .collect();
        assert_eq!(listed, wanted);
    }

    #[test]
    fn pronunciations_change_only_what_is_spoken() {
        let lines = catalogue().lines();
        let said = |language: &str, clip: &str| {
            lines
                .iter()
                .find(|l| l.language == language && l.clip == clip)
                .unwrap()
                .spoken
                .clone()
        };
        assert_eq!(
            said("nl", "use-case.uitpas-kansentarief"),
            "uitpas met kansentarief"
        );
        assert_eq!(
            said("en", "idle.title"),
            "Put your ID card in the card reader"
        );
    }
}
