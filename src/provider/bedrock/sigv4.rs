//! AWS Signature Version 4 for one request: the canonical request, the string to sign, the signing
//! key derived from the secret key, and the headers that carry the signature. HMAC-SHA256 and
//! SHA-256 come from `ring`, which rustls already compiles in.
//!
//! Checked against AWS's published SigV4 test suite (`get-vanilla`, `post-vanilla`,
//! `get-vanilla-query-order-key-case`) and the example of the S3 documentation (tests below).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

use super::credentials::Credentials;
use crate::state::civil_from_days;

/// The signing algorithm, first in the `Authorization` header and the string to sign.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A moment as SigV4 writes it: `20150830T123600Z` and its date, `20150830`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AmzTime {
    pub(crate) date_time: String,
    pub(crate) date: String,
}

impl AmzTime {
    /// The UTC time `secs` seconds after the Unix epoch.
    pub(crate) fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let date = format!("{y:04}{m:02}{d:02}");
        let date_time = format!("{date}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60);
        Self { date_time, date }
    }

    /// Now, by the system clock (a clock before 1970 counts as 1970: AWS will refuse the signature).
    pub(crate) fn now() -> Self {
        Self::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX` (upper case); `/` kept when
/// `keep_slash`.
pub(crate) fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What is signed of one request. `path` is the path as sent (already URI-encoded); every service
/// but S3 encodes it once more in the canonical request, which `double_encode_path` says.
pub(crate) struct Signable<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    /// The query's pairs, decoded.
    pub(crate) query: Vec<(String, String)>,
    /// Every header to sign, `host` included; names in any case.
    pub(crate) headers: Vec<(&'a str, &'a str)>,
    pub(crate) payload_sha256: &'a str,
    pub(crate) double_encode_path: bool,
}

/// The scope of a signature: the date, the region and the service.
pub(crate) struct Scope<'a> {
    pub(crate) time: &'a AmzTime,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

impl Scope<'_> {
    fn credential_scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.time.date, self.region, self.service)
    }
}

/// The canonical request and the `SignedHeaders` list.
fn canonical_request(req: &Signable<'_>) -> (String, String) {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri = if req.double_encode_path { uri_encode(path, true) } else { path.to_owned() };
    let mut query: Vec<(String, String)> =
        req.query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    // Names lower case and sorted; values trimmed, inner runs of spaces collapsed, repeats joined by `,`.
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &req.headers {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        headers.entry(name.to_ascii_lowercase()).or_default().push(value);
    }
    let mut canonical_headers = String::new();
    for (name, values) in &headers {
        let _ = writeln!(canonical_headers, "{name}:{}", values.join(","));
    }
    let signed = headers.keys().map(String::as_str).collect::<Vec<_>>().join(";");
    let canonical = format!("{}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{}", req.method, req.payload_sha256);
    (canonical, signed)
}

fn string_to_sign(scope: &Scope<'_>, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.time.date_time,
        scope.credential_scope(),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signature of `req` (hex) and its `SignedHeaders`.
fn signature(secret_key: &str, scope: &Scope<'_>, req: &Signable<'_>) -> (String, String) {
    let (canonical, signed) = canonical_request(req);
    let sts = string_to_sign(scope, &canonical);
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), scope.time.date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), scope.region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), scope.service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    (hex(hmac_sha256(k_signing.as_ref(), sts.as_bytes()).as_ref()), signed)
}

/// The value of the `Authorization` header for `req`.
pub(crate) fn authorization(credentials: &Credentials, scope: &Scope<'_>, req: &Signable<'_>) -> String {
    let (signature, signed) = signature(credentials.secret_access_key.expose(), scope, req);
    format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key_id.expose(),
        scope.credential_scope()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of AWS's SigV4 test suite.
    fn suite() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn suite_request<'a>(method: &'a str, query: &[(&str, &str)]) -> Signable<'a> {
        Signable {
            method,
            path: "/",
            query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            headers: vec![("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payload_sha256: EMPTY_SHA256,
            double_encode_path: true,
        }
    }

    #[test]
    fn time_formats() {
        // 2015-08-30T12:36:00Z, the test suite's moment.
        assert_eq!(
            AmzTime::from_unix(1_440_938_160),
            AmzTime { date_time: "20150830T123600Z".into(), date: "20150830".into() }
        );
        assert_eq!(AmzTime::from_unix(0).date_time, "19700101T000000Z");
        assert_eq!(AmzTime::from_unix(1_709_164_800).date_time, "20240229T000000Z");
        assert_eq!(AmzTime::from_unix(951_825_600).date, "20000229");
    }

    /// `get-vanilla` of AWS's SigV4 test suite, step by step.
    #[test]
    fn get_vanilla() {
        let time = AmzTime::from_unix(1_440_938_160);
        let scope = Scope { time: &time, region: "us-east-1", service: "service" };
        let req = suite_request("GET", &[]);
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        assert_eq!(signed, "host;x-amz-date");
        assert_eq!(
            string_to_sign(&scope, &canonical),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            authorization(&suite(), &scope, &req),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// `post-vanilla` and `get-vanilla-query-order-key-case` of the test suite.
    #[test]
    fn post_vanilla_and_query_order() {
        let time = AmzTime::from_unix(1_440_938_160);
        let scope = Scope { time: &time, region: "us-east-1", service: "service" };
        let (sig, _) = signature(suite().secret_access_key.expose(), &scope, &suite_request("POST", &[]));
        assert_eq!(sig, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
        let query = suite_request("GET", &[("Param2", "value2"), ("Param1", "value1")]);
        let (sig, _) = signature(suite().secret_access_key.expose(), &scope, &query);
        assert_eq!(sig, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
    }

    /// The S3 documentation's example (`GET /test.txt` with a `Range`), which signs
    /// `x-amz-content-sha256` and does not encode the path twice.
    #[test]
    fn s3_documented_example() {
        let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None);
        let time = AmzTime::from_unix(1_369_353_600); // 2013-05-24T00:00:00Z
        let scope = Scope { time: &time, region: "us-east-1", service: "s3" };
        let req = Signable {
            method: "GET",
            path: "/test.txt",
            query: Vec::new(),
            headers: vec![
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            payload_sha256: EMPTY_SHA256,
            double_encode_path: false,
        };
        assert_eq!(
            authorization(&credentials, &scope, &req),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn paths_are_encoded_again_and_header_values_trimmed() {
        let req = Signable {
            method: "POST",
            path: "/model/anthropic.claude-v2%3A1/converse",
            query: Vec::new(),
            headers: vec![("Host", "h"), ("X-Amz-Date", "  a   b  ")],
            payload_sha256: EMPTY_SHA256,
            double_encode_path: true,
        };
        let (canonical, _) = canonical_request(&req);
        assert!(canonical.starts_with("POST\n/model/anthropic.claude-v2%253A1/converse\n\nhost:h\nx-amz-date:a b\n"));
        assert_eq!(uri_encode("a:b/c d~", false), "a%3Ab%2Fc%20d~");
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }
}
