//! `beid-agent advice --use-case ID`: read the card, verify it, ask the rule service, and say
//! what came back and how long each step took. Exit 0 only when a decision (eligible or not
//! eligible) was obtained.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::exit::{sentence, Failure};
use super::read::{choose_reader, seconds};
use super::trust_args::TrustArgs;
use crate::advice::{self, Channel, Decision, Language, UpstreamSettings};
use crate::config::Config;
use crate::session::{
    decide, read_and_verify, run_on_card, CardAuthentication, CardPolicy, CardRead, Question,
    Verifier,
};
use crate::trust::TrustStore;

/// Where the service's configuration lives unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/beid-agent/config.toml";

#[derive(Debug, clap::Args)]
pub struct AdviceArgs {
    /// The use case, e.g. uitpas-kansentarief, lez-free-registration, lez-social-tariff.
    #[arg(long)]
    use_case: String,
    /// The reader to use; without it, the one reader that holds a card.
    #[arg(long)]
    reader: Option<String>,
    /// The configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo without configuration: the simulated rule service and the TEST roots.
    #[arg(long, conflicts_with = "config")]
    simulate: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Wait up to this many seconds for a card to be inserted.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    wait: f64,
    /// Give up when the card has not answered within this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
}

/// What `advice --json` prints (README).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdviceReport {
    use_case: String,
    decision: Decision,
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_until: Option<String>,
    authentic: bool,
    apdus: u32,
    timings: Timings,
}

#[derive(Debug, Serialize)]
struct Timings {
    card_ms: f64,
    upstream_ms: f64,
    total_ms: f64,
}

/// The pieces a run needs, from the configuration file or the demo defaults.
struct Setup {
    service: Arc<dyn advice::AdviceService>,
    catalogue: advice::Catalogue,
    store: TrustStore,
    rrn_cache: Option<PathBuf>,
    device_id: String,
    channel: Channel,
    policy: CardPolicy,
    card_authentication: CardAuthentication,
}

fn setup(args: &AdviceArgs) -> Result<Setup, Failure> {
    if args.simulate {
        let settings = UpstreamSettings::Simulated(advice::SimulatedSettings::default());
        return Ok(Setup {
            service: advice::build(&settings).map_err(|e| Failure::Other(sentence(&e)))?,
            catalogue: advice::Catalogue::defaults(),
            store: TrustArgs {
                trust_test_roots: true,
                ..args.trust.clone()
            }
            .store()?,
            rrn_cache: None,
            device_id: "demo".into(),
            channel: Channel::Counter,
            policy: CardPolicy::default(),
            card_authentication: CardAuthentication::default(),
        });
    }
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if !path.exists() {
        return Err(Failure::Other(format!(
            "no configuration at {}: pass --config FILE, or --simulate for a demo",
            path.display()
        )));
    }
    let config = Config::load(&path).map_err(|e| Failure::Other(sentence(&e)))?;
    let store = args.trust.apply(
        config
            .trust_store()
            .map_err(|e| Failure::Other(sentence(&e)))?,
    )?;
    let settings = config
        .upstream
        .settings()
        .map_err(|e| Failure::Other(sentence(&e)))?;
    Ok(Setup {
        service: advice::build(&settings).map_err(|e| Failure::Other(sentence(&e)))?,
        catalogue: config
            .catalogue()
            .map_err(|e| Failure::Other(sentence(&e)))?,
        store,
        rrn_cache: config.trust.rrn_key_cache.clone(),
        device_id: config.device.id.clone(),
        channel: config.device.channel,
        policy: CardPolicy {
            allow_expired_cards: config.policy.allow_expired_cards,
        },
        card_authentication: config.policy.card_authentication,
    })
}

pub fn run(args: &AdviceArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let setup = setup(args)?;
    let use_case = setup
        .catalogue
        .get(&args.use_case)
        .cloned()
        .ok_or_else(|| {
            Failure::Other(format!(
                "unknown use case {:?}; known: {}",
                args.use_case,
                setup
                    .catalogue
                    .iter()
                    .map(|u| u.id().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let verifier = Arc::new(Verifier::new(setup.store, setup.rrn_cache));
    let authenticate = setup
        .card_authentication
        .applies(setup.channel == Channel::Kiosk);
    let reader = choose_reader(args.reader.as_deref(), seconds(args.wait))?;
    let job = run_on_card(&reader, seconds(args.timeout), move |card| {
        read_and_verify(card, &verifier, authenticate)
    })?;
    let card_time = job.elapsed;
    let CardRead {
        files,
        authenticity,
        stats,
        ..
    } = job.result;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))?;
    let question = Question {
        identity: &files.identity,
        authentic: authenticity.authentic,
        use_case: &use_case,
        channel: setup.channel,
        device_id: &setup.device_id,
        today: time::OffsetDateTime::now_utc().date(),
    };
    let asked = Instant::now();
    let advice = runtime.block_on(decide(setup.service.as_ref(), &question, setup.policy));
    let upstream_time = asked.elapsed();
    let report = AdviceReport {
        use_case: use_case.id().to_owned(),
        decision: advice.decision(),
        reason: advice.reason().map(|r| r.code()),
        reason_code: advice.reason_code().map(str::to_owned),
        valid_until: advice.valid_until().map(|d| d.to_string()),
        authentic: authenticity.authentic,
        apdus: stats.apdus,
        timings: Timings {
            card_ms: millis(card_time),
            upstream_ms: millis(upstream_time),
            total_ms: millis(started.elapsed()),
        },
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Other(format!("cannot write JSON: {e}")))?;
        out!("{json}");
    } else {
        let verdict = match report.decision {
            Decision::Eligible => "ELIGIBLE",
            Decision::NotEligible => "NOT ELIGIBLE",
            Decision::Unknown => "UNKNOWN: check by hand",
        };
        out!(
            "Advice:   {verdict} — {}",
            use_case.labels().get(Language::En)
        );
        if let Some(reason) = report.reason {
            out!("Reason:   {reason}");
        }
        out!(
            "Timings:  card {:.1} ms ({} APDUs), rule service {:.1} ms, total {:.1} ms",
            report.timings.card_ms,
            report.apdus,
            report.timings.upstream_ms,
            report.timings.total_ms
        );
    }
    match report.decision {
        Decision::Eligible | Decision::NotEligible => Ok(()),
        Decision::Unknown => Err(Failure::NoDecision),
    }
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}
