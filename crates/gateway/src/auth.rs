//! Virtual API keys: `Authorization: Bearer KEY` (or `api-key: KEY`) mapped to a caller.

use std::fmt;

use axum::http::HeaderMap;

/// Who is calling: a virtual key's name and tenant, or the anonymous caller of an open gateway.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) name: Option<String>,
    pub(crate) tenant: Option<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller").field("name", &self.name).field("tenant", &self.tenant).finish()
    }
}

/// A virtual key and the caller it stands for. The key is kept as bytes and never printed.
pub(crate) struct VirtualKey {
    key: Vec<u8>,
    caller: Caller,
}

impl VirtualKey {
    pub(crate) fn new(key: String, name: String, tenant: Option<String>) -> Self {
        Self { key: key.into_bytes(), caller: Caller { name: Some(name), tenant } }
    }
}

impl fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualKey").field("caller", &self.caller).finish_non_exhaustive()
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only, not on where they
/// differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The key a request presents: `Authorization: Bearer KEY`, else `api-key: KEY` (Azure's header).
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.as_bytes();
        let scheme = b"bearer ";
        return (v.len() > scheme.len() && v[..scheme.len()].eq_ignore_ascii_case(scheme))
            .then(|| v[scheme.len()..].trim_ascii());
    }
    headers.get("api-key").map(|v| v.as_bytes().trim_ascii())
}

/// The caller a request's key names. With no keys configured every request is the anonymous
/// caller. Every configured key is compared, whichever matches, so the time taken does not say which
/// key (or how much of one) matched.
pub(crate) fn authenticate(keys: &[VirtualKey], headers: &HeaderMap) -> Option<Caller> {
    if keys.is_empty() {
        return Some(Caller { name: None, tenant: None });
    }
    let presented = presented(headers)?;
    let mut found = None;
    for k in keys {
        if constant_time_eq(&k.key, presented) && found.is_none() {
            found = Some(k.caller.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("a header value"));
        h
    }

    #[test]
    fn keys_map_to_callers() {
        let keys = vec![
            VirtualKey::new("sk-aaa".into(), "a".into(), Some("acme".into())),
            VirtualKey::new("sk-bbb".into(), "b".into(), None),
        ];
        let a = authenticate(&keys, &headers("authorization", "Bearer sk-aaa")).expect("a");
        assert_eq!((a.name.as_deref(), a.tenant.as_deref()), (Some("a"), Some("acme")));
        let b = authenticate(&keys, &headers("authorization", "bearer  sk-bbb ")).expect("b");
        assert_eq!(b.name.as_deref(), Some("b"));
        assert_eq!(
            authenticate(&keys, &headers("api-key", "sk-bbb")).expect("azure header").name.as_deref(),
            Some("b")
        );
        for wrong in ["Bearer sk-aab", "Bearer sk-aaaa", "Bearer ", "Basic sk-aaa", "sk-aaa"] {
            assert!(authenticate(&keys, &headers("authorization", wrong)).is_none(), "{wrong}");
        }
        assert!(authenticate(&keys, &HeaderMap::new()).is_none());
        assert!(authenticate(&[], &HeaderMap::new()).is_some(), "no keys: open");
        assert!(!format!("{:?}", keys[0]).contains("sk-aaa"));
    }
}
