//! Sends a few hundred requests through the example portfolio while some models misbehave, and shows
//! what the execution layer did about it: retries, fallbacks, circuit breakers and the cost of it all.
//!
//! The portfolio is `examples/router.toml`, served by the simulated provider (seeded, no network, no
//! keys) with injected faults:
//!
//! - `gemini-2.0-flash`, the cheap first choice of chat, translation and summaries, fails 30% of
//!   calls with a 500, 10% with a 429 (retry-after 1 s) and 5% with a timeout (after 30 s);
//! - `gpt-4.1`, the first choice of code and math, is hard down: every call is a 500, so its circuit
//!   opens;
//! - every other model, `gpt-4o-mini` (the configured fallback model) among them, is healthy.
//!
//! The requests run 16 at a time on a paused tokio clock: simulated latencies, timeouts, backoff and
//! circuit cool-downs all pass in virtual time, so the run takes well under a second of wall time.
//! Every duration printed is simulated time, apart from the wall time on the last line.
//!
//! ```text
//! cargo run --example fallbacks
//! cargo run --example fallbacks -- --default-health   # the default circuit-breaker settings
//! ```
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use switchyard::execute::health::{CircuitState, HealthConfig};
use switchyard::policy::RejectReason;
use switchyard::{
    Attempt, Decision, Error, ErrorKind, ExecutionConfig, Observer, Request, Response, RouterConfig, SimulatedModel,
    SimulatedProvider,
};

/// How many requests are sent, and how many are in flight at once.
const REQUESTS: usize = 400;
const CONCURRENCY: usize = 16;

const FLAKY: &str = "gemini-2.0-flash";
const DOWN: &str = "gpt-4.1";

fn main() {
    // A paused clock needs the current-thread runtime; tokio's `test-util` feature (a dev-dependency of
    // this crate) provides it.
    if let Err(e) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(try_main()).map_err(|e| e.to_string()))
    {
        eprintln!("fallbacks: {e}");
        std::process::exit(1);
    }
}

async fn try_main() -> switchyard::Result<()> {
    let config = RouterConfig::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/router.toml"))?;
    let provider = SimulatedProvider::new("sim")
        .seed(42)
        // Real-time latencies from the catalog's profiles; the paused clock makes them free.
        .time_scale(1.0)
        .model(FLAKY, SimulatedModel::healthy().with_failures(0.30, 0.10, 0.05))
        .model(DOWN, SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0));
    let decisions = Arc::new(Mutex::new(Vec::new()));
    // The default breaker trips at 50% failures over at least 10 calls. A model failing 45% of its
    // calls then trips by chance within its first few dozen calls, and a half-open circuit needs 3
    // probe successes in a row to close, so it stays out of rotation. A looser threshold leaves the
    // flaky model to retries and live statistics, and still trips the hard-down one. Pass
    // `--default-health` to see the defaults instead.
    let health = if std::env::args().any(|a| a == "--default-health") {
        HealthConfig::new()
    } else {
        HealthConfig::new().with_failure_rate(0.7).with_min_requests(20)
    };
    let router = config
        .builder()?
        .provider(provider)
        .execution(ExecutionConfig::new().with_health(health))
        .observer(Decisions(decisions.clone()))
        .build()?;

    let exec = router.execution();
    println!(
        "switchyard fallbacks: {REQUESTS} requests, {CONCURRENCY} at a time, over {} models",
        router.catalog().len()
    );
    println!("Injected faults: `{FLAKY}` 30% 500 / 10% 429 / 5% timeout; `{DOWN}` 100% 500; the rest healthy.");
    println!(
        "Retries: {} per model, {} attempts per request. Circuit breaker: trips at {:.0}% failures over at least {} calls,\n\
         opens for {} s, doubling on each re-open.\n",
        exec.retry.max_retries_per_model,
        exec.retry.max_attempts,
        exec.health.failure_rate * 100.0,
        exec.health.min_requests,
        exec.health.open_for.as_secs()
    );

    let wall = std::time::Instant::now();
    let simulated = tokio::time::Instant::now();
    let mut results: Vec<(usize, &'static str, switchyard::Result<Response>)> =
        futures::stream::iter(requests(REQUESTS).into_iter().enumerate())
            .map(|(i, (label, request))| {
                let router = &router;
                async move { (i, label, router.complete(request).await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    results.sort_by_key(|(i, _, _)| *i);
    let (wall, simulated) = (wall.elapsed(), simulated.elapsed());

    print_health(&router);
    print_traffic(&results);
    print_decisions(&decisions.lock().unwrap_or_else(PoisonError::into_inner));
    print_samples(&results);
    print_totals(&results);
    println!("\nSimulated time: {:.1} s; wall time: {:.2} s.", simulated.as_secs_f64(), wall.as_secs_f64());
    Ok(())
}

/// Per-model health as the router sees it at the end of the run.
fn print_health(router: &switchyard::Router) {
    println!("Model health at the end (`Router::health`)");
    println!(
        "  Success rate is over each model's last {} counted attempts; latency is the moving average of",
        router.execution().health.window
    );
    println!("  its successful attempts; trips counts every time its circuit opened. An open circuit whose");
    println!("  cool-down is over lets probes through the next time its model is tried.");
    println!("  {:<22}{:<20}{:>9}{:>9}{:>13}{:>7}", "model", "circuit", "success", "samples", "latency", "trips");
    for h in router.health() {
        let model = h.model.as_ref().map(|m| m.to_string()).unwrap_or_default();
        let state = match h.state {
            CircuitState::Open { retry_in } if retry_in.is_zero() => "open, cool-down over".to_owned(),
            CircuitState::Open { retry_in } => format!("open ({:.0} s left)", retry_in.as_secs_f64()),
            other => other.as_str().to_owned(),
        };
        let rate = h.success_rate.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
        let latency = h.latency_ms.map_or_else(|| "-".to_owned(), |l| format!("{l:.0} ms"));
        println!("  {model:<22}{state:<20}{rate:>9}{:>9}{latency:>13}{:>7}", h.samples, h.trips);
    }
}

/// Every attempt of every request, by model and outcome.
fn print_traffic(results: &[(usize, &str, switchyard::Result<Response>)]) {
    #[derive(Default)]
    struct Row {
        answered: usize,
        failed: BTreeMap<String, usize>,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for attempt in results.iter().flat_map(|(_, _, r)| attempts(r)) {
        let row = rows.entry(attempt.model.to_string()).or_default();
        match attempt.outcome.error_kind() {
            None => row.answered += 1,
            Some(_) => *row.failed.entry(attempt.outcome.to_string()).or_default() += 1,
        }
    }
    println!("\nAttempts per model (from the attempt lists of every response and error)");
    println!("  Only models that were called appear; failed calls are listed by outcome.");
    println!("  {:<22}{:>9}{:>9}  failed", "model", "attempts", "answered");
    for (model, row) in &rows {
        let failed: usize = row.failed.values().sum();
        let detail: Vec<String> = row.failed.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("  {model:<22}{:>9}{:>9}  {}", row.answered + failed, row.answered, detail.join(", "));
    }
}

/// What the router chose first, early and late in the run, and how often it routed around an open
/// circuit.
fn print_decisions(decisions: &[Choice]) {
    let quarter = decisions.len() / 4;
    let (early, late) = (share(&decisions[..quarter]), share(&decisions[decisions.len() - quarter..]));
    let models: BTreeSet<&str> = early.keys().chain(late.keys()).copied().collect();
    println!("\nFirst choice of the router, in the first and the last {quarter} decisions (an observer records them)");
    println!("  Live statistics lower a failing model's predicted success, and an open circuit removes it, so");
    println!("  the first choice shifts as the run goes on.");
    println!("  {:<22}{:>7}{:>7}", "model", "early", "late");
    for m in models {
        println!("  {m:<22}{:>7}{:>7}", early.get(m).copied().unwrap_or(0), late.get(m).copied().unwrap_or(0));
    }
    let around: Vec<&Choice> = decisions.iter().filter(|c| !c.open.is_empty()).collect();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    for model in around.iter().flat_map(|c| &c.open) {
        *skipped.entry(model.as_str()).or_default() += 1;
    }
    let skipped: Vec<String> = skipped.iter().map(|(m, n)| format!("`{m}` {n}")).collect();
    println!(
        "  {} of {} decisions left out a model whose circuit was open ({}); {} were recovery decisions.",
        around.len(),
        decisions.len(),
        if skipped.is_empty() { "none".to_owned() } else { skipped.join(", ") },
        decisions.iter().filter(|c| c.recovery).count()
    );
}

fn share(choices: &[Choice]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for c in choices {
        *counts.entry(c.model.as_str()).or_default() += 1;
    }
    counts
}

/// The first request of each distinct attempt pattern, with its attempts.
fn print_samples(results: &[(usize, &str, switchyard::Result<Response>)]) {
    const SAMPLES: usize = 10;
    println!("\nSample requests: the first of each distinct attempt pattern (up to {SAMPLES})");
    println!("  Each line under a request is one provider call (`Attempt`'s Display); costs are actual.");
    let mut seen = BTreeSet::new();
    for (i, label, result) in results {
        let skipped: Vec<String> = result
            .as_ref()
            .ok()
            .map(|r| &r.decision)
            .map(|d| {
                let open = d.rejections().iter().filter(|r| matches!(r.reason(), RejectReason::CircuitOpen { .. }));
                open.map(|r| format!("`{}`", r.model())).collect()
            })
            .unwrap_or_default();
        let mut pattern: Vec<String> = attempts(result)
            .iter()
            .map(|a| format!("{}/{}", a.reason, a.outcome.error_kind().map_or("ok", ErrorKind::as_str)))
            .collect();
        pattern.push(format!("skipped {}", skipped.len()));
        if seen.len() == SAMPLES || !seen.insert(pattern) {
            continue;
        }
        match result {
            Ok(r) => println!(
                "  #{i} {label}: answered by `{}`, ${:.6} (estimate ${:.6}){}",
                r.model().as_str(),
                r.cost_usd,
                r.estimated_cost_usd,
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; circuit open, not considered: {}", skipped.join(", "))
                }
            ),
            Err(e) => println!("  #{i} {label}: failed, {}", e.kind().as_str()),
        }
        for a in attempts(result) {
            println!("      {a}");
        }
    }
}

fn print_totals(results: &[(usize, &str, switchyard::Result<Response>)]) {
    let ok: Vec<&Response> = results.iter().filter_map(|(_, _, r)| r.as_ref().ok()).collect();
    let errors: Vec<&Error> = results.iter().filter_map(|(_, _, r)| r.as_ref().err()).collect();
    let total_attempts: usize = results.iter().map(|(_, _, r)| attempts(r).len()).sum();
    let mut by_count: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, _, r) in results {
        *by_count.entry(attempts(r).len()).or_default() += 1;
    }
    let mut error_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &errors {
        *error_kinds.entry(e.kind().as_str()).or_default() += 1;
    }
    let first_try = ok.iter().filter(|r| r.attempts.len() == 1).count();
    let not_first = ok.iter().filter(|r| r.model() != r.decision.model()).count();
    let actual: f64 = ok.iter().map(|r| r.cost_usd).sum();
    let answered_estimate: f64 = ok.iter().map(|r| r.estimated_cost_usd).sum();
    let chosen_estimate: f64 = ok.iter().map(|r| r.decision.estimated_cost()).sum();

    println!("\nTotals");
    println!("  Failed calls cost nothing. Estimates assume the cost model's expected answer length; the simulated");
    println!("  provider draws its own (16 to 400 tokens), so actual and estimated costs differ.");
    println!(
        "  requests {}: {} answered ({} on the first call, {} by a model other than the first choice), {} failed{}",
        results.len(),
        ok.len(),
        first_try,
        not_first,
        errors.len(),
        if error_kinds.is_empty() {
            String::new()
        } else {
            let kinds: Vec<String> = error_kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(" ({})", kinds.join(", "))
        }
    );
    let histogram: Vec<String> = by_count.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!(
        "  attempts {total_attempts}: {:.2} per request; requests by number of attempts: {}",
        total_attempts as f64 / results.len().max(1) as f64,
        histogram.join(", ")
    );
    for (label, usd) in [
        ("actual cost of the answered requests", actual),
        ("sum of the estimates for the models that answered", answered_estimate),
        ("sum of the estimates for the router's first choices", chosen_estimate),
    ] {
        println!("  {:<54}${usd:.4}", format!("{label}:"));
    }
}

fn attempts(result: &switchyard::Result<Response>) -> &[Attempt] {
    match result {
        Ok(r) => &r.attempts,
        Err(e) => e.attempts(),
    }
}

/// One decision, as the observer saw it.
struct Choice {
    model: String,
    /// Models left out because their circuit was open.
    open: Vec<String>,
    recovery: bool,
}

/// Records every decision in the order the router made them.
struct Decisions(Arc<Mutex<Vec<Choice>>>);

impl Observer for Decisions {
    fn on_decision(&self, decision: &Decision) {
        let open = decision
            .rejections()
            .iter()
            .filter(|r| matches!(r.reason(), RejectReason::CircuitOpen { .. }))
            .map(|r| r.model().to_string())
            .collect();
        let choice = Choice { model: decision.model().to_string(), open, recovery: decision.is_recovery() };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(choice);
    }
}

const TOPICS: [&str; 12] =
    ["tides", "volcanoes", "jazz", "bread", "bees", "glaciers", "chess", "comets", "coffee", "sailing", "maps", "owls"];

/// `n` requests of seven kinds over twelve topics, each with a short label. Only the labels are printed.
fn requests(n: usize) -> Vec<(&'static str, Request)> {
    (0..n)
        .map(|i| {
            let topic = TOPICS[(i / 7) % TOPICS.len()];
            let k = i % 9 + 2;
            let (label, text) = match i % 7 {
                0 => ("chat", format!("hi! quick question about {topic}: anything fun to know?")),
                1 => ("factual", format!("In one sentence, what is the most common misconception about {topic}?")),
                2 => ("translation", format!("Translate into Spanish: \"We will talk about {topic} at {k} o'clock.\"")),
                3 => (
                    "summary",
                    format!(
                        "Summarize in two bullet points:\n\n{}",
                        format!("A long note about {topic}, their history and their place in daily life. ")
                            .repeat(6 + i % 5)
                    ),
                ),
                4 => ("code", format!("Write a Python function that counts the words in a text about {topic}, with a unit test.")),
                5 => (
                    "math",
                    format!(
                        "A shop sells {k} boxes of books on {topic} at ${k}.50 each with 15% off. What is the total? Show your work step by step."
                    ),
                ),
                _ => (
                    "reasoning",
                    format!(
                        "Compare two hypotheses about {topic}, analyze the evidence for each, and justify which is more likely, step by step."
                    ),
                ),
            };
            (label, Request::new(text).with_key(format!("user-{}", i % 40)))
        })
        .collect()
}
