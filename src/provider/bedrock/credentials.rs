//! AWS credentials and the part of the standard credential chain the adapter covers: keys given to
//! the builder, the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! and static keys in the shared files (`~/.aws/credentials`, `~/.aws/config`) for `AWS_PROFILE`;
//! the region from `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's `region`.
//!
//! The environment is read in one place (`Bedrock::builder_from_env`), through [`resolve`], which
//! takes the variables as a function so that tests can give their own.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::provider::http::Secret;

/// An access key id, its secret, and the session token of temporary credentials. `Debug` shows none
/// of them.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: Secret,
    pub(crate) secret_access_key: Secret,
    pub(crate) session_token: Option<Secret>,
}

impl Credentials {
    pub(crate) fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Self {
            access_key_id: Secret::new(access_key_id.to_owned()),
            secret_access_key: Secret::new(secret_access_key.to_owned()),
            session_token: session_token.map(|t| Secret::new(t.to_owned())),
        }
    }

    /// Every secret value, for the error sanitizer (a server echoing one back).
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &Secret> {
        [Some(&self.access_key_id), Some(&self.secret_access_key), self.session_token.as_ref()].into_iter().flatten()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What the chain found: credentials and a region, each when some source had them.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) credentials: Option<Credentials>,
    pub(crate) region: Option<String>,
}

/// Runs the covered part of the chain with `var` as the environment.
///
/// 1. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), both or neither.
/// 2. The profile `AWS_PROFILE` (else `default`) in the credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
///    else `~/.aws/credentials`), then in the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`,
///    where profiles other than `default` are `[profile name]`): `aws_access_key_id`,
///    `aws_secret_access_key`, `aws_session_token`.
///
/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region` in the config file.
/// Missing files are not an error; a profile that only names another way to get credentials
/// (`sso_session`, `role_arn`, `credential_process`, `web_identity_token_file`, ...) is, since the
/// adapter cannot follow it, and so is an environment with half a key pair.
pub(crate) fn resolve(var: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let mut resolved = Resolved { credentials: None, region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) };
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            let token = var("AWS_SESSION_TOKEN");
            resolved.credentials = Some(Credentials::new(&id, &secret, token.as_deref()));
        }
        (None, None) => {}
        _ => {
            return Err(Error::config("`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` must be set together"));
        }
    }
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let home = var("HOME").or_else(|| var("USERPROFILE")).map(PathBuf::from);
    let file = |override_var: &str, name: &str| {
        var(override_var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let credentials_file = file("AWS_SHARED_CREDENTIALS_FILE", "credentials").map(|p| read_ini(&p)).transpose()?;
    let config_file = file("AWS_CONFIG_FILE", "config").map(|p| read_ini(&p)).transpose()?;
    let from_credentials = credentials_file.as_ref().and_then(|f| f.section(&profile));
    let config_name = if profile == "default" { "default".to_owned() } else { format!("profile {profile}") };
    let from_config = config_file.as_ref().and_then(|f| f.section(&config_name));
    if resolved.region.is_none() {
        resolved.region = from_config.and_then(|s| s.get("region")).map(str::to_owned);
    }
    if resolved.credentials.is_some() {
        return Ok(resolved);
    }
    for section in [from_credentials, from_config].into_iter().flatten() {
        match (section.get("aws_access_key_id"), section.get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                resolved.credentials = Some(Credentials::new(id, secret, section.get("aws_session_token")));
                return Ok(resolved);
            }
            (None, None) => {}
            _ => {
                return Err(Error::config(format!(
                    "profile `{profile}` has only one of `aws_access_key_id` and `aws_secret_access_key`"
                )));
            }
        }
        if let Some(key) = UNSUPPORTED_KEYS.iter().find(|k| section.get(k).is_some()) {
            return Err(Error::config(format!(
                "profile `{profile}` gets its credentials through `{key}`, which the Bedrock adapter does not \
                 support; give static keys (or export them: `aws configure export-credentials --format env`)"
            )));
        }
    }
    Ok(resolved)
}

/// Profile keys that name a source of credentials the adapter does not follow.
const UNSUPPORTED_KEYS: &[&str] = &[
    "sso_session",
    "sso_start_url",
    "role_arn",
    "credential_process",
    "web_identity_token_file",
    "credential_source",
    "login_session",
];

/// The largest shared file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// An INI file's sections: `[name]` headers and `key = value` lines (`#` and `;` comments).
struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

#[derive(Clone, Copy)]
struct Section<'a>(&'a [(String, String)]);

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

impl Ini {
    fn parse(text: &str) -> Self {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                sections.push((name, Vec::new()));
            } else if let Some((key, value)) = line.split_once('=')
                && let Some((_, entries)) = sections.last_mut()
            {
                // Nested values (`s3 =` followed by indented lines) keep their key with an empty value.
                entries.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Self { sections }
    }

    fn section(&self, name: &str) -> Option<Section<'_>> {
        self.sections.iter().rev().find(|(n, _)| n == name).map(|(_, e)| Section(e))
    }
}

/// Reads a shared file; a missing one is empty.
fn read_ini(path: &Path) -> Result<Ini> {
    let unreadable = |e: std::io::Error| {
        Error::config(format!("cannot read the AWS shared file `{}`", path.display())).with_source(e)
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ini { sections: Vec::new() }),
        Err(e) => return Err(unreadable(e)),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut text).map_err(unreadable)?;
    Ok(Ini::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |k| map.get(k).map(|v| (*v).to_owned())
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("switchyard-bedrock-{name}-{}", std::process::id()));
        std::fs::create_dir_all(d.join(".aws")).unwrap();
        d
    }

    #[test]
    fn environment_first() {
        let r = resolve(&env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("HOME", "/nonexistent"),
        ]))
        .unwrap();
        let c = r.credentials.unwrap();
        assert_eq!(c.access_key_id.expose(), "AKID");
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("TOKEN"));
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert!(!format!("{c:?}").contains("SECRET") && !format!("{c:?}").contains("AKID"));
        let r = resolve(&env(&[("AWS_REGION", "us-west-2"), ("AWS_DEFAULT_REGION", "eu-west-1")])).unwrap();
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        assert!(r.credentials.is_none());
        assert!(resolve(&env(&[("AWS_ACCESS_KEY_ID", "AKID")])).is_err());
    }

    #[test]
    fn shared_files_for_the_profile() {
        let home = dir("files");
        std::fs::write(
            home.join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = DEFAULTID\naws_secret_access_key = DEFAULTSECRET\n\n\
             [work]\naws_access_key_id=WORKID\naws_secret_access_key=WORKSECRET\naws_session_token=WORKTOKEN\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".aws/config"),
            "[default]\nregion = us-east-1\n[profile work]\nregion = ap-southeast-2\n\
             [profile sso]\nsso_session = corp\nregion = eu-central-1\n[profile cfg]\n\
             aws_access_key_id = CFGID\naws_secret_access_key = CFGSECRET\n",
        )
        .unwrap();
        let h = home.to_str().unwrap();
        let r = resolve(&env(&[("HOME", h)])).unwrap();
        assert_eq!(r.credentials.unwrap().access_key_id.expose(), "DEFAULTID");
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        let r = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "work")])).unwrap();
        let c = r.credentials.unwrap();
        assert_eq!((c.access_key_id.expose(), c.session_token.unwrap().expose()), ("WORKID", "WORKTOKEN"));
        assert_eq!(r.region.as_deref(), Some("ap-southeast-2"));
        let r = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "cfg"), ("AWS_REGION", "us-west-2")])).unwrap();
        assert_eq!(r.credentials.unwrap().access_key_id.expose(), "CFGID");
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        let e = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "sso")])).unwrap_err();
        assert!(e.to_string().contains("`sso_session`"), "{e}");
        // The environment wins over the files; explicit file paths override `~/.aws`.
        let r = resolve(&env(&[("HOME", h), ("AWS_ACCESS_KEY_ID", "E"), ("AWS_SECRET_ACCESS_KEY", "S")])).unwrap();
        assert_eq!(r.credentials.unwrap().access_key_id.expose(), "E");
        let creds = home.join(".aws/credentials");
        let r = resolve(&env(&[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()), ("AWS_PROFILE", "work")]))
            .unwrap();
        assert_eq!(r.credentials.unwrap().access_key_id.expose(), "WORKID");
        assert!(r.region.is_none());
        let r = resolve(&env(&[("HOME", h), ("AWS_PROFILE", "missing")])).unwrap();
        assert!(r.credentials.is_none());
        let _ = std::fs::remove_dir_all(home);
    }
}
