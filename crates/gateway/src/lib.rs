//! # switchyard-gateway
//!
//! An OpenAI-compatible HTTP gateway in front of a [`switchyard`] router: point an existing OpenAI
//! client at it and set `model = "auto"`.
//!
//! The crate reserves the gateway's place in the workspace; it has no public items yet and is not
//! published.
