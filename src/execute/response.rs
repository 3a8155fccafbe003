//! [`Response`]: a provider's [`Completion`] with what the router decided and measured.

use std::fmt;
use std::time::Duration;

use crate::completion::{Completion, FinishReason, Usage};
use crate::limits::CallerLimits;
use crate::policy::Decision;
use crate::request::ToolCall;
use crate::types::{Attempt, Inadequacy, ModelId};

/// An answer as [`Router::complete`](crate::Router::complete) returns it.
///
/// The content, tool calls, finish reason and usage are the answering provider's
/// [`Completion`]; the router adds the model that answered, the latency, the actual cost, every
/// attempt and the [`Decision`] that chose the model.
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub struct Response {
    /// The answer text.
    pub content: String,
    /// Tool calls the model asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Tokens billed for the answer (earlier attempts' tokens are in their cost, not here).
    pub usage: Usage,
    /// The model that answered.
    pub model: ModelId,
    /// Wall time of the request, every attempt and wait included (each attempt's own time is in
    /// `attempts`).
    pub latency: Duration,
    /// Actual cost in USD: of this answer's `usage` at the catalog's prices, plus every earlier
    /// attempt of the same request (an escalated answer's cost includes the answer it replaced).
    pub cost_usd: f64,
    /// The decision's cost estimate for the model that answered, in USD.
    pub estimated_cost_usd: f64,
    /// Every provider call made for this request, in order, the answering one last.
    pub attempts: Vec<Attempt>,
    /// Set when a quality check found this answer inadequate and no stronger model was left to
    /// escalate to.
    pub inadequacy: Option<Inadequacy>,
    /// Why this model was chosen.
    pub decision: Decision,
    /// Where the caller stood against its [`CallerRateLimit`](crate::limits::CallerRateLimit)s
    /// once this request was admitted (it included); `None` when none applies.
    pub caller_limits: Option<CallerLimits>,
}

/// What the attempt loop measured about the answer it returns; [`Response::new`] adds the
/// completion and the decision.
pub(crate) struct Served {
    pub(crate) model: ModelId,
    pub(crate) latency: Duration,
    pub(crate) cost_usd: f64,
    pub(crate) estimated_cost_usd: f64,
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) inadequacy: Option<Inadequacy>,
    pub(crate) caller_limits: Option<CallerLimits>,
}

impl Response {
    pub(crate) fn new(completion: Completion, served: Served, decision: Decision) -> Self {
        let Completion { content, tool_calls, finish_reason, usage, .. } = completion;
        let Served { model, latency, cost_usd, estimated_cost_usd, attempts, inadequacy, caller_limits } = served;
        Self {
            content,
            tool_calls,
            finish_reason,
            usage,
            model,
            latency,
            cost_usd,
            estimated_cost_usd,
            attempts,
            inadequacy,
            decision,
            caller_limits,
        }
    }

    /// The answer text.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The model that answered.
    pub fn model(&self) -> &ModelId {
        &self.model
    }
}

/// In serialized form, every field (durations as fractional milliseconds: `latency_ms`) and the
/// decision as its summary (see [`Decision`]'s `Serialize`). Unlike `Debug`, it holds the answer text.
impl serde::Serialize for Response {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            content: &'a str,
            tool_calls: &'a [ToolCall],
            finish_reason: FinishReason,
            usage: Usage,
            model: &'a ModelId,
            latency_ms: f64,
            cost_usd: f64,
            estimated_cost_usd: f64,
            attempts: &'a [Attempt],
            inadequacy: Option<&'a Inadequacy>,
            decision: &'a Decision,
            #[serde(skip_serializing_if = "Option::is_none")]
            caller_limits: Option<CallerLimits>,
        }
        Wire {
            content: &self.content,
            tool_calls: &self.tool_calls,
            finish_reason: self.finish_reason,
            usage: self.usage,
            model: &self.model,
            latency_ms: self.latency.as_secs_f64() * 1000.0,
            cost_usd: self.cost_usd,
            estimated_cost_usd: self.estimated_cost_usd,
            attempts: &self.attempts,
            inadequacy: self.inadequacy.as_ref(),
            decision: &self.decision,
            caller_limits: self.caller_limits,
        }
        .serialize(serializer)
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("content", &format_args!("{} bytes", self.content.len()))
            .field("tool_calls", &self.tool_calls)
            .field("finish_reason", &self.finish_reason)
            .field("usage", &self.usage)
            .field("model", &self.model)
            .field("latency", &self.latency)
            .field("cost_usd", &self.cost_usd)
            .field("estimated_cost_usd", &self.estimated_cost_usd)
            .field("attempts", &self.attempts)
            .field("inadequacy", &self.inadequacy)
            .field("caller_limits", &self.caller_limits)
            .finish_non_exhaustive()
    }
}
