//! [`Gemini`]: an adapter for Google's Gemini models (feature `gemini`), through the Gemini API
//! (Google AI Studio, an API key) or Vertex AI (a project, a location and an OAuth bearer token).
//!
//! ```no_run
//! use switchyard::provider::gemini::Gemini;
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};
//!
//! # async fn run() -> switchyard::Result<()> {
//! // The Gemini API with a key from Google AI Studio.
//! let gemini = Gemini::builder("gemini").api_key("AIza...").build()?;
//! // The same models on Vertex AI, with an access token (`gcloud auth print-access-token`).
//! let vertex = Gemini::builder("vertex").vertex("my-project", "us-central1").bearer_token("ya29....").build()?;
//! let catalog = Catalog::new([
//!     ModelProfile::new("flash", "gemini")
//!         .with_api_name("gemini-2.5-flash")
//!         .with_pricing(Pricing::per_mtok(0.30, 2.50).with_cached_input(0.075)),
//!     ModelProfile::new("flash-vertex", "vertex")
//!         .with_api_name("gemini-2.5-flash")
//!         .with_pricing(Pricing::per_mtok(0.30, 2.50)),
//! ])?;
//! let router = Router::builder().catalog(catalog).provider(gemini).provider(vertex).build()?;
//! let answer = router.complete(Request::new("Say hello in French.")).await?;
//! println!("{}", answer.content());
//! # Ok(()) }
//! # let _ = run;
//! ```
//!
//! # Endpoints
//!
//! Each call goes to `{root}/models/{api_name}:generateContent`, or
//! `:streamGenerateContent?alt=sse` for streams, where the root is
//! `https://generativelanguage.googleapis.com/v1beta` for the Gemini API and
//! `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google`
//! for Vertex AI (`https://aiplatform.googleapis.com/...` for the `global` location). A
//! [`base_url`](GeminiBuilder::base_url) replaces the host part (`.../v1beta`, or `.../v1` before
//! `/projects` on Vertex AI). An `api_name` may carry the `models/` prefix of Google's resource
//! names; it is dropped.
//!
//! # Credentials
//!
//! An API key goes in the `x-goog-api-key` header (never in the URL's `key=` parameter, which would
//! end up in proxies' logs); a bearer token in `Authorization: Bearer`. The adapter does not mint or
//! refresh tokens: Vertex AI access tokens expire (after an hour by default), so build a new adapter
//! with a fresh token, or put a proxy that adds credentials in front ([`http_client`](GeminiBuilder::http_client)).
//!
//! # Usage
//!
//! Gemini's `promptTokenCount` already includes the tokens read from a context cache
//! (`cachedContentTokenCount`), as [`Usage::input_tokens`](crate::Usage::input_tokens) does;
//! `toolUsePromptTokenCount` (tool results fed back by Google-side tools) is added to it. Its
//! `candidatesTokenCount` does *not* include the thinking tokens (`thoughtsTokenCount`), which are
//! billed as output: the adapter reports `candidatesTokenCount + thoughtsTokenCount` as output and
//! `thoughtsTokenCount` as reasoning.
//!
//! # Tool call ids and thought signatures
//!
//! Gemini matches function responses to calls by name; its function calls usually carry no id, so
//! the adapter numbers them (`call_0`, `call_1`, ... within one answer). A tool result names its call
//! by that id; the adapter looks the function's name up in the nearest earlier assistant turn that
//! made the call. Gemini 3 models attach an opaque `thoughtSignature` to function calls and refuse a
//! conversation that replays the calls without it: the adapter appends it to the call's id after
//! `~sig~` and sends it back from there, so the id must be passed back unchanged.
//!
//! See `docs/providers.md` for the fields sent and read, the error mapping and what is not covered.

mod stream;
mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderName;

use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::provider::http::{CallContext, CommonBuilder, KeyHeader, Secret, Transport};
use crate::request::Request;

pub(crate) use self::stream::ChunkDecoder;
pub(crate) use self::wire::decode_response;

/// The Gemini API's root (the part before `/models/{model}:generateContent`).
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// A provider for Google's Gemini models, through the Gemini API or Vertex AI.
///
/// Cheap to clone: clones share one HTTP client. Built with [`Gemini::builder`] or
/// [`Gemini::from_env`]. `Debug` shows the endpoint and settings, never the key or token.
#[derive(Clone)]
pub struct Gemini {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    vertex: bool,
    openapi_schemas: bool,
}

impl fmt::Debug for Gemini {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gemini")
            .field("name", &self.inner.transport.name())
            .field("transport", &self.inner.transport)
            .field("vertex", &self.inner.vertex)
            .field("openapi_schemas", &self.inner.openapi_schemas)
            .finish()
    }
}

impl Gemini {
    /// A builder for an adapter registered under `name` (the name catalog models give as their
    /// provider), pointed at the Gemini API until [`vertex`](GeminiBuilder::vertex) or
    /// [`base_url`](GeminiBuilder::base_url) says otherwise.
    pub fn builder(name: impl Into<String>) -> GeminiBuilder {
        let key_header = KeyHeader::Raw(HeaderName::from_static("x-goog-api-key"));
        GeminiBuilder {
            common: CommonBuilder::new(name.into(), DEFAULT_BASE_URL, key_header),
            base_url: None,
            vertex: None,
            api_key: None,
            bearer_token: None,
            openapi_schemas: false,
        }
    }

    /// An adapter named `gemini` for the Gemini API, with the key from `GOOGLE_API_KEY` or, when that
    /// is not set, `GEMINI_API_KEY` (the order of Google's own SDKs), and the API root from
    /// `GEMINI_BASE_URL` when set. This is the only place the adapter reads the environment.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when neither key is set, or when a value is invalid.
    #[allow(clippy::disallowed_methods, reason = "the one constructor documented to read the environment")]
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(key) = var("GOOGLE_API_KEY").or_else(|| var("GEMINI_API_KEY")) else {
            return Err(Error::config("neither `GOOGLE_API_KEY` nor `GEMINI_API_KEY` is set"));
        };
        let mut builder = Self::builder("gemini").api_key(key);
        if let Some(base) = var("GEMINI_BASE_URL") {
            builder = builder.base_url(base);
        }
        builder.build()
    }

    /// The URL of one call: the model and the method appended to the endpoint.
    fn url(&self, model: &ModelProfile, stream: bool) -> Result<reqwest::Url> {
        let name = model.api_name();
        let name = name.strip_prefix("models/").unwrap_or(name);
        if name.is_empty() {
            return Err(Error::new(ErrorKind::BadRequest, "the model's `api_name` is empty"));
        }
        let method = if stream { "streamGenerateContent" } else { "generateContent" };
        let mut url = self.inner.transport.endpoint_with(&["models", &format!("{name}:{method}")])?;
        if stream {
            url.query_pairs_mut().append_pair("alt", "sse");
        }
        Ok(url)
    }

    fn body(&self, request: &Request) -> Result<Vec<u8>> {
        let wire = wire::encode(request, self.inner.openapi_schemas)?;
        serde_json::to_vec(&wire).map_err(|_| Error::new(ErrorKind::BadRequest, "the request cannot be encoded"))
    }
}

/// Builds a [`Gemini`] adapter. Setters record errors, which [`build`](Self::build) returns.
#[must_use]
pub struct GeminiBuilder {
    common: CommonBuilder,
    base_url: Option<String>,
    vertex: Option<(String, String)>,
    api_key: Option<Secret>,
    bearer_token: Option<Secret>,
    openapi_schemas: bool,
}

impl fmt::Debug for GeminiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiBuilder")
            .field("common", &self.common)
            .field("vertex", &self.vertex)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[redacted]"))
            .field("openapi_schemas", &self.openapi_schemas)
            .finish_non_exhaustive()
    }
}

impl GeminiBuilder {
    /// The API root, before `/models/...` (Gemini API) or before `/projects/...` (Vertex AI).
    /// Default `https://generativelanguage.googleapis.com/v1beta`, or
    /// `https://{location}-aiplatform.googleapis.com/v1` with [`vertex`](Self::vertex).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Vertex AI instead of the Gemini API: Google's models in `project` (its id) at `location`
    /// (`us-central1`, `europe-west4`, `global`, ...). Use with [`bearer_token`](Self::bearer_token).
    pub fn vertex(mut self, project: impl Into<String>, location: impl Into<String>) -> Self {
        self.vertex = Some((project.into(), location.into()));
        self
    }

    /// The API key, sent as `x-goog-api-key` (the Gemini API; Vertex AI's express mode).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key.into()));
        self
    }

    /// An OAuth 2.0 access token, sent as `Authorization: Bearer` (Vertex AI). The adapter does not
    /// refresh it.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(Secret::new(token.into()));
        self
    }

    /// Adds a header to every request (`x-goog-user-project` for quota on another project). Values are
    /// treated as secrets: `Debug` shows header names only.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.common.header(name, value);
        self
    }

    /// Sends tool and answer schemas as `parameters` and `responseSchema` (Google's OpenAPI 3.0
    /// subset, for models that predate JSON Schema support) instead of `parametersJsonSchema` and
    /// `responseJsonSchema` (the default, which take a JSON Schema as it is). The schema text is sent
    /// as it is either way: with this on, it must fit the subset.
    pub fn openapi_schemas(mut self, yes: bool) -> Self {
        self.openapi_schemas = yes;
        self
    }

    super::http::transport_setters!();

    /// Checks the settings and builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`]: an empty name, a base URL that is not http(s), both an API key and a
    /// bearer token, a Vertex AI project or location that is empty or has characters a URL cannot
    /// carry as they are, an invalid header, a zero timeout or limit, a key that cannot be sent in a
    /// header.
    pub fn build(mut self) -> Result<Gemini> {
        let path = match &self.vertex {
            None => String::new(),
            Some((project, location)) => {
                let host_safe = |s: &str| s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                let path_safe =
                    |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
                if project.is_empty() || !path_safe(project) {
                    return Err(Error::config(format!(
                        "provider `{}`: the Vertex AI project must be a project id (letters, digits, `-`, `_`, `.`, `:`)",
                        self.common.name
                    )));
                }
                if location.is_empty() || !host_safe(location) {
                    return Err(Error::config(format!(
                        "provider `{}`: the Vertex AI location must be a region name such as `us-central1`",
                        self.common.name
                    )));
                }
                if self.base_url.is_none() {
                    self.common.base_url = if location == "global" {
                        "https://aiplatform.googleapis.com/v1".to_owned()
                    } else {
                        format!("https://{location}-aiplatform.googleapis.com/v1")
                    };
                }
                format!("/projects/{project}/locations/{location}/publishers/google")
            }
        };
        if let Some(url) = self.base_url.take() {
            self.common.base_url = url;
        }
        self.common.key_or_token(self.api_key.take(), self.bearer_token.take())?;
        let vertex = self.vertex.is_some();
        let transport = self.common.build(&path)?;
        Ok(Gemini { inner: Arc::new(Inner { transport, vertex, openapi_schemas: self.openapi_schemas }) })
    }
}

#[async_trait]
impl Provider for Gemini {
    fn name(&self) -> &str {
        self.inner.transport.name()
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let cx = CallContext { model, request };
        let body = self.body(request)?;
        let url = self.url(model, false)?;
        let (mut response, deadlines) = self.inner.transport.post_to(url, body, false, &cx).await?;
        let bytes = self.inner.transport.read_json_body(&mut response, &deadlines).await?;
        decode_response(self.name(), &bytes, request)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let cx = CallContext { model, request };
        let body = self.body(request)?;
        let url = self.url(model, true)?;
        let (response, deadlines) = self.inner.transport.post_to(url, body, true, &cx).await?;
        let decoder = ChunkDecoder::new(self.inner.transport.name.clone());
        self.inner.transport.event_stream(response, deadlines, model.id.clone(), decoder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(builder: GeminiBuilder, api_name: &str, stream: bool) -> String {
        let model = ModelProfile::new("m", "g").with_api_name(api_name);
        builder.build().unwrap().url(&model, stream).unwrap().to_string()
    }

    #[test]
    fn endpoints_for_both_apis() {
        let g = || Gemini::builder("g").api_key("k");
        assert_eq!(
            url(g(), "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            url(g(), "models/gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(g().base_url("http://127.0.0.1:9/v1beta/"), "a/b", false),
            "http://127.0.0.1:9/v1beta/models/a%2Fb:generateContent"
        );
        let v = |location: &str| Gemini::builder("v").vertex("my-proj", location).bearer_token("t");
        assert_eq!(
            url(v("us-central1"), "gemini-2.0-flash", false),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            url(v("global"), "gemini-2.0-flash", true),
            "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn builder_refuses_bad_settings() {
        for b in [
            Gemini::builder("g").api_key("k").bearer_token("t"),
            Gemini::builder("g").vertex("", "us-central1"),
            Gemini::builder("g").vertex("p/../x", "us-central1"),
            Gemini::builder("g").vertex("p", "evil.example.com/"),
            Gemini::builder("g").vertex("p", ""),
            Gemini::builder(""),
        ] {
            assert_eq!(b.build().unwrap_err().kind(), ErrorKind::Config);
        }
        let text = format!(
            "{:?} {:?}",
            Gemini::builder("g").api_key("AIza-SECRET"),
            Gemini::builder("g").bearer_token("ya29-SECRET").build().unwrap()
        );
        assert!(!text.contains("SECRET"), "{text}");
    }
}
