//! Quality checks: is an answer good enough, or should a stronger model try?
//!
//! A [`QualityCheck`] looks at a request and the [`Completion`] a model gave and returns a [`Verdict`]:
//! [`Verdict::Adequate`], or [`Verdict::Inadequate`] with an [`Inadequacy`] that says which check failed
//! and why, as a short reason code that is safe to log (`"empty"`, `"truncated"`, `"refusal"`,
//! `"invalid_json"`, ...). An inadequate answer is the signal to escalate to the next, stronger model.
//!
//! Built in:
//! - [`NonEmpty`]: the answer has text or tool calls.
//! - [`NotTruncated`]: the output token limit did not cut the answer off.
//! - [`NoRefusal`]: the answer does not *open* with a refusal ("I'm sorry, but I can't ...").
//! - [`ValidJson`]: when the request asked for JSON, the answer parses; tool-call arguments parse.
//! - [`Checks`]: an ordered list of checks, the first failure wins; [`Checks::standard`] is all of the
//!   above.
//!
//! Write your own with [`from_fn`]:
//!
//! ```
//! use switchyard::execute::quality::{self, Checks, QualityCheck, Verdict};
//! use switchyard::{FinishReason, Request, Completion, Usage};
//!
//! let checks = Checks::standard().with(quality::from_fn("cites_source", |_req, resp| {
//!     if resp.content().contains("http") { Verdict::Adequate } else { Verdict::inadequate("no_source") }
//! }));
//! let answer = Completion::new("Paris.", FinishReason::Stop, Usage::new(10, 2));
//! let verdict = checks.check(&Request::new("Capital of France? Cite a source."), &answer);
//! assert_eq!(verdict.to_string(), "`cites_source`: no_source");
//! ```
//!
//! # Invariants
//!
//! Checks are pure, synchronous and cheap: they run once per answer on the request path. A check needing
//! I/O (a grader model) belongs in the caller's code, around the router.
//!
//! Reasons and check names are *codes*, not messages: they must never contain prompt or answer text.
//! `Debug` and `Display` of a [`Verdict`] show only those codes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::completion::{Completion, FinishReason};
use crate::request::{Request, ResponseFormat};
pub use crate::types::Inadequacy;

/// Judges whether a model's answer to a request is adequate.
///
/// # Invariants
/// - Pure and CPU-only: no I/O, no randomness, no locks held across calls; the same request and
///   response always give the same verdict.
/// - Never panics, whatever the answer contains.
/// - The reason of an [`Inadequacy`] is a short code safe to log; it never contains request or answer
///   text.
///
/// The trait is object safe: `Box<dyn QualityCheck>` and `Arc<dyn QualityCheck>` are checks too.
pub trait QualityCheck: Send + Sync {
    /// The verdict on `response` as an answer to `request`.
    fn check(&self, request: &Request, response: &Completion) -> Verdict;

    /// A short, stable name for logs and metrics (`"non_empty"`). The default is `"custom"`.
    fn name(&self) -> &str {
        "custom"
    }
}

macro_rules! forward_quality_check {
    ($($ptr:ty),*) => {$(
        impl<T: QualityCheck + ?Sized> QualityCheck for $ptr {
            fn check(&self, request: &Request, response: &Completion) -> Verdict {
                (**self).check(request, response)
            }
            fn name(&self) -> &str {
                (**self).name()
            }
        }
    )*};
}
forward_quality_check!(&T, Box<T>, Arc<T>);

/// The outcome of a [`QualityCheck`].
#[non_exhaustive]
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The answer may be returned to the caller.
    Adequate,
    /// The answer should not be returned; a stronger model may do better.
    Inadequate(Inadequacy),
}

impl Verdict {
    /// An inadequate verdict with a reason code (`"no_source"`), for custom checks.
    ///
    /// The check's name is filled in by [`from_fn`] and [`Checks`]; set it yourself with
    /// [`Inadequacy::new`]. The reason must not contain request or answer text.
    pub fn inadequate(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Inadequate(Inadequacy { reason: reason.into(), check: None })
    }

    /// Whether the answer passed.
    pub(crate) fn is_adequate(&self) -> bool {
        matches!(self, Self::Adequate)
    }

    /// Whether the answer failed.
    pub fn is_inadequate(&self) -> bool {
        !self.is_adequate()
    }

    /// Why the answer failed, when it did.
    pub(crate) fn inadequacy(&self) -> Option<&Inadequacy> {
        match self {
            Self::Adequate => None,
            Self::Inadequate(i) => Some(i),
        }
    }

    /// Sets the check name of an inadequacy that has none; leaves an adequate verdict alone.
    fn named_by(self, name: impl FnOnce() -> Cow<'static, str>) -> Self {
        match self {
            Self::Inadequate(mut i) if i.check.is_none() => {
                i.check = Some(name());
                Self::Inadequate(i)
            }
            other => other,
        }
    }
}

impl From<Inadequacy> for Verdict {
    fn from(inadequacy: Inadequacy) -> Self {
        Self::Inadequate(inadequacy)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Adequate => f.write_str("adequate"),
            Self::Inadequate(i) => fmt::Display::fmt(i, f),
        }
    }
}

fn fail(check: &'static str, reason: &'static str) -> Verdict {
    Verdict::Inadequate(Inadequacy::new(check, reason))
}

/// Inadequate (`"empty"`) when the answer has no non-whitespace text and no tool calls.
///
/// An answer made only of tool calls is adequate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonEmpty;

impl NonEmpty {
    const NAME: &'static str = "non_empty";
}

impl QualityCheck for NonEmpty {
    fn check(&self, _: &Request, response: &Completion) -> Verdict {
        if response.tool_calls.is_empty() && response.content.trim().is_empty() {
            fail(Self::NAME, Inadequacy::EMPTY)
        } else {
            Verdict::Adequate
        }
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

/// Inadequate (`"truncated"`) when the answer stopped at an output token limit
/// ([`FinishReason::Length`]) that the caller did not ask for.
///
/// A stop at the request's own [`max_tokens`](Request::max_tokens) is what the caller asked for, not
/// an inadequacy: a stronger model would stop at the same limit, so escalating would only pay twice.
/// The answer counts as truncated when the request sets no `max_tokens`, or when the provider reports
/// fewer output tokens than `max_tokens` (the model stopped at a limit of its own). A `Length` stop
/// with a caller limit and no reported output tokens is taken as the caller's limit.
///
/// ```
/// use switchyard::execute::quality::{NotTruncated, QualityCheck};
/// use switchyard::{Completion, FinishReason, Request, Usage};
///
/// let cut = Completion::new("half an ans", FinishReason::Length, Usage::new(10, 300));
/// assert!(NotTruncated.check(&Request::new("..."), &cut).is_inadequate());
/// assert!(!NotTruncated.check(&Request::new("...").with_max_tokens(300), &cut).is_inadequate());
/// assert!(NotTruncated.check(&Request::new("...").with_max_tokens(4000), &cut).is_inadequate());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotTruncated;

impl NotTruncated {
    const NAME: &'static str = "not_truncated";
}

impl QualityCheck for NotTruncated {
    fn check(&self, request: &Request, response: &Completion) -> Verdict {
        if response.finish_reason != FinishReason::Length {
            return Verdict::Adequate;
        }
        let below_callers_limit = match request.max_tokens {
            None => true,
            Some(limit) => (1..limit).contains(&response.usage.output_tokens),
        };
        if below_callers_limit { fail(Self::NAME, Inadequacy::TRUNCATED) } else { Verdict::Adequate }
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

/// The phrases [`NoRefusal`] looks for by default, written with a straight apostrophe.
const REFUSALS: &[&str] = &[
    "I'm sorry, but I can't",
    "I'm sorry, but I cannot",
    "I'm sorry, but I won't",
    "I'm sorry, but I am unable",
    "I'm sorry, but I'm unable",
    "I'm sorry, I can't",
    "I'm sorry, I cannot",
    "I am sorry, but I can't",
    "I am sorry, but I cannot",
    "Sorry, but I can't",
    "Sorry, but I cannot",
    "Sorry, I can't",
    "Sorry, I cannot",
    "I apologize, but I can't",
    "I apologize, but I cannot",
    "I cannot help with",
    "I cannot help you with",
    "I can't help with",
    "I can't help you with",
    "I cannot assist",
    "I can't assist",
    "I cannot comply",
    "I can't comply",
    "I cannot fulfill",
    "I can't fulfill",
    "I cannot provide",
    "I can't provide",
    "I won't be able to help",
    "I am unable to",
    "I'm unable to",
    "I am not able to",
    "I'm not able to",
    "As an AI language model, I cannot",
    "As an AI language model, I can't",
    "As an AI language model, I am unable",
    "As an AI language model, I'm unable",
    "As an AI, I cannot",
    "As an AI, I can't",
];

/// How much of the answer's start [`NoRefusal`] reads, in bytes.
const REFUSAL_WINDOW: usize = 200;

/// Inadequate (`"refusal"`) when the answer *opens* with a refusal phrase.
///
/// The answer's start is compared with each phrase after skipping leading whitespace and Markdown
/// emphasis or quote marks (`*`, `_`, `>`, `"`, `#`), ignoring ASCII case, treating the curly
/// apostrophes `’` and `‘` as `'`, and any run of whitespace as one space. Only the first 200 bytes are
/// read, and nothing is allocated. A refusal later in the answer ("... sorry, I can't be sure") does not
/// count: models often hedge inside good answers.
///
/// The default phrases cover the common English openings ("I'm sorry, but I can't", "I cannot assist",
/// "I am unable to", "As an AI language model, I cannot", ...). Add your own with
/// [`with_phrase`](Self::with_phrase), or start from none with [`empty`](Self::empty).
///
/// ```
/// use switchyard::execute::quality::{NoRefusal, QualityCheck};
/// use switchyard::{FinishReason, Request, Completion, Usage};
///
/// let check = NoRefusal::new().with_phrase("Je ne peux pas");
/// let answer = Completion::new("je ne peux pas répondre", FinishReason::Stop, Usage::default());
/// assert!(check.check(&Request::new("..."), &answer).is_inadequate());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoRefusal {
    defaults: bool,
    extra: Vec<Cow<'static, str>>,
}

impl NoRefusal {
    const NAME: &'static str = "no_refusal";

    /// The check with the default phrases.
    pub fn new() -> Self {
        Self { defaults: true, extra: Vec::new() }
    }

    /// The check with no phrases at all; add them with [`with_phrase`](Self::with_phrase).
    pub fn empty() -> Self {
        Self { defaults: false, extra: Vec::new() }
    }

    /// Adds a phrase that marks a refusal when an answer opens with it. Empty (or whitespace-only)
    /// phrases are ignored, so they never match every answer.
    pub fn with_phrase(mut self, phrase: impl Into<Cow<'static, str>>) -> Self {
        let phrase = phrase.into();
        if !phrase.trim().is_empty() {
            self.extra.push(phrase);
        }
        self
    }

    /// Whether `text` opens with one of this check's phrases.
    pub(crate) fn is_refusal(&self, text: &str) -> bool {
        let head =
            head(text.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | '>' | '"' | '#')));
        if head.is_empty() {
            return false;
        }
        let defaults: &[&str] = if self.defaults { REFUSALS } else { &[] };
        defaults.iter().copied().chain(self.extra.iter().map(|p| &**p)).any(|p| starts_with_phrase(head, p))
    }
}

impl Default for NoRefusal {
    fn default() -> Self {
        Self::new()
    }
}

impl QualityCheck for NoRefusal {
    fn check(&self, _: &Request, response: &Completion) -> Verdict {
        if self.is_refusal(&response.content) { fail(Self::NAME, Inadequacy::REFUSAL) } else { Verdict::Adequate }
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

/// The first [`REFUSAL_WINDOW`] bytes of `text`, cut at a character boundary.
fn head(text: &str) -> &str {
    let mut end = text.len().min(REFUSAL_WINDOW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `text` starts with `phrase` under [`NoRefusal`]'s normalisation.
fn starts_with_phrase(text: &str, phrase: &str) -> bool {
    let mut text = Normalized::new(text);
    let mut phrase = Normalized::new(phrase.trim());
    let mut matched_any = false;
    loop {
        match (phrase.next(), text.next()) {
            (None, _) => return matched_any,
            (Some(p), Some(t)) if p == t => matched_any = true,
            _ => return false,
        }
    }
}

/// Characters lower-cased (ASCII), curly apostrophes straightened and whitespace runs collapsed.
struct Normalized<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Normalized<'a> {
    fn new(text: &'a str) -> Self {
        Self { chars: text.chars().peekable() }
    }
}

impl Iterator for Normalized<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        Some(match c {
            c if c.is_whitespace() => {
                while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
                ' '
            }
            '\u{2019}' | '\u{2018}' | '\u{02BC}' => '\'',
            c => c.to_ascii_lowercase(),
        })
    }
}

/// JSON where JSON was asked for, and JSON tool-call arguments.
///
/// - When the request's [`ResponseFormat`] is `Json` or `JsonSchema`, the answer
///   must parse as JSON (`"invalid_json"` otherwise); for `Json` it must be an object. Surrounding
///   whitespace and one Markdown code fence around the whole answer (```` ```json ```` or ```` ``` ````)
///   are tolerated, since models often add them; an unclosed fence is not. An answer with no text but
///   tool calls is not held to the format. The schema itself is not checked, only the syntax.
/// - Every tool call's arguments must parse as JSON (`"invalid_tool_arguments"`); empty arguments are
///   read as "no arguments" and accepted.
/// - A request that did not ask for JSON and an answer with no tool calls are adequate.
///
/// Parsing builds no tree ([`serde::de::IgnoredAny`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValidJson;

impl ValidJson {
    const NAME: &'static str = "valid_json";
}

impl QualityCheck for ValidJson {
    fn check(&self, request: &Request, response: &Completion) -> Verdict {
        if request.response_format.is_json() {
            let body = response.content.trim();
            let text_optional = body.is_empty() && !response.tool_calls.is_empty();
            if !text_optional {
                let object_only = matches!(request.response_format, ResponseFormat::Json);
                let ok = unfence(body).is_some_and(|json| (!object_only || json.starts_with('{')) && parses(json));
                if !ok {
                    return fail(Self::NAME, Inadequacy::INVALID_JSON);
                }
            }
        }
        let bad_args = response.tool_calls.iter().any(|c| {
            let args = c.arguments.trim();
            !args.is_empty() && !parses(args)
        });
        if bad_args { fail(Self::NAME, Inadequacy::INVALID_TOOL_ARGUMENTS) } else { Verdict::Adequate }
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

fn parses(json: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok()
}

/// The JSON inside a trimmed answer: the answer itself, or the inside of one Markdown fence around it
/// whose info string is empty or `json`. `None` for a fence that is not closed or not about JSON.
fn unfence(body: &str) -> Option<&str> {
    let Some(rest) = body.strip_prefix("```") else {
        return Some(body);
    };
    let (info, inner) = rest.split_once('\n')?;
    let info = info.trim();
    if !(info.is_empty() || info.eq_ignore_ascii_case("json")) {
        return None;
    }
    inner.trim_end().strip_suffix("```").map(str::trim)
}

/// An ordered list of checks; the first inadequate verdict wins and the rest do not run.
///
/// Cheap to clone (the checks are shared). `Default` and [`new`](Self::new) are empty, and an empty
/// list finds every answer adequate; [`standard`](Self::standard) holds the built-in checks.
///
/// ```
/// use switchyard::execute::quality::{Checks, NoRefusal, NonEmpty};
/// let checks = Checks::new().with(NonEmpty).with(NoRefusal::new().with_phrase("Nope"));
/// assert_eq!(checks.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Checks {
    checks: Vec<Arc<dyn QualityCheck>>,
}

impl Checks {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`NonEmpty`], [`NotTruncated`], [`NoRefusal`] and [`ValidJson`], in that order.
    pub fn standard() -> Self {
        Self::new().with(NonEmpty).with(NotTruncated).with(NoRefusal::new()).with(ValidJson)
    }

    /// Appends a check.
    pub(crate) fn push(&mut self, check: impl QualityCheck + 'static) {
        self.checks.push(Arc::new(check));
    }

    /// Appends a check (builder form).
    pub fn with(mut self, check: impl QualityCheck + 'static) -> Self {
        self.push(check);
        self
    }

    /// The number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether there are no checks.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }
}

impl fmt::Debug for Checks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.checks.iter().map(|c| c.name())).finish()
    }
}

impl QualityCheck for Checks {
    /// The first inadequate verdict, named after the check that gave it when it carries no name.
    fn check(&self, request: &Request, response: &Completion) -> Verdict {
        for check in &self.checks {
            let verdict = check.check(request, response);
            if verdict.is_inadequate() {
                return verdict.named_by(|| Cow::Owned(check.name().to_owned()));
            }
        }
        Verdict::Adequate
    }

    fn name(&self) -> &str {
        "checks"
    }
}

/// A check from a closure.
///
/// An [`Inadequacy`] the closure returns without a check name (from [`Verdict::inadequate`]) gets
/// `name`.
///
/// ```
/// use switchyard::execute::quality::{self, QualityCheck, Verdict};
/// let short = quality::from_fn("short_enough", |_req, resp| {
///     if resp.content().len() <= 280 { Verdict::Adequate } else { Verdict::inadequate("too_long") }
/// });
/// assert_eq!(short.name(), "short_enough");
/// ```
pub fn from_fn<F>(name: &'static str, f: F) -> FnCheck<F>
where
    F: Fn(&Request, &Completion) -> Verdict + Send + Sync,
{
    FnCheck { name, f }
}

/// See [`from_fn`].
#[derive(Clone)]
pub struct FnCheck<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").field("name", &self.name).finish()
    }
}

impl<F> QualityCheck for FnCheck<F>
where
    F: Fn(&Request, &Completion) -> Verdict + Send + Sync,
{
    fn check(&self, request: &Request, response: &Completion) -> Verdict {
        (self.f)(request, response).named_by(|| Cow::Borrowed(self.name))
    }

    fn name(&self) -> &str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::Usage;
    use crate::request::ToolCall;

    const _: fn(&dyn QualityCheck) = |_| {};

    fn answer(text: &str) -> Completion {
        Completion::new(text, FinishReason::Stop, Usage::new(10, 10))
    }

    fn req() -> Request {
        Request::new("question")
    }

    fn json_req() -> Request {
        Request::new("give me json").with_response_format(ResponseFormat::Json)
    }

    fn reason(v: &Verdict) -> Option<&str> {
        v.inadequacy().map(Inadequacy::reason)
    }

    #[test]
    fn bounds_and_forwarding() {
        fn is<T: QualityCheck + Clone + fmt::Debug + Default + Send + Sync + 'static>() {}
        is::<NonEmpty>();
        is::<NotTruncated>();
        is::<NoRefusal>();
        is::<ValidJson>();
        is::<Checks>();
        let boxed: Box<dyn QualityCheck> = Box::new(NonEmpty);
        let arced: Arc<dyn QualityCheck> = Arc::new(NotTruncated);
        assert_eq!(boxed.name(), "non_empty");
        fn name_of<C: QualityCheck>(check: C) -> String {
            check.name().to_owned()
        }
        assert_eq!(name_of(&arced), "not_truncated");
        assert!(boxed.check(&req(), &answer("")).is_inadequate());
        let checks = Checks::new().with(boxed).with(arced);
        assert_eq!(format!("{checks:?}"), r#"["non_empty", "not_truncated"]"#);
    }

    #[test]
    fn non_empty() {
        let r = req();
        assert_eq!(reason(&NonEmpty.check(&r, &answer(""))), Some(Inadequacy::EMPTY));
        assert_eq!(reason(&NonEmpty.check(&r, &answer(" \n\t "))), Some("empty"));
        assert!(NonEmpty.check(&r, &answer("ok")).is_adequate());
        let tool_only = answer("").with_tool_call(ToolCall::new("c1", "lookup", "{}"));
        assert!(NonEmpty.check(&r, &tool_only).is_adequate());
    }

    #[test]
    fn not_truncated() {
        let r = req();
        let cut = Completion::new("half an ans", FinishReason::Length, Usage::default());
        let v = NotTruncated.check(&r, &cut);
        assert_eq!(reason(&v), Some(Inadequacy::TRUNCATED));
        assert_eq!(v.inadequacy().and_then(Inadequacy::check), Some("not_truncated"));
        for fr in [FinishReason::Stop, FinishReason::ToolCalls, FinishReason::ContentFilter, FinishReason::Other] {
            assert!(NotTruncated.check(&r, &Completion::new("x", fr, Usage::default())).is_adequate());
        }
    }

    #[test]
    fn a_stop_at_the_callers_own_limit_is_not_truncation() {
        let at = |tokens| Completion::new("an answer cut at", FinishReason::Length, Usage::new(20, tokens));
        let limited = req().with_max_tokens(64);
        // Stopped at the caller's limit (or past it, as some providers count): adequate.
        assert!(NotTruncated.check(&limited, &at(64)).is_adequate());
        assert!(NotTruncated.check(&limited, &at(70)).is_adequate());
        // Usage not reported: taken as the caller's limit.
        assert!(NotTruncated.check(&limited, &at(0)).is_adequate());
        // Stopped below the caller's limit (the model's own output limit): truncated.
        assert_eq!(reason(&NotTruncated.check(&limited, &at(32))), Some(Inadequacy::TRUNCATED));
        // No caller limit: any length stop is truncation.
        assert_eq!(reason(&NotTruncated.check(&req(), &at(64))), Some(Inadequacy::TRUNCATED));
        assert_eq!(reason(&NotTruncated.check(&req(), &at(0))), Some(Inadequacy::TRUNCATED));
    }

    #[test]
    fn refusals_at_the_start_are_flagged() {
        let check = NoRefusal::default();
        for text in [
            "I'm sorry, but I can't help with that.",
            "  i'M SORRY, BUT I CAN'T do that",
            "I\u{2019}m sorry, but I can\u{2019}t assist with this request.",
            "I cannot help with that request.",
            "I can't assist with that.",
            "As an AI language model, I cannot browse the internet.",
            "I am unable to comply.",
            "**I'm sorry, but I cannot** provide that.",
            "> Sorry,\n  I can't do that",
            "I apologize, but I cannot share it.",
        ] {
            let v = check.check(&req(), &answer(text));
            assert_eq!(reason(&v), Some(Inadequacy::REFUSAL), "{text:?}");
        }
    }

    #[test]
    fn refusals_later_or_lookalikes_are_not_flagged() {
        let check = NoRefusal::new();
        for text in [
            "",
            "   ",
            "Paris is the capital of France. Sorry, I can't be more precise.",
            "Here is the code. I'm sorry, but I can't test it myself.",
            "I can't help but notice the loop never ends.",
            "I cannot stress enough how useful this is.",
            "Sorry for the delay! Here it is.",
            "I'm",
            "I",
        ] {
            assert!(check.check(&req(), &answer(text)).is_adequate(), "{text:?}");
        }
        // A phrase that only begins after the window is not read.
        let late = format!("{}I'm sorry, but I can't", "x".repeat(REFUSAL_WINDOW));
        assert!(!check.is_refusal(&late));
        // Multi-byte text cut at the window must not panic.
        let wide = "é".repeat(REFUSAL_WINDOW);
        assert!(!check.is_refusal(&wide));
    }

    #[test]
    fn refusal_phrases_are_configurable() {
        let none = NoRefusal::empty();
        assert!(!none.is_refusal("I'm sorry, but I can't"));
        let custom = NoRefusal::empty().with_phrase("Nope,").with_phrase("").with_phrase("   ");
        assert!(custom.is_refusal("nope, not doing it"));
        assert!(!custom.is_refusal("Sure, here you go"));
        assert!(!custom.is_refusal(""));
        let both = NoRefusal::new().with_phrase("Je ne peux pas");
        assert!(both.is_refusal("I am unable to do that"));
        assert!(both.is_refusal("Je  ne peux pas"));
    }

    #[test]
    fn valid_json_when_asked() {
        let r = json_req();
        assert!(ValidJson.check(&r, &answer(r#"{"a": [1, 2, {"b": null}]}"#)).is_adequate());
        assert!(ValidJson.check(&r, &answer("  \n{\"a\":1}\n ")).is_adequate());
        assert!(ValidJson.check(&r, &answer("```json\n{\"a\": 1}\n```")).is_adequate());
        assert!(ValidJson.check(&r, &answer("```JSON\n{\"a\": 1}\n```\n")).is_adequate());
        assert!(ValidJson.check(&r, &answer("```\n{\"a\": 1}\n```")).is_adequate());
        for bad in [
            "",
            "   ",
            "{\"a\": 1",
            "Sure! {\"a\": 1}",
            "{\"a\": 1} trailing",
            "```json\n{\"a\": 1}\n",
            "```python\n{\"a\": 1}\n```",
            "[1, 2]",
            "```json {\"a\": 1}```",
        ] {
            assert_eq!(reason(&ValidJson.check(&r, &answer(bad))), Some(Inadequacy::INVALID_JSON), "{bad:?}");
        }
    }

    #[test]
    fn valid_json_with_schema_and_without_json() {
        let schema = req().with_response_format(ResponseFormat::JsonSchema {
            name: "list".into(),
            schema: r#"{"type":"array"}"#.into(),
        });
        assert!(ValidJson.check(&schema, &answer("[1, 2]")).is_adequate());
        assert!(ValidJson.check(&schema, &answer("```json\n{\"k\": true}\n```")).is_adequate());
        assert_eq!(reason(&ValidJson.check(&schema, &answer("not json"))), Some("invalid_json"));
        // Text requests are not held to JSON.
        assert!(ValidJson.check(&req(), &answer("not json at all")).is_adequate());
        assert!(ValidJson.check(&req(), &answer("")).is_adequate());
    }

    #[test]
    fn valid_json_tool_arguments() {
        let good = answer("").with_tool_call(ToolCall::new("c1", "f", r#"{"q": "x"}"#));
        assert!(ValidJson.check(&req(), &good).is_adequate());
        // A tool-call-only answer to a JSON request is not held to the format.
        assert!(ValidJson.check(&json_req(), &good).is_adequate());
        let empty_args = answer("").with_tool_call(ToolCall::new("c1", "f", ""));
        assert!(ValidJson.check(&req(), &empty_args).is_adequate());
        let bad = answer("calling").with_tool_call(ToolCall::new("c1", "f", "{}")).with_tool_call(ToolCall::new(
            "c2",
            "f",
            r#"{"q": "x"#,
        ));
        assert_eq!(reason(&ValidJson.check(&req(), &bad)), Some(Inadequacy::INVALID_TOOL_ARGUMENTS));
    }

    #[test]
    fn checks_first_failure_wins() {
        let standard = Checks::standard();
        assert_eq!(standard.len(), 4);
        assert!(!standard.is_empty());
        assert!(standard.check(&req(), &answer("Paris.")).is_adequate());
        // Empty and truncated: the first check (non_empty) wins.
        let v = standard.check(&req(), &Completion::new("", FinishReason::Length, Usage::default()));
        assert_eq!(v.to_string(), "`non_empty`: empty");
        let v = standard.check(&json_req(), &answer("I'm sorry, but I can't produce JSON"));
        assert_eq!(v.to_string(), "`no_refusal`: refusal");
        let v = standard.check(&json_req(), &answer("nope"));
        assert_eq!(v.to_string(), "`valid_json`: invalid_json");
        assert!(Checks::new().check(&req(), &answer("")).is_adequate());
        assert_eq!(Checks::default().name(), "checks");
    }

    #[test]
    fn closures_and_names() {
        let c = from_fn("has_digit", |_: &Request, r: &Completion| {
            if r.content.chars().any(|c| c.is_ascii_digit()) {
                Verdict::Adequate
            } else {
                Verdict::inadequate("no_digit")
            }
        });
        assert_eq!(c.name(), "has_digit");
        assert!(c.check(&req(), &answer("42")).is_adequate());
        let v = c.check(&req(), &answer("forty-two"));
        assert_eq!(v.inadequacy().and_then(Inadequacy::check), Some("has_digit"));
        assert_eq!(v.to_string(), "`has_digit`: no_digit");
        assert!(format!("{c:?}").contains("has_digit"));

        // An explicit name is kept; a nameless verdict inside `Checks` gets the check's name.
        let named = from_fn("outer", |_: &Request, _: &Completion| Inadequacy::new("inner", "x").into());
        assert_eq!(named.check(&req(), &answer("a")).to_string(), "`inner`: x");
        struct Nameless;
        impl QualityCheck for Nameless {
            fn check(&self, _: &Request, _: &Completion) -> Verdict {
                Verdict::inadequate(String::from("dynamic_reason"))
            }
        }
        assert_eq!(Nameless.check(&req(), &answer("a")).to_string(), "dynamic_reason");
        let v = Checks::new().with(Nameless).check(&req(), &answer("a"));
        assert_eq!(v.to_string(), "`custom`: dynamic_reason");
        assert_eq!(Verdict::Adequate.to_string(), "adequate");
        assert!(Verdict::Adequate.inadequacy().is_none());
    }

    #[test]
    fn verdicts_never_show_the_answer() {
        let secret = "I'm sorry, but I can't reveal hunter2";
        let v = Checks::standard().check(&req(), &answer(secret));
        let inadequacy = v.inadequacy().unwrap();
        for shown in [format!("{v:?}"), format!("{inadequacy:?}"), format!("{inadequacy}"), v.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("sorry"), "{shown}");
        }
        let json = Checks::standard().check(&json_req(), &answer("{\"password\": \"hunter2\""));
        assert!(!format!("{json:?}").contains("hunter2"));
    }
}
