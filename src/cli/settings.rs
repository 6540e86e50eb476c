//! From the configuration file to the engine's settings: one place for `serve` and
//! `advice`, so both judge cards and ask the rule service the same way.

use std::path::{Path, PathBuf};

use super::exit::{sentence, Failure};
use crate::advice::{self, Channel};
use crate::config::Config;
use crate::session::{CardPolicy, EngineSettings, KioskSettings, Verifier};
use crate::trust::TrustStore;

/// Where the service's configuration lives unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/beid-agent/config.toml";

/// The named configuration file, or the default one; a missing file is a clear error
/// (never a silent fall-back to the simulated rule service).
pub fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    let path = path.map_or_else(|| PathBuf::from(DEFAULT_CONFIG), Path::to_path_buf);
    if !path.exists() {
        return Err(Failure::Other(format!(
            "no configuration at {}: pass --config FILE, or --simulate for a demo",
            path.display()
        )));
    }
    Config::load(&path).map_err(|e| Failure::Other(sentence(&e)))
}

/// The engine's settings from a configuration, judging cards against `store`.
pub fn engine_settings(config: &Config, store: TrustStore) -> Result<EngineSettings, Failure> {
    let failure = |e: &dyn std::error::Error| Failure::Other(sentence(e));
    let upstream = config.upstream.settings().map_err(|e| failure(&e))?;
    let channel = config.device.channel;
    Ok(EngineSettings {
        verifier: Verifier::new(store, config.trust.rrn_key_cache.clone()),
        advice: advice::build(&upstream).map_err(|e| failure(&e))?,
        catalogue: config.catalogue().map_err(|e| failure(&e))?,
        device_id: config.device.id.clone(),
        channel,
        policy: CardPolicy {
            allow_expired_cards: config.policy.allow_expired_cards,
        },
        authenticate_chip: config
            .policy
            .card_authentication
            .applies(channel == Channel::Kiosk),
        auto_advice: config.api.auto_advice.clone(),
        audit: None,
        counter: crate::session::CounterCatalogue {
            deviation_reasons: config.deviation_reasons().to_vec(),
            reason_codes: config.reason_codes().clone(),
        },
        kiosk: KioskSettings {
            speech_output: config.speech_output(),
        },
    })
}
