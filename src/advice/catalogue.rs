//! The use-case catalogue: which questions this agent may ask, under which upstream rule name,
//! with which labels, on which channels. Configuration, not code.

use serde::{Deserialize, Serialize};

use super::error::AdviceError;
use super::model::Channel;

/// A language the labels are given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Dutch
    Nl,
    /// French
    Fr,
    /// German
    De,
    /// English
    En,
}

/// A use case's label in each language (all four are required: the kiosk speaks the
/// citizen's language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// Dutch
    pub nl: String,
    /// French
    pub fr: String,
    /// German
    pub de: String,
    /// English
    pub en: String,
}

impl Language {
    /// Its code, as in configuration keys and `Accept-Language`: `nl`, `fr`, `de`, `en`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Nl => "nl",
            Self::Fr => "fr",
            Self::De => "de",
            Self::En => "en",
        }
    }
}

impl Labels {
    /// The languages whose label is blank: every language needs one.
    pub fn blank(&self) -> impl Iterator<Item = Language> + '_ {
        [Language::Nl, Language::Fr, Language::De, Language::En]
            .into_iter()
            .filter(|language| self.get(*language).trim().is_empty())
    }

    /// The label in this language.
    pub fn get(&self, language: Language) -> &str {
        match language {
            Language::Nl => &self.nl,
            Language::Fr => &self.fr,
            Language::De => &self.de,
            Language::En => &self.en,
        }
    }
}

/// One use case, as written in `[[use_cases]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseCase {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    labels: Labels,
    #[serde(default = "all_channels")]
    channels: Vec<Channel>,
}

fn all_channels() -> Vec<Channel> {
    vec![Channel::Counter, Channel::Kiosk]
}

impl UseCase {
    /// A use case; `rule` defaults to the id.
    pub fn new(
        id: impl Into<String>,
        rule: Option<String>,
        labels: Labels,
        channels: Vec<Channel>,
    ) -> Self {
        Self {
            id: id.into(),
            rule,
            labels,
            channels,
        }
    }

    /// The agent's id, used by the local API (`{"useCase": id}`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The upstream rule name sent as `useCase`; the id unless configured otherwise.
    pub fn rule(&self) -> &str {
        self.rule.as_deref().unwrap_or(&self.id)
    }

    /// The labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The channels this use case is offered on.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Whether this use case may be asked from this channel.
    pub fn allows(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }
}

/// The use cases this agent knows, in configuration order, ids unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    use_cases: Vec<UseCase>,
}

impl Catalogue {
    /// A catalogue from configured use cases, checked: at least one, ids unique and made of
    /// `a-z 0-9 -`, rule names and labels not blank, at least one channel each.
    pub fn new(use_cases: Vec<UseCase>) -> Result<Self, AdviceError> {
        let problems = Self::problems(&use_cases);
        match problems.into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(Self { use_cases }),
        }
    }

    /// Everything wrong with these use cases, each naming the offending entry and field.
    pub fn problems(use_cases: &[UseCase]) -> Vec<AdviceError> {
        let mut problems = Vec::new();
        if use_cases.is_empty() {
            problems.push(AdviceError::EmptyCatalogue);
        }
        for (index, use_case) in use_cases.iter().enumerate() {
            let mut bad = |field: &'static str, why: &'static str| {
                problems.push(AdviceError::UseCase { index, field, why });
            };
            let id_ok = !use_case.id.is_empty()
                && use_case
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                bad("id", "must be non-empty and made of a-z, 0-9 and -");
            } else if use_cases[..index].iter().any(|u| u.id == use_case.id) {
                bad("id", "is used by an earlier use case");
            }
            if let Some(rule) = &use_case.rule {
                if rule.trim().is_empty() || rule.chars().any(char::is_whitespace) {
                    bad("rule", "must be non-empty and without spaces");
                }
            }
            for language in use_case.labels.blank() {
                let field = match language {
                    Language::Nl => "labels.nl",
                    Language::Fr => "labels.fr",
                    Language::De => "labels.de",
                    Language::En => "labels.en",
                };
                bad(field, "must not be blank");
            }
            if use_case.channels.is_empty() {
                bad("channels", "must name at least one channel");
            }
        }
        problems
    }

    /// The shipped defaults: `uitpas-kansentarief`, `lez-free-registration`,
    /// `lez-social-tariff`, on both channels, rule name = id.
    pub fn defaults() -> Self {
        let labels = |nl: &str, fr: &str, de: &str, en: &str| Labels {
            nl: nl.into(),
            fr: fr.into(),
            de: de.into(),
            en: en.into(),
        };
        Self {
            use_cases: vec![
                UseCase::new(
                    "uitpas-kansentarief",
                    None,
                    labels(
                        "UiTPAS met kansentarief",
                        "UiTPAS avec tarif réduit",
                        "UiTPAS mit Ermäßigungstarif",
                        "UiTPAS with reduced rate",
                    ),
                    all_channels(),
                ),
                UseCase::new(
                    "lez-free-registration",
                    None,
                    labels(
                        "Gratis LEZ-registratie",
                        "Enregistrement LEZ gratuit",
                        "Kostenlose LEZ-Registrierung",
                        "Free LEZ registration",
                    ),
                    all_channels(),
                ),
                UseCase::new(
                    "lez-social-tariff",
                    None,
                    labels(
                        "LEZ sociaal tarief",
                        "LEZ tarif social",
                        "LEZ Sozialtarif",
                        "LEZ social tariff",
                    ),
                    all_channels(),
                ),
            ],
        }
    }

    /// The use case with this id.
    pub fn get(&self, id: &str) -> Option<&UseCase> {
        self.use_cases.iter().find(|u| u.id == id)
    }

    /// All use cases, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &UseCase> {
        self.use_cases.iter()
    }

    /// How many use cases there are.
    pub fn len(&self) -> usize {
        self.use_cases.len()
    }

    /// Never true for a checked catalogue; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.use_cases.is_empty()
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ship_the_three_use_cases_on_both_channels() {
        let catalogue = Catalogue::default();
        let ids: Vec<_> = catalogue.iter().map(UseCase::id).collect();
        assert_eq!(
            ids,
            [
                "uitpas-kansentarief",
                "lez-free-registration",
                "lez-social-tariff"
            ]
        );
        let uitpas = catalogue.get("uitpas-kansentarief").unwrap();
        assert_eq!(uitpas.rule(), "uitpas-kansentarief");
        assert!(uitpas.allows(Channel::Kiosk) && uitpas.allows(Channel::Counter));
        assert_eq!(
            uitpas.labels().get(Language::Fr),
            "UiTPAS avec tarif réduit"
        );
        assert!(Catalogue::problems(&catalogue.use_cases).is_empty());
    }

    #[test]
    fn configured_use_cases_are_checked() {
        let toml = r#"
            [[use_cases]]
            id = "lez-social-tariff"
            rule = "lez_social_v2"
            labels = { nl = "a", fr = "b", de = "c", en = "d" }
            channels = ["counter"]

            [[use_cases]]
            id = "lez-social-tariff"
            labels = { nl = "a", fr = " ", de = "c", en = "d" }
            channels = []
        "#;
        #[derive(Deserialize)]
        struct File {
            use_cases: Vec<UseCase>,
        }
        let file: File = toml::from_str(toml).unwrap();
        assert_eq!(file.use_cases[0].rule(), "lez_social_v2");
        assert!(!file.use_cases[0].allows(Channel::Kiosk));
        let problems: Vec<String> = Catalogue::problems(&file.use_cases)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "use_cases[1].id is used by an earlier use case",
                "use_cases[1].labels.fr must not be blank",
                "use_cases[1].channels must name at least one channel",
            ]
        );
        assert!(Catalogue::new(file.use_cases).is_err());
        assert!(matches!(
            Catalogue::new(Vec::new()),
            Err(AdviceError::EmptyCatalogue)
        ));
    }
}
