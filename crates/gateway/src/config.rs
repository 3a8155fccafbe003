//! The gateway's configuration: a router configuration ([`RouterConfig`]) with two more sections,
//! `[server]` and `[[providers]]`.
//!
//! ```toml
//! # ... every field of a router config: seed, models, classifiers, policy, limits ...
//!
//! [server]
//! listen = "127.0.0.1:8080"
//! max_body_bytes = 4194304     # larger bodies get 413
//! max_concurrency = 256        # requests in flight; more get 503 with Retry-After
//! drain_timeout_ms = 30000     # on shutdown, how long in-flight requests, streams and kept-response writes may finish
//! tls = { cert = "server.pem", key = "server.key" }  # optional: HTTPS (PEM files; paths from the working directory)
//! stored_responses = 0         # Responses API answers kept for previous_response_id (0: none; in Redis with `state`)
//! stored_responses_ttl_ms = 3600000
//! stored_responses_max_bytes = 268435456   # all kept conversations together
//! state = { redis_url_env = "SWITCHYARD_REDIS_URL", namespace = "prod" }  # optional: limits shared by every replica
//!
//! [[server.keys]]              # virtual keys; none means open access
//! name = "team-a"              # the caller's name: per-key budgets and limits, sticky routing
//! key_env = "TEAM_A_KEY"       # the environment variable holding the key
//! tenant = "acme"              # optional: the tenant billed (per-tenant budgets and limits)
//!
//! [[providers]]
//! name = "openai"              # what models' `provider` field names
//! kind = "openai"              # openai | anthropic | gemini | azure | bedrock | simulated
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"
//! connect_timeout_ms = 10000
//! first_byte_timeout_ms = 120000
//! timeout_ms = 600000
//! ```
//!
//! Keys come from the environment only, never from the file. Unknown fields are refused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use switchyard::provider::anthropic::Anthropic;
use switchyard::provider::azure::AzureOpenAi;
use switchyard::provider::bedrock::Bedrock;
use switchyard::provider::gemini::Gemini;
use switchyard::provider::openai::OpenAi;
use switchyard::{Error, ErrorKind, Result, RouterBuilder, RouterConfig, SimulatedProvider};

/// The most requests `[server] max_concurrency` may let in at once (a semaphore's limit is far
/// above, but no server holds a million requests in flight).
pub const MAX_CONCURRENCY: usize = 1 << 20;

/// A gateway configuration, as loaded.
#[derive(Debug)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The router's part.
    pub router: RouterConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[providers]]`.
    pub providers: Vec<ProviderConfig>,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The address to listen on (default `127.0.0.1:8080`); `--listen` overrides it.
    pub listen: SocketAddr,
    /// The largest request body, in bytes (default 4 MiB).
    pub max_body_bytes: usize,
    /// Requests in flight at once, streams included (default 256).
    pub max_concurrency: usize,
    /// On shutdown, how long in-flight requests may take to finish, in milliseconds (default 30 s).
    pub drain_timeout_ms: u64,
    /// Virtual API keys. None: every caller is let in, as one anonymous caller.
    pub keys: Vec<KeyConfig>,
    /// HTTPS with this certificate and key; plain HTTP without.
    pub tls: Option<TlsConfig>,
    /// How many Responses API answers to keep in memory for `previous_response_id` and
    /// `GET /v1/responses/{id}` (default 0: none; the oldest go first). With [`state`](Self::state)
    /// they are kept in its Redis server for every replica, within the same bounds.
    pub stored_responses: usize,
    /// How long a kept response lives, in milliseconds (default one hour).
    pub stored_responses_ttl_ms: u64,
    /// How many bytes the kept responses may hold together (their texts, image URLs and objects;
    /// default 256 MiB): the oldest go first beyond it, and one larger is not kept. With
    /// [`state`](Self::state), the bytes of their JSON documents in Redis.
    pub stored_responses_max_bytes: usize,
    /// The state store shared with the other replicas; none: this process keeps its own.
    pub state: Option<StateConfig>,
}

/// `[server] state`: a Redis server that keeps the router's budgets, rate limits, caller limits,
/// sticky sessions and open circuits, and the kept Responses API answers, for every replica that
/// names the same server and namespace (docs/scaling.md). Needs the gateway's `redis` feature (on
/// by default). The store connects on its first call, so the gateway starts while Redis is down;
/// until it answers, each limit follows its failure policy (`on_store_failure`, per budget and rate
/// limit).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StateConfig {
    /// The environment variable that holds the server's URL, `redis://[user:password@]host[:port][/db]`
    /// (it may carry a password, so it is never in the file).
    pub redis_url_env: String,
    /// The prefix of every key (default `switchyard`): replicas that share limits use the same one,
    /// and separate deployments on one server different ones.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "switchyard".to_owned()
}

/// `[server] tls`: the server's certificate chain and private key, PEM files (the chain leaf first;
/// the key PKCS#8, PKCS#1 or SEC1). Read when the gateway is built; a file that cannot be read or
/// parsed stops the start with a message naming it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// The certificate chain.
    pub cert: std::path::PathBuf,
    /// The private key.
    pub key: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 4 << 20,
            max_concurrency: 256,
            drain_timeout_ms: 30_000,
            keys: Vec::new(),
            tls: None,
            stored_responses: 0,
            stored_responses_ttl_ms: 3_600_000,
            stored_responses_max_bytes: 256 << 20,
            state: None,
        }
    }
}

impl ServerConfig {
    /// The drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// One virtual key of `[[server.keys]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The caller's name: the router's key hint (per-key budgets, rate limits, sticky routing), and
    /// what logs and metrics show. Never the key itself.
    pub name: String,
    /// The environment variable that holds the key.
    pub key_env: String,
    /// The tenant its requests are billed to.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// One `[[providers]]` entry.
///
/// Its `Debug` output shows `base_url` without user name, password, query or fragment
/// ([`redact_url`](switchyard::provider::redact_url)).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The name models' `provider` field refers to.
    pub name: String,
    /// The adapter.
    pub kind: ProviderKind,
    /// The API root (the adapter's default when left out).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable that holds the API key (none: no credentials are sent).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// TCP and TLS connection timeout, in milliseconds.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Time to the response headers (and a stream's first event), in milliseconds.
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    /// The whole call, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// For `gemini` on Vertex AI and `azure` with Microsoft Entra ID: the environment variable that
    /// holds the bearer token (in place of `api_key_env`).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// For `azure`: the `api-version` query parameter (the adapter's default when left out).
    #[serde(default)]
    pub api_version: Option<String>,
    /// For `azure`: call the `/openai/v1` API (the deployment name in the body) instead of the
    /// per-deployment path.
    #[serde(default)]
    pub v1: bool,
    /// For `gemini` on Vertex AI: the Google Cloud project.
    #[serde(default)]
    pub vertex_project: Option<String>,
    /// For `gemini` on Vertex AI: the location (`us-central1`, `global`, ...).
    #[serde(default)]
    pub vertex_location: Option<String>,
    /// For `bedrock`: the AWS region (else the chain's: `AWS_REGION`, `AWS_DEFAULT_REGION`, the
    /// profile's).
    #[serde(default)]
    pub region: Option<String>,
    /// For `bedrock`: the variables that hold the access key id, the secret key and (optionally) a
    /// session token. Without them the adapter reads AWS's standard variables and shared files.
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    /// See `access_key_id_env`.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// See `access_key_id_env`.
    #[serde(default)]
    pub session_token_env: Option<String>,
    /// For `simulated`: the seed of its random answers.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url.as_deref().map(switchyard::provider::redact_url))
            .field("api_key_env", &self.api_key_env)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("first_byte_timeout_ms", &self.first_byte_timeout_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("bearer_token_env", &self.bearer_token_env)
            .field("api_version", &self.api_version)
            .field("v1", &self.v1)
            .field("vertex_project", &self.vertex_project)
            .field("vertex_location", &self.vertex_location)
            .field("region", &self.region)
            .field("access_key_id_env", &self.access_key_id_env)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field("session_token_env", &self.session_token_env)
            .field("seed", &self.seed)
            .finish()
    }
}

/// The adapters the gateway can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI and OpenAI-compatible servers (`switchyard::provider::openai`).
    Openai,
    /// Anthropic's Messages API (`switchyard::provider::anthropic`).
    Anthropic,
    /// Google's Gemini API, with an API key or on Vertex AI (`switchyard::provider::gemini`).
    Gemini,
    /// Azure OpenAI deployments (`switchyard::provider::azure`); `base_url` is the resource's
    /// endpoint.
    Azure,
    /// AWS Bedrock's Converse API (`switchyard::provider::bedrock`), SigV4-signed.
    Bedrock,
    /// The simulated provider: no network, no key (demos and tests).
    Simulated,
}

/// The gateway's sections of the file (every other key is the router's).
#[derive(Deserialize)]
struct Sections {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// The file with the gateway's tables (`[server]`, `[server.*]`, `[[server.keys]]`, `[[providers]]`)
/// blanked out line for line, so that the router's errors give the file's own line numbers.
fn router_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gateway = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            let name = trimmed.trim_start_matches('[').split(']').next().unwrap_or_default();
            let root = name.split('.').next().unwrap_or_default().trim().trim_matches('"');
            gateway = root == "server" || root == "providers";
        }
        if gateway {
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Whether `router_text` ([`router_part`] of `text`) holds everything of `text` but the gateway's
/// tables: the split goes by lines, and a multi-line value with a line that opens like a gateway
/// table would lose the lines after it.
fn splits_cleanly(text: &str, router_text: &str) -> bool {
    type Table = serde_json::Map<String, serde_json::Value>;
    let Ok(mut whole) = switchyard::config::__from_toml::<Table>(text) else { return true };
    whole.remove("server");
    whole.remove("providers");
    switchyard::config::__from_toml::<Table>(router_text).is_ok_and(|part| part == whole)
}

/// The value of the environment variable an entry's field (`field`) names, if it names one.
fn from_env(var: Option<&str>, field: &str, i: usize, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    env(var)
        .map(Some)
        .ok_or_else(|| config_error(format!("providers[{i}]: the environment variable `{var}` ({field}) is not set")))
}

/// An adapter's builder with an entry's timeouts set (the adapters' builders share these setters
/// but no trait).
macro_rules! with_timeouts {
    ($builder:expr, $p:expr) => {{
        let ms = Duration::from_millis;
        let mut b = $builder;
        if let Some(t) = $p.connect_timeout_ms {
            b = b.connect_timeout(ms(t));
        }
        if let Some(t) = $p.first_byte_timeout_ms {
            b = b.first_byte_timeout(ms(t));
        }
        if let Some(t) = $p.timeout_ms {
            b = b.timeout(ms(t));
        }
        b
    }};
}

/// An adapter's builder with an entry's base URL and timeouts set.
macro_rules! with_transport {
    ($builder:expr, $p:expr) => {{
        let mut b = $builder;
        if let Some(url) = &$p.base_url {
            b = b.base_url(url.clone());
        }
        with_timeouts!(b, $p)
    }};
}

/// An adapter's builder, built, its error naming the entry.
macro_rules! built {
    ($builder:expr, $i:expr) => {
        $builder.build().map_err(|e| config_error(format!("providers[{}]: {e}", $i)))?
    };
}

/// An HTTP adapter with an entry's base URL, key and timeouts, built.
macro_rules! http_adapter {
    ($builder:expr, $p:expr, $key:expr, $i:expr) => {{
        let mut b = with_transport!($builder, $p);
        if let Some(key) = $key {
            b = b.api_key(key);
        }
        built!(b, $i)
    }};
}

impl GatewayConfig {
    /// Reads a TOML file (a regular file of at most 64 MiB, as router configs are read).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the file cannot be read or is invalid, naming the field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = switchyard::config::__read_file(path)?;
        Self::from_toml_str(&text).map_err(|e| config_error(format!("`{}`: {e}", path.display())))
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the field.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let sections: Sections = switchyard::config::__from_toml(text)?;
        let router_text = router_part(text);
        if !splits_cleanly(text, &router_text) {
            return Err(config_error(
                "the router's part of the file cannot be told from the gateway's: write `server` and `providers` \
                 as `[server]` and `[[providers]]` tables, and a multi-line string or array that has a line starting \
                 with `[` on one line",
            ));
        }
        let router = RouterConfig::from_toml_str(&router_text)?;
        let config = Self { router, server: sections.server, providers: sections.providers };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let s = &self.server;
        if s.max_body_bytes == 0 || s.max_concurrency == 0 {
            return Err(config_error("server.max_body_bytes and server.max_concurrency must be positive"));
        }
        if s.max_concurrency > MAX_CONCURRENCY {
            return Err(config_error(format!("server.max_concurrency must be at most {MAX_CONCURRENCY}")));
        }
        if s.stored_responses > 0 && (s.stored_responses_ttl_ms == 0 || s.stored_responses_max_bytes == 0) {
            return Err(config_error(
                "server.stored_responses_ttl_ms and server.stored_responses_max_bytes must be positive to keep \
                 responses",
            ));
        }
        for (i, k) in s.keys.iter().enumerate() {
            if k.name.is_empty() || k.key_env.is_empty() {
                return Err(config_error(format!("server.keys[{i}]: `name` and `key_env` must not be empty")));
            }
            if s.keys[..i].iter().any(|o| o.name == k.name) {
                return Err(config_error(format!("server.keys[{i}]: the name `{}` is used twice", k.name)));
            }
        }
        for (i, p) in self.providers.iter().enumerate() {
            if self.providers[..i].iter().any(|o| o.name == p.name) {
                return Err(config_error(format!("providers[{i}]: the name `{}` is used twice", p.name)));
            }
            if (p.vertex_project.is_some() || p.vertex_location.is_some()) && p.kind != ProviderKind::Gemini {
                return Err(config_error(format!(
                    "providers[{i}]: vertex_project and vertex_location are for kind = \"gemini\""
                )));
            }
            if p.bearer_token_env.is_some() && !matches!(p.kind, ProviderKind::Gemini | ProviderKind::Azure) {
                return Err(config_error(format!(
                    "providers[{i}]: bearer_token_env is for kind = \"gemini\" or \"azure\""
                )));
            }
            let aws = p.region.is_some()
                || p.access_key_id_env.is_some()
                || p.secret_access_key_env.is_some()
                || p.session_token_env.is_some();
            if aws && p.kind != ProviderKind::Bedrock {
                return Err(config_error(format!(
                    "providers[{i}]: region and the AWS credential variables are for kind = \"bedrock\""
                )));
            }
            if (p.api_version.is_some() || p.v1) && p.kind != ProviderKind::Azure {
                return Err(config_error(format!("providers[{i}]: api_version and v1 are for kind = \"azure\"")));
            }
            for (field, ms) in [
                ("connect_timeout_ms", p.connect_timeout_ms),
                ("first_byte_timeout_ms", p.first_byte_timeout_ms),
                ("timeout_ms", p.timeout_ms),
            ] {
                if ms == Some(0) {
                    return Err(config_error(format!("providers[{i}].{field} must be positive")));
                }
            }
        }
        let names =
            self.router.models.iter().map(|m| m.id.as_str()).chain(self.router.groups.iter().map(|g| g.name.as_str()));
        if let Some(name) = names.chain(self.router.aliases.keys().map(String::as_str)).find(|n| *n == "auto") {
            return Err(config_error(format!(
                "`{name}` is the gateway's name for routing: no model, group or alias may take it"
            )));
        }
        for m in &self.router.models {
            if !self.providers.iter().any(|p| p.name == m.provider.as_str()) {
                return Err(config_error(format!(
                    "model `{}` names provider `{}`, which no [[providers]] entry defines",
                    m.id, m.provider
                )));
            }
        }
        Ok(())
    }

    /// The router's builder with every provider added, keys read through `env` (a variable's name to
    /// its value; [`std::env::var`] in the binary).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a key's variable is unset, or an adapter refuses its settings.
    pub fn router_builder(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<RouterBuilder> {
        let mut builder = self.router.builder()?;
        for (i, p) in self.providers.iter().enumerate() {
            let key = from_env(p.api_key_env.as_deref(), "api_key_env", i, env)?;
            builder = match p.kind {
                ProviderKind::Openai => builder.provider(http_adapter!(OpenAi::builder(p.name.clone()), p, key, i)),
                ProviderKind::Anthropic => {
                    builder.provider(http_adapter!(Anthropic::builder(p.name.clone()), p, key, i))
                }
                ProviderKind::Gemini => {
                    let mut b = Gemini::builder(p.name.clone());
                    match (&p.vertex_project, &p.vertex_location) {
                        (Some(project), Some(location)) => b = b.vertex(project.clone(), location.clone()),
                        (None, None) => {}
                        _ => {
                            return Err(config_error(format!(
                                "providers[{i}]: vertex_project and vertex_location go together"
                            )));
                        }
                    }
                    if let Some(token) = from_env(p.bearer_token_env.as_deref(), "bearer_token_env", i, env)? {
                        b = b.bearer_token(token);
                    }
                    builder.provider(http_adapter!(b, p, key, i))
                }
                ProviderKind::Bedrock => {
                    if p.api_key_env.is_some() {
                        return Err(config_error(format!(
                            "providers[{i}]: a bedrock provider signs with AWS credentials: use access_key_id_env and secret_access_key_env, or AWS's own variables and files"
                        )));
                    }
                    let id = from_env(p.access_key_id_env.as_deref(), "access_key_id_env", i, env)?;
                    let secret = from_env(p.secret_access_key_env.as_deref(), "secret_access_key_env", i, env)?;
                    let token = from_env(p.session_token_env.as_deref(), "session_token_env", i, env)?;
                    let mut b = match (id, secret) {
                        (Some(id), Some(secret)) => Bedrock::builder(p.name.clone()).credentials(id, secret),
                        (None, None) if token.is_none() => Bedrock::builder_from_env(p.name.clone()),
                        _ => {
                            return Err(config_error(format!(
                                "providers[{i}]: access_key_id_env and secret_access_key_env go together (session_token_env with them)"
                            )));
                        }
                    };
                    if let Some(token) = token {
                        b = b.session_token(token);
                    }
                    if let Some(region) = &p.region {
                        b = b.region(region.clone());
                    }
                    builder.provider(built!(with_transport!(b, p), i))
                }
                ProviderKind::Azure => {
                    let Some(endpoint) = &p.base_url else {
                        return Err(config_error(format!(
                            "providers[{i}]: an azure provider needs base_url, the resource's endpoint"
                        )));
                    };
                    let mut b = AzureOpenAi::builder(p.name.clone()).endpoint(endpoint.clone());
                    if let Some(key) = key {
                        b = b.api_key(key);
                    }
                    if let Some(token) = from_env(p.bearer_token_env.as_deref(), "bearer_token_env", i, env)? {
                        b = b.bearer_token(token);
                    }
                    if let Some(version) = &p.api_version {
                        b = b.api_version(version.clone());
                    }
                    if p.v1 {
                        b = b.v1();
                    }
                    builder.provider(built!(with_timeouts!(b, p), i))
                }
                ProviderKind::Simulated => {
                    if p.base_url.is_some() || p.api_key_env.is_some() {
                        return Err(config_error(format!(
                            "providers[{i}]: a simulated provider takes no base_url or api_key_env"
                        )));
                    }
                    builder.provider(SimulatedProvider::new(p.name.clone()).seed(p.seed.unwrap_or(0)))
                }
            };
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODELS: &str = r#"
[[models]]
id = "mini"
provider = "sim"
context_window = 128000
max_output_tokens = 16384
pricing = { input_per_mtok = 0.15, output_per_mtok = 0.6 }
"#;

    fn err(text: &str) -> String {
        GatewayConfig::from_toml_str(text).expect_err("refused").to_string()
    }

    #[test]
    fn sections_split_from_the_router_config() {
        let text = format!(
            "{MODELS}\n[server]\nlisten = \"127.0.0.1:9000\"\n[[server.keys]]\nname = \"a\"\nkey_env = \"A_KEY\"\n\
             [[providers]]\nname = \"sim\"\nkind = \"simulated\"\n"
        );
        let c = GatewayConfig::from_toml_str(&text).expect("valid");
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.server.keys[0].name, "a");
        assert_eq!(c.router.models.len(), 1);
        assert_eq!(c.providers[0].kind, ProviderKind::Simulated);
        c.router_builder(&|_| None).expect("builds").build().expect("a router");
    }

    #[test]
    fn a_value_that_the_split_would_cut_is_refused_by_name() {
        let sim = "[[providers]]\nname = \"sim\"\nkind = \"simulated\"\n";
        let cut = MODELS.replace("id = \"mini\"", "id = \"mini\"\napi_name = '''\n[server]\n'''");
        let e = err(&format!("{cut}{sim}"));
        assert!(e.contains("a multi-line string or array that has a line starting with `[` on one line"), "{e}");
        // On one line, the same value is read.
        let one = MODELS.replace("id = \"mini\"", "id = \"mini\"\napi_name = '[server]'");
        GatewayConfig::from_toml_str(&format!("{one}{sim}")).unwrap();
    }

    #[test]
    fn debug_output_hides_credentials_in_a_base_url() {
        let text = format!(
            "{MODELS}\n[[providers]]\nname = \"sim\"\nkind = \"openai\"\n\
             base_url = \"https://team:s3cret-pw@llm.example.com/v1?api-key=k3y\"\n"
        );
        let config = GatewayConfig::from_toml_str(&text).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-pw") && !shown.contains("k3y"), "{shown}");
        assert!(shown.contains("base_url: Some(\"https://llm.example.com/v1\")"), "{shown}");
    }

    #[test]
    fn bad_configs_name_what_is_wrong() {
        let sim = "[[providers]]\nname = \"sim\"\nkind = \"simulated\"\n";
        assert!(err(MODELS).contains("provider `sim`"));
        assert!(err(&format!("{MODELS}{sim}[server]\nlisten = \"nowhere\"\n")).contains("listen"));
        assert!(err(&format!("{MODELS}{sim}[server]\nmax_concurrency = 0\n")).contains("max_concurrency"));
        let huge = err(&format!("{MODELS}{sim}[server]\nmax_concurrency = 9223372036854775807\n"));
        assert!(huge.contains("max_concurrency must be at most 1048576"), "{huge}");
        let keep = "[server]\nstored_responses = 10\n";
        assert!(err(&format!("{MODELS}{sim}{keep}stored_responses_ttl_ms = 0\n")).contains("stored_responses_ttl_ms"));
        assert!(err(&format!("{MODELS}{sim}{keep}stored_responses_max_bytes = 0\n")).contains("max_bytes"));
        assert!(err(&format!("{MODELS}{sim}[server]\nlisten_port = 1\n")).contains("listen_port"));
        assert!(err(&format!("{MODELS}{sim}{sim}")).contains("used twice"));
        assert!(err(&format!("{MODELS}[[providers]]\nname = \"sim\"\nkind = \"watsonx\"\n")).contains("watsonx"));
        assert!(err("[[models]]\nid = 3\n").contains("models"));
        assert!(err(&format!("{MODELS}{sim}[aliases]\nauto = \"mini\"\n")).contains("`auto`"));
        let vertex_on_openai = "[[providers]]\nname = \"sim\"\nkind = \"openai\"\nvertex_project = \"p\"\n";
        assert!(err(&format!("{MODELS}{vertex_on_openai}")).contains("kind = \"gemini\""));
        let v1_on_gemini = "[[providers]]\nname = \"sim\"\nkind = \"gemini\"\nv1 = true\n";
        assert!(err(&format!("{MODELS}{v1_on_gemini}")).contains("kind = \"azure\""));
        let half_aws = "[[providers]]\nname = \"sim\"\nkind = \"bedrock\"\naccess_key_id_env = \"A\"\n";
        let c = GatewayConfig::from_toml_str(&format!("{MODELS}{half_aws}")).expect("parses");
        let e = c.router_builder(&|_| Some("x".into())).expect_err("half a key pair").to_string();
        assert!(e.contains("go together"), "{e}");
        let region_on_openai = "[[providers]]\nname = \"sim\"\nkind = \"openai\"\nregion = \"us-east-1\"\n";
        assert!(err(&format!("{MODELS}{region_on_openai}")).contains("kind = \"bedrock\""));
        let azure = "[[providers]]\nname = \"sim\"\nkind = \"azure\"\napi_key_env = \"K\"\n";
        let c = GatewayConfig::from_toml_str(&format!("{MODELS}{azure}")).expect("parses");
        let e = c.router_builder(&|_| Some("k".into())).expect_err("no endpoint").to_string();
        assert!(e.contains("endpoint"), "{e}");
        let half = "[[providers]]\nname = \"sim\"\nkind = \"gemini\"\nvertex_project = \"p\"\n";
        let c = GatewayConfig::from_toml_str(&format!("{MODELS}{half}")).expect("parses");
        let e = c.router_builder(&|_| None).expect_err("half a Vertex endpoint").to_string();
        assert!(e.contains("go together"), "{e}");
        // Errors give the file's own lines, and never quote a value.
        let late = format!("seed = 1\n{sim}[server]\nlisten = \"127.0.0.1:1\"\n{MODELS}capabilities = \"sk-secret\"\n");
        let e = err(&late);
        assert!(e.contains("line 14") && e.contains("capabilities") && !e.contains("sk-secret"), "{e}");
        let e = err(&format!("{MODELS}{sim}[server]\nmax_body_bytes = \"sk-secret\"\n"));
        assert!(e.contains("line 12") && !e.contains("sk-secret"), "{e}");
        let keyed =
            format!("{MODELS}[[providers]]\nname = \"sim\"\nkind = \"openai\"\napi_key_env = \"UPSTREAM_KEY\"\n");
        let c = GatewayConfig::from_toml_str(&keyed).expect("valid");
        let e = c.router_builder(&|_| None).expect_err("the key is missing").to_string();
        assert!(e.contains("UPSTREAM_KEY"), "{e}");
        let _ = c.router_builder(&|_| Some("sk-test".into())).expect("the key is there");
    }
}
