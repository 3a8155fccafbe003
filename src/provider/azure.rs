//! [`AzureOpenAi`]: an adapter for Azure OpenAI deployments (feature `azure`), with an `api-key` or a
//! Microsoft Entra ID bearer token.
//!
//! ```no_run
//! use switchyard::provider::azure::AzureOpenAi;
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};
//!
//! # async fn run() -> switchyard::Result<()> {
//! let azure = AzureOpenAi::builder("azure")
//!     .endpoint("https://my-resource.openai.azure.com")
//!     .api_key("0123456789abcdef0123456789abcdef")
//!     .build()?;
//! // The catalog model's `api_name` is the *deployment* name chosen when the model was deployed.
//! let catalog = Catalog::new([ModelProfile::new("gpt-4o-mini", "azure")
//!     .with_api_name("my-gpt-4o-mini")
//!     .with_pricing(Pricing::per_mtok(0.15, 0.60).with_cached_input(0.075))])?;
//! let router = Router::builder().catalog(catalog).provider(azure).build()?;
//! let answer = router.complete(Request::new("Say hello in French.")).await?;
//! println!("{}", answer.content());
//! # Ok(()) }
//! # let _ = run;
//! ```
//!
//! # Endpoints
//!
//! Azure serves a model through a *deployment* of a resource: the deployment's name, not the model's,
//! is what a call names, and it is the catalog model's [`api_name`](crate::ModelProfile::api_name).
//! By default each call goes to the classic data-plane path
//!
//! `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={version}`
//!
//! where `endpoint` is the resource's endpoint (`https://NAME.openai.azure.com`, or
//! `https://NAME.cognitiveservices.azure.com` for Azure AI Foundry resources; a trailing `/openai` is
//! accepted) and the version is [`DEFAULT_API_VERSION`] unless
//! [`api_version`](AzureOpenAiBuilder::api_version) says otherwise. With
//! [`v1`](AzureOpenAiBuilder::v1), calls go to the v1 API that Azure now recommends,
//! `POST {endpoint}/openai/v1/chat/completions`, with the deployment name as the body's `model` and no
//! `api-version` (unless one is set explicitly, such as `preview`).
//!
//! The body, the answer and the stream are OpenAI's chat-completions format, written and read by the
//! [`openai`](super::openai) adapter's codec (so the feature enables `openai`). Azure's additions,
//! `prompt_filter_results` and the per-choice `content_filter_results`, are ignored; an answer the
//! content filter cut ends with [`FinishReason::ContentFilter`](crate::FinishReason::ContentFilter).
//!
//! # Credentials
//!
//! An API key goes in the `api-key` header; a Microsoft Entra ID access token
//! ([`bearer_token`](AzureOpenAiBuilder::bearer_token), scope
//! `https://cognitiveservices.azure.com/.default`) in `Authorization: Bearer`. The adapter neither
//! mints nor refreshes tokens: they expire (after about an hour), so build a new adapter with a fresh
//! token and hand the router a new one, or put a proxy that adds credentials in front
//! ([`http_client`](AzureOpenAiBuilder::http_client)).
//!
//! # Content filter
//!
//! A prompt Azure's content filter flags is refused with a 400 whose `error.code` is
//! `content_filter` (`innererror.code` `ResponsibleAIPolicyViolation`): the adapter returns
//! [`ErrorKind::ContentFilter`], naming the flagged categories (`hate`, `jailbreak`, ...). It is not
//! retryable, and a router moves on to its next candidate (`RetryPolicy::on_non_retryable`), since
//! another model or provider may not filter the same text.
//!
//! See `docs/providers.md` for the fields sent and read, the error mapping and what is not covered.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderName;

use super::openai::ChunkDecoder;
use super::openai::codec::{self, BodyOptions};
use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::provider::http::{CallContext, CommonBuilder, KeyHeader, Secret, Transport};
use crate::request::Request;

/// The `api-version` sent on the classic deployments path unless
/// [`api_version`](AzureOpenAiBuilder::api_version) says otherwise: the latest generally available
/// data-plane inference version, per Microsoft's "Azure OpenAI API version lifecycle" page
/// (<https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle>). It accepts
/// `max_completion_tokens` and `stream_options`.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// A provider for Azure OpenAI deployments.
///
/// Cheap to clone: clones share one HTTP client. Built with [`AzureOpenAi::builder`] or
/// [`AzureOpenAi::from_env`]. `Debug` shows the endpoint and settings, never the key or token.
#[derive(Clone)]
pub struct AzureOpenAi {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    /// The `api-version` query parameter, if any (always on the deployments path).
    api_version: Option<String>,
    /// The v1 path rather than the deployments path.
    v1: bool,
    body: BodyOptions,
}

impl fmt::Debug for AzureOpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOpenAi")
            .field("name", &self.inner.transport.name())
            .field("transport", &self.inner.transport)
            .field("v1", &self.inner.v1)
            .field("api_version", &self.inner.api_version)
            .field("max_completion_tokens", &self.inner.body.max_completion_tokens)
            .field("stream_usage", &self.inner.body.stream_usage)
            .finish()
    }
}

impl AzureOpenAi {
    /// A builder for an adapter registered under `name` (the name catalog models give as their
    /// provider). [`endpoint`](AzureOpenAiBuilder::endpoint) is required.
    pub fn builder(name: impl Into<String>) -> AzureOpenAiBuilder {
        AzureOpenAiBuilder {
            common: CommonBuilder::new(name.into(), "", KeyHeader::Raw(HeaderName::from_static("api-key"))),
            endpoint: None,
            api_key: None,
            bearer_token: None,
            api_version: None,
            v1: false,
            body: BodyOptions::default(),
        }
    }

    /// An adapter named `azure` configured from the environment: the resource endpoint from
    /// `AZURE_OPENAI_ENDPOINT`, the key from `AZURE_OPENAI_API_KEY` and, when set, the `api-version`
    /// from `AZURE_OPENAI_API_VERSION` (the variables of Microsoft's SDKs). This is the only place the
    /// adapter reads the environment; Entra ID tokens and the v1 path are configured explicitly.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the endpoint or the key is not set, or when a value is invalid.
    #[allow(clippy::disallowed_methods, reason = "the one constructor documented to read the environment")]
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var("AZURE_OPENAI_ENDPOINT") else {
            return Err(Error::config("`AZURE_OPENAI_ENDPOINT` is not set"));
        };
        let Some(key) = var("AZURE_OPENAI_API_KEY") else {
            return Err(Error::config("`AZURE_OPENAI_API_KEY` is not set"));
        };
        let mut builder = Self::builder("azure").endpoint(endpoint).api_key(key);
        if let Some(version) = var("AZURE_OPENAI_API_VERSION") {
            builder = builder.api_version(version);
        }
        builder.build()
    }

    /// The URL of one call: the deployment path with its `api-version`, or the v1 endpoint.
    fn url(&self, model: &ModelProfile) -> Result<reqwest::Url> {
        let deployment = model.api_name();
        if deployment.is_empty() {
            return Err(Error::new(ErrorKind::BadRequest, "the model's `api_name` (the deployment) is empty"));
        }
        let mut url = if self.inner.v1 {
            self.inner.transport.endpoint().clone()
        } else {
            self.inner.transport.endpoint_with(&["deployments", deployment, "chat", "completions"])?
        };
        if let Some(version) = &self.inner.api_version {
            url.query_pairs_mut().append_pair("api-version", version);
        }
        Ok(url)
    }

    async fn post(
        &self,
        model: &ModelProfile,
        request: &Request,
        stream: bool,
    ) -> Result<(reqwest::Response, crate::provider::http::Deadlines)> {
        let cx = CallContext { model, request };
        let url = self.url(model)?;
        let body = codec::request_body(model, request, stream, self.inner.body)?;
        self.inner.transport.post_to(url, body, stream, &cx).await
    }
}

/// Builds an [`AzureOpenAi`] adapter. Setters record errors, which [`build`](Self::build) returns.
#[must_use]
pub struct AzureOpenAiBuilder {
    common: CommonBuilder,
    endpoint: Option<String>,
    api_key: Option<Secret>,
    bearer_token: Option<Secret>,
    api_version: Option<String>,
    v1: bool,
    body: BodyOptions,
}

impl fmt::Debug for AzureOpenAiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOpenAiBuilder")
            .field("common", &self.common)
            .field("endpoint", &self.endpoint.as_deref().map(crate::provider::http::redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "[redacted]"))
            .field("api_version", &self.api_version)
            .field("v1", &self.v1)
            .finish_non_exhaustive()
    }
}

impl AzureOpenAiBuilder {
    /// The resource's endpoint, `https://NAME.openai.azure.com` (or `.cognitiveservices.azure.com`),
    /// as the Azure portal shows it under "Keys and Endpoint"; a trailing `/openai` is accepted. Required.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The resource's API key, sent as the `api-key` header.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key.into()));
        self
    }

    /// A Microsoft Entra ID access token (scope `https://cognitiveservices.azure.com/.default`), sent
    /// as `Authorization: Bearer` instead of a key. The adapter does not refresh it: when it expires,
    /// build a new adapter with a new token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(Secret::new(token.into()));
        self
    }

    /// The `api-version` query parameter. Default [`DEFAULT_API_VERSION`] on the deployments path;
    /// with [`v1`](Self::v1) none is sent unless set here (`preview` for the v1 API's preview features).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Calls the v1 API, `{endpoint}/openai/v1/chat/completions`, with the deployment name as the
    /// body's `model`, instead of the classic `/openai/deployments/{deployment}/...` path.
    pub fn v1(mut self) -> Self {
        self.v1 = true;
        self
    }

    /// Adds a header to every request (`x-ms-client-request-id`, a gateway's subscription key). Values
    /// are treated as secrets: `Debug` shows header names only.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.common.header(name, value);
        self
    }

    /// Sends the output limit as `max_completion_tokens` (required by the o-series reasoning models)
    /// instead of `max_tokens` (the default).
    pub fn max_completion_tokens(mut self, yes: bool) -> Self {
        self.body.max_completion_tokens = yes;
        self
    }

    /// Asks for usage at the end of streams with `stream_options: {"include_usage": true}` (the
    /// default). Turn it off for `api-version`s before `2024-09-01-preview`, which reject the field.
    pub fn stream_usage(mut self, yes: bool) -> Self {
        self.body.stream_usage = yes;
        self
    }

    super::http::transport_setters!();

    /// Checks the settings and builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`]: no endpoint, an endpoint that is not http(s), both an API key and a
    /// bearer token, an empty `api-version`, an empty name, an invalid header, a zero timeout or
    /// limit, a key that cannot be sent in a header.
    pub fn build(mut self) -> Result<AzureOpenAi> {
        let name = self.common.name.clone();
        let Some(endpoint) = self.endpoint.take() else {
            return Err(Error::config(format!("provider `{name}`: the Azure OpenAI endpoint is not set")));
        };
        let endpoint = endpoint.trim_end_matches('/');
        self.common.base_url = endpoint.strip_suffix("/openai").unwrap_or(endpoint).to_owned();
        if self.api_version.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::config(format!("provider `{name}`: the `api-version` is empty")));
        }
        self.common.key_or_token(self.api_key.take(), self.bearer_token.take())?;
        self.common.content_filter_errors = true;
        let path = if self.v1 { "/openai/v1/chat/completions" } else { "/openai" };
        let api_version = match (self.v1, self.api_version) {
            (false, version) => Some(version.unwrap_or_else(|| DEFAULT_API_VERSION.to_owned())),
            (true, version) => version,
        };
        let transport = self.common.build(path)?;
        Ok(AzureOpenAi { inner: Arc::new(Inner { transport, api_version, v1: self.v1, body: self.body }) })
    }
}

#[async_trait]
impl Provider for AzureOpenAi {
    fn name(&self) -> &str {
        self.inner.transport.name()
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let (mut response, deadlines) = self.post(model, request, false).await?;
        let bytes = self.inner.transport.read_json_body(&mut response, &deadlines).await?;
        codec::decode_completion(self.name(), &bytes, request)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let (response, deadlines) = self.post(model, request, true).await?;
        let decoder = ChunkDecoder::new(self.inner.transport.name.clone());
        self.inner.transport.event_stream(response, deadlines, model.id.clone(), decoder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(builder: AzureOpenAiBuilder, api_name: &str) -> String {
        let model = ModelProfile::new("m", "azure").with_api_name(api_name);
        builder.build().unwrap().url(&model).unwrap().to_string()
    }

    #[test]
    fn deployment_and_v1_urls() {
        let b = |endpoint: &str| AzureOpenAi::builder("azure").endpoint(endpoint).api_key("k");
        assert_eq!(
            url(b("https://res.openai.azure.com"), "gpt-4o-mini"),
            "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        );
        // A trailing slash or `/openai` is the same endpoint; odd deployment names are escaped.
        for endpoint in ["https://res.openai.azure.com/", "https://res.openai.azure.com/openai/"] {
            assert_eq!(
                url(b(endpoint).api_version("2025-04-01-preview"), "a/b c"),
                "https://res.openai.azure.com/openai/deployments/a%2Fb%20c/chat/completions?api-version=2025-04-01-preview"
            );
        }
        assert_eq!(
            url(b("https://res.cognitiveservices.azure.com").v1(), "gpt-4o-mini"),
            "https://res.cognitiveservices.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            url(b("https://res.openai.azure.com").v1().api_version("preview"), "d"),
            "https://res.openai.azure.com/openai/v1/chat/completions?api-version=preview"
        );
        let empty = ModelProfile::new("m", "azure").with_api_name("");
        let azure = b("https://res.openai.azure.com").build().unwrap();
        assert_eq!(azure.url(&empty).unwrap_err().kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn builder_refuses_bad_settings_and_hides_secrets() {
        let ok = || AzureOpenAi::builder("azure").endpoint("https://res.openai.azure.com");
        for b in [
            AzureOpenAi::builder("azure").api_key("k"),
            ok().api_key("k").bearer_token("t"),
            ok().api_version(" "),
            ok().endpoint("ftp://res.openai.azure.com"),
            AzureOpenAi::builder("").endpoint("https://res.openai.azure.com"),
            ok().header("bad header", "x"),
        ] {
            assert_eq!(b.build().unwrap_err().kind(), ErrorKind::Config);
        }
        let text = format!(
            "{:?} {:?} {:?}",
            ok().api_key("KEY-SECRET"),
            ok().bearer_token("TOKEN-SECRET").build().unwrap(),
            ok().endpoint("https://user:PASS-SECRET@res.openai.azure.com").api_key("KEY-SECRET"),
        );
        assert!(!text.contains("SECRET") && text.contains("[redacted]"), "{text}");
    }
}
