//! An OpenAI chat-completions body as the gateway reads it: `ChatCompletionRequest` from JSON, then
//! `Request::try_from`, then a route over a two-model catalog. Every step returns a value or a typed
//! error; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::wire::openai::ChatCompletionRequest;
use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = serde_json::from_slice::<ChatCompletionRequest>(data) else { return };
    let Ok(request) = Request::try_from(wire) else { return };
    let catalog = Catalog::new([
        ModelProfile::new("mini", "sim").with_pricing(Pricing::per_mtok(0.15, 0.6)),
        ModelProfile::new("large", "sim").with_pricing(Pricing::per_mtok(2.5, 10.0)),
    ])
    .expect("a valid catalog");
    let router = Router::builder().catalog(catalog).build().expect("a router");
    let _ = router.route(&request);
});
