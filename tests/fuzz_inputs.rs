//! Bounded fuzzing on stable, run by `cargo test`: every reader of outside input gets arbitrary bytes
//! and mutations of the fuzz targets' seed corpora (`fuzz/seeds/<target>/`: byte flips, truncations,
//! cuts, copies, insertions of JSON, TOML and SSE tokens) and must return a value or a typed error,
//! never panic. Errors never show a key planted in the input.
//!
//! - Router configs, TOML and JSON (`RouterConfig::from_toml_str`, `from_json_str`, `validate`).
//! - OpenAI chat-completions bodies as the gateway reads them (`ChatCompletionRequest`,
//!   `Request::try_from`, then a route).
//! - Learned model files (`LearnedModel::from_bytes`); with the hidden `__fuzz` feature also with the
//!   checksum rewritten, so mutations reach the decoder.
//! - With `__fuzz` (on under `--all-features`): the server-sent event parser, OpenAI, Anthropic and
//!   Gemini answers and streams, and the error a failed status becomes.
//!
//! The libFuzzer targets in `fuzz/` cover the same functions without a bound (see `fuzz/README.md`).

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

#[path = "support/mutation.rs"]
mod mutation;

use std::path::Path;

use mutation::{apply, mutation};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use switchyard::classify::LearnedModel;
use switchyard::{ErrorKind, RouterConfig};

/// The key planted in inputs; no error may show it.
const SECRET: &str = "sk-SECRET-123";

/// Cases per property; the whole file runs in a few seconds in a debug build.
const CASES: u32 = 512;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The seed corpus of one fuzz target, in file-name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    mutation::seeds_in(Path::new(env!("CARGO_MANIFEST_DIR")), target)
}

/// Tokens inserted by mutations: the syntax of the formats read here, and values at their limits.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"'",
    b",",
    b":",
    b"=",
    b".",
    b"\n",
    b"\r\n",
    b"\r",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"-0",
    b"0",
    b"1e309",
    b"-1e309",
    b"nan",
    b"inf",
    b"-inf",
    b"18446744073709551616",
    b"4294967296",
    b"0.5",
    b"\"\"",
    b"[]",
    b"{}",
    b"'''",
    b"\"\"\"",
    b"#",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xc3\xa9",
    b"[[models]]\n",
    b"[policy]\n",
    b"[execution]\n",
    b"kind = \"bandit\"\n",
    b"weight = ",
    b"\"kind\": \"experiment\", ",
    b"data: ",
    b"event: ",
    b"\n\n",
    b"[DONE]",
    b"\"index\": ",
    b"99999999999",
    b"\"type\": \"error\", ",
    b"\"error\": ",
    b"\"usage\": ",
    b"\"choices\": ",
    b"\"tool_calls\": [{\"index\": 127}], ",
    b"\"scores\": ",
    b"\"costs_usd\": ",
    b"\"prompt\": ",
    b"\"turns\": ",
];

/// A seed of `target` with one to eight mutations.
fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    (select(seeds(target)), vec(mutation(TOKENS), 1..8)).prop_map(|(mut bytes, ms)| {
        for m in &ms {
            apply(&mut bytes, m);
        }
        bytes
    })
}

/// Fails when an error shows the planted key.
fn no_secret(e: &switchyard::Error) -> Result<(), TestCaseError> {
    let shown = format!("{e} {e:?}");
    prop_assert!(!shown.contains(SECRET), "the planted key is in the error: {shown}");
    Ok(())
}

/// Parses, validates and writes back: a config that validates writes TOML that reads back.
fn check_config(parsed: switchyard::Result<RouterConfig>) -> Result<(), TestCaseError> {
    let config = match parsed {
        Ok(c) => c,
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::Config);
            return no_secret(&e);
        }
    };
    if let Err(e) = config.validate() {
        prop_assert_eq!(e.kind(), ErrorKind::Config);
        return no_secret(&e);
    }
    if let Ok(text) = config.to_toml_string() {
        let back = RouterConfig::from_toml_str(&text);
        prop_assert!(back.is_ok(), "a written config does not read back: {:?}\n{text}", back.err());
    }
    Ok(())
}

/// Lines that put the key in a TOML config: as the value of fields a router config does not have, of
/// fields of another type, and on lines that do not parse. (A key written as a model id, a provider
/// or a rule name is named in errors like any identifier: those fields are not planted.)
const TOML_PLANTS: &[&str] = &[
    "api_key = \"sk-SECRET-123\"\n",
    "base_url = \"https://user:sk-SECRET-123@api.example.com/v1\"\n",
    "headers = { authorization = \"Bearer sk-SECRET-123\" }\n",
    "seed = \"sk-SECRET-123\"\n",
    "max_request_bytes = \"https://api.example.com/v1?key=sk-SECRET-123\"\n",
    "context_window = \"sk-SECRET-123\"\n",
    "weight = \"sk-SECRET-123\"\n",
    "api_key = sk-SECRET-123\n",
    "api_key = \"sk-SECRET-123\n",
    "\"sk-SECRET-123\"\n",
];

/// The same for JSON, inserted after an opening brace.
const JSON_PLANTS: &[&str] = &[
    "\"api_key\": \"sk-SECRET-123\", ",
    "\"base_url\": \"https://user:sk-SECRET-123@api.example.com/v1\", ",
    "\"seed\": \"sk-SECRET-123\", ",
    "\"context_window\": \"sk-SECRET-123\", ",
    "\"weight\": \"sk-SECRET-123\", ",
    "\"pricing\": \"sk-SECRET-123\", ",
    "\"api_key\": sk-SECRET-123, ",
    "\"api_key\": \"sk-SECRET-123, ",
];

/// `text` with `plant` inserted at the start of its `line`-th line (modulo the line count).
fn plant_at_line(text: &str, line: usize, plant: &str) -> String {
    let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let at = starts[line % starts.len()];
    format!("{}{plant}{}", &text[..at], &text[at..])
}

/// `text` with `plant` inserted after its `brace`-th `{` (modulo the count), or first when it has none.
fn plant_after_brace(text: &str, brace: usize, plant: &str) -> String {
    let braces: Vec<usize> = text.match_indices('{').map(|(i, _)| i + 1).collect();
    let at = if braces.is_empty() { 0 } else { braces[brace % braces.len()] };
    format!("{}{plant}{}", &text[..at], &text[at..])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A chat-completions body through the wire layer and a route: a value or an `InvalidRequest` (the
/// conversion's and the router's checks), never a panic, and no error shows the planted key.
fn check_chat_request(bytes: &[u8]) -> Result<(), TestCaseError> {
    use switchyard::wire::openai::ChatCompletionRequest;
    let Ok(wire) = serde_json::from_slice::<ChatCompletionRequest>(bytes) else { return Ok(()) };
    let request = match switchyard::Request::try_from(wire) {
        Ok(r) => r,
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidRequest);
            return no_secret(&e);
        }
    };
    let catalog = switchyard::Catalog::new([
        switchyard::ModelProfile::new("mini", "sim").with_pricing(switchyard::Pricing::per_mtok(0.15, 0.6)),
        switchyard::ModelProfile::new("large", "sim").with_pricing(switchyard::Pricing::per_mtok(2.5, 10.0)),
    ])
    .unwrap();
    let router = switchyard::Router::builder().catalog(catalog).build().unwrap();
    if let Err(e) = router.route(&request) {
        prop_assert!(matches!(e.kind(), ErrorKind::InvalidRequest | ErrorKind::NoCandidate), "{e}");
        no_secret(&e)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn chat_request_mutated(bytes in mutated("chat_request")) {
        check_chat_request(&bytes)?;
    }

    #[test]
    fn chat_request_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
        check_chat_request(&bytes)?;
    }

    #[test]
    fn config_toml_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
        check_config(RouterConfig::from_toml_str(&text(&bytes)))?;
    }

    #[test]
    fn config_toml_mutated(bytes in mutated("config_toml")) {
        check_config(RouterConfig::from_toml_str(&text(&bytes)))?;
    }

    #[test]
    fn config_json_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
        check_config(RouterConfig::from_json_str(&text(&bytes)))?;
    }

    #[test]
    fn config_json_mutated(bytes in mutated("config_json")) {
        check_config(RouterConfig::from_json_str(&text(&bytes)))?;
    }

    #[test]
    fn config_toml_errors_hide_planted_keys(seed in select(seeds("config_toml")), line in any::<usize>(), plant in select(TOML_PLANTS)) {
        let input = plant_at_line(&text(&seed), line, plant);
        check_config(RouterConfig::from_toml_str(&input))?;
    }

    #[test]
    fn config_json_errors_hide_planted_keys(seed in select(seeds("config_json")), brace in any::<usize>(), plant in select(JSON_PLANTS)) {
        let input = plant_after_brace(&text(&seed), brace, plant);
        check_config(RouterConfig::from_json_str(&input))?;
    }
}

proptest! {
    // Each case copies and decodes a 130 KB model file.
    #![proptest_config(config(CASES / 2))]

    #[test]
    fn learned_model_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
        if let Err(e) = LearnedModel::from_bytes(&bytes) {
            prop_assert_eq!(e.kind(), ErrorKind::Config);
        }
    }

    #[test]
    fn learned_model_mutated(bytes in mutated("learned_model")) {
        if let Err(e) = LearnedModel::from_bytes(&bytes) {
            prop_assert_eq!(e.kind(), ErrorKind::Config);
        }
    }
}

#[test]
fn seeds_are_valid_inputs() {
    for (target, parse) in [
        ("config_toml", RouterConfig::from_toml_str as fn(&str) -> switchyard::Result<RouterConfig>),
        ("config_json", RouterConfig::from_json_str),
    ] {
        for seed in seeds(target) {
            parse(&text(&seed)).and_then(|c| c.validate()).unwrap_or_else(|e| panic!("{target}: {e}"));
        }
    }
    for seed in seeds("learned_model") {
        LearnedModel::from_bytes(&seed).unwrap();
    }
}

/// Regression: TOML errors used to print the offending line under the message, and serde's messages
/// quote the string they got.
#[test]
fn config_errors_do_not_quote_the_line_or_the_value() {
    for input in
        ["api_key = sk-SECRET-123\n", "max_request_bytes = \"sk-SECRET-123\"\n", "seed = 1\nseed = \"sk-SECRET-123\"\n"]
    {
        let e = RouterConfig::from_toml_str(input).unwrap_err();
        assert!(!e.to_string().contains(SECRET), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
    }
    let e = RouterConfig::from_json_str("{\"seed\": \"sk-SECRET-123\"}").unwrap_err();
    assert_eq!(e.to_string(), "`seed`: invalid type: string, expected u64 at line 1 column 24");
}

/// The adapters' private parsers, through `switchyard::__fuzz`.
#[cfg(feature = "__fuzz")]
mod parsers {
    use super::*;
    use switchyard::__fuzz;

    /// `bytes` cut at up to three places.
    fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut out = Vec::new();
        let mut start = 0;
        for a in at.into_iter().chain([bytes.len()]) {
            out.push(bytes[start..a].to_vec());
            start = a;
        }
        out
    }

    fn refs(chunks: &[Vec<u8>]) -> Vec<&[u8]> {
        chunks.iter().map(Vec::as_slice).collect()
    }

    /// Whole or in chunks, the parser gives the same events or fails on both.
    fn sse_split_invariant(bytes: &[u8], cuts: &[usize], max: usize) -> Result<(), TestCaseError> {
        let whole = __fuzz::sse(&[bytes], max);
        let parts = chunks(bytes, cuts);
        let split = __fuzz::sse(&refs(&parts), max);
        match (&whole, &split) {
            (Ok(w), Ok(s)) => {
                prop_assert_eq!(w, s);
                prop_assert!(w.iter().all(|(_, d)| d.len() <= max));
            }
            (Err(e), Err(_)) => prop_assert_eq!(e.kind(), ErrorKind::Decode),
            _ => prop_assert!(false, "the outcome depends on where chunks end: {whole:?} vs {split:?}"),
        }
        Ok(())
    }

    fn stream_events(
        run: fn(&[&[u8]]) -> switchyard::Result<Vec<switchyard::StreamEvent>>,
        bytes: &[u8],
        cuts: &[usize],
    ) -> Result<(), TestCaseError> {
        let parts = chunks(bytes, cuts);
        for result in [run(&[bytes]), run(&refs(&parts))] {
            if let Err(e) = result {
                no_secret(&e)?;
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(CASES))]

        #[test]
        fn sse_any_bytes(bytes in vec(any::<u8>(), 0..512), cuts in vec(any::<usize>(), 0..4), max in 1usize..256) {
            sse_split_invariant(&bytes, &cuts, max)?;
        }

        #[test]
        fn sse_mutated(bytes in mutated("sse"), cuts in vec(any::<usize>(), 0..4), max in 1usize..256) {
            sse_split_invariant(&bytes, &cuts, max)?;
        }

        #[test]
        fn openai_response_mutated(bytes in mutated("openai_response")) {
            if let Err(e) = __fuzz::openai_response(&bytes) {
                no_secret(&e)?;
            }
        }

        #[test]
        fn anthropic_response_mutated(bytes in mutated("anthropic_response")) {
            if let Err(e) = __fuzz::anthropic_response(&bytes) {
                no_secret(&e)?;
            }
        }

        #[test]
        fn gemini_response_mutated(bytes in mutated("gemini_response")) {
            if let Err(e) = __fuzz::gemini_response(&bytes) {
                no_secret(&e)?;
            }
        }

        #[test]
        fn responses_any_bytes(bytes in vec(any::<u8>(), 0..512)) {
            let _ = __fuzz::openai_response(&bytes);
            let _ = __fuzz::anthropic_response(&bytes);
            let _ = __fuzz::gemini_response(&bytes);
        }

        #[test]
        fn openai_stream_mutated(bytes in mutated("openai_stream"), cuts in vec(any::<usize>(), 0..4)) {
            stream_events(__fuzz::openai_stream, &bytes, &cuts)?;
        }

        #[test]
        fn anthropic_stream_mutated(bytes in mutated("anthropic_stream"), cuts in vec(any::<usize>(), 0..4)) {
            stream_events(__fuzz::anthropic_stream, &bytes, &cuts)?;
        }

        #[test]
        fn gemini_stream_mutated(bytes in mutated("gemini_stream"), cuts in vec(any::<usize>(), 0..4)) {
            stream_events(__fuzz::gemini_stream, &bytes, &cuts)?;
        }

        #[test]
        fn streams_any_bytes(bytes in vec(any::<u8>(), 0..512), cuts in vec(any::<usize>(), 0..4)) {
            stream_events(__fuzz::openai_stream, &bytes, &cuts)?;
            stream_events(__fuzz::anthropic_stream, &bytes, &cuts)?;
            stream_events(__fuzz::gemini_stream, &bytes, &cuts)?;
        }

        /// The key, planted in the body's message, type or code, or in the `Retry-After` header, never
        /// shows in the error a failed status becomes.
        #[test]
        fn status_errors_hide_the_key(
            status in prop_oneof![100u16..1000, select(vec![400u16, 401, 403, 404, 408, 429, 500, 503, 529])],
            body in mutated("provider_error"),
            field in select(vec!["message", "type", "code"]),
            wrap in select(vec!["{}", "Bearer {}", "invalid key {} given", "https://user:{}@api.example.com"]),
            retry_after in select(vec![None, Some("3"), Some("sk-SECRET-123"), Some("Wed, 21 Oct 2015 07:28:00 GMT")]),
        ) {
            // The seeds start with a two-byte status.
            let body = body.get(2..).unwrap_or_default();
            let e = __fuzz::status_error_for(status, body, retry_after, SECRET, "What is the capital of France?");
            no_secret(&e)?;
            let value = wrap.replace("{}", SECRET);
            let planted = format!(r#"{{"error": {{"{field}": "{value}", "type": "invalid_request_error"}}}}"#);
            let e = __fuzz::status_error_for(status, planted.as_bytes(), retry_after, SECRET, "What is the capital of France?");
            no_secret(&e)?;
        }
    }

    proptest! {
        #![proptest_config(config(CASES / 4))]

        /// With the checksum rewritten, mutations reach the decoder: it returns an error or a model that
        /// predicts and writes itself back.
        #[test]
        fn learned_model_sealed(mut bytes in mutated("learned_model")) {
            __fuzz::seal_learned_model(&mut bytes);
            match LearnedModel::from_bytes(&bytes) {
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Config),
                Ok(model) => {
                    let p = model.predict("Write a Rust function that reverses a string, then prove it correct.");
                    for i in 0..model.info().models.len() {
                        let _ = p.probability(i);
                    }
                    let again = LearnedModel::from_bytes(&model.to_bytes());
                    prop_assert!(again.is_ok(), "a model read back does not load: {:?}", again.err());
                }
            }
        }
    }

    #[test]
    fn seeds_decode() {
        for seed in seeds("openai_response").iter().filter(|s| !s.starts_with(b"{\"error\"")) {
            __fuzz::openai_response(seed).unwrap();
        }
        for seed in seeds("anthropic_response") {
            __fuzz::anthropic_response(&seed).unwrap();
        }
        __fuzz::openai_stream(&[&seeds("openai_stream")[1]]).unwrap();
        __fuzz::anthropic_stream(&[&seeds("anthropic_stream")[1]]).unwrap();
        for seed in seeds("gemini_response") {
            __fuzz::gemini_response(&seed).unwrap();
        }
        let events = __fuzz::gemini_stream(&[&seeds("gemini_stream")[0]]).unwrap();
        assert_eq!(events.len(), 4, "{events:?}");
        let e = __fuzz::gemini_stream(&[&seeds("gemini_stream")[1]]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(__fuzz::sse(&[&seeds("sse")[1]], 1024).unwrap().len(), 3);
    }
}
