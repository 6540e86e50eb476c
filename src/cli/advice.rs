//! `beid-agent advice --use-case ID`: read the card, verify it, ask the rule service, and say
//! what came back and how long each step took. Exit 0 only when a decision (eligible or not
//! eligible) was obtained.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::exit::{sentence, Failure};
use super::json::{self, JsonFlag};
use super::read::{choose_reader, pcscd, seconds};
use super::settings::{engine_settings, load_config};
use super::trust_args::TrustArgs;
use crate::advice::{Decision, Language};
use crate::session::{
    decide, on_card, read_and_verify, CardRead, EngineSettings, Question, Verifier,
};
use crate::trust::TrustStore;

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
    #[command(flatten)]
    pub(super) output: JsonFlag,
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

/// The settings a run needs: the configuration's, or the embedded default's.
fn settings(args: &AdviceArgs) -> Result<EngineSettings, Failure> {
    if args.simulate {
        let demo = EngineSettings::simulated(None).map_err(|e| Failure::Other(sentence(&e)))?;
        let store = args.trust.apply(TrustStore::production())?;
        let store = store
            .with_test_roots()
            .map_err(|e| Failure::Other(sentence(&e)))?;
        return Ok(EngineSettings {
            verifier: Verifier::new(store, None),
            ..demo
        });
    }
    let config = load_config(args.config.as_deref())?;
    let store = args.trust.apply(
        config
            .trust_store()
            .map_err(|e| Failure::Other(sentence(&e)))?,
    )?;
    engine_settings(&config, store)
}

pub fn run(args: &AdviceArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let EngineSettings {
        verifier,
        advice: service,
        catalogue,
        device_id,
        channel,
        policy,
        authenticate_chip: authenticate,
        ..
    } = settings(args)?;
    let use_case = catalogue.get(&args.use_case).cloned().ok_or_else(|| {
        Failure::Other(format!(
            "unknown use case {:?}; known: {}",
            args.use_case,
            catalogue
                .iter()
                .map(|u| u.id().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let verifier = Arc::new(verifier);
    let reader = choose_reader(args.reader.as_deref(), seconds(args.wait))?;
    let job = on_card(&pcscd(), &reader, seconds(args.timeout), move |card| {
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
        channel,
        device_id: &device_id,
        today: time::OffsetDateTime::now_utc().date(),
    };
    let asked = Instant::now();
    let advice = runtime.block_on(decide(service.as_ref(), &question, policy));
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
    if args.output.json {
        json::print(&report)?;
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
