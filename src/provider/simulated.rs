//! [`SimulatedProvider`]: a deterministic provider for examples, tests and load simulations.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::{Capabilities, ModelProfile};
use crate::classify::{HeuristicCounter, TextStats};
use crate::completion::{Completion, EventStream, FinishReason, StreamEvent, Usage};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{GOLDEN, splitmix64};
use crate::provider::Provider;
use crate::request::{Request, Role, ToolCall};

/// How one simulated model behaves.
///
/// Fault rates are probabilities per call. One uniform number is drawn per call and falls into at most
/// one of these regions, taken in this order (so the rates should add up to at most 1):
///
/// 1. a server error (500);
/// 2. a rate limit (429 with a one-second retry-after);
/// 3. a timeout;
/// 4. a context overflow (400), as if the provider counted more tokens than the router;
/// 5. rejected credentials ([`ErrorKind::Auth`], 401);
/// 6. streams only: a stream that opens and then fails with a server error before its first delta;
/// 7. streams only: a stream cut (a decode error) after its first delta;
/// 8. answer faults, in place of a good answer: an empty answer; a truncated one (finish reason
///    [`FinishReason::Length`]); a refusal ("I'm sorry, but I can't help with that request."); invalid
///    JSON (a JSON answer or tool-call arguments cut short, when the request asked for JSON or a tool is
///    called; otherwise the answer is normal).
///
/// Failures 1 to 5 happen before any stream event, when the stream is opened. Regions 6 and 7 give a
/// normal answer to `complete`. A request larger than the model's context window always fails with a
/// context overflow. All rates are zero by default, and zero rates leave the sequence of outcomes
/// for a seed unchanged.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedModel {
    /// Failure probability with a server error.
    pub server_error_rate: f64,
    /// Failure probability with a rate limit.
    pub rate_limit_rate: f64,
    /// Failure probability with a timeout.
    pub timeout_rate: f64,
    /// Failure probability with a context overflow.
    pub context_overflow_rate: f64,
    /// Failure probability with rejected credentials.
    pub auth_failure_rate: f64,
    /// Probability that a stream opens and then fails before its first delta.
    pub stream_early_failure_rate: f64,
    /// Probability that a stream is cut after its first delta.
    pub stream_cut_rate: f64,
    /// Probability of an empty answer.
    pub empty_rate: f64,
    /// Probability of an answer cut off by the output limit.
    pub truncated_rate: f64,
    /// Probability of a refusal.
    pub refusal_rate: f64,
    /// Probability of broken JSON (when JSON was asked for or a tool is called).
    pub invalid_json_rate: f64,
    /// Answer length in tokens; `None` draws one between 16 and 400 per call, capped by `max_tokens`.
    pub output_tokens: Option<u32>,
    /// Time to first token; `None` uses the catalog's latency profile.
    pub ttft: Option<Duration>,
    /// Decoding speed; `None` uses the catalog's latency profile.
    pub tokens_per_sec: Option<f64>,
}

impl Default for SimulatedModel {
    fn default() -> Self {
        Self {
            server_error_rate: 0.0,
            rate_limit_rate: 0.0,
            timeout_rate: 0.0,
            context_overflow_rate: 0.0,
            auth_failure_rate: 0.0,
            stream_early_failure_rate: 0.0,
            stream_cut_rate: 0.0,
            empty_rate: 0.0,
            truncated_rate: 0.0,
            refusal_rate: 0.0,
            invalid_json_rate: 0.0,
            output_tokens: None,
            ttft: None,
            tokens_per_sec: None,
        }
    }
}

impl SimulatedModel {
    /// A model that always answers.
    pub fn healthy() -> Self {
        Self::default()
    }

    /// Sets the failure rates: server errors, rate limits and timeouts.
    pub fn with_failures(mut self, server_error: f64, rate_limit: f64, timeout: f64) -> Self {
        self.server_error_rate = server_error;
        self.rate_limit_rate = rate_limit;
        self.timeout_rate = timeout;
        self
    }

    /// Sets the probability of a context overflow (as if the provider counted more tokens than the
    /// router estimated).
    pub fn with_context_overflow(mut self, rate: f64) -> Self {
        self.context_overflow_rate = rate;
        self
    }

    /// Sets the probability that the provider rejects the credentials.
    pub fn with_auth_failure(mut self, rate: f64) -> Self {
        self.auth_failure_rate = rate;
        self
    }

    /// Sets the probability that a stream opens and then fails before its first delta.
    pub fn with_stream_early_failure(mut self, rate: f64) -> Self {
        self.stream_early_failure_rate = rate;
        self
    }

    /// Sets the probability that a stream is cut after its first delta.
    pub fn with_stream_cut(mut self, rate: f64) -> Self {
        self.stream_cut_rate = rate;
        self
    }

    /// Sets the probabilities of answers a [quality check](crate::execute::quality) rejects: empty, truncated
    /// (finish reason [`FinishReason::Length`]), a refusal, and invalid JSON (when the request asked for
    /// JSON or a tool is called).
    pub fn with_answer_faults(mut self, empty: f64, truncated: f64, refusal: f64, invalid_json: f64) -> Self {
        self.empty_rate = empty;
        self.truncated_rate = truncated;
        self.refusal_rate = refusal;
        self.invalid_json_rate = invalid_json;
        self
    }

    /// Fixes the answer length.
    pub fn with_output_tokens(mut self, tokens: u32) -> Self {
        self.output_tokens = Some(tokens);
        self
    }

    /// Overrides the latency profile.
    pub fn with_latency(mut self, ttft: Duration, tokens_per_sec: f64) -> Self {
        self.ttft = Some(ttft);
        self.tokens_per_sec = Some(tokens_per_sec);
        self
    }
}

/// A deterministic, seeded provider that needs no network and no keys.
///
/// Every call draws one number from a counter-based generator (SplitMix64 over the seed and a call
/// counter), so a sequence of calls replays exactly for the same seed. Latency is simulated with
/// `tokio::time::sleep`, scaled by [`time_scale`](Self::time_scale) (0 answers at once; under a paused
/// tokio clock the sleeps cost no wall time). Answers are placeholder text of the drawn length, a JSON
/// object when JSON was required, or a call to the first tool when tools were offered and none was
/// called yet. Usage counts input tokens with the [`HeuristicCounter`].
pub struct SimulatedProvider {
    name: Arc<str>,
    seed: u64,
    time_scale: f64,
    default: SimulatedModel,
    models: HashMap<String, SimulatedModel>,
    calls: AtomicU64,
}

impl fmt::Debug for SimulatedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("name", &self.name)
            .field("seed", &self.seed)
            .field("time_scale", &self.time_scale)
            .field("models", &self.models.len())
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish()
    }
}

impl SimulatedProvider {
    /// A provider named `name` whose models all answer, instantly, with seed 0.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: Arc::from(name.into()),
            seed: 0,
            time_scale: 0.0,
            default: SimulatedModel::default(),
            models: HashMap::new(),
            calls: AtomicU64::new(0),
        }
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Multiplies simulated latencies (1.0 is real time, 0.0 answers at once). Negative or non-finite
    /// values are treated as 0.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = if scale.is_finite() && scale > 0.0 { scale } else { 0.0 };
        self
    }

    /// Sets the behaviour of models without their own.
    pub fn default_model(mut self, model: SimulatedModel) -> Self {
        self.default = model;
        self
    }

    /// Sets the behaviour of the model with id `id`.
    pub fn model(mut self, id: impl Into<String>, model: SimulatedModel) -> Self {
        self.models.insert(id.into(), model);
        self
    }

    /// The number of calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn behaviour(&self, model: &ModelProfile) -> &SimulatedModel {
        self.models.get(model.id.as_str()).unwrap_or(&self.default)
    }

    fn draw(&self) -> (f64, u64) {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let a = splitmix64(self.seed ^ n.wrapping_mul(GOLDEN));
        let b = splitmix64(a);
        ((a >> 11) as f64 / (1u64 << 53) as f64, b)
    }

    /// Plans one call: the outcome, the answer and the simulated timing.
    fn plan(&self, model: &ModelProfile, request: &Request) -> Result<Plan> {
        let behaviour = self.behaviour(model);
        let (u, bits) = self.draw();
        let stats = TextStats::of_request(request);
        let input = HeuristicCounter::default().estimate(&stats) as u32;
        let ttft = behaviour.ttft.unwrap_or_else(|| secs(model.latency.ttft_ms / 1000.0)).min(MAX_PHASE);
        let tps = behaviour.tokens_per_sec.unwrap_or(model.latency.output_tokens_per_sec).max(1e-3);
        let reserved = request.max_tokens.unwrap_or(0);
        if u64::from(input) + u64::from(reserved) > u64::from(model.context_window) {
            return Err(Error::context_overflow(format!(
                "{} input tokens plus {reserved} output exceed the window of {}",
                input, model.context_window
            ))
            .with_model(model.id.clone())
            .with_status(400));
        }
        // The regions of the one uniform draw, in the documented order.
        let mut edge = 0.0;
        let mut region = |rate: f64| {
            let low = edge;
            edge += rate;
            (low..edge).contains(&u)
        };
        let id = || model.id.clone();
        if region(behaviour.server_error_rate) {
            return Err(Error::server("simulated server error").with_model(id()).with_status(500));
        }
        if region(behaviour.rate_limit_rate) {
            return Err(Error::rate_limited("simulated rate limit", Some(Duration::from_secs(1)))
                .with_model(id())
                .with_status(429));
        }
        if region(behaviour.timeout_rate) {
            return Err(Error::timeout("simulated timeout").with_model(id()));
        }
        if region(behaviour.context_overflow_rate) {
            return Err(Error::context_overflow("simulated context overflow").with_model(id()).with_status(400));
        }
        if region(behaviour.auth_failure_rate) {
            return Err(Error::new(ErrorKind::Auth, "simulated authentication failure")
                .with_model(id())
                .with_status(401));
        }
        let stream_fault = if region(behaviour.stream_early_failure_rate) {
            Some(StreamFault::BeforeContent)
        } else if region(behaviour.stream_cut_rate) {
            Some(StreamFault::Cut)
        } else {
            None
        };
        let answer_fault = [
            (behaviour.empty_rate, AnswerFault::Empty),
            (behaviour.truncated_rate, AnswerFault::Truncated),
            (behaviour.refusal_rate, AnswerFault::Refusal),
            (behaviour.invalid_json_rate, AnswerFault::InvalidJson),
        ]
        .into_iter()
        .find_map(|(rate, fault)| region(rate).then_some(fault));
        let cap = request.max_tokens.unwrap_or(u32::MAX).min(model.max_output_tokens);
        let wanted = behaviour.output_tokens.unwrap_or(16 + (bits % 385) as u32);
        let mut output = wanted.min(cap).max(1);
        let finish = if wanted > cap { FinishReason::Length } else { FinishReason::Stop };
        let offered_tool = request.tools.first().filter(|_| !request.messages.iter().any(|m| m.role == Role::Tool));
        let json = |tokens: u32| format!("{{\"simulated\":true,\"model\":\"{}\",\"tokens\":{tokens}}}", model.id);
        let (content, tool_call, finish) = match (answer_fault, offered_tool) {
            (Some(AnswerFault::Empty), _) => {
                output = 0;
                (String::new(), None, FinishReason::Stop)
            }
            (Some(AnswerFault::Truncated), _) => {
                let text = if request.response_format.is_json() {
                    let whole = json(output);
                    whole.chars().take(whole.chars().count() / 2).collect()
                } else {
                    filler(model.id.as_str(), output)
                };
                (text, None, FinishReason::Length)
            }
            (Some(AnswerFault::Refusal), _) => {
                output = output.min(12);
                ("I'm sorry, but I can't help with that request.".to_owned(), None, FinishReason::Stop)
            }
            (fault, Some(tool)) => {
                let arguments = if fault == Some(AnswerFault::InvalidJson) { "{\"unterminated\": " } else { "{}" };
                let call = ToolCall::new(format!("call_{:x}", bits & 0xffff_ffff), tool.name.clone(), arguments);
                (String::new(), Some(call), FinishReason::ToolCalls)
            }
            (fault, None) if request.response_format.is_json() => {
                let mut text = json(output);
                if fault == Some(AnswerFault::InvalidJson) {
                    text.pop();
                    text.push(',');
                }
                (text, None, FinishReason::Stop)
            }
            (_, None) => (filler(model.id.as_str(), output), None, finish),
        };
        let cached = crate::cost::cached_input_tokens(request, model, input);
        let reasoning = if model.capabilities.contains(Capabilities::REASONING) { output } else { 0 };
        let usage = Usage::new(input, output + reasoning).with_cached_input(cached).with_reasoning(reasoning);
        let decode = secs(f64::from(output + reasoning) / tps);
        Ok(Plan { content, tool_call, finish, usage, ttft, decode, stream_fault })
    }

    fn scaled(&self, d: Duration) -> Option<Duration> {
        (self.time_scale > 0.0).then(|| secs(d.as_secs_f64() * self.time_scale))
    }
}

/// The longest simulated wait of one phase (time to first token, decoding): an hour.
const MAX_PHASE: Duration = Duration::from_secs(3600);

/// Seconds as a duration, clamped to `[0, MAX_PHASE]` (NaN is 0).
fn secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(s.min(MAX_PHASE.as_secs_f64())) }
}

struct Plan {
    content: String,
    tool_call: Option<ToolCall>,
    finish: FinishReason,
    usage: Usage,
    ttft: Duration,
    decode: Duration,
    stream_fault: Option<StreamFault>,
}

/// How a simulated stream fails, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamFault {
    /// A server error before the first delta.
    BeforeContent,
    /// A decode error after the first delta.
    Cut,
}

/// An answer a quality check rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerFault {
    Empty,
    Truncated,
    Refusal,
    InvalidJson,
}

fn filler(model: &str, tokens: u32) -> String {
    const WORDS: [&str; 8] = ["the", "router", "chose", "this", "model", "for", "your", "request"];
    let mut s = format!("[{model}]");
    for i in 1..tokens {
        s.push(' ');
        s.push_str(WORDS[i as usize % WORDS.len()]);
    }
    s
}

#[async_trait]
impl Provider for SimulatedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let plan = self.plan(model, request);
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                if e.kind() == ErrorKind::Timeout
                    && let Some(d) = self.scaled(Duration::from_secs(30))
                {
                    tokio::time::sleep(d).await;
                }
                return Err(e);
            }
        };
        if let Some(d) = self.scaled(plan.ttft + plan.decode) {
            tokio::time::sleep(d).await;
        }
        let mut response = Completion::new(plan.content, plan.finish, plan.usage);
        if let Some(call) = plan.tool_call {
            response = response.with_tool_call(call);
        }
        Ok(response)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let plan = self.plan(model, request)?;
        if let Some(d) = self.scaled(plan.ttft) {
            tokio::time::sleep(d).await;
        }
        let mut events: VecDeque<Result<StreamEvent>> = VecDeque::new();
        if plan.stream_fault == Some(StreamFault::BeforeContent) {
            events.push_back(Err(Error::server("simulated stream failure before the first token")
                .with_model(model.id.clone())
                .with_status(500)));
            return Ok(Box::pin(SimStream { events, gap: None, after_delta: false, sleep: None }));
        }
        let cut = plan.stream_fault == Some(StreamFault::Cut);
        let mut chunks = 0u32;
        let mut rest = plan.content.as_str();
        while !rest.is_empty() {
            let end = rest.char_indices().nth(24).map_or(rest.len(), |(i, _)| i);
            events.push_back(Ok(StreamEvent::Delta(rest[..end].to_owned())));
            rest = &rest[end..];
            chunks += 1;
            if cut {
                events.push_back(Err(Error::decode("simulated stream cut").with_model(model.id.clone())));
                break;
            }
        }
        if !cut {
            if let Some(call) = plan.tool_call {
                events.push_back(Ok(StreamEvent::ToolCall(call)));
            }
            events.push_back(Ok(StreamEvent::Usage(plan.usage)));
            events.push_back(Ok(StreamEvent::Finish(plan.finish)));
        }
        let gap = self.scaled(plan.decode / chunks.max(1));
        Ok(Box::pin(SimStream { events, gap, after_delta: false, sleep: None }))
    }
}

/// Replays planned events. The first delta comes at once (the time to first token was spent opening
/// the stream); every event after a delta waits `gap` first, so that decoding takes `decode` in all.
struct SimStream {
    events: VecDeque<Result<StreamEvent>>,
    gap: Option<Duration>,
    after_delta: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl futures_core::Stream for SimStream {
    type Item = Result<StreamEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(gap) = this.gap.filter(|_| this.after_delta && !this.events.is_empty()) {
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        let event = this.events.pop_front();
        this.after_delta = matches!(event, Some(Ok(StreamEvent::Delta(_))));
        Poll::Ready(event)
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Pricing;

    fn profile() -> ModelProfile {
        ModelProfile::new("m", "sim").with_pricing(Pricing::per_mtok(1.0, 1.0)).with_context(10_000, 1_000)
    }

    #[tokio::test]
    async fn same_seed_same_answers() {
        let a = SimulatedProvider::new("sim")
            .seed(7)
            .default_model(SimulatedModel::healthy().with_failures(0.3, 0.1, 0.05));
        let b = SimulatedProvider::new("sim")
            .seed(7)
            .default_model(SimulatedModel::healthy().with_failures(0.3, 0.1, 0.05));
        let req = Request::new("hello");
        for _ in 0..50 {
            let (x, y) = (a.complete(&profile(), &req).await, b.complete(&profile(), &req).await);
            match (x, y) {
                (Ok(x), Ok(y)) => assert_eq!(x, y),
                (Err(x), Err(y)) => assert_eq!(x.kind(), y.kind()),
                _ => panic!("diverged"),
            }
        }
    }

    #[tokio::test]
    async fn failure_rates_are_respected() {
        let p = SimulatedProvider::new("sim")
            .seed(1)
            .default_model(SimulatedModel::healthy().with_failures(0.3, 0.1, 0.05));
        let req = Request::new("hello");
        let (mut server, mut limited, mut timeout) = (0, 0, 0);
        let n = 4_000;
        for _ in 0..n {
            match p.complete(&profile(), &req).await {
                Err(e) if e.kind() == ErrorKind::Server => server += 1,
                Err(e) if e.kind() == ErrorKind::RateLimited => limited += 1,
                Err(e) if e.kind() == ErrorKind::Timeout => timeout += 1,
                Err(e) => panic!("{e}"),
                Ok(_) => {}
            }
        }
        // Binomial standard deviations at n = 4000 are under 1 percentage point: allow 3.
        let share = |k: i32| f64::from(k) / f64::from(n);
        assert!((share(server) - 0.3).abs() < 0.03, "{server}");
        assert!((share(limited) - 0.1).abs() < 0.03, "{limited}");
        assert!((share(timeout) - 0.05).abs() < 0.03, "{timeout}");
    }

    #[tokio::test]
    async fn overflow_and_length_cap() {
        let p = SimulatedProvider::new("sim");
        let big = Request::new("word ".repeat(20_000));
        assert_eq!(p.complete(&profile(), &big).await.unwrap_err().kind(), ErrorKind::ContextOverflow);
        let p = SimulatedProvider::new("sim").default_model(SimulatedModel::healthy().with_output_tokens(500));
        let r = p.complete(&profile(), &Request::new("hi").with_max_tokens(10)).await.unwrap();
        assert_eq!(r.usage.output_tokens, 10);
        assert_eq!(r.finish_reason, FinishReason::Length);
    }

    fn sim(model: SimulatedModel) -> SimulatedProvider {
        SimulatedProvider::new("sim").seed(5).default_model(model)
    }

    async fn events(p: &SimulatedProvider, req: &Request) -> Vec<Result<StreamEvent>> {
        use futures::StreamExt;
        p.stream(&profile(), req).await.unwrap().collect().await
    }

    #[tokio::test]
    async fn injected_errors_have_their_kind_and_status() {
        let req = Request::new("hello");
        for (model, kind, status) in [
            (SimulatedModel::healthy().with_context_overflow(1.0), ErrorKind::ContextOverflow, 400),
            (SimulatedModel::healthy().with_auth_failure(1.0), ErrorKind::Auth, 401),
        ] {
            let p = sim(model);
            let e = p.complete(&profile(), &req).await.unwrap_err();
            assert_eq!((e.kind(), e.status()), (kind, Some(status)), "{e}");
            assert_eq!(e.model().map(|m| m.as_str()), Some("m"));
            assert!(!e.is_retryable());
            // Streams fail when they are opened, before any event.
            let e = p.stream(&profile(), &req).await.err().unwrap();
            assert_eq!(e.kind(), kind);
        }
    }

    #[tokio::test]
    async fn answer_faults_fail_the_matching_quality_check() {
        use crate::execute::quality::{Checks, Inadequacy, QualityCheck};
        use crate::request::{ResponseFormat, Tool};

        let text = Request::new("hello");
        let json = Request::new("hello").with_response_format(ResponseFormat::Json);
        let tool = Request::new("weather?").with_tool(Tool::new("weather", "w", "{}"));
        let healthy = SimulatedModel::healthy;
        let cases = [
            (healthy(), &text, None),
            (healthy(), &json, None),
            (healthy(), &tool, None),
            (healthy().with_answer_faults(1.0, 0.0, 0.0, 0.0), &text, Some(Inadequacy::EMPTY)),
            (healthy().with_answer_faults(1.0, 0.0, 0.0, 0.0), &tool, Some(Inadequacy::EMPTY)),
            (healthy().with_answer_faults(0.0, 1.0, 0.0, 0.0), &text, Some(Inadequacy::TRUNCATED)),
            (healthy().with_answer_faults(0.0, 1.0, 0.0, 0.0), &json, Some(Inadequacy::TRUNCATED)),
            (healthy().with_answer_faults(0.0, 0.0, 1.0, 0.0), &json, Some(Inadequacy::REFUSAL)),
            (healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0), &json, Some(Inadequacy::INVALID_JSON)),
            (healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0), &tool, Some(Inadequacy::INVALID_TOOL_ARGUMENTS)),
            // Broken JSON needs a request for JSON: a text answer stays fine.
            (healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0), &text, None),
        ];
        for (model, req, expected) in cases {
            let p = sim(model.clone());
            let answer = p.complete(&profile(), req).await.unwrap();
            let verdict = Checks::standard().check(req, &answer);
            assert_eq!(verdict.inadequacy().map(Inadequacy::reason), expected, "{model:?} {answer:?}");
            if expected == Some(Inadequacy::TRUNCATED) {
                assert_eq!(answer.finish_reason, FinishReason::Length);
            }
            if expected == Some(Inadequacy::EMPTY) {
                assert_eq!(answer.usage.output_tokens, 0);
            }
            // The stream of the same call (same seed, first call) carries the same answer.
            let streamed: String = events(&sim(model), req)
                .await
                .into_iter()
                .filter_map(|e| match e.unwrap() {
                    StreamEvent::Delta(t) => Some(t),
                    _ => None,
                })
                .collect();
            assert_eq!(streamed, answer.content);
        }
    }

    #[tokio::test]
    async fn fault_regions_partition_the_draw() {
        let p = sim(SimulatedModel::healthy()
            .with_failures(0.1, 0.1, 0.1)
            .with_context_overflow(0.1)
            .with_auth_failure(0.1)
            .with_stream_early_failure(0.05)
            .with_stream_cut(0.05)
            .with_answer_faults(0.1, 0.1, 0.1, 0.1));
        let req = Request::new("hello").with_response_format(crate::request::ResponseFormat::Json);
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let n = 5_000;
        for _ in 0..n {
            let class = match p.complete(&profile(), &req).await {
                Err(e) => e.kind().as_str(),
                Ok(r) if r.content.is_empty() => "empty",
                Ok(r) if r.finish_reason == FinishReason::Length => "truncated",
                Ok(r) if r.content.starts_with("I'm sorry") => "refusal",
                Ok(r) if r.content.ends_with(',') => "invalid_json",
                Ok(r) => {
                    assert!(r.content.ends_with('}'), "{}", r.content);
                    "normal"
                }
            };
            *counts.entry(class).or_default() += 1;
        }
        // Eleven regions that add up to 1; both stream-only ones answer `complete` normally.
        let expected = [
            ("server", 0.1),
            ("rate_limited", 0.1),
            ("timeout", 0.1),
            ("context_overflow", 0.1),
            ("auth", 0.1),
            ("normal", 0.1),
            ("empty", 0.1),
            ("truncated", 0.1),
            ("refusal", 0.1),
            ("invalid_json", 0.1),
        ];
        assert_eq!(counts.len(), expected.len(), "{counts:?}");
        for (class, share) in expected {
            let got = f64::from(counts[class]) / f64::from(n);
            assert!((got - share).abs() < 0.03, "{class}: {got} ({counts:?})");
        }
    }

    #[tokio::test]
    async fn answer_faults_only_replace_good_answers() {
        let failures = SimulatedModel::healthy().with_failures(0.3, 0.1, 0.05);
        let plain = sim(failures.clone());
        let faulty = sim(failures.with_answer_faults(0.1, 0.1, 0.1, 0.1));
        let req = Request::new("hello");
        let mut replaced = 0;
        for _ in 0..500 {
            match (plain.complete(&profile(), &req).await, faulty.complete(&profile(), &req).await) {
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
                (Ok(a), Ok(b)) => replaced += u32::from(a != b),
                (a, b) => panic!("{a:?} / {b:?}"),
            }
        }
        assert!(replaced > 0);
    }

    #[tokio::test]
    async fn streams_fail_before_or_after_the_first_delta() {
        let req = Request::new("hello");
        let early = sim(SimulatedModel::healthy().with_stream_early_failure(1.0));
        let got = events(&early, &req).await;
        assert_eq!(got.len(), 1, "{got:?}");
        let e = got[0].as_ref().unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Server, Some(500)));
        assert!(early.complete(&profile(), &req).await.is_ok());

        let cut = sim(SimulatedModel::healthy().with_output_tokens(60).with_stream_cut(1.0));
        let got = events(&cut, &req).await;
        assert!(matches!(got.first(), Some(Ok(StreamEvent::Delta(_)))), "{got:?}");
        assert_eq!(got.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Decode);
        assert!(cut.complete(&profile(), &req).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn streams_take_the_simulated_time() {
        use futures::StreamExt;
        // 100 tokens at 1000 tokens/s after a 300 ms first token.
        let p = SimulatedProvider::new("sim").time_scale(1.0).default_model(
            SimulatedModel::healthy().with_output_tokens(100).with_latency(Duration::from_millis(300), 1000.0),
        );
        let started = tokio::time::Instant::now();
        let mut s = p.stream(&profile(), &Request::new("hello")).await.unwrap();
        assert!(matches!(s.next().await, Some(Ok(StreamEvent::Delta(_)))));
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        while s.next().await.is_some() {}
        // The timer rounds each gap between chunks up to a whole millisecond.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(400) && elapsed <= Duration::from_millis(430), "{elapsed:?}");
        let started = tokio::time::Instant::now();
        p.complete(&profile(), &Request::new("hello")).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }
}
