//! [`Bedrock`]: an adapter for AWS Bedrock's Converse and ConverseStream APIs (feature `bedrock`),
//! with requests signed by AWS Signature Version 4.
//!
//! ```no_run
//! use switchyard::provider::bedrock::Bedrock;
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};
//!
//! # async fn run() -> switchyard::Result<()> {
//! // Keys given explicitly...
//! let bedrock = Bedrock::builder("bedrock")
//!     .region("us-east-1")
//!     .credentials("AKIA...", "secret access key")
//!     .build()?;
//! // ...or from the environment and the shared files (`~/.aws/credentials`, `AWS_PROFILE`).
//! let from_env = Bedrock::builder_from_env("bedrock-eu").region("eu-west-1").build()?;
//! let catalog = Catalog::new([
//!     ModelProfile::new("haiku", "bedrock")
//!         .with_api_name("anthropic.claude-3-5-haiku-20241022-v1:0")
//!         .with_pricing(Pricing::per_mtok(0.80, 4.00).with_cached_input(0.08)),
//!     ModelProfile::new("nova-eu", "bedrock-eu")
//!         .with_api_name("eu.amazon.nova-lite-v1:0")
//!         .with_pricing(Pricing::per_mtok(0.06, 0.24)),
//! ])?;
//! let router = Router::builder().catalog(catalog).provider(bedrock).provider(from_env).build()?;
//! let answer = router.complete(Request::new("Say hello in French.")).await?;
//! println!("{}", answer.content());
//! # Ok(()) }
//! # let _ = run;
//! ```
//!
//! # Endpoints
//!
//! Each call is `POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse` (or
//! `/converse-stream`), where the model id is the profile's `api_name`: a model id
//! (`anthropic.claude-3-5-haiku-20241022-v1:0`), an inference profile (`us.amazon.nova-pro-v1:0`) or
//! an ARN, URI-encoded (`:` and `/` included). [`base_url`](BedrockBuilder::base_url) replaces the
//! endpoint (a VPC endpoint, a FIPS endpoint, a test server); the signature still names the region.
//!
//! # Credentials
//!
//! Every request is signed with SigV4 (service `bedrock`), signing `host`, `x-amz-content-sha256`
//! (the body's SHA-256), `x-amz-date` and, with temporary credentials, `x-amz-security-token`. The
//! keys come from the builder ([`credentials`](BedrockBuilder::credentials),
//! [`session_token`](BedrockBuilder::session_token)) or, through
//! [`Bedrock::builder_from_env`], from the standard chain as far as static keys go: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the profile `AWS_PROFILE`
//! (else `default`) in `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`,
//! `AWS_CONFIG_FILE`); the region from `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile. SSO,
//! assumed roles, web identity, `credential_process` and the ECS and EC2 metadata endpoints are not
//! followed; a profile that relies on them is a configuration error. Credentials are read once, when
//! the adapter is built: temporary credentials expire, so build a new adapter with fresh ones.
//!
//! # Usage
//!
//! Converse's `inputTokens` excludes the tokens read from and written to the prompt cache
//! (`cacheReadInputTokens`, `cacheWriteInputTokens`); [`Usage::input_tokens`](crate::Usage::input_tokens)
//! counts them all. The adapter reports `inputTokens + cacheReadInputTokens + cacheWriteInputTokens`
//! as input and `cacheReadInputTokens` as cached input; cache writes are priced as ordinary input.
//!
//! See `docs/providers.md` for the fields sent and read, the error mapping and what is not covered.

mod credentials;
mod errors;
mod eventstream;
mod sigv4;
mod stream;
mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HOST, HeaderMap, HeaderName, HeaderValue};

use self::credentials::Credentials;
use self::sigv4::{AmzTime, Scope, Signable};
use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::provider::http::{CallContext, CommonBuilder, KeyHeader, Transport};
use crate::request::Request;

pub(crate) use self::wire::decode_response;

/// The SigV4 service name of Bedrock's runtime endpoints.
const SERVICE: &str = "bedrock";

/// A provider for AWS Bedrock's Converse API.
///
/// Cheap to clone: clones share one HTTP client. Built with [`Bedrock::builder`],
/// [`Bedrock::builder_from_env`] or [`Bedrock::from_env`]. `Debug` shows the endpoint, the region
/// and the settings, never the keys, the session token or a signature.
#[derive(Clone)]
pub struct Bedrock {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    region: String,
    credentials: Credentials,
}

impl fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bedrock")
            .field("name", &self.inner.transport.name())
            .field("region", &self.inner.region)
            .field("credentials", &self.inner.credentials)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

impl Bedrock {
    /// A builder for an adapter registered under `name` (the name catalog models give as their
    /// provider). Set a [`region`](BedrockBuilder::region) and
    /// [`credentials`](BedrockBuilder::credentials).
    pub fn builder(name: impl Into<String>) -> BedrockBuilder {
        // No key header: requests carry a signature instead.
        let key_header = KeyHeader::Raw(HeaderName::from_static("authorization"));
        BedrockBuilder {
            common: CommonBuilder::new(name.into(), "", key_header),
            region: None,
            base_url: None,
            credentials: None,
            session_token: None,
        }
    }

    /// A builder with the region and credentials of the standard AWS chain, as far as the adapter
    /// follows it (see the module docs): the environment, then static keys of the profile
    /// `AWS_PROFILE` (else `default`) in the shared files. Setters called afterwards replace what it
    /// found. This and [`from_env`](Self::from_env) are the only places the adapter reads the
    /// environment.
    ///
    /// Errors (half a key pair, an unreadable file, a profile that relies on SSO or an assumed
    /// role) wait in the builder until [`build`](BedrockBuilder::build).
    #[allow(clippy::disallowed_methods, reason = "the one constructor documented to read the environment")]
    pub fn builder_from_env(name: impl Into<String>) -> BedrockBuilder {
        let mut builder = Self::builder(name);
        match credentials::resolve(&|key| std::env::var(key).ok()) {
            Ok(resolved) => {
                builder.region = resolved.region;
                builder.credentials = resolved.credentials;
            }
            Err(e) => builder.common.error = Some(e),
        }
        builder
    }

    /// An adapter named `bedrock` with the region and credentials of
    /// [`builder_from_env`](Self::builder_from_env).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when no region or no credentials were found, or when a value is invalid.
    pub fn from_env() -> Result<Self> {
        Self::builder_from_env("bedrock").build()
    }

    /// The URL of one call: the model id, URI-encoded, and the operation.
    fn url(&self, model: &ModelProfile, stream: bool) -> Result<reqwest::Url> {
        let id = model.api_name();
        if id.is_empty() {
            return Err(Error::new(ErrorKind::BadRequest, "the model's `api_name` is empty"));
        }
        let operation = if stream { "converse-stream" } else { "converse" };
        let mut url = self.inner.transport.endpoint().clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/model/{}/{operation}", sigv4::uri_encode(id, false)));
        Ok(url)
    }

    /// The body of one call.
    fn body(&self, request: &Request) -> Result<Vec<u8>> {
        let wire = wire::encode(request, request.max_tokens)?;
        serde_json::to_vec(&wire).map_err(|_| Error::new(ErrorKind::BadRequest, "the request cannot be encoded"))
    }

    /// The headers that sign a POST of `body` to `url` now.
    fn sign(&self, url: &reqwest::Url, body: &[u8], stream: bool) -> Result<HeaderMap> {
        let time = AmzTime::now();
        let payload_sha256 = sigv4::sha256_hex(body);
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(Error::config(format!("provider `{}` has no host to sign", self.name()))),
        };
        let credentials = &self.inner.credentials;
        let mut signed = vec![
            ("host", host.as_str()),
            ("x-amz-content-sha256", payload_sha256.as_str()),
            ("x-amz-date", time.date_time.as_str()),
        ];
        if let Some(token) = &credentials.session_token {
            signed.push(("x-amz-security-token", token.expose()));
        }
        let signable = Signable {
            method: "POST",
            path: url.path(),
            query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            headers: signed.clone(),
            payload_sha256: &payload_sha256,
            double_encode_path: true,
        };
        let scope = Scope { time: &time, region: &self.inner.region, service: SERVICE };
        let authorization = sigv4::authorization(credentials, &scope, &signable);
        let mut headers = HeaderMap::with_capacity(6);
        let invalid = || Error::config(format!("provider `{}`: a signed header cannot be sent", self.name()));
        for (name, value) in signed.into_iter().chain([("authorization", authorization.as_str())]) {
            let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            if matches!(name, "authorization" | "x-amz-security-token") {
                value.set_sensitive(true);
            }
            let name = if name == "host" { HOST } else { HeaderName::from_static(name) };
            headers.insert(name, value);
        }
        if stream {
            headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.amazon.eventstream"));
        }
        Ok(headers)
    }

    /// The URL, the body and the signed headers of one call.
    fn prepare(
        &self,
        model: &ModelProfile,
        request: &Request,
        stream: bool,
    ) -> Result<(reqwest::Url, Vec<u8>, HeaderMap)> {
        let url = self.url(model, stream)?;
        let body = self.body(request)?;
        let headers = self.sign(&url, &body, stream)?;
        Ok((url, body, headers))
    }
}

/// Builds a [`Bedrock`] adapter. Setters record errors, which [`build`](Self::build) returns.
#[must_use]
pub struct BedrockBuilder {
    common: CommonBuilder,
    region: Option<String>,
    base_url: Option<String>,
    credentials: Option<Credentials>,
    session_token: Option<String>,
}

impl fmt::Debug for BedrockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockBuilder")
            .field("common", &self.common)
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl BedrockBuilder {
    /// The AWS region (`us-east-1`, `eu-west-3`, ...): the endpoint's and the signature's.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An access key id and its secret access key. Replaces credentials set earlier or found by
    /// [`Bedrock::builder_from_env`], their session token included.
    pub fn credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(&access_key_id.into(), &secret_access_key.into(), None));
        self.session_token = None;
        self
    }

    /// The session token of temporary credentials (STS, SSO exports), sent as
    /// `x-amz-security-token`. Set it after [`credentials`](Self::credentials).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// The endpoint instead of `https://bedrock-runtime.{region}.amazonaws.com`: a VPC or FIPS
    /// endpoint, or a test server. The adapter appends `/model/{modelId}/converse`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Adds a header to every request (unsigned). Values are treated as secrets: `Debug` shows header
    /// names only.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.common.header(name, value);
        self
    }

    super::http::transport_setters!();

    /// Checks the settings and builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`]: an empty name, no region or one that is not a region name, no
    /// credentials, a session token without keys, keys or a token that an HTTP header cannot carry,
    /// a base URL that is not http(s), an invalid header, a zero timeout or limit; and whatever
    /// [`Bedrock::builder_from_env`] found wrong.
    pub fn build(mut self) -> Result<Bedrock> {
        if let Some(e) = self.common.error.take() {
            return Err(e);
        }
        let name = self.common.name.clone();
        let Some(region) = self.region.take().filter(|r| !r.is_empty()) else {
            return Err(Error::config(format!(
                "provider `{name}`: no AWS region (set `region`, or `AWS_REGION` for `builder_from_env`)"
            )));
        };
        if !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(Error::config(format!(
                "provider `{name}`: the AWS region must be a region name such as `us-east-1`"
            )));
        }
        let Some(mut credentials) = self.credentials.take() else {
            return Err(Error::config(format!(
                "provider `{name}`: no AWS credentials (set `credentials`, or use `builder_from_env`)"
            )));
        };
        if let Some(token) = self.session_token.take() {
            credentials = Credentials::new(
                credentials.access_key_id.expose(),
                credentials.secret_access_key.expose(),
                Some(&token),
            );
        }
        let header_safe = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !header_safe(credentials.access_key_id.expose())
            || credentials.secret_access_key.expose().is_empty()
            || credentials.session_token.as_ref().is_some_and(|t| !header_safe(t.expose()))
        {
            return Err(Error::config(format!(
                "provider `{name}`: the AWS access key id or session token is empty or has characters an HTTP header cannot carry"
            )));
        }
        self.common.base_url =
            self.base_url.take().unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        let transport = self.common.build("")?;
        Ok(Bedrock { inner: Arc::new(Inner { transport, region, credentials }) })
    }
}

#[async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &str {
        self.inner.transport.name()
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let cx = CallContext { model, request };
        let (url, body, headers) = self.prepare(model, request, false)?;
        let name = self.name();
        let map =
            |status: u16, h: &HeaderMap, b: &[u8]| errors::http_error(name, status, h, b, &cx, &self.inner.credentials);
        let transport = &self.inner.transport;
        let (mut response, deadlines) = transport.post_with(url, body, false, headers, &cx, &map).await?;
        let bytes = transport.read_json_body(&mut response, &deadlines).await?;
        decode_response(name, &bytes)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let cx = CallContext { model, request };
        let (url, body, headers) = self.prepare(model, request, true)?;
        let name = self.name();
        let map =
            |status: u16, h: &HeaderMap, b: &[u8]| errors::http_error(name, status, h, b, &cx, &self.inner.credentials);
        let transport = &self.inner.transport;
        let (response, deadlines) = transport.post_with(url, body, true, headers, &cx, &map).await?;
        let framing = eventstream::Decoder::new(self.inner.transport.max_event_bytes());
        let decoder = stream::EventDecoder::new(transport.name.clone());
        transport.framed_stream(response, deadlines, model.id.clone(), framing, decoder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter() -> Bedrock {
        Bedrock::builder("b").region("us-east-1").credentials("AKIDEXAMPLE", "SECRETKEY").build().unwrap()
    }

    #[test]
    fn urls_encode_the_model_id() {
        let b = adapter();
        let url =
            |api: &str, stream| b.url(&ModelProfile::new("m", "b").with_api_name(api), stream).unwrap().to_string();
        assert_eq!(
            url("anthropic.claude-3-haiku-20240307-v1:0", false),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
        assert_eq!(
            url("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0", true),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.amazon.nova-pro-v1%3A0/converse-stream"
        );
        let proxied = Bedrock::builder("b")
            .region("us-east-1")
            .credentials("AKID", "S")
            .base_url("http://127.0.0.1:9/prefix/")
            .build()
            .unwrap();
        let model = ModelProfile::new("m", "b").with_api_name("a:b");
        assert_eq!(proxied.url(&model, false).unwrap().as_str(), "http://127.0.0.1:9/prefix/model/a%3Ab/converse");
        assert!(b.url(&ModelProfile::new("m", "b").with_api_name(""), false).is_err());
    }

    #[test]
    fn signed_headers() {
        let b = Bedrock::builder("b")
            .region("us-west-2")
            .credentials("AKIDEXAMPLE", "SECRETKEY")
            .session_token("TOKEN")
            .build()
            .unwrap();
        let url = reqwest::Url::parse("http://127.0.0.1:8080/model/x%3A1/converse").unwrap();
        let h = b.sign(&url, b"{}", true).unwrap();
        assert_eq!(h["host"], "127.0.0.1:8080");
        assert_eq!(h["x-amz-security-token"], "TOKEN");
        assert!(h["x-amz-security-token"].is_sensitive() && h["authorization"].is_sensitive());
        assert_eq!(h["x-amz-content-sha256"], sigv4::sha256_hex(b"{}"));
        assert_eq!(h["accept"], "application/vnd.amazon.eventstream");
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(
            auth.contains("/us-west-2/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
    }

    #[test]
    fn builder_refuses_bad_settings_and_hides_secrets() {
        let ok = || Bedrock::builder("b").region("us-east-1").credentials("AKID", "SECRET");
        for b in [
            Bedrock::builder("b").credentials("AKID", "SECRET"),
            Bedrock::builder("b").region("us-east-1"),
            ok().region("evil.example.com/"),
            ok().region(""),
            Bedrock::builder("").region("us-east-1").credentials("AKID", "SECRET"),
            Bedrock::builder("b").region("us-east-1").credentials("AK ID", "SECRET"),
            Bedrock::builder("b").region("us-east-1").credentials("AKID", ""),
            ok().session_token("bad\ntoken"),
            ok().base_url("ftp://x"),
        ] {
            assert_eq!(b.build().unwrap_err().kind(), ErrorKind::Config);
        }
        let text =
            format!("{:?} {:?}", ok().session_token("TOKENVALUE"), ok().session_token("TOKENVALUE").build().unwrap());
        assert!(!text.contains("SECRET") && !text.contains("TOKENVALUE") && !text.contains("AKID"), "{text}");
    }
}
