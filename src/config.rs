//! Configuration from TOML or JSON.

/// The whole router as data.
#[derive(Debug)]
pub struct RouterConfig;
