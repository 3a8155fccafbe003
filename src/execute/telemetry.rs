//! Tracing spans for provider calls, named after OpenTelemetry's semantic conventions for generative
//! AI client spans, so that `tracing-opentelemetry` (or any subscriber) exports them as GenAI spans.

use tracing::field::Empty;

use crate::catalog::ModelProfile;
use crate::completion::{FinishReason, Usage};
use crate::error::ErrorKind;
use crate::policy::Decision;
use crate::request::Request;
use crate::types::AttemptReason;

/// The span of one attempt (target `switchyard::gen_ai`, level INFO, name `chat`). Fields:
///
/// | field | value |
/// |---|---|
/// | `otel.name`, `otel.kind` | `chat {api name}`, `client` (for `tracing-opentelemetry`) |
/// | `gen_ai.operation.name` | `chat` |
/// | `gen_ai.provider.name` | the profile's provider |
/// | `gen_ai.request.model` | the profile's API name |
/// | `gen_ai.request.max_tokens`, `.temperature`, `.top_p`, `.seed` | the request's, when set |
/// | `gen_ai.response.finish_reasons` | the answer's finish reason |
/// | `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens` | as the provider reported them (a stream's when it ends) |
/// | `error.type` | the [`ErrorKind`] label of a failed call |
/// | `switchyard.decision.id`, `switchyard.model`, `switchyard.attempt.reason` | the decision, the catalog id, why the call was made |
///
/// No prompt or answer text is recorded.
pub(super) fn attempt_span(
    decision: &Decision,
    profile: &ModelProfile,
    reason: AttemptReason,
    request: &Request,
) -> tracing::Span {
    tracing::info_span!(
        target: "switchyard::gen_ai",
        "chat",
        otel.name = %format_args!("chat {}", profile.api_name()),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = %profile.provider,
        gen_ai.request.model = profile.api_name(),
        gen_ai.request.max_tokens = request.max_tokens,
        gen_ai.request.temperature = request.temperature.map(f64::from),
        gen_ai.request.top_p = request.top_p.map(f64::from),
        gen_ai.request.seed = request.seed,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        error.type = Empty,
        switchyard.decision.id = decision.id().get(),
        switchyard.model = %profile.id,
        switchyard.attempt.reason = reason.as_str(),
    )
}

/// Records an answer's usage and finish reason on its span.
pub(super) fn record_answer(span: &tracing::Span, usage: Option<&Usage>, finish: Option<FinishReason>) {
    if let Some(u) = usage {
        span.record("gen_ai.usage.input_tokens", u.input_tokens);
        span.record("gen_ai.usage.output_tokens", u.output_tokens);
    }
    if let Some(reason) = finish {
        let reason = match reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "other",
        };
        span.record("gen_ai.response.finish_reasons", reason);
    }
}

/// Records a failed call's error kind on its span.
pub(super) fn record_error(span: &tracing::Span, kind: ErrorKind) {
    span.record("error.type", kind.as_str());
}
