//! The settings every adapter builder shares, the API key and how it is sent, and the checks that
//! turn them into a [`Transport`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::transport::Transport;
use crate::error::{Error, Result};

/// An API key. Its `Debug` never shows it, and the header that carries it is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(key: String) -> Self {
        Self(key)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The key as a sensitive header value, `prefix` first (`"Bearer "`).
    fn header_value(&self, prefix: &str) -> Result<HeaderValue> {
        let mut v = HeaderValue::try_from(format!("{prefix}{}", self.0))
            .map_err(|_| Error::config("the API key contains characters an HTTP header cannot carry"))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the key is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    #[cfg_attr(
        not(any(feature = "openai", feature = "gemini")),
        allow(dead_code, reason = "only the OpenAI and Gemini adapters send bearer keys")
    )]
    Bearer,
    /// The key as-is in this header (`x-api-key`, Azure's `api-key`).
    Raw(HeaderName),
}

/// Default connect timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for the response headers (and, for streams, the first event).
pub(crate) const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default limit on a whole call, streamed or not.
pub(crate) const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Default limit on a response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Default limit on one server-sent event.
pub(crate) const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The settings every adapter builder shares. Errors from setters wait in `error` until `build`.
pub(crate) struct CommonBuilder {
    pub(crate) name: String,
    pub(crate) base_url: String,
    pub(crate) api_key: Option<Secret>,
    pub(crate) key_header: KeyHeader,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) total_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) error: Option<Error>,
    /// Map a 4xx whose body says the content filter refused the prompt to
    /// [`ErrorKind::ContentFilter`](crate::ErrorKind::ContentFilter) (Azure's `content_filter`).
    pub(crate) content_filter_errors: bool,
}

impl fmt::Debug for CommonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("base_url", &redact_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl CommonBuilder {
    /// Takes an API key or a bearer token (sent as `Authorization: Bearer`), whichever was given.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when both were.
    #[cfg(any(feature = "gemini", feature = "azure"))]
    pub(crate) fn key_or_token(&mut self, key: Option<Secret>, token: Option<Secret>) -> Result<()> {
        match (key, token) {
            (Some(_), Some(_)) => {
                return Err(Error::config(format!(
                    "provider `{}`: set either an API key or a bearer token, not both",
                    self.name
                )));
            }
            (Some(key), None) => self.api_key = Some(key),
            (None, Some(token)) => {
                self.api_key = Some(token);
                self.key_header = KeyHeader::Bearer;
            }
            (None, None) => {}
        }
        Ok(())
    }

    pub(crate) fn new(name: String, base_url: &str, key_header: KeyHeader) -> Self {
        Self {
            name,
            base_url: base_url.to_owned(),
            api_key: None,
            key_header,
            headers: HeaderMap::new(),
            query: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            client: None,
            error: None,
            content_filter_errors: false,
        }
    }

    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    pub(crate) fn header(&mut self, name: &str, value: &str) {
        let name = match HeaderName::try_from(name) {
            Ok(n) => n,
            Err(_) => return self.fail(Error::config(format!("`{name}` is not a valid HTTP header name"))),
        };
        match HeaderValue::try_from(value) {
            Ok(mut v) => {
                // Extra headers often carry credentials (an organisation id, a gateway token).
                v.set_sensitive(true);
                self.headers.append(name, v);
            }
            Err(_) => {
                self.fail(Error::config(format!("the value of header `{name}` is not a valid HTTP header value")))
            }
        }
    }

    #[cfg_attr(not(feature = "openai"), allow(dead_code, reason = "only the OpenAI adapter lets callers choose"))]
    pub(crate) fn key_header(&mut self, name: &str) {
        match HeaderName::try_from(name) {
            Ok(n) => self.key_header = KeyHeader::Raw(n),
            Err(_) => self.fail(Error::config(format!("`{name}` is not a valid HTTP header name"))),
        }
    }

    /// Checks the settings and builds the client and the endpoint `base_url` + `path`.
    pub(crate) fn build(self, path: &str) -> Result<Transport> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.name.is_empty() {
            return Err(Error::config("a provider name must not be empty"));
        }
        for (what, d) in [
            ("connect_timeout", self.connect_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("timeout", self.total_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::config(format!("provider `{}`: `{what}` must be greater than zero", self.name)));
            }
        }
        if self.max_response_bytes == 0 || self.max_event_bytes == 0 {
            return Err(Error::config(format!("provider `{}`: size limits must be greater than zero", self.name)));
        }
        let base = self.base_url.trim_end_matches('/');
        // Messages show the URL without credentials a user may have put in it.
        let shown = redact_url(base);
        let mut endpoint = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| Error::config(format!("provider `{}`: base URL `{shown}` is invalid: {e}", self.name)))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::config(format!("provider `{}`: base URL `{shown}` must be http or https", self.name)));
        }
        if !self.query.is_empty() {
            let mut pairs = endpoint.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = self.headers;
        if let Some(key) = &self.api_key {
            match &self.key_header {
                KeyHeader::Bearer => headers.insert(reqwest::header::AUTHORIZATION, key.header_value("Bearer ")?),
                KeyHeader::Raw(name) => headers.insert(name.clone(), key.header_value("")?),
            };
        }
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .tls_backend_preconfigured(tls_config()?)
                .connect_timeout(self.connect_timeout)
                // Configuration is explicit: no proxy from the environment. Pass a client of your own
                // (`http_client`) to use one.
                .no_proxy()
                // A redirect would carry the key headers (and, for 307/308, the prompt) to wherever
                // it points; providers do not redirect API calls, so a 3xx is an error instead.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Error::config("cannot build the HTTP client").with_source(e))?,
        };
        Ok(Transport {
            name: Arc::from(self.name),
            client,
            endpoint,
            headers,
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.total_timeout,
            max_response_bytes: self.max_response_bytes,
            max_event_bytes: self.max_event_bytes,
            api_key: self.api_key,
            content_filter_errors: self.content_filter_errors,
        })
    }
}

/// The transport setters every adapter builder shares (the builder keeps a `common` field).
macro_rules! transport_setters {
    () => {
        /// The longest wait for a TCP (and TLS) connection. Default 10 s.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.connect_timeout = timeout;
            self
        }

        /// The longest wait, from sending, for the response headers and, when streaming, for the first
        /// event that carries something. Default 120 s.
        pub fn first_byte_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.first_byte_timeout = timeout;
            self
        }

        /// The longest a whole call may take, from sending to the last byte, streamed or not. Default
        /// 600 s; `Duration::MAX` for no limit.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.total_timeout = timeout;
            self
        }

        /// The largest response body accepted, streamed or not; a larger one fails with
        /// [`ErrorKind::Decode`](crate::ErrorKind::Decode). Default 32 MiB.
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.common.max_response_bytes = bytes;
            self
        }

        /// The largest server-sent event (or line) accepted in a stream. Default 1 MiB.
        pub fn max_event_bytes(mut self, bytes: usize) -> Self {
            self.common.max_event_bytes = bytes;
            self
        }

        /// Uses this HTTP client instead of building one, for a proxy or custom TLS roots. The connect
        /// timeout, the redirect policy and the TLS settings are then the client's; the other timeouts
        /// and limits still apply. The client is a reqwest 0.13 `Client` (with its `rustls` feature,
        /// aws-lc and the platform's verifier; the adapter's own uses ring and the webpki roots).
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.common.client = Some(client);
            self
        }
    };
}
pub(crate) use transport_setters;

/// The TLS settings of the adapters' own HTTP client: rustls with the `ring` provider, TLS 1.2 and
/// 1.3, the Mozilla roots compiled in (`webpki-roots`, so no certificate store is read from the
/// machine) and HTTP/1.1 only. Built per client, so no process-wide crypto provider is installed.
fn tls_config() -> Result<rustls::ClientConfig> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("cannot set up TLS").with_source(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A URL for messages and `Debug`: without user name, password, query and fragment (where
/// credentials hide), whether or not it parses.
///
/// Whatever the URL, nothing between `://` (or the start) and the last `@` is shown, and nothing from
/// the first `?` or `#` on; the rest is cut to 64 characters. The adapters show their endpoints so.
///
/// ```
/// use switchyard::provider::redact_url;
/// assert_eq!(redact_url("https://user:pw@example.com/v1?key=k"), "https://example.com/v1");
/// assert_eq!(redact_url("not a url user:pw@host?key=k"), "[redacted]@host?[redacted]");
/// ```
pub fn redact_url(url: &str) -> String {
    // A URL the parser understands is shown normalised; the text rules below still apply to it, since
    // a URL that cannot have a host (`foo:user:pass@host`) keeps its credentials in the path.
    let normalised = reqwest::Url::parse(url).ok().map(|mut u| {
        u.set_query(None);
        u.set_fragment(None);
        let _ = u.set_username("");
        let _ = u.set_password(None);
        String::from(u)
    });
    redact_text(normalised.as_deref().unwrap_or(url))
}

/// [`redact_url`]'s rules on text alone.
fn redact_text(url: &str) -> String {
    let mut shown = String::new();
    let rest = match url.rfind('@') {
        Some(at) => {
            // Keep the scheme when `://` comes before the last `@`; drop everything else up to it.
            if let Some(scheme_end) = url[..at].find("://") {
                shown.push_str(&url[..scheme_end + 3]);
            }
            shown.push_str("[redacted]@");
            &url[at + 1..]
        }
        None => url,
    };
    let cut = rest.find(['?', '#']);
    shown.extend(rest[..cut.unwrap_or(rest.len())].chars().filter(|c| !c.is_control()).take(64));
    if let Some(cut) = cut {
        shown.push_str(&rest[cut..cut + 1]);
        shown.push_str("[redacted]");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// reqwest 0.13 with `rustls-no-provider` panics when a client is built without a crypto
    /// provider; the adapters' own config must carry one, with roots and HTTP/1.1 only.
    #[test]
    fn the_default_client_has_its_own_tls_provider_and_roots() {
        let config = tls_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(!webpki_roots::TLS_SERVER_ROOTS.is_empty());
        reqwest::Client::builder().tls_backend_preconfigured(config).build().unwrap();
    }

    #[test]
    fn urls_are_redacted_whether_or_not_they_parse() {
        for (url, shown) in [
            ("https://user:SECRET@api.example.com/v1?key=SECRET#SECRET", "https://api.example.com/v1"),
            ("http://user:SECRET@[::1", "http://[redacted]@[::1"),
            ("http://user:SE@CRET@[::1/v1?x=SECRET", "http://[redacted]@[::1/v1?[redacted]"),
            ("user:SECRET@host:99999", "[redacted]@host:99999"),
            ("http://host:99999/v1?key=SECRET", "http://host:99999/v1?[redacted]"),
            ("foo:user:SECRET@host", "[redacted]@host"),
            ("http://[::1/v1#SECRET", "http://[::1/v1#[redacted]"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("sk-live-abc".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        let v = s.header_value("Bearer ").unwrap();
        assert!(v.is_sensitive());
        assert!(Secret::new("bad\nkey".into()).header_value("").is_err());
    }
}
